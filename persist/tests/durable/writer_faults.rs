//! Every injected fault at every call of a persist: a clear typed error naming the step, no
//! committed or uncommitted file left from the attempt, the store keeps working. EINTR and
//! short writes are absorbed; a failed fsync is never retried; the link fallback works; a
//! committed name is never overwritten.

use std::sync::OnceLock;

use crate::fixture::*;
use snapseal_persist::fs::SimFs;
use snapseal_persist::fs::{Fault, FaultKind, Op, OpRecord, Outcome};
use snapseal_persist::{FileState, PersistError, SnapshotStore, Step};

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

/// A store holding `previous()`; `fallback` turns RENAME_NOREPLACE off.
fn setup(fallback: bool) -> (SimFs, SnapshotStore) {
    let sim = SimFs::new(1);
    let store = open(&sim, opts());
    store.persist(&previous().request()).unwrap();
    sim.set_rename_noreplace_supported(!fallback);
    sim.clear_trace();
    (sim, store)
}

/// The calls of one clean persist of `next()`, each with its 1-based count among calls of
/// the same op (what `Fault::nth` counts).
fn dry_run(fallback: bool) -> Vec<(OpRecord, u64)> {
    let (sim, store) = setup(fallback);
    store.persist(&next().request()).unwrap();
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

/// What a fault at this call must lead to.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Absorbed: persist succeeds.
    Ok,
    /// Persist succeeds, but the retention pass after it fails (counted, not an error).
    OkRetentionFailed,
    /// Persist succeeds (link fallback) but the uncommitted name could not be removed.
    OkLeftoverLink,
    /// The typed error: this step, and whether it is AlreadyCommitted.
    Err { step: Step, already_committed: bool },
    /// The fault does not apply to this call (ShortWrite on a non-write).
    NotApplicable,
}

fn expect(rec: &OpRecord, nth: u64, kind: FaultKind, after_dir_sync: bool) -> Expect {
    if kind == FaultKind::ShortWrite && rec.op != Op::Write {
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
        (Op::Write, FaultKind::Eintr | FaultKind::ShortWrite) => Expect::Ok,
        (Op::Write, _) => err(Step::Write),
        // The first create refused: taken for a stale file; its unlink finds nothing; the
        // one retry succeeds.
        (Op::CreateNew, FaultKind::Eexist) if nth == 1 => Expect::Ok,
        (Op::CreateNew, _) => err(Step::Create),
        (Op::List, _) => err(Step::CheckExisting),
        (Op::Sync, _) => err(Step::Fsync),
        (Op::Close, _) => err(Step::Close),
        (Op::Rename, FaultKind::Eexist) => Expect::Err {
            step: Step::Rename,
            already_committed: true,
        },
        // The fallback's own rename "fails" (unsupported) on every call; the injected
        // error replaces that, so it is an ordinary rename error.
        (Op::Rename, _) => err(Step::Rename),
        (Op::HardLink, FaultKind::Eexist) => Expect::Err {
            step: Step::Link,
            already_committed: true,
        },
        (Op::HardLink, _) => err(Step::Link),
        (Op::Unlink, _) => Expect::OkLeftoverLink,
        (Op::SyncDir, _) => err(Step::DirSync),
        (op, _) => panic!("unexpected call {op:?} in a persist"),
    }
}

fn assert_no_trace_of_next(sim: &SimFs, ctx: &str) {
    let names = sim.names(dir());
    for state in [FileState::Uncommitted, FileState::Committed] {
        assert!(
            !names.contains(&next().file_name(state)),
            "{ctx}: {} left behind: {names:?}",
            next().file_name(state)
        );
    }
}

