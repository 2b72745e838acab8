//! A simulated node: KV state over a reference ledger, driving a [`Snapshotter`] the way
//! a CCF-style node does. The demo, the tests and the fuzzers all use this one driver.
//!
//! The node is generic over its [`NodeLedger`]: the in-memory [`Ledger`] (the default, what
//! the tests and the harness use) or the disk-backed
//! [`DiskKv`](crate::disk_node::DiskKv) (the demo: bounded memory at any length).
//!
//! Per step the node appends one tx: a KV write, or every `sig_every` txs a signature tx. At a
//! signature it calls `record_committable`, `record_signature` and `record_tree`; the previous
//! signature then counts as committed (`commit`), modelling one signature of replication lag.
//! Evidence requests from the serialise action arrive on a channel and are appended (and
//! recorded) at the start of the next step, on the node's own thread.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use snapseal_actors::ProofSource;
use snapseal_actors::{
    CaptureError, CommittedSnapshot, ConfigError, Events, EvidenceError, EvidenceSink,
    SnapshotEvent, Snapshotter, SnapshotterConfig, StateSource, StateView,
};
use snapseal_engine::TaskSystem;
use snapseal_persist::receipt::SignedRoot;
use snapseal_persist::{Hash, SnapshotStore};

use crate::ledger::{Ledger, TxKind};

/// Most call latencies a [`SimNode`] keeps (16 MiB of `Duration`s); beyond, a uniform sample.
pub const LATENCY_SAMPLES: usize = 1 << 20;

/// A uniform sample of at most `cap` values of a stream of any length (Algorithm R: value
/// *n* replaces a random kept one with probability cap / n, so every value is equally likely
/// to be kept). Fixed seed: a run stays deterministic.
#[derive(Debug)]
struct Reservoir {
    cap: usize,
    samples: Vec<Duration>,
    seen: u64,
    rng: Rng,
}

impl Reservoir {
    fn new(cap: usize) -> Self {
        Reservoir {
            cap,
            samples: Vec::new(),
            seen: 0,
            rng: rand_core::SeedableRng::seed_from_u64(0x5A3F1E),
        }
    }

    fn add(&mut self, value: Duration) {
        self.seen += 1;
        if self.samples.len() < self.cap {
            self.samples.push(value);
            return;
        }
        // `seen` >= 1 here; the modulo bias is irrelevant for a latency sample.
        let slot = rand_core::RngCore::next_u64(&mut self.rng) % self.seen;
        if let Some(kept) = usize::try_from(slot)
            .ok()
            .and_then(|i| self.samples.get_mut(i))
        {
            *kept = value;
        }
    }
}

/// What a [`SimNode`] needs from its ledger and the state machine over it.
pub trait NodeLedger: Send + Sync + 'static {
    /// Index of the last tx (0 when empty).
    fn last_idx(&self) -> u64;
    /// The index the node starts at: every tx up to it is committed and the state there is
    /// known (0 for a fresh ledger; a resumed ledger's base or a reopened one's commit index).
    fn start_idx(&self) -> u64;
    /// Appends `kind`; returns its index.
    fn append(&self, kind: TxKind) -> u64;
    /// Appends a signature tx signing the root over every tx before it.
    fn append_signature(&self) -> SignedRoot;
    /// Drops the uncommitted txs after `idx` (never below the commit index).
    fn truncate(&self, idx: u64) -> Result<(), String>;
    /// Makes every tx up to `idx` committed (durable, for a ledger on disk). Called before the
    /// Snapshotter hears of the commit, so no snapshot commits on evidence that could be lost.
    fn commit(&self, idx: u64) -> Result<(), String>;
    /// Proofs for signatures of this ledger.
    fn proofs(&self) -> Arc<dyn ProofSource>;
    /// The state machine the Snapshotter captures views of.
    fn state(&self) -> Arc<dyn StateSource>;
    /// The Snapshotter accepted a snapshot point at `idx` (the state there must stay
    /// capturable until released).
    fn keep(&self, idx: u64) {
        let _ = idx;
    }
}

