//! Every injected fault at every call of a spilled persist (pending file created, body
//! streamed, then completed): a typed error naming the step and the file, no pending,
//! uncommitted or committed file left from the attempt, no file left open, and the store keeps
//! working. EINTR and short writes/pwrites are absorbed; a failed fsync is never retried; the
//! link fallback works; a committed name is never overwritten.

use std::sync::OnceLock;

use crate::fixture::*;
use snapseal_persist::fs::SimFs;
use snapseal_persist::fs::{Fault, FaultKind, Op, OpRecord};
use snapseal_persist::internals::PendingName;
use snapseal_persist::internals::SpillCommit;
use snapseal_persist::Flags;
use snapseal_persist::{Committed, FileState, PersistError, SnapshotStore, Step};

const CHUNK: usize = 2000;
const GENERATION: u64 = 9;

fn previous() -> &'static Snap {
    static SNAP: OnceLock<Snap> = OnceLock::new();
    SNAP.get_or_init(|| Snap::new(10, 3000))
}

fn next() -> &'static Snap {
    static SNAP: OnceLock<Snap> = OnceLock::new();
    SNAP.get_or_init(|| Snap::new(20, 5000))
}

fn after() -> &'static Snap {
    static SNAP: OnceLock<Snap> = OnceLock::new();
    SNAP.get_or_init(|| Snap::new(30, 700))
}

const KINDS: [FaultKind; 5] = [
    FaultKind::Eio,
    FaultKind::Enospc,
    FaultKind::Eexist,
    FaultKind::Eintr,
    FaultKind::ShortWrite,
];

fn commit_request(snap: &Snap) -> SpillCommit<'_> {
    SpillCommit {
        evidence_idx: snap.evidence_idx,
        flags: Flags::NONE,
        raw_len: snap.body.len() as u64,
        body_digest: snap.digest,
        receipt: &snap.receipt,
    }
}

fn spill_persist(store: &SnapshotStore, snap: &Snap) -> Result<Committed, PersistError> {
    let mut spill = store.create_spill(snap.idx, GENERATION)?;
    for chunk in snap.body.chunks(CHUNK) {
        spill.write_body(chunk)?;
    }
    store.commit_spill(spill, &commit_request(snap))
}

fn pending_file_name() -> String {
    PendingName {
        idx: next().idx,
        generation: GENERATION,
    }
    .file_name()
}

/// A store holding `previous()`; `fallback` turns RENAME_NOREPLACE off.
fn setup(fallback: bool) -> (SimFs, SnapshotStore) {
    let sim = SimFs::new(1);
    let store = open(&sim, opts());
    store.persist(&previous().request()).unwrap();
    sim.set_rename_noreplace_supported(!fallback);
    sim.clear_trace();
    (sim, store)
}

/// The calls of one clean spilled persist of `next()`, each with its 1-based count among
/// calls of the same op (what `Fault::nth` counts).
fn dry_run(fallback: bool) -> Vec<(OpRecord, u64)> {
    let (sim, store) = setup(fallback);
    spill_persist(&store, next()).unwrap();
    let trace = sim.trace();
    trace
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let nth = trace[..=i].iter().filter(|x| x.op == r.op).count() as u64;
            (r.clone(), nth)
        })
        .collect()
}

#[derive(Debug, PartialEq)]
enum Expect {
    Ok,
    OkRetentionFailed,
    OkLeftoverLink,
    Err { step: Step, already_committed: bool },
    NotApplicable,
}

