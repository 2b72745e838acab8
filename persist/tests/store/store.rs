//! The store on SimFs: open-time recovery, the lock, latest(), holds, retention, quarantine,
//! foreign files, options.

use std::path::Path;
use std::sync::Arc;

use crate::fixture::*;
use snapseal_persist::fs::SimFs;
use snapseal_persist::fs::{Fault, FaultKind, Op, Outcome};
use snapseal_persist::{
    FileState, SnapshotName, SnapshotStore, StoreError, StoreOptions, StoreStep,
};

fn name(idx: u64) -> SnapshotName {
    SnapshotName {
        idx,
        evidence_idx: idx + 1,
        state: FileState::Committed,
    }
}

fn committed(sim: &SimFs) -> Vec<u64> {
    let mut idx: Vec<u64> = names_in(sim, FileState::Committed)
        .iter()
        .map(|n| n.idx)
        .collect();
    idx.sort();
    idx
}

#[test]
fn open_removes_stale_uncommitted_files_and_syncs_the_directory() {
    let sim = SimFs::new(3);
    sim.plant_file(dir(), "snapshot_5_6", b"torn", true);
    sim.plant_file(dir(), "snapshot_7_8", b"", false);
    plant(&sim, &Snap::new(3, 100));
    let store = open(&sim, opts());
    assert_eq!(sim.names(dir()), [".lock", "snapshot_3_4.committed"]);
    assert_eq!(store.stats().stale_removed, 2);
    let ops: Vec<Op> = sim.trace().iter().map(|r| r.op).collect();
    assert_eq!(
        ops,
        [
            Op::OpenDir,
            Op::Lock,
            Op::List,
            Op::Unlink,
            Op::Unlink,
            Op::SyncDir
        ]
    );
    // The removal is durable (the lock file's entry need not be).
    drop(store);
    sim.crash();
    let ours: Vec<String> = sim
        .names(dir())
        .into_iter()
        .filter(|n| n != ".lock")
        .collect();
    assert_eq!(ours, ["snapshot_3_4.committed"]);
}

#[test]
fn open_with_nothing_stale_does_not_sync() {
    let sim = SimFs::new(3);
    let _store = open(&sim, opts());
    assert!(sim.trace().iter().all(|r| r.op != Op::SyncDir));
}

#[test]
fn a_second_open_of_the_same_directory_is_locked_out() {
    let sim = SimFs::new(3);
    let store = open(&sim, opts());
    let e = SnapshotStore::open(Arc::new(sim.clone()), dir(), opts()).unwrap_err();
    assert!(
        matches!(&e, StoreError::Locked { dir: d } if d == dir()),
        "{e}"
    );
    assert!(e.to_string().contains("another process"), "{e}");
    assert_eq!(e.step(), Some(StoreStep::Lock));
    drop(store);
    open(&sim, opts());
}

#[test]
fn open_failures_name_the_step() {
    let sim = SimFs::new(3);
    sim.inject(Fault::nth(Op::List, 1, FaultKind::Eio));
    let e = SnapshotStore::open(Arc::new(sim.clone()), dir(), opts()).unwrap_err();
    assert_eq!(e.step(), Some(StoreStep::List), "{e}");
    sim.plant_file(dir(), "snapshot_5_6", b"torn", true);
    sim.inject(Fault::nth(Op::Unlink, 1, FaultKind::Eio));
    let e = SnapshotStore::open(Arc::new(sim.clone()), dir(), opts()).unwrap_err();
    assert!(
        matches!(&e, StoreError::Io { step: StoreStep::UnlinkStale, path, .. } if path.ends_with("snapshot_5_6")),
        "{e}"
    );
}

#[test]
fn invalid_options_name_the_field() {
    let sim = SimFs::new(3);
    let mut o = opts();
    o.keep_last = 0;
    let e = SnapshotStore::open(Arc::new(sim.clone()), dir(), o).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::InvalidOption {
                field: "keep_last",
                ..
            }
        ),
        "{e}"
    );
    let mut o = opts();
    o.max_bytes = Some(0);
    let e = o.validate().unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::InvalidOption {
                field: "max_bytes",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("max_bytes"));
    // Nothing touched the disk.
    assert_eq!(sim.op_count(), 0);
    let d = StoreOptions::new(verifier());
    assert_eq!((d.keep_last, d.max_bytes, d.max_quarantined), (5, None, 3));
    d.validate().unwrap();
}

