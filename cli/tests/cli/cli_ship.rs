//! `demo --ship-to`, `ship`, `restore` and `remote` on the local-directory remote, and the
//! demo → restore round trip against the S3 test server (skipped without one, like the
//! `snapseal-ship` S3 tests; a failure under `SNAPSEAL_REQUIRE_S3=1`). Then a hostile remote
//! and hostile arguments: links and FIFOs in the remote, out-of-range numbers, an unreachable
//! remote, a missing source, a link where restore writes, names with terminal escapes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{committed, demo_dir, snapseal, Run, SMALL_DEMO};

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fname(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_string()
}

/// Restores from `url` into `new` (trusting `dir`'s key, with `extra` arguments) and checks
/// that it brought `dir`'s newest committed snapshot, byte for byte, and that `new` verifies;
/// returns the JSON report.
fn restore_newest(url: &str, dir: &Path, new: &Path, extra: &[String]) -> serde_json::Value {
    let newest = fname(committed(dir).last().unwrap());
    let key = dir.join("node.pub");
    let mut args = vec![
        "restore",
        "--json",
        "--from",
        url,
        arg(new),
        "--key",
        arg(&key),
    ];
    args.extend(extra.iter().map(String::as_str));
    let report = snapseal(&args).expect(0).json();
    assert_eq!(report["restored"].as_str(), Some(newest.as_str()));
    assert_eq!(
        std::fs::read(new.join(&newest)).unwrap(),
        std::fs::read(dir.join(&newest)).unwrap()
    );
    snapseal(&["verify", arg(new), "--key", arg(&key)]).expect(0);
    report
}

#[test]
fn demo_ship_to_then_restore_gives_the_newest_snapshot_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, remote, new) = (
        tmp.path().join("snap"),
        tmp.path().join("remote"),
        tmp.path().join("new"),
    );
    let url = format!("file://{}", remote.display());
    let mut args = vec!["demo", "--dir", arg(&dir), "--ship-to", &url];
    args.extend(SMALL_DEMO);
    snapseal(&args).expect(0);
    let files = committed(&dir);
    let newest = fname(files.last().unwrap());
    assert!(files.len() >= 4, "{files:?}");
    let report = restore_newest(&url, &dir, &new, &[]);
    assert_eq!(report["latest"].as_str(), Some(newest.as_str()));

    // Shipping again uploads nothing; the listing names every file, indexed.
    let again = snapseal(&["ship", "--json", arg(&dir), "--to", &url, "--node", "demo"]).expect(0);
    assert_eq!(again.json()["shipped"].as_array().unwrap().len(), 0);
    let listed = snapseal(&["remote", "list", "--json", &url])
        .expect(0)
        .json();
    assert_eq!(listed.as_array().unwrap().len(), files.len());
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["indexed"] == true));

    // Remote gc keeps the newest two and the held one.
    let oldest = fname(&files[0]);
    snapseal(&["remote", "hold", &url, "--node", "demo", &oldest]).expect(0);
    let gc = snapseal(&["remote", "gc", "--json", &url, "--keep-last", "2"])
        .expect(0)
        .json();
    assert_eq!(gc["kept"].as_array().unwrap().len(), 3);
    assert!(remote.join("demo").join(&oldest).exists());
    assert_eq!(gc["deleted"].as_array().unwrap().len(), files.len() - 3);
    assert!(!remote.join("demo").join(fname(&files[1])).exists());
    snapseal(&["remote", "release", &url, "--node", "demo", &oldest]).expect(0);
}

#[test]
fn restore_from_an_empty_remote_fails_with_exit_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("k.pub");
    let public = snapseal::persist::SigningKey::from_bytes(&[7; 32]).verifying_key();
    std::fs::write(
        &key,
        format!("{}\n", snapseal::persist::to_hex(public.as_bytes())),
    )
    .unwrap();
    let url = format!("file://{}", tmp.path().join("empty").display());
    let new = tmp.path().join("new");
    let run = snapseal(&["restore", "--from", &url, arg(&new), "--key", arg(&key)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("no snapshot restored"),
        "{}",
        run.stderr
    );
    assert!(committed(&new).is_empty());
}

