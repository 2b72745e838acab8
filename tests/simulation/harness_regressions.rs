//! Bugs the simulation harness found, each pinned by a deterministic test that drives the
//! public API directly (no seed involved), so it keeps failing until the bug is fixed.

use std::path::Path;
use std::sync::Arc;

use snapseal::persist::fs::SimFs;
use snapseal::persist::receipt::Ed25519Verifier;
use snapseal::persist::{SnapshotStore, StoreOptions};
use snapseal::{Snapshotter, SnapshotterConfig, TaskSystem};
use snapseal_sim::harness::{Harness, HarnessConfig, Op};
use snapseal_sim::ledger::{Ledger, TxKind};
use snapseal_sim::node::{ChannelSink, KvState};

fn writes(ledger: &Ledger, n: u64) {
    for _ in 0..n {
        let k = ledger.last_idx() + 1;
        ledger.append(TxKind::Write {
            key: k,
            value: Arc::from(k.to_le_bytes().to_vec()),
        });
    }
}

/// Serialisations of different generations finish in any order (their queues run in
/// parallel), and the node appends each evidence tx when its request arrives. So generation 0
/// may get its evidence *after* generation 1. A rollback that removes generation 0's evidence
/// but keeps generation 1's must still drop generation 0: its `evidence_idx` now points at
/// whatever tx the ledger puts there next.
///
/// Failed before the fix: `Snapshotter::rollback` stopped at the newest generation whose
/// evidence survives, as SPEC §3 call 5 literally said, and kept older generations with
/// dangling evidence. The simulation sweep found it (`SNAPSEAL_SEED=4 cargo test --test
/// simulation -- --exact harness_seeds::replay` then scheduled a persist whose "evidence" was a
/// signature tx).
#[test]
fn rollback_drops_every_generation_whose_evidence_is_gone() {
    let ledger = Ledger::from_seed(3);
    let sim = SimFs::new(3);
    let verifier = Arc::new(Ed25519Verifier::new(vec![ledger.verifying_key()]));
    let store = Arc::new(
        SnapshotStore::open(Arc::new(sim), Path::new("/s"), StoreOptions::new(verifier))
            .expect("store opens"),
    );
    let tasks = TaskSystem::manual_fifo();
    let (sink, evidence_rx) = ChannelSink::new();
    let cfg = SnapshotterConfig {
        tx_interval: 10,
        ..SnapshotterConfig::default()
    };
    let state = Arc::new(KvState::new(ledger.clone()));
    let mut snap =
        Snapshotter::new(cfg, tasks.clone(), store, state, Arc::new(sink)).expect("valid");

    // Generations 0 (at 10) and 1 (at 20), both serialised.
    for _ in 0..2 {
        writes(&ledger, 9);
        let signed = ledger.append_signature();
        assert!(snap.record_committable(signed.sig_idx));
        snap.record_signature(signed.clone());
        snap.record_tree(signed.sig_idx, ledger.proofs());
        snap.commit(signed.sig_idx);
    }
    tasks.run_until_idle();
    let mut requests: Vec<_> = evidence_rx.try_iter().collect();
    assert_eq!(
        requests.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![10, 20]
    );

    // Generation 1's request arrived first: its evidence is at 21, generation 0's at 22.
    requests.reverse();
    for (snapshot_idx, digest) in requests {
        let e = ledger.append(TxKind::Evidence {
            snapshot_idx,
            digest,
        });
        snap.record_evidence(e, snapshot_idx, digest).unwrap();
    }
    let evidence: Vec<_> = snap.pending().iter().map(|g| g.evidence_idx).collect();
    assert_eq!(evidence, vec![Some(22), Some(21)]);

    // Roll back to 21: the evidence at 22 is gone.
    ledger.truncate(21);
    snap.rollback(21);
    for g in snap.pending() {
        assert!(
            g.evidence_idx.is_none_or(|e| e <= 21),
            "generation {} kept evidence {:?} that the rollback to 21 removed",
            g.generation,
            g.evidence_idx
        );
    }
}

/// SPEC §3 call 5: a rollback to `idx` drops the candidate points *after* `idx`; the interval
/// then counts from the newest point that survived. Here the point at 5 was skipped
/// (`max_pending` 1, generation 0 pending at 1) and survives a rollback to 6 (which takes the
/// point at 10), so the next signature at 7 is not due (7 - 5 < 3).
///
/// Failed before the fix: `Points::prune` (actors/src/points.rs) had already forgotten the skipped point,
/// so `Points::rollback` emptied the list and fell back to `last_persisted_idx` / pending
/// generations (0 here; generation 0 was just dropped), and the re-armed point 1 becomes the
/// baseline: 7 was reported due. Prune now keeps the newest point at or below the commit index.
/// Effect: an earlier, extra snapshot after such a rollback (no safety impact). Found by the
/// model-based test ([`model_snapshotter`](crate::model_snapshotter), 20 000 cases), shrunk to
/// these ops.
#[test]
fn a_rollback_keeps_a_skipped_point_as_the_baseline() {
    let cfg = HarnessConfig {
        tx_interval: 3,
        max_pending: 1,
        keep_last: 1,
        fifo: true,
        ..HarnessConfig::default()
    };
    let mut h = Harness::new(5, cfg).expect("starts");
    let ops = [
        Op::Trigger,
        Op::Sign,        // 1: forced point
        Op::Append(2),   // 2..=4
        Op::Sign,        // 5: 5 - 1 >= 3, a point
        Op::Sign,        // 6
        Op::Append(2),   // 7..=9
        Op::Sign,        // 10: 10 - 5 >= 3, a point
        Op::Commit(1),   // the second-newest signature, 6: generation 0 at 1; 5 skipped
        Op::Rollback(0), // to 6: point 10 goes; generation 0 (no evidence) dropped, re-armed
    ];
    for op in &ops {
        h.apply(op).expect("keeps every invariant");
    }
    assert_eq!(h.counters().skipped, 1, "the point at 5 was skipped");
    h.apply(&Op::Sign).expect("keeps every invariant");
    assert_eq!(
        h.last_due(),
        Some(false),
        "the signature at 7 is 2 after the surviving point 5 (tx_interval 3)"
    );
}
