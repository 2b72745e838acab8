//! snapseal: ordered, crash-safe snapshot persistence for replicated service nodes.
//!
//! This facade re-exports the three crates — [`engine`] (the task system), [`persist`] (files,
//! receipts, the store) and [`actors`] (the Snapshotter pipeline) — and adds the reference
//! [`ledger`] and simulated [`node`] the demo, tests and fuzzers drive it with.
#![deny(missing_docs)]

pub mod bench;
pub mod harness;
pub mod ledger;
pub mod node;

pub use snapseal_actors as actors;
pub use snapseal_engine as engine;
pub use snapseal_persist as persist;

pub use snapseal_actors::{
    CommittedSnapshot, EvidenceSink, ProofSource, SnapshotEvent, Snapshotter, SnapshotterConfig,
    StateSource, StateView,
};
pub use snapseal_engine::TaskSystem;
pub use snapseal_persist::{SnapshotStore, StoreOptions};
