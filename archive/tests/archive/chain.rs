//! Chunks of another run of the same node (same key, same indices and names, other bytes:
//! each verifies on its own) spliced into an archive or a ledger: import and export refuse
//! them, naming the chunk, and an import commits nothing.

use crate::support::*;
use snapseal_archive::{ChunkRef, ExportError, ImportError, Level, Manifest, Missing};

/// `list` with the entries of `other` put in place of those of the same name that `pick`
/// selects.
fn splice(
    list: &[(String, Vec<u8>)],
    other: &[(String, Vec<u8>)],
    pick: impl Fn(&str) -> bool,
) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(p, b)| {
            let theirs = other.iter().find(|(q, _)| q == p).map(|(_, c)| c.clone());
            match theirs {
                Some(c) if pick(p) => (p.clone(), c),
                _ => (p.clone(), b.clone()),
            }
        })
        .collect()
}

fn ledger_paths(list: &[(String, Vec<u8>)]) -> Vec<String> {
    list.iter()
        .filter(|(p, _)| p.starts_with("ledger/"))
        .map(|(p, _)| p.clone())
        .collect()
}

fn assert_nothing_committed(dir: &std::path::Path) {
    assert!(committed(dir).is_empty(), "{:?}", committed(dir));
    if let Ok(rd) = std::fs::read_dir(dir.join("ledger")) {
        let left: Vec<_> = rd.map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "nothing staged is left behind: {left:?}");
    }
}

#[test]
fn an_archive_with_one_chunk_of_another_run_is_refused_and_nothing_is_committed() {
    let (tmp, a, b) = twins();
    let (ours, _) = export_bytes(&a, Level::Archival).unwrap();
    let (theirs, _) = export_bytes(&b, Level::Archival).unwrap();
    let (ours, theirs) = (entries(&ours), entries(&theirs));
    let chunks = ledger_paths(&ours);
    let middle = chunks[chunks.len() / 2].clone();
    let archive = rebuild(splice(&ours, &theirs, |p| p == middle), true);
    let fresh = tmp.path().join("fresh");
    let e = import_into(&archive, &fresh, Level::Archival).unwrap_err();
    assert!(
        matches!(&e, ImportError::Refused { why, .. } if why.contains("does not continue")),
        "{e}"
    );
    assert!(
        e.to_string().contains("ledger/ledger_"),
        "names a chunk: {e}"
    );
    assert_nothing_committed(&fresh);
    // The untouched archive imports.
    let (good, _) = export_bytes(&a, Level::Archival).unwrap();
    import_into(&good, &fresh, Level::Archival).unwrap();
}

#[test]
fn a_replay_archive_pairing_a_snapshot_with_another_runs_chunks_is_refused() {
    let (tmp, a, b) = twins();
    let (ours, m) = export_bytes(&a, Level::Replay).unwrap();
    let (theirs, _) = export_bytes(&b, Level::Replay).unwrap();
    let (ours, theirs) = (entries(&ours), entries(&theirs));
    assert!(!ledger_paths(&ours).is_empty());
    // Every chunk theirs: they chain with each other, but not with our snapshot's receipt.
    let archive = rebuild(splice(&ours, &theirs, |p| p.starts_with("ledger/")), true);
    let fresh = tmp.path().join("fresh");
    let e = import_into(&archive, &fresh, Level::Replay).unwrap_err();
    assert!(
        matches!(&e, ImportError::Refused { why, .. } if why.contains("not of that snapshot's ledger")),
        "{e}"
    );
    assert_nothing_committed(&fresh);
    // Their snapshot with our chunks, likewise.
    let archive = rebuild(
        splice(&ours, &theirs, |p| p.starts_with("snapshots/")),
        true,
    );
    let e = import_into(&archive, &fresh, Level::Replay).unwrap_err();
    assert!(matches!(e, ImportError::Refused { .. }), "{e}");
    assert_nothing_committed(&fresh);
    assert!(m.commit_idx > m.snapshot_idx);
}

/// An archival archive holding the artifacts of `list` that `keep` selects, its manifest
/// rewritten (missing ranges included) to match.
fn archival_of(list: &[(String, Vec<u8>)], keep: impl Fn(&str) -> bool) -> Vec<u8> {
    let kept: Vec<(String, Vec<u8>)> = list
        .iter()
        .enumerate()
        .filter(|(i, (p, _))| *i == 0 || keep(p))
        .map(|(_, e)| e.clone())
        .collect();
    let mut m: Manifest = manifest_of(&kept);
    let chunks: Vec<(u64, u64)> = kept
        .iter()
        .filter_map(|(p, _)| ChunkRef::parse_name(p.strip_prefix("ledger/")?))
        .collect();
    let mut next = 1;
    m.missing.clear();
    for (s, e) in chunks {
        if s > next {
            m.missing.push(Missing {
                from: next,
                to: s - 1,
            });
        }
        next = e + 1;
    }
    if next <= m.commit_idx {
        m.missing.push(Missing {
            from: next,
            to: m.commit_idx,
        });
    }
    let mut kept = kept;
    kept[0].1 = serde_json::to_vec(&m).unwrap();
    rebuild(kept, true)
}