impl NodeLedger for Ledger {
    fn last_idx(&self) -> u64 {
        Ledger::last_idx(self)
    }
    fn start_idx(&self) -> u64 {
        self.base()
    }
    fn append(&self, kind: TxKind) -> u64 {
        Ledger::append(self, kind)
    }
    fn append_signature(&self) -> SignedRoot {
        Ledger::append_signature(self)
    }
    fn truncate(&self, idx: u64) -> Result<(), String> {
        Ledger::truncate(self, idx);
        Ok(())
    }
    fn commit(&self, _idx: u64) -> Result<(), String> {
        // In memory: nothing to make durable.
        Ok(())
    }
    fn proofs(&self) -> Arc<dyn ProofSource> {
        Ledger::proofs(self)
    }
    fn state(&self) -> Arc<dyn StateSource> {
        Arc::new(KvState::new(self.clone()))
    }
}

/// Magic at the start of a KV snapshot body.
pub const KV_MAGIC: &[u8; 8] = b"SSKV\0\0\0\x01";

/// How the simulated node behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Total txs to append (writes and signatures; evidence comes on top).
    pub txs: u64,
    /// A signature tx every this many txs (at least 2).
    pub sig_every: u64,
    /// Bytes per written value.
    pub value_size: usize,
    /// Keys are drawn from `0 .. keys` (at least 1).
    pub keys: u64,
    /// Roll the uncommitted tail back every this many txs (None: never).
    pub rollback_every: Option<u64>,
    /// Seed for keys and values.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            txs: 10_000,
            sig_every: 100,
            value_size: 64,
            keys: 1_000,
            rollback_every: None,
            seed: 1,
        }
    }
}

/// Largest [`SimConfig::keys`] and [`SimConfig::rollback_every`] (the KV map is in memory).
pub const MAX_TXS: u64 = 10_000_000;
/// Largest [`SimConfig::txs`]: a node on the disk ledger is bounded in memory at any length
/// (one on the in-memory [`Ledger`] holds every tx, so keep its runs small).
pub const MAX_RUN_TXS: u64 = 10_000_000_000;
/// Largest [`SimConfig::sig_every`].
pub const MAX_SIG_EVERY: u64 = 1_000_000;
/// Largest [`SimConfig::value_size`] (1 MiB).
pub const MAX_VALUE_SIZE: usize = 1 << 20;

impl SimConfig {
    /// Check every field's range (the snapshotter's config is checked by its own
    /// `validate`); the first bad field is reported by name with the allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |field, value: u64, ok: bool, allowed| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError {
                    field,
                    value: value.to_string(),
                    allowed,
                })
            }
        };
        let txs_range = 1..=MAX_TXS;
        check(
            "txs",
            self.txs,
            (1..=MAX_RUN_TXS).contains(&self.txs),
            "must be in 1 ..= 10000000000",
        )?;
        check(
            "sig_every",
            self.sig_every,
            (2..=MAX_SIG_EVERY).contains(&self.sig_every),
            "must be in 2 ..= 1000000",
        )?;
        check(
            "value_size",
            self.value_size as u64,
            self.value_size <= MAX_VALUE_SIZE,
            "must be in 0 ..= 1048576",
        )?;
        check(
            "keys",
            self.keys,
            txs_range.contains(&self.keys),
            "must be in 1 ..= 10000000",
        )?;
        if let Some(every) = self.rollback_every {
            check(
                "rollback_every",
                every,
                txs_range.contains(&every),
                "must be in 1 ..= 10000000, or unset for no rollbacks",
            )?;
        }
        Ok(())
    }
}

/// The node's state machine: the KV map implied by the ledger's writes.
#[derive(Clone, Debug)]
pub struct KvState {
    ledger: Ledger,
}

impl KvState {
    /// State over `ledger`.
    pub fn new(ledger: Ledger) -> Self {
        KvState { ledger }
    }
}

