//! A hostile `file://` remote and a hostile restore target: symbolic links where node
//! directories, objects and the index should be, FIFOs, a read-only remote, a sparse giant
//! claiming to be a snapshot, junk and links at the names a restore writes, and I/O errors on
//! the newest candidate. Nothing outside the remote is ever read, written or deleted; no call
//! hangs; every result says what happened.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use snapseal_persist::fs::{Fault, FaultKind, Op, SimFs};
use snapseal_persist::internals::format::Header;
use snapseal_persist::internals::PendingName;
use snapseal_persist::Flags;
use snapseal_persist::{SnapshotName, SnapshotStore};
use snapseal_ship::index::{EntryClaims, IndexEntry, NodeIndex};
use snapseal_ship::retention::{self, GcPolicy};
use snapseal_ship::{
    restore, ErrorClass, RestoreOptions, ShipConfig, ShipError, Shipper, INDEX_OBJECT,
};

/// Runs `f` to completion on a runtime of its own (the remote's is private).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Runs `f` on a thread and returns what it returned; fails the test if it is still running
/// after a minute. Every call here makes a few small reads: only a hang takes that long.
fn promptly<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what}: still running after 60 s: it hangs"))
}

/// Ships snapshots `idx` (1 KiB each) of a fresh local store as node `n1` to `remote`;
/// returns the store's directory and the names.
fn shipped(remote: &Path, idx: &[u64]) -> (tempfile::TempDir, Vec<SnapshotName>) {
    let local = tempfile::tempdir().unwrap();
    let store = store(local.path());
    let names: Vec<SnapshotName> = idx.iter().map(|&i| persist(&store, i, 1024)).collect();
    Shipper::new(local_remote(remote), store, ShipConfig::new("n1"))
        .unwrap()
        .ship_pending()
        .unwrap();
    (local, names)
}

/// Every file under `dir` with its bytes (links listed as links, not followed).
fn snapshot_of(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(snapshot_of(&e.path()));
        } else if t.is_symlink() {
            out.push((e.path(), b"-> link".to_vec()));
        } else {
            out.push((e.path(), std::fs::read(e.path()).unwrap()));
        }
    }
    out.sort();
    out
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// `node`'s index on `remote`, with an entry naming the committed file `bytes`.
fn index_naming(remote: &Path, node: &str, name: &SnapshotName, bytes: &[u8]) -> NodeIndex {
    let mut index = crate::indexes::node_index(remote, node).unwrap();
    index.snapshots.push(IndexEntry {
        name: name.file_name(),
        size: bytes.len() as u64,
        blake3: blake3::hash(bytes).to_hex().to_string(),
        claims: EntryClaims::of(&Header::decode(bytes).unwrap()),
        shipped_unix: 0,
    });
    index
}