#[test]
fn every_fault_at_every_step_gives_a_typed_error_and_leaves_nothing() {
    let mut checked = 0;
    for fallback in [false, true] {
        let calls = dry_run(fallback);
        let dir_sync_at = calls
            .iter()
            .position(|(r, _)| r.op == Op::SyncDir)
            .expect("a dir sync");
        for (i, (rec, nth)) in calls.iter().enumerate() {
            for kind in KINDS {
                let expected = expect(rec, *nth, kind, i > dir_sync_at);
                if expected == Expect::NotApplicable {
                    continue;
                }
                let ctx = format!("fallback {fallback}: {kind:?} at call {i} ({rec}, nth {nth})");
                let (sim, store) = setup(fallback);
                sim.inject(Fault::nth(rec.op, *nth, kind));
                let result = store.persist(&next().request());
                let trace = sim.trace();
                assert!(
                    trace.iter().any(|r| r.fault.is_some()),
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
                        let leftover = sim
                            .names(dir())
                            .contains(&next().file_name(FileState::Uncommitted));
                        assert_eq!(leftover, expected == Expect::OkLeftoverLink, "{ctx}");
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
                        assert!(shown.contains("snapshot_20_21"), "{ctx}: {shown}");
                        assert_no_trace_of_next(&sim, &ctx);
                        assert_eq!(store.stats().persist_failures, 1, "{ctx}");
                    }
                    Expect::NotApplicable => unreachable!(),
                }
                if expected == Expect::OkLeftoverLink {
                    // The leftover second name goes away at the next open; the committed
                    // file stays and verifies.
                    drop(store);
                    let store = open(&sim, opts());
                    assert!(!sim
                        .names(dir())
                        .contains(&next().file_name(FileState::Uncommitted)));
                    assert_eq!(
                        *store.latest().unwrap().unwrap().name(),
                        next().name(),
                        "{ctx}"
                    );
                    checked += 1;
                    continue;
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
                    .unwrap_or_else(|e| panic!("{ctx}: next persist: {e}"));
                let latest = store.latest().unwrap().unwrap();
                assert_eq!(*latest.name(), after().name(), "{ctx}");
                assert!(names_in(&sim, FileState::Uncommitted).is_empty(), "{ctx}");
                assert!(names_in(&sim, FileState::Corrupt).is_empty(), "{ctx}");
                checked += 1;
            }
        }
    }
    assert!(checked > 60, "only {checked} cases");
}

#[test]
fn eintr_and_short_writes_on_every_write_are_absorbed() {
    for kind in [FaultKind::Eintr, FaultKind::ShortWrite] {
        let (sim, store) = setup(false);
        sim.inject(Fault::probability(Op::Write, 0.6, kind));
        store.persist(&next().request()).unwrap();
        let fired = sim.trace().iter().filter(|r| r.fault == Some(kind)).count();
        assert!(fired > 1, "{kind:?} fired only {fired} times");
        assert_eq!(
            sim.read(dir(), &next().file_name(FileState::Committed)),
            Some(next().file_bytes())
        );
    }
}

#[test]
fn a_write_that_accepts_nothing_forever_is_an_error_not_a_hang() {
    let (sim, store) = setup(false);
    sim.inject(Fault::always(Op::Write, FaultKind::Eintr));
    let e = store.persist(&next().request()).unwrap_err();
    assert_eq!(e.step(), Step::Write);
    assert_no_trace_of_next(&sim, "eintr storm");
}

#[test]
fn a_failed_fsync_is_never_retried() {
    for kind in [FaultKind::Eio, FaultKind::Enospc, FaultKind::Eintr] {
        let (sim, store) = setup(false);
        sim.inject(Fault::nth(Op::Sync, 1, kind));
        let e = store.persist(&next().request()).unwrap_err();
        assert_eq!(e.step(), Step::Fsync, "{e}");
        let trace = sim.trace();
        let syncs: Vec<&OpRecord> = trace.iter().filter(|r| r.op == Op::Sync).collect();
        assert_eq!(syncs.len(), 1, "fsync called again: {syncs:?}");
        assert_eq!(syncs[0].fault, Some(kind));
        // Abandoned: closed, unlinked, never renamed.
        let after_sync: Vec<Op> = trace
            .iter()
            .skip_while(|r| r.op != Op::Sync)
            .skip(1)
            .map(|r| r.op)
            .collect();
        assert_eq!(after_sync, [Op::Close, Op::Unlink], "{kind:?}");
        assert_no_trace_of_next(&sim, "fsync");
    }
}

