//! A huge (sparse) junk file under a committed name is refused from its header, without
//! mapping it: the process's peak resident memory does not grow with the file's size.
//!
//! Alone in its test binary, so no other test moves the peak meanwhile.

mod fixture;

use std::fs;
use std::io::Write;

use fixture::*;
use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::internals::open_snapshot;
use snapseal_persist::{Check, FileState, VerifyError};

/// Peak resident set size (`VmHWM`) in KiB.
fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_sparse_gigabyte_junk_file_is_refused_without_mapping_it() {
    let tmp = tempfile::tempdir().unwrap();
    let snap = Snap::new(1, 10);
    let name = snap.name();
    // A plausible start (the real header of another file, so the magic and version pass)
    // with one checksum byte wrong, then a 1 GiB hole.
    let mut header = Snap::new(1, 10).file_bytes()[..160].to_vec();
    header[130] ^= 0xff;
    let path = tmp
        .path()
        .join(name.with_state(FileState::Committed).file_name());
    let mut f = fs::File::create(&path).unwrap();
    f.write_all(&header).unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);

    let dir = RealFs.open_dir(tmp.path(), false).unwrap();
    let before = peak_rss_kib();
    let e = open_snapshot(&*dir, &name, &real_verifier()).unwrap_err();
    let grown = peak_rss_kib().saturating_sub(before);
    assert!(
        matches!(
            e,
            VerifyError::Format {
                check: Check::Header,
                ..
            }
        ),
        "{e}"
    );
    assert!(grown < 8 * 1024, "peak RSS grew by {grown} KiB");

    // A valid header whose lengths do not add up to the file's size is refused the same way.
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all(&snap.file_bytes()[..160])
        .unwrap();
    let before = peak_rss_kib();
    let e = open_snapshot(&*dir, &name, &real_verifier()).unwrap_err();
    let grown = peak_rss_kib().saturating_sub(before);
    assert!(
        matches!(
            e,
            VerifyError::Format {
                check: Check::Length,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("file length"), "{e}");
    assert!(grown < 8 * 1024, "peak RSS grew by {grown} KiB");
}
