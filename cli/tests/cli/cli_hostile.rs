//! Hostile files where the command expects its own: links, FIFOs, huge sparse files and
//! absurd names in place of `node.pub`, `--key`, `--config` and `committed.log`; relabelled
//! and forged snapshots shown to `inspect` without a key; a snapshot truncated while the
//! read-only commands read it; names full of terminal escapes. All through the real binary.
//! Every run has a deadline: a run that hangs is killed and the test fails (it never hangs the
//! suite).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::support::{
    committed, demo_dir, key_file_text, relabelled, sparse_signed_snapshot, Run, SMALL_DEMO,
};

/// Far beyond what any of these runs needs; only a hang (or a read of gigabytes) reaches it.
const DEADLINE: Duration = Duration::from_secs(120);

/// Runs `snapseal args...` like `support::snapseal`, but kills it and fails the test if it
/// has not exited within [`DEADLINE`].
fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = tempfile::tempdir().unwrap();
    let stdout = std::fs::File::create(out.path().join("out")).unwrap();
    let stderr = std::fs::File::create(out.path().join("err")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_snapseal"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            child.kill().unwrap();
            child.wait().unwrap();
            let args: Vec<String> = args
                .iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect();
            panic!(
                "snapseal {} did not exit within {DEADLINE:?}",
                args.join(" ")
            );
        }
        sleep(Duration::from_millis(20));
    };
    let read = |name: &str| {
        let mut s = String::new();
        std::fs::File::open(out.path().join(name))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: read("out"),
        stderr: read("err"),
    }
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Exit 2 with an error naming `name` and saying `why`.
fn refused(r: Run, name: &str, why: &str) {
    let r = r.expect(2);
    assert!(
        r.stderr.contains(name) && r.stderr.contains(why),
        "expected `{name}` and `{why}` in:\n{}",
        r.stderr
    );
}

#[test]
fn a_fifo_as_node_pub_is_refused_at_once_by_every_reader() {
    let (_tmp, dir) = demo_dir();
    let node_pub = dir.join("node.pub");
    std::fs::remove_file(&node_pub).unwrap();
    mkfifo(&node_pub);
    let first = committed(&dir).pop().unwrap();
    for args in [
        vec!["verify".to_string(), s(&dir)],
        vec!["latest".to_string(), s(&dir)],
        vec!["inspect".to_string(), s(&first)],
    ] {
        refused(run(&args), "node.pub", "is a fifo, not a regular file");
    }
}

#[test]
fn node_pub_linked_to_dev_zero_is_refused_not_read() {
    let (_tmp, dir) = demo_dir();
    let node_pub = dir.join("node.pub");
    std::fs::remove_file(&node_pub).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &node_pub).unwrap();
    for cmd in ["verify", "latest"] {
        refused(run(&[cmd, &s(&dir)]), "node.pub", "is a symbolic link");
    }
}

#[test]
fn inspect_refuses_a_dangling_node_pub_link_instead_of_skipping_the_signature() {
    let (tmp, dir) = demo_dir();
    let node_pub = dir.join("node.pub");
    std::fs::remove_file(&node_pub).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("gone"), &node_pub).unwrap();
    let first = committed(&dir).pop().unwrap();
    refused(
        run(&["inspect", &s(&first)]),
        "node.pub",
        "is a symbolic link",
    );
}

#[test]
fn a_huge_sparse_key_file_is_refused_by_its_size() {
    let (tmp, dir) = demo_dir();
    let key = tmp.path().join("big.pub");
    std::fs::File::create(&key)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    refused(
        run(&["verify", &s(&dir), "--key", &s(&key)]),
        "big.pub",
        "1073741824 bytes, over the limit of 65536 bytes",
    );
}

#[test]
fn a_key_or_config_given_as_a_link_is_refused_and_a_fifo_config_does_not_hang() {
    let (tmp, dir) = demo_dir();
    let link = tmp.path().join("key.link");
    std::os::unix::fs::symlink(dir.join("node.pub"), &link).unwrap();
    refused(
        run(&["verify", &s(&dir), "--key", &s(&link)]),
        "key.link",
        "is a symbolic link",
    );
    // The link's target itself is accepted: only the link is refused.
    run(&["verify", &s(&dir), "--key", &s(&dir.join("node.pub"))]).expect(0);

    let fifo = tmp.path().join("config.fifo");
    mkfifo(&fifo);
    refused(
        run(&["list", &s(&dir), "--config", &s(&fifo)]),
        "config.fifo",
        "is a fifo, not a regular file",
    );
    let config = tmp.path().join("demo.toml");
    std::fs::write(&config, "[store]\n").unwrap();
    let config_link = tmp.path().join("config.link");
    std::os::unix::fs::symlink(&config, &config_link).unwrap();
    refused(
        run(&["list", &s(&dir), "--config", &s(&config_link)]),
        "config.link",
        "is a symbolic link",
    );
    run(&["list", &s(&dir), "--config", &s(&config)]).expect(0);
}

