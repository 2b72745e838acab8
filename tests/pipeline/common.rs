//! A hand-driven node for scenario tests: the reference ledger, a Snapshotter, and either the
//! manual executor over SimFs or the threaded engine over a real temporary directory.
#![allow(dead_code)] // the tests use different parts of it

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use snapseal::actors::Events;
use snapseal::engine::{EngineConfig, TaskSystem};
use snapseal::persist::fs::{FileSystem, RealFs, SimFs};
use snapseal::persist::receipt::{Ed25519Verifier, ReceiptVerifier, SignedRoot};
use snapseal::persist::Hash;
use snapseal::persist::{SnapshotStore, StoreOptions};
use snapseal::{SnapshotEvent, Snapshotter, SnapshotterConfig, StateSource};
use snapseal_sim::ledger::{Ledger, TxKind};
use snapseal_sim::node::{decode_kv, ChannelSink, KvState};

/// Which engine a scenario runs on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Exec {
    /// Manual executor with this seed, over SimFs.
    Manual(u64),
    /// Threaded engine (2 workers), over a real temp dir.
    Threaded,
}

pub(crate) struct Env {
    pub tasks: TaskSystem,
    pub ledger: Ledger,
    pub snap: Snapshotter,
    pub store: Arc<SnapshotStore>,
    pub fs: Arc<dyn FileSystem>,
    pub sim: Option<SimFs>,
    pub dir: PathBuf,
    pub verifier: Arc<dyn ReceiptVerifier>,
    evidence_rx: Receiver<(u64, Hash)>,
    events_rx: Events,
    seen: Vec<SnapshotEvent>,
    _tmp: Option<tempfile::TempDir>,
}

impl Env {
    pub(crate) fn new(exec: Exec, cfg: SnapshotterConfig) -> Env {
        Env::with_state(exec, cfg, |ledger| Arc::new(KvState::new(ledger.clone())))
    }

    /// [`new`](Self::new) with the node's state made by `state` from the ledger.
    pub(crate) fn with_state(
        exec: Exec,
        cfg: SnapshotterConfig,
        state: impl FnOnce(&Ledger) -> Arc<dyn StateSource>,
    ) -> Env {
        let ledger = Ledger::from_seed(42);
        let verifier: Arc<dyn ReceiptVerifier> =
            Arc::new(Ed25519Verifier::new(vec![ledger.verifying_key()]));
        let (tasks, fs, sim, dir, tmp): (TaskSystem, Arc<dyn FileSystem>, _, PathBuf, _) =
            match exec {
                Exec::Manual(seed) => {
                    let sim = SimFs::new(seed);
                    (
                        TaskSystem::manual(seed),
                        Arc::new(sim.clone()),
                        Some(sim),
                        PathBuf::from("/snap"),
                        None,
                    )
                }
                Exec::Threaded => {
                    let tmp = tempfile::tempdir().unwrap();
                    let dir = tmp.path().join("snapshots");
                    let tasks = TaskSystem::threaded(EngineConfig {
                        workers: Some(2),
                        ..EngineConfig::default()
                    })
                    .unwrap();
                    (tasks, Arc::new(RealFs::new()), None, dir, Some(tmp))
                }
            };
        let store = Arc::new(
            SnapshotStore::open(
                Arc::clone(&fs),
                &dir,
                StoreOptions::new(Arc::clone(&verifier)),
            )
            .unwrap(),
        );
        let (sink, evidence_rx) = ChannelSink::new();
        let state = state(&ledger);
        let snap = Snapshotter::new(
            cfg,
            tasks.clone(),
            Arc::clone(&store),
            state,
            Arc::new(sink),
        )
        .unwrap();
        let events_rx = snap.events();
        Env {
            tasks,
            ledger,
            snap,
            store,
            fs,
            sim,
            dir,
            verifier,
            evidence_rx,
            events_rx,
            seen: Vec::new(),
            _tmp: tmp,
        }
    }

    /// Append `n` KV writes.
    pub(crate) fn writes(&mut self, n: u64) {
        for _ in 0..n {
            let i = self.ledger.last_idx() + 1;
            self.ledger.append(TxKind::Write {
                key: i % 7,
                value: Arc::from(i.to_le_bytes().to_vec()),
            });
        }
    }

