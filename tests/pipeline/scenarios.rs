//! The CCF-style Snapshotter scenarios (issue 4), each run twice: on the manual executor over
//! SimFs (deterministic) and on the threaded engine over a real temporary directory.
//!
//! Every scenario scripts the ledger by hand so it can check the state after each single step:
//! the gate must open exactly when SPEC §3 says, not one step earlier.

use std::time::Duration;

use crate::common::{Env, Exec};
use snapseal::SnapshotEvent;
use snapseal::SnapshotterConfig;

fn cfg(tx_interval: u64) -> SnapshotterConfig {
    SnapshotterConfig {
        tx_interval,
        ..SnapshotterConfig::default()
    }
}

fn both(scenario: fn(Exec)) {
    scenario(Exec::Manual(7));
    scenario(Exec::Threaded);
}

#[test]
fn nothing_is_due_before_the_interval() {
    both(|exec| {
        let mut env = Env::new(exec, cfg(10));
        env.writes(4);
        assert!(!env.sign(), "signature at 5 is before the interval");
        env.commit_last_sig();
        env.writes(3);
        assert!(!env.sign(), "signature at 9 is before the interval");
        env.commit_last_sig();
        env.settle();
        assert_eq!(env.snap.counters().scheduled, 0);
        assert!(env.committed_names().is_empty());
    });
}

#[test]
fn snapshot_persists_only_after_evidence_and_a_committed_signature() {
    both(|exec| {
        let mut env = Env::new(exec, cfg(10));
        env.writes(19);
        assert!(env.sign(), "signature at 20 is a snapshot point");
        assert_eq!(env.ledger.last_idx(), 20);
        env.commit(20);
        env.settle();
        assert_eq!(env.snap.counters().scheduled, 1);
        assert!(
            env.committed_names().is_empty(),
            "serialised, but no evidence yet"
        );

        let evidence = env.append_evidence();
        assert_eq!(evidence, vec![(21, 20)]);
        env.settle();
        assert!(
            env.committed_names().is_empty(),
            "evidence but no signature"
        );

        assert!(!env.sign(), "signature at 22");
        env.settle();
        assert!(
            env.committed_names().is_empty(),
            "signature at 22 not committed yet"
        );
        env.commit(21);
        env.settle();
        assert!(env.committed_names().is_empty(), "commit 21 < signature 22");
        env.commit(22);
        env.settle();
        assert_eq!(
            env.committed_names(),
            vec!["snapshot_20_21.committed".to_string()]
        );
        env.assert_all_verify();
        let events = env.events();
        assert!(
            matches!(&events[..], [SnapshotEvent::Committed(c)] if c.idx == 20 && c.evidence_idx == 21 && c.sig_idx == 22)
        );
    });
}

#[test]
fn the_second_snapshot_comes_at_thirty() {
    both(|exec| {
        let mut env = Env::new(exec, cfg(10));
        env.full_snapshot_cycle(19); // snapshot at 20, evidence 21, signature 22 committed
        env.writes(7); // 23..=29
        assert!(env.sign(), "signature at 30 is due: 30 - 20 >= 10");
        env.commit(30);
        env.settle();
        env.append_evidence();
        env.sign();
        env.commit(env.ledger.last_idx());
        env.settle();
        assert_eq!(
            env.committed_names(),
            vec![
                "snapshot_20_21.committed".to_string(),
                "snapshot_30_31.committed".to_string()
            ]
        );
        env.assert_all_verify();
    });
}

#[test]
fn rollback_before_commit_then_resnapshot() {
    both(|exec| {
        let mut env = Env::new(exec, cfg(10));
        env.writes(19);
        assert!(env.sign());
        env.rollback(15);
        assert_eq!(
            env.snap.baseline(),
            0,
            "the point at 20 went with the rollback"
        );
        env.commit(15);
        env.settle();
        assert_eq!(env.snap.counters().scheduled, 0);
        env.writes(4); // 16..=19
        assert!(env.sign(), "20 is due again");
        env.commit(20);
        env.settle();
        env.append_evidence();
        env.sign();
        env.commit(22);
        env.settle();
        assert_eq!(
            env.committed_names(),
            vec!["snapshot_20_21.committed".to_string()]
        );
        env.assert_all_verify();
    });
}

#[test]
fn rollback_drops_a_generation_without_surviving_evidence_and_leaves_no_file() {
    both(|exec| {
        let mut env = Env::new(exec, cfg(10));
        env.writes(19);
        env.sign();
        env.commit(20);
        env.settle();
        env.append_evidence(); // evidence at 21
        env.rollback(20); // the evidence tx is gone
        assert!(env.snap.pending().is_empty());
        assert_eq!(env.snap.counters().dropped, 1);
        env.settle();
        assert!(env.committed_names().is_empty());
        // The state at 20 survived the rollback, so 20 is snapshotted again.
        env.commit(20);
        env.settle();
        let ev = env.append_evidence();
        assert_eq!(ev, vec![(21, 20)]);
        env.sign();
        env.commit(22);
        env.settle();
        assert_eq!(
            env.committed_names(),
            vec!["snapshot_20_21.committed".to_string()]
        );
        assert_eq!(env.snap.counters().scheduled, 2);
    });
}

