//! What the embedding node provides: its state, its ledger's evidence txs and proofs.
//!
//! These traits are the whole contract between snapseal and a node. The node calls the
//! [`Snapshotter`](crate::Snapshotter) from its consensus thread; snapseal calls these traits
//! back — `capture` and `release` on the consensus thread (so they must be cheap), the rest on
//! worker threads.

use std::io;

use snapseal_persist::receipt::InclusionProof;
use snapseal_persist::{FrozenChunk, Hash};

/// A node's state machine, able to hand out frozen views of itself.
///
/// The life of a snapshot point `idx`, as the node sees it:
/// 1. [`Snapshotter::record_committable(idx)`](crate::Snapshotter::record_committable) returns
///    `true`: the node keeps (or can rebuild) its state as of `idx`;
/// 2. `capture(idx)` is called zero or more times (see its rules);
/// 3. `release(idx)` is called exactly once; after it, `capture(idx)` is never called again for
///    this point, and the node may drop what it kept.
///
/// A node that keeps a version per point until `release` therefore keeps at most the points
/// the Snapshotter still tracks (bounded by `max_pending` plus the points not yet committed).
pub trait StateSource: Send + Sync {
    /// A frozen view of the state as of ledger index `idx`.
    ///
    /// Called on the consensus thread inside [`Snapshotter::commit`](crate::Snapshotter::commit),
    /// so it must be cheap (take a reference-counted version, don't copy); the expensive
    /// streaming happens later in [`StateView::write_to`] on a worker.
    ///
    /// Only for an index `record_committable` accepted, once the commit index reached it. It
    /// **may be called again for the same `idx`**: when a rollback drops the generation at
    /// `idx` but keeps `idx` itself, the point is re-armed and captured anew at a later commit.
    /// So `capture` must not consume what the node kept for `idx`; drop that in
    /// [`release`](Self::release). It is never called for a point that was skipped
    /// (`max_pending`), rolled back, or already released.
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError>;

    /// The Snapshotter is done with the point at `idx`: it will never call `capture(idx)` for
    /// it again. Called once per point `record_committable` accepted, on the consensus thread
    /// (inside a [`Snapshotter`](crate::Snapshotter) call or its `close`), after the point was
    /// skipped, rolled back, or captured and its generation finished (committed, failed, or
    /// dropped without re-arming). Views already handed out stay valid. Default: nothing.
    fn release(&self, idx: u64) {
        let _ = idx;
    }
}

/// A frozen, self-contained view of the state at one index.
pub trait StateView: Send {
    /// Stream the serialised state into `out`. Called once, on a worker thread. Write in
    /// whatever chunk sizes are natural; snapseal hashes (and optionally compresses) as it goes
    /// and never holds the body twice.
    fn write_to(&mut self, out: &mut dyn io::Write) -> io::Result<()>;

    /// The zero-copy path: the serialised state as frozen chunks, in order, that nobody
    /// changes while snapseal holds them. Returning `Some` (the default is `None`) when the
    /// Snapshotter does not compress means snapseal hashes the chunks where they are (large
    /// ones on all cores) and the persist action writes the file straight from them: the body
    /// is never copied, and takes nothing from the in-memory budget, because the memory is
    /// the node's. The chunks are dropped once the snapshot is committed or dropped.
    /// [`write_to`](Self::write_to) is then not called; with compression on, this method is
    /// not called and `write_to` is.
    ///
    /// Over a chunked store (`StoreOptions::chunked`) the frozen chunks' boundaries are chunk
    /// boundaries, and the store remembers each chunk's cut, holding a clone of it, until the
    /// next snapshot: hand out the same `Arc` for a piece that did not change, and it is
    /// neither read nor written again; only the pieces you replaced are cut, hashed and
    /// stored. A chunk is immutable (`FrozenChunk`): never change its bytes while any clone
    /// lives. The previous snapshot's chunks thus live one snapshot longer. Pieces of at
    /// least 1 MiB keep the chunk list short; pieces under 16 KiB (but the last) make the
    /// body stream through the chunker as if written.
    fn frozen_chunks(&mut self) -> Option<Vec<FrozenChunk>> {
        None
    }
}

/// The node could not produce a view at the requested index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot capture state at index {idx}: {reason}")]
pub struct CaptureError {
    /// The index asked for.
    pub idx: u64,
    /// Why not.
    pub reason: String,
}

impl CaptureError {
    /// The error for `idx`, explained by `reason`.
    pub fn new(idx: u64, reason: impl Into<String>) -> Self {
        CaptureError {
            idx,
            reason: reason.into(),
        }
    }
}

