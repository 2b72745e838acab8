//! The `Snapshotter`: the state machine the consensus thread drives (SPEC §3).
//!
//! Every call is cheap: it updates in-memory state, may capture a frozen view (the node's
//! `capture`, required to be cheap) and may add an action to a generation's queue. Nothing here
//! performs I/O or waits for a task; serialisation and persistence run on the engine.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use snapseal_engine::TaskSystem;
use snapseal_persist::receipt::SignedRoot;
use snapseal_persist::{Hash, MemoryBudget, SigningKey, SnapshotStore};
use tracing::{debug, info, warn};

use crate::actions::{GenerationError, PersistJob, SerialiseJob};
use crate::config::{ConfigError, SnapshotterConfig};
use crate::error::EvidenceError;
use crate::events::{
    Counters, EventHub, Events, SnapshotCounters, SnapshotEvent, DEFAULT_EVENT_CAPACITY,
};
use crate::generation::{GenShared, Generation};
use crate::node::{EvidenceSink, ProofSource, StateSource};
use crate::points::Points;

/// What a test can see of one pending generation ([`Snapshotter::pending`], feature
/// `internals`).
#[cfg(feature = "internals")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerationInfo {
    /// Generation number (0, 1, 2 … in creation order).
    pub generation: u64,
    /// Snapshot index.
    pub idx: u64,
    /// Serialisation finished.
    pub serialised: bool,
    /// Evidence index, once recorded.
    pub evidence_idx: Option<u64>,
    /// Index of the signature kept for it, once recorded.
    pub sig_idx: Option<u64>,
    /// The gate held and the persist action was added.
    pub persist_scheduled: bool,
}

/// How [`Snapshotter::close`] treats pending generations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseMode {
    /// Let generations whose gate already held (their persist action is queued or running)
    /// finish — their `.committed` files are written, or they fail — and cancel every other.
    Drain,
    /// Cancel every generation. A serialisation in progress stops at its next write; a persist
    /// action already running cannot be interrupted and completes (its file may be committed,
    /// and is then reported).
    Cancel,
}

/// Turns commit points into generations and generations into `.committed` files.
///
/// Drive it from the consensus thread (`&mut self`: one caller at a time). Generations run on
/// the [`TaskSystem`] given at construction — threaded in production, manual in tests.
///
/// End it with [`close`](Self::close); dropping it closes it with [`CloseMode::Cancel`].
///
/// Receipts come from a Merkle ledger by default (signatures and proofs, as below); a node
/// whose log has no Merkle tree signs them with its own key instead
/// ([`with_statement_key`](Self::with_statement_key)).
///
/// One snapshot from start to end, with a five-entry Merkle ledger and the engine in manual
/// mode (nothing runs until `run_until_idle`, so each step is visible):
///
/// ```
/// use std::io::{self, Write};
/// use std::sync::{mpsc, Arc, Mutex};
/// use snapseal_actors::{
///     CaptureError, CloseMode, EvidenceSink, InclusionProof, ProofSource, SnapshotEvent,
///     Snapshotter, SnapshotterConfig, StateSource, StateView,
/// };
/// use snapseal_engine::TaskSystem;
/// use snapseal_persist::fs::RealFs;
/// use snapseal_persist::receipt::{leaf_hash, sign_root, Ed25519Verifier, MerkleTree};
/// use snapseal_persist::{Hash, SigningKey, SnapshotStore, StoreOptions};
///
/// /// The node's state: always the same bytes (a real node hands out the version it kept).
/// struct Greeting;
/// impl StateSource for Greeting {
///     fn capture(&self, _idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
///         Ok(Box::new(Greeting))
///     }
/// }
/// impl StateView for Greeting {
///     fn write_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
///         out.write_all(b"hello")
///     }
/// }
/// /// Evidence requests, handed to the consensus thread (which owns the ledger).
/// struct Requests(Mutex<mpsc::Sender<(u64, Hash)>>);
/// impl EvidenceSink for Requests {
///     fn append_evidence(&self, snapshot_idx: u64, claims_digest: Hash) {
///         let _ = self.0.lock().unwrap().send((snapshot_idx, claims_digest));
///     }
/// }
/// /// The ledger's Merkle tree as of one signature, and its txs' digests.
/// struct Tree(MerkleTree, Vec<Hash>);
/// impl ProofSource for Tree {
///     fn inclusion_proof(&self, evidence: u64, sig: u64) -> Result<InclusionProof, String> {
///         let path = self.0.proof(evidence - 1, sig - 1).ok_or("no such leaf")?;
///         Ok(InclusionProof { tx_digest: self.1[evidence as usize - 1], path })
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let ledger_key = SigningKey::from_bytes(&[9; 32]);
/// let verifier = Arc::new(Ed25519Verifier::new(vec![ledger_key.verifying_key()]));
/// let opts = StoreOptions::new(verifier);
/// let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?);
/// let tasks = TaskSystem::manual(7);
/// let (requests, evidence_wanted) = mpsc::channel();
/// let config = SnapshotterConfig { tx_interval: 3, ..SnapshotterConfig::default() };
/// let sink = Arc::new(Requests(Mutex::new(requests)));
/// let mut snap =
///     Snapshotter::new(config, tasks.clone(), Arc::clone(&store), Arc::new(Greeting), sink)?;
///
/// // Txs 1 to 3; 3 is a snapshot point, and the commit index reaches it.
/// let (mut tree, mut txs) = (MerkleTree::new(), Vec::new());
/// for tx in 1..=3u8 {
///     txs.push([tx; 32]);
///     tree.push(leaf_hash(&[tx; 32], &[0; 32]));
/// }
/// assert!(snap.record_committable(3));
/// snap.commit(3);
/// tasks.run_until_idle(); // the state at 3 is serialised
///
/// // The node appends the evidence tx snapseal asked for (4), then a signature tx (5) over
/// // the tree of txs 1 to 4, and its commit index reaches 5.
/// let (snapshot_idx, claims_digest) = evidence_wanted.try_recv()?;
/// txs.push([4; 32]);
/// tree.push(leaf_hash(&[4; 32], &claims_digest));
/// snap.record_evidence(4, snapshot_idx, claims_digest)?;
/// snap.record_signature(sign_root(&ledger_key, 5, &tree.root(4).unwrap()));
/// snap.record_tree(5, Arc::new(Tree(tree, txs)));
/// snap.commit(5);
/// tasks.run_until_idle(); // the snapshot is written, with its receipt
///
/// match snap.events().try_recv() {
///     Some(SnapshotEvent::Committed(c)) => {
///         assert_eq!((c.idx, c.evidence_idx, c.sig_idx), (3, 4, 5));
///     }
///     other => panic!("expected the snapshot committed, got {other:?}"),
/// }
/// snap.close(CloseMode::Drain);
/// // After a restart: the newest snapshot that verifies, and its state.
/// let latest = store.latest()?.expect("the snapshot at 3");
/// assert_eq!(latest.name().idx, 3);
/// assert_eq!(io::read_to_string(latest.body_reader()?)?, "hello");
/// # Ok(()) }
/// ```
pub struct Snapshotter {
    config: SnapshotterConfig,
    tasks: TaskSystem,
    store: Arc<SnapshotStore>,
    state: Arc<dyn StateSource>,
    sink: Arc<dyn EvidenceSink>,
    /// Statement mode: the node's key, which signs each receipt. `None`: Merkle mode.
    statement_key: Option<Arc<SigningKey>>,
    points: Points,
    /// Pending generations in creation order.
    pending: Vec<Generation>,
    next_generation: u64,
    commit_idx: u64,
    forced: bool,
    /// Engine-clock time of the last serialisation started (None: none yet).
    last_serialise_at: Option<Duration>,
    /// Newest index persisted so far: the baseline floor if a rollback removes every point.
    last_persisted_idx: u64,
    counters: Arc<Counters>,
    /// In-memory allowance of all pending bodies (`None`: never spill to disk).
    spill_budget: Option<MemoryBudget>,
    events: Arc<EventHub>,
    /// Points `record_committable` accepted and `StateSource::release` was not yet called for.
    armed: BTreeSet<u64>,
    /// Something may have left both the undone points and `pending` since the last
    /// [`release_finished`](Self::release_finished): only then can an armed point be due for
    /// release.
    release_due: bool,
    /// How many pending generations have evidence and no persist action yet: the only ones a
    /// signature, a tree or a commit can move (see [`awaiting_proof`](Self::awaiting_proof)).
    awaiting_proof: usize,
    closed: bool,
    done_tx: Sender<(u64, SnapshotEvent)>,
    done_rx: Receiver<(u64, SnapshotEvent)>,
}