#[test]
fn link_fallback_when_rename_noreplace_is_unsupported() {
    let (sim, store) = setup(true);
    let c = store.persist(&next().request()).unwrap();
    let ops: Vec<(Op, Outcome)> = sim
        .trace()
        .iter()
        .skip_while(|r| r.op != Op::Rename)
        .take(4)
        .map(|r| (r.op, r.outcome))
        .collect();
    assert_eq!(
        ops,
        [
            (Op::Rename, Outcome::Failed(Some(nix::libc::EINVAL))),
            (Op::HardLink, Outcome::Ok),
            (Op::Unlink, Outcome::Ok),
            (Op::SyncDir, Outcome::Ok),
        ]
    );
    assert_eq!(c.path, dir().join("snapshot_20_21.committed"));
    assert_eq!(c.file_len, next().file_bytes().len() as u64);
    assert_eq!(c.body_digest, next().digest);
    assert_eq!(
        sim.read(dir(), "snapshot_20_21.committed"),
        Some(next().file_bytes())
    );
    assert!(names_in(&sim, FileState::Uncommitted).is_empty());
    // The fallback never overwrites either.
    let other = Snap::from_body(20, 21, b"another body".to_vec());
    sim.clear_trace();
    let e = store.persist(&other.request()).unwrap_err();
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
    assert_eq!(
        sim.read(dir(), "snapshot_20_21.committed"),
        Some(next().file_bytes())
    );
}

#[test]
fn a_committed_name_is_never_overwritten() {
    let (sim, store) = setup(false);
    let first = store.persist(&next().request()).unwrap();
    let other = Snap::from_body(20, 21, b"a different body".to_vec());
    sim.clear_trace();
    let e = store.persist(&other.request()).unwrap_err();
    assert!(
        matches!(&e, PersistError::AlreadyCommitted { path, step: Step::CheckExisting } if *path == first.path),
        "{e}"
    );
    assert!(e.to_string().contains("never overwritten"), "{e}");
    // Refused before anything was created.
    assert!(
        sim.trace().iter().all(|r| r.op == Op::List),
        "{:?}",
        sim.trace()
    );
    assert_eq!(
        sim.read(dir(), "snapshot_20_21.committed"),
        Some(next().file_bytes())
    );

    // And if the committed name appears while the file is being written (simulated by the
    // rename's EEXIST), the rename refuses and the new file is cleaned up.
    let (sim, store) = setup(false);
    sim.inject(Fault::nth(Op::Rename, 1, FaultKind::Eexist));
    let e = store.persist(&next().request()).unwrap_err();
    assert!(
        matches!(
            e,
            PersistError::AlreadyCommitted {
                step: Step::Rename,
                ..
            }
        ),
        "{e}"
    );
    assert_no_trace_of_next(&sim, "rename eexist");
}

#[test]
fn a_stale_uncommitted_file_of_the_same_name_is_replaced() {
    // A failed write whose cleanup also fails leaves the uncommitted file behind...
    let (sim, store) = setup(false);
    sim.inject(Fault::nth(Op::Write, 2, FaultKind::Eio));
    sim.inject(Fault::nth(Op::Unlink, 1, FaultKind::Eio));
    let e = store.persist(&next().request()).unwrap_err();
    assert_eq!(e.step(), Step::Write);
    let stale = next().file_name(FileState::Uncommitted);
    assert!(sim.names(dir()).contains(&stale));
    // ... and the next persist of that name removes it and succeeds (one retry).
    sim.clear_trace();
    store.persist(&next().request()).unwrap();
    let creates: Vec<Outcome> = sim
        .trace()
        .iter()
        .filter(|r| r.op == Op::CreateNew)
        .map(|r| r.outcome)
        .collect();
    assert_eq!(
        creates,
        [Outcome::Failed(Some(nix::libc::EEXIST)), Outcome::Ok]
    );
    assert_eq!(
        sim.read(dir(), "snapshot_20_21.committed"),
        Some(next().file_bytes())
    );
    assert!(!sim.names(dir()).contains(&stale));
}

#[test]
fn a_second_eexist_after_removing_the_stale_file_is_an_error() {
    let (sim, store) = setup(false);
    sim.inject(Fault::always(Op::CreateNew, FaultKind::Eexist));
    let e = store.persist(&next().request()).unwrap_err();
    assert_eq!(e.step(), Step::Create);
    let creates = sim.trace().iter().filter(|r| r.op == Op::CreateNew).count();
    assert_eq!(creates, 2, "exactly one retry");
}

