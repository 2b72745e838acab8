//! Upload confirmation and interrupted uploads on real S3-compatible servers: the checksum
//! probe's verdict (neither moto nor s3rver verifies `x-amz-checksum-sha256`, so both are read
//! back, and the probe leaves nothing behind), and a multipart upload interrupted after its
//! first part — its abort failing too — is aborted by the next shipper (on moto only: s3rver
//! does not implement `ListMultipartUploads`, so the test could not see the upload go).

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStoreExt;
use snapseal_ship::{Confirm, Shipper};

use crate::support::check::{quick, through};
use crate::support::proxy::{Action, Proxy};
use crate::support::s3::{host_port, run_on, s3_test, Server};
use crate::support::*;

s3_test!(s3_a_server_that_ignores_checksums_is_read_back_and_the_probe_leaves_nothing);

#[test]
fn s3_an_upload_interrupted_after_its_first_part_is_aborted_by_the_next_shipper_on_moto() {
    run_on(
        "moto",
        module_path!(),
        an_upload_interrupted_after_its_first_part_is_aborted_by_the_next_shipper,
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// The ids of the multipart uploads in progress in `bucket`, as the server lists them
/// (`ListMultipartUploads`, `GET /<bucket>?uploads`); `None` from a server that does not
/// implement it (s3rver).
fn uploads_in_progress(server: &Server, bucket: &str) -> Option<Vec<String>> {
    let port: u16 = host_port(&server.endpoint)
        .and_then(|hp| hp.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        .unwrap();
    let (status, body) = moto::http(port, "GET", &format!("/{bucket}?uploads"), b"").unwrap();
    if status == 501 {
        return None;
    }
    assert_eq!(status, 200, "{body}");
    Some(
        body.split("<UploadId>")
            .skip(1)
            .filter_map(|s| s.split_once("</UploadId>").map(|(id, _)| id.to_string()))
            .collect(),
    )
}

/// The upload records in a snapshot store's directory.
fn records(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ship-upload."))
        .collect()
}

fn s3_a_server_that_ignores_checksums_is_read_back_and_the_probe_leaves_nothing(server: &Server) {
    let bucket = server.bucket("probe");
    let remote = server.remote(&bucket);
    let rt = runtime();
    assert_eq!(
        rt.block_on(remote.confirm_mode()).unwrap(),
        Confirm::ReadBack
    );
    let left: Vec<_> = rt.block_on(async {
        use futures::TryStreamExt;
        remote
            .store()
            .list(None)
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    });
    assert!(left.is_empty(), "the probe left {left:?}");
    if let Some(uploads) = uploads_in_progress(server, &bucket) {
        assert!(uploads.is_empty(), "the probe left {uploads:?}");
    }
    // With the SHA-256 sent on every put and part, shipping still works end to end.
    let local = tempfile::tempdir().unwrap();
    let store = store(local.path());
    let small = persist(&store, 1, 1000);
    let large = persist(&store, 2, 12 << 20);
    let shipper = Shipper::new(remote, Arc::clone(&store), quick("n1")).unwrap();
    assert_eq!(shipper.ship_pending().unwrap().uploaded, vec![small, large]);
}

fn an_upload_interrupted_after_its_first_part_is_aborted_by_the_next_shipper(server: &Server) {
    let bucket = server.bucket("orphan");
    let local = tempfile::tempdir().unwrap();
    let store = store(local.path());
    let large = persist(&store, 1, 12 << 20);
    // Everything up to a little past the first 5 MiB part goes through; then every
    // connection is held and closed, the abort's included.
    let proxy = Proxy::start(host_port(&server.endpoint).unwrap(), |_| {
        Action::CutAfter(5 << 20 | 512 << 10, Duration::from_millis(300))
    });
    let mut config = quick("n1");
    config.parts_in_flight = 1;
    config.max_attempts = Some(1);
    let cut = Shipper::new(
        through(&proxy, &bucket, Duration::from_secs(2)),
        Arc::clone(&store),
        config,
    )
    .unwrap();
    assert!(cut.ship_pending().is_err());
    assert!(proxy.tripped.load(std::sync::atomic::Ordering::SeqCst));
    drop(cut);
    assert_eq!(records(local.path()).len(), 1, "the upload is recorded");
    let interrupted = uploads_in_progress(server, &bucket).unwrap();
    assert_eq!(
        interrupted.len(),
        1,
        "the interrupted upload is still on the server"
    );

    let restarted = Shipper::new(server.remote(&bucket), Arc::clone(&store), quick("n1")).unwrap();
    assert_eq!(restarted.ship_pending().unwrap().uploaded, vec![large]);
    assert_eq!(
        uploads_in_progress(server, &bucket),
        Some(vec![]),
        "the interrupted upload was aborted"
    );
    assert!(records(local.path()).is_empty(), "and its record removed");
    let key = object_store::path::Path::from(format!("n1/{}", large.file_name()));
    let shipped = runtime().block_on(async {
        let remote = server.remote(&bucket);
        remote
            .store()
            .get(&key)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    assert_eq!(&shipped[..], &file_bytes(local.path(), &large)[..]);
}