/// The S3 test server's endpoint (`http://host:port`), or `None` after printing the skip.
fn s3_endpoint(test: &str) -> Option<String> {
    let reason = match std::env::var("SNAPSEAL_S3_ENDPOINT") {
        Err(_) => "SNAPSEAL_S3_ENDPOINT is not set".to_string(),
        Ok(url) => {
            let hp = url.trim_start_matches("http://").trim_end_matches('/');
            let up = std::net::ToSocketAddrs::to_socket_addrs(hp)
                .ok()
                .and_then(|mut a| a.next())
                .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok());
            match up {
                Some(_) => return Some(url),
                None => format!("no S3 server answers at {url}"),
            }
        }
    };
    if std::env::var("SNAPSEAL_REQUIRE_S3").is_ok_and(|v| v == "1") {
        panic!("{test}: SNAPSEAL_REQUIRE_S3=1 but {reason}");
    }
    println!("{test}: SKIPPED (did not run): {reason}");
    None
}

#[test]
fn demo_ship_to_s3_then_restore_from_s3_gives_the_newest_snapshot_byte_for_byte() {
    let test = "demo_ship_to_s3_then_restore_from_s3_gives_the_newest_snapshot_byte_for_byte";
    let Some(endpoint) = s3_endpoint(test) else {
        return;
    };
    let bucket = new_bucket(&endpoint, "cli");

    let tmp = tempfile::tempdir().unwrap();
    let (dir, new) = (tmp.path().join("snap"), tmp.path().join("new"));
    let url = format!("s3://{bucket}/cluster-a");
    // The demo reads the store's settings from the AWS_* environment ...
    let demo = Command::new(env!("CARGO_BIN_EXE_snapseal"))
        .args(["demo", "--quiet", "--dir", arg(&dir), "--ship-to", &url])
        .args(SMALL_DEMO)
        .env_remove("RUST_LOG")
        .env("AWS_ENDPOINT", &endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    // ... and restore is given them as --remote-opt instead.
    restore_newest(&url, &dir, &new, &remote_opts(&endpoint));
}

/// Creates a bucket `snapseal-<tag>-<pid>` on the test server with a plain PUT (object_store
/// does not create buckets).
fn new_bucket(endpoint: &str, tag: &str) -> String {
    let bucket = format!("snapseal-{tag}-{}", std::process::id());
    let hp = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(hp).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {hp}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    bucket
}

/// The test server's settings as `--remote-opt KEY=VALUE` arguments.
fn remote_opts(endpoint: &str) -> Vec<String> {
    let mut extra = Vec::new();
    for (k, v) in [
        ("aws_endpoint", endpoint),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "testing"),
        ("aws_secret_access_key", "testing"),
        ("aws_region", "us-east-1"),
    ] {
        extra.push("--remote-opt".to_string());
        extra.push(format!("{k}={v}"));
    }
    extra
}

#[test]
fn demo_ship_to_s3_takes_remote_opts_and_needs_no_aws_environment() {
    let test = "demo_ship_to_s3_takes_remote_opts_and_needs_no_aws_environment";
    let Some(endpoint) = s3_endpoint(test) else {
        return;
    };
    let bucket = new_bucket(&endpoint, "cli-opt");
    let tmp = tempfile::tempdir().unwrap();
    let (dir, new) = (tmp.path().join("snap"), tmp.path().join("new"));
    let url = format!("s3://{bucket}/opts");
    let opts = remote_opts(&endpoint);
    let mut demo = Command::new(env!("CARGO_BIN_EXE_snapseal"));
    demo.args(["demo", "--quiet", "--dir", arg(&dir), "--ship-to", &url])
        .args(SMALL_DEMO)
        .args(&opts)
        .env_remove("RUST_LOG");
    // Only the options say where the server is and who we are.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            demo.env_remove(k);
        }
    }
    let demo = demo.output().unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    restore_newest(&url, &dir, &new, &opts);
}

#[test]
fn demo_refuses_remote_opts_it_cannot_use_before_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    for (args, says) in [
        (vec!["--remote-opt", "aws_region=x"], "--ship-to"),
        (
            vec!["--ship-to", "s3://b", "--remote-opt", "no_such_option=1"],
            "no_such_option",
        ),
    ] {
        let mut all = vec!["demo", "--dir", arg(&dir)];
        all.extend(args);
        let run = snapseal(&all);
        assert_eq!(run.code, 2, "{all:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{all:?}: {}", run.stderr);
        assert!(!dir.exists(), "{all:?}: the run never started");
    }
}

