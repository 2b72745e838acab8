//! snapseal-actors: the snapshot pipeline.
//!
//! The [`Snapshotter`] is a plain state machine the node drives from its consensus thread
//! (SPEC §3). Each due commit point becomes a *generation*: an
//! [`OrderedTasks`](snapseal_engine::OrderedTasks) queue on the snapseal engine holding a
//! serialise action and — once the ledger has committed the evidence and a signature covering
//! it — a persist action that writes the `.committed` file through
//! [`snapseal_persist::SnapshotStore`].
//!
//! Ordering guarantees:
//! - a generation's persist action runs after its serialise action (same queue) and only after
//!   the gate held on the consensus thread: serialised, evidence at `e`, a signature at `s > e`
//!   with its tree, and commit index `>= s` — or, in statement mode
//!   ([`Snapshotter::with_statement_key`], for a log without a Merkle tree), serialised,
//!   evidence at `e` and commit index `>= e`;
//! - a generation is persisted at most once; a rolled-back one is cancelled and leaves no file;
//! - generations are independent queues, so a slow one never delays another's actions.
//!
//! # The node's state: capture and release
//!
//! When [`Snapshotter::record_committable`] returns `true` for `idx`, the node keeps its state
//! as of `idx`. [`StateSource::capture`] is called (on the consensus thread) once the commit
//! index reaches `idx` — and may be called *again* for the same `idx` when a rollback drops its
//! generation but keeps `idx`. [`StateSource::release`] is called exactly once per such point,
//! when the Snapshotter will never capture it again (skipped, rolled back, or captured and its
//! generation finished); that is where the node drops the version it kept.
//!
//! # Events
//!
//! Outcomes (`Committed`, `Failed`) and notices (`Dropped`, `Skipped`) reach the node two ways:
//! - [`Snapshotter::events`] returns an [`Events`] receiver over a bounded queue. When it is
//!   full the oldest `Skipped`/`Dropped` events make room first; outcomes are removed only
//!   from a queue holding nothing else. Removed events are never lost silently: the next
//!   receive returns [`SnapshotEvent::Overflowed`] with their counts.
//! - [`Snapshotter::on_event`] hooks see every event, on the thread that produced it, with no
//!   queue in between — for forwarding into an async channel. They must not block.
//!
//! # Closing
//!
//! [`Snapshotter::close`] ends the pipeline: [`CloseMode::Drain`] lets generations whose gate
//! already held finish and cancels the rest, [`CloseMode::Cancel`] cancels all (a serialisation
//! in progress stops at its next write). Either way it waits for running actions, releases
//! every kept point, closes the event queue and drops its store handle — so once the caller
//! drops its own `Arc<SnapshotStore>`, the directory lock is free. Dropping a Snapshotter is a
//! `Cancel` close.
//!
//! # actix
//!
//! With the `actix` feature, `actor::SnapshotterActor` is an actix facade; actix is used
//! nowhere else, and without the feature this crate does not depend on actix or tokio.
#![deny(missing_docs)]

mod actions;
#[cfg(feature = "actix")]
pub mod actor;
mod config;
mod error;
mod events;
mod generation;
mod node;
mod points;
mod snapshotter;

pub use actions::GenerationError;
pub use config::{ConfigError, SnapshotterConfig, DEFAULT_SPILL_THRESHOLD};
pub use error::{Error, EvidenceError};
pub use events::{CommittedSnapshot, Events, SnapshotCounters, SnapshotEvent};
pub use node::{CaptureError, EvidenceSink, ProofSource, StateSource, StateView};
/// What a Merkle ledger gives for a snapshot: the signature over its root, as
/// [`Snapshotter::record_signature`] takes it, and the evidence tx's inclusion proof, as a
/// [`ProofSource`] returns it.
pub use snapseal_persist::receipt::{InclusionProof, SignedRoot};
/// A frozen piece of a serialised state, as [`StateView::frozen_chunks`] hands it out.
pub use snapseal_persist::FrozenChunk;
/// The digest type of snapshot bodies and ledger entries (BLAKE3, 32 bytes).
pub use snapseal_persist::Hash;
pub use snapshotter::{CloseMode, Snapshotter};

/// What tests and the simulator inspect beyond the API a node uses (feature `internals`; no
/// part of the promised API, it may change in any release).
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::snapshotter::GenerationInfo;
}
