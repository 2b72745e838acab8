//! A node's Merkle-tree ledger, as small as it gets, on the library's RFC 9162 tree
//! (`snapseal::persist::receipt::MerkleTree`): what a CCF-style node keeps to hand snapseal its
//! signatures and inclusion proofs. Shared by the examples (`#[path]`); not an example itself.
//!
//! The index mapping (`ProofSource::inclusion_proof`, `MerkleTree`): ledger indices start at 1
//! and leaves at 0, so tx `i` is leaf `i - 1`; the signature tx at `s` signs the tree of txs
//! `1 ..= s - 1`; the evidence tx at `e` is proven under it by `tree.proof(e - 1, s - 1)`.
//! These examples never roll back; a node whose log is cut back to `idx` also cuts its tree
//! (`MerkleTree::truncate(idx)`) and tells its Snapshotter (`rollback(idx)`).

use std::sync::Arc;

use parking_lot::RwLock;
use snapseal::persist::receipt::{leaf_hash, sign_root, MerkleTree};
use snapseal::persist::{Hash, SigningKey};
use snapseal::{InclusionProof, ProofSource, SignedRoot, VerifyingKey};

/// The ledger: its signing key, and its txs' tree and digests behind one lock, shared with the
/// proof sources handed to snapseal (the tree only grows, so proofs for every signature so far
/// stay available from the one tree).
pub(crate) struct MerkleLog {
    key: SigningKey,
    txs: Arc<RwLock<Txs>>,
}

#[derive(Default)]
struct Txs {
    tree: MerkleTree,
    /// Tx `i`'s digest at `i - 1`.
    digests: Vec<Hash>,
}

impl MerkleLog {
    /// An empty ledger signing with `key`.
    pub(crate) fn new(key: SigningKey) -> Self {
        MerkleLog {
            key,
            txs: Arc::default(),
        }
    }

    /// The key readers trust: the one this ledger signs its roots with.
    pub(crate) fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Index of the last tx (0 for an empty ledger).
    pub(crate) fn last_idx(&self) -> u64 {
        self.txs.read().tree.len()
    }

    /// Appends a client tx; returns its index.
    pub(crate) fn append_write(&self, payload: &[u8]) -> u64 {
        self.append(payload, [0; 32])
    }

    /// Appends the evidence tx recording `claims_digest`, the snapshot at `snapshot_idx`'s
    /// claims digest (its leaf carries it); returns its index.
    pub(crate) fn append_evidence(&self, snapshot_idx: u64, claims_digest: Hash) -> u64 {
        let payload = [b"evidence".as_slice(), &snapshot_idx.to_le_bytes()].concat();
        self.append(&payload, claims_digest)
    }

    /// Appends a signature tx, which signs the root of every tx before it; returns what it
    /// signed, as `Snapshotter::record_signature` takes it.
    pub(crate) fn append_signature(&self) -> SignedRoot {
        let mut txs = self.txs.write();
        let before = txs.tree.len();
        let root = txs
            .tree
            .root(before)
            .expect("a tree has a root at its own size");
        let signed = sign_root(&self.key, before + 1, &root);
        // The signature tx is a leaf like any other.
        txs.push(&signed.signature, [0; 32]);
        signed
    }

    /// The proof source for the signatures so far, as `Snapshotter::record_tree` takes it.
    pub(crate) fn proofs(&self) -> Arc<dyn ProofSource> {
        Arc::new(Proofs(Arc::clone(&self.txs)))
    }

    fn append(&self, payload: &[u8], claims_digest: Hash) -> u64 {
        self.txs.write().push(payload, claims_digest)
    }
}

impl Txs {
    /// Appends a tx whose digest is BLAKE3 of `payload`; returns its index.
    fn push(&mut self, payload: &[u8], claims_digest: Hash) -> u64 {
        let digest = *blake3::hash(payload).as_bytes();
        self.tree.push(leaf_hash(&digest, &claims_digest));
        self.digests.push(digest);
        self.tree.len()
    }
}

/// Inclusion proofs out of the shared tree.
struct Proofs(Arc<RwLock<Txs>>);

impl ProofSource for Proofs {
    fn inclusion_proof(&self, evidence_idx: u64, sig_idx: u64) -> Result<InclusionProof, String> {
        let txs = self.0.read();
        // Tx `evidence_idx` is leaf `evidence_idx - 1`; the signature at `sig_idx` signed the
        // tree of the `sig_idx - 1` txs before it.
        let (leaf, size) = (evidence_idx.wrapping_sub(1), sig_idx.wrapping_sub(1));
        let path = txs
            .tree
            .proof(leaf, size)
            .ok_or_else(|| format!("no tx {evidence_idx} under a signature at {sig_idx}"))?;
        let tx_digest = usize::try_from(leaf)
            .ok()
            .and_then(|at| txs.digests.get(at))
            .ok_or_else(|| format!("no tx {evidence_idx}"))?;
        Ok(InclusionProof {
            tx_digest: *tx_digest,
            path,
        })
    }
}
