//! Crash at every step of a spilled persist (create the pending file, stream the body, then
//! complete it: receipt, header in place, fsync, close, rename, dir fsync), for many seeds:
//! recovery always finds the previous snapshot or the new one, never a partial or
//! unverifiable committed file, never a leftover pending file; a commit that returned Ok
//! survives.
//!
//! SNAPSEAL_CRASH_SEEDS=<n> raises the number of seeds (default 64).

use std::sync::OnceLock;

use crate::fixture::*;
use snapseal_persist::fs::SimFs;
use snapseal_persist::fs::{Fault, FaultKind, Op};
use snapseal_persist::internals::verify_bytes;
use snapseal_persist::internals::PendingName;
use snapseal_persist::internals::SpillCommit;
use snapseal_persist::{Committed, FileState, PersistError, SnapshotStore, StoreOptions};

/// The variations of the spilled sequence under test.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// The plain sequence.
    Plain,
    /// No RENAME_NOREPLACE: link + unlink instead.
    LinkFallback,
    /// keep_last 1: retention deletes the previous snapshot after the commit.
    RetentionDeletes,
    /// Short writes and short pwrites: the placeholder and the header go out in pieces.
    ShortWrites,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario::Plain,
    Scenario::LinkFallback,
    Scenario::RetentionDeletes,
    Scenario::ShortWrites,
];

/// Body bytes per `write_body` call: the body goes out in three pieces.
const CHUNK: usize = 2000;
const GENERATION: u64 = 4;

fn seeds() -> u64 {
    std::env::var("SNAPSEAL_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

fn previous() -> &'static Snap {
    static SNAP: OnceLock<Snap> = OnceLock::new();
    SNAP.get_or_init(|| Snap::new(10, 3000))
}

fn next() -> &'static Snap {
    static SNAP: OnceLock<Snap> = OnceLock::new();
    SNAP.get_or_init(|| Snap::new(20, 5000))
}

fn pending_name() -> PendingName {
    PendingName {
        idx: next().idx,
        generation: GENERATION,
    }
}

/// Streams `snap`'s body into a pending file and commits it, as the Snapshotter does.
fn spill_persist(store: &SnapshotStore, snap: &Snap) -> Result<Committed, PersistError> {
    let mut spill = store.create_spill(snap.idx, GENERATION)?;
    for chunk in snap.body.chunks(CHUNK) {
        spill.write_body(chunk)?;
    }
    store.commit_spill(
        spill,
        &SpillCommit {
            evidence_idx: snap.evidence_idx,
            flags: snapseal_persist::Flags::NONE,
            raw_len: snap.body.len() as u64,
            body_digest: snap.digest,
            receipt: &snap.receipt,
        },
    )
}

fn options(scenario: Scenario) -> StoreOptions {
    let mut o = opts();
    if let Scenario::RetentionDeletes = scenario {
        o.keep_last = 1;
    }
    o
}

/// A store holding `previous()` committed, set up for `scenario`.
fn setup(seed: u64, scenario: Scenario) -> (SimFs, SnapshotStore) {
    let sim = SimFs::new(seed);
    let store = open(&sim, options(scenario));
    store.persist(&previous().request()).unwrap();
    match scenario {
        Scenario::LinkFallback => sim.set_rename_noreplace_supported(false),
        Scenario::ShortWrites => {
            // Each short write leaves part of its buffer, so the first three land on the
            // 160-byte placeholder and the pwrite ones on the header: the call count is the
            // same for every seed.
            for n in 1..=3 {
                sim.inject(Fault::nth(Op::Write, n, FaultKind::ShortWrite));
                sim.inject(Fault::nth(Op::WriteAt, n, FaultKind::ShortWrite));
            }
        }
        _ => {}
    }
    (sim, store)
}

/// Number of seam calls one spilled persist of `next()` makes (with retention).
fn sequence_len(scenario: Scenario) -> u64 {
    let (sim, store) = setup(0, scenario);
    let before = sim.op_count();
    spill_persist(&store, next()).unwrap();
    sim.op_count() - before
}

fn pending_files(sim: &SimFs) -> Vec<String> {
    sim.names(dir())
        .into_iter()
        .filter(|n| PendingName::parse(n).is_some())
        .collect()
}