#[test]
fn latest_is_none_on_an_empty_directory() {
    let sim = SimFs::new(3);
    let store = open(&sim, opts());
    assert!(store.latest().unwrap().is_none());
}

#[test]
fn latest_is_the_highest_idx_then_the_highest_evidence_idx() {
    let sim = SimFs::new(3);
    let store = open(&sim, opts());
    for (idx, ev) in [(5, 6), (5, 9), (4, 100), (5, 7)] {
        store
            .persist(&Snap::with_evidence(idx, ev, 64).request())
            .unwrap();
    }
    let latest = store.latest().unwrap().unwrap();
    assert_eq!((latest.name().idx, latest.name().evidence_idx), (5, 9));
    assert_eq!(latest.header().evidence_idx, 9);
    assert_eq!(
        latest.read_body().unwrap(),
        &Snap::with_evidence(5, 9, 64).body[..]
    );
    assert_eq!(latest.path(), dir().join("snapshot_5_9.committed"));
    assert!(latest.receipt().sig_idx > 9);
    assert_eq!(latest.hold().map(|h| h.name()), Some(*latest.name()));
}

#[test]
fn list_reports_every_file_of_ours_with_size_and_state() {
    let sim = SimFs::new(3);
    let store = open(&sim, opts());
    store.persist(&Snap::new(1, 10).request()).unwrap();
    sim.plant_file(dir(), "snapshot_2_3", b"abc", true);
    sim.plant_file(dir(), "snapshot_0_1.committed.corrupt", b"xy", true);
    sim.plant_file(dir(), "notes.txt", b"not ours", true);
    let list = store.list().unwrap();
    let got: Vec<(String, u64)> = list.iter().map(|e| (e.name.file_name(), e.len)).collect();
    assert_eq!(
        got,
        [
            ("snapshot_0_1.committed.corrupt".to_string(), 2),
            (
                "snapshot_1_2.committed".to_string(),
                Snap::new(1, 10).file_bytes().len() as u64
            ),
            ("snapshot_2_3".to_string(), 3),
        ]
    );
}

#[test]
fn an_io_error_while_reading_is_returned_and_nothing_is_quarantined() {
    let sim = SimFs::new(3);
    let store = open(&sim, opts());
    store.persist(&Snap::new(1, 100).request()).unwrap();
    store.persist(&Snap::new(2, 100).request()).unwrap();
    let before = sim.names(dir());
    sim.inject(Fault::nth(Op::OpenRead, 1, FaultKind::Eio));
    let e = store.latest().unwrap_err();
    assert!(
        matches!(&e, StoreError::Io { step: StoreStep::Read, path, .. } if path.ends_with("snapshot_2_3.committed")),
        "{e}"
    );
    assert_eq!(sim.names(dir()), before);
    assert_eq!(store.stats().quarantined, 0);
    // Not a verdict on the file: next time it is returned.
    assert_eq!(store.latest().unwrap().unwrap().name().idx, 2);
}

#[test]
fn retention_keeps_the_newest_keep_last() {
    let sim = SimFs::new(3);
    let mut o = opts();
    o.keep_last = 2;
    let store = open(&sim, o);
    for idx in 1..=5 {
        store.persist(&Snap::new(idx, 50).request()).unwrap();
    }
    assert_eq!(committed(&sim), [4, 5]);
    assert_eq!(store.stats().retention_deleted, 3);
    // Deletions are durable.
    drop(store);
    sim.crash();
    assert_eq!(committed(&sim), [4, 5]);
}

#[test]
fn a_held_snapshot_survives_retention_until_released() {
    let sim = SimFs::new(3);
    let mut o = opts();
    o.keep_last = 1;
    let store = open(&sim, o);
    store.persist(&Snap::new(1, 50).request()).unwrap();
    let hold = store.hold(&name(1)).unwrap();
    let hold2 = hold.clone();
    store.persist(&Snap::new(2, 50).request()).unwrap();
    store.persist(&Snap::new(3, 50).request()).unwrap();
    assert_eq!(committed(&sim), [1, 3]);
    let plan = store.retention_plan().unwrap();
    assert_eq!(
        plan.held.iter().map(|e| e.name.idx).collect::<Vec<_>>(),
        [1]
    );
    assert!(plan.delete.is_empty());
    drop(hold);
    // One clone still pins it.
    let report = store.apply_retention().unwrap();
    assert_eq!(report.spared, [name(1)]);
    assert_eq!(committed(&sim), [1, 3]);
    drop(hold2);
    let report = store.apply_retention().unwrap();
    assert_eq!(report.deleted, [name(1)]);
    assert_eq!(committed(&sim), [3]);
}