impl std::fmt::Debug for Snapshotter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshotter")
            .field("config", &self.config)
            .field("commit_idx", &self.commit_idx)
            .field(
                "receipts",
                &if self.statement_key.is_some() {
                    "statement"
                } else {
                    "merkle"
                },
            )
            .field("baseline", &self.points.baseline())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Snapshotter {
    /// A Snapshotter with validated `config`, running generations on `tasks` and persisting into
    /// `store`.
    ///
    /// A restart resumes by default: the schedule counts from the store's newest snapshot that
    /// verifies ([`SnapshotStore::newest_verified`]: no second read when the node loaded that
    /// snapshot through the store just before), so a node restored at 10 000 does not snapshot
    /// again at 10 010. [`with_baseline`](Self::with_baseline) says otherwise. When the store
    /// cannot be read the schedule starts from 0 (logged): a snapshot comes early, none is lost.
    /// Blocks while that verification reads.
    pub fn new(
        config: SnapshotterConfig,
        tasks: TaskSystem,
        store: Arc<SnapshotStore>,
        state: Arc<dyn StateSource>,
        sink: Arc<dyn EvidenceSink>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        if let (true, Some(level)) = (store.is_chunked(), config.compression) {
            // FORMAT.md §2.2: a chunked body is never compressed; refused here, not at the
            // first serialisation.
            return Err(ConfigError {
                field: "compression",
                value: level.to_string(),
                allowed: "none with a chunked store (StoreOptions::chunked)",
            });
        }
        let capacity = NonZeroUsize::new(DEFAULT_EVENT_CAPACITY).unwrap_or(NonZeroUsize::MIN);
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let spill_budget = config.spill_threshold.map(MemoryBudget::new);
        let resumed = resume_point(&store);
        Ok(Snapshotter {
            spill_budget,
            config,
            tasks,
            store,
            state,
            sink,
            statement_key: None,
            points: Points::starting_at(resumed),
            pending: Vec::new(),
            next_generation: 0,
            commit_idx: 0,
            forced: false,
            last_serialise_at: None,
            last_persisted_idx: resumed,
            counters: Arc::new(Counters::default()),
            events: EventHub::new(capacity),
            armed: BTreeSet::new(),
            release_due: false,
            awaiting_proof: 0,
            closed: false,
            done_tx,
            done_rx,
        })
    }

    /// The state this Snapshotter starts from is the snapshot at `idx`, overriding where
    /// [`new`](Self::new) resumed (the store's newest snapshot that verifies): the next
    /// interval counts from `idx`, so the first point is due at `idx + tx_interval`, and a
    /// rollback that removes every later point falls back to `idx`. `with_baseline(0)` starts
    /// a fresh schedule. Call it before any other call.
    pub fn with_baseline(mut self, idx: u64) -> Self {
        self.points = Points::starting_at(idx);
        self.last_persisted_idx = idx;
        self
    }

    /// Statement mode (SPEC §3.3): each snapshot's receipt is a signed statement by `key`, the
    /// node's own Ed25519 key, over the snapshot's claims digest, its index, the evidence index
    /// and the evidence tx's log term (receipt scheme 2, docs/FORMAT.md §5.3) — for a ledger
    /// without a Merkle tree, such as a Raft log. A generation persists once its evidence tx is
    /// committed (the commit index reaches the evidence index); no signature tx or proof is
    /// waited for, and [`record_signature`](Self::record_signature) and
    /// [`record_tree`](Self::record_tree) are ignored. Give the evidence tx's term with
    /// [`record_evidence_in_term`](Self::record_evidence_in_term) (a log without terms uses
    /// [`record_evidence`](Self::record_evidence): no term is signed). A `Committed` event's
    /// `sig_idx` is then the evidence index, which the statement vouches is committed.
    ///
    /// Readers trust the statement when `key`'s verifying key is among their statement keys
    /// ([`with_statement_keys`]); docs/MEMBERSHIP.md says how a cluster adds, rotates and
    /// retires keys. Without this call the Snapshotter is in Merkle mode. Call it before any
    /// other call.
    ///
    /// [`with_statement_keys`]: snapseal_persist::receipt::Ed25519Verifier::with_statement_keys
    ///
    /// ```
    /// # use std::io::{self, Write};
    /// # use std::sync::{mpsc, Arc, Mutex};
    /// # use snapseal_actors::{
    /// #     CaptureError, CloseMode, EvidenceSink, Hash, Snapshotter, SnapshotterConfig,
    /// #     StateSource, StateView,
    /// # };
    /// # use snapseal_engine::TaskSystem;
    /// # use snapseal_persist::fs::RealFs;
    /// # use snapseal_persist::receipt::{Ed25519Verifier, SchemeId};
    /// # use snapseal_persist::{SigningKey, SnapshotStore, StoreOptions};
    /// # struct Greeting;
    /// # impl StateSource for Greeting {
    /// #     fn capture(&self, _idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
    /// #         Ok(Box::new(Greeting))
    /// #     }
    /// # }
    /// # impl StateView for Greeting {
    /// #     fn write_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
    /// #         out.write_all(b"hello")
    /// #     }
    /// # }
    /// # struct Requests(Mutex<mpsc::Sender<(u64, Hash)>>);
    /// # impl EvidenceSink for Requests {
    /// #     fn append_evidence(&self, snapshot_idx: u64, claims_digest: Hash) {
    /// #         let _ = self.0.lock().unwrap().send((snapshot_idx, claims_digest));
    /// #     }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let (requests, evidence_wanted) = mpsc::channel();
    /// # let sink = Arc::new(Requests(Mutex::new(requests)));
    /// // The node's key signs its snapshots; its store trusts statements by that key.
    /// let node_key = SigningKey::from_bytes(&[3; 32]);
    /// let trusted = Ed25519Verifier::new(Vec::new())
    ///     .with_statement_keys(vec![node_key.verifying_key()]);
    /// let opts = StoreOptions::new(Arc::new(trusted));
    /// let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?);
    /// let tasks = TaskSystem::manual(1);
    /// let config = SnapshotterConfig { tx_interval: 3, ..SnapshotterConfig::default() };
    /// let mut snap =
    ///     Snapshotter::new(config, tasks.clone(), Arc::clone(&store), Arc::new(Greeting), sink)?
    ///         .with_statement_key(node_key);
    ///
    /// assert!(snap.record_committable(3));
    /// snap.commit(3);
    /// tasks.run_until_idle(); // serialised: the node is asked for an evidence entry
    /// let (snapshot_idx, claims_digest) = evidence_wanted.try_recv()?;
    /// // The node appends it at 4, in term 2; nothing is written until 4 is committed.
    /// snap.record_evidence_in_term(4, snapshot_idx, claims_digest, 2)?;
    /// tasks.run_until_idle();
    /// assert!(store.list()?.is_empty());
    /// snap.commit(4);
    /// tasks.run_until_idle();
    ///
    /// let latest = store.latest()?.expect("the snapshot at 3");
    /// let receipt = latest.receipt();
    /// assert_eq!(latest.name().idx, 3);
    /// assert_eq!((receipt.scheme, receipt.term), (SchemeId::STATEMENT, Some(2)));
    /// snap.close(CloseMode::Drain);
    /// # Ok(()) }
    /// ```
    pub fn with_statement_key(mut self, key: SigningKey) -> Self {
        self.statement_key = Some(Arc::new(key));
        self
    }

    /// Bound the [`Events`] queue at `capacity` events instead of 1024 (overflow policy: see
    /// [`Events`]).
    pub fn with_event_capacity(self, capacity: NonZeroUsize) -> Self {
        self.events.set_capacity(capacity);
        self
    }

    /// Call `hook` with every event as it is produced, before it is queued for [`Events`] —
    /// for a node that forwards events into its own (for example async) channel.
    ///
    /// It runs on the thread that produced the event: the consensus thread (inside a
    /// Snapshotter call, for `Skipped` and `Dropped`) or an engine worker (for `Committed` and
    /// `Failed`). So it must be quick and must never block (use a non-blocking or unbounded
    /// send); a panic in it is caught and logged. Hooks see every event (they are not subject
    /// to the queue's overflow policy) and are dropped when the Snapshotter closes.
    ///
    /// ```
    /// # use std::io::{self, Write};
    /// # use std::sync::{mpsc, Arc, Mutex};
    /// # use snapseal_actors::{
    /// #     CaptureError, CloseMode, EvidenceSink, Hash, SnapshotEvent, Snapshotter,
    /// #     SnapshotterConfig, StateSource, StateView,
    /// # };
    /// # use snapseal_engine::TaskSystem;
    /// # use snapseal_persist::fs::RealFs;
    /// # use snapseal_persist::receipt::Ed25519Verifier;
    /// # use snapseal_persist::{SnapshotStore, StoreOptions};
    /// # /// The state: counts its captures.
    /// # #[derive(Default)]
    /// # struct Counted(Mutex<u32>);
    /// # impl StateSource for Counted {
    /// #     fn capture(&self, _idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
    /// #         *self.0.lock().unwrap() += 1;
    /// #         Ok(Box::new(Bytes))
    /// #     }
    /// # }
    /// # struct Bytes;
    /// # impl StateView for Bytes {
    /// #     fn write_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
    /// #         out.write_all(b"state")
    /// #     }
    /// # }
    /// # struct Requests(Mutex<mpsc::Sender<(u64, Hash)>>);
    /// # impl EvidenceSink for Requests {
    /// #     fn append_evidence(&self, snapshot_idx: u64, claims_digest: Hash) {
    /// #         let _ = self.0.lock().unwrap().send((snapshot_idx, claims_digest));
    /// #     }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(Vec::new())));
    /// # let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?);
    /// # let (requests, evidence_wanted) = mpsc::channel();
    /// # let sink = Arc::new(Requests(Mutex::new(requests)));
    /// # let state = Arc::new(Counted::default());
    /// let tasks = TaskSystem::manual(1);
    /// // One generation at a time: a snapshot due while one is pending is skipped.
    /// let config = SnapshotterConfig { tx_interval: 2, max_pending: 1, ..Default::default() };
    /// let mut snap = Snapshotter::new(config, tasks.clone(), store, state, sink)?;
    ///
    /// // Forward every event into the node's own channel, without blocking.
    /// let (events_tx, events) = mpsc::channel();
    /// let events_tx = Mutex::new(events_tx);
    /// snap.on_event(move |event| {
    ///     let _ = events_tx.lock().unwrap().send(event.clone());
    /// });
    ///
    /// assert!(snap.record_committable(2));
    /// snap.commit(2); // generation 0 starts, and waits for its proof
    /// assert!(snap.record_committable(4));
    /// snap.commit(4); // due, but one generation is already pending
    /// assert!(matches!(events.try_recv()?, SnapshotEvent::Skipped { idx: 4 }));
    /// assert_eq!(snap.counters().skipped, 1);
    /// # drop(evidence_wanted);
    /// # Ok(()) }
    /// ```
    pub fn on_event(&self, hook: impl Fn(&SnapshotEvent) + Send + Sync + 'static) {
        self.events.add_hook(Arc::new(hook));
    }

    /// At every signature tx: records `idx` as a candidate snapshot point when a snapshot is due
    /// there (or was forced).
    ///
    /// Returns `true` when `idx` became a snapshot point: the node must then be able to
    /// produce its state as of `idx` (keep that version) until
    /// [`StateSource::release(idx)`](StateSource::release) — [`StateSource::capture(idx)`](StateSource::capture)
    /// comes once the commit index reaches `idx`. Nothing else is asked of the node (a node that
    /// splits its ledger into chunks may start a new chunk here, so snapshots align with chunk
    /// boundaries, but snapseal does not rely on it). `false`: no snapshot at `idx`; nothing to
    /// keep.
    pub fn record_committable(&mut self, idx: u64) -> bool {
        let baseline = self.points.baseline();
        if idx <= baseline {
            return false;
        }
        let since = idx - baseline;
        let time_due = self.config.time_interval.is_some_and(|interval| {
            let last = self.last_serialise_at.unwrap_or(Duration::ZERO);
            self.tasks.now().saturating_sub(last) >= interval && since > self.config.min_tx_count
        });
        let due = self.forced || since >= self.config.tx_interval || time_due;
        if !due {
            return false;
        }
        let forced = std::mem::take(&mut self.forced);
        if !self.points.push(idx, forced) {
            return false;
        }
        self.armed.insert(idx);
        debug!(idx, forced, baseline, "snapshot point recorded");
        true
    }

    /// The commit index advanced to `idx`: pass the gates this opens, then start generations for
    /// due points at or below it.
    pub fn commit(&mut self, idx: u64) {
        self.drain_done();
        self.commit_idx = self.commit_idx.max(idx);
        self.check_gates();
        self.schedule_due();
        self.release_finished();
    }

    /// The node appended the evidence tx for the snapshot at `snapshot_idx` at `evidence_idx`.
    ///
    /// An error means the evidence was not recorded and the generation keeps waiting. After a
    /// rollback, errors for which [`EvidenceError::is_stale`] holds are expected (the
    /// announcement predates the rollback); the others mean the node appended evidence it
    /// should not have.
    ///
    /// `digest` is the claims digest the node was handed by
    /// [`EvidenceSink::append_evidence`](crate::EvidenceSink::append_evidence) (idx, flags,
    /// lengths and body digest; docs/FORMAT.md §3), not the bare body digest.
    pub fn record_evidence(
        &mut self,
        evidence_idx: u64,
        snapshot_idx: u64,
        digest: Hash,
    ) -> Result<(), EvidenceError> {
        self.evidence(evidence_idx, snapshot_idx, digest, None)
    }

    /// [`record_evidence`](Self::record_evidence) for a log with terms: the evidence tx at
    /// `evidence_idx` was appended in log term `term`. In statement mode
    /// ([`with_statement_key`](Self::with_statement_key)) the snapshot's signed statement
    /// carries the term, and readers report it
    /// ([`VerifiedReceipt::term`](snapseal_persist::receipt::VerifiedReceipt::term)); a Merkle
    /// receipt carries no term, so in Merkle mode it is not used.
    pub fn record_evidence_in_term(
        &mut self,
        evidence_idx: u64,
        snapshot_idx: u64,
        digest: Hash,
        term: u64,
    ) -> Result<(), EvidenceError> {
        self.evidence(evidence_idx, snapshot_idx, digest, Some(term))
    }

    /// Records the evidence tx (with its term, when given) for the generation at
    /// `snapshot_idx`; see [`record_evidence`](Self::record_evidence).
    fn evidence(
        &mut self,
        evidence_idx: u64,
        snapshot_idx: u64,
        digest: Hash,
        term: Option<u64>,
    ) -> Result<(), EvidenceError> {
        self.drain_done();
        self.release_finished();
        let Some(generation) = self
            .pending
            .iter_mut()
            .find(|g| g.idx == snapshot_idx && g.evidence_idx.is_none())
        else {
            return Err(EvidenceError::UnknownSnapshot {
                evidence_idx,
                snapshot_idx,
            });
        };
        if evidence_idx <= snapshot_idx {
            return Err(EvidenceError::NotAfterSnapshot {
                evidence_idx,
                snapshot_idx,
            });
        }
        let claims = generation
            .shared
            .body
            .lock()
            .as_ref()
            .map(|b| b.claims(snapshot_idx).digest());
        let Some(expected) = claims else {
            return Err(EvidenceError::NotSerialised {
                evidence_idx,
                snapshot_idx,
            });
        };
        if expected != digest {
            return Err(EvidenceError::DigestMismatch {
                evidence_idx,
                snapshot_idx,
                expected,
                got: digest,
            });
        }
        generation.evidence_idx = Some(evidence_idx);
        generation.term = term;
        generation.digest = Some(digest);
        generation.span.record("evidence_idx", evidence_idx);
        debug!(parent: &generation.span, evidence_idx, "evidence recorded");
        self.recount_awaiting();
        self.check_gates();
        Ok(())
    }

    /// A signature tx at `signed.sig_idx` signed the ledger's root. Each generation with
    /// evidence keeps the first signature strictly after its evidence. Ignored in statement
    /// mode ([`with_statement_key`](Self::with_statement_key)), which needs no signature tx.
    pub fn record_signature(&mut self, signed: SignedRoot) {
        self.drain_done();
        self.release_finished();
        if self.statement_key.is_some() || !self.proof_awaited() {
            return;
        }
        for g in &mut self.pending {
            let Some(evidence_idx) = g.evidence_idx else {
                continue;
            };
            if g.signature.is_some() || signed.sig_idx <= evidence_idx {
                continue;
            }
            if g.tree.as_ref().is_some_and(|(t, _)| *t != signed.sig_idx) {
                g.tree = None;
            }
            g.span.record("sig_idx", signed.sig_idx);
            g.signature = Some(signed.clone());
        }
        self.check_gates();
    }

    /// The tree (proof source) as of the signature at `sig_idx`. Each generation with evidence
    /// keeps the first tree strictly after its evidence that matches its signature. Ignored in
    /// statement mode ([`with_statement_key`](Self::with_statement_key)), which needs no proof.
    pub fn record_tree(&mut self, sig_idx: u64, tree: Arc<dyn ProofSource>) {
        self.drain_done();
        if self.statement_key.is_some() || !self.proof_awaited() {
            return;
        }
        for g in &mut self.pending {
            let Some(evidence_idx) = g.evidence_idx else {
                continue;
            };
            let matches_sig = g.signature.as_ref().is_none_or(|s| s.sig_idx == sig_idx);
            if g.tree.is_none() && sig_idx > evidence_idx && matches_sig {
                g.tree = Some((sig_idx, Arc::clone(&tree)));
            }
        }
        self.check_gates();
    }

    /// The ledger was rolled back to `idx`: drop points after it and, newest first, the
    /// generations whose evidence is gone (or never came), stopping at the first whose evidence
    /// survives — plus any older generation whose evidence is gone (evidence lands in the
    /// order serialisations finish, so an older generation's can be newer).
    ///
    /// A generation whose evidence tx is rolled back is dropped and leaves no file; the state
    /// at its point survived the rollback, so it is captured again at the next commit. (The
    /// node's `StateSource` here counts its captures; the setup is that of the
    /// [`Snapshotter`] example.)
    ///
    /// ```
    /// # use std::io::{self, Write};
    /// # use std::sync::{mpsc, Arc, Mutex};
    /// # use snapseal_actors::{
    /// #     CaptureError, CloseMode, EvidenceSink, Hash, SnapshotEvent, Snapshotter,
    /// #     SnapshotterConfig, StateSource, StateView,
    /// # };
    /// # use snapseal_engine::TaskSystem;
    /// # use snapseal_persist::fs::RealFs;
    /// # use snapseal_persist::receipt::Ed25519Verifier;
    /// # use snapseal_persist::{SnapshotStore, StoreOptions};
    /// # /// The state: counts its captures.
    /// # #[derive(Default)]
    /// # struct Counted(Mutex<u32>);
    /// # impl StateSource for Counted {
    /// #     fn capture(&self, _idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
    /// #         *self.0.lock().unwrap() += 1;
    /// #         Ok(Box::new(Bytes))
    /// #     }
    /// # }
    /// # struct Bytes;
    /// # impl StateView for Bytes {
    /// #     fn write_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
    /// #         out.write_all(b"state")
    /// #     }
    /// # }
    /// # struct Requests(Mutex<mpsc::Sender<(u64, Hash)>>);
    /// # impl EvidenceSink for Requests {
    /// #     fn append_evidence(&self, snapshot_idx: u64, claims_digest: Hash) {
    /// #         let _ = self.0.lock().unwrap().send((snapshot_idx, claims_digest));
    /// #     }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(Vec::new())));
    /// # let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?);
    /// # let (requests, evidence_wanted) = mpsc::channel();
    /// # let sink = Arc::new(Requests(Mutex::new(requests)));
    /// # let state = Arc::new(Counted::default());
    /// let tasks = TaskSystem::manual(1);
    /// let config = SnapshotterConfig { tx_interval: 3, ..SnapshotterConfig::default() };
    /// let mut snap =
    ///     Snapshotter::new(config, tasks.clone(), Arc::clone(&store), state.clone(), sink)?;
    /// assert!(snap.record_committable(3));
    /// snap.commit(3);
    /// tasks.run_until_idle(); // serialised; the node is asked for an evidence tx
    /// let (snapshot_idx, claims_digest) = evidence_wanted.try_recv()?;
    ///
    /// // The node loses leadership before it appends the evidence: its uncommitted tail is
    /// // rolled back to 3, and the generation with it.
    /// snap.rollback(3);
    /// let dropped = snap.events().try_recv();
    /// assert!(matches!(dropped, Some(SnapshotEvent::Dropped { idx: 3, .. })));
    /// // The request still queued is stale now: recording it is refused as such.
    /// let late = snap.record_evidence(4, snapshot_idx, claims_digest);
    /// assert!(late.is_err_and(|e| e.is_stale()));
    ///
    /// // The next commit captures the state at 3 again, as a new generation.
    /// snap.commit(3);
    /// assert_eq!(*state.0.lock().unwrap(), 2);
    /// let counters = snap.counters();
    /// assert_eq!((counters.scheduled, counters.dropped), (2, 1));
    /// snap.close(CloseMode::Cancel);
    /// assert!(store.list()?.is_empty()); // nothing was committed
    /// # Ok(()) }
    /// ```
    pub fn rollback(&mut self, idx: u64) {
        self.drain_done();
        // Walk back from the newest generation dropping those without surviving evidence, up
        // to the first whose evidence survives. Older ones can still hold evidence `> idx`:
        // evidence is appended in the order serialisations finish, not in generation order,
        // so those are dropped too — their `evidence_idx` would name some other tx.
        let mut walking = true;
        let (mut kept, mut dropped) = (Vec::new(), Vec::new());
        for g in std::mem::take(&mut self.pending).into_iter().rev() {
            let survives = g.evidence_idx.is_some_and(|e| e <= idx);
            let dangling = g.evidence_idx.is_some_and(|e| e > idx);
            if (walking && !survives) || dangling {
                dropped.push(g);
            } else {
                kept.push(g);
            }
            walking &= !survives;
        }
        kept.reverse();
        self.pending = kept;
        let mut rearm = Vec::new();
        for g in dropped {
            if g.persist_scheduled {
                warn!(generation = g.number, idx = g.idx, "rollback below a committed signature; dropping a generation already persisting");
            }
            g.shared.dropped.store(true, Ordering::Release);
            g.queue.cancel();
            let body = g.shared.body.lock().take();
            if let Some(body) = body.filter(|b| b.is_spilled()) {
                // Closing and unlinking its pending file is I/O: not on the consensus thread.
                self.tasks.spawn("discard spilled body", move || {
                    drop(body);
                    Ok(())
                });
            }
            Counters::bump(&self.counters.dropped, "snapseal_snapshots_dropped_total");
            info!(parent: &g.span, rollback_to = idx, "generation dropped by rollback");
            self.events.emit(SnapshotEvent::Dropped {
                generation: g.number,
                idx: g.idx,
            });
            if g.idx <= idx {
                rearm.push(g.idx);
            }
        }
        // Survivors keep their evidence, but a signature after `idx` no longer exists.
        for g in &mut self.pending {
            if !g.persist_scheduled && g.signature.as_ref().is_some_and(|s| s.sig_idx > idx) {
                g.signature = None;
                g.tree = None;
            }
        }
        let fallback = self
            .pending
            .iter()
            .map(|g| g.idx)
            .chain([self.last_persisted_idx])
            .max()
            .unwrap_or(0);
        self.points.rollback(idx, fallback);
        // The state at a dropped generation's point survived: snapshot it again.
        for point in rearm {
            self.points.rearm(point);
        }
        self.commit_idx = self.commit_idx.min(idx);
        self.recount_awaiting();
        self.release_due = true;
        self.release_finished();
    }

    /// Force a snapshot at the next `record_committable`, whatever the interval.
    pub fn trigger_snapshot(&mut self) {
        self.forced = true;
    }

    /// Notifications for the node: committed, failed, dropped and skipped generations, in a
    /// bounded queue (overflow policy: see [`Events`]). The receiver may be cloned; each event
    /// is delivered to one receiver.
    pub fn events(&self) -> Events {
        Events::new(Arc::clone(&self.events))
    }

    /// The counters (scheduled, skipped, deferred, persisted, dropped, failed).
    pub fn counters(&self) -> SnapshotCounters {
        self.counters.snapshot()
    }

    /// Pending generations, oldest first (after accounting for finished ones). For tests and
    /// the simulator's invariant checks: feature `internals`.
    #[cfg(feature = "internals")]
    pub fn pending(&mut self) -> Vec<GenerationInfo> {
        self.drain_done();
        self.release_finished();
        self.pending
            .iter()
            .map(|g| GenerationInfo {
                generation: g.number,
                idx: g.idx,
                serialised: g.shared.is_serialised(),
                evidence_idx: g.evidence_idx,
                sig_idx: g.signature.as_ref().map(|s| s.sig_idx),
                persist_scheduled: g.persist_scheduled,
            })
            .collect()
    }

    /// The commit index as the Snapshotter knows it (feature `internals`).
    #[cfg(feature = "internals")]
    pub fn commit_idx(&self) -> u64 {
        self.commit_idx
    }

    /// The index the next `tx_interval` counts from.
    pub fn baseline(&self) -> u64 {
        self.points.baseline()
    }

    /// The store generations persist into.
    pub fn store(&self) -> &Arc<SnapshotStore> {
        &self.store
    }

    /// Ends the Snapshotter: cancels or drains pending generations (see [`CloseMode`]), waits
    /// for their running actions, releases every point still kept
    /// ([`StateSource::release`]), closes the event queue (receivers get what is queued, then
    /// `None`) and drops its handle on the store. If no one else holds the
    /// `Arc<SnapshotStore>`, the store — and its directory lock — is released when this
    /// returns. Cancelled generations are reported as `Dropped`.
    ///
    /// Blocks the calling thread until running actions finish. Do not call it from one of the
    /// Snapshotter's own actions or callbacks. With a manual task system it runs the drained
    /// generations' actions on the calling thread.
    pub fn close(mut self, mode: CloseMode) {
        self.shutdown(mode);
    }

    /// [`close`](Self::close) through `&mut` (the actix facade's `Close`, and `Drop`).
    pub(crate) fn shutdown(&mut self, mode: CloseMode) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.drain_done();
        let mut waiting = Vec::new();
        for g in std::mem::take(&mut self.pending) {
            if mode == CloseMode::Drain && g.persist_scheduled {
                waiting.push(g);
                continue;
            }
            g.shared.dropped.store(true, Ordering::Release);
            g.queue.cancel();
            Counters::bump(&self.counters.dropped, "snapseal_snapshots_dropped_total");
            info!(parent: &g.span, "generation cancelled by close");
            self.events.emit(SnapshotEvent::Dropped {
                generation: g.number,
                idx: g.idx,
            });
            waiting.push(g);
        }
        for g in &waiting {
            wait_for(&self.tasks, g);
            // A body left behind (cancelled after serialising) is dropped here, not on a task
            // that could outlive the close: a spilled one holds the directory open.
            drop(g.shared.body.lock().take());
        }
        drop(waiting);
        self.recount_awaiting();
        self.drain_done();
        for idx in std::mem::take(&mut self.armed) {
            self.state.release(idx);
        }
        self.events.close();
        info!("snapshotter closed");
    }

    /// Call [`StateSource::release`] for every armed point the Snapshotter no longer tracks:
    /// neither a point still to be captured nor a pending generation's.
    fn release_finished(&mut self) {
        // Called by every signature's calls, which must stay cheap while generations are
        // pending: only look when a point or a generation went away since the last look
        // (walking the armed points and the generations each time cost the consensus thread
        // one cache miss per generation, every signature), and even then do not allocate in
        // the usual case, every armed point still live.
        if !std::mem::take(&mut self.release_due) {
            debug_assert!(
                self.armed_all_live(),
                "an armed point left without release_due"
            );
            return;
        }
        if self.armed_all_live() {
            return;
        }
        let mut live: BTreeSet<u64> = self.points.undone().collect();
        live.extend(self.pending.iter().map(|g| g.idx));
        let finished: Vec<u64> = self.armed.difference(&live).copied().collect();
        for idx in finished {
            self.armed.remove(&idx);
            debug!(idx, "snapshot point released");
            self.state.release(idx);
        }
    }

    /// Whether every armed point is still live: a point still to be captured, or a pending
    /// generation's.
    fn armed_all_live(&self) -> bool {
        let pending = &self.pending;
        let points = &self.points;
        self.armed.iter().all(|&idx| {
            pending.iter().any(|g| g.idx == idx) || points.undone().any(|undone| undone == idx)
        })
    }

    /// Remove generations whose queue finished (persisted or failed).
    fn drain_done(&mut self) {
        let mut removed = false;
        while let Ok((number, event)) = self.done_rx.try_recv() {
            if let SnapshotEvent::Committed(c) = &event {
                self.last_persisted_idx = self.last_persisted_idx.max(c.idx);
            }
            self.pending.retain(|g| g.number != number);
            removed = true;
        }
        if removed {
            self.release_due = true;
            self.recount_awaiting();
        }
    }

    /// Whether a generation waits for its proof (has evidence, no persist action yet): only
    /// then can a signature, a tree or a commit change anything among the pending ones.
    fn proof_awaited(&self) -> bool {
        debug_assert_eq!(
            self.awaiting_proof,
            self.count_awaiting(),
            "awaiting_proof not recounted after a change"
        );
        self.awaiting_proof > 0
    }

    fn count_awaiting(&self) -> usize {
        self.pending.iter().filter(|g| g.awaits_proof()).count()
    }

    /// Recount [`awaiting_proof`](Self::awaiting_proof) after evidence was recorded, a persist
    /// action added or a generation removed: rare events, unlike the signatures that read it.
    fn recount_awaiting(&mut self) {
        self.awaiting_proof = self.count_awaiting();
    }

    /// Add the persist action to every generation whose gate now holds.
    fn check_gates(&mut self) {
        if !self.proof_awaited() {
            return;
        }
        let mut scheduled = false;
        for g in &mut self.pending {
            let Some((evidence_idx, proof)) = g.gate(self.commit_idx, self.statement_key.as_ref())
            else {
                continue;
            };
            let job = PersistJob {
                generation: g.number,
                idx: g.idx,
                evidence_idx,
                proof,
                shared: Arc::clone(&g.shared),
                store: Arc::clone(&self.store),
                span: g.span.clone(),
                events: Arc::clone(&self.events),
                done: self.done_tx.clone(),
                counters: Arc::clone(&self.counters),
            };
            g.persist_scheduled = g.queue.add_action("persist", move || job.run());
            scheduled |= g.persist_scheduled;
            debug!(parent: &g.span, evidence_idx, scheduled = g.persist_scheduled, "gate passed");
        }
        if scheduled {
            self.recount_awaiting();
        }
    }

    /// Start generations for due points `<= commit_idx`, honouring max_pending and cooldown.
    fn schedule_due(&mut self) {
        let now = self.tasks.now();
        for point in self.points.due(self.commit_idx) {
            // The point may be marked done below without a generation to keep it live.
            self.release_due = true;
            if point.idx == 0 {
                self.points.mark_done(0);
                continue;
            }
            if self.pending.len() >= self.config.max_pending {
                if point.forced {
                    // A forced snapshot is a user's request: wait for a slot, never drop it.
                    if self.points.mark_deferred(point.idx) {
                        Counters::bump(
                            &self.counters.deferred,
                            "snapseal_snapshots_deferred_total",
                        );
                    }
                    continue;
                }
                warn!(
                    idx = point.idx,
                    max_pending = self.config.max_pending,
                    "snapshot skipped: too many pending generations"
                );
                self.points.mark_done(point.idx);
                Counters::bump(&self.counters.skipped, "snapseal_snapshots_skipped_total");
                self.events.emit(SnapshotEvent::Skipped { idx: point.idx });
                continue;
            }
            let in_cooldown = match (self.config.cooldown, self.last_serialise_at) {
                (Some(cooldown), Some(last)) => now < last + cooldown,
                _ => false,
            };
            if in_cooldown && !point.forced {
                if self.points.mark_deferred(point.idx) {
                    debug!(idx = point.idx, "snapshot deferred by cooldown");
                    Counters::bump(&self.counters.deferred, "snapseal_snapshots_deferred_total");
                }
                // Later points fall in the same cooldown.
                break;
            }
            self.points.mark_done(point.idx);
            self.last_serialise_at = Some(now);
            self.start_generation(point.idx);
        }
        self.points.prune(self.commit_idx);
    }

    fn start_generation(&mut self, idx: u64) {
        let number = self.next_generation;
        self.next_generation += 1;
        let span = tracing::info_span!(
            "generation",
            generation = number,
            idx,
            evidence_idx = tracing::field::Empty,
            sig_idx = tracing::field::Empty,
            bytes = tracing::field::Empty,
            digest = tracing::field::Empty,
        );
        let view = match self.state.capture(idx) {
            Ok(view) => view,
            Err(source) => {
                warn!(parent: &span, error = %source, "cannot capture state; generation failed");
                Counters::bump(&self.counters.failed, "snapseal_snapshots_failed_total");
                self.events.emit(SnapshotEvent::Failed {
                    generation: number,
                    idx,
                    error: Arc::new(GenerationError::Capture {
                        generation: number,
                        idx,
                        source,
                    }),
                });
                return;
            }
        };
        let shared = Arc::new(GenShared::default());
        let queue = self.tasks.ordered(format!("snapshot-{number}@{idx}"));
        let (done, events, counters, failed) = (
            self.done_tx.clone(),
            Arc::clone(&self.events),
            Arc::clone(&self.counters),
            Arc::clone(&shared),
        );
        queue.on_failure(move |failure| {
            Counters::bump(&counters.failed, "snapseal_snapshots_failed_total");
            let error = failed.error.lock().take().unwrap_or_else(|| {
                Arc::new(GenerationError::Action {
                    generation: number,
                    idx,
                    action: failure.action.clone(),
                    message: failure.message.clone(),
                    panicked: failure.panicked,
                })
            });
            let event = SnapshotEvent::Failed {
                generation: number,
                idx,
                error,
            };
            let _ = done.send((number, event.clone()));
            events.emit(event);
        });
        let job = SerialiseJob {
            generation: number,
            idx,
            view,
            compression: self.config.compression,
            // A chunked store always gets the store's builder: the chunks go to its packs
            // (the budget is not used by a chunked body).
            spill: self
                .spill_budget
                .clone()
                .or_else(|| self.store.is_chunked().then(|| MemoryBudget::new(u64::MAX)))
                .map(|budget| (Arc::clone(&self.store), budget)),
            shared: Arc::clone(&shared),
            sink: Arc::clone(&self.sink),
            span: span.clone(),
        };
        queue.add_action("serialise", move || job.run());
        Counters::bump(
            &self.counters.scheduled,
            "snapseal_snapshots_scheduled_total",
        );
        info!(parent: &span, "generation scheduled");
        self.pending.push(Generation {
            number,
            idx,
            queue,
            shared,
            span,
            evidence_idx: None,
            term: None,
            digest: None,
            signature: None,
            tree: None,
            persist_scheduled: false,
        });
    }
}

