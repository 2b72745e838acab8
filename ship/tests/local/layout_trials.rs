//! The remote layout's trials, written once for any remote: the `local` binary runs them on
//! `file://` remotes (`layout.rs`), the `s3` binary on each S3 server (`s3/layout.rs`, which
//! includes this file). Each takes `fresh`, which makes an empty remote location and returns
//! an opener for it (each call a `Remote` of its own, as two processes would have).

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use object_store::ObjectStoreExt;
use snapseal_persist::{SnapshotName, SnapshotStore};
use snapseal_ship::index::{LegacyIndex, LegacyNode, LEGACY_FORMAT};
use snapseal_ship::repair::{self, LegacyRepair, RepairOptions};
use snapseal_ship::retention::{self, GcPolicy};
use snapseal_ship::{
    restore, ErrorClass, Remote, RestoreOptions, ShipConfig, ShipError, ShipEvent, Shipper,
    INDEX_OBJECT,
};

use crate::support::check::{assert_index_consistent, block_on, read_node_index};
use crate::support::*;

/// Makes an empty remote location; the opener it returns opens it.
pub(crate) type Fresh<'a> = &'a dyn Fn() -> Opener;

/// Opens one remote location.
pub(crate) type Opener = Box<dyn Fn() -> Arc<Remote> + Send + Sync>;

/// A config for `node` that claims quickly and gives up instead of looping.
fn config(node: &str) -> ShipConfig {
    let mut c = ShipConfig::new(node);
    c.claim_wait = Duration::from_millis(20);
    c.max_attempts = Some(5);
    c.backoff_initial = Duration::from_millis(10);
    c
}

fn put(remote: &Remote, key: &object_store::path::Path, bytes: &[u8]) {
    block_on(remote.store().put(key, bytes.to_vec().into())).unwrap();
}

fn delete(remote: &Remote, key: &object_store::path::Path) {
    block_on(remote.store().delete(key)).unwrap();
}

/// The snapshot objects a listing shows of `node`, oldest first.
fn listed(remote: &Remote, node: &str) -> Vec<String> {
    retention::list(remote)
        .unwrap()
        .into_iter()
        .filter(|o| o.node == node)
        .map(|o| o.name.file_name())
        .collect()
}

fn file_names(names: &[SnapshotName]) -> Vec<String> {
    names.iter().map(|n| n.file_name()).collect()
}

fn restore_newest(remote: &Remote) -> snapseal_ship::Restored {
    let target = tempfile::tempdir().unwrap();
    restore(remote, &store(target.path()), &RestoreOptions::default()).unwrap()
}

