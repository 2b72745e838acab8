//! [`SealedStateMachine`]: openraft's `RaftStateMachine` whose snapshots are snapseal files.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, RaftSnapshotBuilder, RaftTypeConfig, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::{
    statement_receipt, ReceiptVerifier, SchemeId, Schemes, StatementScheme,
};
use snapseal_persist::{
    BodyBuilder, FileState, FrozenChunk, Ingested, MemoryBudget, PendingBody, SigningKey,
    SnapshotFile, SnapshotName, SnapshotStore, SpillTarget, StoreError, StoreOptions, VerifyingKey,
};
use tracing::{info, warn};

use crate::chunked::Incoming;
use crate::data::{DataKind, SealedData};
use crate::handle::StateHandle;
use crate::meta::{position, read_meta, write_meta};
use crate::release::{ReleaseSignal, Released};
use crate::Error;

/// The user's state machine: applies entries, and writes and reads its whole state as bytes.
/// The adapter keeps the Raft bookkeeping (last applied log id, membership) and the snapshot
/// metadata itself; the state only sees its own data.
///
/// A snapshot build needs a view of the state frozen at the applied index while the state goes
/// on applying entries. It takes exactly one per build, when the build starts: the state's
/// [`frozen`](Self::frozen) chunks when it has them (nothing copied), or else one `Clone`
/// (serialised on a blocking thread; a state with structural sharing — persistent maps,
/// `Arc`ed pages — makes that copy cheap).
pub trait SealedState<C: RaftTypeConfig>: Clone + Default + Send + Sync + 'static {
    /// Applies one normal entry's data and returns the client's response.
    fn apply(&mut self, log_id: &LogId<C::NodeId>, data: &C::D) -> C::R;

    /// The response for an entry without application data (blank or membership).
    fn no_data_response(&self, log_id: &LogId<C::NodeId>) -> C::R;

    /// Writes the whole state. Runs on a blocking thread; the bytes are streamed to disk
    /// past the memory budget, so the state need not fit twice in memory.
    fn serialise(&self, out: &mut dyn Write) -> std::io::Result<()>;

    /// Rebuilds a state from what [`serialise`](Self::serialise) wrote. The bytes come from a
    /// snapshot that verified (receipt, claims, body digest), so they are the ones some
    /// trusted node's `serialise` wrote.
    fn restore(input: &mut dyn Read) -> std::io::Result<Self>;

    /// The zero-copy path: the serialised state — exactly the bytes
    /// [`serialise`](Self::serialise) would write, in order — as frozen, reference-counted
    /// chunks that nobody changes while the snapshot holds them. Called on openraft's state
    /// machine task, under the state's read lock, when a build starts, so it must be cheap
    /// (hand out `Arc`s, copy nothing).
    ///
    /// With `Some` the state is not cloned for the build. Without compression the chunks are
    /// hashed where they are and the file is written straight from them (the body is never
    /// copied and takes nothing from the memory budget: the memory is the state's); with
    /// compression they are streamed through the compressor. The chunks are dropped once the
    /// build is done. Default: `None`, and the build clones the state.
    fn frozen(&self) -> Option<Vec<FrozenChunk>> {
        None
    }
}