impl StateSource for KvState {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        let last = self.ledger.last_idx();
        if idx > last {
            return Err(CaptureError {
                idx,
                reason: format!("the ledger ends at {last}"),
            });
        }
        // Cheap: the ledger is shared and append-only below the commit index.
        Ok(Box::new(KvView {
            ledger: self.ledger.clone(),
            idx,
        }))
    }
}

/// A frozen view: the ledger prefix `1 ..= idx`.
struct KvView {
    ledger: Ledger,
    idx: u64,
}

impl StateView for KvView {
    fn write_to(&mut self, out: &mut dyn io::Write) -> io::Result<()> {
        let mut map: BTreeMap<u64, Arc<[u8]>> = BTreeMap::new();
        let complete = self.ledger.for_each_write(self.idx, |k, v| {
            map.insert(k, Arc::clone(v));
        });
        if !complete {
            return Err(io::Error::other(format!(
                "ledger rolled back below {}",
                self.idx
            )));
        }
        out.write_all(KV_MAGIC)?;
        out.write_all(&self.idx.to_le_bytes())?;
        out.write_all(&(map.len() as u64).to_le_bytes())?;
        for (k, v) in &map {
            out.write_all(&k.to_le_bytes())?;
            out.write_all(&(v.len() as u64).to_le_bytes())?;
            out.write_all(v)?;
        }
        Ok(())
    }
}

/// Parse a KV snapshot body (uncompressed) back into `(idx, map)`; None if malformed.
pub fn decode_kv(body: &[u8]) -> Option<(u64, BTreeMap<u64, Vec<u8>>)> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    fn u64_at(b: &mut &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(take(b, 8)?.try_into().ok()?))
    }
    let mut b = body;
    if take(&mut b, 8)? != KV_MAGIC {
        return None;
    }
    let idx = u64_at(&mut b)?;
    let count = u64_at(&mut b)?;
    let mut map = BTreeMap::new();
    for _ in 0..count {
        let k = u64_at(&mut b)?;
        let len = usize::try_from(u64_at(&mut b)?).ok()?;
        map.insert(k, take(&mut b, len)?.to_vec());
    }
    b.is_empty().then_some((idx, map))
}

/// Evidence requests from workers, handed to the node's thread.
#[derive(Clone, Debug)]
pub struct ChannelSink {
    tx: Sender<(u64, Hash)>,
}

impl ChannelSink {
    /// A sink and the receiving end the node polls.
    pub fn new() -> (Self, Receiver<(u64, Hash)>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (ChannelSink { tx }, rx)
    }
}

impl EvidenceSink for ChannelSink {
    fn append_evidence(&self, snapshot_idx: u64, digest: Hash) {
        // The node went away: nobody will append evidence; the generation simply never passes.
        let _ = self.tx.send((snapshot_idx, digest));
    }
}

/// What a [`SimNode`] tells its observer ([`SimNode::set_observer`]), on the node's thread.
#[derive(Debug)]
pub enum NodeEvent<'a> {
    /// The node is about to advance the Snapshotter's commit index to this index (the call
    /// that may open persist gates).
    Commit(u64),
    /// A snapshot event just arrived from the Snapshotter.
    Snapshot(&'a SnapshotEvent),
}

