//! Crash at every step of a persist, for many seeds: the store always recovers to the
//! previous snapshot or the new one, never to a partial or unverifiable committed file, and a
//! persist that returned Ok survives.
//!
//! SNAPSEAL_CRASH_SEEDS=<n> raises the number of seeds (default 64).

use std::sync::OnceLock;

use crate::fixture::*;
use snapseal_persist::fs::SimFs;
use snapseal_persist::fs::{Fault, FaultKind, Op};
use snapseal_persist::internals::verify_bytes;
use snapseal_persist::{FileState, SnapshotStore, StoreOptions};

/// The variations of the sequence under test.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// The plain sequence: create, write, fsync, close, rename, dir fsync, retention.
    Plain,
    /// No RENAME_NOREPLACE: link + unlink instead.
    LinkFallback,
    /// A stale uncommitted file of the same name is in the way.
    StaleInTheWay,
    /// keep_last 1: retention deletes the previous snapshot after the commit.
    RetentionDeletes,
    /// The first six writes are short, so the header goes out in pieces.
    ShortWrites,
}

const SCENARIOS: [Scenario; 5] = [
    Scenario::Plain,
    Scenario::LinkFallback,
    Scenario::StaleInTheWay,
    Scenario::RetentionDeletes,
    Scenario::ShortWrites,
];

fn seeds() -> u64 {
    std::env::var("SNAPSEAL_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

// Built once: signing a receipt is slow in debug builds and the loops below need these a lot.
fn previous() -> &'static Snap {
    static SNAP: OnceLock<Snap> = OnceLock::new();
    SNAP.get_or_init(|| Snap::new(10, 3000))
}

fn next() -> &'static Snap {
    static SNAP: OnceLock<Snap> = OnceLock::new();
    SNAP.get_or_init(|| Snap::new(20, 5000))
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
        Scenario::StaleInTheWay => sim.plant_file(
            dir(),
            &next().file_name(FileState::Uncommitted),
            b"half a snapshot",
            true,
        ),
        Scenario::ShortWrites => {
            // A short write never finishes its buffer, so all six land on the 160-byte header
            // and the number of calls is the same for every seed (only the cut points vary).
            for n in 1..=6 {
                sim.inject(Fault::nth(Op::Write, n, FaultKind::ShortWrite));
            }
        }
        _ => {}
    }
    (sim, store)
}

/// Number of seam calls one persist of `next()` makes (with retention), on a dry run.
fn sequence_len(scenario: Scenario) -> u64 {
    let (sim, store) = setup(0, scenario);
    let before = sim.op_count();
    store.persist(&next().request()).unwrap();
    sim.op_count() - before
}

#[test]
fn a_crash_at_any_step_recovers_to_the_previous_or_the_new_snapshot() {
    let seeds = seeds();
    let mut outcomes = [0u32; 2]; // how often recovery found [previous, next]
    for scenario in SCENARIOS {
        let n = sequence_len(scenario);
        assert!(
            n >= 9,
            "{scenario:?}: suspiciously short sequence ({n} calls)"
        );
        for seed in 0..seeds {
            for k in 0..=n {
                let ctx = format!("{scenario:?} seed {seed} halt after {k} of {n}");
                let (sim, store) = setup(seed, scenario);
                sim.halt_after(k);
                let result = store.persist(&next().request());
                if k == n {
                    assert!(
                        result.is_ok(),
                        "{ctx}: the full sequence must succeed: {result:?}"
                    );
                }
                drop(store);
                sim.crash();
                sim.clear_faults();

                // Before any recovery: every committed file that exists verifies. A crash
                // must never produce a partial committed file.
                for name in names_in(&sim, FileState::Committed) {
                    let bytes = sim.read(dir(), &name.file_name()).unwrap();
                    verify_bytes(&bytes, Some(&name), &*verifier())
                        .unwrap_or_else(|e| panic!("{ctx}: {name} does not verify: {e}"));
                    assert!(
                        name == previous().name() || name == next().name(),
                        "{ctx}: unexpected {name}"
                    );
                }
                if result.is_ok() {
                    assert!(
                        names_in(&sim, FileState::Committed).contains(&next().name()),
                        "{ctx}: persist returned Ok but the new snapshot did not survive"
                    );
                }

                let store = open(&sim, options(scenario));
                assert!(
                    names_in(&sim, FileState::Uncommitted).is_empty(),
                    "{ctx}: stale uncommitted files left after open: {:?}",
                    sim.names(dir())
                );
                let latest = store.latest().unwrap().expect("a snapshot must be found");
                let got = *latest.name();
                assert!(
                    got == previous().name() || got == next().name(),
                    "{ctx}: latest is {got}"
                );
                if result.is_ok() {
                    assert_eq!(got, next().name(), "{ctx}: committed snapshot not latest");
                    assert_eq!(latest.read_body().unwrap(), &next().body[..], "{ctx}");
                } else {
                    let expect = if got == next().name() {
                        next()
                    } else {
                        previous()
                    };
                    assert_eq!(latest.read_body().unwrap(), &expect.body[..], "{ctx}");
                }
                outcomes[usize::from(got == next().name())] += 1;
                assert!(
                    names_in(&sim, FileState::Corrupt).is_empty(),
                    "{ctx}: something was quarantined: {:?}",
                    sim.names(dir())
                );
                assert_eq!(store.stats().quarantined, 0, "{ctx}");
            }
        }
    }
    // Both recoveries happen: the test would be vacuous if crashes never lost the new one.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "outcomes {outcomes:?}");
}

#[test]
fn the_dry_run_sequence_is_the_spec_sequence() {
    use snapseal_persist::fs::Outcome;
    let (sim, store) = setup(0, Scenario::Plain);
    sim.clear_trace();
    store.persist(&next().request()).unwrap();
    let ops: Vec<Op> = sim.trace().iter().map(|r| r.op).collect();
    assert_eq!(
        ops,
        [
            Op::List, // refuse an existing committed name
            Op::CreateNew,
            Op::Write, // header
            Op::Write, // body
            Op::Write, // receipt
            Op::Sync,
            Op::Close,
            Op::Rename,
            Op::SyncDir,
            Op::List, // retention
        ]
    );
    let trace = sim.trace();
    assert_eq!(trace[1].name.as_deref(), Some("snapshot_20_21"));
    assert_eq!(trace[7].to.as_deref(), Some("snapshot_20_21.committed"));
    assert!(trace.iter().all(|r| r.outcome != Outcome::Failed(None)));
}