/// Configuration of a [`SealedStateMachine`].
///
/// The trusted keys decide whose snapshots a node installs: a snapshot signed by any other
/// key is refused, and nothing of it is committed. (`Config`, the `Sum` state and `entry`
/// are those of the crate example.)
///
/// ```
/// use openraft::storage::RaftStateMachine;
/// use openraft::RaftSnapshotBuilder;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use std::io::{Read, Write};
/// # use snapseal_openraft::{SealOptions, SealedData, SealedState, SealedStateMachine};
/// # use snapseal_persist::SigningKey;
/// # use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
/// # openraft::declare_raft_types!(pub Config: D = u64, R = u64, SnapshotData = SealedData);
/// # #[derive(Clone, Default)]
/// # struct Sum(u64);
/// # impl SealedState<Config> for Sum {
/// #     fn apply(&mut self, _: &LogId<u64>, data: &u64) -> u64 {
/// #         self.0 += *data;
/// #         self.0
/// #     }
/// #     fn no_data_response(&self, _: &LogId<u64>) -> u64 {
/// #         self.0
/// #     }
/// #     fn serialise(&self, out: &mut dyn Write) -> std::io::Result<()> {
/// #         out.write_all(&self.0.to_le_bytes())
/// #     }
/// #     fn restore(input: &mut dyn Read) -> std::io::Result<Self> {
/// #         let mut b = [0u8; 8];
/// #         input.read_exact(&mut b)?;
/// #         Ok(Sum(u64::from_le_bytes(b)))
/// #     }
/// # }
/// # let entry = |index, n| Entry::<Config> {
/// #     log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
/// #     payload: EntryPayload::Normal(n),
/// # };
/// let (dir, other_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
/// let key = SigningKey::from_bytes(&[1; 32]);
/// let mut opts = SealOptions::new(key.clone(), vec![key.verifying_key()]);
/// opts.compression = Some(3); // zstd level 3
/// opts.memory_budget = 1 << 20; // bodies past 1 MiB stream to disk while serialised
/// let mut sm: SealedStateMachine<Config, Sum> = SealedStateMachine::open(dir.path(), opts)?;
///
/// // A node of another cluster, with its own key.
/// let stranger = SigningKey::from_bytes(&[9; 32]);
/// let opts = SealOptions::new(stranger.clone(), vec![stranger.verifying_key()]);
/// let mut other: SealedStateMachine<Config, Sum> =
///     SealedStateMachine::open(other_dir.path(), opts)?;
/// # let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// # rt.block_on(async {
/// other.apply([entry(1, 1_000)]).await?;
/// let mut forged = other.get_snapshot_builder().await.build_snapshot().await?;
///
/// let mut received = sm.begin_receiving_snapshot().await?;
/// tokio::io::copy(&mut *forged.snapshot, &mut *received).await?;
/// assert!(sm.install_snapshot(&forged.meta, received).await.is_err());
/// assert_eq!(sm.state_handle().read().0, 0); // the state is untouched
/// assert!(sm.get_current_snapshot().await?.is_none());
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SealOptions {
    /// This node's key: it signs the statement that is each built snapshot's receipt.
    pub signing_key: SigningKey,
    /// Keys whose statements are trusted: every node that may send this node a snapshot
    /// (the cluster's members), and this node's own. A snapshot signed by another key is
    /// refused when received and passed over (not deleted) at recovery.
    pub trusted_keys: Vec<VerifyingKey>,
    /// Bytes of a snapshot body kept in memory while it is serialised; past this the body
    /// streams into a pending file in the snapshot directory. Default 64 MiB.
    pub memory_budget: u64,
    /// zstd level for snapshot bodies, `None` for plain bodies. Default `None`.
    pub compression: Option<i32>,
    /// Committed snapshots kept (newest first); older ones are fallbacks if the newest is
    /// damaged. At least 1. Default 3.
    pub keep_last: usize,
    /// Largest received snapshot file accepted, in bytes; for a chunked snapshot also the
    /// most state (the bytes its chunks add up to), refused at its header before any chunk is
    /// written. Default 1 TiB.
    pub max_snapshot_bytes: u64,
    /// Chunked snapshots ([`StoreOptions::chunked`]): each body is cut into content-defined
    /// chunks kept once in pack files beside the snapshots, so a snapshot writes only the
    /// chunks that changed. A follower installing one receives the file and every chunk it
    /// names (openraft 0.9's transport is one-way: it cannot skip the chunks the follower
    /// holds) and writes only those it lacks. Not combined with `compression` (refused at
    /// open). Default `false`.
    pub chunked: bool,
}

impl SealOptions {
    /// Defaults with this node's key and the trusted keys.
    pub fn new(signing_key: SigningKey, trusted_keys: Vec<VerifyingKey>) -> Self {
        SealOptions {
            signing_key,
            trusted_keys,
            memory_budget: 64 << 20,
            compression: None,
            keep_last: 3,
            max_snapshot_bytes: 1 << 40,
            chunked: false,
        }
    }
}

impl fmt::Debug for SealOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The signing key stays out of logs.
        f.debug_struct("SealOptions")
            .field("trusted_keys", &self.trusted_keys.len())
            .field("memory_budget", &self.memory_budget)
            .field("compression", &self.compression)
            .field("keep_last", &self.keep_last)
            .field("max_snapshot_bytes", &self.max_snapshot_bytes)
            .field("chunked", &self.chunked)
            .finish_non_exhaustive()
    }
}

