//! The S3 protocol against real S3-compatible servers (moto and s3rver, started by
//! `.ci/run`): each test runs once per server (`s3_test!`; see `support::s3` for how the
//! servers are named and when a test is skipped).

use std::sync::Arc;

use crate::support::check::object_bytes;
use crate::support::s3::{s3_test, Server};
use crate::support::*;
use object_store::ObjectStoreExt;
use snapseal_persist::SnapshotName;
use snapseal_ship::{restore, ErrorClass, RestoreOptions, ShipConfig, ShipError, Shipper};

s3_test!(
    s3_ship_then_restore_round_trips,
    s3_an_object_already_at_a_snapshots_name_is_never_overwritten,
    s3_a_missing_bucket_is_terminal,
);

fn s3_ship_then_restore_round_trips(server: &Server) {
    let bucket = server.bucket("rt");
    let (local, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = store(local.path());
    let mut names: Vec<SnapshotName> = (1..=2).map(|i| persist(&store, i, 4000)).collect();
    // Above the part size: a multipart upload.
    names.push(persist(&store, 3, (6 << 20) + 17));
    let remote = server.remote(&format!("{bucket}/cluster-a"));
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

/// Someone else's bytes under a snapshot's name stay as they are, and the shipper stops
/// saying the object differs. On both servers: on moto a conditional create would refuse the
/// overwrite too, but s3rver ignores `If-None-Match` (its create overwrites), so what must
/// hold is that the shipper never sends a create over an object it can see.
fn s3_an_object_already_at_a_snapshots_name_is_never_overwritten(server: &Server) {
    let bucket = server.bucket("cc");
    let local = tempfile::tempdir().unwrap();
    let store = store(local.path());
    let name = persist(&store, 1, 3000);
    let remote = server.remote(&bucket);
    let key = remote.key("n1", &name.file_name());
    let foreign = b"someone else's object".to_vec();
    crate::support::check::block_on(remote.store().put(&key, foreign.clone().into())).unwrap();
    let mut config = ShipConfig::new("n1");
    config.max_attempts = Some(2);
    let shipper = Shipper::new(Arc::clone(&remote), store, config).unwrap();
    let err = shipper.ship_pending().unwrap_err();
    assert!(matches!(err, ShipError::Differs { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Terminal, "{err}");
    assert_eq!(&object_bytes(&remote, &key)[..], &foreign[..]);
}

fn s3_a_missing_bucket_is_terminal(server: &Server) {
    let local = tempfile::tempdir().unwrap();
    let store = store(local.path());
    persist(&store, 1, 100);
    let remote = server.remote(&crate::support::s3::unique_bucket("none"));
    let mut config = ShipConfig::new("n1");
    // A misclassified error fails the test instead of retrying forever.
    config.max_attempts = Some(2);
    let shipper = Shipper::new(remote, store, config).unwrap();
    let err = shipper.ship_pending().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Terminal, "{err}");
    assert!(shipper.stopped().is_some());
    assert_eq!(shipper.stats().terminal_errors, 1);
}