fn resume_args(dir: &Path) -> Vec<String> {
    let mut args = vec![
        "demo".to_string(),
        "--quiet".into(),
        "--resume".into(),
        "--dir".into(),
        s(dir),
    ];
    args.extend(SMALL_DEMO.iter().map(|a| a.to_string()));
    args
}

#[test]
fn resume_refuses_a_linked_committed_log_and_leaves_its_target_alone() {
    let (tmp, dir) = demo_dir();
    let outside = tmp.path().join("precious.txt");
    std::fs::write(&outside, "not a log, not yours\n").unwrap();
    let log = dir.join("committed.log");
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink(&outside, &log).unwrap();
    refused(
        run(&resume_args(&dir)),
        "committed.log",
        "is a symbolic link",
    );
    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        "not a log, not yours\n"
    );
    assert!(std::fs::symlink_metadata(&log)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn resume_refuses_a_fifo_or_a_directory_as_committed_log_without_hanging() {
    let (_tmp, dir) = demo_dir();
    let log = dir.join("committed.log");
    std::fs::remove_file(&log).unwrap();
    mkfifo(&log);
    refused(
        run(&resume_args(&dir)),
        "committed.log",
        "is a fifo, not a regular file",
    );
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    refused(
        run(&resume_args(&dir)),
        "committed.log",
        "is a directory, not a regular file",
    );
}

/// Every committed file in `dir` has its line in committed.log.
fn assert_every_commit_logged(dir: &Path, context: &str) {
    let log = std::fs::read_to_string(dir.join("committed.log")).unwrap();
    let logged: BTreeSet<&str> = log.lines().filter_map(|l| l.split(' ').nth(2)).collect();
    for file in committed(dir) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            logged.contains(name.as_str()),
            "{context}: {name} is committed but has no committed.log line\n{log}"
        );
    }
}

#[test]
fn resume_ignores_names_far_beyond_anything_proven_instead_of_building_their_ledger() {
    let (_tmp, dir) = demo_dir();
    let junk_committed = "snapshot_1000000000_1000000000.committed";
    let junk_stale = "snapshot_1000000000_1000000000";
    std::fs::write(dir.join(junk_committed), b"").unwrap();
    std::fs::write(dir.join(junk_stale), b"junk").unwrap();
    let mut args = resume_args(&dir);
    args.push("--json".into());
    let r = run(&args).expect(0);
    let j = r.json();
    let resumed = &j["resumed"];
    assert!(
        resumed["base"].as_u64().unwrap() < 1_000_000_000,
        "{resumed}"
    );
    let ignored: Vec<&str> = resumed["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ignored, [junk_stale, junk_committed], "{resumed}");
    assert!(
        r.stderr.contains(junk_committed),
        "the warning names it:\n{}",
        r.stderr
    );
    // The store removed the stale one and quarantined the empty committed one.
    let names = crate::support::names(&dir);
    assert!(!names.contains(junk_stale) && !names.contains(junk_committed));
    assert!(names.contains(&format!("{junk_committed}.corrupt")));
    assert_every_commit_logged(&dir, "resumed");
}

#[test]
fn a_tx_interval_of_one_or_two_flushes_and_logs_every_commit() {
    for interval in ["1", "2"] {
        for seed in 1..=5u64 {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("snap");
            let seed = seed.to_string();
            let r = run(&[
                "demo",
                "--quiet",
                "--dir",
                &s(&dir),
                "--txs",
                "2000",
                "--tx-interval",
                interval,
                "--seed",
                &seed,
            ]);
            let context = format!("--tx-interval {interval} --seed {seed}");
            assert_eq!(r.code, 0, "{context}\n{}\n{}", r.stdout, r.stderr);
            assert_every_commit_logged(&dir, &context);
        }
    }
}

#[test]
fn inspect_of_a_huge_sparse_junk_file_reads_its_header_not_its_length() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("snapshot_5_9.committed");
    std::fs::File::create(&junk)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    refused(
        run(&["inspect", &s(&junk)]),
        "snapshot_5_9.committed",
        "its header does not give that length; not read",
    );
}