#[test]
fn the_file_latest_returns_is_pinned() {
    let sim = SimFs::new(3);
    let mut o = opts();
    o.keep_last = 1;
    let store = open(&sim, o);
    store.persist(&Snap::new(1, 50).request()).unwrap();
    let file = store.latest().unwrap().unwrap();
    store.persist(&Snap::new(2, 50).request()).unwrap();
    assert_eq!(committed(&sim), [1, 2]);
    drop(file);
    store.apply_retention().unwrap();
    assert_eq!(committed(&sim), [2]);
}

#[test]
fn holding_a_missing_snapshot_is_not_found_and_pins_nothing() {
    let sim = SimFs::new(3);
    let mut o = opts();
    o.keep_last = 1;
    let store = open(&sim, o);
    let e = store.hold(&name(9)).unwrap_err();
    assert!(
        matches!(&e, StoreError::NotFound { path } if path.ends_with("snapshot_9_10.committed")),
        "{e}"
    );
    store.persist(&Snap::new(1, 50).request()).unwrap();
    store.persist(&Snap::new(9, 50).request()).unwrap();
    // The failed hold on 9 left no pin behind: 1 goes, 9 is the newest and stays.
    assert_eq!(committed(&sim), [9]);
    // An uncommitted file is not something to hold.
    sim.plant_file(dir(), "snapshot_4_5", b"x", true);
    assert!(store.hold(&name(4)).is_err());
}

#[test]
fn max_bytes_drops_the_oldest_but_never_the_newest() {
    let sim = SimFs::new(3);
    let mut o = opts();
    o.max_bytes = Some(2500);
    let store = open(&sim, o);
    let len = Snap::new(1, 1000).file_bytes().len() as u64; // ~1.5 KiB each
    assert!(len > 1250 && len < 2500, "{len}");
    for idx in 1..=4 {
        store.persist(&Snap::new(idx, 1000).request()).unwrap();
    }
    assert_eq!(committed(&sim), [4]);
    // One snapshot alone over the limit is still kept.
    store.persist(&Snap::new(5, 4000).request()).unwrap();
    assert_eq!(committed(&sim), [5]);
    let plan = store.retention_plan().unwrap();
    assert_eq!(plan.keep.len(), 1);
    assert!(plan.delete.is_empty());
}

#[test]
fn max_bytes_does_not_count_held_snapshots() {
    let sim = SimFs::new(3);
    let mut o = opts();
    o.max_bytes = Some(4000);
    let store = open(&sim, o);
    store.persist(&Snap::new(1, 1000).request()).unwrap();
    let _hold = store.hold(&name(1)).unwrap();
    for idx in 2..=3 {
        store.persist(&Snap::new(idx, 1000).request()).unwrap();
    }
    // 1 is dropped by the byte rule but held; 2 and 3 fit on their own.
    assert_eq!(committed(&sim), [1, 2, 3]);
    let plan = store.retention_plan().unwrap();
    assert_eq!(
        plan.keep.iter().map(|e| e.name.idx).collect::<Vec<_>>(),
        [3, 2]
    );
    assert_eq!(
        plan.held.iter().map(|e| e.name.idx).collect::<Vec<_>>(),
        [1]
    );
}

