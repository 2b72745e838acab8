//! A seeded crash test for an embedder's own node: its state type, its `StateSource` and its
//! restore, driven with a real [`Snapshotter`] and [`SnapshotStore`] over [`SimFs`], crashed
//! and recovered, all from one seed.
//!
//! The [`harness`](crate::harness) checks snapseal against the reference ledger and its
//! key-value state; this driver checks *your* node's side of the contract instead: that what it
//! captures at an index is its state at that index, that what it wrote restores, and that a
//! node recovering from the newest snapshot plus the committed log is the node it was. The
//! node implements [`CrashNode`]; the driver plays everything else:
//!
//! - a Raft-like log: seeded writes are appended, offered as snapshot points
//!   ([`Snapshotter::record_committable`]), committed (snapshot points one by one, applying the
//!   committed writes to the node in order), and its uncommitted tail is rolled back now and
//!   then (a new leader, a new term);
//! - receipts in statement mode (SPEC §3.3, [`Snapshotter::with_statement_key`]): the node's
//!   key, drawn from the seed, signs each snapshot's claims digest, evidence index and term;
//!   the evidence entry the node is asked for is appended to the log and persists once
//!   committed — no Merkle ledger needed;
//! - the manual executor ([`TaskSystem::manual`]), whose jobs (serialise, persist, retention)
//!   run only when a step says so, in seeded order;
//! - [`SimFs`]: injected faults (`EIO`, `ENOSPC`, short writes, … on the store's calls) and
//!   power losses, now or a few calls into a job; the log survives up to its commit index (what
//!   consensus made durable), everything unsynced on the disk is decided by the seed.
//!
//! After each power loss the driver recovers as a node does: it opens the store, takes
//! [`SnapshotStore::latest`], restores the node from its body with [`CrashNode::restore`],
//! replays the committed log after it, and starts a new Snapshotter over the restored node.
//! It checks, failing the run with a [`CrashFailure`] that names the seed, the step and the
//! replay:
//!
//! - `latest()` succeeds, and returns a snapshot at least as new as the newest one snapseal
//!   reported committed (an acknowledged snapshot survives a power loss);
//! - that snapshot is of a committed index, its evidence entry is in the committed log at the
//!   index its name says, for that snapshot, and its verified receipt carries that entry's term;
//! - its body restores, to a node equal to one rebuilt from the log up to its index (the state
//!   captured there was the node's state at that index);
//! - the restored node plus the committed log after it equals the node before the crash;
//! - along the way: a snapshot is reported committed only once its evidence entry is committed
//!   (statement mode's gate), and no generation fails unless a fault was injected.
//! - over a chunked store ([`CrashTest::with_chunked`]), before `latest()`: every retained
//!   committed snapshot reads back whole, each chunk verified, so none names a chunk the store
//!   lost (to a crash in a pack write or a retention sweep, a rollback, or a sweep that missed a
//!   chunk shared with another generation).
//!
//! The run ends by clearing the faults, finishing every pending generation, and one last power
//! loss and recovery. The Snapshotter, store and executor settings vary with the seed (interval,
//! `max_pending`, `keep_last`, compression unless chunked, bodies spilled to disk or kept in
//! memory).
//!
//! ```
//! use std::io::{self, Read, Write};
//! use std::sync::{Arc, Mutex};
//! use snapseal_actors::{CaptureError, StateSource, StateView};
//! use snapseal_sim::crash::{CrashNode, CrashTest};
//!
//! /// The node's state: a running total, shared with the source snapseal captures from.
//! #[derive(Default)]
//! struct Total(Arc<Mutex<u64>>);
//!
//! impl CrashNode for Total {
//!     fn apply(&mut self, _idx: u64, write: u64) {
//!         *self.0.lock().unwrap() += write % 100;
//!     }
//!     fn state_source(&self) -> Arc<dyn StateSource> {
//!         Arc::new(Source { live: Arc::clone(&self.0), kept: Mutex::default() })
//!     }
//!     fn restore(body: &mut dyn Read) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
//!         let mut bytes = [0; 8];
//!         body.read_exact(&mut bytes)?;
//!         Ok(Total(Arc::new(Mutex::new(u64::from_le_bytes(bytes)))))
//!     }
//! }
//! # impl PartialEq for Total {
//! #     fn eq(&self, other: &Self) -> bool { *self.0.lock().unwrap() == *other.0.lock().unwrap() }
//! # }
//! # impl std::fmt::Debug for Total {
//! #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//! #         write!(f, "Total({})", self.0.lock().unwrap())
//! #     }
//! # }
//!
//! /// Keeps the value captured at each point until snapseal releases it: a rollback can make
//! /// snapseal capture the same point again after the total moved on.
//! struct Source { live: Arc<Mutex<u64>>, kept: Mutex<Vec<(u64, u64)>> }
//!
//! impl StateSource for Source {
//!     fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
//!         let mut kept = self.kept.lock().unwrap();
//!         let value = match kept.iter().find(|(at, _)| *at == idx) {
//!             Some(&(_, value)) => value,
//!             None => {
//!                 let value = *self.live.lock().unwrap(); // the live state is at `idx` now
//!                 kept.push((idx, value));
//!                 value
//!             }
//!         };
//!         Ok(Box::new(Frozen(value)))
//!     }
//!     fn release(&self, idx: u64) {
//!         self.kept.lock().unwrap().retain(|(at, _)| *at != idx);
//!     }
//! }
//!
//! struct Frozen(u64);
//! impl StateView for Frozen {
//!     fn write_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
//!         out.write_all(&self.0.to_le_bytes())
//!     }
//! }
//!
//! for seed in [1, 2, 3] {
//!     let report = CrashTest::<Total>::new(seed).run(150).unwrap_or_else(|e| panic!("{e}"));
//!     assert!(report.crashes > 0);
//! }
//! ```
//!
//! The repository's `examples/seeded_crash.rs` is a fuller node (a map of accounts) with a
//! seed-list test.
//!
//! [`Snapshotter`]: snapseal_actors::Snapshotter
//! [`Snapshotter::record_committable`]: snapseal_actors::Snapshotter::record_committable
//! [`Snapshotter::with_statement_key`]: snapseal_actors::Snapshotter::with_statement_key
//! [`SnapshotStore`]: snapseal_persist::SnapshotStore
//! [`SnapshotStore::latest`]: snapseal_persist::SnapshotStore::latest
//! [`SimFs`]: snapseal_persist::fs::SimFs
//! [`TaskSystem::manual`]: snapseal_engine::TaskSystem::manual

