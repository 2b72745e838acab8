//! The harness's checks are live: each test breaks one promise behind the system's back and
//! asserts the harness names exactly that invariant. Plus the crash matrix: a power loss at
//! every seam call of a persist, none of which may lose an acknowledged snapshot.

use snapseal::persist::fs::FileSystem;
use snapseal_sim::harness::{Harness, HarnessConfig, Invariant, Op};

/// Ops that end with the snapshot at 10 persisted (evidence 11, signature 12).
fn one_snapshot() -> Vec<Op> {
    vec![
        Op::Append(7), // 8 writes: 1..=8
        Op::Append(0), // 9
        Op::Sign,      // 10: a snapshot point
        Op::Commit(0),
        Op::RunAll, // serialise
        Op::Evidence,
        Op::Sign, // 12
        Op::Commit(0),
        Op::RunAll, // persist
    ]
}

fn harness_with_one_snapshot() -> Harness {
    let mut h = Harness::new(11, HarnessConfig::default()).expect("starts");
    for op in one_snapshot() {
        h.apply(&op).expect("a plain run keeps every invariant");
    }
    assert_eq!(h.acks().len(), 1);
    h
}

fn expect(h: &mut Harness, op: Op, invariant: Invariant) {
    match h.apply(&op) {
        Err(v) => assert_eq!(v.invariant, invariant, "{v}"),
        Ok(()) => panic!("the harness missed a broken {invariant}"),
    }
}

#[test]
fn a_plain_run_persists_and_recovers_its_snapshot() {
    let mut h = harness_with_one_snapshot();
    h.apply(&Op::Crash).expect("recovery keeps every invariant");
    let names: Vec<String> = h.committed_files().iter().map(|n| n.file_name()).collect();
    assert_eq!(names, ["snapshot_10_11.committed"]);
    h.settle().expect("settles");
}

#[test]
fn a_forged_committed_file_is_caught() {
    let mut h = harness_with_one_snapshot();
    let dir = h.dir().to_path_buf();
    h.sim()
        .plant_file(&dir, "snapshot_30_31.committed", b"not a snapshot", true);
    expect(&mut h, Op::Tick(0), Invariant::InvalidCommittedFile);
}

#[test]
fn a_stray_uncommitted_file_is_caught() {
    let mut h = harness_with_one_snapshot();
    let dir = h.dir().to_path_buf();
    h.sim()
        .plant_file(&dir, "snapshot_30_31", b"half a file", true);
    expect(&mut h, Op::Tick(0), Invariant::StaleFile);
}

#[test]
fn a_pending_file_of_no_pending_generation_is_caught() {
    let mut h = harness_with_one_snapshot();
    let dir = h.dir().to_path_buf();
    h.sim()
        .plant_file(&dir, "snapshot_30.g7.pending", b"a spilled body", true);
    expect(&mut h, Op::Tick(0), Invariant::StaleFile);
}

/// With every body spilled (`spill_threshold` 0), a snapshot is committed from its pending
/// file, and after a power loss while another generation's body sits in a pending file (never
/// fsynced, so the crash may or may not keep it) no pending file survives recovery.
#[test]
fn spilled_bodies_commit_in_place_and_recovery_removes_pending_files() {
    let cfg = HarnessConfig {
        spill_threshold: Some(0),
        ..HarnessConfig::default()
    };
    let mut h = Harness::new(11, cfg).expect("starts");
    for op in [
        Op::Append(7),
        Op::Append(0),
        Op::Sign,
        Op::Commit(0),
        Op::RunAll,
        Op::Evidence,
        Op::Sign,
        Op::Commit(0),
        Op::RunAll,
        // A second snapshot point: serialised (spilled), then the power goes.
        Op::Append(7),
        Op::Append(1),
        Op::Sign,
        Op::Commit(0),
        Op::RunAll,
    ] {
        h.apply(&op).expect("no invariant broken");
    }
    assert!(!h.pending_files().is_empty(), "the second body was spilled");
    h.apply(&Op::Crash).expect("recovery removes it");
    assert!(h.pending_files().is_empty());
    let s = h.stats();
    assert_eq!(h.acks().len(), 1);
    assert!(s.spilled >= 2 && s.spilled_acked == 1, "{s:?}");
}

