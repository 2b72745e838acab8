//! Shipping and restoring against the local-directory store (the embedded default).

use std::sync::{Arc, Mutex};

use crate::support::*;
use snapseal_persist::SnapshotName;
use snapseal_ship::index::NodeIndex;
use snapseal_ship::retention::{self, GcPolicy};
use snapseal_ship::{restore, RestoreOptions, ShipConfig, ShipEvent, Shipper, INDEX_OBJECT};

fn index(remote_dir: &std::path::Path, node: &str) -> NodeIndex {
    NodeIndex::decode(
        &std::fs::read(remote_dir.join(node).join(INDEX_OBJECT)).unwrap(),
        node,
    )
    .unwrap()
}

fn indexed_names(remote_dir: &std::path::Path, node: &str) -> Vec<String> {
    index(remote_dir, node)
        .snapshots
        .iter()
        .map(|e| e.name.clone())
        .collect()
}

#[test]
fn ships_oldest_first_and_a_restore_gets_the_newest_back_byte_for_byte() {
    let (local, remote_dir, target) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let store = store(local.path());
    let names: Vec<SnapshotName> = (1..=3)
        .map(|i| persist(&store, i * 10, 1000 + i as usize))
        .collect();
    let remote = local_remote(remote_dir.path());
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let shipper = Shipper::new(
        Arc::clone(&remote),
        Arc::clone(&store),
        ShipConfig::new("n1"),
    )
    .unwrap()
    .with_events(Box::new(move |e| sink.lock().unwrap().push(e.clone())));
    let report = shipper.ship_pending().unwrap();
    assert_eq!(report.shipped, names);
    assert_eq!(report.uploaded, names);
    let shipped_order: Vec<SnapshotName> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ShipEvent::Shipped { name, .. } => Some(*name),
            _ => None,
        })
        .collect();
    assert_eq!(shipped_order, names, "shipped oldest first");
    let want: Vec<String> = names.iter().map(|n| n.file_name()).collect();
    assert_eq!(indexed_names(remote_dir.path(), "n1"), want);
    for n in &names {
        assert_eq!(
            std::fs::read(remote_dir.path().join("n1").join(n.file_name())).unwrap(),
            file_bytes(local.path(), n)
        );
    }
    assert_eq!(shipper.stats().shipped, 3);
    assert_eq!(shipper.stats().queue_depth, 0);

    let target_store = crate::support::store(target.path());
    let restored = restore(&remote, &target_store, &RestoreOptions::default()).unwrap();
    assert_eq!(restored.name, names[2]);
    assert!(restored.written && restored.passed_over.is_empty() && !restored.listed);
    assert_eq!(
        file_bytes(target.path(), &names[2]),
        file_bytes(local.path(), &names[2])
    );
    assert_eq!(target_store.latest().unwrap().unwrap().name(), &names[2]);
}

#[test]
fn a_second_pass_ships_only_new_files_and_a_lost_index_entry_is_not_uploaded_twice() {
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = store(local.path());
    let a = persist(&store, 1, 100);
    let remote = local_remote(remote_dir.path());
    let shipper = Shipper::new(
        Arc::clone(&remote),
        Arc::clone(&store),
        ShipConfig::new("n1"),
    )
    .unwrap();
    assert_eq!(shipper.ship_pending().unwrap().uploaded, vec![a]);
    assert!(shipper.ship_pending().unwrap().shipped.is_empty());
    // A shipper killed after its upload completed but before the index named it: the
    // object is there, the index is not. The restart confirms it and indexes it, no upload.
    let b = persist(&store, 2, 100);
    let key = remote_dir.path().join("n1").join(b.file_name());
    std::fs::copy(local.path().join(b.file_name()), &key).unwrap();
    let modified = std::fs::metadata(&key).unwrap().modified().unwrap();
    let restarted = Shipper::new(
        Arc::clone(&remote),
        Arc::clone(&store),
        ShipConfig::new("n1"),
    )
    .unwrap();
    let report = restarted.ship_pending().unwrap();
    assert_eq!(report.shipped, vec![b]);
    assert!(
        report.uploaded.is_empty(),
        "a complete object is not uploaded again"
    );
    assert_eq!(
        std::fs::metadata(&key).unwrap().modified().unwrap(),
        modified
    );
    assert_eq!(
        indexed_names(remote_dir.path(), "n1"),
        vec![a.file_name(), b.file_name()]
    );
}

