//! `demo --ship-to`, `ship`, `restore` and `remote` on the local-directory remote, and the
//! demo → restore round trip against the S3 test server (skipped without one, like the
//! `snapseal-ship` S3 tests; a failure under `SNAPSEAL_REQUIRE_S3=1`).

mod cli_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cli_support::{committed, snapseal, SMALL_DEMO};

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
    // The test server creates a bucket on a plain PUT (object_store does not create buckets).
    let bucket = format!("snapseal-cli-{}", std::process::id());
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
    let mut extra = Vec::new();
    for (k, v) in [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "testing"),
        ("aws_secret_access_key", "testing"),
        ("aws_region", "us-east-1"),
    ] {
        extra.push("--remote-opt".to_string());
        extra.push(format!("{k}={v}"));
    }
    restore_newest(&url, &dir, &new, &extra);
}