/// What the state machine and its snapshot builders share. The last of them to go closes the
/// store, releasing the directory lock.
struct Shared {
    store: Arc<SnapshotStore>,
    key: SigningKey,
    budget: MemoryBudget,
    compression: Option<i32>,
    max_snapshot_bytes: u64,
    /// Pending-name generations of this process (stale ones are removed at open).
    generation: AtomicU64,
    /// Declared after `store`, so it is dropped (and [`Released`] resolves) after the store
    /// closed: fields drop in declaration order.
    release: ReleaseSignal,
}

/// openraft's state machine with snapseal as its snapshot store.
///
/// - the state lives behind a [`StateHandle`] the application shares
///   ([`state_handle`](Self::state_handle)): `apply` writes through it, and so does an
///   install, so the application reads the live state while openraft owns the machine;
/// - `get_snapshot_builder` takes one frozen view of the state (its
///   [`frozen`](SealedState::frozen) chunks, or one clone); `build_snapshot` writes the
///   metadata record and that view as the body (from the chunks where they are, or serialised
///   on a blocking thread through snapseal's body builder: hashed as it streams, spilled past
///   the memory budget), signs a statement over the claims digest (with the term), and
///   commits with the crash-safe write sequence;
/// - `begin_receiving_snapshot` gives a pending file; `install_snapshot` verifies the
///   complete file (receipt, claims, body) before it gets a committed name, checks its
///   proven metadata against openraft's, restores the state from it off the lock, and only
///   then swaps it in;
/// - `get_current_snapshot` is the store's newest snapshot that verifies (damaged newer ones
///   are quarantined and the next one is used), and so is the state at [`open`](Self::open);
/// - the directory stays locked until the machine and its builds are gone, which openraft's
///   `Raft::shutdown` does not wait for: [`released`](Self::released) or
///   [`shutdown`](crate::shutdown) does.
pub struct SealedStateMachine<C: RaftTypeConfig, S> {
    shared: Arc<Shared>,
    state: StateHandle<S>,
    last_applied: Option<LogId<C::NodeId>>,
    last_membership: StoredMembership<C::NodeId, C::Node>,
}

impl<C: RaftTypeConfig, S> fmt::Debug for SealedStateMachine<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedStateMachine")
            .field("dir", &self.shared.store.dir())
            .field("last_applied", &self.last_applied)
            .finish_non_exhaustive()
    }
}

/// Runs `f` on tokio's blocking pool, off the runtime's worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

fn storage_err<NID: openraft::NodeId>(
    e: Error,
    meta: Option<&SnapshotMeta<NID, impl openraft::Node>>,
    write: bool,
) -> StorageError<NID> {
    let sig = meta.map(|m| m.signature());
    let source = AnyError::new(&e);
    if write {
        StorageIOError::write_snapshot(sig, source).into()
    } else {
        StorageIOError::read_snapshot(sig, source).into()
    }
}

