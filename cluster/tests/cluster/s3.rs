//! The same rebuild from object storage with an `s3://` remote (moto, s3rver, any
//! S3-compatible server): `SNAPSEAL_S3_ENDPOINT=http://127.0.0.1:PORT` runs it, otherwise it
//! says it was skipped (and fails when `SNAPSEAL_REQUIRE_S3=1`, as in CI).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::rejoin::ship_restore_join;
use crate::support::Cluster;

/// The S3 endpoint the environment names, if any.
fn endpoint() -> Option<String> {
    let from_list = std::env::var("SNAPSEAL_S3_ENDPOINTS")
        .ok()
        .and_then(|list| {
            list.split(',')
                .find_map(|e| e.split_once('=').map(|(_, url)| url.trim().to_string()))
        });
    let found = from_list.or_else(|| std::env::var("SNAPSEAL_S3_ENDPOINT").ok());
    if found.is_none() {
        let why = "neither SNAPSEAL_S3_ENDPOINT nor SNAPSEAL_S3_ENDPOINTS is set";
        assert!(
            std::env::var("SNAPSEAL_REQUIRE_S3").as_deref() != Ok("1"),
            "{why}"
        );
        eprintln!("skipped: {why}");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_from_an_s3_remote_joins_and_converges() {
    let Some(endpoint) = endpoint() else { return };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bucket = format!("snapseal-cluster-{}-{nanos}", std::process::id());
    // The test servers create a bucket on an unsigned PUT.
    let created = reqwest::Client::new()
        .put(format!("{}/{bucket}", endpoint.trim_end_matches('/')))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "creating {bucket}: {}",
        created.status()
    );
    let opts: Vec<String> = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "snapseal"),
        ("aws_secret_access_key", "snapseal"),
        ("aws_region", "us-east-1"),
    ]
    .iter()
    .map(|(k, v)| format!("--remote-opt={k}={v}"))
    .collect();
    let mut flags = vec!["--snapshot-every", "10", "--keep-logs", "5"];
    flags.extend(opts.iter().map(String::as_str));
    let mut c = Cluster::configure(3, &flags);
    c.remote = format!("s3://{bucket}/cluster");
    ship_restore_join(c, &flags).await;
}
