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
//!   with its tree, and commit index `>= s`;
//! - a generation is persisted at most once; a rolled-back one is cancelled and leaves no file;
//! - generations are independent queues, so a slow one never delays another's actions.
//!
//! [`actor::SnapshotterActor`] is the actix facade; actix is used nowhere else.
#![deny(missing_docs)]

mod actions;
pub mod actor;
mod body;
mod config;
mod events;
mod generation;
mod node;
mod points;
mod snapshotter;

pub use actions::GenerationError;
pub use body::{BodyBuilder, MemoryBudget, PendingBody, SpillTarget, SPILL_BUFFER};
pub use config::{
    ConfigError, SnapshotterConfig, DEFAULT_SPILL_THRESHOLD, MAX_PENDING_LIMIT, MAX_SPILL_THRESHOLD,
};
pub use events::{CommittedSnapshot, SnapshotCounters, SnapshotEvent};
pub use node::{CaptureError, EvidenceSink, InclusionProof, ProofSource, StateSource, StateView};
pub use snapshotter::{digest_prefix, GenerationInfo, Snapshotter};