/// Two shippers of different nodes on one remote at the same time, `trials` times: every
/// snapshot of each is shipped and named by its node's index, which agrees with the listing
/// and with the local files byte for byte.
pub(crate) fn two_nodes_lose_nothing(fresh: Fresh<'_>, trials: usize) {
    for trial in 0..trials {
        let open = Arc::new(fresh());
        let locals = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let barrier = Arc::new(Barrier::new(2));
        let shipped: Vec<Vec<SnapshotName>> = std::thread::scope(|s| {
            let handles: Vec<_> = ["a", "b"]
                .iter()
                .zip(&locals)
                .map(|(node, local)| {
                    let (open, barrier) = (Arc::clone(&open), Arc::clone(&barrier));
                    s.spawn(move || {
                        let store = store(local.path());
                        let shipper =
                            Shipper::new(open(), Arc::clone(&store), config(node)).unwrap();
                        barrier.wait();
                        let mut names = Vec::new();
                        for i in 1..=4u64 {
                            names.push(persist(&store, i * 10, 1000 + i as usize));
                            shipper.ship_pending().unwrap();
                        }
                        names
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let remote = open();
        for ((node, local), names) in ["a", "b"].iter().zip(&locals).zip(&shipped) {
            let indexed = assert_index_consistent(&remote, local.path(), node);
            assert_eq!(
                indexed,
                file_names(names),
                "trial {trial}: node {node}'s index"
            );
            assert_eq!(
                listed(&remote, node),
                indexed,
                "trial {trial}: node {node}'s listing"
            );
            assert!(
                retention::list(&remote).unwrap().iter().all(|o| o.indexed),
                "trial {trial}: every object is named by its index"
            );
        }
    }
}

/// Two shippers with the same node name on one remote: the one that finds the other's id in
/// the node's index stops with `NodeInUse` (terminal), one after the other or at once, and
/// no shipped snapshot is lost — restore finds the newest, repair indexes every one.
pub(crate) fn same_node_is_refused(fresh: Fresh<'_>) {
    let open = fresh();
    let (la, lb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (store(la.path()), store(lb.path()));
    let a_names = vec![persist(&sa, 1, 500), persist(&sa, 2, 500)];
    let a = Shipper::new(open(), Arc::clone(&sa), config("n1")).unwrap();
    assert_eq!(a.ship_pending().unwrap().shipped, a_names);
    // A second machine configured with the same node name: its claim takes the index over.
    let b_names = vec![persist(&sb, 101, 500), persist(&sb, 102, 500)];
    let b = Shipper::new(open(), Arc::clone(&sb), config("n1")).unwrap();
    assert_eq!(b.ship_pending().unwrap().shipped, b_names);
    // The first one's next write finds another writer: it stops, and says why.
    persist(&sa, 3, 500);
    let err = a.ship_pending().unwrap_err();
    assert!(matches!(err, ShipError::NodeInUse { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert!(
        err.to_string().contains("two shippers for node n1"),
        "{err}"
    );
    assert!(a.stopped().is_some());
    // Nothing shipped is lost: every confirmed object is there.
    let remote = open();
    let all: BTreeSet<String> = file_names(&a_names)
        .into_iter()
        .chain(file_names(&b_names))
        .collect();
    let on_remote: BTreeSet<String> = listed(&remote, "n1").into_iter().collect();
    assert!(on_remote.is_superset(&all), "{on_remote:?}");
    assert_eq!(restore_newest(&remote).name, b_names[1]);
    let report = repair::repair(&remote, &*options().verifier, &RepairOptions::default()).unwrap();
    let kept: BTreeSet<String> = file_names(&report.nodes[0].kept).into_iter().collect();
    assert!(kept.is_superset(&all), "{kept:?}");

    // At once: both claim, then each ships again; at least one is refused.
    let open = Arc::new(fresh());
    let locals = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let barrier = Arc::new(Barrier::new(2));
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for (i, local) in locals.iter().enumerate() {
            let (open, barrier, results) = (Arc::clone(&open), Arc::clone(&barrier), &results);
            s.spawn(move || {
                let store = store(local.path());
                let base = 1000 * (i as u64 + 1);
                persist(&store, base, 300);
                let shipper = Shipper::new(open(), Arc::clone(&store), config("m")).unwrap();
                barrier.wait();
                let first = shipper.ship_pending().err().map(|e| e.to_string());
                barrier.wait();
                persist(&store, base + 1, 300);
                let second = shipper.ship_pending().err().map(|e| e.to_string());
                let refused = shipper
                    .stopped()
                    .is_some_and(|why| why.contains("two shippers for node m"));
                results.lock().unwrap().push((refused, first, second));
            });
        }
    });
    let results = results.into_inner().unwrap();
    let refused = results.iter().filter(|(refused, _, _)| *refused).count();
    assert!(refused >= 1, "{results:?}");
}

/// A node's index torn, deleted or stale: restore still takes the newest snapshot that
/// verifies, passing over a forged object; `remote repair` names every object that verifies
/// (dropping the forged one, with the reason) and keeps the hold.
pub(crate) fn a_torn_deleted_or_stale_index_is_worked_around_and_repaired(fresh: Fresh<'_>) {
    for case in ["torn", "deleted", "stale"] {
        let open = fresh();
        let remote = open();
        let local = tempfile::tempdir().unwrap();
        let st = store(local.path());
        let names: Vec<SnapshotName> = (1..=3).map(|i| persist(&st, i, 700)).collect();
        let shipper = Shipper::new(open(), Arc::clone(&st), config("n1")).unwrap();
        shipper.ship_pending().unwrap();
        let full = read_node_index(&remote, "n1").unwrap();
        retention::hold(&remote, "n1", &names[0]).unwrap();
        let forged = SnapshotName::parse("snapshot_9_10.committed").unwrap();
        put(&remote, &remote.key("n1", &forged.file_name()), b"forged");
        let index_key = remote.key("n1", INDEX_OBJECT);
        match case {
            "torn" => put(&remote, &index_key, br#"{"format": 2, "node": "n1", "wri"#),
            "deleted" => delete(&remote, &index_key),
            _ => {
                // What the index said before the newest was indexed.
                let mut stale = full.clone();
                stale.snapshots.pop();
                put(&remote, &index_key, &stale.encode());
            }
        }
        let restored = restore_newest(&remote);
        assert_eq!(
            restored.name, names[2],
            "{case}: {:?}",
            restored.passed_over
        );
        assert!(restored.listed, "{case}");
        assert!(
            restored.passed_over[0].contains("snapshot_9_10"),
            "{case}: {:?}",
            restored.passed_over
        );

        let report =
            repair::repair(&remote, &*options().verifier, &RepairOptions::default()).unwrap();
        assert_eq!(report.nodes.len(), 1, "{case}");
        let n = &report.nodes[0];
        assert_eq!(n.kept, names, "{case}");
        assert_eq!(n.dropped.len(), 1, "{case}: {:?}", n.dropped);
        assert_eq!(n.dropped[0].name, forged);
        assert!(
            n.dropped[0].reason.contains("shorter than a header"),
            "{case}"
        );
        assert_eq!(n.holds, [names[0]], "{case}");
        assert_eq!(report.legacy, LegacyRepair::Absent);
        assert_eq!(
            assert_index_consistent(&remote, local.path(), "n1"),
            file_names(&names),
            "{case}"
        );
        let after = retention::list(&remote).unwrap();
        assert!(
            after.iter().find(|o| o.name == names[0]).unwrap().held,
            "{case}"
        );
        assert!(
            !after.iter().find(|o| o.name == forged).unwrap().indexed,
            "{case}"
        );
        // The repaired node's shipper was running: its next write finds repair's id, it stops.
        persist(&st, 4, 700);
        let err = shipper.ship_pending().unwrap_err();
        assert!(matches!(err, ShipError::NodeInUse { .. }), "{case}: {err}");
        // Restarted, it takes the node over and goes on.
        let restarted = Shipper::new(open(), Arc::clone(&st), config("n1")).unwrap();
        assert_eq!(
            restarted.ship_pending().unwrap().uploaded.len(),
            1,
            "{case}"
        );
    }
}

/// An index entry lost (a snapshot older than the newest indexed one) is shipped again — found
/// complete on the remote, not uploaded — and an indexed snapshot whose object is gone is
/// reported and uploaded again, instead of nothing being shipped.
pub(crate) fn lost_entries_and_lost_objects_are_shipped_again(fresh: Fresh<'_>) {
    let open = fresh();
    let remote = open();
    let local = tempfile::tempdir().unwrap();
    let st = store(local.path());
    let names: Vec<SnapshotName> = (1..=3).map(|i| persist(&st, i, 600)).collect();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let shipper = Shipper::new(open(), Arc::clone(&st), config("n1"))
        .unwrap()
        .with_events(Box::new(move |e| sink.lock().unwrap().push(e.clone())));
    shipper.ship_pending().unwrap();
    // The entry of the middle one lost (the index otherwise as the shipper wrote it).
    let mut index = read_node_index(&remote, "n1").unwrap();
    index.snapshots.remove(1);
    put(&remote, &remote.key("n1", INDEX_OBJECT), &index.encode());
    let report = shipper.ship_pending().unwrap();
    assert_eq!(report.shipped, [names[1]]);
    assert!(report.uploaded.is_empty(), "it was complete on the remote");
    assert_eq!(
        assert_index_consistent(&remote, local.path(), "n1"),
        file_names(&names)
    );
    // The newest object lost on the remote: said, and shipped again.
    delete(&remote, &remote.key("n1", &names[2].file_name()));
    let report = shipper.ship_pending().unwrap();
    assert_eq!(report.uploaded, [names[2]]);
    assert!(events
        .lock()
        .unwrap()
        .contains(&ShipEvent::MissingOnRemote {
            name: names[2],
            reshipping: true
        }));
    assert_eq!(
        assert_index_consistent(&remote, local.path(), "n1"),
        file_names(&names)
    );
}

/// A remote in the legacy layout (one shared `index.json` with holds): readers use it for a
/// node without an index of its own, gc honours its holds, release refuses a hold only it
/// holds; the node's shipper migrates the node (entries and holds); repair migrates the rest
/// and deletes it; the hold survives all of it.
pub(crate) fn a_legacy_index_migrates_with_its_holds(fresh: Fresh<'_>) {
    let open = fresh();
    let remote = open();
    let local = tempfile::tempdir().unwrap();
    let st: Arc<SnapshotStore> = store(local.path());
    let names: Vec<SnapshotName> = (1..=3).map(|i| persist(&st, i, 400)).collect();
    Shipper::new(open(), Arc::clone(&st), config("n1"))
        .unwrap()
        .ship_pending()
        .unwrap();
    Shipper::new(open(), Arc::clone(&st), config("n2"))
        .unwrap()
        .ship_pending()
        .unwrap();
    // Rewrite it as the previous version left it.
    let mut legacy = LegacyIndex {
        format: LEGACY_FORMAT,
        ..LegacyIndex::default()
    };
    for node in ["n1", "n2"] {
        let index = read_node_index(&remote, node).unwrap();
        legacy.nodes.insert(
            node.to_string(),
            LegacyNode {
                snapshots: index.snapshots,
                holds: [names[0].file_name()].into(),
            },
        );
        delete(&remote, &remote.key(node, INDEX_OBJECT));
    }
    put(&remote, &remote.index_key(), &legacy.encode());

    let objects = retention::list(&remote).unwrap();
    assert!(objects.iter().all(|o| o.indexed), "{objects:?}");
    assert_eq!(objects.iter().filter(|o| o.held).count(), 2);
    let restored = restore_newest(&remote);
    assert!(!restored.listed, "the legacy index vouches for its objects");
    let gc = retention::gc(&remote, &GcPolicy::new(1)).unwrap();
    assert!(
        gc.kept.iter().any(|o| o.name == names[0]) && gc.deleted.iter().all(|o| o.name == names[1]),
        "{gc:?}"
    );
    assert!(retention::release(&remote, "n1", &names[0]).is_err());

    // n1's shipper migrates n1: its entries (what gc left) and its hold.
    persist(&st, 4, 400);
    let report = Shipper::new(open(), Arc::clone(&st), config("n1"))
        .unwrap()
        .ship_pending()
        .unwrap();
    assert_eq!(report.shipped.len(), 1);
    let index = read_node_index(&remote, "n1").unwrap();
    let indexed: Vec<&str> = index.snapshots.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(indexed[0], names[0].file_name());
    assert!(crate::support::check::visible(
        &remote,
        &remote
            .node_prefix("n1")
            .join("holds")
            .join(names[0].file_name())
    ));
    // repair migrates n2 and deletes the legacy index; every hold is there.
    let report = repair::repair(&remote, &*options().verifier, &RepairOptions::default()).unwrap();
    assert_eq!(report.legacy, LegacyRepair::Deleted);
    for n in &report.nodes {
        assert_eq!(n.holds, [names[0]], "{}", n.node);
    }
    assert!(!crate::support::check::visible(
        &remote,
        &remote.index_key()
    ));
    let gc = retention::gc(&remote, &GcPolicy::new(1)).unwrap();
    assert!(gc.deleted.iter().all(|o| o.name != names[0]), "{gc:?}");
    assert!(retention::release(&remote, "n2", &names[0]).unwrap());
}
