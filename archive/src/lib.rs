//! snapseal-archive: export a node's artifacts into one archive, and import them, at strict
//! levels.
//!
//! - [`Level::Operational`]: the newest snapshot that verifies (its receipt is inside the file)
//!   and the public key(s). Deterministic; never fails on a store with a verifying snapshot.
//! - [`Level::Replay`]: operational plus every sealed ledger chunk from the snapshot's index + 1
//!   to the commit index (at least the index the snapshot's receipt proves), contiguous.
//!   Deterministic; fails naming the missing range.
//! - [`Level::Archival`]: every retained snapshot that verifies and every chunk available, with
//!   the missing ranges listed in the manifest. Never fails for a gap.
//!
//! The container is a tar stream (deterministic headers: mode 0644, mtime 0, no owner names),
//! entries in a fixed order: `MANIFEST.json` first (level, keys, every artifact with its length
//! and BLAKE3, the missing ranges), then `keys/`, `chunks/` (the chunks of chunked snapshots,
//! named by their BLAKE3), `snapshots/`, `ledger/`, `debug/`. The format,
//! the size caps and what import checks in which order are written down for an independent
//! implementer in `docs/ARCHIVE.md`.
//!
//! Export ([`export`]) includes only what an import accepts: every snapshot and chunk is
//! verified, and the chain between them checked, before the manifest is written. Import
//! ([`import`]) verifies everything — each artifact, and the chain between the chunks, the
//! snapshots' receipts and the chunks the directory already holds — before anything gets a
//! committed name; it never overwrites and can be rerun after a crash. [`PendingFile`] writes
//! an archive whole or not at all.
//!
//! Both work in [`Dir`]s: directories opened once by path, every file in them reached by the
//! directory's fd, never through a symbolic link.
//!
//! The ledger side is a seam: an [`ArtifactSource`] lists and reads sealed chunks; a
//! [`ChunkVerifier`] checks one. The reference ledger (`snapseal-ledger`'s disk ledger)
//! implements both.
#![deny(missing_docs)]

mod chain;
mod container;
mod dir;
mod export;
mod import;
mod manifest;
mod pending;
mod snapshot;
mod source;

pub use dir::Dir;
pub use export::{export, ExportError, ExportOptions, ExportReport};
pub use import::{import, ImportError, ImportOptions, ImportReport, Target};
pub use manifest::{
    Artifact, ArtifactKind, Level, Manifest, Missing, FORMAT, KEY_LEN, MANIFEST_PATH, MAX_CHUNK,
    MAX_DEBUG, MAX_MANIFEST, MAX_SNAPSHOT, MAX_SNAPSHOT_CHUNK,
};
pub use pending::{ensure_free, PendingError, PendingFile, Sealed, Stale};
pub use source::{
    ArtifactSource, CheckedChunk, ChunkCheckError, ChunkLinks, ChunkRef, ChunkVerifier, OtherFile,
    SourceError,
};

/// Name of the ledger subdirectory inside a snapshot directory.
pub const LEDGER_DIR: &str = "ledger";
