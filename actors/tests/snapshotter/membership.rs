//! Membership (docs/MEMBERSHIP.md): how a cluster whose members sign their snapshots adds,
//! rotates and retires keys. A store's trusted key set is fixed when it opens; changing it is
//! closing the Snapshotter and reopening the store with the new set.

use snapseal_persist::internals::receipt::key_id;
use snapseal_persist::{to_hex, FileState, IngestError, SigningKey, VerifyError, VerifyingKey};

use crate::statement_node::{one_snapshot, store_trusting, Member};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// How a verified receipt names its signer.
fn signer(key: &SigningKey) -> String {
    to_hex(&key_id(&key.verifying_key()))
}

fn public(keys: &[&SigningKey]) -> Vec<VerifyingKey> {
    keys.iter().map(|k| k.verifying_key()).collect()
}

/// The file's only fault is a signer outside the trusted set.
fn untrusted(e: &VerifyError) -> bool {
    matches!(e, VerifyError::Receipt { source, .. } if source.is_untrusted())
}

#[test]
fn a_member_that_rotates_its_key_keeps_its_old_snapshots_while_the_old_key_is_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = (key(1), key(2));
    one_snapshot(tmp.path(), &old, &public(&[&old]), 1);

    // Rotation, step 1: the new key joins the trusted set; the member restarts signing with it.
    let store = store_trusting(tmp.path(), &public(&[&old, &new])).unwrap();
    let latest = store
        .latest()
        .unwrap()
        .expect("the old key's snapshot still verifies");
    assert_eq!(latest.name().idx, 10);
    assert_eq!(latest.receipt().signer, signer(&old));
    drop(latest);
    let mut member = Member::new(store, new.clone(), 10);
    assert_eq!(
        member.snap.baseline(),
        10,
        "the schedule resumes from the old key's snapshot"
    );
    member.snapshot_at(20);
    let store = member.close();
    let newest = store.latest().unwrap().expect("the new key's snapshot");
    assert_eq!(newest.name().idx, 20);
    assert_eq!(newest.receipt().signer, signer(&new));
    let older = store.read(&store.list().unwrap()[0].name).unwrap();
    assert_eq!(older.receipt().signer, signer(&old));
}

#[test]
fn once_a_retired_key_is_removed_its_snapshots_are_passed_over_and_not_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = (key(1), key(2));
    one_snapshot(tmp.path(), &old, &public(&[&old]), 1);

    // Rotation, step 2: the old key is removed from the trusted set.
    let store = store_trusting(tmp.path(), &public(&[&new])).unwrap();
    assert!(store.latest().unwrap().is_none());
    let stats = store.stats();
    assert_eq!((stats.untrusted_skipped, stats.quarantined), (1, 0));
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].name.state,
        FileState::Committed,
        "left in place, not quarantined"
    );
    let Err(refused) = store.read(&listed[0].name) else {
        panic!("a snapshot signed by a removed key was read");
    };
    assert!(untrusted(&refused), "{refused}");
    drop(store);

    // Nothing was destroyed: with the old key trusted again the snapshot verifies.
    let store = store_trusting(tmp.path(), &public(&[&old, &new])).unwrap();
    let latest = store.latest().unwrap().expect("the old key's snapshot");
    assert_eq!(latest.name().idx, 10);
}

#[test]
fn a_joining_members_snapshots_verify_on_every_member_once_its_key_is_added() {
    let (a, b, c) = (key(1), key(2), key(3));
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let cluster = public(&[&a, &b]);
    // A snapshot by member A, which the joining member must also trust.
    let store_a = store_trusting(dirs[0].path(), &cluster).unwrap();
    let mut member_a = Member::new(store_a, a.clone(), 10);
    member_a.snapshot_at(10);
    let store_a = member_a.close();

    // C joins with a new key. Its own store trusts the members' keys and its own.
    let with_c = public(&[&a, &b, &c]);
    let store_c = store_trusting(dirs[2].path(), &with_c).unwrap();
    let from_a = store_a.latest().unwrap().expect("A's snapshot");
    store_c.ingest(&mut from_a.file_reader(), 1 << 20).unwrap();
    drop(from_a);
    let mut member_c = Member::new(store_c, c.clone(), 10);
    assert_eq!(member_c.snap.baseline(), 10, "C resumes from A's snapshot");
    member_c.snapshot_at(20);
    let store_c = member_c.close();
    let from_c = store_c.latest().unwrap().expect("C's snapshot");
    assert_eq!(
        (from_c.name().idx, &from_c.receipt().signer),
        (20, &signer(&c))
    );

    // Before the others add C's key, they refuse its snapshot and keep nothing of it.
    let store_b = store_trusting(dirs[1].path(), &cluster).unwrap();
    match store_b.ingest(&mut from_c.file_reader(), 1 << 20) {
        Err(IngestError::Refused { source, .. }) => assert!(untrusted(&source), "{source}"),
        other => panic!("expected C's snapshot refused as untrusted, got {other:?}"),
    }
    assert!(store_b.list().unwrap().is_empty());
    drop(store_b);
    drop(store_a);

    // Every member reopens its store with C's key added: C's snapshot verifies on each.
    for dir in &dirs[..2] {
        let store = store_trusting(dir.path(), &with_c).unwrap();
        store.ingest(&mut from_c.file_reader(), 1 << 20).unwrap();
        let latest = store.latest().unwrap().expect("C's snapshot");
        assert_eq!(*latest.name(), *from_c.name());
        assert_eq!(latest.receipt().signer, signer(&c));
    }
}