#[test]
fn a_remote_object_that_differs_stops_the_shipper_with_a_terminal_error() {
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = store(local.path());
    let a = persist(&store, 1, 100);
    std::fs::create_dir_all(remote_dir.path().join("n1")).unwrap();
    std::fs::write(
        remote_dir.path().join("n1").join(a.file_name()),
        b"someone else's",
    )
    .unwrap();
    let shipper = Shipper::new(
        local_remote(remote_dir.path()),
        Arc::clone(&store),
        ShipConfig::new("n1"),
    )
    .unwrap();
    let err = shipper.ship_pending().unwrap_err();
    assert_eq!(err.class(), snapseal_ship::ErrorClass::Terminal, "{err}");
    assert_eq!(shipper.stats().terminal_errors, 1);
    assert!(shipper.stopped().is_some());
    assert!(
        shipper.ship_pending().is_err(),
        "a stopped shipper stays stopped"
    );
    assert!(indexed_names(remote_dir.path(), "n1").is_empty());
}

#[test]
fn a_file_that_does_not_verify_is_never_shipped() {
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = store(local.path());
    let a = persist(&store, 1, 100);
    let forged = persist_signed(&store, 2, 100, &untrusted_key());
    let c = persist(&store, 3, 100);
    let shipper = Shipper::new(
        local_remote(remote_dir.path()),
        Arc::clone(&store),
        ShipConfig::new("n1"),
    )
    .unwrap();
    let report = shipper.ship_pending().unwrap();
    assert_eq!(report.shipped, vec![a, c]);
    assert_eq!(report.skipped, vec![forged]);
    assert_eq!(shipper.stats().skipped_unverified, 1);
    assert!(!remote_dir
        .path()
        .join("n1")
        .join(forged.file_name())
        .exists());
}

#[test]
fn a_large_file_that_does_not_verify_is_sent_in_parts_but_never_made_visible() {
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = store(local.path());
    let a = persist(&store, 1, 100);
    // Its header is fine, so its parts go up while the receipt check runs beside them.
    let forged = persist_signed(&store, 2, 24 << 20, &untrusted_key());
    let c = persist(&store, 3, 100);
    let mut config = ShipConfig::new("n1");
    config.part_size = 5 << 20;
    let shipper =
        Shipper::new(local_remote(remote_dir.path()), Arc::clone(&store), config).unwrap();
    let report = shipper.ship_pending().unwrap();
    assert_eq!(report.shipped, vec![a, c]);
    assert_eq!(report.skipped, vec![forged]);
    let mut left: Vec<String> = std::fs::read_dir(remote_dir.path().join("n1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [INDEX_OBJECT.to_string(), a.file_name(), c.file_name()],
        "no object and no part of the aborted upload is left"
    );
}

#[test]
fn unshipped_snapshots_are_held_against_retention_up_to_the_bound() {
    let local = tempfile::tempdir().unwrap();
    let store = store(local.path());
    let names: Vec<SnapshotName> = (1..=4).map(|i| persist(&store, i, 100)).collect();
    // The index reads, every upload fails transiently.
    let remote_dir = tempfile::tempdir().unwrap();
    let unreachable = || {
        let local = snapseal_ship::LocalStore::new(remote_dir.path().to_path_buf(), u64::MAX);
        let store = Arc::new(crate::support::faulty::FailingPuts(Arc::new(local)));
        let opts = snapseal_ship::RemoteOptions::default();
        Arc::new(
            snapseal_ship::Remote::with_store("test://failing", store, Default::default(), &opts)
                .unwrap(),
        )
    };
    let mut config = ShipConfig::new("n1");
    config.hold_max_count = 2;
    config.max_attempts = Some(1);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let shipper = Shipper::new(unreachable(), Arc::clone(&store), config)
        .unwrap()
        .with_events(Box::new(move |e| sink.lock().unwrap().push(e.clone())));
    assert!(shipper.ship_pending().is_err());
    assert!(
        shipper.stopped().is_none(),
        "a transient failure does not stop the shipper"
    );
    let stats = shipper.stats();
    assert_eq!(stats.released_unshipped, 2);
    assert_eq!(stats.queue_depth, 4);
    let released: Vec<SnapshotName> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ShipEvent::ReleasedUnshipped { name } => Some(*name),
            _ => None,
        })
        .collect();
    assert_eq!(
        released,
        names[..2],
        "the oldest unshipped are released, visibly"
    );
    // Local retention keeping only the newest: the held ones stay, the released ones go.
    let mut opts = options();
    opts.keep_last = 1;
    drop(shipper);
    let plan_store = {
        drop(store);
        let s = snapseal_persist::SnapshotStore::open(
            Arc::new(snapseal_persist::fs::RealFs::new()),
            local.path(),
            opts,
        )
        .unwrap();
        Arc::new(s)
    };
    let mut config = ShipConfig::new("n1");
    config.hold_max_count = 2;
    config.max_attempts = Some(1);
    let shipper = Shipper::new(unreachable(), Arc::clone(&plan_store), config).unwrap();
    assert!(shipper.ship_pending().is_err());
    plan_store.apply_retention().unwrap();
    let left: Vec<SnapshotName> = plan_store.list().unwrap().iter().map(|e| e.name).collect();
    assert_eq!(
        left,
        names[2..],
        "held snapshots survive retention, released ones do not"
    );
}