/// Runs `snapseal args...` like [`snapseal`], but fails the test if it has not exited within
/// a minute (then it is killed, by its pid): every run here is a few small reads, or fails at
/// once, so only a hang takes that long.
fn snapseal_promptly(args: &[&str]) -> Run {
    let child = Command::new(env!("CARGO_BIN_EXE_snapseal"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        panic!("snapseal {args:?}: still running after 60 s: it hangs");
    };
    let out = out.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A finished small demo shipped as node `demo` to `<tmp>/remote`: (tmp, demo dir, remote
/// dir, its URL).
pub(crate) fn shipped_demo() -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let (tmp, dir) = demo_dir();
    let remote = tmp.path().join("remote");
    let url = format!("file://{}", remote.display());
    snapseal(&["ship", arg(&dir), "--to", &url, "--node", "demo"]).expect(0);
    (tmp, dir, remote, url)
}

/// Each committed file of `dir` with its bytes.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    committed(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[test]
fn remote_gc_never_deletes_a_nodes_snapshots_through_a_symlinked_directory() {
    let (_tmp, dir, remote, url) = shipped_demo();
    // The node's own snapshot directory, linked into the remote under a node's name.
    symlink(&dir, remote.join("victim")).unwrap();
    let before = contents(&dir);
    assert!(before.len() >= 2, "{before:?}");
    let gc = snapseal_promptly(&["remote", "gc", "--json", &url, "--keep-last", "1"])
        .expect(0)
        .json();
    let after = contents(&dir);
    let names = |v: &[(PathBuf, Vec<u8>)]| v.iter().map(|(p, _)| fname(p)).collect::<Vec<_>>();
    assert!(
        after == before,
        "no local snapshot was touched: before {:?}, after {:?}",
        names(&before),
        names(&after)
    );
    let nodes: Vec<&str> = gc["kept"]
        .as_array()
        .unwrap()
        .iter()
        .chain(gc["deleted"].as_array().unwrap())
        .map(|o| o["node"].as_str().unwrap())
        .collect();
    assert!(nodes.iter().all(|n| *n == "demo"), "{nodes:?}");
}

#[test]
fn a_fifo_at_a_node_index_never_hangs_remote_list_or_restore_and_both_list_instead() {
    let (tmp, dir, remote, url) = shipped_demo();
    let fifo = remote.join("demo").join("index.json");
    std::fs::remove_file(&fifo).unwrap();
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let listed = snapseal_promptly(&["remote", "list", "--json", &url])
        .expect(0)
        .json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), committed(&dir).len());
    assert!(listed.iter().all(|o| o["indexed"] == false), "{listed:?}");
    let new = tmp.path().join("new");
    let key = dir.join("node.pub");
    let report = snapseal_promptly(&[
        "restore",
        "--json",
        "--from",
        &url,
        arg(&new),
        "--key",
        arg(&key),
    ])
    .expect(0)
    .json();
    assert_eq!(report["listed"], true);
    let newest = fname(committed(&dir).last().unwrap());
    assert_eq!(report["restored"].as_str(), Some(newest.as_str()));
}

