//! The two APIs from inside tokio: the async one on the caller's runtime (current-thread and
//! multi-thread), and the blocking one called, and its values dropped, inside a task — which
//! used to panic ("Cannot start a runtime from within a runtime", or a runtime dropped in an
//! async context).

use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::support::*;
use snapseal_persist::SnapshotName;
use snapseal_ship::retention::{self, GcPolicy};
use snapseal_ship::{restore, restore_async, RestoreOptions, ShipConfig, Shipper};

/// A local store holding snapshots 1, 2 and 3, and its directory.
fn three_snapshots() -> (
    tempfile::TempDir,
    Arc<snapseal_persist::SnapshotStore>,
    Vec<SnapshotName>,
) {
    let local = tempfile::tempdir().unwrap();
    let store = store(local.path());
    let names = (1..=3).map(|i| persist(&store, i, 2000)).collect();
    (local, store, names)
}

/// Ships, lists, holds, releases, collects and restores through the async API only, on
/// whatever runtime runs it; the restore into a fresh store gets the newest file byte for
/// byte.
async fn round_trip_through_the_async_api() {
    let (local, source, names) = three_snapshots();
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = local_remote(remote_dir.path());
    let shipper = Shipper::new(Arc::clone(&remote), source, ShipConfig::new("n1")).unwrap();

    let report = shipper.ship().await.unwrap();
    assert_eq!(report.shipped, names);
    assert!(shipper.ship().await.unwrap().shipped.is_empty());

    // What a listing shows, through a dry gc (whose report keeps everything it lists).
    retention::list_async(&remote).await.unwrap();
    let mut dry = GcPolicy::new(usize::MAX);
    dry.dry_run = true;
    let objects = retention::gc_async(&remote, &dry).await.unwrap().kept;
    let mut listed: Vec<SnapshotName> = objects.iter().map(|o| o.name).collect();
    listed.sort_by_key(|n| (n.idx, n.evidence_idx));
    assert_eq!(listed, names);
    assert!(objects.iter().all(|o| o.indexed && !o.held));

    retention::hold_async(&remote, "n1", &names[0])
        .await
        .unwrap();
    let report = retention::gc_async(&remote, &GcPolicy::new(1))
        .await
        .unwrap();
    let deleted: Vec<SnapshotName> = report.deleted.iter().map(|o| o.name).collect();
    assert_eq!(
        deleted,
        [names[1]],
        "the held oldest and the newest are kept"
    );
    assert!(retention::release_async(&remote, "n1", &names[0])
        .await
        .unwrap());

    let target = tempfile::tempdir().unwrap();
    let restored = restore_async(&remote, &store(target.path()), &RestoreOptions::default())
        .await
        .unwrap();
    assert_eq!(restored.name, names[2]);
    assert!(restored.written);
    assert_eq!(
        file_bytes(target.path(), &names[2]),
        file_bytes(local.path(), &names[2])
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_async_api_ships_lists_and_restores_on_a_current_thread_runtime() {
    round_trip_through_the_async_api().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_api_ships_lists_and_restores_on_a_multi_thread_runtime() {
    round_trip_through_the_async_api().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipper_pass_and_a_restore_run_as_spawned_tasks() {
    let (local, source, names) = three_snapshots();
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = local_remote(remote_dir.path());
    let shipper =
        Arc::new(Shipper::new(Arc::clone(&remote), source, ShipConfig::new("n1")).unwrap());
    // `tokio::spawn` needs the futures to be `Send` and `'static`: owned `Arc`s moved in.
    let pass = tokio::spawn({
        let shipper = Arc::clone(&shipper);
        async move { shipper.ship().await }
    });
    assert_eq!(pass.await.unwrap().unwrap().shipped, names);
    let target = tempfile::tempdir().unwrap();
    let into = store(target.path());
    let restored =
        tokio::spawn(
            async move { restore_async(&remote, &into, &RestoreOptions::default()).await },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(restored.name, names[2]);
    assert_eq!(
        file_bytes(target.path(), &names[2]),
        file_bytes(local.path(), &names[2])
    );
}

/// Calls every blocking fn of the crate, then drops the last `Shipper` and `Remote` (and with
/// them the private runtime those calls built), all on the calling thread.
fn every_blocking_call_then_drop(remote_dir: &std::path::Path) {
    let (local, source, names) = three_snapshots();
    let remote = local_remote(remote_dir);
    let mut config = ShipConfig::new("n1");
    config.cooldown = Duration::ZERO;
    let shipper = Shipper::new(Arc::clone(&remote), source, config).unwrap();
    assert_eq!(shipper.request().unwrap().unwrap().shipped, names);
    assert!(shipper.ship_pending().unwrap().shipped.is_empty());
    retention::list(&remote).unwrap();
    retention::hold(&remote, "n1", &names[0]).unwrap();
    assert!(retention::release(&remote, "n1", &names[0]).unwrap());
    assert_eq!(
        retention::gc(&remote, &GcPolicy::new(1))
            .unwrap()
            .deleted
            .len(),
        2
    );
    let target = tempfile::tempdir().unwrap();
    let restored = restore(&remote, &store(target.path()), &RestoreOptions::default()).unwrap();
    assert_eq!(
        file_bytes(target.path(), &restored.name),
        file_bytes(local.path(), &names[2])
    );
    drop(shipper);
    drop(remote);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_blocking_call_inside_a_tokio_task_completes_and_dropping_there_does_not_panic() {
    let remote_dir = tempfile::tempdir().unwrap();
    let dir = remote_dir.path().to_path_buf();
    tokio::spawn(async move { every_blocking_call_then_drop(&dir) })
        .await
        .unwrap();
}

#[test]
fn a_blocking_call_from_a_current_thread_runtime_completes_without_a_deadlock() {
    let remote_dir = tempfile::tempdir().unwrap();
    let dir = remote_dir.path().to_path_buf();
    let (done, finished) = mpsc::channel();
    // Driven on a thread of its own so that a deadlock fails the test instead of hanging it.
    let driver = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { every_blocking_call_then_drop(&dir) });
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("blocking calls on a current-thread runtime: not done after 60 s (deadlock)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(driver.join().unwrap_err())
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_remote_and_a_shipper_opened_and_dropped_inside_a_task_do_not_panic() {
    let (_local, source, _) = three_snapshots();
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = local_remote(remote_dir.path());
    let shipper = Shipper::new(Arc::clone(&remote), source, ShipConfig::new("n1")).unwrap();
    drop(shipper);
    drop(remote);
}

#[test]
fn a_blocking_call_from_a_tokio_blocking_thread_completes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let remote_dir = tempfile::tempdir().unwrap();
    let dir = remote_dir.path().to_path_buf();
    rt.block_on(rt.spawn_blocking(move || every_blocking_call_then_drop(&dir)))
        .unwrap();
}
