//! What the archive tests share: a simulated node's store with its ledger on disk, export and
//! import into real directories, taking archives apart and putting them back together.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use snapseal_actors::SnapshotterConfig;
use snapseal_archive::{
    export, import, Dir, ExportError, ExportOptions, ImportError, ImportOptions, Level, Manifest,
    Target,
};
use snapseal_ledger::disk_ledger::{replay_writes, state_hash, ChunkKeys, LedgerDir};
use snapseal_ledger::ledger::Ledger;
use snapseal_ledger::node::{decode_kv, SimConfig};
use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::{SnapshotStore, StoreOptions, VerifyingKey};
use snapseal_sim::harness::fuzz_archive::node_with_disk_ledger;

pub(crate) const SEED: u64 = 11;

pub(crate) fn key() -> VerifyingKey {
    Ledger::seed_key(SEED).verifying_key()
}

pub(crate) fn store_opts() -> StoreOptions {
    let mut o = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![key()])));
    o.keep_last = 100;
    o
}

/// A node's snapshot directory with its ledger on disk in `ledger/` (mirrored tx by tx from
/// the node's ledger, committed at every signature, sealed at the end). Returns the commit
/// index.
pub(crate) fn fixture(dir: &Path) -> u64 {
    fixture_with(dir, 50)
}

/// [`fixture`] with writes drawn from `keys` keys: another `keys` gives another run of the
/// same node (the same signing key, the same indices, snapshot points and chunk names) whose
/// artifacts all verify but hold other bytes.
pub(crate) fn fixture_with(dir: &Path, keys: u64) -> u64 {
    let sim = SimConfig {
        txs: 3000,
        sig_every: 20,
        value_size: 16,
        keys,
        rollback_every: None,
        seed: SEED,
    };
    let snap = SnapshotterConfig {
        tx_interval: 400,
        ..SnapshotterConfig::default()
    };
    let commit =
        node_with_disk_ledger(Arc::new(RealFs::new()), dir, store_opts(), sim, snap, 4096).unwrap();
    assert!(snapshot_names(dir).len() >= 3, "{:?}", snapshot_names(dir));
    commit
}

pub(crate) fn export_opts(level: Level) -> ExportOptions {
    ExportOptions {
        level,
        keys: vec![key()],
        verifier: Arc::new(Ed25519Verifier::new(vec![key()])),
    }
}

pub(crate) fn export_bytes(dir: &Path, level: Level) -> Result<(Vec<u8>, Manifest), ExportError> {
    export_from(&Dir::open(dir).unwrap(), level)
}

/// Exports `handle` (a snapshot directory, with its ledger in `ledger/`) at `level`.
pub(crate) fn export_from(handle: &Dir, level: Level) -> Result<(Vec<u8>, Manifest), ExportError> {
    let source = LedgerDir::open(&RealFs::new(), &handle.path().join("ledger")).unwrap();
    let mut out = Vec::new();
    let r = export(
        handle,
        &source,
        &ChunkKeys(vec![key()]),
        &export_opts(level),
        &mut out,
    )?;
    Ok((out, r.manifest))
}

pub(crate) fn import_into(
    archive: &[u8],
    dir: &Path,
    level: Level,
) -> Result<snapseal_archive::ImportReport, ImportError> {
    import_with(archive, dir, level, false)
}

pub(crate) fn import_with(
    archive: &[u8],
    dir: &Path,
    level: Level,
    repopulate: bool,
) -> Result<snapseal_archive::ImportReport, ImportError> {
    let store = SnapshotStore::open(Arc::new(RealFs::new()), dir, store_opts()).unwrap();
    let handle = Dir::open(dir).unwrap();
    let ledger = handle.open_subdir("ledger", true).unwrap();
    let opts = ImportOptions {
        level,
        trusted_keys: vec![key()],
        repopulate,
    };
    let target = Target {
        store: &store,
        dir: &handle,
        ledger: &ledger,
    };
    import(&mut &archive[..], &target, &ChunkKeys(vec![key()]), &opts)
}

