//! The Snapshotter with spilled bodies (issue 7), on both executors: a body beyond the
//! in-memory budget lives in a pending file from serialisation until its persist completes
//! that file into the committed one; a rolled-back generation leaves no pending file.

use crate::common::{Env, Exec};
use snapseal::persist::internals::PendingName;
use snapseal::SnapshotterConfig;

fn cfg(spill_threshold: Option<u64>) -> SnapshotterConfig {
    SnapshotterConfig {
        tx_interval: 10,
        spill_threshold,
        ..SnapshotterConfig::default()
    }
}

fn both(scenario: fn(Exec)) {
    scenario(Exec::Manual(11));
    scenario(Exec::Threaded);
}

fn pending(env: &Env) -> Vec<PendingName> {
    env.store
        .list_pending()
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect()
}

#[test]
fn a_spilled_body_waits_in_a_pending_file_and_commits_byte_for_byte() {
    both(|exec| {
        let mut env = Env::new(exec, cfg(Some(0)));
        env.writes(19);
        assert!(env.sign());
        env.commit(20);
        env.settle();
        assert_eq!(
            pending(&env),
            vec![PendingName {
                idx: 20,
                generation: 0
            }],
            "the serialised body is on disk, not in memory"
        );
        assert!(env.committed_names().is_empty());
        env.append_evidence();
        env.sign();
        env.commit(22);
        env.settle();
        assert_eq!(
            env.committed_names(),
            vec!["snapshot_20_21.committed".to_string()]
        );
        assert!(
            pending(&env).is_empty(),
            "the pending file became the snapshot"
        );
        env.assert_all_verify();
        assert_eq!(env.decode_latest(), (20, env.state_at(20)));
    });
}

#[test]
fn a_rolled_back_spilled_generation_leaves_no_pending_file() {
    both(|exec| {
        let mut env = Env::new(exec, cfg(Some(0)));
        env.writes(19);
        env.sign();
        env.commit(20);
        env.settle();
        assert_eq!(pending(&env).len(), 1);
        env.append_evidence(); // evidence at 21
        let ops_before = env.sim.as_ref().map(|sim| sim.op_count());
        // The evidence tx is gone: the generation is dropped. The consensus thread does no
        // file I/O for it: removing the pending file is a task on the engine.
        env.rollback(20);
        assert_eq!(env.sim.as_ref().map(|sim| sim.op_count()), ops_before);
        env.settle();
        assert!(pending(&env).is_empty(), "{:?}", pending(&env));
        assert!(env.committed_names().is_empty());
        // The state at 20 is snapshotted again, as a new generation with its own file.
        env.commit(20);
        env.settle();
        assert_eq!(
            pending(&env),
            vec![PendingName {
                idx: 20,
                generation: 1
            }]
        );
    });
}

#[test]
fn without_a_budget_nothing_spills_and_with_a_large_one_small_bodies_stay_in_memory() {
    for threshold in [None, Some(1 << 30)] {
        let mut env = Env::new(Exec::Manual(3), cfg(threshold));
        env.writes(19);
        env.sign();
        env.commit(20);
        env.settle();
        assert_eq!(env.snap.pending().len(), 1);
        assert!(pending(&env).is_empty(), "{threshold:?}");
        env.append_evidence();
        env.sign();
        env.commit(22);
        env.settle();
        assert_eq!(env.committed_names().len(), 1, "{threshold:?}");
        env.assert_all_verify();
    }
}
