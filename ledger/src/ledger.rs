//! The reference ledger: an append-only list of txs with the SPEC §4 Merkle tree and Ed25519
//! signature txs.
//!
//! It is what the demo, the tests and the fuzzers drive a [`Snapshotter`](snapseal_actors::Snapshotter)
//! from, and it shows an embedding node the exact shape snapseal expects: evidence txs whose
//! claims digest is the snapshot's claims digest (docs/FORMAT.md §3), signature txs signing the root over every earlier tx,
//! and a [`ProofSource`] per signature.

use std::sync::Arc;

use ed25519_dalek::{SigningKey, VerifyingKey};
use parking_lot::RwLock;
use snapseal_actors::{InclusionProof, ProofSource};
use snapseal_persist::internals::receipt::leaf_position;
use snapseal_persist::receipt::{leaf_hash, sign_root, MerkleTree, SignedRoot};
use snapseal_persist::Hash;

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
    /// Evidence of a snapshot: its index and claims digest (idx, flags, lengths, body digest).
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

    /// The leaf's claims digest: the snapshot's claims digest for evidence, zeros otherwise
    /// (SPEC §4).
    pub fn claims_digest(&self) -> Hash {
        match self {
            TxKind::Evidence { digest, .. } => *digest,
            _ => [0; 32],
        }
    }

    /// The Merkle leaf of this tx at index `idx` (tx `idx` is leaf `idx - 1` of the tree).
    pub fn leaf(&self, idx: u64) -> Hash {
        leaf_hash(&self.digest(idx), &self.claims_digest())
    }
}

/// Txs and tree, behind one lock so a proof never sees a half-appended tx.
#[derive(Debug, Default)]
struct Entries {
    /// Txs `1 ..= base` are an opaque prefix (a resumed ledger): only their leaves exist.
    base: u64,
    txs: Vec<TxKind>,
    tx_digests: Vec<Hash>,
    tree: MerkleTree,
}

impl Entries {
    /// Position in `txs` of ledger index `idx` (None for 0 and the opaque prefix).
    fn pos(&self, idx: u64) -> Option<usize> {
        usize::try_from(idx.checked_sub(self.base)?.checked_sub(1)?).ok()
    }

    fn last_idx(&self) -> u64 {
        self.base + self.txs.len() as u64
    }
}

/// Digest standing in for tx `idx` of a resumed ledger's opaque prefix.
fn prefix_digest(idx: u64) -> Hash {
    *blake3::Hasher::new_derive_key("snapseal demo ledger prefix v1")
        .update(&idx.to_le_bytes())
        .finalize()
        .as_bytes()
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
        Ledger::new(Self::seed_key(seed))
    }

    /// The signing key [`from_seed`](Self::from_seed) uses.
    pub fn seed_key(seed: u64) -> SigningKey {
        let bytes = *blake3::Hasher::new_derive_key("snapseal demo node key v1")
            .update(&seed.to_le_bytes())
            .finalize()
            .as_bytes();
        SigningKey::from_bytes(&bytes)
    }

    /// A ledger that resumes after `base` txs it does not hold (a node restarted from a
    /// snapshot at `base`): the first appended tx gets index `base + 1`. The prefix contributes
    /// stand-in leaves to the Merkle tree so indices and proofs keep their meaning; the state
    /// implied by the prefix is empty.
    pub fn resumed(key: SigningKey, base: u64) -> Self {
        let mut entries = Entries {
            base,
            ..Entries::default()
        };
        for idx in 1..=base {
            entries.tree.push(leaf_hash(&prefix_digest(idx), &[0; 32]));
        }
        Ledger {
            entries: Arc::new(RwLock::new(entries)),
            key: Arc::new(key),
        }
    }

    /// Index of the last tx of the opaque prefix (0 for a fresh ledger).
    pub fn base(&self) -> u64 {
        self.entries.read().base
    }

    /// The public key that verifies this ledger's signatures.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Index of the last tx (0 when empty).
    pub fn last_idx(&self) -> u64 {
        self.entries.read().last_idx()
    }

    /// The tx at `idx` (None beyond the end and inside a resumed ledger's prefix).
    pub fn tx(&self, idx: u64) -> Option<TxKind> {
        let e = self.entries.read();
        e.txs.get(e.pos(idx)?).cloned()
    }

    /// Append `kind`; returns its index.
    pub fn append(&self, kind: TxKind) -> u64 {
        let mut e = self.entries.write();
        let idx = e.last_idx() + 1;
        let digest = kind.digest(idx);
        e.tree.push(leaf_hash(&digest, &kind.claims_digest()));
        e.tx_digests.push(digest);
        e.txs.push(kind);
        idx
    }

    /// Append a signature tx signing the root over every tx before it; returns what it signed.
    pub fn append_signature(&self) -> SignedRoot {
        let mut e = self.entries.write();
        let size = e.last_idx();
        let sig_idx = size + 1;
        // `size` is the tree's own length, so the root always exists.
        let root = e
            .tree
            .root(size)
            .unwrap_or_else(snapseal_persist::internals::receipt::empty_root);
        let signed = sign_root(&self.key, sig_idx, &root);
        let kind = TxKind::Signature(signed.clone());
        let digest = kind.digest(sig_idx);
        e.tree.push(leaf_hash(&digest, &kind.claims_digest()));
        e.tx_digests.push(digest);
        e.txs.push(kind);
        signed
    }

    /// Roll back: keep txs `1 ..= idx` (never below a resumed ledger's prefix).
    pub fn truncate(&self, idx: u64) {
        let mut e = self.entries.write();
        let keep = usize::try_from(idx.saturating_sub(e.base))
            .unwrap_or(usize::MAX)
            .min(e.txs.len());
        e.txs.truncate(keep);
        e.tx_digests.truncate(keep);
        let len = e.last_idx();
        e.tree.truncate(len);
    }

    /// The proof source for the signature at `sig_idx` (valid while the ledger is not rolled
    /// back below `sig_idx`).
    pub fn proofs(&self) -> Arc<dyn ProofSource> {
        Arc::new(LedgerProofs {
            entries: Arc::clone(&self.entries),
        })
    }

    /// Visit the writes among txs `1 ..= idx` in order (for state views). Returns false if the
    /// ledger holds fewer than `idx` txs (or `idx` lies inside a resumed ledger's prefix).
    ///
    /// Takes the read lock one chunk at a time, so a long walk never stalls the node's
    /// appends; txs at or below `idx` cannot change meanwhile (a rollback never goes below the
    /// commit index, and views are only taken at committed points) — and if one did, the walk
    /// notices the ledger got shorter and returns false.
    pub fn for_each_write(&self, idx: u64, mut f: impl FnMut(u64, &Arc<[u8]>)) -> bool {
        const CHUNK: usize = 4096;
        let mut done = 0usize;
        loop {
            let e = self.entries.read();
            if idx < e.base {
                return false;
            }
            let Some(end) = e.pos(idx + 1) else {
                return false;
            };
            let Some(txs) = e.txs.get(done..end.min(done + CHUNK)) else {
                return false;
            };
            if end > e.txs.len() {
                return false;
            }
            for tx in txs {
                if let TxKind::Write { key, value } = tx {
                    f(*key, value);
                }
            }
            done += txs.len();
            if done >= end {
                return true;
            }
        }
    }
}

