//! A local committed file that changes while the shipper reads it (it is never mapped and
//! never held whole in memory, so it is read more than once: to verify it, to upload it, to
//! compare it with what the remote returns): truncated once open, truncated after it verified,
//! or rewritten in place with the same size. Such a file is never made visible, never indexed,
//! and skipped at once as not verifying — a local change, not a `SIGBUS` and not a remote
//! failure to retry.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::support::*;
use snapseal_persist::SnapshotName;
use snapseal_ship::{FileHook, ShipConfig, ShipEvent, ShipReport, ShipStats, Shipper};

/// Byte of the body the rewrites flip (past the 160-byte header).
const FLIPPED: u64 = 1000;

/// Flips byte [`FLIPPED`] of the file at `path`, in place.
fn flip(path: &Path) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, FLIPPED).unwrap();
    f.write_all_at(&[!b[0]], FLIPPED).unwrap();
}

/// Cuts the file at `path` to `len` bytes.
fn truncate(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
}

/// When a test changes the file.
#[derive(Clone, Copy)]
enum At {
    /// Once it is open, before any byte of it is read.
    Open,
    /// Once it verified.
    Verified,
}

/// Ships `local` to the `file://` remote `remote` as node `n1`, with `change` run on `name`'s
/// file `at` that point; returns the report, the reasons of the skips and the counters.
fn ship_changing(
    local: &Path,
    remote: &Path,
    name: SnapshotName,
    at: At,
    change: impl Fn(&Path) + Send + Sync + 'static,
) -> (ShipReport, Vec<String>, ShipStats) {
    let mut config = ShipConfig::new("n1");
    config.max_attempts = Some(3);
    let file_name = name.file_name();
    let hook = Some(FileHook(Arc::new(move |path: &Path| {
        if path.file_name().is_some_and(|n| n == file_name.as_str()) {
            change(path);
        }
    })));
    match at {
        At::Open => config.after_open = hook,
        At::Verified => config.after_verify = hook,
    }
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let shipper = Shipper::new(local_remote(remote), store(local), config)
        .unwrap()
        .with_events(Box::new(move |e| sink.lock().unwrap().push(e.clone())));
    let report = shipper.ship_pending().unwrap();
    let reasons = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ShipEvent::SkippedUnverified { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    (report, reasons, shipper.stats())
}

#[test]
fn a_local_file_truncated_while_shipped_is_skipped_cleanly_not_a_sigbus() {
    let (local, remote) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store_ = store(local.path());
    let small = persist(&store_, 1, 1024);
    let big = persist(&store_, 2, 8 << 20);
    drop(store_);
    // Between the open and the first read of the big file, someone cuts it in half.
    let (report, reasons, stats) = ship_changing(local.path(), remote.path(), big, At::Open, |p| {
        truncate(p, 4 << 20)
    });
    assert_eq!(report.shipped, [small]);
    assert_eq!(report.skipped, [big]);
    assert!(reasons[0].contains("truncated"), "{reasons:?}");
    assert_eq!(stats.retries, 0);
    assert!(!remote.path().join("n1").join(big.file_name()).exists());
}

#[test]
fn a_file_rewritten_in_place_after_it_verified_is_never_made_visible() {
    let (local, remote) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = persist(&store(local.path()), 1, 1 << 20);
    // One put: the upload reads the file once the verification passed, so it reads the
    // rewritten bytes, whose BLAKE3 is not the one that verified.
    let (report, reasons, stats) =
        ship_changing(local.path(), remote.path(), a, At::Verified, flip);
    assert_eq!(report.skipped, [a]);
    assert!(report.shipped.is_empty());
    assert!(
        reasons[0].contains("changed after it was verified"),
        "{reasons:?}"
    );
    assert!(!remote.path().join("n1").join(a.file_name()).exists());
    assert!(crate::indexes::indexed(remote.path(), "n1").is_empty());
    assert_eq!(stats.retries, 0);
}

#[test]
fn a_remote_copy_of_a_file_rewritten_after_it_verified_is_not_indexed() {
    let (local, remote) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = persist(&store(local.path()), 1, 1 << 20);
    // A previous run left the object; it is the file as the rewrite will make it, so it
    // equals the local file when read back, but not the bytes that verified.
    let object = remote.path().join("n1").join(a.file_name());
    std::fs::create_dir(remote.path().join("n1")).unwrap();
    std::fs::copy(local.path().join(a.file_name()), &object).unwrap();
    flip(&object);
    let (report, reasons, stats) =
        ship_changing(local.path(), remote.path(), a, At::Verified, flip);
    assert_eq!(report.skipped, [a]);
    assert!(
        reasons[0].contains("changed after it was verified"),
        "{reasons:?}"
    );
    assert!(
        crate::indexes::indexed(remote.path(), "n1").is_empty(),
        "nothing indexed: the index would name a BLAKE3 the object does not have"
    );
    assert_eq!((stats.retries, stats.terminal_errors), (0, 0));
}

#[test]
fn a_file_truncated_after_it_verified_is_skipped_at_its_first_read_without_a_retry() {
    let (local, remote) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store_ = store(local.path());
    let a = persist(&store_, 1, 1 << 20);
    let b = persist(&store_, 2, 1024);
    drop(store_);
    let (report, reasons, stats) =
        ship_changing(local.path(), remote.path(), a, At::Verified, |p| {
            truncate(p, 1 << 19)
        });
    assert_eq!(report.skipped, [a]);
    assert_eq!(report.shipped, [b], "the next file ships");
    assert!(reasons[0].contains("truncated"), "{reasons:?}");
    assert_eq!(stats.retries, 0, "a truncation is not retried");
    assert!(!remote.path().join("n1").join(a.file_name()).exists());
}