/// The observer callback; behind a mutex only so `SimNode` stays `Sync`.
type Observer = parking_lot::Mutex<Box<dyn FnMut(NodeEvent<'_>) + Send>>;

/// The node's key and value stream: SplitMix64 (`rand_xoshiro`), so a seed gives the same
/// writes everywhere.
type Rng = rand_xoshiro::SplitMix64;

/// The simulated node, on the in-memory [`Ledger`] unless told otherwise.
///
/// It drives a [`Snapshotter`] exactly as an embedding node does; a run shows the whole
/// pipeline from the ledger's point of view:
///
/// ```
/// use std::io::Read;
/// use std::sync::Arc;
/// use snapseal_actors::SnapshotterConfig;
/// use snapseal_engine::TaskSystem;
/// use snapseal_ledger::ledger::Ledger;
/// use snapseal_ledger::node::{decode_kv, SimConfig, SimNode};
/// use snapseal_persist::fs::RealFs;
/// use snapseal_persist::receipt::Ed25519Verifier;
/// use snapseal_persist::{SnapshotStore, StoreOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let cfg = SimConfig { txs: 500, sig_every: 10, keys: 50, seed: 7, ..SimConfig::default() };
/// // The store trusts the key the node's ledger signs with.
/// let ledger_key = Ledger::seed_key(cfg.seed).verifying_key();
/// let opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![ledger_key])));
/// let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?);
/// let tasks = TaskSystem::manual(7);
/// let snap = SnapshotterConfig { tx_interval: 100, ..SnapshotterConfig::default() };
/// let mut node = SimNode::new(cfg, snap, tasks.clone(), Arc::clone(&store))?;
///
/// while node.step() {
///     tasks.run_until_idle();
/// }
/// assert!(node.finish(100)); // every pending snapshot committed
/// let newest = node.committed().iter().map(|c| c.idx).max();
/// assert!(node.committed().len() >= 4);
///
/// // The newest snapshot verifies and holds the node's state at its index.
/// let latest = store.latest()?.expect("the node committed snapshots");
/// assert_eq!(Some(latest.name().idx), newest);
/// let mut body = Vec::new();
/// latest.body_reader()?.read_to_end(&mut body)?;
/// let (idx, state) = decode_kv(&body).ok_or("not a KV snapshot body")?;
/// assert_eq!(Some(idx), newest);
/// assert!(!state.is_empty());
/// # Ok(()) }
/// ```
pub struct SimNode<L: NodeLedger = Ledger> {
    cfg: SimConfig,
    ledger: L,
    /// The first ledger failure (a disk ledger's failed write); the node stops stepping.
    ledger_error: Option<String>,
    snapshotter: Snapshotter,
    tasks: TaskSystem,
    evidence_rx: Receiver<(u64, Hash)>,
    events: Events,
    rng: Rng,
    appended: u64,
    /// Signatures appended but not yet committed, oldest first.
    uncommitted_sigs: VecDeque<u64>,
    commit_idx: u64,
    committed: Vec<CommittedSnapshot>,
    other_events: Vec<SnapshotEvent>,
    /// Evidence the Snapshotter refused for a reason other than a rollback (a bug to report).
    refused_evidence: Vec<EvidenceError>,
    /// Wall time of consensus-thread calls into the Snapshotter: every one up to
    /// [`LATENCY_SAMPLES`], then a uniform sample of that many (so memory stays bounded at any
    /// run length and the percentiles stay unbiased).
    call_latencies: Reservoir,
    /// Told about commit calls and snapshot events as they happen (the demo times and logs
    /// them).
    observer: Option<Observer>,
}

impl<L: NodeLedger> std::fmt::Debug for SimNode<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNode")
            .field("cfg", &self.cfg)
            .field("last_idx", &self.ledger.last_idx())
            .field("commit_idx", &self.commit_idx)
            .finish_non_exhaustive()
    }
}

impl SimNode<Ledger> {
    /// A node with a fresh ledger keyed from `cfg.seed`, snapshotting into `store` on `tasks`.
    pub fn new(
        cfg: SimConfig,
        snap: SnapshotterConfig,
        tasks: TaskSystem,
        store: Arc<SnapshotStore>,
    ) -> Result<Self, ConfigError> {
        Self::with_ledger(cfg.clone(), Ledger::from_seed(cfg.seed), snap, tasks, store)
    }
}

impl<L: NodeLedger> SimNode<L> {
    /// A node over an existing `ledger`. A resumed ledger ([`Ledger::resumed`]) or a reopened
    /// disk one starts from the state at its [`start_idx`](NodeLedger::start_idx), so the
    /// Snapshotter counts its interval from there.
    pub fn with_ledger(
        cfg: SimConfig,
        ledger: L,
        snap: SnapshotterConfig,
        tasks: TaskSystem,
        store: Arc<SnapshotStore>,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let (sink, evidence_rx) = ChannelSink::new();
        let state = ledger.state();
        let start = ledger.start_idx();
        let snapshotter = Snapshotter::new(snap, tasks.clone(), store, state, Arc::new(sink))?
            .with_baseline(start);
        let events = snapshotter.events();
        Ok(SimNode {
            rng: rand_core::SeedableRng::seed_from_u64(cfg.seed ^ 0x5EED),
            cfg,
            ledger,
            ledger_error: None,
            snapshotter,
            tasks,
            evidence_rx,
            events,
            appended: 0,
            uncommitted_sigs: VecDeque::new(),
            commit_idx: start,
            committed: Vec::new(),
            other_events: Vec::new(),
            refused_evidence: Vec::new(),
            call_latencies: Reservoir::new(LATENCY_SAMPLES),
            observer: None,
        })
    }