#[test]
fn remote_gc_never_deletes_through_a_symlinked_node_directory() {
    let (remote, node_store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    shipped(remote.path(), &[1, 2, 3]);
    // A node's own snapshot directory, reachable from the remote through a link.
    let store = store(node_store.path());
    for i in 1..=4 {
        persist(&store, i * 10, 512);
    }
    drop(store);
    symlink(node_store.path(), remote.path().join("n2")).unwrap();
    let before = snapshot_of(node_store.path());

    let report = retention::gc(&local_remote(remote.path()), &GcPolicy::new(1)).unwrap();
    assert_eq!(
        snapshot_of(node_store.path()),
        before,
        "nothing outside is touched"
    );
    assert!(
        report
            .kept
            .iter()
            .chain(&report.deleted)
            .all(|o| o.node == "n1"),
        "nothing behind the link is even listed: {report:?}"
    );
    assert_eq!(
        report.deleted.len(),
        2,
        "the remote's own objects are collected"
    );
}

#[test]
fn a_listing_never_walks_into_a_symlinked_directory() {
    let (remote, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    shipped(remote.path(), &[1]);
    std::fs::write(outside.path().join("snapshot_5_6.committed"), b"outside").unwrap();
    symlink(outside.path(), remote.path().join("n3")).unwrap();
    symlink("/usr", remote.path().join("n4")).unwrap();
    let objects = retention::list(&local_remote(remote.path())).unwrap();
    let nodes: Vec<&str> = objects.iter().map(|o| o.node.as_str()).collect();
    assert_eq!(nodes, ["n1"]);
}

#[test]
fn ship_refuses_to_write_through_a_symlinked_node_directory_and_stops() {
    let (remote, outside, local) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    symlink(outside.path(), remote.path().join("n1")).unwrap();
    let store = store(local.path());
    persist(&store, 1, 1024);
    let shipper = Shipper::new(local_remote(remote.path()), store, ShipConfig::new("n1")).unwrap();
    let err = promptly("ship", move || {
        let err = shipper.ship_pending().unwrap_err();
        (err, shipper.stats().retries)
    });
    assert_eq!(err.0.class(), ErrorClass::Terminal, "{}", err.0);
    assert_eq!(err.1, 0, "a terminal condition is not retried");
    let text = snapseal_ship::describe(&err.0);
    assert!(text.contains("symbolic link"), "{text}");
    assert!(
        snapshot_of(outside.path()).is_empty(),
        "nothing was written through the link"
    );
}

#[test]
fn a_symlinked_object_is_never_read_and_restore_takes_the_older_genuine_one() {
    let (remote, outside, target) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (local, names) = shipped(remote.path(), &[1]);
    // A genuine newer snapshot outside the remote, linked in and named by the index: every
    // check but "do not follow links" would pass it.
    let store = store(local.path());
    let newer = persist(&store, 9, 1024);
    let bytes = file_bytes(local.path(), &newer);
    let victim = outside.path().join(newer.file_name());
    std::fs::write(&victim, &bytes).unwrap();
    symlink(&victim, remote.path().join("n1").join(newer.file_name())).unwrap();
    let index = index_naming(remote.path(), "n1", &newer, &bytes);
    std::fs::write(remote.path().join("n1").join(INDEX_OBJECT), index.encode()).unwrap();

    let restored = restore(
        &local_remote(remote.path()),
        &crate::support::store(target.path()),
        &RestoreOptions::default(),
    )
    .unwrap();
    // A listing skips the link: the index names an object that is not there, so it is no
    // candidate at all.
    assert_eq!(restored.name, names[0], "{:?}", restored.passed_over);
    assert!(
        restored.passed_over.is_empty(),
        "{:?}",
        restored.passed_over
    );
    assert!(!target.path().join(newer.file_name()).exists());
    // gc never lists it, so never deletes what it points at.
    retention::gc(&local_remote(remote.path()), &GcPolicy::new(1)).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), bytes);
}

#[test]
fn a_symlinked_node_index_is_unusable_never_read_and_never_replaced() {
    let (remote, outside, target) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (local, names) = shipped(remote.path(), &[1, 2]);
    let index = remote.path().join("n1").join(INDEX_OBJECT);
    let elsewhere = outside.path().join("index.json");
    std::fs::rename(&index, &elsewhere).unwrap();
    symlink(&elsewhere, &index).unwrap();
    let before = std::fs::read(&elsewhere).unwrap();

    // Ship: an index it cannot trust stops it (it would otherwise replace it).
    let store = store(local.path());
    persist(&store, 3, 1024);
    let shipper = Shipper::new(local_remote(remote.path()), store, ShipConfig::new("n1")).unwrap();
    let err = shipper.ship_pending().unwrap_err();
    assert!(matches!(err, ShipError::Index { .. }), "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(err.to_string().contains("remote repair"), "{err}");
    // Restore: lists, as for a missing index.
    let restored = restore(
        &local_remote(remote.path()),
        &crate::support::store(target.path()),
        &RestoreOptions::default(),
    )
    .unwrap();
    assert!(restored.listed, "the linked index was not used");
    assert_eq!(restored.name, names[1]);
    // gc: works from the listing, and never writes a node's index.
    retention::gc(&local_remote(remote.path()), &GcPolicy::new(1)).unwrap();
    assert_eq!(std::fs::read(&elsewhere).unwrap(), before);
    assert!(index.symlink_metadata().unwrap().file_type().is_symlink());
}

#[test]
fn a_fifo_at_the_index_fails_ship_promptly_and_readers_list_instead() {
    let (remote, local, target) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (_, names) = shipped(remote.path(), &[1]);
    let index = remote.path().join("n1").join(INDEX_OBJECT);
    std::fs::remove_file(&index).unwrap();
    mkfifo(&index);
    let store = store(local.path());
    persist(&store, 1, 1024);
    let url = remote.path().to_path_buf();

    let shipper = Shipper::new(local_remote(&url), store, ShipConfig::new("n1")).unwrap();
    let err = promptly("ship", move || shipper.ship_pending().unwrap_err());
    assert!(err.to_string().contains("fifo"), "{err}");
    let r = local_remote(&url);
    let listed = promptly("remote list", move || retention::list(&r).unwrap());
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].indexed);
    let r = local_remote(&url);
    promptly("remote gc", move || {
        retention::gc(&r, &GcPolicy::new(1)).unwrap()
    });
    let (r, t) = (local_remote(&url), target.path().to_path_buf());
    let restored = promptly("restore", move || {
        restore(&r, &crate::support::store(&t), &RestoreOptions::default()).unwrap()
    });
    assert!(restored.listed);
    assert_eq!(restored.name, names[0]);
}