/// State at the commit index: the newest snapshot in `dir` plus the ledger replayed after it.
pub(crate) fn replayed_state(dir: &Path, commit: u64) -> [u8; 32] {
    let store = SnapshotStore::open(Arc::new(RealFs::new()), dir, store_opts()).unwrap();
    let latest = store.latest().unwrap().unwrap();
    let mut body = Vec::new();
    latest
        .body_reader()
        .unwrap()
        .read_to_end(&mut body)
        .unwrap();
    let (idx, mut map) = decode_kv(&body).unwrap();
    let ledger = LedgerDir::open(&RealFs::new(), &dir.join("ledger")).unwrap();
    replay_writes(&ledger, &[key()], idx + 1, commit, &mut map).unwrap();
    state_hash(&map)
}

pub(crate) fn paths(m: &Manifest) -> BTreeSet<String> {
    m.artifacts.iter().map(|a| a.path.clone()).collect()
}

/// All entries of a tar archive, in order.
pub(crate) fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(archive);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let p = e.path().unwrap().display().to_string();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            (p, b)
        })
        .collect()
}

/// An archive of `entries`; with `fix_manifest`, the manifest is rewritten to list them, in
/// their order, with their lengths and digests (a forger who edits the manifest too).
pub(crate) fn rebuild(mut list: Vec<(String, Vec<u8>)>, fix_manifest: bool) -> Vec<u8> {
    if fix_manifest {
        let mut m: Manifest = serde_json::from_slice(&list[0].1).unwrap();
        let original = m.artifacts.clone();
        m.artifacts = list[1..]
            .iter()
            .map(|(p, b)| {
                let mut a = original
                    .iter()
                    .find(|a| a.path == *p)
                    .or_else(|| original.iter().find(|a| p.starts_with(&a.path[..4])))
                    .unwrap()
                    .clone();
                a.path = p.clone();
                a.len = b.len() as u64;
                a.blake3 = blake3::hash(b).to_hex().to_string();
                a
            })
            .collect();
        list[0].1 = serde_json::to_vec(&m).unwrap();
    }
    tar_of(&list)
}

/// A tar stream of `entries`, as export writes them.
pub(crate) fn tar_of(list: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, bytes) in list {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, p, &bytes[..]).unwrap();
    }
    b.into_inner().unwrap()
}

pub(crate) fn src() -> (tempfile::TempDir, PathBuf, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    let commit = fixture(&dir);
    (tmp, dir, commit)
}

/// Two runs of one node (see [`fixture_with`]) in `<tmp>/a` and `<tmp>/b`.
pub(crate) fn twins() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert_eq!(
        fixture_with(&a, 50),
        fixture_with(&b, 60),
        "the same commit index"
    );
    (tmp, a, b)
}

/// The committed chunk names of `dir/ledger`, sorted by start.
pub(crate) fn chunk_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<(u64, String)> = std::fs::read_dir(dir.join("ledger"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let (s, _) = snapseal_archive::ChunkRef::parse_name(&name)?;
            Some((s, name))
        })
        .collect();
    names.sort();
    names.into_iter().map(|(_, n)| n).collect()
}

/// The committed snapshot names of `dir`.
pub(crate) fn snapshot_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".committed"))
                .collect()
        })
        .unwrap_or_default()
}

/// What a directory holds under committed names (snapshots, and chunks in `ledger/`).
pub(crate) fn committed(dir: &Path) -> BTreeSet<String> {
    let mut all = snapshot_names(dir);
    if dir.join("ledger").is_dir() {
        all.extend(chunk_names(dir).into_iter().map(|n| format!("ledger/{n}")));
    }
    all
}

/// The manifest of an entry list (its first entry).
pub(crate) fn manifest_of(list: &[(String, Vec<u8>)]) -> Manifest {
    serde_json::from_slice(&list[0].1).unwrap()
}
