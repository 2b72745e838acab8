//! Library quick start: embedding a `Snapshotter` in a node.
//!
//! A tiny replicated "accounts" node with a CCF-style log: client txs, evidence txs and
//! signature txs over the library's Merkle tree (`support/merkle_log.rs`, which keeps the tree
//! and hands out its proofs; no reference ledger). It shows the whole contract:
//! - the node's state hands out cheap frozen views (`StateSource` / `StateView`);
//! - the node appends evidence txs when snapseal asks (`EvidenceSink`), on its own thread;
//! - at each signature tx the node calls `record_committable`, `record_signature` and
//!   `record_tree`, and `commit` whenever its commit index advances;
//! - snapseal serialises and writes `.committed` files on its own workers, and tells the node
//!   through `events()`;
//! - the node keeps a version per snapshot point until snapseal `release`s it (a point can be
//!   captured again after a rollback, so `capture` must not consume it);
//! - `close` ends the pipeline and frees the store;
//! - after a restart, `SnapshotStore::latest()` returns the newest snapshot that verifies.
//!
//! Run: `cargo run --example embed` (well under two seconds).

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use snapseal::actors::{CaptureError, CloseMode, EvidenceError};
use snapseal::engine::{EngineConfig, ShutdownMode};
use snapseal::persist::fs::RealFs;
use snapseal::persist::receipt::Ed25519Verifier;
use snapseal::persist::{Hash, SigningKey};
use snapseal::{
    EvidenceSink, SnapshotEvent, SnapshotStore, Snapshotter, SnapshotterConfig, StateSource,
    StateView, StoreOptions, TaskSystem,
};

#[path = "support/merkle_log.rs"]
mod merkle_log;
use merkle_log::MerkleLog;

/// The node's state: account balances. Copy-on-write: a frozen view is an `Arc` clone, and
/// the next write copies the map only if a view still holds the old one.
#[derive(Default)]
struct Accounts {
    current: Mutex<Arc<BTreeMap<u64, i64>>>,
    /// Versions kept for snapshot points snapseal has not released yet (by ledger index).
    kept: Mutex<HashMap<u64, Arc<BTreeMap<u64, i64>>>>,
}

impl Accounts {
    fn apply(&self, account: u64, delta: i64) {
        let mut current = self.current.lock();
        *Arc::make_mut(&mut current).entry(account).or_insert(0) += delta;
    }

    /// Remember the state as of `idx` (a snapshot point): cheap, it is one `Arc` clone.
    fn keep(&self, idx: u64) {
        let version = Arc::clone(&self.current.lock());
        self.kept.lock().insert(idx, version);
    }
}

impl StateSource for Accounts {
    /// Called on the consensus thread inside `commit`: must be cheap, and is. The version
    /// stays kept: after a rollback snapseal may capture the same point again.
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        let map = self
            .kept
            .lock()
            .get(&idx)
            .cloned()
            .ok_or_else(|| CaptureError::new(idx, "no version kept at that index"))?;
        Ok(Box::new(AccountsView { idx, map }))
    }

    /// snapseal will not capture `idx` again (snapshotted, skipped or rolled back): forget it.
    fn release(&self, idx: u64) {
        self.kept.lock().remove(&idx);
    }
}

/// A frozen view, serialised on a worker thread.
struct AccountsView {
    idx: u64,
    map: Arc<BTreeMap<u64, i64>>,
}

impl StateView for AccountsView {
    fn write_to(&mut self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(&self.idx.to_le_bytes())?;
        for (account, balance) in self.map.iter() {
            out.write_all(&account.to_le_bytes())?;
            out.write_all(&balance.to_le_bytes())?;
        }
        Ok(())
    }
}

/// Finished serialisations, handed from the workers to the node's thread, which appends the
/// evidence tx (never from the worker: the ledger belongs to the consensus thread).
struct EvidenceQueue(Sender<(u64, Hash)>);

impl EvidenceSink for EvidenceQueue {
    fn append_evidence(&self, snapshot_idx: u64, digest: Hash) {
        // If the node is gone, nobody needs the evidence any more.
        let _ = self.0.send((snapshot_idx, digest));
    }
}

/// The node: its ledger, its state, and the Snapshotter it drives.
struct Node {
    ledger: MerkleLog,
    accounts: Arc<Accounts>,
    snapshotter: Snapshotter,
    evidence: Receiver<(u64, Hash)>,
    /// The last signature appended and not yet committed (one signature of replication lag).
    uncommitted_sig: Option<u64>,
}