impl<C, S> SealedStateMachine<C, S>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = SealedData>,
    S: SealedState<C>,
{
    /// Opens (creating if needed) the snapshot directory `dir` and recovers the state from
    /// its newest snapshot that verifies; an empty state when there is none. Blocking: call it
    /// before handing the state machine to `Raft::new`, or from a blocking task.
    ///
    /// # A fallback older than the log
    ///
    /// When the newest snapshot fails verification (a damaged disk), recovery falls back to
    /// an older one. If the node's Raft log was already purged past that older snapshot, the
    /// entries between them exist nowhere on this node, and openraft 0.9 refuses to start
    /// (it panics on `purge_upto <= snapshot_last_log_id`). The state machine cannot see the
    /// log, so the node must check before `Raft::new`: compare
    /// [`applied_state`](RaftStateMachine::applied_state)'s index with its log store's
    /// last purged index and, when it is older, bring a newer snapshot first (from object
    /// storage with snapseal-ship's restore, or by wiping the node and rejoining as a new
    /// member). snapseal-cluster's node does exactly this (`behind_the_log` in
    /// cluster/src/node.rs). With [`SealOptions::keep_last`] of 2 or more and openraft's
    /// `max_in_snapshot_log_to_keep` at least one snapshot interval, the snapshot before the
    /// newest stays replayable from the log, so one damaged snapshot never needs this.
    pub fn open(dir: &Path, opts: SealOptions) -> Result<Self, Error> {
        let verifier: Arc<dyn ReceiptVerifier> = Arc::new(
            Schemes::new().with(Arc::new(StatementScheme::new(opts.trusted_keys.clone()))),
        );
        if opts.chunked && opts.compression.is_some() {
            // FORMAT.md §2.2: a chunked body is never compressed.
            return Err(Error::Store(StoreError::InvalidOption {
                field: "compression",
                reason: "not combined with chunked snapshots".into(),
            }));
        }
        let mut store_opts = StoreOptions::new(verifier);
        store_opts.keep_last = opts.keep_last;
        store_opts.chunked = opts.chunked;
        let store = SnapshotStore::open(Arc::new(RealFs), dir, store_opts)?;
        let shared = Arc::new(Shared {
            store: Arc::new(store),
            key: opts.signing_key,
            budget: MemoryBudget::new(opts.memory_budget),
            compression: opts.compression,
            max_snapshot_bytes: opts.max_snapshot_bytes,
            generation: AtomicU64::new(0),
            release: ReleaseSignal::new(),
        });
        let (state, last_applied, last_membership) = match shared.store.latest()? {
            Some(file) => {
                let (meta, state) = restore::<C, S>(&file)?;
                info!(name = %file.name(), last_log_id = ?meta.last_log_id, "state recovered from snapshot");
                (state, meta.last_log_id, meta.last_membership)
            }
            None => (S::default(), None, StoredMembership::default()),
        };
        Ok(SealedStateMachine {
            shared,
            state: StateHandle::new(state),
            last_applied,
            last_membership,
        })
    }

    /// The live state, for the application to read while openraft owns the machine: take it
    /// before `Raft::new`. It stays valid across snapshot installs.
    pub fn state_handle(&self) -> StateHandle<S> {
        self.state.clone()
    }

    /// Resolves once this machine and every snapshot build it started are gone and the
    /// directory lock is released: take it before `Raft::new`, and wait for it after
    /// `Raft::shutdown` before opening the directory again (or use
    /// [`shutdown`](crate::shutdown)).
    pub fn released(&self) -> Released {
        self.shared.release.released()
    }

    /// The snapshot store (to list snapshots, read its counters, apply retention). Borrowed
    /// only: the store holds the directory lock, which must go with the machine.
    pub fn store(&self) -> &SnapshotStore {
        &self.shared.store
    }
}

/// openraft's snapshot metadata for type config `C`.
type Meta<C> = SnapshotMeta<<C as RaftTypeConfig>::NodeId, <C as RaftTypeConfig>::Node>;

/// Reads the metadata record and the state from a verified file, and checks the record
/// against what is proven outside the body: the file's index and the statement's term.
fn restore<C, S>(file: &SnapshotFile) -> Result<(Meta<C>, S), Error>
where
    C: RaftTypeConfig,
    S: SealedState<C>,
{
    let path = file.path().to_path_buf();
    let err = |step, source| Error::Restore {
        file: path.clone(),
        step,
        source,
    };
    let mut reader = file.body_reader().map_err(|e| err("body decoder", e))?;
    let meta = read_meta::<C>(&mut reader).map_err(|e| err("metadata record", e))?;
    let mismatch = |reason: String| Error::Mismatch {
        file: path.clone(),
        reason,
    };
    let idx = position(meta.last_log_id.as_ref())?;
    if idx != file.name().idx {
        return Err(mismatch(format!(
            "metadata record says log position {idx}, the file is snapshot {}",
            file.name().idx
        )));
    }
    let term = meta.last_log_id.as_ref().map(|l| l.leader_id.term);
    // The store trusts signed statements only, and verification read the term they sign.
    let verified = file.receipt();
    if verified.scheme != SchemeId::STATEMENT {
        return Err(mismatch(format!(
            "receipt is not a signed statement but of scheme {}",
            verified.scheme
        )));
    }
    if verified.term != term {
        return Err(mismatch(format!(
            "metadata record says term {term:?}, the signed statement {:?}",
            verified.term
        )));
    }
    let state = S::restore(&mut reader).map_err(|e| err("state", e))?;
    Ok((meta, state))
}