#[test]
fn the_dry_run_plan_is_what_retention_does() {
    let sim = SimFs::new(3);
    let store = open(&sim, opts());
    let mut sizes = Vec::new();
    for idx in 1..=8 {
        let snap = Snap::new(idx, 100 * idx as usize);
        sizes.push(snap.file_bytes().len() as u64);
        plant(&sim, &snap);
    }
    let plan = store.retention_plan().unwrap();
    assert_eq!(
        plan.delete.iter().map(|e| e.name.idx).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let freed: u64 = sizes[..3].iter().sum();
    assert_eq!(plan.delete_bytes(), freed);
    let names_before = sim.names(dir());
    assert_eq!(sim.names(dir()), names_before, "planning changes nothing");
    let report = store.apply_retention().unwrap();
    assert_eq!(
        report.deleted,
        plan.delete.iter().map(|e| e.name).collect::<Vec<_>>()
    );
    assert_eq!(report.freed_bytes, freed);
    // The unlinks come before one directory fsync.
    let ops: Vec<Op> = sim.trace().iter().rev().take(4).map(|r| r.op).collect();
    assert_eq!(ops, [Op::SyncDir, Op::Unlink, Op::Unlink, Op::Unlink]);
}

#[test]
fn the_snapshot_just_committed_survives_the_retention_pass_of_its_persist() {
    let sim = SimFs::new(3);
    let mut o = opts();
    o.keep_last = 1;
    let store = open(&sim, o);
    store.persist(&Snap::new(10, 50).request()).unwrap();
    let c = store.persist(&Snap::new(5, 50).request()).unwrap();
    assert_eq!(committed(&sim), [5, 10], "{c:?}");
    store.apply_retention().unwrap();
    assert_eq!(committed(&sim), [10]);
}

#[test]
fn a_retention_failure_after_a_commit_is_counted_not_returned() {
    let sim = SimFs::new(3);
    let mut o = opts();
    o.keep_last = 1;
    let store = open(&sim, o);
    store.persist(&Snap::new(1, 50).request()).unwrap();
    sim.inject(Fault::nth(Op::Unlink, 1, FaultKind::Eio));
    store.persist(&Snap::new(2, 50).request()).unwrap();
    assert_eq!(store.stats().retention_failures, 1);
    assert_eq!(committed(&sim), [1, 2]);
    let e = {
        sim.inject(Fault::nth(Op::Unlink, 1, FaultKind::Enospc));
        store.apply_retention().unwrap_err()
    };
    assert!(
        matches!(&e, StoreError::Io { step: StoreStep::UnlinkExpired, path, .. } if path.ends_with("snapshot_1_2.committed")),
        "{e}"
    );
    store.apply_retention().unwrap();
    assert_eq!(committed(&sim), [2]);
}

#[test]
fn a_corrupt_newest_snapshot_is_quarantined_and_the_previous_returned() {
    let sim = SimFs::new(3);
    let store = open(&sim, opts());
    store.persist(&Snap::new(1, 500).request()).unwrap();
    store.persist(&Snap::new(2, 500).request()).unwrap();
    assert!(sim.flip_bit(dir(), "snapshot_2_3.committed", 8 * 300));
    let corrupted = sim.read(dir(), "snapshot_2_3.committed").unwrap();
    sim.clear_trace();
    let latest = store.latest().unwrap().unwrap();
    assert_eq!(latest.name().idx, 1);
    assert_eq!(committed(&sim), [1]);
    assert_eq!(
        sim.read(dir(), "snapshot_2_3.committed.corrupt"),
        Some(corrupted),
        "moved as is"
    );
    let ops: Vec<(Op, Option<String>)> = sim
        .trace()
        .iter()
        .filter(|r| matches!(r.op, Op::Rename | Op::SyncDir))
        .map(|r| (r.op, r.to.clone()))
        .collect();
    assert_eq!(
        ops,
        [
            (Op::Rename, Some("snapshot_2_3.committed.corrupt".into())),
            (Op::SyncDir, None)
        ]
    );
    assert_eq!(store.stats().quarantined, 1);
    // Durable.
    drop((latest, store));
    sim.crash();
    assert_eq!(
        names_in(&sim, FileState::Corrupt),
        [name(2).with_state(FileState::Corrupt)]
    );
}

#[test]
fn quarantine_keeps_at_most_max_quarantined_deleting_the_oldest() {
    let sim = SimFs::new(3);
    plant(&sim, &Snap::new(1, 100));
    for idx in 2..=7 {
        let mut bytes = Snap::new(idx, 100).file_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 1; // receipt damaged
        sim.plant_file(
            dir(),
            &format!("snapshot_{idx}_{}.committed", idx + 1),
            &bytes,
            true,
        );
    }
    let mut o = opts();
    o.max_quarantined = 2;
    let store = open(&sim, o);
    assert_eq!(store.latest().unwrap().unwrap().name().idx, 1);
    let corrupt: Vec<u64> = names_in(&sim, FileState::Corrupt)
        .iter()
        .map(|n| n.idx)
        .collect();
    // Found newest first (7, 6, 5, ...); each quarantine trims the oldest by idx beyond
    // the bound, so the two highest remain.
    assert_eq!(corrupt, [6, 7]);
    assert_eq!(store.stats().quarantined, 6);
    assert_eq!(committed(&sim), [1]);
}

#[test]
fn quarantine_trimming_never_deletes_a_file_that_verifies() {
    let sim = SimFs::new(3);
    // A good snapshot quarantined earlier (say under the wrong trusted keys).
    sim.plant_file(
        dir(),
        "snapshot_1_2.committed.corrupt",
        &Snap::new(1, 100).file_bytes(),
        true,
    );
    for idx in 2..=4 {
        sim.plant_file(
            dir(),
            &format!("snapshot_{idx}_{}.committed", idx + 1),
            b"garbage",
            true,
        );
    }
    let mut o = opts();
    o.max_quarantined = 1;
    let store = open(&sim, o);
    assert!(store.latest().unwrap().is_none());
    let corrupt: Vec<u64> = names_in(&sim, FileState::Corrupt)
        .iter()
        .map(|n| n.idx)
        .collect();
    // 1 verifies, so it stays even though it is the oldest; the bound is met by deleting
    // the failing ones.
    assert_eq!(corrupt, [1]);
    assert_eq!(
        sim.read(dir(), "snapshot_1_2.committed.corrupt"),
        Some(Snap::new(1, 100).file_bytes())
    );
    assert_eq!(store.stats().quarantined, 3);
}

#[test]
fn a_failing_file_whose_corrupt_name_is_taken_is_left_in_place_and_skipped() {
    let sim = SimFs::new(3);
    plant(&sim, &Snap::new(1, 100));
    sim.plant_file(dir(), "snapshot_2_3.committed", b"bad", true);
    sim.plant_file(dir(), "snapshot_2_3.committed.corrupt", b"older bad", true);
    let store = open(&sim, opts());
    assert_eq!(store.latest().unwrap().unwrap().name().idx, 1);
    assert_eq!(
        sim.read(dir(), "snapshot_2_3.committed"),
        Some(b"bad".to_vec())
    );
    assert_eq!(
        sim.read(dir(), "snapshot_2_3.committed.corrupt"),
        Some(b"older bad".to_vec())
    );
    assert_eq!(store.stats().quarantine_failures, 1);
}

#[test]
fn quarantine_uses_link_and_unlink_without_rename_noreplace() {
    let sim = SimFs::new(3);
    plant(&sim, &Snap::new(1, 100));
    sim.plant_file(dir(), "snapshot_2_3.committed", b"bad", true);
    sim.set_rename_noreplace_supported(false);
    let store = open(&sim, opts());
    assert_eq!(store.latest().unwrap().unwrap().name().idx, 1);
    assert_eq!(
        sim.read(dir(), "snapshot_2_3.committed.corrupt"),
        Some(b"bad".to_vec())
    );
    assert_eq!(committed(&sim), [1]);
}

#[test]
fn a_quarantine_failure_does_not_block_recovery() {
    let sim = SimFs::new(3);
    plant(&sim, &Snap::new(1, 100));
    sim.plant_file(dir(), "snapshot_2_3.committed", b"bad", true);
    let store = open(&sim, opts());
    sim.inject(Fault::nth(Op::Rename, 1, FaultKind::Eio));
    assert_eq!(store.latest().unwrap().unwrap().name().idx, 1);
    assert_eq!(store.stats().quarantine_failures, 1);
    assert_eq!(committed(&sim), [1, 2], "left in place");
    // Next time it is quarantined.
    assert_eq!(store.latest().unwrap().unwrap().name().idx, 1);
    assert_eq!(committed(&sim), [1]);
}

#[test]
fn foreign_files_are_never_touched() {
    let foreign: [(&str, &[u8]); 7] = [
        ("notes.txt", b"operator notes"),
        ("snapshot_01_2", b"leading zero"),
        ("snapshot_1_2.tmp", b"someone else's temp file"),
        ("snapshot_1_2.corrupt", b"not our corrupt suffix"),
        ("SNAPSHOT_1_2", b"upper case"),
        ("snapshot_1_2.committed.bak", b"a backup"),
        ("snapshot_-1_2", b"negative"),
    ];
    let sim = SimFs::new(3);
    for (n, bytes) in foreign {
        sim.plant_file(dir(), n, bytes, true);
    }
    sim.plant_file(dir(), "snapshot_1_2.committed", b"corrupt", true);
    sim.plant_file(dir(), "snapshot_3_4", b"stale", true);
    let mut o = opts();
    o.keep_last = 1;
    o.max_quarantined = 0;
    let store = open(&sim, o);
    for idx in 5..=8 {
        store.persist(&Snap::new(idx, 100).request()).unwrap();
    }
    assert_eq!(store.latest().unwrap().unwrap().name().idx, 8);
    sim.plant_file(dir(), "snapshot_9_10.committed", b"corrupt", true);
    assert_eq!(store.latest().unwrap().unwrap().name().idx, 8);
    store.apply_retention().unwrap();
    for (n, bytes) in foreign {
        assert_eq!(sim.read(dir(), n), Some(bytes.to_vec()), "{n}");
    }
    // Whereas our own files were handled: stale removed, corrupt quarantined then deleted
    // (max_quarantined 0), retention down to one.
    let ours: Vec<String> = sim
        .names(dir())
        .into_iter()
        .filter(|n| SnapshotName::parse(n).is_some())
        .collect();
    assert_eq!(ours, ["snapshot_8_9.committed"]);
    // No call ever named a foreign file.
    for r in sim.trace() {
        for n in [&r.name, &r.to].into_iter().flatten() {
            assert!(!foreign.iter().any(|(f, _)| f == n), "{r}");
        }
    }
}

#[test]
fn non_regular_files_under_our_names_are_skipped_and_left_alone() {
    let sim = SimFs::new(3);
    sim.plant_file(Path::new("/etc"), "precious", b"do not touch", true);
    sim.plant_symlink(dir(), "snapshot_5_6", "/etc/precious");
    sim.plant_symlink(dir(), "snapshot_9_10.committed", "/etc/precious");
    sim.plant_symlink(dir(), "snapshot_8_9.committed.corrupt", "/etc/precious");
    // A directory under a committed name.
    sim.plant_file(&dir().join("snapshot_7_8.committed"), "inner", b"x", true);
    plant(&sim, &Snap::new(1, 100));
    let mut o = opts();
    o.keep_last = 1;
    o.max_quarantined = 0;
    let store = open(&sim, o);
    let latest = store.latest().unwrap().unwrap();
    assert_eq!(latest.name().idx, 1);
    store.persist(&Snap::new(2, 100).request()).unwrap();
    drop(latest);
    store.apply_retention().unwrap();
    let names = sim.names(dir());
    for n in [
        "snapshot_5_6",
        "snapshot_9_10.committed",
        "snapshot_8_9.committed.corrupt",
        "snapshot_7_8.committed",
    ] {
        assert!(names.contains(&n.to_string()), "{n} gone: {names:?}");
    }
    assert_eq!(
        sim.read(Path::new("/etc"), "precious"),
        Some(b"do not touch".to_vec())
    );
    // Never opened, read, renamed or unlinked.
    for r in sim.trace() {
        if let Some(n) = &r.name {
            assert!(
                ![
                    "snapshot_5_6",
                    "snapshot_9_10.committed",
                    "snapshot_8_9.committed.corrupt",
                    "snapshot_7_8.committed"
                ]
                .contains(&n.as_str())
                    || r.op == Op::List,
                "{r}"
            );
        }
    }
    assert!(store.list().unwrap().iter().all(|e| e.name.idx <= 2));
}

#[test]
fn a_dir_sync_failure_is_not_reported_committed() {
    let sim = SimFs::new(3);
    let store = open(&sim, opts());
    sim.inject(Fault::nth(Op::SyncDir, 1, FaultKind::Eio));
    let e = store.persist(&Snap::new(1, 100).request()).unwrap_err();
    assert!(
        matches!(&e, snapseal_persist::PersistError::DirSyncFailed { removed: true, path, .. } if path.ends_with("snapshot_1_2.committed")),
        "{e}"
    );
    assert!(sim.names(dir()).iter().all(|n| !n.starts_with("snapshot_")));
    let unlinks: Vec<Outcome> = sim
        .trace()
        .iter()
        .filter(|r| r.op == Op::Unlink)
        .map(|r| r.outcome)
        .collect();
    assert_eq!(unlinks, [Outcome::Ok]);
    // That fsync is never retried: the store refuses every write, naming the failure, and
    // makes no further system call for it.
    let calls = sim.op_count();
    let e = store.persist(&Snap::new(1, 100).request()).unwrap_err();
    assert!(
        matches!(&e, snapseal_persist::PersistError::StoreFailed { earlier, .. } if earlier.contains("error")),
        "{e}"
    );
    assert!(e.to_string().contains("earlier fsync"), "{e}");
    assert_eq!(
        sim.op_count(),
        calls,
        "a failed store touched the directory"
    );
    assert!(matches!(
        store.apply_retention().unwrap_err(),
        StoreError::Failed { .. }
    ));
    assert!(store.failure().is_some());
    // A reopened store starts from what is on disk and works again.
    drop(store);
    let store = open(&sim, opts());
    assert!(store.failure().is_none());
    store.persist(&Snap::new(1, 100).request()).unwrap();
}

#[test]
fn the_store_is_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SnapshotStore>();
    send_sync::<snapseal_persist::Hold>();
    send_sync::<snapseal_persist::SnapshotFile>();

    let sim = SimFs::new(3);
    let mut o = opts();
    o.keep_last = 100;
    let store = Arc::new(open(&sim, o));
    let snaps: Vec<Snap> = (1..=8).map(|i| Snap::new(i, 200)).collect();
    std::thread::scope(|s| {
        for chunk in snaps.chunks(2) {
            let store = Arc::clone(&store);
            s.spawn(move || {
                for snap in chunk {
                    store.persist(&snap.request()).unwrap();
                    let _ = store.latest().unwrap().unwrap();
                }
            });
        }
    });
    assert_eq!(committed(&sim), (1..=8).collect::<Vec<_>>());
    assert_eq!(store.latest().unwrap().unwrap().name().idx, 8);
    assert_eq!(store.stats().persisted, 8);
}

