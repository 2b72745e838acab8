//! The reference ledger: an append-only list of txs with the SPEC §4 Merkle tree and Ed25519
//! signature txs.
//!
//! It is what the demo, the tests and the fuzzers drive a [`Snapshotter`](crate::Snapshotter)
//! from, and it shows an embedding node the exact shape snapseal expects: evidence txs whose
//! claims digest is the snapshot digest, signature txs signing the root over every earlier tx,
//! and a [`ProofSource`] per signature.

use std::sync::Arc;

use ed25519_dalek::{SigningKey, VerifyingKey};
use parking_lot::RwLock;
use snapseal_actors::{InclusionProof, ProofSource};
use snapseal_persist::receipt::{leaf_hash, sign_root, Hash, MerkleTree, SignedRoot};

/// What a ledger entry does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxKind {
    /// A key-value write applied to the node's state.
    Write {
        /// Key.
        key: u64,
        /// New value.
        value: Arc<[u8]>,
    },
    /// Evidence of a snapshot: its index and body digest.
    Evidence {
        /// Snapshot index.
        snapshot_idx: u64,
        /// BLAKE3 of the snapshot body.
        digest: Hash,
    },
    /// A signature over the root of every earlier tx.
    Signature(SignedRoot),
}

impl TxKind {
    /// BLAKE3 of the tx's canonical encoding (tag byte, then little-endian fields).
    pub fn digest(&self, idx: u64) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&idx.to_le_bytes());
        match self {
            TxKind::Write { key, value } => {
                h.update(&[0]).update(&key.to_le_bytes());
                h.update(&(value.len() as u64).to_le_bytes()).update(value);
            }
            TxKind::Evidence {
                snapshot_idx,
                digest,
            } => {
                h.update(&[1])
                    .update(&snapshot_idx.to_le_bytes())
                    .update(digest);
            }
            TxKind::Signature(s) => {
                h.update(&[2])
                    .update(&s.sig_idx.to_le_bytes())
                    .update(&s.root);
                h.update(&s.key_id).update(&s.signature);
            }
        }
        *h.finalize().as_bytes()
    }

    /// The leaf's claims digest: the snapshot digest for evidence, zeros otherwise (SPEC §4).
    pub fn claims_digest(&self) -> Hash {
        match self {
            TxKind::Evidence { digest, .. } => *digest,
            _ => [0; 32],
        }
    }
}

/// Txs and tree, behind one lock so a proof never sees a half-appended tx.
#[derive(Debug, Default)]
struct Entries {
    txs: Vec<TxKind>,
    tx_digests: Vec<Hash>,
    tree: MerkleTree,
}

/// The append-only ledger (index 1 is the first tx). Cloning shares it.
#[derive(Clone, Debug)]
pub struct Ledger {
    entries: Arc<RwLock<Entries>>,
    key: Arc<SigningKey>,
}

impl Ledger {
    /// An empty ledger whose signature txs are signed with `key`.
    pub fn new(key: SigningKey) -> Self {
        Ledger {
            entries: Arc::default(),
            key: Arc::new(key),
        }
    }

    /// A ledger with a key derived from `seed` (deterministic, for demos and tests).
    pub fn from_seed(seed: u64) -> Self {
        let bytes = *blake3::Hasher::new_derive_key("snapseal demo node key v1")
            .update(&seed.to_le_bytes())
            .finalize()
            .as_bytes();
        Ledger::new(SigningKey::from_bytes(&bytes))
    }

    /// The public key that verifies this ledger's signatures.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Index of the last tx (0 when empty).
    pub fn last_idx(&self) -> u64 {
        self.entries.read().txs.len() as u64
    }

    /// The tx at `idx`.
    pub fn tx(&self, idx: u64) -> Option<TxKind> {
        let i = usize::try_from(idx.checked_sub(1)?).ok()?;
        self.entries.read().txs.get(i).cloned()
    }

    /// Append `kind`; returns its index.
    pub fn append(&self, kind: TxKind) -> u64 {
        let mut e = self.entries.write();
        let idx = e.txs.len() as u64 + 1;
        let digest = kind.digest(idx);
        e.tree.push(leaf_hash(&digest, &kind.claims_digest()));
        e.tx_digests.push(digest);
        e.txs.push(kind);
        idx
    }

