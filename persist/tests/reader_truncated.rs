//! A snapshot file that another process truncates after `latest()` returned it is a read
//! error for whoever reads it, never a `SIGBUS` that kills the process: the reader holds the
//! open file and reads it with `pread`, it does not map it.
//!
//! Each case runs in a child process (this test binary again, told which case by an
//! environment variable), so a crash is observed as the child's death instead of taking the
//! test harness down with it.

mod rss;

use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use rss::*;

/// The environment variable that makes this binary run one case as the child.
const CHILD: &str = "SNAPSEAL_TRUNCATED_CHILD";

/// Commits a 4 MiB snapshot (several reader buffers' worth), opens it with `latest()`,
/// truncates the file to 1000 bytes behind the store's back, and reads it with `read`.
/// Returns the read's error.
fn truncated_then_read(
    compression: Option<i32>,
    read: impl Fn(&snapseal_persist::SnapshotFile) -> io::Result<u64>,
) -> io::Error {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    commit_noise(&store, 10, 4 << 20, compression);
    let latest = store.latest().unwrap().expect("the snapshot verifies");
    std::fs::OpenOptions::new()
        .write(true)
        .open(latest.path())
        .unwrap()
        .set_len(1000)
        .unwrap();
    read(&latest).expect_err("the file lost all but 1000 bytes")
}

fn assert_truncation(e: &io::Error, what: &str) {
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{what}: {e}");
    assert!(e.to_string().contains("truncated"), "{what}: {e}");
}

/// The cases, run in the child.
fn child(case: &str) {
    let body =
        |f: &snapseal_persist::SnapshotFile| digest_of(&mut f.body_reader()?).map(|(_, n)| n);
    match case {
        "plain body" => assert_truncation(&truncated_then_read(None, body), case),
        "zstd body" => assert_truncation(&truncated_then_read(Some(1), body), case),
        "whole file" => {
            let whole = |f: &snapseal_persist::SnapshotFile| {
                let mut sink = Vec::new();
                f.file_reader().read_to_end(&mut sink).map(|n| n as u64)
            };
            assert_truncation(&truncated_then_read(None, whole), case);
        }
        other => panic!("unknown case {other}"),
    }
}

#[test]
fn a_snapshot_truncated_after_latest_returned_it_is_a_read_error_not_a_crash() {
    if let Ok(case) = std::env::var(CHILD) {
        child(&case);
        return;
    }
    for case in ["plain body", "zstd body", "whole file"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_snapshot_truncated_after_latest_returned_it_is_a_read_error_not_a_crash",
                "--test-threads=1",
            ])
            .env(CHILD, case)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{case}: the child {}; its output:\n{}{}",
            match out.status.signal() {
                Some(libc::SIGBUS) => "was killed by SIGBUS".to_string(),
                Some(n) => format!("was killed by signal {n}"),
                None => format!("failed ({})", out.status),
            },
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