impl Shared {
    /// Serialises, signs and commits one snapshot; returns it as reading data, with its
    /// metadata.
    fn build<C, S>(
        self: &Arc<Self>,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        view: &View<S>,
    ) -> Result<(SealedData, Meta<C>), Error>
    where
        C: RaftTypeConfig,
        S: SealedState<C>,
    {
        let idx = position(meta.last_log_id.as_ref())?;
        // position() left room for it.
        let evidence_idx = idx + 1;
        let name = SnapshotName {
            idx,
            evidence_idx,
            state: FileState::Committed,
        };
        if self.store.list()?.iter().any(|e| e.name == name) {
            // The same log position was snapshotted before (same state): that file stands.
            info!(%name, "snapshot at this log position already committed");
            let file = self.open(&name)?;
            // It carries its own snapshot id.
            let (file_meta, ()) = restore_meta::<C>(&file)?;
            return Ok((SealedData::reading_in(file, &self.store)?, file_meta));
        }
        let pending = self.body::<C, S>(idx, meta, view)?;
        let term = meta.last_log_id.as_ref().map(|l| l.leader_id.term);
        let receipt = statement_receipt(&self.key, &pending.claims(idx), evidence_idx, term)
            .map_err(|source| Error::Sign { idx, source })?;
        let committed = pending
            .commit(&self.store, idx, evidence_idx, &receipt)
            .map_err(|source| Error::Persist { idx, source })?;
        info!(name = %committed.name, bytes = committed.file_len, "snapshot committed");
        if self.store.is_chunked() {
            // What openraft sends of a chunked snapshot is the file and its chunks, whose
            // total only the verified list gives: opened now.
            let file = self.open(&committed.name)?;
            return Ok((SealedData::reading_in(file, &self.store)?, meta.clone()));
        }
        // Verified when first used, not now: openraft only takes the metadata (which is
        // `meta`, written above) and sends followers what `get_current_snapshot` opens, so
        // reading back the whole file here would cost a hash pass, and its mapped pages, for
        // nothing. The hold keeps retention off it meanwhile.
        let name = committed.name;
        let hold = self.store.hold(&name)?;
        let shared = Arc::clone(self);
        let open = move || {
            let file = shared.open(&name);
            drop(hold);
            file
        };
        Ok((
            SealedData::built(committed.file_len, Box::new(open)),
            meta.clone(),
        ))
    }

    /// The body of snapshot `idx`: the metadata record, then the state's view.
    fn body<C, S>(&self, idx: u64, meta: &Meta<C>, view: &View<S>) -> Result<PendingBody, Error>
    where
        C: RaftTypeConfig,
        S: SealedState<C>,
    {
        let serialise = |source| Error::Serialise { idx, source };
        let target = SpillTarget {
            store: Arc::clone(&self.store),
            idx,
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
            budget: self.budget.clone(),
        };
        if let (View::Frozen(chunks), None) = (view, self.compression) {
            // Zero copy: the record is a chunk of its own, the state's chunks follow as they
            // are (a chunked store cuts each at its own boundaries).
            let mut record = Vec::new();
            write_meta::<C>(&mut record, meta).map_err(serialise)?;
            let mut all: Vec<FrozenChunk> = Vec::with_capacity(chunks.len() + 1);
            all.push(Arc::new(record));
            all.extend(chunks.iter().cloned());
            return PendingBody::from_frozen_in(all, target).map_err(serialise);
        }
        let mut body = BodyBuilder::with_spill(self.compression, target).map_err(serialise)?;
        write_meta::<C>(&mut body, meta).map_err(serialise)?;
        match view {
            View::Copy(state) => state.serialise(&mut body),
            View::Frozen(chunks) => chunks
                .iter()
                .try_for_each(|c| body.write_all((**c).as_ref())),
        }
        .map_err(serialise)?;
        body.flush().map_err(serialise)?;
        body.finish().map_err(serialise)
    }

    /// Opens and verifies the committed file `name`; it is held against retention while the
    /// returned file lives.
    fn open(&self, name: &SnapshotName) -> Result<SnapshotFile, Error> {
        self.store.read(name).map_err(|e| Error::Verify {
            name: *name,
            source: Box::new(e),
        })
    }