#[test]
fn a_crash_at_any_step_of_a_spilled_persist_recovers_to_the_previous_or_the_new_snapshot() {
    let seeds = seeds();
    let mut outcomes = [0u32; 2]; // how often recovery found [previous, next]
    let mut pending_seen = 0u32;
    for scenario in SCENARIOS {
        let n = sequence_len(scenario);
        assert!(
            n >= 13,
            "{scenario:?}: suspiciously short sequence ({n} calls)"
        );
        for seed in 0..seeds {
            for k in 0..=n {
                let ctx = format!("{scenario:?} seed {seed} halt after {k} of {n}");
                let (sim, store) = setup(seed, scenario);
                sim.halt_after(k);
                let result = spill_persist(&store, next());
                if k == n {
                    assert!(
                        result.is_ok(),
                        "{ctx}: the full sequence must succeed: {result:?}"
                    );
                }
                drop(store);
                sim.crash();
                sim.clear_faults();
                pending_seen += u32::from(!pending_files(&sim).is_empty());

                // Before recovery: every committed file verifies; no partial committed file.
                for name in names_in(&sim, FileState::Committed) {
                    let bytes = sim.read(dir(), &name.file_name()).unwrap();
                    verify_bytes(&bytes, Some(&name), &*verifier())
                        .unwrap_or_else(|e| panic!("{ctx}: {name} does not verify: {e}"));
                    assert!(
                        name == previous().name() || name == next().name(),
                        "{ctx}: unexpected {name}"
                    );
                    if name == next().name() {
                        assert_eq!(bytes, next().file_bytes(), "{ctx}: not byte-identical");
                    }
                }
                if result.is_ok() {
                    assert!(
                        names_in(&sim, FileState::Committed).contains(&next().name()),
                        "{ctx}: commit returned Ok but the new snapshot did not survive"
                    );
                }

                let store = open(&sim, options(scenario));
                assert!(
                    pending_files(&sim).is_empty()
                        && names_in(&sim, FileState::Uncommitted).is_empty(),
                    "{ctx}: stale files left after open: {:?}",
                    sim.names(dir())
                );
                assert!(store.list_pending().unwrap().is_empty(), "{ctx}");
                let latest = store.latest().unwrap().expect("a snapshot must be found");
                let got = *latest.name();
                assert!(
                    got == previous().name() || got == next().name(),
                    "{ctx}: latest is {got}"
                );
                if result.is_ok() {
                    assert_eq!(got, next().name(), "{ctx}: committed snapshot not latest");
                }
                let expect = if got == next().name() {
                    next()
                } else {
                    previous()
                };
                assert_eq!(latest.read_body().unwrap(), &expect.body[..], "{ctx}");
                outcomes[usize::from(got == next().name())] += 1;
                assert!(
                    names_in(&sim, FileState::Corrupt).is_empty(),
                    "{ctx}: something was quarantined: {:?}",
                    sim.names(dir())
                );
            }
        }
    }
    // Not vacuous: crashes both lost and kept the new snapshot, and left pending files that
    // recovery had to remove.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "outcomes {outcomes:?}");
    assert!(pending_seen > 0, "no crash ever left a pending file");
}

#[test]
fn the_dry_run_spilled_sequence_is_the_spec_sequence_from_the_pending_name() {
    use snapseal_persist::fs::Outcome;
    let (sim, store) = setup(0, Scenario::Plain);
    sim.clear_trace();
    spill_persist(&store, next()).unwrap();
    let trace = sim.trace();
    let ops: Vec<Op> = trace.iter().map(|r| r.op).collect();
    assert_eq!(
        ops,
        [
            Op::CreateNew, // the pending name
            Op::Write,     // placeholder header
            Op::Write,     // body, three pieces
            Op::Write,
            Op::Write,
            Op::List,    // refuse an existing committed name
            Op::Write,   // receipt
            Op::WriteAt, // header at offset 0
            Op::Sync,
            Op::Close,
            Op::Rename,
            Op::SyncDir,
            Op::List, // retention
        ]
    );
    assert_eq!(trace[0].name.as_deref(), Some("snapshot_20.g4.pending"));
    assert_eq!(trace[10].name.as_deref(), Some("snapshot_20.g4.pending"));
    assert_eq!(trace[10].to.as_deref(), Some("snapshot_20_21.committed"));
    assert!(trace.iter().all(|r| r.outcome != Outcome::Failed(None)));
    assert_eq!(
        sim.read(dir(), &next().file_name(FileState::Committed)),
        Some(next().file_bytes()),
        "a spilled file is byte-identical to one written in one pass"
    );
    assert_eq!(pending_name().file_name(), "snapshot_20.g4.pending");
    assert!(pending_files(&sim).is_empty());
}