    /// Calls `f` on the node's thread for every commit call (just before it is made) and every
    /// snapshot event (as `poll` receives it, before it is stored). Replaces any earlier one.
    pub fn set_observer(&mut self, f: impl FnMut(NodeEvent<'_>) + Send + 'static) {
        self.observer = Some(parking_lot::Mutex::new(Box::new(f)));
    }

    fn notify(&mut self, event: NodeEvent<'_>) {
        if let Some(observer) = &mut self.observer {
            (observer.get_mut())(event);
        }
    }

    /// Time one call into the Snapshotter (the consensus thread's cost).
    fn timed<R>(&mut self, f: impl FnOnce(&mut Snapshotter) -> R) -> R {
        let start = Instant::now();
        let r = f(&mut self.snapshotter);
        self.call_latencies.add(start.elapsed());
        r
    }

    /// Append one tx (and any evidence that arrived). Returns false once `cfg.txs` were
    /// appended.
    /// Also false once the ledger failed ([`ledger_error`](Self::ledger_error)).
    pub fn step(&mut self) -> bool {
        if self.appended >= self.cfg.txs || self.ledger_error.is_some() {
            return false;
        }
        self.poll();
        self.appended += 1;
        if (self.ledger.last_idx() + 1).is_multiple_of(self.cfg.sig_every) {
            self.sign_and_commit();
        } else {
            let key = rand_core::RngCore::next_u64(&mut self.rng) % self.cfg.keys;
            let mut value = vec![0u8; self.cfg.value_size];
            for chunk in value.chunks_mut(8) {
                let r = rand_core::RngCore::next_u64(&mut self.rng).to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
            self.ledger.append(TxKind::Write {
                key,
                value: Arc::from(value),
            });
        }
        if let Some(every) = self.cfg.rollback_every {
            if self.appended.is_multiple_of(every) {
                self.rollback_uncommitted();
            }
        }
        true
    }

    /// Append a signature tx, tell the Snapshotter, and commit the previous signature.
    pub fn sign_and_commit(&mut self) {
        self.sign(true);
    }

    /// [`sign_and_commit`](Self::sign_and_commit); `committable` says whether the signature
    /// is offered to the Snapshotter as a snapshot point.
    fn sign(&mut self, committable: bool) {
        let signed = self.ledger.append_signature();
        let sig_idx = signed.sig_idx;
        let proofs = self.ledger.proofs();
        if committable && self.timed(|s| s.record_committable(sig_idx)) {
            self.ledger.keep(sig_idx);
        }
        self.timed(|s| s.record_signature(signed));
        self.timed(|s| s.record_tree(sig_idx, proofs));
        self.uncommitted_sigs.push_back(sig_idx);
        if self.uncommitted_sigs.len() > 1 {
            if let Some(c) = self.uncommitted_sigs.pop_front() {
                self.commit_to(c);
            }
        }
    }

    /// Advance the commit index to `idx`.
    /// The ledger commits first; if that fails the Snapshotter never hears of the commit
    /// (no snapshot may commit on evidence that could be lost) and the node stops.
    pub fn commit_to(&mut self, idx: u64) {
        if self.ledger_error.is_some() {
            return;
        }
        if let Err(e) = self.ledger.commit(idx) {
            tracing::error!(idx, error = %e, "ledger commit failed; the node stops");
            self.ledger_error = Some(e);
            return;
        }
        self.commit_idx = self.commit_idx.max(idx);
        self.notify(NodeEvent::Commit(idx));
        self.timed(|s| s.commit(idx));
    }

    /// Drop every uncommitted tx (as after a leader change).
    pub fn rollback_uncommitted(&mut self) {
        let to = self.commit_idx;
        if let Err(e) = self.ledger.truncate(to) {
            tracing::error!(to, error = %e, "ledger rollback failed; the node stops");
            self.ledger_error = Some(e);
            return;
        }
        self.uncommitted_sigs.clear();
        self.timed(|s| s.rollback(to));
    }

    /// Append evidence txs for finished serialisations and collect snapshot events.
    pub fn poll(&mut self) {
        while let Ok((snapshot_idx, digest)) = self.evidence_rx.try_recv() {
            let e = self.ledger.append(TxKind::Evidence {
                snapshot_idx,
                digest,
            });
            match self.timed(|s| s.record_evidence(e, snapshot_idx, digest)) {
                // Announced before a rollback dropped its generation: nothing to record.
                Ok(()) => {}
                Err(stale) if stale.is_stale() => {}
                Err(refused) => {
                    tracing::warn!(error = %refused, "evidence refused");
                    self.refused_evidence.push(refused);
                }
            }
        }
        while let Some(event) = self.events.try_recv() {
            self.notify(NodeEvent::Snapshot(&event));
            match event {
                SnapshotEvent::Committed(c) => self.committed.push(c),
                other => self.other_events.push(other),
            }
        }
    }

    /// Commit every signature appended so far (the replication lag catches up).
    pub fn commit_all(&mut self) {
        if let Some(last) = self.uncommitted_sigs.pop_back() {
            self.uncommitted_sigs.clear();
            self.commit_to(last);
        }
    }

    /// Flush: commit every appended signature, then keep signing and committing (no more
    /// writes) until no generation is pending — so a point recorded at the last signatures
    /// is snapshotted too. The flush's own signatures are not snapshot points: with a small
    /// tx interval each would make a new snapshot due and the flush would never end. Runs
    /// tasks in manual mode and waits for workers in threaded mode. Before returning (flushed
    /// or not) it waits for every started persist and collects its event, so no file commits
    /// after the node stopped listening. Returns false if generations were still pending
    /// after `max_rounds` signatures.
    pub fn finish(&mut self, max_rounds: usize) -> bool {
        self.commit_all();
        let mut flushed = false;
        for _ in 0..max_rounds {
            self.settle();
            if self.ledger_error.is_some() {
                break;
            }
            if self.snapshotter.pending().is_empty() {
                flushed = true;
                break;
            }
            self.sign(false);
            self.commit_all();
        }
        self.wait_for_persists();
        flushed
    }

    /// Lets the tasks run (manual) or waits a moment for the workers, then polls.
    fn settle(&mut self) {
        if self.tasks.is_manual() {
            self.tasks.run_until_idle();
        } else {
            self.tasks.wait_idle(Duration::from_millis(200));
        }
        self.poll();
    }

    /// Waits until no task runs, then collects the events. A persist sends its `Committed`
    /// event as the job's last step, so only an idle engine guarantees the event is there:
    /// seeing the generation gone from `pending()` is not enough.
    fn wait_for_persists(&mut self) {
        if self.tasks.is_manual() {
            self.tasks.run_until_idle();
        } else {
            while !self.tasks.wait_idle(Duration::from_millis(200)) {}
        }
        self.poll();
    }

    /// The Snapshotter (for direct calls in tests).
    pub fn snapshotter(&mut self) -> &mut Snapshotter {
        &mut self.snapshotter
    }

    /// The ledger.
    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    /// The first ledger failure, if any (the node stopped there).
    pub fn ledger_error(&self) -> Option<&str> {
        self.ledger_error.as_deref()
    }

    /// The commit index.
    pub fn commit_idx(&self) -> u64 {
        self.commit_idx
    }

    /// Snapshots reported committed so far (in report order).
    pub fn committed(&self) -> &[CommittedSnapshot] {
        &self.committed
    }

    /// Failed, dropped and skipped events seen so far.
    pub fn other_events(&self) -> &[SnapshotEvent] {
        &self.other_events
    }

    /// Evidence the Snapshotter refused other than after a rollback (empty unless something is
    /// wrong).
    pub fn refused_evidence(&self) -> &[EvidenceError] {
        &self.refused_evidence
    }

    /// Consensus-thread calls' wall times: every call's up to [`LATENCY_SAMPLES`] calls, a
    /// uniform sample of that many beyond (see [`calls_timed`](Self::calls_timed)).
    pub fn call_latencies(&self) -> &[Duration] {
        &self.call_latencies.samples
    }

    /// How many consensus-thread calls were timed (the population of
    /// [`call_latencies`](Self::call_latencies)).
    pub fn calls_timed(&self) -> u64 {
        self.call_latencies.seen
    }

    /// Txs appended by `step` so far.
    pub fn appended(&self) -> u64 {
        self.appended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each range's ends pass, one past them fails naming the field, and the message states
    /// the bound the constant holds (the text and the constant cannot drift apart).
    #[test]
    fn sim_config_ranges_are_checked_at_both_ends() {
        let ok = SimConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let edges: Vec<(SimConfig, SimConfig, &str, u64)> = vec![
            (
                SimConfig {
                    txs: MAX_RUN_TXS,
                    ..ok.clone()
                },
                SimConfig {
                    txs: MAX_RUN_TXS + 1,
                    ..ok.clone()
                },
                "txs",
                MAX_RUN_TXS,
            ),
            (
                SimConfig {
                    sig_every: 2,
                    ..ok.clone()
                },
                SimConfig {
                    sig_every: MAX_SIG_EVERY + 1,
                    ..ok.clone()
                },
                "sig_every",
                MAX_SIG_EVERY,
            ),
            (
                SimConfig {
                    value_size: MAX_VALUE_SIZE,
                    ..ok.clone()
                },
                SimConfig {
                    value_size: MAX_VALUE_SIZE + 1,
                    ..ok.clone()
                },
                "value_size",
                MAX_VALUE_SIZE as u64,
            ),
            (
                SimConfig {
                    keys: 1,
                    ..ok.clone()
                },
                SimConfig {
                    keys: MAX_TXS + 1,
                    ..ok.clone()
                },
                "keys",
                MAX_TXS,
            ),
            (
                SimConfig {
                    rollback_every: Some(MAX_TXS),
                    ..ok.clone()
                },
                SimConfig {
                    rollback_every: Some(MAX_TXS + 1),
                    ..ok.clone()
                },
                "rollback_every",
                MAX_TXS,
            ),
        ];
        for (good, bad, field, max) in edges {
            assert_eq!(good.validate(), Ok(()), "{field}");
            let e = bad.validate().expect_err(field);
            assert_eq!(e.field, field);
            assert!(e.allowed.contains(&format!("..= {max}")), "{e}");
        }
        for bad in [
            SimConfig {
                txs: 0,
                ..ok.clone()
            },
            SimConfig {
                sig_every: 1,
                ..ok.clone()
            },
            SimConfig {
                keys: 0,
                ..ok.clone()
            },
            SimConfig {
                rollback_every: Some(0),
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod reservoir_tests {
    use super::*;

    #[test]
    fn a_reservoir_stays_at_its_cap_and_samples_the_whole_stream() {
        let mut r = Reservoir::new(1000);
        for i in 0..100_000u64 {
            r.add(Duration::from_nanos(i));
        }
        assert_eq!(r.samples.len(), 1000);
        assert_eq!(r.seen, 100_000);
        // Uniform over 0..100 000: the median sample is near 50 000, and values from the
        // late stream made it in (a "first 1000 only" bug would keep all below 1000).
        let mut v: Vec<u64> = r.samples.iter().map(|d| d.as_nanos() as u64).collect();
        v.sort_unstable();
        let median = v[v.len() / 2];
        assert!((40_000..60_000).contains(&median), "median {median}");
        assert!(v.iter().any(|&x| x > 90_000));
    }
}