    /// Commits received data (verified on disk first) and reads it back.
    fn install<C, S>(
        &self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        data: DataKind,
    ) -> Result<(Meta<C>, S), Error>
    where
        C: RaftTypeConfig,
        S: SealedState<C>,
    {
        let incoming = position(meta.last_log_id.as_ref())?;
        let newest = self
            .store
            .list()?
            .iter()
            .filter(|e| e.name.state == FileState::Committed)
            .map(|e| e.name.idx)
            .max();
        if let Some(stored) = newest.filter(|s| *s > incoming) {
            return Err(Error::Older { incoming, stored });
        }
        let ingested = match data {
            DataKind::Receiving(incoming) => incoming.finish(&self.store)?,
            DataKind::Reading(mut stream) => {
                // Received as a follower receives it: the file, then the chunks it lacks.
                let mut incoming = Incoming::new(
                    self.store.begin_ingest(self.max_snapshot_bytes),
                    self.max_snapshot_bytes,
                );
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = stream.read(&mut buf).map_err(|source| Error::Restore {
                        file: self.store.dir().to_path_buf(),
                        step: "reading the snapshot to install",
                        source,
                    })?;
                    if n == 0 {
                        break;
                    }
                    incoming
                        .take(&self.store, &buf[..n])
                        .map_err(|e| Error::ChunkImport(Box::new(e)))?;
                }
                incoming.finish(&self.store)?
            }
        };
        let name = ingested.name();
        if matches!(ingested, Ingested::AlreadyPresent(_)) {
            info!(%name, "received snapshot already committed here");
        }
        let file = self.open(&name)?;
        let (file_meta, state) = restore::<C, S>(&file)?;
        if file_meta.last_log_id != meta.last_log_id
            || file_meta.last_membership != meta.last_membership
        {
            warn!(%name, "received snapshot's proven metadata differs from openraft's");
            return Err(Error::Mismatch {
                file: file.path().to_path_buf(),
                reason: format!(
                    "proven metadata {file_meta} differs from the metadata sent with it {meta}"
                ),
            });
        }
        Ok((file_meta, state))
    }
}

/// The state as of one applied index, taken once when a build starts.
enum View<S> {
    /// One clone of the state (shared by repeated `build_snapshot` calls, never cloned again).
    Copy(Arc<S>),
    /// The state's frozen chunks ([`SealedState::frozen`]).
    Frozen(Vec<FrozenChunk>),
}

impl<S> Clone for View<S> {
    fn clone(&self) -> Self {
        match self {
            View::Copy(state) => View::Copy(Arc::clone(state)),
            View::Frozen(chunks) => View::Frozen(chunks.clone()),
        }
    }
}

/// Builds one snapshot from the view of the state taken when it was made.
pub struct SealedSnapshotBuilder<C: RaftTypeConfig, S> {
    shared: Arc<Shared>,
    view: View<S>,
    last_applied: Option<LogId<C::NodeId>>,
    last_membership: StoredMembership<C::NodeId, C::Node>,
}

impl<C: RaftTypeConfig, S> fmt::Debug for SealedSnapshotBuilder<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSnapshotBuilder")
            .field("last_applied", &self.last_applied)
            .finish_non_exhaustive()
    }
}

/// Snapshot ids of this process: the log position and a counter.
static SNAPSHOT_SEQ: AtomicU64 = AtomicU64::new(0);

impl<C, S> RaftSnapshotBuilder<C> for SealedSnapshotBuilder<C, S>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = SealedData>,
    S: SealedState<C>,
{
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError<C::NodeId>> {
        let seq = SNAPSHOT_SEQ.fetch_add(1, Ordering::Relaxed);
        let meta = SnapshotMeta {
            last_log_id: self.last_applied.clone(),
            last_membership: self.last_membership.clone(),
            snapshot_id: match &self.last_applied {
                Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
                None => format!("none-{seq}"),
            },
        };
        let shared = Arc::clone(&self.shared);
        let view = self.view.clone();
        let m = meta.clone();
        let built = blocking(move || shared.build::<C, S>(&m, &view)).await;
        match built {
            Ok((data, file_meta)) => Ok(Snapshot {
                meta: file_meta,
                snapshot: Box::new(data),
            }),
            Err(e) => Err(storage_err(e, Some(&meta), true)),
        }
    }
}