    /// Append a signature tx and tell the Snapshotter the way a node does; returns what
    /// `record_committable` said.
    pub(crate) fn sign(&mut self) -> bool {
        let signed = self.ledger.append_signature();
        let sig_idx = signed.sig_idx;
        let due = self.snap.record_committable(sig_idx);
        self.snap.record_signature(signed);
        self.snap.record_tree(sig_idx, self.ledger.proofs());
        due
    }

    pub(crate) fn commit(&mut self, idx: u64) {
        self.snap.commit(idx);
    }

    pub(crate) fn commit_last_sig(&mut self) {
        let last = self.ledger.last_idx();
        self.snap.commit(last);
    }

    pub(crate) fn rollback(&mut self, idx: u64) {
        self.ledger.truncate(idx);
        self.snap.rollback(idx);
    }

    /// Let every runnable action finish.
    pub(crate) fn settle(&mut self) {
        if self.tasks.is_manual() {
            self.tasks.run_until_idle();
        } else {
            assert!(
                self.tasks.wait_idle(Duration::from_secs(60)),
                "engine did not go idle (hang guard)"
            );
        }
    }

    /// Append an evidence tx for each finished serialisation; returns `(evidence_idx, snapshot_idx)`.
    pub(crate) fn append_evidence(&mut self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        while let Ok((snapshot_idx, digest)) = self.evidence_rx.try_recv() {
            let e = self.ledger.append(TxKind::Evidence {
                snapshot_idx,
                digest,
            });
            match self.snap.record_evidence(e, snapshot_idx, digest) {
                // Announced before a rollback dropped its generation.
                Ok(()) => {}
                Err(stale) if stale.is_stale() => {}
                Err(refused) => panic!("evidence refused: {refused}"),
            }
            out.push((e, snapshot_idx));
        }
        out
    }

    /// One whole cycle: `w` writes, a due signature, commit, evidence, signature, commit.
    pub(crate) fn full_snapshot_cycle(&mut self, w: u64) {
        self.writes(w);
        assert!(
            self.sign(),
            "the cycle's signature must be a snapshot point"
        );
        self.commit_last_sig();
        self.settle();
        assert_eq!(self.append_evidence().len(), 1);
        self.sign();
        self.commit_last_sig();
        self.settle();
    }

    pub(crate) fn ledger_signature_at(&self, idx: u64) -> SignedRoot {
        match self.ledger.tx(idx) {
            Some(TxKind::Signature(s)) => s,
            other => panic!("no signature at {idx}: {other:?}"),
        }
    }

    /// Names in the snapshot directory ending in `.committed`, sorted.
    pub(crate) fn committed_names(&self) -> Vec<String> {
        let dir = self.fs.open_dir(&self.dir, false).unwrap();
        let mut names: Vec<String> = dir
            .list()
            .unwrap()
            .into_iter()
            .filter_map(|e| e.name.into_string().ok())
            .filter(|n| n.ends_with(".committed"))
            .collect();
        names.sort();
        names
    }

    /// Every event so far.
    pub(crate) fn events(&mut self) -> Vec<SnapshotEvent> {
        self.seen.extend(self.events_rx.try_iter());
        self.seen.clone()
    }

    /// Every `.committed` file verifies against the ledger's key.
    pub(crate) fn assert_all_verify(&self) {
        let dir = self.fs.open_dir(&self.dir, false).unwrap();
        for name in self.committed_names() {
            let parsed = snapseal::persist::SnapshotName::parse(&name).unwrap();
            let bytes = dir.open_read(&name).unwrap();
            snapseal::persist::internals::verify_bytes(
                &bytes,
                Some(&parsed),
                self.verifier.as_ref(),
            )
            .unwrap_or_else(|e| panic!("{name} does not verify: {e}"));
        }
    }

    /// Decode the body of `latest()` back into the KV state.
    pub(crate) fn decode_latest(&self) -> (u64, BTreeMap<u64, Vec<u8>>) {
        let snap = self.store.latest().unwrap().expect("a latest snapshot");
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut snap.body_reader().unwrap(), &mut body).unwrap();
        decode_kv(&body).expect("a well-formed KV body")
    }

    /// The KV state implied by the ledger at `idx`.
    pub(crate) fn state_at(&self, idx: u64) -> BTreeMap<u64, Vec<u8>> {
        let mut map = BTreeMap::new();
        assert!(self.ledger.for_each_write(idx, |k, v| {
            map.insert(k, v.to_vec());
        }));
        map
    }

    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }
}