#[test]
fn restore_passes_over_a_hostile_bucket_and_picks_the_newest_genuine_snapshot() {
    let (local, remote_dir, target) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let store = store(local.path());
    let names: Vec<SnapshotName> = (1..=3).map(|i| persist(&store, i * 10, 500)).collect();
    let remote = local_remote(remote_dir.path());
    Shipper::new(
        Arc::clone(&remote),
        Arc::clone(&store),
        ShipConfig::new("n1"),
    )
    .unwrap()
    .ship_pending()
    .unwrap();
    let node_dir = remote_dir.path().join("n1");
    // Relabelled: the newest object's bytes replaced by an older genuine snapshot's.
    std::fs::remove_file(node_dir.join(names[2].file_name())).unwrap();
    std::fs::write(
        node_dir.join(names[2].file_name()),
        file_bytes(local.path(), &names[0]),
    )
    .unwrap();
    // Junk objects under snapshot names (not indexed: refused by their size before a byte
    // is read) and not (never read).
    std::fs::write(node_dir.join("snapshot_99_100.committed"), b"junk").unwrap();
    std::fs::write(node_dir.join("README"), b"junk").unwrap();
    // An index entry naming an object that is not there, newer than everything: the index
    // disagrees with the listing, and the entry is no candidate.
    let mut idx = index(remote_dir.path(), "n1");
    let mut ghost = idx.snapshots[2].clone();
    ghost.name = "snapshot_50_51.committed".into();
    ghost.claims.idx = 50;
    ghost.claims.evidence_idx = 51;
    idx.snapshots.push(ghost);
    std::fs::write(node_dir.join(INDEX_OBJECT), idx.encode()).unwrap();

    let target_store = crate::support::store(target.path());
    let restored = restore(&remote, &target_store, &RestoreOptions::default()).unwrap();
    assert_eq!(
        restored.name, names[1],
        "passed over: {:?}",
        restored.passed_over
    );
    assert_eq!(restored.passed_over.len(), 2, "{:?}", restored.passed_over);
    assert!(
        restored.passed_over[0].contains("shorter than a header"),
        "{:?}",
        restored.passed_over
    );
    // Relabelled bytes of another size: the index does not vouch for them (the size differs
    // from its entry), and the header, the first read, names another snapshot.
    assert!(
        restored.passed_over[1].contains("relabelled"),
        "{:?}",
        restored.passed_over
    );
    assert!(restored.listed);
    let left: Vec<SnapshotName> = target_store
        .list()
        .unwrap()
        .iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        left,
        vec![names[1]],
        "nothing but the genuine snapshot got a name"
    );
    assert!(target_store.list_pending().unwrap().is_empty());
}

