//! CI's chaos run: one seeded run of three snapseal-cluster nodes under faults for about a
//! minute, against an S3 server when CI names one (`SNAPSEAL_S3_ENDPOINTS`' moto, as the
//! ship tests read it), else a `file://` remote. It asserts what the run checked: the history is linearizable, the
//! nodes converged, every snapshot file and shipped object verifies, and that the run did
//! what it is for (faults of several kinds, many snapshots).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The node binary `cargo test --workspace` builds beside this test's target directory.
fn node_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/short_run-… → target/debug/snapseal-cluster
    let debug = exe.parent().and_then(|p| p.parent()).unwrap();
    let bin = debug.join("snapseal-cluster");
    assert!(
        bin.is_file(),
        "the node binary {} is missing: build it first (cargo build -p snapseal-cluster, or cargo test --workspace)",
        bin.display()
    );
    bin
}

// The S3 test servers as the ship tests know them: which one CI names first, buckets,
// client options (one copy of that knowledge, shared with ship/tests).
#[allow(dead_code, unused_macros, unreachable_pub)]
#[path = "../../ship/tests/support/s3.rs"]
mod s3;

/// `(remote URL, remote options)`: the first S3 server CI names (moto), with a new bucket;
/// else (and unless `SNAPSEAL_REQUIRE_S3=1`, which fails instead) a directory.
fn remote(dir: &std::path::Path, test: &str) -> (String, Vec<String>) {
    let Some(endpoint) = s3::endpoint(test) else {
        let url = format!("file://{}", dir.display());
        println!("{test}: remote {url}");
        return (url, Vec::new());
    };
    let bucket = s3::unique_bucket("chaos");
    s3::create_bucket(&endpoint, &bucket);
    println!("{test}: remote s3://{bucket}/chaos at {endpoint}");
    let opts = s3::s3_options(&endpoint)
        .options
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    (format!("s3://{bucket}/chaos"), opts)
}

#[test]
fn a_seeded_run_under_faults_is_linearizable_converges_and_every_snapshot_verifies() {
    let bin = node_bin();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("run");
    let remote_dir = work.path().join("remote");
    std::fs::create_dir_all(&remote_dir).unwrap();
    let (remote, opts) = remote(&remote_dir, "short_run");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snapseal-chaos"));
    cmd.args([
        "--seed",
        "25",
        "--duration",
        "45s",
        "--nodes",
        "3",
        "--clients",
        "4",
    ])
    .arg("--node-bin")
    .arg(&bin)
    .arg("--out")
    .arg(&out)
    .arg("--remote")
    .arg(&remote);
    for o in &opts {
        cmd.arg("--remote-opt").arg(o);
    }
    let status = cmd.status().unwrap();
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap_or_else(|e| {
            panic!(
                "no report.json in {} ({e}); the run exited with {status}",
                out.display()
            )
        }))
        .unwrap();
    let n = |k: &str| report[k].as_u64().unwrap_or(0);
    assert!(
        status.success(),
        "the run failed ({status}); report: {report:#}"
    );
    assert_eq!(
        report["violations"].as_array().map(Vec::len),
        Some(0),
        "{report:#}"
    );
    assert_eq!(report["converged"], Value::Bool(true), "{report:#}");
    assert_eq!(
        report["verify_failures"].as_array().map(Vec::len),
        Some(0),
        "{report:#}"
    );
    // The run did what it is for: faults of several kinds, many snapshots, all of them checked.
    assert!(n("faults_total") >= 8, "too few faults: {report:#}");
    let kinds = report["faults"].as_object().map_or(0, |m| m.len());
    assert!(kinds >= 4, "too few kinds of faults: {report:#}");
    assert!(
        report["snapshots"]["built"].as_u64().unwrap_or(0) >= 5,
        "too few snapshots: {report:#}"
    );
    assert!(
        n("verified_local_files") > 0,
        "no snapshot file verified: {report:#}"
    );
    assert!(
        n("verified_remote_objects") > 0,
        "no shipped object verified: {report:#}"
    );
    assert!(
        report["ops"]["ok"].as_u64().unwrap_or(0) >= 100,
        "too few ops: {report:#}"
    );
}

#[test]
fn a_run_whose_history_is_not_linearizable_fails_and_prints_the_seed_and_a_reproduction() {
    let bin = node_bin();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("run");
    let output = Command::new(env!("CARGO_BIN_EXE_snapseal-chaos"))
        .args([
            "--seed",
            "7",
            "--duration",
            "3s",
            "--no-faults",
            "--inject-bad-read",
        ])
        .arg("--node-bin")
        .arg(&bin)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("NOT LINEARIZABLE: key k0"), "{stdout}");
    assert!(
        stdout.contains("never-written-by-any-client"),
        "the witness names the read: {stdout}"
    );
    assert!(stderr.contains("FAILED: seed 7"), "{stderr}");
    assert!(
        stderr.contains("reproduce: snapseal-chaos --seed 7"),
        "{stderr}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["violations"].as_array().map(Vec::len),
        Some(1),
        "{report:#}"
    );
}

/// Mount points at or under `dir` in a process's `/proc/<pid>/mountinfo` (the fifth field).
fn mounts_under(mountinfo: &str, dir: &std::path::Path) -> Vec<String> {
    let dir = dir.to_string_lossy();
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(dir.as_ref()))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_killed_run_leaves_no_tmpfs_mounted_outside_its_own_processes() {
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the full-disk node's tmpfs needs root");
        return;
    }
    let bin = node_bin();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("run");
    let remote = work.path().join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_snapseal-chaos"))
        .args(["--seed", "3", "--duration", "120s", "--clients", "1"])
        .arg("--node-bin")
        .arg(&bin)
        .arg("--out")
        .arg(&out)
        .arg("--remote")
        .arg(format!("file://{}", remote.display()))
        .stdout(std::process::Stdio::null())
        // Its own process group: one kill takes the run and its node processes.
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = run.id();
    let group = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
    // A failed assertion below must not leave the run going for its two minutes.
    struct KillOnDrop(nix::unistd::Pid);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = nix::sys::signal::killpg(self.0, nix::sys::signal::Signal::SIGKILL);
        }
    }
    let _guard = KillOnDrop(group);
    let in_run = |what: &str| -> Vec<String> {
        let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .unwrap_or_else(|e| panic!("{what}: reading the run's mountinfo: {e}"));
        mounts_under(&info, &out)
    };
    // The run mounts node 2's tmpfs before it starts the nodes.
    let start = Instant::now();
    while in_run("waiting for the tmpfs").is_empty() {
        if let Some(status) = run.try_wait().unwrap() {
            panic!("the run exited ({status}) before mounting the full-disk node's tmpfs");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no tmpfs mounted under {} within a minute",
            out.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let here = || {
        mounts_under(
            &std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
            &out,
        )
    };
    assert_eq!(
        here(),
        Vec::<String>::new(),
        "the run's tmpfs is visible outside it"
    );
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).unwrap();
    let status = run.wait().unwrap();
    assert!(
        !status.success(),
        "the run was killed, yet exited with {status}"
    );
    assert_eq!(
        here(),
        Vec::<String>::new(),
        "a tmpfs outlived the killed run"
    );
}
