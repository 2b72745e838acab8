//! The S3 protocol against a real S3-compatible server (moto_server, started by `.ci/run`).
//!
//! `SNAPSEAL_S3_ENDPOINT` (e.g. `http://127.0.0.1:5055`) names the server; without it, or when
//! nothing answers there, each test prints "SKIPPED (did not run): reason" and passes, unless
//! `SNAPSEAL_REQUIRE_S3=1` (CI), which turns a skip into a failure.

use std::sync::Arc;

use crate::support::s3::*;
use crate::support::*;
use snapseal_persist::SnapshotName;
use snapseal_ship::{restore, ErrorClass, Remote, RestoreOptions, ShipConfig, Shipper};

#[test]
fn s3_ship_then_restore_round_trips() {
    let Some(endpoint) = endpoint("s3_ship_then_restore_round_trips") else {
        return;
    };
    let bucket = unique_bucket("rt");
    create_bucket(&endpoint, &bucket);
    let (local, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = store(local.path());
    let mut names: Vec<SnapshotName> = (1..=2).map(|i| persist(&store, i, 4000)).collect();
    // Above the part size: a multipart upload.
    names.push(persist(&store, 3, (6 << 20) + 17));
    let remote = Arc::new(
        Remote::open(&format!("s3://{bucket}/cluster-a"), &s3_options(&endpoint)).unwrap(),
    );
    let mut config = ShipConfig::new("n1");
    config.part_size = 5 << 20;
    config.max_attempts = Some(3);
    let shipper = Shipper::new(Arc::clone(&remote), Arc::clone(&store), config.clone()).unwrap();
    let report = shipper.ship_pending().unwrap();
    assert_eq!(report.uploaded, names);
    // A restarted shipper finds everything shipped.
    let again = Shipper::new(Arc::clone(&remote), Arc::clone(&store), config).unwrap();
    assert!(again.ship_pending().unwrap().shipped.is_empty());
    let target_store = crate::support::store(target.path());
    let restored = restore(&remote, &target_store, &RestoreOptions::default()).unwrap();
    assert_eq!(restored.name, names[2]);
    assert_eq!(
        file_bytes(target.path(), &names[2]),
        file_bytes(local.path(), &names[2])
    );
}

#[test]
fn s3_conditional_create_refuses_to_overwrite() {
    let Some(endpoint) = endpoint("s3_conditional_create_refuses_to_overwrite") else {
        return;
    };
    let bucket = unique_bucket("cc");
    create_bucket(&endpoint, &bucket);
    let remote = Remote::open(&format!("s3://{bucket}"), &s3_options(&endpoint)).unwrap();
    use object_store::{PutMode, PutOptions};
    let key = object_store::path::Path::from("k");
    let create = || PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    remote
        .block_on(remote.store().put_opts(&key, "first".into(), create()))
        .unwrap();
    let second = remote.block_on(remote.store().put_opts(&key, "second".into(), create()));
    assert!(
        matches!(
            second,
            Err(object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. })
        ),
        "{second:?}"
    );
    let got = crate::support::check::object_bytes(&remote, &key);
    assert_eq!(&got[..], b"first");
}

#[test]
fn s3_a_missing_bucket_is_terminal() {
    let Some(endpoint) = endpoint("s3_a_missing_bucket_is_terminal") else {
        return;
    };
    let local = tempfile::tempdir().unwrap();
    let store = store(local.path());
    persist(&store, 1, 100);
    let remote = Arc::new(
        Remote::open(
            &format!("s3://{}", unique_bucket("none")),
            &s3_options(&endpoint),
        )
        .unwrap(),
    );
    let mut config = ShipConfig::new("n1");
    // A misclassified error fails the test instead of retrying forever.
    config.max_attempts = Some(2);
    let shipper = Shipper::new(remote, store, config).unwrap();
    let err = shipper.ship_pending().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Terminal, "{err}");
    assert!(shipper.stopped().is_some());
    assert_eq!(shipper.stats().terminal_errors, 1);
}