#[test]
fn a_hold_outlives_its_store() {
    let sim = SimFs::new(3);
    let store = open(&sim, opts());
    store.persist(&Snap::new(1, 10).request()).unwrap();
    let file = store.latest().unwrap().unwrap();
    drop(store);
    assert_eq!(file.read_body().unwrap(), &Snap::new(1, 10).body[..]);
    drop(file);
}

/// Five good snapshots and five newer junk files under committed names: retention counts only
/// the good ones, keeps the newest of them and quarantines the junk instead of deleting good
/// snapshots to make room for it.
#[test]
fn junk_newer_than_every_good_snapshot_never_pushes_the_good_ones_out() {
    let sim = SimFs::new(3);
    for idx in 1..=5 {
        plant(&sim, &Snap::new(idx, 200));
    }
    let junk: Vec<SnapshotName> = (6..=10).map(name).collect();
    for n in &junk {
        sim.plant_file(dir(), &n.file_name(), b"not a snapshot at all", true);
    }
    let mut o = opts();
    o.keep_last = 5;
    o.max_quarantined = 10;
    let store = open(&sim, o);
    let plan = store.retention_plan().unwrap();
    assert_eq!(
        plan.keep.iter().map(|e| e.name.idx).collect::<Vec<_>>(),
        [5, 4, 3, 2, 1]
    );
    assert!(plan.delete.is_empty(), "{plan:?}");
    let report = store.apply_retention().unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    let mut quarantined = report.quarantined.clone();
    quarantined.sort();
    assert_eq!(quarantined, junk);
    assert_eq!(committed(&sim), [1, 2, 3, 4, 5]);
    assert_eq!(names_in(&sim, FileState::Corrupt).len(), 5);
    assert_eq!(store.latest().unwrap().unwrap().name().idx, 5);
}