#[test]
fn without_an_index_restore_lists_and_refuses_forged_objects() {
    let (local, remote_dir, target) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let store = store(local.path());
    let good = persist(&store, 1, 300);
    let forged = persist_signed(&store, 2, 300, &untrusted_key());
    let node_dir = remote_dir.path().join("n1");
    std::fs::create_dir_all(&node_dir).unwrap();
    for n in [good, forged] {
        std::fs::write(node_dir.join(n.file_name()), file_bytes(local.path(), &n)).unwrap();
    }
    std::fs::write(node_dir.join("snapshot_7_8.committed"), vec![0u8; 4096]).unwrap();
    // Relabelled: the good snapshot's bytes under a newer name.
    std::fs::write(
        node_dir.join("snapshot_5_6.committed"),
        file_bytes(local.path(), &good),
    )
    .unwrap();
    let target_store = crate::support::store(target.path());
    let restored = restore(
        &local_remote(remote_dir.path()),
        &target_store,
        &RestoreOptions::default(),
    )
    .unwrap();
    assert!(restored.listed);
    assert_eq!(restored.name, good);
    assert_eq!(restored.passed_over.len(), 3, "{:?}", restored.passed_over);
    assert!(
        restored.passed_over[1].contains("relabelled"),
        "{:?}",
        restored.passed_over
    );
}

#[test]
fn restoring_into_a_directory_with_newer_snapshots_keeps_its_latest() {
    let (local, remote_dir, target) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let store = store(local.path());
    persist(&store, 1, 300);
    let remote = local_remote(remote_dir.path());
    Shipper::new(
        Arc::clone(&remote),
        Arc::clone(&store),
        ShipConfig::new("n1"),
    )
    .unwrap()
    .ship_pending()
    .unwrap();
    let target_store = crate::support::store(target.path());
    let newer = persist(&target_store, 9, 300);
    restore(&remote, &target_store, &RestoreOptions::default()).unwrap();
    assert_eq!(target_store.latest().unwrap().unwrap().name(), &newer);
}

#[test]
fn nothing_restorable_is_an_error_naming_each_candidate() {
    let (remote_dir, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target_store = crate::support::store(target.path());
    let err = restore(
        &local_remote(remote_dir.path()),
        &target_store,
        &RestoreOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, snapseal_ship::ShipError::NothingRestored { .. }),
        "{err}"
    );
}

