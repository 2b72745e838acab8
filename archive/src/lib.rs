//! snapseal-archive: export a node's artifacts into one archive, and import them, at strict
//! levels.
//!
//! - [`Level::Operational`]: the newest snapshot that verifies (its receipt is inside the file)
//!   and the public key(s). Deterministic; never fails on a store with a verifying snapshot.
//! - [`Level::Replay`]: operational plus every sealed ledger chunk from the snapshot's index + 1
//!   to the source's commit index, contiguous. Deterministic; fails naming the missing range.
//! - [`Level::Archival`]: every retained snapshot that verifies and every chunk available, with
//!   the missing ranges listed in the manifest. Never fails for a gap.
//!
//! The container is a tar stream (deterministic headers: mode 0644, mtime 0, no owner names),
//! entries in a fixed order: `MANIFEST.json` first (level, keys, every artifact with its length
//! and BLAKE3, the missing ranges), then `keys/`, `snapshots/`, `ledger/`. Export streams
//! every file through a fixed buffer (two passes: hash, then copy), so memory does not grow
//! with the store. Import ([`import`]) verifies every artifact before it gets a committed name:
//! snapshots through [`SnapshotStore::begin_ingest`](snapseal_persist::SnapshotStore::begin_ingest)
//! (their receipts), chunks through a [`ChunkVerifier`] (their signed roots) and the chain
//! between them; it never overwrites and can be rerun after a crash.
//!
//! The ledger side is a seam: an [`ArtifactSource`] lists and opens sealed chunks; a
//! [`ChunkVerifier`] checks one. The reference ledger (`snapseal-sim`'s disk ledger)
//! implements both.
#![deny(missing_docs)]

mod durable;
mod export;
mod import;
mod manifest;
mod source;

pub use export::{export, ExportError, ExportOptions, ExportReport};
pub use import::{import, ImportError, ImportOptions, ImportReport};
pub use manifest::{Artifact, ArtifactKind, Level, Manifest, Missing, FORMAT};
pub use source::{ArtifactSource, ChunkLinks, ChunkRef, ChunkVerifier, SourceError};

/// Name of the ledger subdirectory inside a snapshot directory.
pub const LEDGER_DIR: &str = "ledger";