#[test]
fn a_symlink_under_our_uncommitted_name_is_removed_not_followed() {
    let (sim, store) = setup(false);
    sim.plant_file(
        std::path::Path::new("/etc"),
        "precious",
        b"do not touch",
        true,
    );
    sim.plant_symlink(
        dir(),
        &next().file_name(FileState::Uncommitted),
        "/etc/precious",
    );
    store.persist(&next().request()).unwrap();
    assert_eq!(
        sim.read(std::path::Path::new("/etc"), "precious"),
        Some(b"do not touch".to_vec())
    );
    assert_eq!(
        sim.read(dir(), "snapshot_20_21.committed"),
        Some(next().file_bytes())
    );
}

#[test]
fn a_symlink_under_our_committed_name_blocks_the_commit_and_is_left_alone() {
    let (sim, store) = setup(false);
    sim.plant_file(
        std::path::Path::new("/etc"),
        "precious",
        b"do not touch",
        true,
    );
    sim.plant_symlink(
        dir(),
        &next().file_name(FileState::Committed),
        "/etc/precious",
    );
    let e = store.persist(&next().request()).unwrap_err();
    assert!(matches!(e, PersistError::AlreadyCommitted { .. }), "{e}");
    assert_eq!(
        sim.read(std::path::Path::new("/etc"), "precious"),
        Some(b"do not touch".to_vec())
    );
    // Still a symlink (read() sees only regular files), never written through.
    assert!(sim
        .names(dir())
        .contains(&next().file_name(FileState::Committed)));
    assert_eq!(
        sim.read(dir(), &next().file_name(FileState::Committed)),
        None
    );
    // latest() skips it: the previous snapshot is found, nothing is quarantined.
    let latest = store.latest().unwrap().unwrap();
    assert_eq!(*latest.name(), previous().name());
    assert!(names_in(&sim, FileState::Corrupt).is_empty());
}

#[test]
fn an_inconsistent_request_is_refused_before_touching_the_disk() {
    let (sim, store) = setup(false);
    let snap = next();
    let mut req = snap.request();
    req.raw_len += 1; // uncompressed, so raw_len must equal the body length
    let e = store.persist(&req).unwrap_err();
    assert!(matches!(e, PersistError::InvalidRequest { .. }), "{e}");
    assert_eq!(e.step(), Step::Validate);
    assert!(sim.trace().is_empty(), "{:?}", sim.trace());
}

#[test]
fn the_body_is_written_in_chunks_of_at_most_8_mib_straight_through() {
    let (sim, store) = setup(false);
    let big = Snap::new(40, 20 << 20);
    store.persist(&big.request()).unwrap();
    let writes: Vec<Outcome> = sim
        .trace()
        .iter()
        .filter(|r| r.op == Op::Write)
        .map(|r| r.outcome)
        .collect();
    assert_eq!(
        writes,
        [
            Outcome::Wrote(160),
            Outcome::Wrote(8 << 20),
            Outcome::Wrote(8 << 20),
            Outcome::Wrote(4 << 20),
            Outcome::Wrote(big.receipt.len()),
        ]
    );
}

/// A directory whose files' `write` misbehaves as `bad` says; everything else is SimFs.
mod misbehaving {
    use std::io;
    use std::path::Path;
    use std::sync::Arc;

    use snapseal_persist::internals::fs::{DirEntry, DirHandle, DirLock, FileBytes, WritableFile};

    #[derive(Debug)]
    pub(crate) struct Dir {
        pub inner: Arc<dyn DirHandle>,
        /// Maps the count a write really wrote to the count it reports.
        pub claim: fn(usize) -> usize,
    }

    #[derive(Debug)]
    struct File {
        inner: Box<dyn WritableFile>,
        claim: fn(usize) -> usize,
    }