#[test]
fn a_fifo_at_an_object_name_is_refused_promptly_by_restore_ship_and_gc() {
    let (remote, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (local, names) = shipped(remote.path(), &[1]);
    let store = store(local.path());
    let newer = persist(&store, 2, 1024);
    let fifo = remote.path().join("n1").join(newer.file_name());
    mkfifo(&fifo);
    let bytes = file_bytes(local.path(), &newer);
    let index = index_naming(remote.path(), "n1", &newer, &bytes);
    std::fs::write(remote.path().join("n1").join(INDEX_OBJECT), index.encode()).unwrap();
    let url = remote.path().to_path_buf();

    let (r, t) = (local_remote(&url), target.path().to_path_buf());
    let restored = promptly("restore", move || {
        restore(&r, &crate::support::store(&t), &RestoreOptions::default()).unwrap()
    });
    // A listing skips the FIFO: the index names an object that is not there, so it is no
    // candidate at all.
    assert_eq!(restored.name, names[0]);
    assert!(
        restored.passed_over.is_empty(),
        "{:?}",
        restored.passed_over
    );
    // The shipper's next file has the FIFO at its key: head refuses it, terminally.
    let mut index = crate::indexes::node_index(&url, "n1").unwrap();
    index.snapshots.pop();
    std::fs::write(url.join("n1").join(INDEX_OBJECT), index.encode()).unwrap();
    let shipper = Shipper::new(local_remote(&url), store, ShipConfig::new("n1")).unwrap();
    let err = promptly("ship", move || shipper.ship_pending().unwrap_err());
    assert_eq!(err.class(), ErrorClass::Terminal, "{err}");
    assert!(snapseal_ship::describe(&err).contains("fifo"), "{err}");
    let r = local_remote(&url);
    let report = promptly("remote gc", move || {
        retention::gc(&r, &GcPolicy::new(1)).unwrap()
    });
    assert!(report.deleted.is_empty(), "{report:?}");
    assert!(fifo.symlink_metadata().is_ok(), "the FIFO is left alone");
}

/// Makes `dir` refuse new entries while it lives: mode 0555 for an ordinary user; the
/// immutable attribute (`chattr +i`) for root, whom modes do not stop.
struct ReadOnly {
    dir: PathBuf,
    immutable: bool,
}

impl ReadOnly {
    /// `None` where neither works here (then the test says it was skipped).
    fn make(dir: &Path) -> Option<ReadOnly> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // The test made `dir`, so it belongs to whoever runs the test.
        let immutable = std::fs::metadata(dir).is_ok_and(|m| m.uid() == 0);
        let done = if immutable {
            std::process::Command::new("chattr")
                .arg("+i")
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success())
        } else {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).is_ok()
        };
        let guard = done.then(|| ReadOnly {
            dir: dir.to_path_buf(),
            immutable,
        })?;
        // Only a directory that really refuses a new entry makes the test mean anything.
        std::fs::create_dir(dir.join("probe"))
            .is_err()
            .then_some(guard)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.immutable {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.dir)
                .status();
        } else {
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755));
        }
    }
}

#[test]
fn a_read_only_remote_stops_a_one_shot_ship_with_a_terminal_error_and_no_retry() {
    let test = "a_read_only_remote_stops_a_one_shot_ship_with_a_terminal_error_and_no_retry";
    let (remote, local) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = store(local.path());
    persist(&store, 1, 1024);
    let Some(_read_only) = ReadOnly::make(remote.path()) else {
        println!("{test}: SKIPPED (did not run): cannot make a directory read-only here");
        return;
    };
    // Retry forever on transient errors: only classifying read-only as terminal ends it.
    let shipper = Shipper::new(local_remote(remote.path()), store, ShipConfig::new("n1")).unwrap();
    let (err, stats) = promptly("ship", move || {
        (shipper.ship_pending().unwrap_err(), shipper.stats())
    });
    assert_eq!(err.class(), ErrorClass::Terminal, "{err}");
    assert_eq!((stats.retries, stats.terminal_errors), (0, 1));
}

