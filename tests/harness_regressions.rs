//! Bugs the simulation harness found, each pinned by a deterministic test that drives the
//! public API directly (no seed involved), so it keeps failing until the bug is fixed.

use std::path::Path;
use std::sync::Arc;

use snapseal::ledger::{Ledger, TxKind};
use snapseal::node::{ChannelSink, KvState};
use snapseal::persist::receipt::Ed25519Verifier;
use snapseal::persist::{SimFs, SnapshotStore, StoreOptions};
use snapseal::{Snapshotter, SnapshotterConfig, TaskSystem};

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
/// harness_seeds -- --exact replay` then scheduled a persist whose "evidence" was a signature
/// tx).
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
        snap.record_evidence(e, snapshot_idx, digest);
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