/// With `max_bytes`, one huge junk file must not make retention drop the snapshots that
/// verify: the newest verified one survives whatever the junk weighs.
#[test]
fn a_huge_junk_file_under_max_bytes_does_not_delete_the_newest_verified_snapshot() {
    let sim = SimFs::new(3);
    for idx in 1..=3 {
        plant(&sim, &Snap::new(idx, 200));
    }
    sim.plant_file(dir(), &name(9).file_name(), &vec![7u8; 1 << 20], true);
    let mut o = opts();
    o.keep_last = 5;
    o.max_bytes = Some(4096);
    let store = open(&sim, o);
    let report = store.apply_retention().unwrap();
    assert_eq!(report.quarantined, [name(9)]);
    // The three good ones fit in 4096 bytes: none is deleted.
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(committed(&sim), [1, 2, 3]);
    // And the automatic pass after a persist keeps to the same rule.
    sim.plant_file(dir(), &name(20).file_name(), &vec![7u8; 1 << 20], true);
    store.persist(&Snap::new(4, 200).request()).unwrap();
    assert_eq!(committed(&sim), [1, 2, 3, 4]);
    assert_eq!(
        names_in(&sim, FileState::Corrupt)
            .iter()
            .map(|n| n.idx)
            .collect::<std::collections::BTreeSet<_>>(),
        [9, 20].into()
    );
}

