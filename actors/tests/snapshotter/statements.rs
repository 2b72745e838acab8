//! Statement mode (SPEC §3.3): a node without a Merkle tree — a Raft log — gets receipts its
//! own key signs, written once the evidence entry is committed.

use std::io;
use std::sync::Arc;

use crate::statement_node::{one_snapshot, state_at, store_trusting, Member};
use snapseal_actors::SnapshotEvent;
use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::{sign_root, Ed25519Verifier, SchemeId, Schemes, StatementScheme};
use snapseal_persist::{SigningKey, SnapshotStore, StoreOptions};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

#[test]
fn a_statement_snapshot_is_written_only_once_its_evidence_entry_is_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let node_key = key(1);
    let store = store_trusting(tmp.path(), &[node_key.verifying_key()]).unwrap();
    let mut member = Member::new(store, node_key, 10);
    member.term = 4;

    let digest = member.serialise_at(10);
    member.last_idx = 12; // two more entries, then the evidence entry at 13
    let evidence_idx = member.append_evidence(10, digest);
    assert_eq!(evidence_idx, 13);
    for commit in [10, 12] {
        member.snap.commit(commit);
        member.tasks.run_until_idle();
        assert!(
            member.store.list().unwrap().is_empty(),
            "written at commit {commit}"
        );
        let pending = member.snap.pending();
        assert_eq!(pending.len(), 1);
        assert!(
            !pending[0].persist_scheduled,
            "gate passed at commit {commit}"
        );
    }

    member.snap.commit(13);
    member.tasks.run_until_idle();
    let committed = member.committed();
    // The statement vouches for the evidence entry: it is the receipt's index too.
    assert_eq!(
        (committed.idx, committed.evidence_idx, committed.sig_idx),
        (10, 13, 13)
    );
    assert!(member.snap.pending().is_empty());
    assert_eq!(member.store.list().unwrap().len(), 1);
}

#[test]
fn a_statement_snapshot_verifies_with_the_node_key_through_either_built_in_verifier() {
    let tmp = tempfile::tempdir().unwrap();
    let node_key = key(2);
    let public = node_key.verifying_key();
    one_snapshot(tmp.path(), &node_key, &[public], 7);

    let ed25519 = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![public]);
    let schemes = Schemes::new().with(Arc::new(StatementScheme::new(vec![public])));
    for verifier in [
        Arc::new(ed25519) as Arc<dyn snapseal_persist::receipt::ReceiptVerifier>,
        Arc::new(schemes),
    ] {
        let opts = StoreOptions::new(verifier);
        let store = SnapshotStore::open(Arc::new(RealFs::new()), tmp.path(), opts).unwrap();
        let latest = store
            .latest()
            .unwrap()
            .expect("the snapshot at 10 verifies");
        assert_eq!((latest.name().idx, latest.name().evidence_idx), (10, 11));
        let receipt = latest.receipt();
        assert_eq!(receipt.scheme, SchemeId::STATEMENT);
        assert_eq!((receipt.sig_idx, receipt.term), (11, Some(7)));
        let body = io::read_to_string(latest.body_reader().unwrap()).unwrap();
        assert_eq!(body, state_at(10));
    }
}

#[test]
fn evidence_without_a_term_gets_a_statement_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let node_key = key(3);
    let store = store_trusting(tmp.path(), &[node_key.verifying_key()]).unwrap();
    let mut member = Member::new(store, node_key, 10);
    let digest = member.serialise_at(10);
    member.snap.record_evidence(11, 10, digest).unwrap();
    member.snap.commit(11);
    member.tasks.run_until_idle();
    member.committed();
    let latest = member.store.latest().unwrap().expect("the snapshot at 10");
    assert_eq!(latest.receipt().term, None);
}

#[test]
fn statement_mode_ignores_ledger_signatures_and_trees() {
    let tmp = tempfile::tempdir().unwrap();
    let node_key = key(4);
    let store = store_trusting(tmp.path(), &[node_key.verifying_key()]).unwrap();
    let mut member = Member::new(store, node_key, 10);
    let digest = member.serialise_at(10);
    let evidence_idx = member.append_evidence(10, digest);
    // A Merkle ledger's signature after the evidence, committed: in Merkle mode this (with a
    // tree) would be what the gate waits for; here it changes nothing.
    let other = key(9);
    member
        .snap
        .record_signature(sign_root(&other, evidence_idx + 1, &[0; 32]));
    member.snap.commit(evidence_idx - 1);
    member.tasks.run_until_idle();
    assert!(member.store.list().unwrap().is_empty());
    assert_eq!(member.snap.pending()[0].sig_idx, None);
    member.snap.commit(evidence_idx + 1);
    member.tasks.run_until_idle();
    let latest = member.store.latest().unwrap().expect("the snapshot at 10");
    assert_eq!(latest.receipt().scheme, SchemeId::STATEMENT);
}

#[test]
fn a_rolled_back_evidence_entry_leaves_no_statement_snapshot_and_the_point_is_taken_again() {
    let tmp = tempfile::tempdir().unwrap();
    let node_key = key(5);
    let store = store_trusting(tmp.path(), &[node_key.verifying_key()]).unwrap();
    let mut member = Member::new(store, node_key, 10);
    let digest = member.serialise_at(10);
    member.append_evidence(10, digest);
    // The leader changes before the evidence entry at 11 is committed: the log is cut at 10.
    member.snap.rollback(10);
    assert!(matches!(
        member.snap.events().try_recv(),
        Some(SnapshotEvent::Dropped { idx: 10, .. })
    ));
    member.last_idx = 10;
    member.term += 1;
    member.snap.commit(10); // the point at 10 survived: captured again
    member.tasks.run_until_idle();
    assert!(member.store.list().unwrap().is_empty());
    let (snapshot_idx, digest) = member.evidence.try_recv().expect("a new evidence request");
    assert_eq!(snapshot_idx, 10);
    let evidence_idx = member.append_evidence(10, digest);
    member.snap.commit(evidence_idx);
    member.tasks.run_until_idle();
    let committed = member.committed();
    assert_eq!((committed.idx, committed.evidence_idx), (10, 11));
    let latest = member.store.latest().unwrap().expect("the snapshot at 10");
    assert_eq!(latest.receipt().term, Some(2), "signed in the new term");
}

#[test]
fn a_reader_trusting_only_merkle_receipts_passes_a_statement_snapshot_over() {
    let tmp = tempfile::tempdir().unwrap();
    let node_key = key(6);
    let public = node_key.verifying_key();
    one_snapshot(tmp.path(), &node_key, &[public], 1);

    // The same key, but trusted as a ledger key only: the statement scheme is not trusted.
    let opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![public])));
    let store = SnapshotStore::open(Arc::new(RealFs::new()), tmp.path(), opts).unwrap();
    assert!(store.latest().unwrap().is_none());
    let stats = store.stats();
    assert_eq!((stats.untrusted_skipped, stats.quarantined), (1, 0));
    assert_eq!(store.list().unwrap().len(), 1, "the file is left in place");
}
