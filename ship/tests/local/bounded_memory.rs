//! The shipper's memory does not grow with the file it ships: a 256 MiB snapshot goes up, is
//! confirmed and indexed while the process's peak resident memory grows by less than 96 MiB.
//!
//! Measured, not inferred: the shipping runs in a child process (this test binary started
//! again on an ignored test), which reads its own `VmRSS` before and `VmHWM` (the kernel's
//! peak resident set) after. Peak minus the resident set before is an upper bound on what the
//! shipping added (the setup before it is small), so the test can fail only by using memory,
//! never pass by missing it. No timing is involved.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use crate::support::*;
use snapseal_ship::{ShipConfig, Shipper};

/// The snapshot's body: a hole in the local file, real bytes on the remote.
const BODY: u64 = 256 << 20;

/// What the shipping may add to the peak. The shipper holds, per file, one 8 MiB piece of the
/// verification, at most two 8 MiB parts of the upload and two 8 MiB pieces of the read-back
/// (48 MiB if all were live at once); the rest is the allocator's slack (44 MiB measured for
/// this file, 52 MiB for a 1 GiB one). Holding the file whole, as the shipper once did, is
/// 256 MiB on its own.
const BOUND: u64 = 96 << 20;

const CHILD_ENV: &str = "SNAPSEAL_SHIP_MEMORY_CHILD";

/// A line of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib << 10
}

/// The child: ships DIR to file://REMOTE as node `n1` and prints what it shipped and how much
/// its peak resident memory grew meanwhile.
#[test]
#[ignore = "the child process of a_256_mib_snapshot_ships_with_peak_memory_growing_by_less_than_96_mib"]
fn shipping_child() {
    let spec = std::env::var(CHILD_ENV).unwrap();
    let (dir, remote) = spec.split_once('|').unwrap();
    let store = store(Path::new(dir));
    let remote = local_remote(Path::new(remote));
    let shipper = Shipper::new(remote, store, ShipConfig::new("n1")).unwrap();
    let before = status_bytes("VmRSS");
    let report = shipper.ship_pending().unwrap();
    let peak = status_bytes("VmHWM");
    println!(
        "uploaded={} growth={}",
        report.uploaded.len(),
        peak.saturating_sub(before)
    );
}

/// The BLAKE3 of a file, read in 1 MiB pieces.
fn hash_file(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher.finalize().to_hex().to_string()
}

#[test]
fn a_256_mib_snapshot_ships_with_peak_memory_growing_by_less_than_96_mib() {
    let (local, remote) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The store made first (its lock, its layout), then the file written beside it.
    drop(store(local.path()));
    let name = write_sparse_committed(local.path(), 1, BODY);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "bounded_memory::shipping_child",
            "--ignored",
            "--nocapture",
        ])
        .env(
            CHILD_ENV,
            format!("{}|{}", local.path().display(), remote.path().display()),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("uploaded="))
        .unwrap_or_else(|| panic!("the child said nothing: {stdout}"));
    let (uploaded, growth) = line
        .trim_start_matches("uploaded=")
        .split_once(" growth=")
        .unwrap();
    assert_eq!(uploaded, "1", "the child uploaded the snapshot");

    // It really went: whole, confirmed and indexed with the file's BLAKE3.
    let local_file = local.path().join(name.file_name());
    let object = remote.path().join("n1").join(name.file_name());
    let want = hash_file(&local_file);
    assert_eq!(hash_file(&object), want);
    let index = crate::indexes::node_index(remote.path(), "n1").unwrap();
    let entry = &index.snapshots[0];
    assert_eq!(
        (entry.name.as_str(), entry.blake3.as_str()),
        (name.file_name().as_str(), want.as_str())
    );
    assert_eq!(entry.size, std::fs::metadata(&local_file).unwrap().len());

    let growth: u64 = growth.parse().unwrap();
    assert!(
        growth < BOUND,
        "shipping a {} MiB snapshot raised peak memory by {} MiB (bound {} MiB)",
        entry.size >> 20,
        growth >> 20,
        BOUND >> 20
    );
    eprintln!(
        "peak memory grew by {} MiB shipping {} MiB",
        growth >> 20,
        entry.size >> 20
    );
}