/// The automatic retention pass after a persist counts only what verifies, too.
#[test]
fn the_pass_after_a_persist_counts_only_snapshots_that_verify() {
    let sim = SimFs::new(3);
    let mut o = opts();
    o.keep_last = 2;
    let store = open(&sim, o);
    store.persist(&Snap::new(1, 50).request()).unwrap();
    // A bit-rotted snapshot this store did not write (one it wrote itself it remembers as
    // good), and junk newer than anything.
    plant(&sim, &Snap::new(2, 50));
    assert!(sim.flip_bit(dir(), &name(2).file_name(), 8 * 200));
    sim.plant_file(dir(), &name(8).file_name(), b"junk", true);
    // Snapshot 3 is older than the junk; the pass must keep 3 and 1 (the two that verify).
    store.persist(&Snap::new(3, 50).request()).unwrap();
    assert_eq!(committed(&sim), [1, 3]);
    assert_eq!(
        names_in(&sim, FileState::Corrupt)
            .iter()
            .map(|n| n.idx)
            .collect::<Vec<_>>(),
        [2, 8]
    );
}

/// The quarantine bound holds when a store opens and when retention runs, not only when a
/// new file is quarantined.
#[test]
fn the_quarantine_bound_is_enforced_at_open_and_by_retention() {
    let sim = SimFs::new(3);
    for idx in 1..=2000u64 {
        let n = name(idx).with_state(FileState::Corrupt);
        sim.plant_file(dir(), &n.file_name(), b"junk", true);
    }
    let mut o = opts();
    o.max_quarantined = 3;
    let store = open(&sim, o.clone());
    let left = names_in(&sim, FileState::Corrupt);
    assert_eq!(
        left.iter().map(|n| n.idx).collect::<Vec<_>>(),
        [1998, 1999, 2000],
        "the newest three are kept"
    );
    // More junk appears while the store runs: the next retention pass trims it.
    for idx in 3000..3050u64 {
        let n = name(idx).with_state(FileState::Corrupt);
        sim.plant_file(dir(), &n.file_name(), b"junk", true);
    }
    let report = store.apply_retention().unwrap();
    assert_eq!(report.quarantine_deleted.len(), 50);
    assert_eq!(names_in(&sim, FileState::Corrupt).len(), 3);
}

/// A snapshot this store committed (and so remembers as good) that rots afterwards must not
/// make retention delete the older snapshot that still verifies.
#[test]
fn bit_rot_in_a_snapshot_the_store_wrote_does_not_cost_the_older_good_one() {
    let sim = SimFs::new(3);
    let mut o = opts();
    o.keep_last = 1;
    let store = open(&sim, o);
    store.persist(&Snap::new(1, 50).request()).unwrap();
    let hold = store.hold(&name(1)).unwrap();
    store.persist(&Snap::new(2, 50).request()).unwrap();
    assert_eq!(committed(&sim), [1, 2], "held");
    assert!(sim.flip_bit(dir(), &name(2).file_name(), 8 * 200));
    drop(hold);
    let report = store.apply_retention().unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(report.quarantined, [name(2)]);
    assert_eq!(committed(&sim), [1]);
    assert_eq!(store.latest().unwrap().unwrap().name().idx, 1);
}
