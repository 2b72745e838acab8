//! What the fault tests assert about a remote, and the clients they use to reach it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStoreExt;
use snapseal_persist::SnapshotName;
use snapseal_ship::index::NodeIndex;
use snapseal_ship::{Remote, RemoteOptions, ShipConfig, INDEX_OBJECT};

use super::file_bytes;
use super::proxy::Proxy;
use super::s3::s3_options;

/// A config that retries quickly, and gives up (failing the test) instead of looping.
pub(crate) fn quick(node: &str) -> ShipConfig {
    let mut c = ShipConfig::new(node);
    c.backoff_initial = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.max_attempts = Some(8);
    c.part_size = 5 << 20;
    c
}

/// `s3://bucket` reached through `proxy`, with this per-request timeout.
pub(crate) fn through(proxy: &Proxy, bucket: &str, timeout: Duration) -> Arc<Remote> {
    let mut o: RemoteOptions = s3_options(&proxy.url());
    o.request_timeout = timeout;
    Arc::new(Remote::open(&format!("s3://{bucket}"), &o).unwrap())
}

/// `s3://bucket` reached directly at `endpoint`.
pub(crate) fn direct(endpoint: &str, bucket: &str) -> Arc<Remote> {
    Arc::new(Remote::open(&format!("s3://{bucket}"), &s3_options(endpoint)).unwrap())
}

/// Runs `f` to completion on a runtime of its own (the remote's is private).
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// An object's bytes, read directly.
pub(crate) fn object_bytes(remote: &Remote, key: &object_store::path::Path) -> bytes::Bytes {
    crate::support::check::block_on(async {
        remote
            .store()
            .get(key)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    })
}

/// `node`'s index, read directly; `None` when there is none.
pub(crate) fn read_node_index(remote: &Remote, node: &str) -> Option<NodeIndex> {
    let key = remote.key(node, INDEX_OBJECT);
    visible(remote, &key).then(|| NodeIndex::decode(&object_bytes(remote, &key), node).unwrap())
}

/// Every object `node`'s index names is there and holds exactly the local file's bytes;
/// returns the names the index gives, oldest first.
pub(crate) fn assert_index_consistent(remote: &Remote, local: &Path, node: &str) -> Vec<String> {
    let Some(n) = read_node_index(remote, node) else {
        return Vec::new();
    };
    for e in &n.snapshots {
        let key = remote.key(node, &e.name);
        let got = object_bytes(remote, &key);
        let name = SnapshotName::parse(&e.name).unwrap();
        assert_eq!(&got[..], &file_bytes(local, &name)[..], "{}", e.name);
        assert_eq!(e.blake3, blake3::hash(&got).to_hex().to_string());
    }
    n.snapshots.iter().map(|e| e.name.clone()).collect()
}

/// Whether `key` is visible on the remote.
pub(crate) fn visible(remote: &Remote, key: &object_store::path::Path) -> bool {
    crate::support::check::block_on(async { remote.store().head(key).await.is_ok() })
}
