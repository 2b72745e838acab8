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
//! crates:
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
//! Features: `actix` turns on `actors::actor`, the actix actor facade (off by default, so a
//! node that does not use actix does not build it).
#![deny(missing_docs)]

pub use snapseal_actors as actors;
pub use snapseal_engine as engine;
pub use snapseal_persist as persist;

pub use snapseal_actors::{
    CaptureError, CloseMode, CommittedSnapshot, Events, EvidenceError, EvidenceSink, FrozenChunk,
    Hash, InclusionProof, ProofSource, SignedRoot, SnapshotEvent, Snapshotter, SnapshotterConfig,
    StateSource, StateView,
};
pub use snapseal_engine::{EngineConfig, TaskSystem};
pub use snapseal_persist::fs::RealFs;
pub use snapseal_persist::receipt::Ed25519Verifier;
pub use snapseal_persist::{SnapshotFile, SnapshotStore, StoreOptions, VerifyingKey};

/// The README's code, compiled and run as doctests (so the quick start cannot rot).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