/// A copy of the committed `file` in `into` whose signature is forged (its last byte flipped,
/// the header's receipt digest recomputed): consistent in every way a reader can check without
/// the key.
fn forged(file: &Path, into: &Path) -> PathBuf {
    use snapseal::persist::internals::format::{Header, HEADER_LEN};
    let mut bytes = std::fs::read(file).unwrap();
    let mut header = Header::decode(&bytes).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let receipt_at = bytes.len() - header.receipt_len as usize;
    header.receipt_digest = *blake3::hash(&bytes[receipt_at..]).as_bytes();
    bytes[..HEADER_LEN].copy_from_slice(&header.encode());
    let path = into.join(file.file_name().unwrap());
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Bug: without a key, `inspect` skipped the whole receipt check, claims digest included, and
/// said "verdict ok", exit 0, for a file whose header was relabelled.
#[test]
fn inspect_without_a_key_fails_a_relabelled_file_on_its_claims_digest() {
    let (tmp, dir) = demo_dir();
    let alone = tmp.path().join("no-key-here");
    std::fs::create_dir(&alone).unwrap();
    let file = relabelled(&committed(&dir).pop().unwrap(), &alone);
    let r = run(&["inspect", &s(&file)]).expect(1);
    assert!(r.stdout.contains("claims digest mismatch"), "{}", r.stdout);
    assert!(
        r.stdout.contains("verdict           FAILED"),
        "{}",
        r.stdout
    );
    let doc = run(&["inspect", "--json", &s(&file)]).expect(1).json();
    assert_eq!(doc["verdict"], "failed", "{doc}");
    assert_eq!(doc["ok"], false, "{doc}");
    // verify, with the key, refuses it for the same reason.
    let key = s(&dir.join("node.pub"));
    let r = run(&["verify", "--key", &key, &s(&file)]).expect(1);
    assert!(r.stdout.contains("claims digest mismatch"), "{}", r.stdout);
}

/// Without a key `inspect` never exits 0: a good file and one with a forged signature are both
/// "consistent, signature NOT checked" (exit 3); with the key they are ok (0) and FAILED (1).
#[test]
fn inspect_without_a_key_never_says_ok() {
    let (tmp, dir) = demo_dir();
    let alone = tmp.path().join("no-key-here");
    std::fs::create_dir(&alone).unwrap();
    let newest = committed(&dir).pop().unwrap();
    let good = alone.join(newest.file_name().unwrap());
    std::fs::copy(&newest, &good).unwrap();
    let forged_dir = tmp.path().join("forged");
    std::fs::create_dir(&forged_dir).unwrap();
    let bad = forged(&newest, &forged_dir);
    for file in [&good, &bad] {
        let r = run(&["inspect", &s(file)]).expect(3);
        assert!(
            r.stdout
                .contains("verdict           consistent, signature NOT checked (no key)"),
            "{}",
            r.stdout
        );
        assert!(!r.stdout.contains("verdict           ok"), "{}", r.stdout);
        let doc = run(&["inspect", "--json", &s(file)]).expect(3).json();
        assert_eq!(doc["verdict"], "signature_unchecked", "{doc}");
        assert_eq!(doc["signature_checked"], false, "{doc}");
        assert_eq!(doc["ok"], false, "{doc}");
    }
    let key = s(&dir.join("node.pub"));
    let r = run(&["inspect", "--key", &key, &s(&good)]).expect(0);
    assert!(r.stdout.contains("verdict           ok"), "{}", r.stdout);
    let r = run(&["inspect", "--key", &key, &s(&bad)]).expect(1);
    assert!(r.stdout.contains("bad Ed25519 signature"), "{}", r.stdout);
}

/// A `node.pub` left empty (as an interrupted write by an older version left it) is named by
/// every command that would read it, and never stands in the way of an explicit `--key`.
#[test]
fn an_empty_node_pub_is_named_and_never_blocks_an_explicit_key() {
    let (tmp, dir) = demo_dir();
    let key = tmp.path().join("k.pub");
    std::fs::copy(dir.join("node.pub"), &key).unwrap();
    std::fs::write(dir.join("node.pub"), b"").unwrap();
    let newest = s(&committed(&dir).pop().unwrap());
    let d = s(&dir);
    for args in [
        vec!["verify", &d],
        vec!["latest", &d],
        vec!["gc", "--dry-run", &d],
        vec!["inspect", &newest],
    ] {
        refused(run(&args), "node.pub", "is empty");
        let mut with_key = args.clone();
        let k = s(&key);
        with_key.extend(["--key", k.as_str()]);
        run(&with_key).expect(0);
    }
}

/// Runs `snapseal args...` while another thread keeps truncating `file` to half its length
/// and restoring it (its tail rewritten), and returns the run.
fn run_while_truncating(args: &[&str], file: &Path, tail: &[u8], tail_at: u64) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let toggler = {
        let (stop, file, tail) = (Arc::clone(&stop), file.to_path_buf(), tail.to_vec());
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
            let full = tail_at + tail.len() as u64;
            while !stop.load(Ordering::Relaxed) {
                f.set_len(full / 2).unwrap();
                f.set_len(full).unwrap();
                f.write_all_at(&tail, tail_at).unwrap();
            }
        })
    };
    let r = run(args);
    stop.store(true, Ordering::Relaxed);
    toggler.join().unwrap();
    r
}

