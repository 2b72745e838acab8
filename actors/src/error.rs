//! The errors a node can act on, and the umbrella [`Error`].

use std::sync::Arc;

use crate::actions::GenerationError;
use crate::config::ConfigError;
use crate::node::CaptureError;

/// Why [`Snapshotter::record_evidence`](crate::Snapshotter::record_evidence) did not record the
/// evidence. The generation is unchanged: it keeps waiting for valid evidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// No pending generation at `snapshot_idx` waits for evidence: it was dropped by a
    /// rollback (evidence the serialise action announced before it — harmless), already has
    /// evidence, finished, or never existed.
    #[error("evidence at {evidence_idx}: no pending generation at snapshot index {snapshot_idx} awaits evidence")]
    UnknownSnapshot {
        /// Evidence tx index.
        evidence_idx: u64,
        /// Snapshot index named by the evidence.
        snapshot_idx: u64,
    },
    /// The evidence tx is not after the snapshot point it proves.
    #[error("evidence at {evidence_idx} is not after its snapshot index {snapshot_idx}")]
    NotAfterSnapshot {
        /// Evidence tx index.
        evidence_idx: u64,
        /// Snapshot index named by the evidence.
        snapshot_idx: u64,
    },
    /// The generation at `snapshot_idx` has no serialised body yet, so the digest cannot come
    /// from it. Expected after a rollback: a dropped generation's announcement arriving after
    /// the point was re-armed and captured anew.
    #[error("evidence at {evidence_idx}: the snapshot at {snapshot_idx} is not serialised yet")]
    NotSerialised {
        /// Evidence tx index.
        evidence_idx: u64,
        /// Snapshot index named by the evidence.
        snapshot_idx: u64,
    },
    /// The digest carried by the evidence is not the serialised body's claims digest.
    #[error("evidence at {evidence_idx}: digest does not match the serialised body of the snapshot at {snapshot_idx}")]
    DigestMismatch {
        /// Evidence tx index.
        evidence_idx: u64,
        /// Snapshot index named by the evidence.
        snapshot_idx: u64,
        /// The serialised body's claims digest.
        expected: [u8; 32],
        /// The digest the evidence carried.
        got: [u8; 32],
    },
}

impl EvidenceError {
    /// The evidence answers an announcement a rollback made stale ([`UnknownSnapshot`] or
    /// [`NotSerialised`]): a node that rolls back should expect these and ignore them. The
    /// others mean the node appended evidence it should not have.
    ///
    /// [`UnknownSnapshot`]: EvidenceError::UnknownSnapshot
    /// [`NotSerialised`]: EvidenceError::NotSerialised
    pub fn is_stale(&self) -> bool {
        matches!(
            self,
            EvidenceError::UnknownSnapshot { .. } | EvidenceError::NotSerialised { .. }
        )
    }
}

/// Any error of this crate, for a node that wants one type.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An invalid [`SnapshotterConfig`](crate::SnapshotterConfig).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Evidence that was not recorded.
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    /// A failed generation.
    #[error(transparent)]
    Generation(#[from] Arc<GenerationError>),
    /// The node could not capture its state.
    #[error(transparent)]
    Capture(#[from] CaptureError),
}
