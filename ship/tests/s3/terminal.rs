//! Errors no retry cures stop the shipper, each cause said once: no credentials at all, a key
//! the server does not know, a missing bucket (`s3::s3_a_missing_bucket_is_terminal`), a
//! refusal's answer printed once. (Keys moto's IAM refuses: `server_process`; read-only and
//! full local remotes: the `local` binary's `hostile_local` and `full_remote`.)

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;

use crate::support::s3::{s3_test, unique_bucket, Server};
use crate::support::*;
use snapseal_ship::{describe, ErrorClass, Remote, RemoteOptions, ShipConfig, ShipError, Shipper};

s3_test!(s3_a_terminal_error_says_the_servers_answer_once);

/// The server's error body appears once in the error's description, though several links of
/// object_store's chain carry it.
fn s3_a_terminal_error_says_the_servers_answer_once(server: &Server) {
    let local = tempfile::tempdir().unwrap();
    let store = store(local.path());
    persist(&store, 1, 100);
    let remote = server.remote(&unique_bucket("none"));
    let mut config = ShipConfig::new("n1");
    config.max_attempts = Some(2);
    let shipper = Shipper::new(remote, store, config).unwrap();
    let err = shipper.ship_pending().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Terminal, "{err}");
    let text = describe(&err);
    for once in [
        "<Code>NoSuchBucket</Code>",
        "The specified bucket does not exist",
    ] {
        assert_eq!(text.matches(once).count(), 1, "{once} in: {text}");
    }
}

/// s3rver knows one access key and refuses any other (`InvalidAccessKeyId`): the shipper
/// stops at once, with no retry, and writes nothing. s3rver only: the shared moto accepts
/// any key (moto's own refusals are in `server_process`).
#[test]
fn s3_a_key_s3rver_does_not_know_stops_the_shipper_without_a_retry() {
    let test = "s3_a_key_s3rver_does_not_know_stops_the_shipper_without_a_retry";
    let Some(server) = Server::named("s3rver", test) else {
        return;
    };
    let bucket = server.bucket("key");
    let local = tempfile::tempdir().unwrap();
    let store = store(local.path());
    persist(&store, 1, 100);
    let mut o = server.options();
    o.options.retain(|(k, _)| k != "aws_access_key_id");
    o.options
        .push(("aws_access_key_id".into(), "AKIAUNKNOWNUNKNOWN00".into()));
    let remote = Arc::new(Remote::open(&format!("s3://{bucket}"), &o).unwrap());
    // Retry forever on transient errors: only classifying the refusal as terminal ends it.
    let shipper = Shipper::new(remote, store, ShipConfig::new("n1")).unwrap();
    let err = shipper.ship_pending().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Terminal, "{err}");
    assert!(describe(&err).contains("InvalidAccessKeyId"), "{err}");
    let stats = shipper.stats();
    assert_eq!((stats.retries, stats.terminal_errors), (0, 1));
    let seen = server.remote(&bucket);
    let listed: Vec<object_store::ObjectMeta> =
        crate::support::check::block_on(seen.store().list(None).try_collect()).unwrap();
    assert!(listed.is_empty(), "nothing written: {listed:?}");
}

const NO_CREDENTIALS_CHILD: &str = "SNAPSEAL_SHIP_NO_CREDENTIALS_CHILD";

/// A shipper with no credentials from anywhere (no `AWS_*` in its environment, none in its
/// options), retrying transient errors forever; prints how it ended. Runs only when the
/// parent starts it, in an environment the parent controls (variables are process-global).
#[test]
#[ignore = "the child process of s3_no_credentials_at_all_stop_the_shipper_within_seconds"]
fn no_credentials_child() {
    let dir = std::env::var(NO_CREDENTIALS_CHILD).unwrap();
    let store = store(std::path::Path::new(&dir));
    let mut o = RemoteOptions::default();
    for (k, v) in [
        // A closed port: whatever is tried, no server answers for it.
        ("aws_endpoint", "http://127.0.0.1:9"),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
    ] {
        o.options.push((k.into(), v.into()));
    }
    let err: ShipError = match Remote::open("s3://bucket", &o) {
        Err(e) => e,
        Ok(remote) => Shipper::new(Arc::new(remote), store, ShipConfig::new("n1"))
            .unwrap()
            .ship_pending()
            .unwrap_err(),
    };
    println!("ENDED {:?}: {}", err.class(), describe(&err));
}

/// With no credentials at all the store would ask the EC2 instance metadata service, which
/// off EC2 fails like a network error, retried forever. Instead the remote is refused at
/// once, saying where credentials come from. Needs no S3 server.
#[test]
fn s3_no_credentials_at_all_stop_the_shipper_within_seconds() {
    let local = tempfile::tempdir().unwrap();
    persist(&store(local.path()), 1, 100);
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "terminal::no_credentials_child",
            "--ignored",
            "--nocapture",
        ])
        .env(NO_CREDENTIALS_CHILD, local.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            child.env_remove(k);
        }
    }
    let mut child = child.spawn().unwrap();
    // A hang guard, not a timing assertion: the old behaviour never ends.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a shipper without credentials was still retrying after 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    let ended = out
        .lines()
        .find(|l| l.starts_with("ENDED "))
        .unwrap_or_else(|| panic!("the child said nothing: {out}"));
    assert!(ended.starts_with("ENDED Terminal: "), "{ended}");
    assert!(ended.contains("no credentials"), "{ended}");
    assert!(ended.contains("AWS_ACCESS_KEY_ID"), "{ended}");
}
