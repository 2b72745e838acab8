//! The remote layout on `file://` remotes: one writer per object (each node its own index,
//! each hold its own object), what readers do with an index that is missing, torn, stale or
//! disagreeing, `remote repair`, the migration from the legacy shared index, node identity,
//! and a shipper killed between an upload and its index write. The trials themselves are in
//! `layout_trials.rs`, shared with the `s3` binary.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::layout_trials::{self, Opener};
use crate::support::*;
use snapseal_ship::{FileHook, ShipConfig, Shipper};

/// Empty `file://` remote locations under one temporary directory.
struct Locations {
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl Locations {
    fn new() -> Self {
        Locations {
            dir: tempfile::tempdir().unwrap(),
            next: AtomicUsize::new(0),
        }
    }

    fn fresh(&self) -> Opener {
        let at: PathBuf = self.dir.path().join(format!(
            "remote-{}",
            self.next.fetch_add(1, Ordering::Relaxed)
        ));
        Box::new(move || local_remote(&at))
    }
}

#[test]
fn two_shippers_of_different_nodes_on_one_remote_lose_nothing_in_20_trials() {
    let l = Locations::new();
    layout_trials::two_nodes_lose_nothing(&|| l.fresh(), 20);
}

#[test]
fn two_shippers_with_the_same_node_name_are_refused_and_nothing_is_lost() {
    let l = Locations::new();
    layout_trials::same_node_is_refused(&|| l.fresh());
}

#[test]
fn a_torn_deleted_or_stale_node_index_is_worked_around_by_readers_and_rewritten_by_repair() {
    let l = Locations::new();
    layout_trials::a_torn_deleted_or_stale_index_is_worked_around_and_repaired(&|| l.fresh());
}

#[test]
fn lost_index_entries_and_lost_objects_are_shipped_again() {
    let l = Locations::new();
    layout_trials::lost_entries_and_lost_objects_are_shipped_again(&|| l.fresh());
}

#[test]
fn a_legacy_index_is_read_once_and_migrated_with_its_holds() {
    let l = Locations::new();
    layout_trials::a_legacy_index_migrates_with_its_holds(&|| l.fresh());
}

const CHILD_ENV: &str = "SNAPSEAL_SHIP_BEFORE_INDEX_CHILD";

/// The shipper the test kills: it says when its object is confirmed, then waits there, before
/// the index write, to be killed.
#[test]
#[ignore = "the child process of a_shipper_killed_after_its_upload_completed_indexes_it_at_the_next_pass"]
fn before_index_child() {
    let spec = std::env::var(CHILD_ENV).unwrap();
    let mut parts = spec.split('|');
    let (dir, remote, marker) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        PathBuf::from(parts.next().unwrap()),
    );
    let mut config = ShipConfig::new("n1");
    config.claim_wait = Duration::ZERO;
    config.before_index = Some(FileHook(Arc::new(move |_| {
        std::fs::write(&marker, b"confirmed").unwrap();
        std::thread::sleep(Duration::from_secs(600));
    })));
    let shipper = Shipper::new(
        local_remote(std::path::Path::new(remote)),
        store(std::path::Path::new(dir)),
        config,
    )
    .unwrap();
    let _ = shipper.ship_pending();
}

#[test]
fn a_shipper_killed_after_its_upload_completed_indexes_it_at_the_next_pass() {
    let (local, remote_dir, scratch) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let name = persist(&store(local.path()), 1, 3000);
    let marker = scratch.path().join("confirmed");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "layout::before_index_child",
            "--ignored",
            "--nocapture",
        ])
        .env(
            CHILD_ENV,
            format!(
                "{}|{}|{}",
                local.path().display(),
                remote_dir.path().display(),
                marker.display()
            ),
        )
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the upload was never confirmed");
        assert!(child.try_wait().unwrap().is_none(), "the child ended first");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL, between the confirmation and the index write
    child.wait().unwrap();
    let object = remote_dir.path().join("n1").join(name.file_name());
    assert_eq!(
        std::fs::read(&object).unwrap(),
        file_bytes(local.path(), &name)
    );
    assert!(crate::indexes::indexed(remote_dir.path(), "n1").is_empty());

    let restarted = Shipper::new(
        local_remote(remote_dir.path()),
        store(local.path()),
        ShipConfig::new("n1"),
    )
    .unwrap();
    let report = restarted.ship_pending().unwrap();
    assert_eq!(report.shipped, [name]);
    assert!(
        report.uploaded.is_empty(),
        "the complete object is not sent again"
    );
    assert_eq!(
        crate::indexes::indexed(remote_dir.path(), "n1"),
        [name.file_name()]
    );
}