#[test]
fn gc_with_a_ttl_of_2_pow_63_seconds_or_more_keeps_young_objects() {
    let remote = tempfile::tempdir().unwrap();
    shipped(remote.path(), &[1, 2, 3]);
    for secs in [1 << 63, u64::MAX] {
        let mut policy = GcPolicy::new(1);
        policy.ttl = Some(Duration::from_secs(secs));
        let report = retention::gc(&local_remote(remote.path()), &policy).unwrap();
        assert!(report.deleted.is_empty(), "ttl {secs}: {report:?}");
        assert_eq!(report.kept.len(), 3);
    }
}

#[test]
fn restore_tries_older_candidates_when_a_link_or_junk_holds_the_newest_name_and_says_so() {
    for planted in ["link", "junk"] {
        let (remote, target, outside) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let (_, names) = shipped(remote.path(), &[1, 2]);
        let newest = target.path().join(names[1].file_name());
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"not a snapshot").unwrap();
        match planted {
            "link" => symlink(&victim, &newest).unwrap(),
            _ => std::fs::write(&newest, b"junk").unwrap(),
        }
        let restored = restore(
            &local_remote(remote.path()),
            &crate::support::store(target.path()),
            &RestoreOptions::default(),
        )
        .unwrap();
        assert_eq!(
            restored.name, names[0],
            "{planted}: the older one is restored"
        );
        assert!(restored.written, "{planted}");
        assert_eq!(restored.failed_locally.len(), 1, "{planted}: {restored:?}");
        assert!(
            restored.failed_locally[0].contains(&names[1].file_name())
                && restored.failed_locally[0].contains("does not verify"),
            "{planted}: {:?}",
            restored.failed_locally
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"not a snapshot");
    }
}

#[test]
fn already_there_is_said_only_of_a_file_that_verifies() {
    let (remote, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (local, names) = shipped(remote.path(), &[1, 2]);
    std::fs::write(
        target.path().join(names[1].file_name()),
        file_bytes(local.path(), &names[1]),
    )
    .unwrap();
    let restored = restore(
        &local_remote(remote.path()),
        &crate::support::store(target.path()),
        &RestoreOptions::default(),
    )
    .unwrap();
    assert_eq!(restored.name, names[1]);
    assert!(!restored.written, "already there, and it verifies");
    assert!(restored.failed_locally.is_empty());
}

#[test]
fn an_io_error_storing_the_newest_candidate_restores_an_older_one_and_reports_the_failure() {
    for (op, step) in [
        (Op::Sync, "fsync"),
        (Op::Close, "close"),
        (Op::Rename, "rename"),
    ] {
        let remote = tempfile::tempdir().unwrap();
        let (_, names) = shipped(remote.path(), &[1, 2]);
        let sim = SimFs::new(7);
        let dir = Path::new("/target");
        let target = SnapshotStore::open(Arc::new(sim.clone()), dir, options()).unwrap();
        sim.inject(Fault::nth(op, 1, FaultKind::Eio));
        let restored = restore(
            &local_remote(remote.path()),
            &target,
            &RestoreOptions::default(),
        )
        .unwrap();
        assert_eq!(restored.name, names[0], "{op:?}");
        assert_eq!(restored.failed_locally.len(), 1, "{op:?}: {restored:?}");
        let failure = &restored.failed_locally[0];
        assert!(
            failure.contains(&names[1].file_name()) && failure.contains(step),
            "{op:?}: {failure}"
        );
        assert!(restored.passed_over.is_empty(), "{op:?}: {restored:?}");
        assert!(!sim.names(dir).contains(&names[1].file_name()), "{op:?}");
    }
}

#[test]
fn a_link_at_the_predictable_pending_name_does_not_demote_the_restore() {
    let (remote, target, outside) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (local, names) = shipped(remote.path(), &[1, 2]);
    let store = crate::support::store(target.path());
    // The first ingest of a store's life uses generation 1 << 63.
    let pending = PendingName {
        idx: names[1].idx,
        generation: 1 << 63,
    };
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"outside").unwrap();
    symlink(&victim, target.path().join(pending.file_name())).unwrap();
    let restored = restore(
        &local_remote(remote.path()),
        &store,
        &RestoreOptions::default(),
    )
    .unwrap();
    assert_eq!(restored.name, names[1], "{restored:?}");
    assert!(restored.written && restored.failed_locally.is_empty());
    assert_eq!(
        file_bytes(target.path(), &names[1]),
        file_bytes(local.path(), &names[1])
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"outside");
}

