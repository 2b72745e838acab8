//! A full local remote (`ENOSPC`) stops the shipper with a terminal error at its first try:
//! no retry makes room. The remote is a 1 MiB tmpfs mounted for the test, so it needs root
//! (or `CAP_SYS_ADMIN`); elsewhere the test says it was skipped, and why.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;
use snapseal_ship::{describe, ErrorClass, ShipConfig, Shipper};

/// A tmpfs of `size` mounted at a directory while it lives.
struct Tmpfs {
    at: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `Err(reason)` where it cannot be mounted here.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let at = dir.path().to_path_buf();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&at)
            .output()
            .map_err(|e| format!("mount does not run: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { at, _dir: dir })
    }

    fn path(&self) -> &Path {
        &self.at
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
    }
}

#[test]
fn a_full_local_remote_stops_the_shipper_at_its_first_try_and_leaves_no_staging_file() {
    let test = "a_full_local_remote_stops_the_shipper_at_its_first_try_and_leaves_no_staging_file";
    let fs = match Tmpfs::mount("1m") {
        Ok(fs) => fs,
        Err(reason) => {
            println!("{test}: SKIPPED (did not run): {reason}");
            return;
        }
    };
    let local = tempfile::tempdir().unwrap();
    let store = store(local.path());
    // Twice the remote's size, under the part size: one put that cannot fit.
    persist(&store, 1, 2 << 20);
    // Retry forever on transient errors: only classifying "full" as terminal ends it.
    let shipper = Shipper::new(local_remote(fs.path()), store, ShipConfig::new("n1")).unwrap();
    let err = shipper.ship_pending().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Terminal, "{err}");
    let text = describe(&err);
    assert!(text.contains("No space left on device"), "{text}");
    let stats = shipper.stats();
    assert_eq!((stats.retries, stats.terminal_errors), (0, 1), "{text}");
    assert!(shipper.stopped().is_some());
    // The staging file that hit ENOSPC was removed, not left to fill the remote.
    let node = fs.path().join("n1");
    let mut left: Vec<_> = std::fs::read_dir(&node)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    // The node's index (a few hundred bytes, written when the shipper claimed the node) fits.
    left.retain(|n| n != snapseal_ship::INDEX_OBJECT);
    assert!(left.is_empty(), "{left:?}");
}