fn expect(rec: &OpRecord, kind: FaultKind, after_dir_sync: bool) -> Expect {
    if kind == FaultKind::ShortWrite && !matches!(rec.op, Op::Write | Op::WriteAt) {
        return Expect::NotApplicable;
    }
    if after_dir_sync {
        return Expect::OkRetentionFailed;
    }
    let err = |step| Expect::Err {
        step,
        already_committed: false,
    };
    match (rec.op, kind) {
        (Op::Write | Op::WriteAt, FaultKind::Eintr | FaultKind::ShortWrite) => Expect::Ok,
        (Op::Write, _) => err(Step::Write),
        (Op::WriteAt, _) => err(Step::WriteHeader),
        // A pending name is never taken for a stale file: EEXIST is an error like any other.
        (Op::CreateNew, _) => err(Step::Create),
        (Op::List, _) => err(Step::CheckExisting),
        (Op::Sync, _) => err(Step::Fsync),
        (Op::Close, _) => err(Step::Close),
        (Op::Rename, FaultKind::Eexist) => Expect::Err {
            step: Step::Rename,
            already_committed: true,
        },
        (Op::Rename, _) => err(Step::Rename),
        (Op::HardLink, FaultKind::Eexist) => Expect::Err {
            step: Step::Link,
            already_committed: true,
        },
        (Op::HardLink, _) => err(Step::Link),
        (Op::Unlink, _) => Expect::OkLeftoverLink,
        (Op::SyncDir, _) => err(Step::DirSync),
        (op, _) => panic!("unexpected call {op:?} in a spilled persist"),
    }
}

fn assert_no_trace_of_next(sim: &SimFs, ctx: &str) {
    let names = sim.names(dir());
    for name in [
        next().file_name(FileState::Uncommitted),
        next().file_name(FileState::Committed),
        pending_file_name(),
    ] {
        assert!(
            !names.contains(&name),
            "{ctx}: {name} left behind: {names:?}"
        );
    }
}

