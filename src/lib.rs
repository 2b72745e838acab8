//! snapseal: ordered, crash-safe snapshot persistence for replicated service nodes.
//!
//! A node embeds a [`Snapshotter`] and drives it from its consensus thread (`record_committable`,
//! `commit`, `record_evidence`, `record_signature`, `record_tree`, `rollback`); snapseal
//! serialises frozen views of the state on its own workers, hands each snapshot's claims digest
//! (its index, encoding, lengths and body digest) to the node for its ledger, and writes the `.committed` file only once the ledger has committed that
//! evidence and a signature covering it. After a restart, [`SnapshotStore::latest`] returns the
//! newest snapshot that verifies. The README has a complete walk-through; `docs/SPEC.md` is the
//! contract and `docs/FORMAT.md` the file format.
//!
//! This crate is a facade with no code of its own and no dependency beyond the three library
//! crates (and, with the `tokio` feature, the async edge built on them):
//!
//! - [`engine`] (`snapseal-engine`): the task system — workers, ordered queues, timers and a
//!   deterministic manual executor;
//! - [`persist`] (`snapseal-persist`): snapshot bodies (streamed, hashed on a low-priority
//!   pool, spilled to disk past a memory budget), receipts, the crash-safe writer, the reader
//!   and the store;
//! - [`actors`] (`snapseal-actors`): the Snapshotter state machine, its actions and (feature
//!   `actix`) the actix facade.
//!
//! Their APIs name no other crate's types but the Ed25519 key types (`ed25519-dalek`,
//! re-exported as [`persist::SigningKey`] and [`VerifyingKey`]) and, with the `actix` feature,
//! actix's in `actors::actor` (`.ci/public-api-check` keeps it so).
//!
//! Each item has one path inside its crate's module; the root re-exports, in addition, the
//! items an embedding node names in its own code, so `use snapseal::{…}` is usually enough.
//!
//! Features (all off by default): `actix` turns on `actors::actor`, the actix actor facade (so
//! a node that does not use actix does not build it); `testing` turns on the simulated
//! filesystem for a node's own tests (below); `tokio` turns on `snapseal::tokio` (the
//! snapseal-tokio crate), the async edge for a node on tokio — async open, close and
//! `wait_idle` off the runtime's workers, events as a `Stream` (`examples/tokio_kv.rs`).
//!
//! # A Merkle ledger
//!
//! A CCF-style node whose ledger is a Merkle tree keeps it in [`MerkleTree`] (RFC 9162, the
//! tree snapseal's receipts prove against; [`leaf_hash`] makes its leaves, [`sign_root`]
//! signs a root into the [`SignedRoot`] the node hands to
//! [`Snapshotter::record_signature`]); a node without one uses statement mode
//! ([`Snapshotter::with_statement_key`]). The README's modes section says which to pick.
//!
//! # Testing a node
//!
//! Everything a test needs to run a node's snapshots deterministically is here:
//!
//! - [`TaskSystem::manual`] (no feature): an executor with no threads whose jobs run only when
//!   the test says ([`TaskSystem::run_one`], [`TaskSystem::run_until_idle`]), in an order drawn
//!   from a seed, with a clock that moves only on [`TaskSystem::tick`];
//! - `SimFs` (feature `testing`; never in a production build): an in-memory filesystem
//!   with a power-loss model (`SimFs::crash` keeps what was synced and decides the rest from
//!   its seed) and fault injection (`Fault`, `FaultKind`), to open a [`SnapshotStore`] on
//!   (`SnapshotStore::open(Arc::new(sim.clone()), dir, opts)`);
//! - `snapseal_sim::crash::CrashTest` (the repository's `sim/` crate, a test-only dependency):
//!   a seeded crash test of the node's own state type, `StateSource` and restore over both, with
//!   power losses and the recovery checked; `examples/seeded_crash.rs` is a complete one.
//!
//! The names a node uses are at the root. Wiring, from the store to the first snapshot point
//! (the README goes on to the evidence, the signature and the committed file):
//!
//! ```
//! use std::sync::{mpsc, Arc, Mutex};
//! use std::time::Duration;
//! use snapseal::{
//!     CloseMode, Ed25519Verifier, EngineConfig, EvidenceSink, Hash, RealFs, SnapshotEvent,
//!     SnapshotStore, Snapshotter, SnapshotterConfig, StoreOptions, TaskSystem,
//! };
//! # use snapseal::{CaptureError, StateSource, StateView};
//! # struct State;
//! # impl StateSource for State {
//! #     fn capture(&self, _idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
//! #         Ok(Box::new(State))
//! #     }
//! # }
//! # impl StateView for State {
//! #     fn write_to(&mut self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
//! #         out.write_all(b"the node's state")
//! #     }
//! # }
//!
//! /// Hands each evidence request to the consensus thread, which owns the ledger.
//! struct ToConsensus(Mutex<mpsc::Sender<(u64, Hash)>>);
//! impl EvidenceSink for ToConsensus {
//!     fn append_evidence(&self, snapshot_idx: u64, claims_digest: Hash) {
//!         let _ = self.0.lock().map(|tx| tx.send((snapshot_idx, claims_digest)));
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path(); // e.g. /var/lib/node/snapshots
//! # let ledger_key = snapseal::persist::SigningKey::from_bytes(&[7; 32]).verifying_key();
//! let opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![ledger_key])));
//! let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), dir, opts)?);
//! let tasks = TaskSystem::threaded(EngineConfig::default())?;
//! let (requests, evidence_wanted) = mpsc::channel();
//! let config = SnapshotterConfig { tx_interval: 100, ..SnapshotterConfig::default() };
//! let sink = Arc::new(ToConsensus(Mutex::new(requests)));
//! let mut snap = Snapshotter::new(config, tasks, Arc::clone(&store), Arc::new(State), sink)?;
//!
//! // On the consensus thread, at each signature tx and each commit:
//! assert!(!snap.record_committable(50)); // not due: fewer than 100 txs since the start
//! assert!(snap.record_committable(100));
//! snap.commit(100); // the state at 100 is captured, and serialised on the workers
//! let (snapshot_idx, _claims_digest) = evidence_wanted.recv_timeout(Duration::from_secs(60))?;
//! assert_eq!(snapshot_idx, 100); // the node appends an evidence tx carrying the digest
//!
//! // Shutting down before the ledger proved it: the generation is dropped, nothing written.
//! let events = snap.events();
//! snap.close(CloseMode::Drain);
//! assert!(matches!(events.recv(), Some(SnapshotEvent::Dropped { idx: 100, .. })));
//! assert!(store.latest()?.is_none());
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub use snapseal_actors as actors;
pub use snapseal_engine as engine;
pub use snapseal_persist as persist;
/// The async edge for a node on tokio (feature `tokio`; the snapseal-tokio crate).
#[cfg(feature = "tokio")]
pub use snapseal_tokio as tokio;

pub use snapseal_actors::{
    CaptureError, CloseMode, CommittedSnapshot, Events, EvidenceError, EvidenceSink, FrozenChunk,
    Hash, InclusionProof, ProofSource, SignedRoot, SnapshotEvent, Snapshotter, SnapshotterConfig,
    StateSource, StateView,
};
pub use snapseal_engine::{EngineConfig, TaskSystem};
pub use snapseal_persist::fs::RealFs;
pub use snapseal_persist::receipt::Ed25519Verifier;
pub use snapseal_persist::receipt::{leaf_hash, sign_root, MerkleTree};
pub use snapseal_persist::{SnapshotFile, SnapshotStore, StoreOptions, VerifyingKey};

/// The simulated filesystem for a node's tests (feature `testing`): see "Testing a node" above.
#[cfg(feature = "testing")]
pub use snapseal_persist::fs::{Fault, FaultKind, SimFs};

/// The README's code, compiled and run as doctests (so the quick start cannot rot).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
