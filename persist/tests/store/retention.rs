//! Retention rules as properties, over random directories (good snapshots and junk under
//! committed names), holds and options: only snapshots that verify count, the newest of them
//! always stays, junk goes to quarantine, nothing held is deleted, at most keep_last are kept, the byte
//! limit holds unless only the newest is left, deletions are the oldest, and applying the
//! plan deletes exactly what it said.

use std::collections::BTreeSet;

use crate::fixture::*;
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
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn retention_rules_hold(
        files in prop::collection::btree_map((1u64..40, 0u64..4), (1usize..3000, prop::bool::weighted(0.25)), 0..10),
        held_picks in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        keep_last in 1usize..6,
        max_bytes in prop::option::of(1u64..20_000),
    ) {
        let sim = SimFs::new(9);
        let mut junk = BTreeSet::new();
        for (&(idx, d), &(len, is_junk)) in &files {
            let ev = idx + 1 + d;
            if is_junk {
                // Junk under a committed name: must never count toward keep_last.
                sim.plant_file(dir(), &name(idx, ev).file_name(), &vec![0; len], true);
                junk.insert(name(idx, ev));
            } else {
                plant(&sim, &Snap::with_evidence(idx, ev, len));
            }
        }
        let mut o = opts();
        o.keep_last = keep_last;
        o.max_bytes = max_bytes;
        o.max_quarantined = 100;
        let store = open(&sim, o);
        let all: Vec<SnapshotName> =
            files.keys().map(|&(i, d)| name(i, i + 1 + d)).collect();
        let good: BTreeSet<SnapshotName> =
            all.iter().filter(|n| !junk.contains(n)).copied().collect();
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
        let quarantine: BTreeSet<_> = plan.quarantine.iter().map(|e| e.name).collect();
        prop_assert!(plan.unverified.is_empty(), "every file here is good or junk");

        // A partition of what is there.
        prop_assert_eq!(
            keep.len() + delete.len() + spared.len() + quarantine.len(),
            all.len()
        );
        let union: BTreeSet<_> = keep
            .union(&delete)
            .chain(spared.iter())
            .chain(quarantine.iter())
            .copied()
            .collect();
        prop_assert_eq!(union, all.iter().copied().collect::<BTreeSet<_>>());
        // Only snapshots that verify are kept, and the newest of them always is.
        prop_assert!(keep.is_subset(&good));
        prop_assert!(quarantine.is_subset(&junk));
        if let Some(newest_good) = good.iter().max() {
            prop_assert!(keep.contains(newest_good));
        } else {
            prop_assert!(delete.is_empty() && spared.is_empty(), "nothing verifies: nothing dropped");
        }
        // keep_last counts good snapshots: fewer kept only when fewer good ones exist.
        prop_assert!(keep.len() <= keep_last);
        if max_bytes.is_none() {
            prop_assert_eq!(keep.len(), keep_last.min(good.len()));
        }
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

        let newest_good = good.iter().max().copied();
        let report = store.apply_retention().unwrap();
        prop_assert_eq!(report.deleted.iter().copied().collect::<BTreeSet<_>>(), delete.clone());
        prop_assert_eq!(report.quarantined.iter().copied().collect::<BTreeSet<_>>(), quarantine.clone());
        let left: BTreeSet<_> = names_in(&sim, FileState::Committed).into_iter().collect();
        prop_assert_eq!(left.clone(), keep.union(&spared).copied().collect::<BTreeSet<_>>());
        if let Some(n) = newest_good {
            prop_assert!(left.contains(&n), "the newest snapshot that verifies was removed");
        }

        // Released holds are collected by the next pass, and that pass is then stable.
        drop(holds);
        store.apply_retention().unwrap();
        let again = store.retention_plan().unwrap();
        prop_assert!(again.delete.is_empty() && again.held.is_empty() && again.quarantine.is_empty());
    }
}
