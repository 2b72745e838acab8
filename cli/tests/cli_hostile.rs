//! Hostile files where the command expects its own: links, FIFOs, huge sparse files and
//! absurd names in place of `node.pub`, `--key`, `--config` and `committed.log`, through the
//! real binary. Every run has a deadline: a run that hangs is killed and the test fails (it
//! never hangs the suite).

mod cli_support;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use cli_support::{committed, demo_dir, Run, SMALL_DEMO};

/// Far beyond what any of these runs needs; only a hang (or a read of gigabytes) reaches it.
const DEADLINE: Duration = Duration::from_secs(120);

/// Runs `snapseal args...` like `cli_support::snapseal`, but kills it and fails the test if it
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
        refused(run(&args), "node.pub", "is a FIFO, not a regular file");
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
        "is 1 GiB, over the 64 KiB limit for a key file",
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
        "is a FIFO, not a regular file",
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
        "is a FIFO, not a regular file",
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
    let names = cli_support::names(&dir);
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