impl Drop for Snapshotter {
    /// Closes with [`CloseMode::Cancel`] (see [`Snapshotter::close`]).
    fn drop(&mut self) {
        self.shutdown(CloseMode::Cancel);
    }
}

/// Wait until the generation's queue has no running action. Threaded: as long as it takes (a
/// running serialisation stops at its next write once dropped). Manual: ready work runs on this
/// thread; what cannot run now (nothing running) is left.
fn wait_for(tasks: &TaskSystem, g: &Generation) {
    const PATIENCE: Duration = Duration::from_secs(10);
    if tasks.is_manual() {
        g.queue.wait_idle(PATIENCE);
        return;
    }
    while !g.queue.wait_idle(PATIENCE) {
        warn!(parent: &g.span, "close is waiting for a running snapshot action");
    }
}

/// Where a Snapshotter over `store` resumes: the newest snapshot that verifies, 0 when there is
/// none or the store cannot say (a fresh schedule takes a snapshot early, never loses one).
fn resume_point(store: &SnapshotStore) -> u64 {
    match store.newest_verified() {
        Ok(newest) => {
            let idx = newest.map_or(0, |name| name.idx);
            debug!(
                idx,
                "snapshot schedule resumes from the newest verified snapshot"
            );
            idx
        }
        Err(e) => {
            warn!(error = %snapseal_persist::ErrorChain(&e), "cannot find the newest snapshot; the schedule starts from 0");
            0
        }
    }
}