/// Bug: `gc --dry-run` mapped the files it verified, so a file truncated by another process
/// while it was read killed it with SIGBUS. No read-only command may die of a truncation: each
/// exits with one of its documented codes (the file may verify, fail or be unreadable,
/// depending on when it was read). A run that reads without mapping passes every time; the
/// mapped `gc --dry-run` died in about a third of such runs, so it survives 20 of them by
/// chance about once in 5000 tries.
#[test]
fn read_only_commands_survive_a_snapshot_truncated_under_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("node.pub"), key_file_text(1)).unwrap();
    let (file, receipt, receipt_at) = sparse_signed_snapshot(dir, 1, 32 << 20);
    // Intact, it verifies: what follows is about the truncation alone.
    run(&["verify", &s(dir)]).expect(0);
    let (d, f) = (s(dir), s(&file));
    for (args, runs) in [
        (vec!["gc", "--dry-run", &d], 20),
        (vec!["verify", &d], 5),
        (vec!["latest", &d], 5),
        (vec!["inspect", &f], 5),
    ] {
        for _ in 0..runs {
            let r = run_while_truncating(&args, &file, &receipt, receipt_at);
            assert!(
                [0, 1, 2].contains(&r.code),
                "{args:?} exited with {} (-1: killed by a signal)\n{}\n{}",
                r.code,
                r.stdout,
                r.stderr
            );
            assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
        }
    }
}

/// Names from a directory listing are printed escaped, in text and JSON: a name carrying a
/// terminal escape sequence or bytes that are not UTF-8 never reaches the terminal raw.
#[test]
fn names_with_terminal_escapes_are_printed_escaped() {
    let (_tmp, dir) = demo_dir();
    let evil = OsStr::from_bytes(b"\x1b]0;owned\x07\x1b[2J\xff.committed");
    std::fs::write(dir.join(evil), b"junk").unwrap();
    let d = s(&dir);
    for (args, code) in [
        (vec!["list", &d], 0),
        (vec!["list", "--json", &d], 0),
        (vec!["verify", &d], 1),
        (vec!["verify", "--json", &d], 1),
    ] {
        let r = run(&args).expect(code);
        for out in [&r.stdout, &r.stderr] {
            assert!(
                !out.contains('\x1b') && !out.contains('\x07'),
                "{args:?}: {out:?}"
            );
        }
        // JSON doubles the backslash of the escape.
        assert!(
            r.stdout
                .contains("\\x1b]0;owned\\x07\\x1b[2J\\xff.committed")
                || r.stdout
                    .contains("\\\\x1b]0;owned\\\\x07\\\\x1b[2J\\\\xff.committed"),
            "{args:?}: {}",
            r.stdout
        );
    }
}

/// Asserts `stderr` is one `error:` line in which no cause appears twice.
fn each_cause_once(stderr: &str) {
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let causes: Vec<&str> = stderr.trim_end().split(": ").collect();
    for (i, cause) in causes.iter().enumerate() {
        assert!(
            !causes[i + 1..].contains(cause),
            "`{cause}` is said twice: {stderr}"
        );
    }
}

/// Bug: a cause that an error type both prints and returns as its source was printed twice
/// (a junk archive: "failed to read entire block: failed to read entire block"). Every cause
/// is printed once, with its errno where it has one.
#[test]
fn an_error_names_each_cause_once_with_its_errno() {
    let (tmp, dir) = demo_dir();
    let key = s(&dir.join("node.pub"));
    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, b"not a tar stream\n").unwrap();
    let into = s(&tmp.path().join("into"));
    let r = run(&[
        "import",
        "--level",
        "operational",
        &s(&junk),
        &into,
        "--key",
        &key,
    ]);
    // Refused (1) or unreadable (2): either way one line, each cause once.
    assert!([1, 2].contains(&r.code), "{r:?}");
    assert!(r.stderr.contains("junk.tar"), "{}", r.stderr);
    each_cause_once(&r.stderr);
    // The open of a key file whose directory is a regular file: ENOTDIR, said once.
    let plain = tmp.path().join("plain");
    std::fs::write(&plain, b"x").unwrap();
    let r = run(&["verify", "--key", &s(&plain.join("k.pub")), &s(&dir)]).expect(2);
    assert!(r.stderr.contains("k.pub"), "{}", r.stderr);
    assert_eq!(r.stderr.matches("os error 20").count(), 1, "{}", r.stderr);
    each_cause_once(&r.stderr);
}
