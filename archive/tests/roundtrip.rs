//! Export and import over a simulated node's store and its ledger on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use snapseal_actors::SnapshotterConfig;
use snapseal_archive::{
    export, import, ExportError, ExportOptions, ImportError, ImportOptions, Level, Manifest,
};
use snapseal_engine::TaskSystem;
use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::{SnapshotStore, StoreOptions, VerifyingKey};
use snapseal_sim::disk_ledger::{replay_writes, state_hash, ChunkKeys, DiskLedger, LedgerDir};
use snapseal_sim::ledger::{Ledger, TxKind};
use snapseal_sim::node::{decode_kv, SimConfig, SimNode};

const SEED: u64 = 11;

fn key() -> VerifyingKey {
    Ledger::seed_key(SEED).verifying_key()
}

fn store_opts() -> StoreOptions {
    let mut o = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![key()])));
    o.keep_last = 100;
    o
}

/// A node's snapshot directory with its ledger on disk in `ledger/` (mirrored tx by tx from
/// the node's ledger, committed at every signature, sealed at the end). Returns the commit
/// index.
fn fixture(dir: &Path) -> u64 {
    let store = SnapshotStore::open(Arc::new(RealFs::new()), dir, store_opts()).unwrap();
    let tasks = TaskSystem::manual(SEED);
    let sim = SimConfig {
        txs: 3000,
        sig_every: 20,
        value_size: 16,
        keys: 50,
        rollback_every: None,
        seed: SEED,
    };
    let snap = SnapshotterConfig {
        tx_interval: 400,
        ..SnapshotterConfig::default()
    };
    let mut node = SimNode::new(sim, snap, tasks.clone(), Arc::new(store)).unwrap();
    while node.step() {
        tasks.run_until_idle();
    }
    assert!(node.finish(1000));
    assert!(node.committed().len() >= 3, "{}", node.committed().len());
    let disk = DiskLedger::open(
        &RealFs::new(),
        &dir.join("ledger"),
        Ledger::seed_key(SEED),
        4096,
    )
    .unwrap();
    let last = node.ledger().last_idx();
    let mut commit = 0;
    for idx in 1..=last {
        let tx = node.ledger().tx(idx).unwrap();
        let is_sig = matches!(tx, TxKind::Signature(_));
        assert_eq!(disk.append(tx), idx);
        if is_sig {
            disk.commit(idx).unwrap();
            commit = idx;
        }
    }
    disk.seal().unwrap();
    drop(node);
    commit
}

fn export_bytes(dir: &Path, level: Level) -> Result<(Vec<u8>, Manifest), ExportError> {
    let source = LedgerDir::open(&RealFs::new(), &dir.join("ledger")).unwrap();
    let opts = ExportOptions {
        level,
        keys: vec![key()],
        verifier: Arc::new(Ed25519Verifier::new(vec![key()])),
    };
    let mut out = Vec::new();
    let r = export(dir, &source, &opts, &mut out)?;
    Ok((out, r.manifest))
}

fn import_into(
    archive: &[u8],
    dir: &Path,
    level: Level,
) -> Result<snapseal_archive::ImportReport, ImportError> {
    let store = SnapshotStore::open(Arc::new(RealFs::new()), dir, store_opts()).unwrap();
    let ledger = RealFs::new().open_dir(&dir.join("ledger"), true).unwrap();
    let opts = ImportOptions {
        level,
        trusted_keys: vec![key()],
        repopulate: false,
    };
    import(
        &mut &archive[..],
        &store,
        &*ledger,
        &ChunkKeys(vec![key()]),
        &opts,
    )
}

/// State at the commit index: the newest snapshot in `dir` plus the ledger replayed after it.
fn replayed_state(dir: &Path, commit: u64) -> [u8; 32] {
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
    replay_writes(&ledger, idx + 1, commit, &mut map).unwrap();
    state_hash(&map)
}

fn paths(m: &Manifest) -> BTreeSet<String> {
    m.artifacts.iter().map(|a| a.path.clone()).collect()
}

/// All entries of a tar archive, in order.
fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
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