#[test]
fn a_sparse_giant_with_a_forged_receipt_is_refused_before_its_body_is_fetched() {
    let (remote, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node = remote.path().join("n1");
    std::fs::create_dir(&node).unwrap();
    let size: u64 = 2 << 30;
    let receipt = b"not a receipt, but its digest is in the header";
    // A header that decodes and claims 2 GiB, the receipt its digest names at the end, and a
    // hole between them.
    let header = Header {
        idx: 1,
        evidence_idx: 2,
        flags: Flags::NONE,
        body_len: size - 160 - receipt.len() as u64,
        receipt_len: receipt.len() as u64,
        raw_len: size - 160 - receipt.len() as u64,
        body_digest: [0; 32],
        receipt_digest: *blake3::hash(receipt).as_bytes(),
    };
    // The same shape, all zeros: no header at all.
    for (name, head) in [
        ("snapshot_1_2.committed", Some(header.encode())),
        ("snapshot_3_4.committed", None),
    ] {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(node.join(name)).unwrap();
        f.set_len(size).unwrap();
        if let Some(head) = head {
            f.write_all_at(&head, 0).unwrap();
            f.write_all_at(receipt, size - receipt.len() as u64)
                .unwrap();
        }
    }
    let fetched = Arc::new(Mutex::new(0u64));
    let heard = Arc::clone(&fetched);
    let mut opts = RestoreOptions::default();
    opts.progress = Some(Arc::new(move |_, done, _| *heard.lock().unwrap() += done));
    let store = crate::support::store(target.path());
    let err = restore(&local_remote(remote.path()), &store, &opts).unwrap_err();
    let ShipError::NothingRestored { passed_over, .. } = &err else {
        panic!("{err}");
    };
    assert!(passed_over[0].contains("header"), "{passed_over:?}");
    assert!(passed_over[1].contains("receipt"), "{passed_over:?}");
    assert_eq!(*fetched.lock().unwrap(), 0, "no body byte was fetched");
    assert!(store.list().unwrap().is_empty() && store.list_pending().unwrap().is_empty());
}

#[test]
fn the_local_store_creates_without_replacing_overwrites_whole_and_lists_only_what_is_its_own() {
    use object_store::path::Path as Key;
    use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};
    let root = tempfile::tempdir().unwrap();
    let store = snapseal_ship::LocalStore::new(root.path().to_path_buf(), 1 << 20);
    let remote = local_remote(root.path());
    let key = Key::from("a/b");
    let put = |bytes: &'static [u8], mode| {
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        block_on(store.put_opts(&key, bytes.into(), opts))
    };
    put(b"first", PutMode::Create).unwrap();
    let again = put(b"second", PutMode::Create).unwrap_err();
    assert!(
        matches!(again, object_store::Error::AlreadyExists { .. }),
        "{again}"
    );
    put(b"third", PutMode::Overwrite).unwrap();
    let got = block_on(store.get_range(&key, 1..4)).unwrap();
    assert_eq!(&got[..], b"hir");
    // A key in the staging namespace is refused; staging files and deep trees are not listed.
    let staged = Key::parse("a/b#1").unwrap();
    assert!(put_err(&remote, &store, &staged).contains("reserved"));
    std::fs::write(root.path().join("a").join("b#7"), b"staging").unwrap();
    // MAX_DEPTH directories down is listed; one more is not.
    let mut deep = root.path().to_path_buf();
    let mut deepest_key = Vec::new();
    for i in 0..=snapseal_ship::MAX_DEPTH {
        deep = deep.join(format!("d{i}"));
        std::fs::create_dir_all(&deep).unwrap();
        if i + 1 == snapseal_ship::MAX_DEPTH {
            std::fs::write(deep.join("deepest"), b"x").unwrap();
            deepest_key.push(format!("d{i}/deepest"));
        } else {
            deepest_key.push(format!("d{i}"));
        }
    }
    deepest_key.truncate(snapseal_ship::MAX_DEPTH);
    std::fs::write(deep.join("too-deep"), b"x").unwrap();
    let listed: Vec<String> = block_on(async {
        use futures::TryStreamExt;
        store.list(None).try_collect::<Vec<_>>().await
    })
    .unwrap()
    .into_iter()
    .map(|m| m.location.to_string())
    .collect();
    assert_eq!(listed, ["a/b".to_string(), deepest_key.join("/")]);
    assert!(
        snapshot_of(root.path())
            .iter()
            .all(|(p, _)| p != &root.path().join("a").join("b#1")),
        "nothing was staged for the refused key"
    );
}

fn put_err(
    remote: &snapseal_ship::Remote,
    store: &snapseal_ship::LocalStore,
    key: &object_store::path::Path,
) -> String {
    use object_store::ObjectStoreExt;
    let _ = remote;
    let err = block_on(store.put(key, b"x".as_slice().into())).unwrap_err();
    snapseal_ship::describe(&err)
}