#[test]
fn forced_snapshot_ignores_the_interval() {
    both(|exec| {
        let mut env = Env::new(exec, cfg(1000));
        env.writes(4);
        env.snap.trigger_snapshot();
        assert!(env.sign(), "forced point at 5");
        env.commit(5);
        env.settle();
        env.append_evidence();
        env.sign();
        env.commit(7);
        env.settle();
        assert_eq!(
            env.committed_names(),
            vec!["snapshot_5_6.committed".to_string()]
        );
        env.assert_all_verify();
    });
}

#[test]
fn rollback_after_a_forced_snapshot_keeps_the_right_baseline() {
    both(|exec| {
        let mut env = Env::new(exec, cfg(10));
        env.writes(9);
        assert!(env.sign(), "point at 10");
        env.commit(10);
        env.settle();
        assert_eq!(env.snap.baseline(), 10);
        env.append_evidence(); // 11
        env.writes(1); // 12
        env.snap.trigger_snapshot();
        assert!(env.sign(), "forced point at 13");
        assert_eq!(env.snap.baseline(), 13);
        env.rollback(12);
        assert_eq!(
            env.snap.baseline(),
            10,
            "baseline falls back to the surviving point"
        );
        env.writes(6); // 13..=18
        assert!(!env.sign(), "19 - 10 < 10");
        assert!(env.sign(), "20 - 10 >= 10");
    });
}

#[test]
fn max_pending_skips_due_points() {
    both(|exec| {
        let mut env = Env::new(
            exec,
            SnapshotterConfig {
                tx_interval: 10,
                max_pending: 1,
                ..Default::default()
            },
        );
        env.writes(9);
        env.sign();
        env.commit(10);
        env.settle(); // generation at 10 pending: its evidence is never appended here
        env.writes(9);
        assert!(env.sign(), "20 is due");
        env.commit(20);
        env.settle();
        let c = env.snap.counters();
        assert_eq!((c.scheduled, c.skipped), (1, 1));
        assert!(env
            .events()
            .iter()
            .any(|e| matches!(e, SnapshotEvent::Skipped { idx: 20 })));
    });
}

#[test]
fn cooldown_defers_and_retries_after_it() {
    // Cooldown runs on the engine clock: only the manual executor controls it exactly.
    let mut env = Env::new(
        Exec::Manual(3),
        SnapshotterConfig {
            tx_interval: 10,
            cooldown: Some(Duration::from_secs(10)),
            ..Default::default()
        },
    );
    env.writes(9);
    env.sign();
    env.commit(10);
    env.settle();
    env.append_evidence(); // 11
    env.tasks.tick(Duration::from_secs(5));
    env.writes(8); // 12..=19
    assert!(env.sign(), "20 is due");
    env.commit(20);
    assert_eq!(
        env.snap.counters().scheduled,
        1,
        "inside the cooldown: deferred"
    );
    assert_eq!(env.snap.counters().deferred, 1);
    env.commit(20);
    assert_eq!(
        env.snap.counters().deferred,
        1,
        "a deferral is counted once"
    );
    env.tasks.tick(Duration::from_secs(6));
    env.commit(20);
    assert_eq!(
        env.snap.counters().scheduled,
        2,
        "retried at the next commit after the cooldown"
    );
    env.settle();
    // The signature at 20 covered the evidence at 11, so generation 10 persisted meanwhile.
    assert_eq!(
        env.snap.pending().iter().map(|g| g.idx).collect::<Vec<_>>(),
        vec![20]
    );
    assert_eq!(env.snap.counters().persisted, 1);
}

#[test]
fn a_signature_at_or_before_the_evidence_is_ignored() {
    both(|exec| {
        let mut env = Env::new(exec, cfg(10));
        env.writes(19);
        env.sign();
        env.commit(20);
        env.settle();
        let stale = env.ledger_signature_at(20);
        env.append_evidence(); // 21
        env.snap.record_signature(stale);
        env.snap.record_tree(20, env.ledger.proofs());
        env.commit(21);
        env.settle();
        assert_eq!(env.snap.pending()[0].sig_idx, None);
        assert!(env.committed_names().is_empty());
    });
}

#[test]
fn a_persisted_generation_is_never_persisted_again() {
    both(|exec| {
        let mut env = Env::new(exec, cfg(10));
        env.full_snapshot_cycle(19);
        let sig = env.ledger_signature_at(22);
        for _ in 0..3 {
            env.snap.record_signature(sig.clone());
            env.snap.record_tree(22, env.ledger.proofs());
            env.commit(22);
            env.settle();
        }
        let c = env.snap.counters();
        assert_eq!((c.persisted, c.failed), (1, 0));
        let committed = env
            .events()
            .iter()
            .filter(|e| matches!(e, SnapshotEvent::Committed(_)))
            .count();
        assert_eq!(committed, 1);
    });
}

#[test]
fn compressed_snapshots_verify_and_decode_to_the_state() {
    both(|exec| {
        let mut env = Env::new(
            exec,
            SnapshotterConfig {
                tx_interval: 10,
                compression: Some(3),
                ..Default::default()
            },
        );
        env.full_snapshot_cycle(19);
        env.assert_all_verify();
        let (idx, map) = env.decode_latest();
        assert_eq!(idx, 20);
        assert_eq!(map, env.state_at(20));
    });
}
