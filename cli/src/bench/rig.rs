//! A node in miniature for the end-to-end comparisons: the reference ledger, a Snapshotter on
//! the threaded engine, a real store, and the consensus-thread calls of one signature.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use snapseal_actors::{Events, Snapshotter, SnapshotterConfig, StateSource};
use snapseal_engine::{EngineConfig, ShutdownMode, TaskSystem};
use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::Hash;
use snapseal_persist::{SnapshotStore, StoreOptions};

use snapseal_ledger::ledger::{Ledger, TxKind};
use snapseal_ledger::node::ChannelSink;

use super::BenchError;

/// The nice of the rig's engine workers: snapshot work below the node's priority, as the docs
/// advise a node to run it (the consensus row's peer runs at the same).
pub(crate) const WORKER_NICE: i32 = 10;

/// The ledger, the Snapshotter and what connects them.
pub(crate) struct Rig {
    pub ledger: Ledger,
    pub snap: Snapshotter,
    pub events: Events,
    evidence: Receiver<(u64, Hash)>,
    pub tasks: TaskSystem,
    last_sig: u64,
}

impl Rig {
    /// A rig snapshotting `state` into a store at `dir` (created), never due by interval (the
    /// caller forces snapshots), with `max_pending` slots and the given spill threshold.
    pub(crate) fn new(
        dir: &Path,
        state: Arc<dyn StateSource>,
        max_pending: usize,
        spill_threshold: Option<u64>,
    ) -> Result<Rig, BenchError> {
        let ledger = Ledger::from_seed(3);
        let verifier = Arc::new(Ed25519Verifier::new(vec![ledger.verifying_key()]));
        let mut opts = StoreOptions::new(verifier);
        opts.keep_last = max_pending + 1;
        let store = SnapshotStore::open(Arc::new(RealFs::new()), dir, opts)
            .map_err(|e| BenchError::Setup(format!("open store: {e}")))?;
        let tasks = TaskSystem::threaded(EngineConfig {
            worker_nice: WORKER_NICE,
            ..EngineConfig::default()
        })
        .map_err(|e| BenchError::Setup(format!("engine: {e}")))?;
        let (sink, evidence) = ChannelSink::new();
        let cfg = SnapshotterConfig {
            tx_interval: u64::MAX,
            max_pending,
            spill_threshold,
            ..SnapshotterConfig::default()
        };
        let snap = Snapshotter::new(cfg, tasks.clone(), Arc::new(store), state, Arc::new(sink))
            .map_err(|e| BenchError::Setup(format!("snapshotter: {e}")))?;
        Ok(Rig {
            events: snap.events(),
            ledger,
            snap,
            evidence,
            tasks,
            last_sig: 0,
        })
    }

    /// Appends evidence for every finished serialisation (untimed: the node's ledger work).
    /// Returns how many.
    pub(crate) fn take_evidence(&mut self) -> usize {
        let mut n = 0;
        for (snapshot_idx, digest) in self.evidence.try_iter() {
            let e = self.ledger.append(TxKind::Evidence {
                snapshot_idx,
                digest,
            });
            // No rollbacks here: a refusal is a bug, and its generation then never persists.
            if let Err(refused) = self.snap.record_evidence(e, snapshot_idx, digest) {
                tracing::warn!(error = %refused, "evidence refused");
            }
            n += 1;
        }
        n
    }

    /// One signature's worth of consensus-thread calls (`record_committable`,
    /// `record_signature`, `record_tree`, `commit` of the previous signature); returns their
    /// wall time. The ledger work around them is not timed.
    pub(crate) fn tx(&mut self) -> Duration {
        self.take_evidence();
        self.ledger.append(TxKind::Write {
            key: 1,
            value: Arc::from(vec![0u8; 8]),
        });
        let signed = self.ledger.append_signature();
        let sig_idx = signed.sig_idx;
        let proofs = self.ledger.proofs();
        let prev = std::mem::replace(&mut self.last_sig, sig_idx);
        let start = Instant::now();
        self.snap.record_committable(sig_idx);
        self.snap.record_signature(signed);
        self.snap.record_tree(sig_idx, proofs);
        self.snap.commit(prev);
        start.elapsed()
    }

    /// Stops the engine, letting running actions finish.
    pub(crate) fn shutdown(&self) {
        self.tasks.shutdown(ShutdownMode::Drain);
    }
}