/// Where a finished serialisation is announced so the node appends its evidence tx.
pub trait EvidenceSink: Send + Sync {
    /// The snapshot at `snapshot_idx` has claims digest `digest`: append an evidence tx carrying
    /// it to the ledger (its Merkle leaf's claims digest is `digest`), then call
    /// [`Snapshotter::record_evidence`](crate::Snapshotter::record_evidence) from the consensus
    /// thread once it is appended. Called on a worker thread: hand it to the consensus thread,
    /// don't append from here.
    ///
    /// `digest` is not the bare body digest: it is the snapshot's claims digest, a
    /// domain-separated BLAKE3 over `snapshot_idx`, the header flags, the stored and decoded
    /// body lengths and the body digest (`snapseal_persist::Claims`, docs/FORMAT.md
    /// §3). Treat it as opaque and hand the same value back to `record_evidence`. Because the
    /// ledger records it, a committed file whose header is later edited (say, an old snapshot
    /// relabelled with a newer `idx`) no longer matches its receipt and fails verification.
    fn append_evidence(&self, snapshot_idx: u64, digest: Hash);
}

/// The node's Merkle tree (or a frozen copy of it) as of one signature: what a CCF-style node
/// gives the Snapshotter in Merkle mode (statement mode needs none). The tree is
/// [`MerkleTree`](snapseal_persist::receipt::MerkleTree), the RFC 9162 tree every Merkle
/// receipt is checked against; its docs give the whole ledger mapping.
///
/// A node whose tree only grows (between rollbacks) can share one tree behind a lock: proofs
/// of any earlier size stay available.
///
/// ```
/// use std::sync::{Arc, RwLock};
/// use snapseal_actors::{Hash, InclusionProof, ProofSource};
/// use snapseal_persist::receipt::MerkleTree;
///
/// /// The ledger's tree (a leaf per tx) and its txs' digests (tx `i` at `i - 1`).
/// struct Ledger {
///     tree: MerkleTree,
///     tx_digests: Vec<Hash>,
/// }
/// struct Proofs(Arc<RwLock<Ledger>>);
///
/// impl ProofSource for Proofs {
///     fn inclusion_proof(&self, evidence: u64, sig: u64) -> Result<InclusionProof, String> {
///         let ledger = self.0.read().map_err(|_| "ledger lock poisoned")?;
///         // Tx `evidence` is leaf `evidence - 1`; the signature at `sig` signs `sig - 1` leaves.
///         let (leaf, size) = (evidence.wrapping_sub(1), sig.wrapping_sub(1));
///         let path = ledger.tree.proof(leaf, size).ok_or("no such tx under that signature")?;
///         let tx_digest = usize::try_from(leaf)
///             .ok()
///             .and_then(|at| ledger.tx_digests.get(at))
///             .ok_or("no such tx")?;
///         Ok(InclusionProof { tx_digest: *tx_digest, path })
///     }
/// }
/// # let mut ledger = Ledger { tree: MerkleTree::new(), tx_digests: Vec::new() };
/// # for i in 1..=4u8 {
/// #     ledger.tx_digests.push([i; 32]);
/// #     ledger.tree.push(snapseal_persist::receipt::leaf_hash(&[i; 32], &[0; 32]));
/// # }
/// # let proofs = Proofs(Arc::new(RwLock::new(ledger)));
/// # assert_eq!(proofs.inclusion_proof(2, 5).map(|p| p.tx_digest), Ok([2; 32]));
/// # assert!(proofs.inclusion_proof(5, 5).is_err() && proofs.inclusion_proof(0, 5).is_err());
/// ```
pub trait ProofSource: Send + Sync {
    /// The proof that the tx at `evidence_idx` is in the tree signed at `sig_idx`
    /// (`evidence_idx < sig_idx`). Called on a worker thread by the persist action.
    ///
    /// The index mapping: ledger indices start at 1 and leaves at 0, and the signature tx at
    /// `sig_idx` signs the tree of the txs before it (`1 ..= sig_idx - 1`). So the evidence tx
    /// is leaf `evidence_idx - 1` of a tree of `sig_idx - 1` leaves: with a
    /// [`MerkleTree`](snapseal_persist::receipt::MerkleTree) holding one leaf per tx,
    /// `path = tree.proof(evidence_idx - 1, sig_idx - 1)`, and `tx_digest` is the evidence
    /// tx's own digest (its leaf is `leaf_hash(tx_digest, claims_digest)`). snapseal does not
    /// check the proof before writing: a wrong one makes a file that fails verification.
    fn inclusion_proof(&self, evidence_idx: u64, sig_idx: u64) -> Result<InclusionProof, String>;
}