/// An archive of `entries`; with `fix_manifest`, the manifest is rewritten to match them
/// (a forger who edits the manifest too).
fn rebuild(mut list: Vec<(String, Vec<u8>)>, fix_manifest: bool) -> Vec<u8> {
    if fix_manifest {
        let mut m: Manifest = serde_json::from_slice(&list[0].1).unwrap();
        let original = m.artifacts.clone();
        m.artifacts
            .retain(|a| list.iter().any(|(p, _)| *p == a.path));
        for a in &mut m.artifacts {
            let (_, b) = list.iter().find(|(p, _)| *p == a.path).unwrap();
            a.len = b.len() as u64;
            a.blake3 = blake3::hash(b).to_hex().to_string();
        }
        for (p, b) in &list {
            if !m.artifacts.iter().any(|a| a.path == *p) && p != "MANIFEST.json" {
                let mut like = original
                    .iter()
                    .find(|a| p.starts_with(&a.path[..4]))
                    .unwrap()
                    .clone();
                like.path = p.clone();
                like.len = b.len() as u64;
                like.blake3 = blake3::hash(b).to_hex().to_string();
                m.artifacts.push(like);
            }
        }
        list[0].1 = serde_json::to_vec(&m).unwrap();
    }
    let mut b = tar::Builder::new(Vec::new());
    for (p, bytes) in list {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, p, &bytes[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn src() -> (tempfile::TempDir, PathBuf, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    let commit = fixture(&dir);
    (tmp, dir, commit)
}

#[test]
fn replay_export_then_import_into_a_fresh_dir_replays_to_the_same_state_hash() {
    let (tmp, dir, commit) = src();
    let (a, m) = export_bytes(&dir, Level::Replay).unwrap();
    let (b, _) = export_bytes(&dir, Level::Replay).unwrap();
    assert_eq!(a, b, "two replay exports of one store are byte-identical");
    assert_eq!(m.commit_idx, commit);
    assert!(
        m.artifacts
            .iter()
            .filter(|a| a.path.starts_with("ledger/"))
            .count()
            >= 2
    );

    let fresh = tmp.path().join("fresh");
    let r = import_into(&a, &fresh, Level::Replay).unwrap();
    assert_eq!(r.snapshots_committed.len(), 1);
    assert!(!r.chunks_committed.is_empty());

    // The original state at the commit index, replayed from genesis on the original ledger.
    let mut from_genesis = BTreeMap::new();
    let ledger = LedgerDir::open(&RealFs::new(), &dir.join("ledger")).unwrap();
    replay_writes(&ledger, 1, commit, &mut from_genesis).unwrap();
    assert_eq!(replayed_state(&fresh, commit), state_hash(&from_genesis));
    assert_eq!(replayed_state(&dir, commit), state_hash(&from_genesis));

    // Rerun: nothing written, nothing overwritten.
    let again = import_into(&a, &fresh, Level::Replay).unwrap();
    assert!(again.snapshots_committed.is_empty() && again.chunks_committed.is_empty());
    assert_eq!(again.chunks_present.len(), r.chunks_committed.len());
}

#[test]
fn levels_are_increasing_supersets_and_operational_is_deterministic() {
    let (_tmp, dir, _) = src();
    let (o1, op) = export_bytes(&dir, Level::Operational).unwrap();
    let (o2, _) = export_bytes(&dir, Level::Operational).unwrap();
    assert_eq!(o1, o2);
    let (_, rp) = export_bytes(&dir, Level::Replay).unwrap();
    let (_, ar) = export_bytes(&dir, Level::Archival).unwrap();
    assert!(
        paths(&op).is_subset(&paths(&rp)),
        "operational within replay"
    );
    assert!(paths(&rp).is_subset(&paths(&ar)), "replay within archival");
    assert!(paths(&op).len() < paths(&rp).len() && paths(&rp).len() < paths(&ar).len());
    assert!(ar.missing.is_empty());
    // An operational archive is refused at replay level.
    let tmp2 = tempfile::tempdir().unwrap();
    let e = import_into(&o1, tmp2.path(), Level::Replay).unwrap_err();
    assert!(matches!(e, ImportError::Level { .. }), "{e}");
}

#[test]
fn a_deleted_middle_chunk_fails_replay_export_and_import_naming_it() {
    let (tmp, dir, commit) = src();
    let (good, m) = export_bytes(&dir, Level::Replay).unwrap();
    let ledger_paths: Vec<&str> = m
        .artifacts
        .iter()
        .filter_map(|a| a.path.strip_prefix("ledger/"))
        .collect();
    let middle = ledger_paths[ledger_paths.len() / 2].to_string();
    let (s, e) = snapseal_archive::ChunkRef::parse_name(&middle).unwrap();

    // Import of an archive that lost the entry: the manifest still lists it.
    let without: Vec<_> = entries(&good)
        .into_iter()
        .filter(|(p, _)| *p != format!("ledger/{middle}"))
        .collect();
    let err = import_into(
        &rebuild(without.clone(), false),
        &tmp.path().join("a"),
        Level::Replay,
    )
    .unwrap_err();
    assert!(err.to_string().contains(&middle), "{err}");
    // And with the manifest edited to match: the level check names the range.
    let err = import_into(
        &rebuild(without, true),
        &tmp.path().join("b"),
        Level::Replay,
    )
    .unwrap_err();
    assert!(
        matches!(err, ImportError::Missing { from, to, .. } if (from, to) == (s, e)),
        "{err}"
    );

    // Export from a store that lost the chunk.
    std::fs::remove_file(dir.join("ledger").join(&middle)).unwrap();
    let err = export_bytes(&dir, Level::Replay).unwrap_err();
    assert!(
        matches!(err, ExportError::Missing { from, to, .. } if (from, to) == (s, e)),
        "{err}"
    );
    // Archival never fails for a gap: it lists it.
    let (_, ar) = export_bytes(&dir, Level::Archival).unwrap();
    assert_eq!(ar.missing.len(), 1);
    assert_eq!((ar.missing[0].from, ar.missing[0].to), (s, e));
    assert_eq!(ar.commit_idx, commit);
}

#[test]
fn a_tampered_archive_is_refused() {
    let (tmp, dir, _) = src();
    let (good, _) = export_bytes(&dir, Level::Replay).unwrap();
    let list = entries(&good);
    let mut n = 0;
    let mut refused = |archive: Vec<u8>, what: &str| {
        n += 1;
        let d = tmp.path().join(format!("t{n}"));
        let e = import_into(&archive, &d, Level::Replay).unwrap_err();
        eprintln!("{what}: {e}");
        e
    };
    // A flipped bit in every artifact in turn, manifest untouched, then with the manifest
    // rewritten to match (so the artifact's own verification must catch it).
    for i in 1..list.len() {
        for fix in [false, true] {
            let mut l = list.clone();
            let mid = l[i].1.len() / 2;
            l[i].1[mid] ^= 0x10;
            refused(
                rebuild(l, fix),
                &format!("flip in {} (manifest fixed: {fix})", list[i].0),
            );
        }
    }
    // A relabelled snapshot.
    let mut l = list.clone();
    let snap = l
        .iter()
        .position(|(p, _)| p.starts_with("snapshots/"))
        .unwrap();
    let real = l[snap].0.clone();
    let idx = real.split('_').nth(1).unwrap().to_string();
    l[snap].0 = format!("snapshots/snapshot_{idx}_99999.committed");
    let e = refused(rebuild(l, true), "relabelled snapshot");
    assert!(e.to_string().contains("labels it"), "{e}");
    // Two chunks' contents swapped.
    let mut l = list.clone();
    let chunks: Vec<usize> = (0..l.len())
        .filter(|&i| l[i].0.starts_with("ledger/"))
        .collect();
    let (x, y) = (chunks[0], chunks[1]);
    let tmpb = l[x].1.clone();
    l[x].1 = l[y].1.clone();
    l[y].1 = tmpb;
    refused(rebuild(l, true), "swapped chunks");
    assert!(n > 4);
}

/// Crash matrix over import: the simulated filesystem halts after every possible number of
/// calls (the process died there), then loses power. After the crash every committed name
/// (snapshot or chunk) holds a whole artifact that verifies and equals the archived bytes,
/// and rerunning the import completes it with every artifact in place.
#[test]
fn import_crashed_at_every_step_leaves_only_whole_artifacts_and_a_rerun_completes_it() {
    use snapseal_archive::ChunkVerifier;
    use snapseal_persist::fs::SimFs;
    use snapseal_persist::FileState;

    let (_tmp, dir, _) = src();
    let (archive, manifest) = export_bytes(&dir, Level::Replay).unwrap();
    let archived: BTreeMap<String, Vec<u8>> = entries(&archive).into_iter().collect();
    let want_chunks: BTreeSet<String> = manifest
        .artifacts
        .iter()
        .filter_map(|a| a.path.strip_prefix("ledger/").map(str::to_string))
        .collect();
    let want_snaps: BTreeSet<String> = manifest
        .artifacts
        .iter()
        .filter_map(|a| a.path.strip_prefix("snapshots/").map(str::to_string))
        .collect();
    let d = Path::new("/node");
    let run = |fs: &SimFs| {
        let store = SnapshotStore::open(Arc::new(fs.clone()), d, store_opts())?;
        let ledger = fs.open_dir(&d.join("ledger"), true)?;
        let opts = ImportOptions {
            level: Level::Replay,
            trusted_keys: vec![key()],
            repopulate: false,
        };
        import(
            &mut &archive[..],
            &store,
            &*ledger,
            &ChunkKeys(vec![key()]),
            &opts,
        )
        .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)
        .map(|_| ())
    };
    let mut steps = 0;
    for n in 0.. {
        let fs = SimFs::new(n);
        fs.halt_after(n);
        let outcome: Result<(), Box<dyn std::error::Error>> = run(&fs);
        let halted = fs.op_count() > n;
        fs.crash();
        // What survived the crash: only whole, verifying artifacts under committed names.
        let store = SnapshotStore::open(Arc::new(fs.clone()), d, store_opts()).unwrap();
        let handle = fs.open_dir(d, false).unwrap();
        for s in store.list().unwrap() {
            if s.name.state == FileState::Committed {
                let name = s.name.file_name();
                assert!(want_snaps.contains(&name), "step {n}: {name}");
                let bytes = handle.open_read(&name).unwrap();
                assert!(
                    bytes[..] == archived[&format!("snapshots/{name}")][..],
                    "step {n}: {name} is whole"
                );
            }
        }
        drop(store);
        if let Ok(ledger) = fs.open_dir(&d.join("ledger"), false) {
            for e in ledger.list().unwrap() {
                let name = e.name.to_string_lossy().into_owned();
                if let Some((start, end)) = snapseal_archive::ChunkRef::parse_name(&name) {
                    let bytes = ledger.open_read(&name).unwrap();
                    assert!(
                        bytes[..] == archived[&format!("ledger/{name}")][..],
                        "step {n}: committed chunk {name} is whole"
                    );
                    ChunkKeys(vec![key()])
                        .verify_chunk(&bytes, start, end)
                        .unwrap();
                }
            }
        }
        // The rerun completes it.
        run(&fs).unwrap_or_else(|e| panic!("step {n}: rerun after the crash: {e}"));
        let store = SnapshotStore::open(Arc::new(fs.clone()), d, store_opts()).unwrap();
        let snaps: BTreeSet<String> = store
            .list()
            .unwrap()
            .iter()
            .filter(|s| s.name.state == FileState::Committed)
            .map(|s| s.name.file_name())
            .collect();
        assert_eq!(snaps, want_snaps, "step {n}");
        let ledger = fs.open_dir(&d.join("ledger"), false).unwrap();
        let chunks: BTreeSet<String> = ledger
            .list()
            .unwrap()
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .filter(|n| snapseal_archive::ChunkRef::parse_name(n).is_some())
            .collect();
        assert_eq!(chunks, want_chunks, "step {n}");
        steps += 1;
        if !halted {
            outcome.unwrap();
            break;
        }
        assert!(
            outcome.is_err(),
            "step {n}: a halted import reports failure"
        );
    }
    assert!(steps > 10, "{steps} crash points covered");
}
