//! snapseal: ordered, crash-safe snapshot persistence for replicated service nodes.
//!
//! This facade re-exports the three library crates — [`engine`] (the task system), [`persist`]
//! (files, receipts, the store) and [`actors`] (the Snapshotter pipeline) — and the items a
//! node needs most at its root. It has no other dependencies.
#![deny(missing_docs)]

pub use snapseal_actors as actors;
pub use snapseal_engine as engine;
pub use snapseal_persist as persist;

pub use snapseal_actors::{
    CommittedSnapshot, EvidenceSink, ProofSource, SnapshotEvent, Snapshotter, SnapshotterConfig,
    StateSource, StateView,
};
pub use snapseal_engine::TaskSystem;
pub use snapseal_persist::{SnapshotStore, StoreOptions};
