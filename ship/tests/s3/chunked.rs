//! Chunked snapshots on both S3 servers: a second ship after a small change uploads only the
//! new chunks; a restore rebuilds the state, takes chunks from two remotes that each hold
//! some, and passes over a snapshot with a damaged chunk (naming it) for an older one; gc
//! keeps the chunks of retained and held snapshots and deletes the rest.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;

use crate::support::check::block_on;
use crate::support::chunked::*;
use crate::support::s3::{s3_test, Server};
use snapseal_persist::{SnapshotName, SnapshotStore};
use snapseal_ship::retention::{self, GcPolicy};
use snapseal_ship::{restore, Remote, RestoreOptions, ShipConfig, Shipper};

s3_test!(
    s3_chunked_ships_only_new_chunks_and_restores_from_two_remotes,
    s3_chunked_gc_keeps_referenced_chunks_and_a_damaged_chunk_fails_its_snapshot,
);

const NODE: &str = "n1";
const MIB: usize = 1 << 20;

fn config() -> ShipConfig {
    let mut config = ShipConfig::new(NODE);
    config.max_attempts = Some(3);
    config
}

fn chunk_key(remote: &Remote, hex: &str) -> Path {
    remote.node_prefix(NODE).join("chunks").join(hex)
}

/// The keys of every object below `remote`'s node prefix.
fn keys(remote: &Remote) -> Vec<Path> {
    let prefix = remote.node_prefix(NODE);
    block_on(
        remote
            .store()
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect(),
    )
    .unwrap()
}

fn exists(remote: &Remote, key: &Path) -> bool {
    block_on(remote.store().head(key)).is_ok()
}

fn shipped(server: &Server, tag: &str) -> (Arc<Remote>, Arc<SnapshotStore>, tempfile::TempDir) {
    let bucket = server.bucket(tag);
    let remote = server.remote(&format!("{bucket}/c"));
    let local = tempfile::tempdir().unwrap();
    let store = chunked_store(local.path());
    (remote, store, local)
}

fn s3_chunked_ships_only_new_chunks_and_restores_from_two_remotes(server: &Server) {
    let (remote, store, _local) = shipped(server, "ck");
    let sh = Shipper::new(Arc::clone(&remote), Arc::clone(&store), config()).unwrap();
    let old = state(2 * MIB, 21);
    let new = edited(&old, MIB, 100);
    persist_chunked(&store, 10, &old);
    sh.ship_pending().unwrap();
    let first = sh.stats().chunk_bytes_uploaded;
    let name = persist_chunked(&store, 20, &new);
    sh.ship_pending().unwrap();
    let second = sh.stats().chunk_bytes_uploaded - first;
    assert_eq!(first, 2 * MIB as u64);
    assert!(
        second > 0 && second <= 3 * 256 * 1024,
        "{second} bytes for a 100-byte change"
    );

    let target = tempfile::tempdir().unwrap();
    let into = chunked_store(target.path());
    assert_eq!(
        restore(&remote, &into, &RestoreOptions::default())
            .unwrap()
            .name,
        name
    );
    assert_eq!(read_state(&into, &name), new);

    // A second remote with the same objects; then each keeps every other chunk of `name`.
    let other = server.remote(&format!("{}/c", server.bucket("ck2")));
    for key in keys(&remote) {
        let bytes = block_on(async { remote.store().get(&key).await?.bytes().await }).unwrap();
        let rel: Vec<_> = key
            .parts()
            .skip(remote.node_prefix(NODE).parts().count())
            .collect();
        let mut to = other.node_prefix(NODE);
        for part in rel {
            to = to.join(part);
        }
        block_on(other.store().put(&to, bytes.into())).unwrap();
    }
    for (i, hex) in chunk_names(&store, &name).iter().enumerate() {
        let from = if i % 2 == 0 { &remote } else { &other };
        block_on(from.store().delete(&chunk_key(from, hex))).unwrap();
    }
    let target = tempfile::tempdir().unwrap();
    let into = chunked_store(target.path());
    let opts = RestoreOptions::default().with_chunk_source(Arc::clone(&other));
    let r = restore(&remote, &into, &opts).unwrap();
    assert_eq!(r.name, name);
    assert_eq!(read_state(&into, &name), new);
}

fn s3_chunked_gc_keeps_referenced_chunks_and_a_damaged_chunk_fails_its_snapshot(server: &Server) {
    let (remote, store, _local) = shipped(server, "cg");
    let sh = Shipper::new(Arc::clone(&remote), Arc::clone(&store), config()).unwrap();
    let names: Vec<SnapshotName> = (1..=3u64)
        .map(|i| persist_chunked(&store, i * 10, &state(MIB, 30 + i)))
        .collect();
    sh.ship_pending().unwrap();
    retention::hold(&remote, NODE, &names[0]).unwrap();
    let report = retention::gc(&remote, &GcPolicy::new(1)).unwrap();
    let deleted: Vec<u64> = report.deleted.iter().map(|o| o.name.idx).collect();
    assert_eq!(deleted, [20]);
    let dead = chunk_names(&store, &names[1]);
    assert_eq!(report.chunks_deleted, dead.len());
    for hex in &dead {
        assert!(
            !exists(&remote, &chunk_key(&remote, hex)),
            "dead chunk {hex} deleted"
        );
    }
    for name in [&names[0], &names[2]] {
        for hex in chunk_names(&store, name) {
            assert!(
                exists(&remote, &chunk_key(&remote, &hex)),
                "{name}'s chunk {hex} kept"
            );
        }
    }
    // A damaged chunk of the newest: restore passes over it, naming the chunk, and takes the
    // held one.
    let victim = chunk_names(&store, &names[2])[0].clone();
    block_on(
        remote
            .store()
            .put(&chunk_key(&remote, &victim), b"junk".to_vec().into()),
    )
    .unwrap();
    let target = tempfile::tempdir().unwrap();
    let into = chunked_store(target.path());
    let r = restore(&remote, &into, &RestoreOptions::default()).unwrap();
    assert_eq!(r.name, names[0]);
    assert_eq!(r.passed_over.len(), 1, "{:?}", r.passed_over);
    assert!(r.passed_over[0].contains(&victim), "{:?}", r.passed_over);
    let committed: Vec<u64> = into.list().unwrap().iter().map(|e| e.name.idx).collect();
    assert_eq!(committed, [10]);
}
