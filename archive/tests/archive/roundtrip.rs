//! Export and import over a simulated node's store and its ledger on disk: round trip,
//! levels, a missing chunk, a tampered archive.

use std::collections::BTreeMap;

use crate::support::*;
use snapseal_archive::{ExportError, ImportError, Level};
use snapseal_ledger::disk_ledger::{replay_writes, state_hash, LedgerDir};
use snapseal_persist::fs::RealFs;

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
    replay_writes(&ledger, &[key()], 1, commit, &mut from_genesis).unwrap();
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
    assert!(e.to_string().contains("its name says"), "{e}");
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
