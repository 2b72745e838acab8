//! The main paths of the store on a real directory (tempfile): persist, latest, retention,
//! quarantine, the lock, stale files, symlinks and foreign files.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use crate::fixture::*;
use snapseal_persist::fs::RealFs;
use snapseal_persist::{FileState, PersistError, SnapshotStore, StoreError, StoreOptions};

fn open_real(dir: &Path, opts: StoreOptions) -> Result<SnapshotStore, StoreError> {
    SnapshotStore::open(Arc::new(RealFs), dir, opts)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn persist_latest_and_retention_on_a_real_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/snapshots");
    let mut o = StoreOptions::new(Arc::new(real_verifier()));
    o.keep_last = 2;
    let store = open_real(&dir, o).unwrap();
    assert_eq!(store.dir(), dir);
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for idx in 1..=3 {
        let snap = Snap::new(idx, 100_000);
        let c = store.persist(&snap.request()).unwrap();
        assert_eq!(c.path, dir.join(snap.file_name(FileState::Committed)));
        assert_eq!(fs::read(&c.path).unwrap(), snap.file_bytes());
        assert_eq!(c.file_len, snap.file_bytes().len() as u64);
        let meta = fs::metadata(&c.path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.nlink(), 1, "no second name left behind");
    }
    assert_eq!(
        names(&dir),
        [".lock", "snapshot_2_3.committed", "snapshot_3_4.committed"]
    );
    let latest = store.latest().unwrap().unwrap();
    assert_eq!(latest.name().idx, 3);
    assert_eq!(latest.read_body().unwrap(), &Snap::new(3, 100_000).body[..]);
    assert_eq!(latest.receipt_bytes(), &Snap::new(3, 100_000).receipt[..]);
    let e = store.persist(&Snap::new(3, 10).request()).unwrap_err();
    assert!(matches!(e, PersistError::AlreadyCommitted { .. }), "{e}");
}

#[test]
fn a_second_store_on_the_same_directory_is_locked_out() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_real(tmp.path(), opts()).unwrap();
    let e = open_real(tmp.path(), opts()).unwrap_err();
    assert!(
        matches!(&e, StoreError::Locked { dir } if dir == tmp.path()),
        "{e}"
    );
    drop(store);
    open_real(tmp.path(), opts()).unwrap();
}

#[test]
fn stale_files_go_foreign_files_and_symlinks_stay_targets_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snaps");
    fs::create_dir(&dir).unwrap();
    let outside = tmp.path().join("precious");
    fs::write(&outside, b"do not touch").unwrap();
    fs::write(dir.join("snapshot_4_5"), b"stale").unwrap();
    for foreign in ["notes.txt", "snapshot_01_2", "snapshot_1_2.tmp"] {
        fs::write(dir.join(foreign), foreign).unwrap();
    }
    symlink(&outside, dir.join("snapshot_6_7")).unwrap();
    symlink(&outside, dir.join("snapshot_9_10.committed")).unwrap();
    fs::write(
        dir.join("snapshot_1_2.committed"),
        Snap::new(1, 100).file_bytes(),
    )
    .unwrap();

    let mut o = opts();
    o.keep_last = 1;
    let store = open_real(&dir, o).unwrap();
    assert!(!dir.join("snapshot_4_5").exists(), "stale file removed");
    // latest() skips the symlinked committed name and finds the real file.
    assert_eq!(store.latest().unwrap().unwrap().name().idx, 1);
    // Persisting over our own uncommitted name held by a symlink removes the link itself.
    store.persist(&Snap::new(6, 100).request()).unwrap();
    // A symlink under a committed name blocks that commit.
    let e = store.persist(&Snap::new(9, 100).request()).unwrap_err();
    assert!(matches!(e, PersistError::AlreadyCommitted { .. }), "{e}");
    store.apply_retention().unwrap();

    assert_eq!(fs::read(&outside).unwrap(), b"do not touch");
    assert!(fs::symlink_metadata(dir.join("snapshot_9_10.committed"))
        .unwrap()
        .file_type()
        .is_symlink());
    for foreign in ["notes.txt", "snapshot_01_2", "snapshot_1_2.tmp"] {
        assert_eq!(fs::read(dir.join(foreign)).unwrap(), foreign.as_bytes());
    }
    assert_eq!(
        names(&dir),
        [
            ".lock",
            "notes.txt",
            "snapshot_01_2",
            "snapshot_1_2.tmp",
            "snapshot_6_7.committed",
            "snapshot_9_10.committed",
        ]
    );
}

#[test]
fn a_damaged_file_is_quarantined_on_a_real_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_real(tmp.path(), StoreOptions::new(Arc::new(real_verifier()))).unwrap();
    store.persist(&Snap::new(1, 5000).request()).unwrap();
    let c = store.persist(&Snap::new(2, 5000).request()).unwrap();
    let mut bytes = fs::read(&c.path).unwrap();
    bytes[1000] ^= 0x10;
    // Rewrite in place (as bit rot would), keeping the inode.
    fs::OpenOptions::new()
        .write(true)
        .open(&c.path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
        .unwrap();
    let latest = store.latest().unwrap().unwrap();
    assert_eq!(latest.name().idx, 1);
    assert!(!c.path.exists());
    assert_eq!(
        fs::read(tmp.path().join("snapshot_2_3.committed.corrupt")).unwrap(),
        bytes
    );
    assert_eq!(store.stats().quarantined, 1);
}

#[test]
fn a_reopened_store_finds_what_the_previous_one_committed() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_real(tmp.path(), opts()).unwrap();
        store.persist(&Snap::new(7, 1000).request()).unwrap();
    }
    let store = open_real(tmp.path(), opts()).unwrap();
    let latest = store.latest().unwrap().unwrap();
    assert_eq!(latest.name().idx, 7);
    assert_eq!(
        latest.file_len(),
        Snap::new(7, 1000).file_bytes().len() as u64
    );
}

/// The lock is on the directory itself: unlinking `.lock` under a running store does not let
/// a second store in.
#[test]
fn unlinking_the_lock_file_does_not_let_a_second_store_in() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snapshots");
    let opts = || StoreOptions::new(Arc::new(real_verifier()));
    let first = open_real(&dir, opts()).unwrap();
    fs::remove_file(dir.join(".lock")).unwrap();
    let e = open_real(&dir, opts()).unwrap_err();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("another process"), "{e}");
    drop(first);
    open_real(&dir, opts()).unwrap();
}
