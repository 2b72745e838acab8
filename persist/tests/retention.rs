//! Retention rules as properties, over random directories, holds and options: the newest
//! snapshot always stays, nothing held is deleted, at most keep_last are kept, the byte
//! limit holds unless only the newest is left, deletions are the oldest, and applying the
//! plan deletes exactly what it said.

mod fixture;

use std::collections::BTreeSet;

use fixture::*;
use proptest::prelude::*;
use snapseal_persist::fs::SimFs;
use snapseal_persist::{FileState, SnapshotName};

fn name(idx: u64, ev: u64) -> SnapshotName {
    SnapshotName {
        idx,
        evidence_idx: ev,
        state: FileState::Committed,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn retention_rules_hold(
        files in prop::collection::btree_map((0u64..40, 0u64..4), 1u64..5000, 0..12),
        held_picks in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        keep_last in 1usize..6,
        max_bytes in prop::option::of(1u64..20_000),
    ) {
        let sim = SimFs::new(9);
        for (&(idx, ev), &len) in &files {
            sim.plant_file(dir(), &name(idx, ev).file_name(), &vec![0; len as usize], true);
        }
        let mut o = opts();
        o.keep_last = keep_last;
        o.max_bytes = max_bytes;
        let store = open(&sim, o);
        let all: Vec<SnapshotName> = files.keys().map(|&(i, e)| name(i, e)).collect();
        let mut holds = Vec::new();
        if !all.is_empty() {
            for pick in &held_picks {
                holds.push(store.hold(&all[pick.index(all.len())]).unwrap());
            }
        }
        let held: BTreeSet<SnapshotName> = holds.iter().map(|h| h.name()).collect();

        let plan = store.retention_plan().unwrap();
        let keep: BTreeSet<_> = plan.keep.iter().map(|e| e.name).collect();
        let delete: BTreeSet<_> = plan.delete.iter().map(|e| e.name).collect();
        let spared: BTreeSet<_> = plan.held.iter().map(|e| e.name).collect();

        // A partition of what is there.
        prop_assert_eq!(keep.len() + delete.len() + spared.len(), all.len());
        let union: BTreeSet<_> = keep.union(&delete).chain(spared.iter()).copied().collect();
        prop_assert_eq!(union, all.iter().copied().collect::<BTreeSet<_>>());
        // The newest stays.
        if let Some(newest) = all.iter().max() {
            prop_assert!(keep.contains(newest));
        }
        prop_assert!(keep.len() <= keep_last);
        prop_assert!(delete.is_disjoint(&held));
        prop_assert!(spared.is_subset(&held));
        if let Some(max) = max_bytes {
            let kept: u64 = plan.keep.iter().map(|e| e.len).sum();
            prop_assert!(kept <= max || keep.len() == 1, "kept {} > {}", kept, max);
        }
        // Only older snapshots than every kept one are dropped.
        if let Some(oldest_kept) = keep.iter().min() {
            prop_assert!(delete.iter().chain(spared.iter()).all(|d| d < oldest_kept));
        }

        let report = store.apply_retention().unwrap();
        prop_assert_eq!(report.deleted.iter().copied().collect::<BTreeSet<_>>(), delete.clone());
        let left: BTreeSet<_> = names_in(&sim, FileState::Committed).into_iter().collect();
        prop_assert_eq!(left, keep.union(&spared).copied().collect::<BTreeSet<_>>());

        // Released holds are collected by the next pass, and that pass is then stable.
        drop(holds);
        store.apply_retention().unwrap();
        let again = store.retention_plan().unwrap();
        prop_assert!(again.delete.is_empty() && again.held.is_empty());
    }
}
