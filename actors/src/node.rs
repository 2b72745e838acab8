//! What the embedding node provides: its state, its ledger's evidence txs and proofs.
//!
//! These traits are the whole contract between snapseal and a node. The node calls the
//! [`Snapshotter`](crate::Snapshotter) from its consensus thread; snapseal calls these traits
//! back — `capture` on the consensus thread (so it must be cheap), the rest on worker threads.

use std::io;

use snapseal_persist::Hash;

/// A node's state machine, able to hand out frozen views of itself.
pub trait StateSource: Send + Sync {
    /// A frozen view of the state as of ledger index `idx`.
    ///
    /// Called on the consensus thread inside [`Snapshotter::commit`](crate::Snapshotter::commit),
    /// so it must be cheap (take a reference-counted version, don't copy); the expensive
    /// streaming happens later in [`StateView::write_to`] on a worker.
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError>;
}

/// A frozen, self-contained view of the state at one index.
pub trait StateView: Send {
    /// Stream the serialised state into `out`. Called once, on a worker thread. Write in
    /// whatever chunk sizes are natural; snapseal hashes (and optionally compresses) as it goes
    /// and never holds the body twice.
    fn write_to(&mut self, out: &mut dyn io::Write) -> io::Result<()>;
}

/// The node could not produce a view at the requested index.
#[derive(Debug, thiserror::Error)]
#[error("cannot capture state at index {idx}: {reason}")]
pub struct CaptureError {
    /// The index asked for.
    pub idx: u64,
    /// Why not.
    pub reason: String,
}

/// Where a finished serialisation is announced so the node appends its evidence tx.
pub trait EvidenceSink: Send + Sync {
    /// The snapshot at `snapshot_idx` has body digest `digest`: append an evidence tx carrying
    /// it to the ledger, then call
    /// [`Snapshotter::record_evidence`](crate::Snapshotter::record_evidence) from the consensus
    /// thread once it is appended. Called on a worker thread: hand it to the consensus thread,
    /// don't append from here.
    fn append_evidence(&self, snapshot_idx: u64, digest: Hash);
}

/// An inclusion proof of one ledger entry in the tree a signature covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// Digest of the evidence tx itself (the leaf's `tx_digest`).
    pub tx_digest: Hash,
    /// Audit path from the leaf up to the signed root (RFC 6962 order).
    pub path: Vec<Hash>,
}

/// The node's Merkle tree (or a frozen copy of it) as of one signature.
pub trait ProofSource: Send + Sync {
    /// The proof that the tx at `evidence_idx` is in the tree signed at `sig_idx` (which covers
    /// txs `1 ..= sig_idx - 1`). Called on a worker thread by the persist action.
    fn inclusion_proof(&self, evidence_idx: u64, sig_idx: u64) -> Result<InclusionProof, String>;
}