#[test]
fn remote_gc_keeps_the_newest_and_the_held_and_the_shipper_does_not_take_what_it_deleted_for_lost()
{
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = store(local.path());
    let names: Vec<SnapshotName> = (1..=5).map(|i| persist(&store, i, 200)).collect();
    let remote = local_remote(remote_dir.path());
    Shipper::new(
        Arc::clone(&remote),
        Arc::clone(&store),
        ShipConfig::new("n1"),
    )
    .unwrap()
    .ship_pending()
    .unwrap();
    retention::hold(&remote, "n1", &names[0]).unwrap();
    assert!(retention::hold(
        &remote,
        "n1",
        &SnapshotName::parse("snapshot_77_78.committed").unwrap()
    )
    .is_err());
    std::fs::write(remote_dir.path().join("n1").join("notes.txt"), b"not ours").unwrap();
    let mut policy = GcPolicy::new(2);
    policy.dry_run = true;
    let dry = retention::gc(&remote, &policy).unwrap();
    assert_eq!(dry.deleted.len(), 2);
    assert_eq!(
        indexed_names(remote_dir.path(), "n1").len(),
        5,
        "a dry run changes nothing"
    );
    policy.dry_run = false;
    let report = retention::gc(&remote, &policy).unwrap();
    let deleted: Vec<SnapshotName> = report.deleted.iter().map(|o| o.name).collect();
    assert_eq!(deleted, vec![names[2], names[1]]);
    // gc never writes a node's index (its shipper is its one writer): the node's next pass
    // drops what gc deleted, quietly, and ships none of it again though the files are local.
    assert_eq!(indexed_names(remote_dir.path(), "n1").len(), 5);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let next = Shipper::new(
        Arc::clone(&remote),
        Arc::clone(&store),
        ShipConfig::new("n1"),
    )
    .unwrap()
    .with_events(Box::new(move |e| sink.lock().unwrap().push(e.clone())));
    assert!(next.ship_pending().unwrap().shipped.is_empty());
    assert!(
        !events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ShipEvent::MissingOnRemote { .. })),
        "{:?}",
        events.lock().unwrap()
    );
    let want: Vec<String> = [names[0], names[3], names[4]]
        .iter()
        .map(|n| n.file_name())
        .collect();
    assert_eq!(indexed_names(remote_dir.path(), "n1"), want);
    for n in &deleted {
        assert!(!remote_dir.path().join("n1").join(n.file_name()).exists());
    }
    assert!(remote_dir.path().join("n1").join("notes.txt").exists());
    // Released, the held one goes at the next gc.
    assert!(retention::release(&remote, "n1", &names[0]).unwrap());
    let report = retention::gc(&remote, &policy).unwrap();
    assert_eq!(
        report.deleted.iter().map(|o| o.name).collect::<Vec<_>>(),
        vec![names[0]]
    );
}

#[test]
fn a_ttl_keeps_young_objects_beyond_keep_last() {
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = store(local.path());
    for i in 1..=3 {
        persist(&store, i, 200);
    }
    let remote = local_remote(remote_dir.path());
    Shipper::new(
        Arc::clone(&remote),
        Arc::clone(&store),
        ShipConfig::new("n1"),
    )
    .unwrap()
    .ship_pending()
    .unwrap();
    let mut policy = GcPolicy::new(1);
    policy.ttl = Some(std::time::Duration::from_secs(3600));
    assert!(retention::gc(&remote, &policy).unwrap().deleted.is_empty());
}

#[test]
fn a_large_file_goes_up_in_parts_and_comes_back_whole_with_progress_both_ways() {
    let (local, remote_dir, target) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let store = store(local.path());
    let big = persist(&store, 1, (12 << 20) + 123);
    let size = file_bytes(local.path(), &big).len() as u64;
    let remote = local_remote(remote_dir.path());
    let mut config = ShipConfig::new("n1");
    config.part_size = 5 << 20;
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    Shipper::new(Arc::clone(&remote), Arc::clone(&store), config)
        .unwrap()
        .with_events(Box::new(move |e| sink.lock().unwrap().push(e.clone())))
        .ship_pending()
        .unwrap();
    let sent: Vec<u64> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ShipEvent::Progress { name, sent, total } if *name == big && *total == size => {
                Some(*sent)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        [5 << 20, 10 << 20, size],
        "one progress event per 5 MiB part"
    );

    let fetched = Arc::new(Mutex::new(Vec::new()));
    let heard = Arc::clone(&fetched);
    let mut opts = RestoreOptions::default();
    opts.progress = Some(Arc::new(move |name, done, total| {
        heard.lock().unwrap().push((*name, done, total))
    }));
    let target_store = crate::support::store(target.path());
    assert_eq!(restore(&remote, &target_store, &opts).unwrap().name, big);
    assert_eq!(
        *fetched.lock().unwrap(),
        [(big, 8 << 20, size), (big, size, size)],
        "one progress call per 8 MiB piece"
    );
    assert_eq!(
        file_bytes(target.path(), &big),
        file_bytes(local.path(), &big)
    );
}

#[test]
fn releasing_a_hold_that_is_not_there_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let remote_dir = tmp.path().join("never-written");
    let name = SnapshotName::parse("snapshot_1_2.committed").unwrap();
    let had = retention::release(&local_remote(&remote_dir), "n1", &name).unwrap();
    assert!(!had);
    assert!(!remote_dir.exists(), "no index, no directory was created");
}
