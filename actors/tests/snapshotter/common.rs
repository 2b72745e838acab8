//! A minimal node around a Snapshotter for the integration tests: the reference ledger, a
//! manual or threaded engine, a real store in a temp directory.
#![allow(dead_code)] // the tests use different parts of it

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use snapseal_actors::{Hash, Snapshotter, SnapshotterConfig, StateSource};
use snapseal_engine::{EngineConfig, TaskSystem};
use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::{SnapshotStore, StoreOptions};
use snapseal_sim::ledger::{Ledger, TxKind};
use snapseal_sim::node::ChannelSink;

pub(crate) struct Drive {
    pub ledger: Ledger,
    pub snap: Snapshotter,
    pub tasks: TaskSystem,
    pub evidence: Receiver<(u64, Hash)>,
    /// The last signature appended.
    pub last_sig: u64,
}

pub(crate) fn open_store(
    dir: &Path,
    ledger: &Ledger,
) -> Result<SnapshotStore, snapseal_persist::StoreError> {
    let verifier = Arc::new(Ed25519Verifier::new(vec![ledger.verifying_key()]));
    SnapshotStore::open(Arc::new(RealFs::new()), dir, StoreOptions::new(verifier))
}

impl Drive {
    /// A Snapshotter over `state` on a manual engine (`threaded`: a real one), storing in `dir`.
    pub(crate) fn new(
        dir: &Path,
        ledger: Ledger,
        cfg: SnapshotterConfig,
        state: Arc<dyn StateSource>,
        threaded: bool,
    ) -> Drive {
        Self::build(dir, ledger, cfg, state, threaded, |s| s)
    }

    /// As `new`, with `setup` applied to the new Snapshotter (`with_baseline` and the like).
    pub(crate) fn build(
        dir: &Path,
        ledger: Ledger,
        cfg: SnapshotterConfig,
        state: Arc<dyn StateSource>,
        threaded: bool,
        setup: impl FnOnce(Snapshotter) -> Snapshotter,
    ) -> Drive {
        let store = open_store(dir, &ledger).unwrap();
        let tasks = if threaded {
            TaskSystem::threaded(EngineConfig::default()).unwrap()
        } else {
            TaskSystem::manual_fifo()
        };
        let (sink, evidence) = ChannelSink::new();
        let snap = setup(
            Snapshotter::new(cfg, tasks.clone(), Arc::new(store), state, Arc::new(sink)).unwrap(),
        );
        Drive {
            ledger,
            snap,
            tasks,
            evidence,
            last_sig: 0,
        }
    }

    /// Writes until the next signature would land at `sig_idx`.
    pub(crate) fn writes_until(&mut self, sig_idx: u64) {
        while self.ledger.last_idx() + 1 < sig_idx {
            let i = self.ledger.last_idx() + 1;
            self.ledger.append(TxKind::Write {
                key: i % 7,
                value: Arc::from(i.to_le_bytes().to_vec()),
            });
        }
    }

    /// Appends a signature and tells the Snapshotter (no commit); returns record_committable.
    pub(crate) fn sign(&mut self) -> bool {
        let signed = self.ledger.append_signature();
        let sig_idx = signed.sig_idx;
        let point = self.snap.record_committable(sig_idx);
        self.snap.record_signature(signed);
        self.snap.record_tree(sig_idx, self.ledger.proofs());
        self.last_sig = sig_idx;
        point
    }

    pub(crate) fn commit(&mut self, idx: u64) {
        self.snap.commit(idx);
    }

    /// Run ready work (manual) or wait for it (threaded).
    pub(crate) fn settle(&mut self) {
        if self.tasks.is_manual() {
            self.tasks.run_until_idle();
        } else {
            assert!(self.tasks.wait_idle(Duration::from_secs(60)));
        }
    }

    /// Appends evidence for every finished serialisation and records it (all must be accepted
    /// or be for a generation a rollback dropped). Returns the evidence indices.
    pub(crate) fn evidence(&mut self) -> Vec<u64> {
        let mut out = Vec::new();
        while let Ok((snapshot_idx, digest)) = self.evidence.try_recv() {
            let e = self.ledger.append(TxKind::Evidence {
                snapshot_idx,
                digest,
            });
            match self.snap.record_evidence(e, snapshot_idx, digest) {
                Ok(()) => out.push(e),
                Err(stale) if stale.is_stale() => {}
                Err(other) => panic!("evidence refused: {other}"),
            }
        }
        out
    }

    /// A whole snapshot at the signature `sig_idx` (a due point): sign, commit, serialise,
    /// evidence, sign, commit, persist.
    pub(crate) fn snapshot_at(&mut self, sig_idx: u64) {
        self.writes_until(sig_idx);
        assert!(self.sign(), "{sig_idx} must be a snapshot point");
        self.commit(sig_idx);
        self.settle();
        assert_eq!(self.evidence().len(), 1);
        self.sign();
        self.commit(self.last_sig);
        self.settle();
    }
}