#[test]
fn every_fault_at_every_step_of_a_spilled_persist_gives_a_typed_error_and_leaves_nothing() {
    let mut checked = 0;
    for fallback in [false, true] {
        let calls = dry_run(fallback);
        let dir_sync_at = calls
            .iter()
            .position(|(r, _)| r.op == Op::SyncDir)
            .expect("a dir sync");
        for (i, (rec, nth)) in calls.iter().enumerate() {
            for kind in KINDS {
                let expected = expect(rec, kind, i > dir_sync_at);
                if expected == Expect::NotApplicable {
                    continue;
                }
                let ctx = format!("fallback {fallback}: {kind:?} at call {i} ({rec}, nth {nth})");
                let (sim, store) = setup(fallback);
                sim.inject(Fault::nth(rec.op, *nth, kind));
                let result = spill_persist(&store, next());
                assert!(
                    sim.trace().iter().any(|r| r.fault.is_some()),
                    "{ctx}: the fault never fired"
                );
                assert_eq!(sim.open_files(), 0, "{ctx}: a file was left open");
                match expected {
                    Expect::Ok | Expect::OkRetentionFailed | Expect::OkLeftoverLink => {
                        let c = result.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        assert_eq!(c.name, next().name(), "{ctx}");
                        assert_eq!(
                            sim.read(dir(), &next().file_name(FileState::Committed)),
                            Some(next().file_bytes()),
                            "{ctx}"
                        );
                        let retention_failed = u64::from(expected == Expect::OkRetentionFailed);
                        assert_eq!(store.stats().retention_failures, retention_failed, "{ctx}");
                        let leftover = sim.names(dir()).contains(&pending_file_name());
                        assert_eq!(leftover, expected == Expect::OkLeftoverLink, "{ctx}");
                        if leftover {
                            // The leftover pending name goes away at the next open.
                            drop(store);
                            let store = open(&sim, opts());
                            assert!(!sim.names(dir()).contains(&pending_file_name()), "{ctx}");
                            assert_eq!(*store.latest().unwrap().unwrap().name(), next().name());
                            checked += 1;
                            continue;
                        }
                    }
                    Expect::Err {
                        step,
                        already_committed,
                    } => {
                        let e = result.expect_err(&ctx);
                        assert_eq!(e.step(), step, "{ctx}: {e}");
                        assert_eq!(
                            matches!(e, PersistError::AlreadyCommitted { .. }),
                            already_committed,
                            "{ctx}: {e}"
                        );
                        if step == Step::DirSync {
                            assert!(
                                matches!(e, PersistError::DirSyncFailed { removed: true, .. }),
                                "{ctx}: {e}"
                            );
                        }
                        let shown = e.to_string();
                        assert!(shown.contains("snapshot_20"), "{ctx}: {shown}");
                        assert_no_trace_of_next(&sim, &ctx);
                        // A failed fsync is never retried.
                        let syncs = sim.trace().iter().filter(|r| r.op == Op::Sync).count();
                        assert!(syncs <= 1, "{ctx}: {syncs} fsyncs");
                    }
                    Expect::NotApplicable => unreachable!(),
                }
                // The store keeps working, except after a failed directory fsync: then it
                // refuses every write (that fsync is never retried) until it is reopened.
                sim.clear_faults();
                let dir_sync_failed = rec.op == Op::SyncDir;
                assert_eq!(store.failure().is_some(), dir_sync_failed, "{ctx}");
                let store = if dir_sync_failed {
                    let e = store
                        .persist(&after().request())
                        .expect_err("a failed store refuses to write");
                    assert!(matches!(e, PersistError::StoreFailed { .. }), "{ctx}: {e}");
                    assert!(e.to_string().contains("earlier fsync"), "{ctx}: {e}");
                    drop(store);
                    open(&sim, opts())
                } else {
                    store
                };
                store
                    .persist(&after().request())
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} cases");
}

#[test]
fn a_taken_committed_name_is_refused_before_any_receipt_and_the_pending_file_is_removed() {
    let (sim, store) = setup(false);
    store.persist(&next().request()).unwrap();
    let before = sim.read(dir(), &next().file_name(FileState::Committed));
    let e = spill_persist(&store, next()).expect_err("the committed name is taken");
    assert!(
        matches!(
            e,
            PersistError::AlreadyCommitted {
                step: Step::CheckExisting,
                ..
            }
        ),
        "{e}"
    );
    assert!(!sim.names(dir()).contains(&pending_file_name()));
    assert_eq!(
        sim.read(dir(), &next().file_name(FileState::Committed)),
        before
    );
}

#[test]
fn a_body_write_failure_poisons_the_spill_and_its_commit_fails_without_a_file() {
    let (sim, store) = setup(false);
    let mut spill = store.create_spill(next().idx, GENERATION).unwrap();
    sim.inject(Fault::nth(Op::Write, 1, FaultKind::Enospc));
    let e = spill.write_body(&next().body).expect_err("ENOSPC");
    assert_eq!(e.step(), Step::Write);
    assert!(e.to_string().contains(&pending_file_name()), "{e}");
    // Its file is closed at once; a later write cannot quietly continue a torn body.
    assert_eq!(sim.open_files(), 0);
    assert!(spill.write_body(b"more").is_err());
    let e = store
        .commit_spill(spill, &commit_request(next()))
        .expect_err("the body is incomplete");
    assert_eq!(e.step(), Step::Write, "{e}");
    assert_no_trace_of_next(&sim, "after a failed body write");
}

#[test]
fn a_header_that_cannot_be_valid_is_refused_and_the_pending_file_removed() {
    let (sim, store) = setup(false);
    let mut spill = store.create_spill(next().idx, GENERATION).unwrap();
    spill.write_body(&next().body).unwrap();
    let mut req = commit_request(next());
    req.raw_len += 1; // uncompressed, so it must equal the body length
    let e = store
        .commit_spill(spill, &req)
        .expect_err("inconsistent lengths");
    assert_eq!(e.step(), Step::Validate, "{e}");
    assert_no_trace_of_next(&sim, "after an invalid request");
}

/// A body streamed into its pending file starts no writeback (that would throttle the
/// serialisation to the disk's pace); the completed file commits.
#[test]
fn a_spilled_body_streams_without_writeback_hints_and_commits() {
    let sim = SimFs::new(1);
    let store = open(&sim, opts());
    let snap = Snap::new(40, 40 << 20);
    let mut spill = store.create_spill(snap.idx, GENERATION).unwrap();
    for piece in snap.body.chunks(4 << 20) {
        spill.write_body(piece).unwrap();
    }
    let hints = sim.trace().iter().filter(|r| r.op == Op::Writeback).count();
    assert_eq!(hints, 0, "no hint while a 40 MiB body streams in");
    store.commit_spill(spill, &commit_request(&snap)).unwrap();
    assert_eq!(names_in(&sim, FileState::Committed), vec![snap.name()]);
}