mod chunks;
mod node;
mod outcome;
mod run;

use std::marker::PhantomData;

pub use node::CrashNode;
pub use outcome::{CrashFailure, CrashReport};

/// A seeded crash run of an embedder's node `N` (see the module doc).
pub struct CrashTest<N: CrashNode> {
    seed: u64,
    faults: bool,
    chunked: bool,
    node: PhantomData<fn() -> N>,
}

impl<N: CrashNode> std::fmt::Debug for CrashTest<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrashTest")
            .field("seed", &self.seed)
            .field("faults", &self.faults)
            .field("chunked", &self.chunked)
            .finish()
    }
}

impl<N: CrashNode> CrashTest<N> {
    /// A run of `N` from the empty state; every choice (operations, settings, executor order,
    /// faults, what a power loss keeps, the node's key) derives from `seed`.
    pub fn new(seed: u64) -> Self {
        CrashTest {
            seed,
            faults: true,
            chunked: false,
            node: PhantomData,
        }
    }

    /// Without `faults`, no filesystem fault is injected (power losses still happen); on by
    /// default.
    pub fn with_faults(mut self, faults: bool) -> Self {
        self.faults = faults;
        self
    }

    /// With `chunked`, the store is chunked ([`StoreOptions::chunked`]: bodies cut into
    /// content-defined chunks kept in pack files, consecutive snapshots sharing the chunks that
    /// did not change; no compression), and every recovery also reads back every retained
    /// committed snapshot whole, each chunk verified against its hash, before `latest()`: no
    /// snapshot the store keeps may name a chunk it lost (a crash in a pack write, a retention
    /// sweep, a rollback's dropped generation). Off by default. The state should span several
    /// chunks (tens of KiB at least) for the chunk store to see sharing.
    ///
    /// [`StoreOptions::chunked`]: snapseal_persist::StoreOptions::chunked
    pub fn with_chunked(mut self, chunked: bool) -> Self {
        self.chunked = chunked;
        self
    }

    /// Runs `steps` seeded steps, then settles (faults cleared, every pending generation
    /// finished, one last power loss and recovery). Returns what the run did, or the first
    /// broken promise.
    pub fn run(self, steps: usize) -> Result<CrashReport, CrashFailure> {
        run::Run::<N>::start(self.seed, self.faults, self.chunked, steps)?.run()
    }
}