/// A genuine file (right key, valid receipt) whose evidence this node's ledger does not hold.
#[test]
fn a_valid_file_the_ledger_does_not_back_is_caught() {
    let h = harness_with_one_snapshot();
    let bytes = h
        .sim()
        .read(h.dir(), "snapshot_10_11.committed")
        .expect("the committed file");
    // Same seed, same key, but an empty ledger: nothing at index 11.
    let mut fresh = Harness::new(11, HarnessConfig::default()).expect("starts");
    let dir = fresh.dir().to_path_buf();
    fresh
        .sim()
        .plant_file(&dir, "snapshot_10_11.committed", &bytes, true);
    expect(&mut fresh, Op::Tick(0), Invariant::UnprovenCommittedFile);
}

#[test]
fn a_file_signed_by_an_untrusted_key_is_caught() {
    let h = harness_with_one_snapshot();
    let bytes = h
        .sim()
        .read(h.dir(), "snapshot_10_11.committed")
        .expect("the committed file");
    // Seed 12's ledger key is not seed 11's.
    let mut other = Harness::new(12, HarnessConfig::default()).expect("starts");
    let dir = other.dir().to_path_buf();
    other
        .sim()
        .plant_file(&dir, "snapshot_10_11.committed", &bytes, true);
    expect(&mut other, Op::Tick(0), Invariant::InvalidCommittedFile);
}

#[test]
fn an_acknowledged_snapshot_deleted_behind_the_stores_back_is_caught() {
    let mut h = harness_with_one_snapshot();
    let dir = h.sim().open_dir(h.dir(), false).expect("open dir");
    dir.unlink("snapshot_10_11.committed").expect("unlink");
    expect(&mut h, Op::Tick(0), Invariant::RetentionTooEager);
}

#[test]
fn an_acknowledged_snapshot_lost_in_a_crash_is_caught() {
    let mut h = harness_with_one_snapshot();
    let dir = h.sim().open_dir(h.dir(), false).expect("open dir");
    dir.unlink("snapshot_10_11.committed").expect("unlink");
    dir.sync().expect("dir sync");
    expect(&mut h, Op::Crash, Invariant::AckedLost);
}

#[test]
fn a_corrupted_snapshot_is_quarantined_and_never_returned() {
    let mut h = harness_with_one_snapshot();
    for op in [
        Op::Append(7), // 13..=20
        Op::Sign,      // 21: 21 - 10 >= 10
        Op::Commit(0),
        Op::RunAll,
        Op::Evidence,
        Op::Sign,
        Op::Commit(0),
        Op::RunAll,
        Op::Corrupt { which: 1, bit: 999 },
        Op::Latest,
        Op::Crash,
    ] {
        h.apply(&op).expect("keeps every invariant");
    }
    assert_eq!(h.acks().len(), 2);
    assert_eq!(h.stats().corruptions, 1);
    assert_eq!(h.stats().quarantined, 1);
    let names: Vec<String> = h.committed_files().iter().map(|n| n.file_name()).collect();
    assert_eq!(names, ["snapshot_10_11.committed"]);
}

/// The crash matrix: the process dies after `n` more seam calls while the persist of the
/// snapshot at 10 runs, for every `n` from 0 (before its first call) past its last, then
/// power fails and the node recovers. Whatever `n`, the invariants hold, and the snapshot
/// survives exactly when it was acknowledged.
#[test]
fn a_crash_at_every_seam_call_of_a_persist_loses_nothing_acknowledged() {
    let mut struck = 0;
    let mut acked_and_survived = 0;
    for n in 0..24u8 {
        let mut h = Harness::new(21, HarnessConfig::default()).expect("starts");
        let mut ops = one_snapshot();
        ops.pop(); // leave the persist ready, not run
        ops.push(Op::CrashDuring(n));
        for op in &ops {
            h.apply(op)
                .unwrap_or_else(|v| panic!("crash after {n} calls: {v}"));
        }
        struck += h.stats().crash_points;
        let on_disk = !h.committed_files().is_empty();
        if !h.acks().is_empty() {
            assert!(
                on_disk,
                "crash after {n} calls lost the acknowledged snapshot"
            );
            acked_and_survived += 1;
        }
        h.settle()
            .unwrap_or_else(|v| panic!("crash after {n} calls, settling: {v}"));
    }
    assert!(
        struck >= 8,
        "the halt struck inside the write sequence {struck} times"
    );
    assert!(
        acked_and_survived >= 1,
        "late crashes come after the acknowledgement"
    );
}