/// Only the metadata record of a verified file.
fn restore_meta<C: RaftTypeConfig>(file: &SnapshotFile) -> Result<(Meta<C>, ()), Error> {
    let mut reader = file.body_reader().map_err(|source| Error::Restore {
        file: file.path().to_path_buf(),
        step: "body decoder",
        source,
    })?;
    let meta = read_meta::<C>(&mut reader).map_err(|source| Error::Restore {
        file: file.path().to_path_buf(),
        step: "metadata record",
        source,
    })?;
    Ok((meta, ()))
}

impl<C, S> RaftStateMachine<C> for SealedStateMachine<C, S>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = SealedData>,
    S: SealedState<C>,
{
    type SnapshotBuilder = SealedSnapshotBuilder<C, S>;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<C::NodeId>>,
            StoredMembership<C::NodeId, C::Node>,
        ),
        StorageError<C::NodeId>,
    > {
        Ok((self.last_applied.clone(), self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<C::R>, StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let (last_applied, last_membership) = (&mut self.last_applied, &mut self.last_membership);
        // One write lock for the batch: readers see all of it or none.
        let responses = self.state.write(|state| {
            let mut responses = Vec::new();
            for entry in entries {
                let response = match &entry.payload {
                    EntryPayload::Normal(data) => state.apply(&entry.log_id, data),
                    EntryPayload::Blank => state.no_data_response(&entry.log_id),
                    EntryPayload::Membership(m) => {
                        *last_membership =
                            StoredMembership::new(Some(entry.log_id.clone()), m.clone());
                        state.no_data_response(&entry.log_id)
                    }
                };
                *last_applied = Some(entry.log_id);
                responses.push(response);
            }
            responses
        });
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // The one frozen view of this build, taken on the state machine task so it is the
        // state at `last_applied` exactly.
        let view = {
            let state = self.state.read();
            match state.frozen() {
                Some(chunks) => View::Frozen(chunks),
                None => View::Copy(Arc::new(state.clone())),
            }
        };
        SealedSnapshotBuilder {
            shared: Arc::clone(&self.shared),
            view,
            last_applied: self.last_applied.clone(),
            last_membership: self.last_membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<SealedData>, StorageError<C::NodeId>> {
        let file = self
            .shared
            .store
            .begin_ingest(self.shared.max_snapshot_bytes);
        let store = Arc::downgrade(&self.shared.store);
        // Weak: data still being received must not keep the store (and its lock) open past
        // the state machine, or `shutdown` would wait on openraft dropping it.
        let shared = Arc::downgrade(&self.shared);
        let restart = Box::new(move || {
            shared
                .upgrade()
                .map(|s| s.store.begin_ingest(s.max_snapshot_bytes))
        });
        Ok(Box::new(SealedData::receiving(
            file,
            self.shared.max_snapshot_bytes,
            store,
            restart,
        )))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        snapshot: Box<SealedData>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let shared = Arc::clone(&self.shared);
        let m = meta.clone();
        let (file_meta, state) =
            blocking(move || shared.install::<C, S>(&m, snapshot.into_kind()?))
                .await
                .map_err(|e| storage_err(e, Some(meta), true))?;
        info!(last_log_id = ?file_meta.last_log_id, "snapshot installed");
        // The restored state was built off the lock; swapping it in keeps every handle valid.
        let old = self.state.replace(state);
        // Freeing a large state takes a while: not on the runtime's worker threads.
        drop(tokio::task::spawn_blocking(move || drop(old)));
        self.last_applied = file_meta.last_log_id;
        self.last_membership = file_meta.last_membership;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<C>>, StorageError<C::NodeId>> {
        let shared = Arc::clone(&self.shared);
        let latest = blocking(move || match shared.store.latest()? {
            None => Ok(None),
            Some(file) => {
                let (meta, ()) = restore_meta::<C>(&file)?;
                Ok(Some((SealedData::reading_in(file, &shared.store)?, meta)))
            }
        })
        .await
        .map_err(|e| {
            storage_err::<C::NodeId>(e, None::<&SnapshotMeta<C::NodeId, C::Node>>, false)
        })?;
        Ok(latest.map(|(data, meta)| Snapshot {
            meta,
            snapshot: Box::new(data),
        }))
    }
}