impl Node {
    /// Append the evidence txs snapseal asked for, and tell it where they landed.
    fn append_evidence(&mut self) -> Result<(), EvidenceError> {
        while let Ok((snapshot_idx, digest)) = self.evidence.try_recv() {
            let evidence_idx = self.ledger.append_evidence(snapshot_idx, digest);
            match self
                .snapshotter
                .record_evidence(evidence_idx, snapshot_idx, digest)
            {
                Ok(()) => {}
                // Asked for before a rollback dropped that snapshot: nothing to prove.
                Err(stale) if stale.is_stale() => {}
                // Anything else means this node appended evidence it should not have.
                Err(refused) => return Err(refused),
            }
        }
        Ok(())
    }

    /// A client transaction: move `amount` between two accounts.
    fn transfer(&mut self, from: u64, to: u64, amount: i64) {
        let tx = [from.to_le_bytes(), to.to_le_bytes(), amount.to_le_bytes()].concat();
        self.ledger.append_write(&tx);
        self.accounts.apply(from, -amount);
        self.accounts.apply(to, amount);
    }

    /// A signature tx: tell snapseal, and commit the previous signature (replicated by now).
    fn sign(&mut self) {
        let signed = self.ledger.append_signature();
        let sig_idx = signed.sig_idx;
        if self.snapshotter.record_committable(sig_idx) {
            // A snapshot point: keep the state as of here until snapseal releases it.
            self.accounts.keep(sig_idx);
        }
        self.snapshotter.record_signature(signed);
        self.snapshotter.record_tree(sig_idx, self.ledger.proofs());
        if let Some(previous) = self.uncommitted_sig.replace(sig_idx) {
            self.snapshotter.commit(previous);
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("snapshots");
    // The ledger's signing key (from your key store; fixed here for the example).
    let ledger = MerkleLog::new(SigningKey::from_bytes(&[7; 32]));
    // Snapshot files are checked against the keys that sign the ledger.
    let verifier = Arc::new(Ed25519Verifier::new(vec![ledger.verifying_key()]));
    let store = SnapshotStore::open(
        Arc::new(RealFs::new()),
        &dir,
        StoreOptions::new(verifier.clone()),
    )?;
    let tasks = TaskSystem::threaded(EngineConfig::default())?;
    let accounts = Arc::new(Accounts::default());
    let kept = Arc::clone(&accounts);
    let (tx, evidence) = crossbeam_channel::unbounded();
    let snapshotter = Snapshotter::new(
        SnapshotterConfig {
            tx_interval: 200,
            ..SnapshotterConfig::default()
        },
        tasks.clone(),
        Arc::new(store),
        accounts.clone(),
        Arc::new(EvidenceQueue(tx)),
    )?;
    let events = snapshotter.events();
    let mut node = Node {
        ledger,
        accounts,
        snapshotter,
        evidence,
        uncommitted_sig: None,
    };

    // The consensus loop: 1000 transfers, a signature every 10 txs.
    for i in 0..1000u64 {
        node.append_evidence()?;
        node.transfer(i % 17, (i * 7) % 17, 5);
        if node.ledger.last_idx() % 10 == 9 {
            node.sign();
        }
        for event in events.try_iter() {
            if let SnapshotEvent::Committed(c) = event {
                println!("committed {} ({} bytes)", c.path.display(), c.file_len);
            }
        }
    }
    // Shutting down: sign until every started snapshot has reached disk.
    for _ in 0..100 {
        tasks.wait_idle(Duration::from_secs(1));
        node.append_evidence()?;
        if node.snapshotter.pending().is_empty() {
            break;
        }
        node.sign();
    }
    for event in events.try_iter() {
        if let SnapshotEvent::Committed(c) = event {
            println!("committed {} ({} bytes)", c.path.display(), c.file_len);
        }
    }
    let counters = node.snapshotter.counters();
    println!(
        "{} snapshots committed, {} skipped",
        counters.persisted, counters.skipped
    );
    // The Snapshotter owns the store (and its lock): closing it frees both before
    // "restarting", and releases every version the node still kept.
    node.snapshotter.close(CloseMode::Drain);
    tasks.shutdown(ShutdownMode::Drain);
    println!("versions still kept: {}", kept.kept.lock().len());

    // A restarted node recovers from the newest snapshot that verifies (a new Snapshotter over
    // this store resumes its schedule from there, so the next snapshot is `tx_interval` later).
    let store = SnapshotStore::open(Arc::new(RealFs::new()), &dir, StoreOptions::new(verifier))?;
    match store.latest()? {
        Some(snapshot) => {
            // The state as it was serialised, streamed from the file (never mapped).
            let mut body = Vec::new();
            io::Read::read_to_end(&mut snapshot.body_reader()?, &mut body)?;
            let idx = body
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or("snapshot body too short")?;
            println!(
                "restart from {}: state at ledger index {idx}, {} accounts, signed at {} by {}",
                snapshot.path().display(),
                (body.len() - 8) / 16,
                snapshot.receipt().sig_idx,
                snapshot.receipt().signer
            );
        }
        None => println!("no snapshot to restart from"),
    }
    Ok(())
}