#[test]
fn repopulate_fills_a_gap_only_with_a_chunk_that_chains_on_both_sides() {
    let (tmp, a, b) = twins();
    let (ours, _) = export_bytes(&a, Level::Archival).unwrap();
    let (theirs, _) = export_bytes(&b, Level::Archival).unwrap();
    let (ours, theirs) = (entries(&ours), entries(&theirs));
    let dir = tmp.path().join("node");
    import_into(&rebuild(ours.clone(), false), &dir, Level::Archival).unwrap();
    let chunks = ledger_paths(&ours);
    let gap = chunks[chunks.len() / 2].clone();
    std::fs::remove_file(dir.join(&gap)).unwrap();
    let before = committed(&dir);

    // Our snapshots (present, same bytes) and their chunk in the gap.
    let foreign = archival_of(&splice(&ours, &theirs, |p| p == gap), |p| {
        !p.starts_with("ledger/") || p == gap
    });
    let e = import_with(&foreign, &dir, Level::Archival, true).unwrap_err();
    assert!(
        matches!(&e, ImportError::Refused { path, .. } if *path == gap),
        "{e}"
    );
    assert_eq!(committed(&dir), before, "nothing committed");

    // Ours fills it.
    let right = archival_of(&ours, |p| !p.starts_with("ledger/") || p == gap);
    let r = import_with(&right, &dir, Level::Archival, true).unwrap();
    assert_eq!(r.chunks_committed, vec![gap.clone()]);

    // A chunk that would leave a gap on one side while the directory holds chunks beyond it
    // chains with nothing there: refused too.
    let (x, y) = (chunks[1].clone(), chunks[2].clone());
    std::fs::remove_file(dir.join(&x)).unwrap();
    std::fs::remove_file(dir.join(&y)).unwrap();
    let half = archival_of(&ours, |p| !p.starts_with("ledger/") || p == y);
    let e = import_with(&half, &dir, Level::Archival, true).unwrap_err();
    assert!(
        matches!(&e, ImportError::Refused { why, .. } if why.contains("gap")),
        "{e}"
    );
}

#[test]
fn a_replay_export_reaches_the_index_the_snapshots_receipt_proves_or_names_the_missing_range() {
    let (_tmp, dir, _) = src();
    let newest = snapshot_names(&dir)
        .iter()
        .filter_map(|n| n.split('_').nth(1)?.parse::<u64>().ok())
        .max()
        .unwrap();
    // The ledger loses every chunk after the snapshot: it now ends below it.
    for name in chunk_names(&dir) {
        let (_, end) = ChunkRef::parse_name(&name).unwrap();
        if end > newest {
            std::fs::remove_file(dir.join("ledger").join(&name)).unwrap();
        }
    }
    let e = export_bytes(&dir, Level::Replay).unwrap_err();
    match e {
        ExportError::Missing {
            from,
            to,
            snapshot_idx,
            commit_idx,
        } => {
            assert_eq!((from, snapshot_idx), (newest + 1, newest));
            assert!(to >= from && commit_idx > newest, "{to} {commit_idx}");
        }
        e => panic!("{e}"),
    }
    // An archival export lists the range as missing instead.
    let (_, m) = export_bytes(&dir, Level::Archival).unwrap();
    let last = m.missing.last().unwrap();
    assert!(last.from <= newest + 1 && last.to == m.commit_idx && m.commit_idx > newest);
}

#[test]
fn export_refuses_a_junk_or_foreign_chunk_naming_it() {
    let (_tmp, a, b) = twins();
    let chunks = chunk_names(&a);
    let junk = &chunks[chunks.len() - 1];
    let foreign = &chunks[chunks.len() / 2];
    let path = a.join("ledger").join(junk);
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    let saved = std::fs::read(&path).unwrap();
    std::fs::write(&path, vec![0x5a; len]).unwrap();
    for level in [Level::Replay, Level::Archival] {
        let e = export_bytes(&a, level).unwrap_err();
        assert!(
            matches!(&e, ExportError::Refused { what, .. } if what.ends_with(junk.as_str())),
            "{level:?}: {e}"
        );
    }
    std::fs::write(&path, saved).unwrap();
    std::fs::copy(
        b.join("ledger").join(foreign),
        a.join("ledger").join(foreign),
    )
    .unwrap();
    let e = export_bytes(&a, Level::Archival).unwrap_err();
    assert!(
        matches!(&e, ExportError::Refused { why, .. } if why.contains("does not continue")),
        "{e}"
    );
}