    /// Append a signature tx signing the root over every tx before it; returns what it signed.
    pub fn append_signature(&self) -> SignedRoot {
        let mut e = self.entries.write();
        let size = e.txs.len() as u64;
        let sig_idx = size + 1;
        // `size` is the tree's own length, so the root always exists.
        let root = e
            .tree
            .root(size)
            .unwrap_or_else(snapseal_persist::receipt::empty_root);
        let signed = sign_root(&self.key, sig_idx, &root);
        let kind = TxKind::Signature(signed.clone());
        let digest = kind.digest(sig_idx);
        e.tree.push(leaf_hash(&digest, &kind.claims_digest()));
        e.tx_digests.push(digest);
        e.txs.push(kind);
        signed
    }

    /// Roll back: keep txs `1 ..= idx`.
    pub fn truncate(&self, idx: u64) {
        let mut e = self.entries.write();
        let keep = usize::try_from(idx).unwrap_or(usize::MAX).min(e.txs.len());
        e.txs.truncate(keep);
        e.tx_digests.truncate(keep);
        e.tree.truncate(keep as u64);
    }

    /// The proof source for the signature at `sig_idx` (valid while the ledger is not rolled
    /// back below `sig_idx`).
    pub fn proofs(&self) -> Arc<dyn ProofSource> {
        Arc::new(LedgerProofs {
            entries: Arc::clone(&self.entries),
        })
    }

    /// Visit the writes among txs `1 ..= idx` in order (for state views). Returns false if the
    /// ledger holds fewer than `idx` txs.
    pub fn for_each_write(&self, idx: u64, mut f: impl FnMut(u64, &Arc<[u8]>)) -> bool {
        let e = self.entries.read();
        let Ok(n) = usize::try_from(idx) else {
            return false;
        };
        let Some(txs) = e.txs.get(..n) else {
            return false;
        };
        for tx in txs {
            if let TxKind::Write { key, value } = tx {
                f(*key, value);
            }
        }
        true
    }
}

/// Inclusion proofs out of the shared ledger tree.
struct LedgerProofs {
    entries: Arc<RwLock<Entries>>,
}

impl ProofSource for LedgerProofs {
    fn inclusion_proof(&self, evidence_idx: u64, sig_idx: u64) -> Result<InclusionProof, String> {
        let e = self.entries.read();
        let (Some(index), Some(size)) = (evidence_idx.checked_sub(1), sig_idx.checked_sub(1))
        else {
            return Err(format!(
                "index 0 has no proof (evidence {evidence_idx}, signature {sig_idx})"
            ));
        };
        let path = e.tree.proof(index, size).ok_or_else(|| {
            format!(
                "no proof of tx {evidence_idx} in a tree of {size} (ledger has {})",
                e.txs.len()
            )
        })?;
        let tx_digest = usize::try_from(index)
            .ok()
            .and_then(|i| e.tx_digests.get(i))
            .copied()
            .ok_or_else(|| format!("tx {evidence_idx} is not in the ledger"))?;
        Ok(InclusionProof { tx_digest, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapseal_persist::receipt::{root_from_proof, verify_signed_root};

    #[test]
    fn signature_signs_the_root_of_every_earlier_tx_and_proofs_reach_it() {
        let ledger = Ledger::from_seed(1);
        for k in 0..20u64 {
            ledger.append(TxKind::Write {
                key: k,
                value: Arc::from(vec![k as u8; 3]),
            });
        }
        let e = ledger.append(TxKind::Evidence {
            snapshot_idx: 20,
            digest: [9; 32],
        });
        let signed = ledger.append_signature();
        assert_eq!(signed.sig_idx, e + 1);
        verify_signed_root(&ledger.verifying_key(), &signed).unwrap();
        let proof = ledger.proofs().inclusion_proof(e, signed.sig_idx).unwrap();
        let leaf = leaf_hash(&proof.tx_digest, &[9; 32]);
        assert_eq!(
            root_from_proof(&leaf, e - 1, signed.sig_idx - 1, &proof.path),
            Some(signed.root)
        );
    }

    #[test]
    fn truncate_rolls_back_txs_and_tree() {
        let ledger = Ledger::from_seed(2);
        for k in 0..5u64 {
            ledger.append(TxKind::Write {
                key: k,
                value: Arc::from(vec![1u8]),
            });
        }
        let before = ledger.append_signature();
        ledger.append(TxKind::Write {
            key: 99,
            value: Arc::from(vec![2u8]),
        });
        ledger.truncate(5);
        assert_eq!(ledger.last_idx(), 5);
        let again = ledger.append_signature();
        assert_eq!(again.root, before.root, "same prefix, same root");
        assert!(
            ledger.proofs().inclusion_proof(3, 8).is_err(),
            "no tree of that size"
        );
    }
}