#[test]
fn a_one_shot_ship_to_an_unreachable_remote_gives_up_after_five_logged_tries() {
    let (_tmp, dir) = demo_dir();
    // A port nothing listens on: every request is refused, a transient failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut args = vec![
        "ship".to_string(),
        arg(&dir).to_string(),
        "--to".into(),
        "s3://nowhere".into(),
    ];
    for opt in [
        format!("aws_endpoint=http://{closed}"),
        "aws_allow_http=true".into(),
        "aws_access_key_id=testing".into(),
        "aws_secret_access_key=testing".into(),
        "aws_region=us-east-1".into(),
    ] {
        args.push("--remote-opt".into());
        args.push(opt);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = snapseal_promptly(&args).expect(2);
    assert!(
        run.stderr.contains("gave up after 5 attempts"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("transient error: retrying").count(),
        4,
        "each retry is logged: {}",
        run.stderr
    );
}

#[test]
fn ship_through_a_symlinked_node_directory_exits_2_at_once_saying_why_once() {
    let (tmp, dir) = demo_dir();
    let (remote, outside) = (tmp.path().join("remote"), tmp.path().join("outside"));
    std::fs::create_dir_all(&remote).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    symlink(&outside, remote.join("demo")).unwrap();
    let url = format!("file://{}", remote.display());
    let run = snapseal_promptly(&["ship", arg(&dir), "--to", &url, "--node", "demo"]).expect(2);
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap();
    assert_eq!(
        error.matches("symbolic link").count(),
        1,
        "the cause, once: {error}"
    );
    // Once in all of stderr too: the library returns the error, the CLI prints it.
    assert_eq!(
        run.stderr.matches("symbolic link").count(),
        1,
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn gc_with_the_largest_ttl_keeps_every_object() {
    let (_tmp, dir, _remote, url) = shipped_demo();
    let gc = snapseal(&[
        "remote",
        "gc",
        "--json",
        &url,
        "--keep-last",
        "1",
        "--ttl",
        &u64::MAX.to_string(),
    ])
    .expect(0)
    .json();
    assert_eq!(gc["deleted"].as_array().unwrap().len(), 0, "{gc}");
    assert_eq!(gc["kept"].as_array().unwrap().len(), committed(&dir).len());
}

#[test]
fn numeric_options_out_of_range_are_refused_before_anything_happens() {
    let (tmp, dir) = demo_dir();
    let remote = tmp.path().join("remote");
    let url = format!("file://{}", remote.display());
    let new = tmp.path().join("new");
    let huge = "99999999999999999999999";
    for args in [
        vec!["ship", arg(&dir), "--to", &url, "--poll", "0"],
        vec!["ship", arg(&dir), "--to", &url, "--follow", "--poll", huge],
        vec!["ship", arg(&dir), "--to", &url, "--concurrency", "0"],
        vec!["ship", arg(&dir), "--to", &url, "--concurrency", "100000"],
        vec!["ship", arg(&dir), "--to", &url, "--max-attempts", "0"],
        vec!["remote", "gc", &url, "--keep-last", "0"],
        vec!["remote", "gc", &url, "--keep-last", "1", "--ttl", huge],
        vec![
            "restore",
            "--from",
            &url,
            arg(&new),
            "--max-file-bytes",
            "0",
        ],
    ] {
        let run = snapseal(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(!remote.exists(), "{args:?} created the remote");
        assert!(!new.exists(), "{args:?} created the target");
    }
}

#[test]
fn restore_with_a_link_at_the_newest_name_restores_an_older_one_and_exits_2_saying_so() {
    let (tmp, dir, _remote, url) = shipped_demo();
    let files = committed(&dir);
    let (newest, older) = (
        fname(&files[files.len() - 1]),
        fname(&files[files.len() - 2]),
    );
    let new = tmp.path().join("new");
    std::fs::create_dir_all(&new).unwrap();
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, b"not a snapshot").unwrap();
    symlink(&victim, new.join(&newest)).unwrap();
    let key = dir.join("node.pub");
    let run = snapseal(&["restore", "--from", &url, arg(&new), "--key", arg(&key)]).expect(2);
    assert!(
        run.stdout.contains(&format!("restored {older}")),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("already there"), "{}", run.stdout);
    assert!(
        run.stdout.contains("failed here") && run.stdout.contains(&newest),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("could not be stored"), "{}", run.stderr);
    assert_eq!(
        std::fs::read(new.join(&older)).unwrap(),
        std::fs::read(dir.join(&older)).unwrap()
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"not a snapshot");
}

#[test]
fn ship_from_a_missing_directory_exits_2_and_creates_no_remote_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote");
    let url = format!("file://{}", remote.display());
    let missing = tmp.path().join("missing");
    let run = snapseal(&["ship", arg(&missing), "--to", &url]).expect(2);
    assert!(run.stderr.contains("missing"), "{}", run.stderr);
    assert!(!remote.exists() && !missing.exists());
}

#[test]
fn a_node_name_with_terminal_escapes_from_the_remote_is_never_printed_raw() {
    let (tmp, dir, remote, url) = shipped_demo();
    // The directory and the index of a node named with an escape sequence.
    let evil = "\u{1b}]0;pwned\u{7}";
    std::fs::rename(remote.join("demo"), remote.join(evil)).unwrap();
    let index_path = remote.join(evil).join("index.json");
    let index = std::fs::read_to_string(&index_path).unwrap();
    let index = index.replace("\"demo\"", "\"\\u001b]0;pwned\\u0007\"");
    std::fs::write(&index_path, index).unwrap();
    let new = tmp.path().join("new");
    let key = dir.join("node.pub");
    for args in [
        vec!["restore", "--from", &url, arg(&new), "--key", arg(&key)],
        vec!["remote", "list", &url],
        vec!["remote", "gc", &url, "--keep-last", "1", "--dry-run"],
    ] {
        let run = snapseal(&args);
        for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(
                !text.contains('\u{1b}') && !text.contains('\u{7}'),
                "{args:?}: raw escape on {what}: {text:?}"
            );
        }
    }
}
