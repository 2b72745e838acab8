//! A minimal Raft-style member for the statement-mode tests: a log of entries in terms (no
//! Merkle tree), a Snapshotter in statement mode signing with the member's key, and a store
//! that trusts the statements of a given key set.
#![allow(dead_code)] // the tests use different parts of it

use std::io;
use std::path::Path;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use snapseal_actors::{
    CaptureError, CloseMode, CommittedSnapshot, Hash, SnapshotEvent, Snapshotter,
    SnapshotterConfig, StateSource, StateView,
};
use snapseal_engine::TaskSystem;
use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::{SigningKey, SnapshotStore, StoreError, StoreOptions, VerifyingKey};
use snapseal_sim::node::ChannelSink;

/// A store in `dir` that trusts signed statements by exactly `keys` (and no Merkle receipt).
pub(crate) fn store_trusting(
    dir: &Path,
    keys: &[VerifyingKey],
) -> Result<Arc<SnapshotStore>, StoreError> {
    let verifier = Ed25519Verifier::new(Vec::new()).with_statement_keys(keys.to_vec());
    let opts = StoreOptions::new(Arc::new(verifier));
    SnapshotStore::open(Arc::new(RealFs::new()), dir, opts).map(Arc::new)
}

/// The state at `idx` is the bytes `"state at <idx>"`: what a snapshot holds is checkable.
pub(crate) struct IndexState;

impl StateSource for IndexState {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        Ok(Box::new(IndexView(idx)))
    }
}

struct IndexView(u64);

impl StateView for IndexView {
    fn write_to(&mut self, out: &mut dyn io::Write) -> io::Result<()> {
        write!(out, "state at {}", self.0)
    }
}

/// The body a snapshot at `idx` of [`IndexState`] holds.
pub(crate) fn state_at(idx: u64) -> String {
    format!("state at {idx}")
}

/// A member signing with `key`, its store in `dir` trusting `trusted`, takes one snapshot at
/// 10 with its evidence entry at 11 in `term`, and closes: `dir` then holds that snapshot alone.
pub(crate) fn one_snapshot(dir: &Path, key: &SigningKey, trusted: &[VerifyingKey], term: u64) {
    let store = store_trusting(dir, trusted).unwrap();
    let mut member = Member::new(store, key.clone(), 10);
    member.term = term;
    member.snapshot_at(10);
    drop(member.close());
}

/// One member: its log (only its length and the current term matter here), its Snapshotter in
/// statement mode on a manual engine, and its store.
pub(crate) struct Member {
    pub snap: Snapshotter,
    pub store: Arc<SnapshotStore>,
    pub tasks: TaskSystem,
    pub evidence: Receiver<(u64, Hash)>,
    /// Index of the last log entry.
    pub last_idx: u64,
    /// The term new entries are appended in.
    pub term: u64,
}

impl Member {
    /// A member signing with `key`, snapshotting every `tx_interval` entries into `store`.
    pub(crate) fn new(store: Arc<SnapshotStore>, key: SigningKey, tx_interval: u64) -> Member {
        let tasks = TaskSystem::manual_fifo();
        let (sink, evidence) = ChannelSink::new();
        let config = SnapshotterConfig {
            tx_interval,
            ..SnapshotterConfig::default()
        };
        let snap = Snapshotter::new(
            config,
            tasks.clone(),
            Arc::clone(&store),
            Arc::new(IndexState),
            Arc::new(sink),
        )
        .unwrap()
        .with_statement_key(key);
        let last_idx = snap.baseline();
        Member {
            snap,
            store,
            tasks,
            evidence,
            last_idx,
            term: 1,
        }
    }

    /// Appends entries up to `idx` (a snapshot point must be due there), commits them and lets
    /// the state at `idx` serialise; returns the claims digest the member is asked to log.
    pub(crate) fn serialise_at(&mut self, idx: u64) -> Hash {
        self.last_idx = idx;
        assert!(self.snap.record_committable(idx), "{idx} must be due");
        self.snap.commit(idx);
        self.tasks.run_until_idle();
        let (snapshot_idx, digest) = self.evidence.try_recv().expect("an evidence request");
        assert_eq!(snapshot_idx, idx);
        digest
    }

    /// Appends the evidence entry for the snapshot at `snapshot_idx` in the current term;
    /// returns its index. Nothing is committed.
    pub(crate) fn append_evidence(&mut self, snapshot_idx: u64, digest: Hash) -> u64 {
        self.last_idx += 1;
        let at = self.last_idx;
        self.snap
            .record_evidence_in_term(at, snapshot_idx, digest, self.term)
            .unwrap();
        at
    }

    /// A whole snapshot at `idx`: serialise, log the evidence, commit it; returns the
    /// `Committed` event.
    pub(crate) fn snapshot_at(&mut self, idx: u64) -> CommittedSnapshot {
        let digest = self.serialise_at(idx);
        let evidence_idx = self.append_evidence(idx, digest);
        self.snap.commit(evidence_idx);
        self.tasks.run_until_idle();
        self.committed()
    }

    /// The next event, which must be a `Committed` one.
    pub(crate) fn committed(&self) -> CommittedSnapshot {
        loop {
            match self.snap.events().try_recv() {
                Some(SnapshotEvent::Committed(c)) => return c,
                Some(SnapshotEvent::Skipped { .. }) => continue,
                other => panic!("expected a committed snapshot, got {other:?}"),
            }
        }
    }

    /// Ends the Snapshotter (finishing what passed its gate) and hands back the store.
    pub(crate) fn close(self) -> Arc<SnapshotStore> {
        self.snap.close(CloseMode::Drain);
        self.store
    }
}