    impl WritableFile for File {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = self.inner.write(buf)?;
            Ok((self.claim)(n))
        }
        fn sync(&mut self) -> io::Result<()> {
            self.inner.sync()
        }
        fn close(self: Box<Self>) -> io::Result<()> {
            self.inner.close()
        }
    }

    impl DirHandle for Dir {
        fn path(&self) -> &Path {
            self.inner.path()
        }
        fn create_new(&self, name: &str, mode: u32) -> io::Result<Box<dyn WritableFile>> {
            Ok(Box::new(File {
                inner: self.inner.create_new(name, mode)?,
                claim: self.claim,
            }))
        }
        fn rename_noreplace(&self, from: &str, to: &str) -> io::Result<()> {
            self.inner.rename_noreplace(from, to)
        }
        fn hard_link(&self, from: &str, to: &str) -> io::Result<()> {
            self.inner.hard_link(from, to)
        }
        fn unlink(&self, name: &str) -> io::Result<()> {
            self.inner.unlink(name)
        }
        fn sync(&self) -> io::Result<()> {
            self.inner.sync()
        }
        fn list(&self) -> io::Result<Vec<DirEntry>> {
            self.inner.list()
        }
        fn open_read(&self, name: &str) -> io::Result<FileBytes> {
            self.inner.open_read(name)
        }
        fn lock_exclusive(&self, name: &str) -> io::Result<Box<dyn DirLock>> {
            self.inner.lock_exclusive(name)
        }
    }
}

#[test]
fn a_write_accepting_zero_bytes_or_claiming_too_many_is_an_error_not_a_hang_or_panic() {
    use snapseal_persist::fs::FileSystem;
    use snapseal_persist::internals::SnapshotWriter;
    type Claim = fn(usize) -> usize;
    let cases: [(Claim, std::io::ErrorKind); 2] = [
        (|_| 0, std::io::ErrorKind::WriteZero),
        (|n| n + 1, std::io::ErrorKind::InvalidData),
    ];
    for (claim, kind) in cases {
        let sim = SimFs::new(2);
        let inner = sim.open_dir(dir(), true).unwrap();
        let writer = SnapshotWriter::new(std::sync::Arc::new(misbehaving::Dir { inner, claim }));
        match writer.persist(&next().request()) {
            Err(PersistError::Io {
                step: Step::Write,
                source,
                ..
            }) => assert_eq!(source.kind(), kind),
            other => panic!("{kind:?}: {other:?}"),
        }
        assert_no_trace_of_next(&sim, "misbehaving write");
        assert_eq!(sim.open_files(), 0);
    }
}

/// A persist of a large body starts the writeback of every 16 MiB written (so the device
/// works while the rest is copied and the fsync waits for little), and still commits.
#[test]
fn a_large_persist_starts_writeback_every_16_mib_and_commits() {
    let sim = SimFs::new(1);
    let store = open(&sim, opts());
    let snap = Snap::new(40, 40 << 20);
    store.persist(&snap.request()).unwrap();
    let hints = sim.trace().iter().filter(|r| r.op == Op::Writeback).count();
    assert_eq!(hints, 2, "at 16 and 32 MiB of a 40 MiB file");
    assert_eq!(names_in(&sim, FileState::Committed), vec![snap.name()]);
    let small = sim.trace().len();
    store.persist(&after().request()).unwrap();
    let more = sim.trace()[small..]
        .iter()
        .filter(|r| r.op == Op::Writeback)
        .count();
    assert_eq!(more, 0, "a body under 16 MiB is written without a hint");
}

/// A failed writeback start (anything but "not supported here") is an I/O error of the file:
/// the persist fails naming that step, leaves no file, and the store goes on.
#[test]
fn a_failed_writeback_start_fails_the_persist_and_leaves_nothing() {
    let sim = SimFs::new(1);
    let store = open(&sim, opts());
    let snap = Snap::new(40, 40 << 20);
    sim.inject(Fault::nth(Op::Writeback, 1, FaultKind::Eio));
    let err = store.persist(&snap.request()).unwrap_err();
    assert!(
        matches!(
            &err,
            PersistError::Io {
                step: Step::Writeback,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("start writeback"), "{err}");
    for state in [FileState::Uncommitted, FileState::Committed] {
        assert!(
            !sim.names(dir()).contains(&snap.file_name(state)),
            "{:?}",
            sim.names(dir())
        );
    }
    sim.clear_faults();
    store.persist(&after().request()).unwrap();
    assert_eq!(names_in(&sim, FileState::Committed), vec![after().name()]);
}