/// Inclusion proofs out of the shared ledger tree.
struct LedgerProofs {
    entries: Arc<RwLock<Entries>>,
}

impl ProofSource for LedgerProofs {
    fn inclusion_proof(&self, evidence_idx: u64, sig_idx: u64) -> Result<InclusionProof, String> {
        let e = self.entries.read();
        let (index, size) = leaf_position(evidence_idx, sig_idx).ok_or_else(|| {
            format!("no proof of tx {evidence_idx} under a signature at {sig_idx}")
        })?;
        let path = e.tree.proof(index, size).ok_or_else(|| {
            format!(
                "no proof of tx {evidence_idx} in a tree of {size} (ledger has {})",
                e.txs.len()
            )
        })?;
        let tx_digest = e
            .pos(evidence_idx)
            .and_then(|i| e.tx_digests.get(i))
            .copied()
            .ok_or_else(|| format!("tx {evidence_idx} is not in the ledger"))?;
        Ok(InclusionProof { tx_digest, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapseal_persist::internals::receipt::{root_from_proof, verify_signed_root};

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
    fn a_resumed_ledger_continues_after_its_base_with_valid_proofs() {
        let ledger = Ledger::resumed(Ledger::seed_key(3), 1000);
        assert_eq!(ledger.last_idx(), 1000);
        assert_eq!(ledger.tx(1000), None);
        let w = ledger.append(TxKind::Write {
            key: 1,
            value: Arc::from(vec![5u8]),
        });
        assert_eq!(w, 1001);
        let e = ledger.append(TxKind::Evidence {
            snapshot_idx: 1001,
            digest: [4; 32],
        });
        let signed = ledger.append_signature();
        let proof = ledger.proofs().inclusion_proof(e, signed.sig_idx).unwrap();
        let leaf = leaf_hash(&proof.tx_digest, &[4; 32]);
        assert_eq!(
            root_from_proof(&leaf, e - 1, signed.sig_idx - 1, &proof.path),
            Some(signed.root)
        );
        let mut writes = Vec::new();
        assert!(ledger.for_each_write(1001, |k, _| writes.push(k)));
        assert_eq!(writes, vec![1]);
        assert!(
            !ledger.for_each_write(999, |_, _| ()),
            "the prefix's state is not held"
        );
        ledger.truncate(10);
        assert_eq!(ledger.last_idx(), 1000, "never below the prefix");
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
