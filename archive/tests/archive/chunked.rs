//! Chunked snapshots in archives: export carries the chunks their lists name (`chunks/<blake3>`
//! entries, before the snapshots), read through the store open on the directory; import adds
//! each to the target store's packs checked against its name, and a snapshot is verified
//! against them before anything is committed, so a chunk missing from the archive or damaged
//! in it fails the import, naming it.

use std::path::Path;
use std::sync::Arc;

use snapseal_actors::SnapshotterConfig;
use snapseal_archive::{ArtifactKind, Dir, ExportError, Level, Manifest};
use snapseal_ledger::node::SimConfig;
use snapseal_persist::fs::RealFs;
use snapseal_persist::{ErrorChain, SnapshotStore, StoreOptions};
use snapseal_sim::harness::fuzz_archive::node_with_disk_ledger;

use crate::support::{
    committed, entries, export_from, import_into, rebuild, replayed_state, snapshot_names,
    store_opts, SEED,
};

fn chunked_opts() -> StoreOptions {
    StoreOptions {
        chunked: true,
        ..store_opts()
    }
}

/// A node whose store is chunked (its state spans a few chunks), with its ledger on disk.
/// Returns the commit index.
fn chunked_fixture(dir: &Path) -> u64 {
    let sim = SimConfig {
        txs: 3000,
        sig_every: 20,
        value_size: 64,
        keys: 2000,
        rollback_every: None,
        seed: SEED,
    };
    let snap = SnapshotterConfig {
        tx_interval: 400,
        ..SnapshotterConfig::default()
    };
    let commit = node_with_disk_ledger(
        Arc::new(RealFs::new()),
        dir,
        chunked_opts(),
        sim,
        snap,
        4096,
    )
    .unwrap();
    assert!(snapshot_names(dir).len() >= 3, "{:?}", snapshot_names(dir));
    commit
}

/// Exports `dir` at `level` through its store when `with_store`.
fn export_chunked(
    dir: &Path,
    level: Level,
    with_store: bool,
) -> Result<(Vec<u8>, Manifest), ExportError> {
    let mut handle = Dir::open(dir).unwrap();
    if with_store {
        let store = SnapshotStore::open(Arc::new(RealFs::new()), dir, chunked_opts()).unwrap();
        handle = handle.with_store(Arc::new(store));
    }
    export_from(&handle, level)
}

fn chunk_paths(m: &Manifest) -> Vec<String> {
    m.artifacts
        .iter()
        .filter(|a| a.kind == ArtifactKind::Chunk)
        .map(|a| a.path.clone())
        .collect()
}

#[test]
fn chunked_snapshots_round_trip_with_the_chunks_they_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let commit = chunked_fixture(&src);
    let (archive, manifest) = export_chunked(&src, Level::Archival, true).unwrap();
    let chunks = chunk_paths(&manifest);
    assert!(chunks.len() > snapshot_names(&src).len(), "{chunks:?}");
    for a in manifest
        .artifacts
        .iter()
        .filter(|a| a.kind == ArtifactKind::Chunk)
    {
        assert_eq!(
            a.path,
            format!("chunks/{}", a.blake3),
            "named by its BLAKE3"
        );
        assert!(a.len > 0 && a.len <= 256 << 10);
    }
    let report = import_into(&archive, &dst, Level::Archival).unwrap();
    assert_eq!(report.snapshots_committed.len(), snapshot_names(&src).len());
    assert_eq!(snapshot_names(&dst), snapshot_names(&src));
    assert_eq!(replayed_state(&dst, commit), replayed_state(&src, commit));
    // Every imported snapshot verifies against the target's packs, chunk by chunk.
    let store = SnapshotStore::open(Arc::new(RealFs::new()), &dst, chunked_opts()).unwrap();
    for entry in store.list().unwrap() {
        let file = store.read(&entry.name).unwrap();
        std::io::copy(&mut file.body_reader().unwrap(), &mut std::io::sink()).unwrap();
    }
}

#[test]
fn a_chunked_snapshot_exports_without_its_store_to_the_same_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    chunked_fixture(&src);
    let (without, manifest) = export_chunked(&src, Level::Archival, false).unwrap();
    assert!(!chunk_paths(&manifest).is_empty());
    let (with, _) = export_chunked(&src, Level::Archival, true).unwrap();
    assert!(
        without == with,
        "the packs scanned give the store's archive"
    );
}

#[test]
fn a_chunk_missing_from_the_archive_fails_the_import_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    chunked_fixture(&src);
    let (archive, manifest) = export_chunked(&src, Level::Operational, true).unwrap();
    let gone = chunk_paths(&manifest)[0].clone();
    let mut list = entries(&archive);
    list.retain(|(p, _)| *p != gone);
    // The manifest edited to match: the archive is consistent, only the chunk is missing.
    let err = import_into(&rebuild(list, true), &dst, Level::Operational).unwrap_err();
    let chain = ErrorChain(&err).to_string();
    let hex = gone.strip_prefix("chunks/").unwrap();
    assert!(chain.contains(hex), "{chain}");
    assert!(committed(&dst).is_empty(), "{:?}", committed(&dst));
}

#[test]
fn a_chunk_damaged_in_the_archive_fails_the_import_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    chunked_fixture(&src);
    let (archive, manifest) = export_chunked(&src, Level::Operational, true).unwrap();
    let damaged = chunk_paths(&manifest)[0].clone();
    let mut list = entries(&archive);
    let entry = list.iter_mut().find(|(p, _)| *p == damaged).unwrap();
    entry.1[0] ^= 1;
    let err = import_into(&rebuild(list, false), &dst, Level::Operational).unwrap_err();
    assert!(err.is_refusal(), "{err:?}");
    assert!(err.to_string().contains(&damaged), "{err}");
    assert!(committed(&dst).is_empty(), "{:?}", committed(&dst));
}
