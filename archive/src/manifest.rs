//! The manifest: the archive's first entry.

use serde::{Deserialize, Serialize};

/// The manifest's format tag.
pub const FORMAT: &str = "snapseal-archive v1";

/// How much an archive holds; each level holds everything the one before does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The newest snapshot that verifies and the public keys: enough to start a node.
    Operational,
    /// Operational plus every ledger chunk from the snapshot to the commit index.
    Replay,
    /// Every retained snapshot that verifies and every chunk available; gaps listed.
    Archival,
    /// Archival plus every other regular file of the snapshot and ledger directories
    /// (quarantined and pending files, the open chunk, logs), under `debug/`, for a human to
    /// look at; never imported.
    Debug,
}

impl Level {
    /// The level's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Operational => "operational",
            Level::Replay => "replay",
            Level::Archival => "archival",
            Level::Debug => "debug",
        }
    }
}

/// What an artifact is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// A public key (32 raw Ed25519 bytes) under `keys/`.
    Key,
    /// A committed snapshot file under `snapshots/`.
    Snapshot,
    /// A sealed ledger chunk under `ledger/`.
    Ledger,
    /// Any other file, under `debug/` (debug level): exported as found, never imported.
    Debug,
}

/// One archived file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Path inside the archive.
    pub path: String,
    /// What it is.
    pub kind: ArtifactKind,
    /// Size in bytes.
    pub len: u64,
    /// BLAKE3 of its bytes, hex.
    pub blake3: String,
}

/// A range of ledger indices the archive does not hold (archival level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// First missing index.
    pub from: u64,
    /// Last missing index.
    pub to: u64,
}

/// The manifest: level, the newest snapshot and commit index it was cut at, every artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The level the archive was exported at.
    pub level: Level,
    /// Index of the newest snapshot (the one a node starts from).
    pub snapshot_idx: u64,
    /// The highest ledger index the source held sealed when exported.
    pub commit_idx: u64,
    /// Every artifact, in archive order.
    pub artifacts: Vec<Artifact>,
    /// Ledger ranges between 1 and `commit_idx` the archive does not hold.
    pub missing: Vec<Missing>,
}

/// Largest manifest read on import.
pub(crate) const MAX_MANIFEST: u64 = 64 << 20;
/// The manifest's path in the archive.
pub(crate) const MANIFEST_PATH: &str = "MANIFEST.json";
