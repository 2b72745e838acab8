//! Merkle mode over a ledger built the way `ProofSource` and `MerkleTree` document it — the
//! library's RFC 9162 tree, no reference ledger: the Snapshotter accepts its proofs and the
//! files verify.

use std::io;
use std::sync::{Arc, RwLock};

use crate::statement_node::{state_at, IndexState};
use snapseal_actors::{
    CloseMode, Hash, InclusionProof, ProofSource, SnapshotEvent, Snapshotter, SnapshotterConfig,
};
use snapseal_engine::TaskSystem;
use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::{leaf_hash, sign_root, Ed25519Verifier, MerkleTree, SchemeId};
use snapseal_persist::{SigningKey, SnapshotStore, StoreOptions};
use snapseal_sim::node::ChannelSink;

/// A ledger per the docs: one leaf per tx, tx `i` at leaf `i - 1`, its digests alongside.
#[derive(Default)]
struct Ledger {
    tree: MerkleTree,
    tx_digests: Vec<Hash>,
}

impl Ledger {
    /// Appends a tx carrying `claims` (zeros for a tx that is not evidence); returns its index.
    fn append(&mut self, claims: Hash) -> u64 {
        let idx = self.tree.len() + 1;
        let mut digest = [0xd1; 32];
        digest[..8].copy_from_slice(&idx.to_le_bytes());
        self.tree.push(leaf_hash(&digest, &claims));
        self.tx_digests.push(digest);
        idx
    }
}

/// Proofs as `ProofSource::inclusion_proof` documents them, or shifted by `skew` leaves (a
/// node getting the mapping wrong).
struct Proofs {
    ledger: Arc<RwLock<Ledger>>,
    skew: u64,
}

impl ProofSource for Proofs {
    fn inclusion_proof(&self, evidence_idx: u64, sig_idx: u64) -> Result<InclusionProof, String> {
        let ledger = self.ledger.read().map_err(|_| "poisoned")?;
        let (leaf, size) = (evidence_idx - 1 + self.skew, sig_idx - 1 + self.skew);
        let path = ledger.tree.proof(leaf, size).ok_or("no such leaf")?;
        let tx_digest = ledger.tx_digests[evidence_idx as usize - 1];
        Ok(InclusionProof { tx_digest, path })
    }
}

/// Runs one snapshot at 10 with evidence at 11, `gap` more txs, then the signature, through a
/// Snapshotter in Merkle mode; returns the store (reopened) and the ledger's key.
fn snapshot_through(dir: &std::path::Path, gap: u64, skew: u64) -> Arc<SnapshotStore> {
    let ledger_key = SigningKey::from_bytes(&[8; 32]);
    let verifier = Arc::new(Ed25519Verifier::new(vec![ledger_key.verifying_key()]));
    let opts = StoreOptions::new(verifier);
    let store = SnapshotStore::open(Arc::new(RealFs::new()), dir, opts.clone()).unwrap();
    let tasks = TaskSystem::manual_fifo();
    let (sink, requests) = ChannelSink::new();
    let config = SnapshotterConfig {
        tx_interval: 10,
        ..SnapshotterConfig::default()
    };
    let mut snap = Snapshotter::new(
        config,
        tasks.clone(),
        Arc::new(store),
        Arc::new(IndexState),
        Arc::new(sink),
    )
    .unwrap();
    let ledger = Arc::new(RwLock::new(Ledger::default()));
    let proofs = Arc::new(Proofs {
        ledger: Arc::clone(&ledger),
        skew,
    });
    let sign = |ledger: &RwLock<Ledger>| {
        let mut ledger = ledger.write().unwrap();
        let sig_idx = ledger.tree.len() + 1;
        let signed = sign_root(
            &ledger_key,
            sig_idx,
            &ledger.tree.root(sig_idx - 1).unwrap(),
        );
        ledger.append([0; 32]); // the signature tx is a leaf like any other
        signed
    };

    for _ in 1..10 {
        ledger.write().unwrap().append([0; 32]);
    }
    let signed = sign(&ledger); // at 10: a snapshot point
    assert!(snap.record_committable(signed.sig_idx));
    snap.record_signature(signed);
    snap.commit(10);
    tasks.run_until_idle();
    let (snapshot_idx, claims) = requests.try_recv().unwrap();
    let evidence_idx = ledger.write().unwrap().append(claims);
    snap.record_evidence(evidence_idx, snapshot_idx, claims)
        .unwrap();
    for _ in 0..gap {
        ledger.write().unwrap().append([0; 32]);
    }
    let signed = sign(&ledger);
    let sig_idx = signed.sig_idx;
    snap.record_signature(signed);
    snap.record_tree(sig_idx, proofs);
    snap.commit(sig_idx);
    tasks.run_until_idle();
    match snap.events().try_recv() {
        Some(SnapshotEvent::Committed(c)) => {
            assert_eq!((c.idx, c.evidence_idx, c.sig_idx), (10, 11, 12 + gap));
        }
        other => panic!("expected the snapshot committed, got {other:?}"),
    }
    snap.close(CloseMode::Drain);
    Arc::new(SnapshotStore::open(Arc::new(RealFs::new()), dir, opts).unwrap())
}

#[test]
fn proofs_from_a_merkle_tree_mapped_as_documented_make_snapshots_that_verify() {
    for gap in [0, 1, 5, 21] {
        let tmp = tempfile::tempdir().unwrap();
        let store = snapshot_through(tmp.path(), gap, 0);
        let latest = store
            .latest()
            .unwrap()
            .expect("the snapshot at 10 verifies");
        let receipt = latest.receipt();
        assert_eq!(
            (receipt.scheme, receipt.sig_idx),
            (SchemeId::MERKLE, 12 + gap)
        );
        let body = io::read_to_string(latest.body_reader().unwrap()).unwrap();
        assert_eq!(body, state_at(10));
    }
}

#[test]
fn proofs_mapped_one_leaf_off_make_snapshots_that_fail_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let store = snapshot_through(tmp.path(), 3, 1);
    assert!(store.latest().unwrap().is_none());
    assert_eq!(store.stats().quarantined, 1);
}
