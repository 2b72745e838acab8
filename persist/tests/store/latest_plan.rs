//! The read model: `classify_dir` and `plan_latest` see a directory as the store does,
//! without the lock and without changing anything; `latest()` carries out the same plan.

use crate::fixture::{self, dir, plant, Snap};
use snapseal_persist::fs::{FileSystem, SimFs};
use snapseal_persist::internals::{
    classify_dir, plan_latest, EntryClass, PassOverReason, PendingName,
};
use snapseal_persist::{FileState, SnapshotName};

fn name(idx: u64, state: FileState) -> SnapshotName {
    SnapshotName {
        idx,
        evidence_idx: idx + 1,
        state,
    }
}

/// good 1, good 2, damaged 3 (committed), uncommitted 4, pending 5, a foreign file.
fn setup() -> SimFs {
    let sim = SimFs::new(11);
    sim.open_dir(dir(), true).unwrap();
    plant(&sim, &Snap::new(1, 100));
    plant(&sim, &Snap::new(2, 100));
    let mut bad = Snap::new(3, 100).file_bytes();
    let last = bad.len() - 200;
    bad[last] ^= 0xff;
    sim.plant_file(
        dir(),
        &name(3, FileState::Committed).file_name(),
        &bad,
        true,
    );
    sim.plant_file(
        dir(),
        &name(4, FileState::Uncommitted).file_name(),
        b"half",
        true,
    );
    let pending = PendingName {
        idx: 5,
        generation: 1,
    };
    sim.plant_file(dir(), &pending.file_name(), b"body so far", true);
    sim.plant_file(dir(), "notes.txt", b"operator notes", true);
    sim
}

#[test]
fn classify_dir_names_every_entry() {
    let sim = setup();
    let handle = sim.open_dir(dir(), false).unwrap();
    let listed = classify_dir(&*handle).unwrap();
    let classes: Vec<EntryClass> = listed.iter().map(|e| e.class).collect();
    assert_eq!(
        classes,
        [
            EntryClass::Snapshot(name(1, FileState::Committed)),
            EntryClass::Snapshot(name(2, FileState::Committed)),
            EntryClass::Snapshot(name(3, FileState::Committed)),
            EntryClass::Snapshot(name(4, FileState::Uncommitted)),
            EntryClass::Pending(PendingName {
                idx: 5,
                generation: 1
            }),
            EntryClass::Foreign,
        ]
    );
    assert_eq!(listed[4].len, b"body so far".len() as u64);
}

#[test]
fn plan_latest_reports_without_changing_anything_and_latest_carries_it_out() {
    let sim = setup();
    let before = sim.names(dir());
    let handle = sim.open_dir(dir(), false).unwrap();
    let plan = plan_latest(&*handle, &fixture::real_verifier()).unwrap();
    assert_eq!(
        plan.chosen.as_ref().map(|f| *f.name()),
        Some(name(2, FileState::Committed))
    );
    let passed: Vec<(&str, bool, bool)> = plan
        .passed_over
        .iter()
        .map(|p| {
            (
                p.file_name.as_str(),
                p.would_quarantine(),
                p.removed_at_open(),
            )
        })
        .collect();
    assert_eq!(
        passed,
        [
            ("snapshot_4_5", false, true),
            ("snapshot_3_4.committed", true, false),
            ("snapshot_5.g1.pending", false, true),
        ]
    );
    assert!(matches!(
        plan.passed_over[1].reason,
        PassOverReason::Failed(_)
    ));
    assert_eq!(sim.names(dir()), before, "planning changes nothing");
    drop(plan);

    // The store does what the plan said: quarantines 3, returns 2.
    let store = fixture::open(&sim, fixture::opts());
    let store_plan = store.plan_latest().unwrap();
    assert_eq!(
        store_plan.chosen.as_ref().map(|f| *f.name()),
        Some(name(2, FileState::Committed))
    );
    assert!(store_plan.chosen.as_ref().unwrap().hold().is_some());
    drop(store_plan);
    let latest = store.latest().unwrap().expect("a snapshot");
    assert_eq!(*latest.name(), name(2, FileState::Committed));
    assert_eq!(
        fixture::names_in(&sim, FileState::Corrupt),
        [name(3, FileState::Corrupt)]
    );
}
