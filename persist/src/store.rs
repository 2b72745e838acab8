//! [`SnapshotStore`]: owns one snapshot directory. Recovery at open, `latest()` with
//! quarantine, holds, retention, and the writer behind `persist`.
//!
//! The store holds an exclusive `flock` on the directory's `.lock` for its whole life, so no
//! other store (in this process or another) changes the directory under it. Within the
//! process, a `SnapshotStore` is `Send + Sync` and meant to be shared with `Arc`.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::{debug, error, info, warn};

use crate::chunks::store::ChunkStore;
use crate::claims::NameClaims;
use crate::dir_guard::GuardedDir;
use crate::error::{ErrorChain, IngestError, PersistError, StoreError, StoreStep, VerifyError};
use crate::fs::{DirEntry, DirHandle, DirLock, FileSystem};
use crate::hold::{Hold, HoldTable};
use crate::names::{FileState, PendingName, SnapshotName, LOCK_FILE};
use crate::options::StoreOptions;
use crate::quarantine::{self, Quarantined};
use crate::reader::{open_snapshot_with, SnapshotFile};
use crate::receipt::ReceiptVerifier;
use crate::retention::{self, RetentionPlan, RetentionReport, Standing};
use crate::scan::{
    classify_dir, in_state, our_files, pending_files, EntryClass, ListedEntry, PendingEntry,
    SnapshotEntry,
};
use crate::writer::{
    Committed, GatheredRequest, IngestFile, Ingested, PersistRequest, SnapshotWriter, SpillCommit,
    SpillFile, VerifiedIngest,
};
use crate::Hash;
#[cfg(doc)]
use crate::PendingBody;

/// Counts of what the store did since it was opened (see [`SnapshotStore::stats`]).
///
/// Each is also emitted through the `metrics` facade as a counter named
/// `snapseal_store_<field>_total` (e.g. `snapseal_store_persisted_total`), so a node that
/// installs a recorder (Prometheus, statsd, …) sees them without polling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Stale uncommitted and pending (spilled body) files removed at open.
    pub stale_removed: u64,
    /// Snapshots committed by `persist`.
    pub persisted: u64,
    /// `persist` calls that failed.
    pub persist_failures: u64,
    /// Snapshots deleted by retention.
    pub retention_deleted: u64,
    /// Retention passes after a commit that failed (logged; the commit still succeeded).
    pub retention_failures: u64,
    /// Files moved to quarantine.
    pub quarantined: u64,
    /// Failing files that could not be quarantined (logged; never returned by `latest`).
    pub quarantine_failures: u64,
    /// Snapshots `latest` passed over because no trusted key signed them (left in place).
    pub untrusted_skipped: u64,
    /// Bytes of new chunks written into chunk packs by chunked snapshots
    /// ([`StoreOptions::chunked`]): what a chunked snapshot cost on disk beyond its small
    /// snapshot file, only the chunks no pack held already.
    pub chunk_bytes_written: u64,
}

#[derive(Debug, Default)]
struct Counters {
    stale_removed: AtomicU64,
    persisted: AtomicU64,
    persist_failures: AtomicU64,
    retention_deleted: AtomicU64,
    retention_failures: AtomicU64,
    quarantined: AtomicU64,
    quarantine_failures: AtomicU64,
    untrusted_skipped: AtomicU64,
}

/// Counts in [`StoreStats`] and, through the `metrics` facade, in whatever recorder the
/// process installed (none: a no-op). The metric names are listed in [`StoreStats`].
fn bump(counter: &AtomicU64, metric: &'static str, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
    metrics::counter!(metric).increment(n);
}

/// High bit of an ingest's pending-name generation (Snapshotter generations count from 1).
const INGEST_GENERATION_BASE: u64 = 1 << 63;

/// Copy buffer of [`SnapshotStore::ingest`]: large enough that syscalls vanish, small enough
/// to be no memory concern.
const INGEST_BUF: usize = 1 << 20;

/// The owner of one snapshot directory: recovery at open, [`latest`](Self::latest) with
/// quarantine, holds, retention, and the commits of [`PendingBody::commit`] and
/// [`ingest`](Self::ingest).
///
/// ```
/// use std::sync::Arc;
/// use snapseal_persist::fs::RealFs;
/// use snapseal_persist::receipt::Ed25519Verifier;
/// use snapseal_persist::{SnapshotStore, StoreError, StoreOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let opts = || StoreOptions::new(Arc::new(Ed25519Verifier::new(Vec::new())));
/// let store = SnapshotStore::open(Arc::new(RealFs), dir.path(), opts())?;
/// assert!(store.latest()?.is_none(), "a new directory holds no snapshot");
///
/// // One store per directory at a time, in this process or another.
/// let second = SnapshotStore::open(Arc::new(RealFs), dir.path(), opts());
/// assert!(matches!(second, Err(StoreError::Locked { .. })));
/// drop(store);
/// assert!(SnapshotStore::open(Arc::new(RealFs), dir.path(), opts()).is_ok());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SnapshotStore {
    path: PathBuf,
    /// The same handle as `dir`, typed, to ask whether a directory fsync failed.
    guard: Arc<GuardedDir>,
    dir: Arc<dyn DirHandle>,
    writer: SnapshotWriter,
    opts: StoreOptions,
    holds: Arc<HoldTable>,
    /// One write per committed name at a time; writes of different names run in parallel.
    claims: NameClaims,
    /// One directory clean-up (retention, quarantine) at a time, so two of them never plan
    /// over the same listing.
    maintenance: Mutex<()>,
    /// Committed snapshots known to verify: those this store committed itself and those it
    /// verified since it was opened. Retention counts them without hashing them again.
    known_good: Mutex<HashSet<SnapshotName>>,
    counters: Counters,
    /// The chunks of chunked snapshots, in packs beside them.
    chunks: Arc<ChunkStore>,
    /// Ingests started, for unique pending names.
    ingests: AtomicU64,
    /// Declared last: released only after everything else is dropped.
    _lock: Box<dyn DirLock>,
}

impl SnapshotStore {
    /// Opens (creating if needed) the snapshot directory `dir`: validates `opts`, takes the
    /// directory lock, removes our stale uncommitted and pending files (and fsyncs the
    /// directory if it removed any). Names that are not ours, and anything but a regular file under our
    /// names, are left alone.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        opts: StoreOptions,
    ) -> Result<SnapshotStore, StoreError> {
        opts.validate()?;
        let handle = fs.open_dir(dir, true).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            step: StoreStep::OpenDir,
            source,
        })?;
        let lock = handle.lock_exclusive(LOCK_FILE).map_err(|source| {
            if source.kind() == io::ErrorKind::WouldBlock {
                StoreError::Locked {
                    dir: dir.to_path_buf(),
                }
            } else {
                StoreError::Io {
                    path: dir.join(LOCK_FILE),
                    step: StoreStep::Lock,
                    source,
                }
            }
        })?;
        let guard = Arc::new(GuardedDir::new(handle));
        let handle: Arc<dyn DirHandle> = guard.clone();
        // One listing for the whole recovery: stale files, pending packs, the pack index.
        let entries = handle.list().map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            step: StoreStep::List,
            source,
        })?;
        let opened = ChunkStore::open(Arc::clone(&handle), &entries)?;
        let store = SnapshotStore {
            path: dir.to_path_buf(),
            writer: SnapshotWriter::new(Arc::clone(&handle)),
            guard,
            dir: handle,
            opts,
            holds: Arc::default(),
            claims: NameClaims::default(),
            maintenance: Mutex::new(()),
            known_good: Mutex::default(),
            counters: Counters::default(),
            chunks: Arc::new(opened.store),
            ingests: AtomicU64::new(0),
            _lock: lock,
        };
        bump(
            &store.counters.stale_removed,
            "snapseal_store_stale_removed_total",
            opened.removed,
        );
        let corrupt = store.remove_stale(&entries)?;
        // The bound holds from the start, not only once something new is quarantined.
        if corrupt > store.opts.max_quarantined {
            store.trim_quarantine();
        }
        info!(dir = %dir.display(), "snapshot store open");
        Ok(store)
    }

    /// The directory path the store was opened with.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    internals_pub! {
        /// The options the store was opened with.
        fn options(&self) -> &StoreOptions {
            &self.opts
        }
    }

    /// True when the store was opened with [`StoreOptions::chunked`]: bodies built for it
    /// with [`BodyBuilder::with_spill`](crate::BodyBuilder::with_spill) are chunked (and must
    /// not be compressed), and a node handing frozen chunks should stream them through such a
    /// builder instead of [`PendingBody::from_frozen`] to have them chunked.
    pub fn is_chunked(&self) -> bool {
        self.opts.chunked
    }

    /// What the store did since it was opened.
    pub fn stats(&self) -> StoreStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreStats {
            stale_removed: get(&c.stale_removed),
            persisted: get(&c.persisted),
            persist_failures: get(&c.persist_failures),
            retention_deleted: get(&c.retention_deleted),
            retention_failures: get(&c.retention_failures),
            quarantined: get(&c.quarantined),
            quarantine_failures: get(&c.quarantine_failures),
            untrusted_skipped: get(&c.untrusted_skipped),
            chunk_bytes_written: get(&self.chunks.counters.bytes_written),
        }
    }

    internals_pub! {
        /// Writes and commits one snapshot with the write sequence of SPEC §5 (exclusive create
        /// of the uncommitted name, write, `fsync`, `close`, rename without replacing, `fsync` of
        /// the directory), then runs retention. A retention failure is logged and counted, not a
        /// persist failure; the snapshot just committed is spared by that pass even when it is
        /// older than the ones retention keeps.
        ///
        /// # Concurrency
        ///
        /// Persists of different snapshots (and spilled commits, and ingests) run in parallel:
        /// their writes and file `fsync`s overlap; only directory `fsync`s and retention passes
        /// take turns. Two writes of the same committed name never overlap: the second waits for
        /// the first, then finds the name taken ([`PersistError::AlreadyCommitted`]).
        ///
        /// # After a crash
        ///
        /// A crash at any point leaves, for this snapshot, one of: nothing; a stale uncommitted
        /// file (removed when the store next opens); or the committed file, complete and
        /// verifiable, possibly alongside a stale uncommitted name for the same data. Never a
        /// partial committed file. This holds for every error too,
        /// [`PersistError::DirSyncFailed`] included. When `persist` returned `Ok`, the committed
        /// file survives any crash.
        fn persist(&self, req: &PersistRequest<'_>) -> Result<Committed, PersistError> {
            self.persist_gathered(&GatheredRequest {
                idx: req.idx,
                evidence_idx: req.evidence_idx,
                flags: req.flags,
                raw_len: req.raw_len,
                body_digest: req.body_digest,
                body: &[req.body],
                receipt: req.receipt,
            })
        }
    }

    /// [`persist`](Self::persist) with the body as consecutive slices (frozen chunks of the
    /// node's state), each written straight from where it is: the same sequence, guarantees,
    /// concurrency and retention.
    pub(crate) fn persist_gathered(
        &self,
        req: &GatheredRequest<'_>,
    ) -> Result<Committed, PersistError> {
        let name = SnapshotName {
            idx: req.idx,
            evidence_idx: req.evidence_idx,
            state: FileState::Committed,
        };
        self.commit_as(name, || self.writer.persist_gathered(req))
    }

    /// Writes committed `name` with `write` under the rules every commit path shares: the name
    /// claimed (a second write of it waits, then finds it taken), pinned before it exists
    /// (another commit's retention pass, running meanwhile, must not delete it between its
    /// rename and this call's return), nothing written once the store failed; then the
    /// counters and retention of [`after_commit`](Self::after_commit).
    fn commit_as(
        &self,
        name: SnapshotName,
        write: impl FnOnce() -> Result<Committed, PersistError>,
    ) -> Result<Committed, PersistError> {
        let _claim = self.claims.claim(name);
        let _pin = self.holds.acquire(name);
        let result = self.refuse_if_failed().and_then(|()| write());
        self.after_commit(result)
    }

    /// The chunk store (for the body builder's chunked stage).
    pub(crate) fn chunk_store(&self) -> &Arc<ChunkStore> {
        &self.chunks
    }

    internals_pub! {
        /// Creates the pending file a generation streams a large body into (see [`SpillFile`]).
        /// No lock is needed: pending names are unique per (idx, generation), and an existing one
        /// is refused, never replaced.
        fn create_spill(&self, idx: u64, generation: u64) -> Result<SpillFile, PersistError> {
            self.writer.create_spill(idx, generation)
        }
    }

    internals_pub! {
        /// Completes a spilled body into a committed snapshot (checks the committed name is free,
        /// appends the receipt, writes the header in place, then the same `fsync`, `close`,
        /// rename and directory `fsync` steps and crash guarantees as [`persist`](Self::persist)),
        /// then runs retention, exactly as
        /// [`persist`](Self::persist) does for a body in memory (same name claim, counters and retention
        /// rule).
        fn commit_spill(
            &self,
            spill: SpillFile,
            req: &SpillCommit<'_>,
        ) -> Result<Committed, PersistError> {
            let name = SnapshotName {
                idx: spill.name().idx,
                evidence_idx: req.evidence_idx,
                state: FileState::Committed,
            };
            self.commit_as(name, || self.writer.commit_spill(spill, req))
        }
    }

    /// Starts bringing in one complete snapshot file from outside (a restore, an import, a
    /// Raft follower receiving a snapshot): write its bytes — exactly those of a `.committed`
    /// file, header first — into the returned [`IngestFile`], then call
    /// [`finish_ingest`](Self::finish_ingest). At most `limit` bytes are accepted (the header
    /// gives the length, so a larger file is refused after 160 bytes). Memory stays bounded
    /// for any size: the body streams into a pending file.
    ///
    /// A follower (or a restore) receives a peer's snapshot in pieces and commits it only once
    /// it verified:
    ///
    /// ```
    /// # use snapseal_persist::Ingested;
    /// # use std::io::{Read, Write};
    /// # use std::sync::Arc;
    /// # use snapseal_persist::fs::RealFs;
    /// # use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
    /// # use snapseal_persist::{BodyBuilder, Committed, SigningKey, SnapshotStore, StoreOptions};
    /// # type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
    /// # fn commit(store: &SnapshotStore, key: &SigningKey, idx: u64, state: &[u8])
    /// #     -> Result<Committed> {
    /// #     let mut body = BodyBuilder::new(None)?;
    /// #     body.write_all(state)?;
    /// #     let body = body.finish()?;
    /// #     let receipt = statement_receipt(key, &body.claims(idx), idx + 1, None)?;
    /// #     Ok(body.commit(store, idx, idx + 1, &receipt)?)
    /// # }
    /// # fn main() -> Result<()> {
    /// // `commit(&store, &key, idx, state)`: the crate example's commit, proven at `idx + 1`.
    /// let key = SigningKey::from_bytes(&[7; 32]);
    /// let trusted =
    ///     Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
    /// let opts = StoreOptions::new(Arc::new(trusted));
    /// let (leader_dir, follower_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    /// let leader = SnapshotStore::open(Arc::new(RealFs), leader_dir.path(), opts.clone())?;
    /// let follower = SnapshotStore::open(Arc::new(RealFs), follower_dir.path(), opts)?;
    /// commit(&leader, &key, 10, b"state at 10")?;
    /// let sent = leader.latest()?.expect("just committed");
    ///
    /// // The file's bytes arrive in pieces; at most 1 GiB is accepted.
    /// let mut incoming = follower.begin_ingest(1 << 30);
    /// let (mut from, mut piece) = (sent.file_reader(), [0u8; 64]);
    /// loop {
    ///     let n = from.read(&mut piece)?;
    ///     if n == 0 {
    ///         break;
    ///     }
    ///     incoming.write_all(&piece[..n])?;
    /// }
    /// let ingested = follower.finish_ingest(incoming)?;
    /// assert_eq!(ingested.name(), *sent.name());
    /// assert_eq!(follower.latest()?.map(|s| *s.name()), Some(*sent.name()));
    ///
    /// // Sent again: the committed file is never replaced.
    /// let again = follower.ingest(&mut sent.file_reader(), 1 << 30)?;
    /// assert!(matches!(again, Ingested::AlreadyPresent(_)));
    /// # Ok(()) }
    /// ```
    pub fn begin_ingest(&self, limit: u64) -> IngestFile {
        // Above the Snapshotter's generation numbers, so an ingest never shares a pending
        // name with a generation's spilled body.
        let generation = INGEST_GENERATION_BASE | self.ingests.fetch_add(1, Ordering::Relaxed);
        IngestFile::new(Arc::clone(&self.dir), limit, generation)
    }

    /// Completes an ingest: the length must be what the header says; then `fsync`, `close`,
    /// full verification with the store's verifier (receipt and claims, body digest, zstd
    /// frame), non-replacing rename to the committed name the header gives, directory
    /// `fsync`, and retention as after a commit. A file that fails any step
    /// is removed and never had a committed name; a committed file of the same name is never
    /// replaced ([`Ingested::AlreadyPresent`]). Bringing in a snapshot older than those in the
    /// store is harmless: `latest` still returns the newest.
    ///
    /// A chunked file's chunks must be in this store's durable packs already (they travel
    /// apart from the file; the `internals` feature's `chunks::ChunkImport` brings them):
    /// each is claimed as verification checks it, and the claims last until the commit, so a
    /// retention sweep meanwhile cannot delete one. A chunk no durable pack holds refuses the
    /// file ([`BodyError::ChunkMissing`](crate::BodyError::ChunkMissing), the first such).
    ///
    /// # After a crash
    ///
    /// A crash at any point leaves either no file of this ingest but a stale pending file
    /// (removed at the next open), or the complete, verified committed file.
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # use std::sync::Arc;
    /// # use snapseal_persist::fs::RealFs;
    /// # use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
    /// # use snapseal_persist::{BodyBuilder, Committed, SigningKey, SnapshotStore, StoreOptions};
    /// # type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
    /// # fn commit(store: &SnapshotStore, key: &SigningKey, idx: u64, state: &[u8])
    /// #     -> Result<Committed> {
    /// #     let mut body = BodyBuilder::new(None)?;
    /// #     body.write_all(state)?;
    /// #     let body = body.finish()?;
    /// #     let receipt = statement_receipt(key, &body.claims(idx), idx + 1, None)?;
    /// #     Ok(body.commit(store, idx, idx + 1, &receipt)?)
    /// # }
    /// # fn main() -> Result<()> {
    /// // `commit(&store, &key, idx, state)`: the crate example's commit, proven at `idx + 1`.
    /// let key = SigningKey::from_bytes(&[7; 32]);
    /// let trusted =
    ///     Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
    /// let opts = StoreOptions::new(Arc::new(trusted));
    /// let (peer_dir, dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    /// let peer = SnapshotStore::open(Arc::new(RealFs), peer_dir.path(), opts.clone())?;
    /// let store = SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?;
    /// commit(&peer, &key, 10, b"state at 10")?;
    ///
    /// // One byte of the body changed on the way: the file does not verify, so it never gets
    /// // a committed name and nothing of it is left behind.
    /// let mut damaged = Vec::new();
    /// peer.latest()?.expect("just committed").file_reader().read_to_end(&mut damaged)?;
    /// damaged[160] ^= 1;
    /// let mut incoming = store.begin_ingest(1 << 30);
    /// incoming.write_all(&damaged)?;
    /// assert!(store.finish_ingest(incoming).is_err());
    /// assert!(store.list()?.is_empty());
    /// assert!(store.latest()?.is_none());
    /// # Ok(()) }
    /// ```
    pub fn finish_ingest(&self, file: IngestFile) -> Result<Ingested, IngestError> {
        // The pending name is unique to this ingest, so only the commit claims the name.
        let verified = self.verify_ingest(file)?;
        self.commit_ingest(verified)
    }

    internals_pub! {
        /// The first half of [`finish_ingest`](Self::finish_ingest): the length, `fsync`, `close`
        /// and full verification, leaving the file durable and verified under its pending name.
        /// A file that fails is removed. Commit it with [`commit_ingest`](Self::commit_ingest), or
        /// drop it to remove it: a caller bringing in several files verifies them all first, so
        /// that one that fails commits none.
        fn verify_ingest(&self, file: IngestFile) -> Result<VerifiedIngest, IngestError> {
            self.verify_ingest_trusting(file, HashSet::new())
        }
    }

    /// [`finish_ingest`](Self::finish_ingest) for a `ChunkImport`: the chunks of `sealed`,
    /// which it hashed and sealed, are checked by their presence.
    pub(crate) fn finish_ingest_trusting(
        &self,
        file: IngestFile,
        sealed: HashSet<Hash>,
    ) -> Result<Ingested, IngestError> {
        let verified = self.verify_ingest_trusting(file, sealed)?;
        self.commit_ingest(verified)
    }

    fn verify_ingest_trusting(
        &self,
        file: IngestFile,
        sealed: HashSet<Hash>,
    ) -> Result<VerifiedIngest, IngestError> {
        self.refuse_if_failed()?;
        file.verify(&*self.opts.verifier, &self.chunks, sealed)
            .inspect_err(|_| {
                bump(
                    &self.counters.persist_failures,
                    "snapseal_store_persist_failures_total",
                    1,
                );
            })
    }

    internals_pub! {
        /// The second half of [`finish_ingest`](Self::finish_ingest): the non-replacing rename to
        /// the committed name, the directory `fsync`, and retention as after
        /// [`persist`](Self::persist).
        fn commit_ingest(&self, verified: VerifiedIngest) -> Result<Ingested, IngestError> {
            let name = verified.name();
            let _claim = self.claims.claim(name);
            let _pin = self.holds.acquire(name);
            self.refuse_if_failed()?;
            match verified.commit(&*self.opts.verifier) {
                Ok(Ingested::Committed(committed)) => {
                    let committed = self.after_commit(Ok(committed))?;
                    Ok(Ingested::Committed(committed))
                }
                Ok(present) => Ok(present),
                Err(e) => {
                    bump(
                        &self.counters.persist_failures,
                        "snapseal_store_persist_failures_total",
                        1,
                    );
                    Err(e)
                }
            }
        }
    }

    /// [`begin_ingest`](Self::begin_ingest) and [`finish_ingest`](Self::finish_ingest) over a
    /// reader: copies `src` to its end through a fixed buffer, then commits. A read error is
    /// [`IngestError::Read`]; bytes past the header's length are
    /// [`IngestError::TrailingBytes`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use snapseal_persist::{fs::RealFs, receipt::Schemes, SnapshotStore, StoreOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let opts = StoreOptions::new(Arc::new(Schemes::new()));
    /// let store = SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?;
    /// // Not a snapshot: refused after the header, and nothing is left behind.
    /// let junk = vec![0u8; 4096];
    /// assert!(store.ingest(&mut &junk[..], 1 << 30).is_err());
    /// assert!(store.list()?.is_empty());
    /// let left: Vec<_> = std::fs::read_dir(dir.path())?.collect::<Result<_, _>>()?;
    /// assert_eq!(left.len(), 1, "only the store's .lock"); // no pending file either
    /// # Ok(()) }
    /// ```
    pub fn ingest(&self, src: &mut dyn io::Read, limit: u64) -> Result<Ingested, IngestError> {
        let mut file = self.begin_ingest(limit);
        let mut buf = vec![0u8; INGEST_BUF];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(IngestError::Read {
                        received: file.received(),
                        source,
                    })
                }
            };
            if let Err(e) = io::Write::write_all(&mut file, &buf[..n]) {
                // The file recorded why; finish reports that typed error.
                debug!(error = %e, "ingest write refused");
                return self.finish_ingest(file);
            }
        }
        self.finish_ingest(file)
    }

    /// The directory fsync failure that failed this store, if one happened: after it the
    /// store writes and deletes nothing until it is reopened (SPEC §5).
    pub fn failure(&self) -> Option<String> {
        self.guard.failure().map(|f| f.first)
    }

    fn refuse_if_failed(&self) -> Result<(), PersistError> {
        match self.guard.failure() {
            Some(f) => Err(PersistError::StoreFailed {
                dir: self.path.clone(),
                earlier: f.first,
            }),
            None => Ok(()),
        }
    }

    /// Counts a commit's outcome and, after a success, runs retention sparing the new file.
    fn after_commit(
        &self,
        result: Result<Committed, PersistError>,
    ) -> Result<Committed, PersistError> {
        let committed = match result {
            Ok(c) => c,
            Err(e) => {
                bump(
                    &self.counters.persist_failures,
                    "snapseal_store_persist_failures_total",
                    1,
                );
                return Err(e);
            }
        };
        bump(
            &self.counters.persisted,
            "snapseal_store_persisted_total",
            1,
        );
        let _pin = self.holds.acquire(committed.name);
        // Written and verified by this process: retention counts it without hashing it again.
        self.known_good.lock().insert(committed.name);
        // The file just committed needs no second look before retention relies on it.
        if let Err(e) = self.retention_pass(Some(committed.name)) {
            bump(
                &self.counters.retention_failures,
                "snapseal_store_retention_failures_total",
                1,
            );
            error!(error = %ErrorChain(&e), "retention after commit failed");
        }
        Ok(committed)
    }

    internals_pub! {
        /// Our pending (spilled body) files, sorted by (idx, generation): bodies of generations
        /// still waiting for their proof. They are not snapshots ([`list`](Self::list) leaves them
        /// out); after a crash they are stale and [`open`](Self::open) removes them.
        fn list_pending(&self) -> Result<Vec<PendingEntry>, StoreError> {
            let entries = self.dir.list().map_err(|source| StoreError::Io {
                path: self.path.clone(),
                step: StoreStep::List,
                source,
            })?;
            Ok(pending_files(&entries))
        }
    }

    /// Every snapshot file of ours (uncommitted, committed, quarantined), sorted by idx, then
    /// evidence_idx, then state. Non-regular entries under our names are left out.
    pub fn list(&self) -> Result<Vec<SnapshotEntry>, StoreError> {
        let entries = self.dir.list().map_err(|source| StoreError::Io {
            path: self.path.clone(),
            step: StoreStep::List,
            source,
        })?;
        Ok(our_files(&entries))
    }

    /// The name of the newest committed snapshot that verifies: where a restarted node's
    /// snapshot schedule resumes. A file this store has verified already (committed through
    /// it, or returned by [`latest`](Self::latest) or [`read`](Self::read) since it opened) is
    /// not read again; otherwise this is [`latest`](Self::latest) — newest first, failures
    /// quarantined — without keeping the file open. Blocks while it reads.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use snapseal_persist::{fs::RealFs, receipt::Schemes, SnapshotStore, StoreOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let opts = StoreOptions::new(Arc::new(Schemes::new()));
    /// let store = SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?;
    /// assert_eq!(store.newest_verified()?, None, "an empty store: a fresh schedule");
    /// # Ok(()) }
    /// ```
    pub fn newest_verified(&self) -> Result<Option<SnapshotName>, StoreError> {
        let newest = self
            .list()?
            .into_iter()
            .rev()
            .find(|e| e.name.state == FileState::Committed)
            .map(|e| e.name);
        if let Some(name) = newest {
            if self.known_good.lock().contains(&name) {
                return Ok(Some(name));
            }
        }
        Ok(self.latest()?.map(|file| *file.name()))
    }

    /// The newest committed snapshot (by idx, then evidence_idx) that verifies, with a
    /// [`Hold`] on it; `None` when there is none.
    ///
    /// Committed files are verified newest first; every one that fails verification on the
    /// way is quarantined (a quarantine failure is logged and counted, never returned), then
    /// the chosen file is returned. An I/O error while reading a candidate is returned as is,
    /// after quarantining the failing files newer than it: it says nothing about the file, so
    /// nothing is quarantined for it. Neither is a file whose only fault is a signer outside the trusted
    /// keys: it is skipped and counted (`untrusted_skipped`), so a wrong key configuration
    /// cannot destroy good snapshots.
    ///
    /// A damaged newest file does not stop a restart: `latest` falls back to the snapshot
    /// before it and moves the damaged one aside. (`commit(&store, &key, idx, state)` writes
    /// the state at `idx` as in the crate example, proven at `idx + 1`.)
    ///
    /// ```
    /// # use std::os::unix::fs::FileExt;
    /// # use snapseal_persist::FileState;
    /// # use std::io::Write;
    /// # use std::sync::Arc;
    /// # use snapseal_persist::fs::RealFs;
    /// # use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
    /// # use snapseal_persist::{BodyBuilder, Committed, SigningKey, SnapshotStore, StoreOptions};
    /// # type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
    /// # fn commit(store: &SnapshotStore, key: &SigningKey, idx: u64, state: &[u8])
    /// #     -> Result<Committed> {
    /// #     let mut body = BodyBuilder::new(None)?;
    /// #     body.write_all(state)?;
    /// #     let body = body.finish()?;
    /// #     let receipt = statement_receipt(key, &body.claims(idx), idx + 1, None)?;
    /// #     Ok(body.commit(store, idx, idx + 1, &receipt)?)
    /// # }
    /// # fn main() -> Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let key = SigningKey::from_bytes(&[7; 32]);
    /// let trusted =
    ///     Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
    /// let opts = StoreOptions::new(Arc::new(trusted));
    /// let store = SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?;
    /// commit(&store, &key, 10, b"older state")?;
    /// let newest = commit(&store, &key, 20, b"newer state")?;
    /// assert_eq!(store.latest()?.map(|s| s.name().idx), Some(20));
    ///
    /// // Bit rot in the newest file's body (it starts after the 160-byte header).
    /// std::fs::OpenOptions::new().write(true).open(&newest.path)?.write_all_at(b"X", 160)?;
    /// let latest = store.latest()?.expect("the older snapshot still verifies");
    /// assert_eq!(latest.name().idx, 10);
    /// // The damaged file is quarantined (renamed `.corrupt`, kept for inspection).
    /// assert_eq!(store.stats().quarantined, 1);
    /// let corrupt = store.list()?.into_iter().find(|e| e.name.state == FileState::Corrupt);
    /// assert_eq!(corrupt.map(|e| e.name.idx), Some(20));
    /// # Ok(()) }
    /// ```
    pub fn latest(&self) -> Result<Option<SnapshotFile>, StoreError> {
        let (plan, stopped) = self.plan_here()?;
        for passed in &plan.passed_over {
            match &passed.reason {
                PassOverReason::Untrusted(_) => {
                    bump(
                        &self.counters.untrusted_skipped,
                        "snapseal_store_untrusted_skipped_total",
                        1,
                    );
                    warn!(name = %passed.file_name, "snapshot signed by an untrusted key; skipped, not quarantined (check the trusted keys)");
                }
                PassOverReason::Failed(reason) => {
                    warn!(name = %passed.file_name, error = %ErrorChain(reason), "snapshot failed verification; quarantining");
                    if let Some(name) = passed.snapshot {
                        self.quarantine(name);
                    }
                }
                _ => {}
            }
        }
        if let Some(e) = stopped {
            return Err(e);
        }
        if let Some(file) = &plan.chosen {
            debug!(name = %file.name(), "latest snapshot verified");
            self.known_good.lock().insert(*file.name());
        }
        Ok(plan.chosen)
    }

    internals_pub! {
        /// Which snapshot [`latest`](Self::latest) would return now and why each newer file is
        /// passed over, without changing anything (nothing is quarantined). The chosen file
        /// carries a [`Hold`].
        fn plan_latest(&self) -> Result<LatestPlan, StoreError> {
            let (plan, stopped) = self.plan_here()?;
            match stopped {
                Some(e) => Err(e),
                None => Ok(plan),
            }
        }
    }

    /// The selection of [`latest`](Self::latest) over this store's directory, its chunk
    /// packs and its verifier, each candidate held while it is read.
    fn plan_here(&self) -> Result<(LatestPlan, Option<StoreError>), StoreError> {
        let listed = classify_dir(&*self.dir)?;
        Ok(plan_over(
            &*self.dir,
            &listed,
            &*self.opts.verifier,
            Some(&self.chunks),
            |name| Some(self.holds.acquire(*name)),
        ))
    }

    /// Moves a failing file to quarantine and trims the quarantine. Failures are logged and
    /// counted: a bad file must not block recovery from an older good one.
    fn quarantine(&self, name: SnapshotName) {
        let _maintenance = self.maintenance.lock();
        if self.quarantine_locked(name) {
            self.trim_quarantine_locked();
        }
    }

    /// Moves a failing file to quarantine (the caller holds `maintenance`); true when it was
    /// moved. Failures are logged and counted.
    fn quarantine_locked(&self, name: SnapshotName) -> bool {
        self.known_good.lock().remove(&name);
        match quarantine::quarantine(&*self.dir, name) {
            Ok(Quarantined::Moved) => {
                bump(
                    &self.counters.quarantined,
                    "snapseal_store_quarantined_total",
                    1,
                );
                true
            }
            Ok(Quarantined::Gone) => false,
            Ok(Quarantined::NameTaken) => {
                bump(
                    &self.counters.quarantine_failures,
                    "snapseal_store_quarantine_failures_total",
                    1,
                );
                warn!(name = %name, "a quarantined file of that name exists; leaving the failing file in place");
                false
            }
            Err(e) => {
                bump(
                    &self.counters.quarantine_failures,
                    "snapseal_store_quarantine_failures_total",
                    1,
                );
                error!(name = %name, error = %ErrorChain(&e), "quarantine failed");
                false
            }
        }
    }

    /// Deletes the oldest quarantined files beyond `max_quarantined`. Failures are logged and
    /// counted, never returned: the bound is housekeeping.
    fn trim_quarantine(&self) -> Vec<SnapshotName> {
        let _maintenance = self.maintenance.lock();
        self.trim_quarantine_locked()
    }

    fn trim_quarantine_locked(&self) -> Vec<SnapshotName> {
        match quarantine::trim(&*self.dir, self.opts.max_quarantined, &*self.opts.verifier) {
            Ok(deleted) => deleted,
            Err(e) => {
                bump(
                    &self.counters.quarantine_failures,
                    "snapseal_store_quarantine_failures_total",
                    1,
                );
                error!(error = %ErrorChain(&e), "trimming the quarantine failed");
                Vec::new()
            }
        }
    }

    /// Reads and verifies the committed snapshot `name` (any state given is taken as the
    /// committed one), holding it against retention while the returned file lives. An I/O
    /// error (a name that is not there, say) is [`VerifyError::Read`]; any other error means
    /// the file is bad. Unlike [`latest`](Self::latest), a failing file is not quarantined.
    ///
    /// ```
    /// # use std::io::Read;
    /// # use snapseal_persist::{FileState, SnapshotName, VerifyError};
    /// # use std::io::Write;
    /// # use std::sync::Arc;
    /// # use snapseal_persist::fs::RealFs;
    /// # use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
    /// # use snapseal_persist::{BodyBuilder, Committed, SigningKey, SnapshotStore, StoreOptions};
    /// # type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
    /// # fn commit(store: &SnapshotStore, key: &SigningKey, idx: u64, state: &[u8])
    /// #     -> Result<Committed> {
    /// #     let mut body = BodyBuilder::new(None)?;
    /// #     body.write_all(state)?;
    /// #     let body = body.finish()?;
    /// #     let receipt = statement_receipt(key, &body.claims(idx), idx + 1, None)?;
    /// #     Ok(body.commit(store, idx, idx + 1, &receipt)?)
    /// # }
    /// # fn main() -> Result<()> {
    /// // `commit(&store, &key, idx, state)`: the crate example's commit, proven at `idx + 1`.
    /// let dir = tempfile::tempdir()?;
    /// let key = SigningKey::from_bytes(&[7; 32]);
    /// let trusted =
    ///     Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
    /// let opts = StoreOptions::new(Arc::new(trusted));
    /// let store = SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?;
    /// let committed = commit(&store, &key, 10, b"state at 10")?;
    ///
    /// // Read one snapshot by name: verified (receipt, claims, body digest) before use.
    /// let file = store.read(&committed.name)?;
    /// assert_eq!(file.receipt().sig_idx, 11); // the commit index the statement vouches for
    /// let mut state = String::new();
    /// file.body_reader()?.read_to_string(&mut state)?;
    /// assert_eq!(state, "state at 10");
    ///
    /// // A name that is not there is an I/O error: it says nothing about any file.
    /// let absent = SnapshotName { idx: 30, evidence_idx: 31, state: FileState::Committed };
    /// assert!(matches!(store.read(&absent), Err(VerifyError::Read { .. })));
    /// # Ok(()) }
    /// ```
    pub fn read(&self, name: &SnapshotName) -> Result<SnapshotFile, VerifyError> {
        let name = name.with_state(FileState::Committed);
        let hold = self.holds.acquire(name);
        let file = open_snapshot_with(&*self.dir, &name, &*self.opts.verifier, Some(&self.chunks))?;
        self.known_good.lock().insert(name);
        Ok(file.with_hold(hold))
    }

    /// Pins committed snapshot `name` (any state given is taken as the committed one) against
    /// retention until the returned [`Hold`] is dropped. Fails with
    /// [`StoreError::NotFound`] when no such committed file exists.
    ///
    /// ```
    /// # use std::io::Write;
    /// # use std::sync::Arc;
    /// # use snapseal_persist::fs::RealFs;
    /// # use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
    /// # use snapseal_persist::{BodyBuilder, Committed, SigningKey, SnapshotStore, StoreOptions};
    /// # type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
    /// # fn commit(store: &SnapshotStore, key: &SigningKey, idx: u64, state: &[u8])
    /// #     -> Result<Committed> {
    /// #     let mut body = BodyBuilder::new(None)?;
    /// #     body.write_all(state)?;
    /// #     let body = body.finish()?;
    /// #     let receipt = statement_receipt(key, &body.claims(idx), idx + 1, None)?;
    /// #     Ok(body.commit(store, idx, idx + 1, &receipt)?)
    /// # }
    /// # fn main() -> Result<()> {
    /// // `commit(&store, &key, idx, state)`: the crate example's commit, proven at `idx + 1`.
    /// let dir = tempfile::tempdir()?;
    /// let key = SigningKey::from_bytes(&[7; 32]);
    /// let trusted =
    ///     Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
    /// let mut opts = StoreOptions::new(Arc::new(trusted));
    /// opts.keep_last = 1; // retention keeps only the newest snapshot
    /// let store = SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?;
    /// let old = commit(&store, &key, 10, b"a")?;
    ///
    /// // Pin the old snapshot (a peer is still downloading it), then commit a newer one:
    /// // the retention pass after that commit spares the pinned file.
    /// let hold = store.hold(&old.name)?;
    /// commit(&store, &key, 20, b"b")?;
    /// assert_eq!(store.list()?.len(), 2);
    ///
    /// drop(hold);
    /// let report = store.apply_retention()?;
    /// assert_eq!(report.deleted, [old.name]);
    /// assert_eq!(store.list()?.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn hold(&self, name: &SnapshotName) -> Result<Hold, StoreError> {
        let name = name.with_state(FileState::Committed);
        // Pin, then look: retention checks pins under the same lock it deletes under, so if
        // the file is there now, it stays.
        let hold = self.holds.acquire(name);
        if self.list()?.iter().any(|e| e.name == name) {
            Ok(hold)
        } else {
            Err(StoreError::NotFound {
                path: self.path.join(name.file_name()),
            })
        }
    }

    internals_pub! {
        /// What [`apply_retention`](Self::apply_retention) would do now (for `gc --dry-run`).
        /// Only snapshots that verify count toward `keep_last` and `max_bytes` (see
        /// [`plan_retention`](crate::internals::plan_retention)); a committed file not known to verify is
        /// verified here, newest first, until enough good ones are found.
        fn retention_plan(&self) -> Result<RetentionPlan, StoreError> {
            self.plan_checked(None).map(|(plan, _)| plan)
        }
    }

    /// The retention plan, made safe against bit rot in files remembered as good: before the
    /// plan drops anything, the newest kept snapshot is verified afresh (unless it is
    /// `fresh`, the file this pass was run for, just written), and if it fails it is no
    /// longer counted and the plan is made again. So whatever a pass deletes is older than a
    /// snapshot that verified during that pass, and the newest snapshot that verifies is
    /// never deleted. Costs one verification per pass that drops something, none in the
    /// usual pass right after a commit.
    fn plan_checked(
        &self,
        fresh: Option<SnapshotName>,
    ) -> Result<(RetentionPlan, usize), StoreError> {
        let mut rounds = 0usize;
        loop {
            let (plan, corrupt) = self.plan_and_count_quarantined()?;
            let drops = !plan.delete.is_empty() || !plan.held.is_empty();
            let newest = match plan.keep.first() {
                Some(e) if drops && Some(e.name) != fresh => e.name,
                _ => return Ok((plan, corrupt)),
            };
            // Bounded: each round takes one name out of the remembered set.
            rounds += 1;
            self.known_good.lock().remove(&newest);
            if self.standing(&newest) == Standing::Verified {
                return Ok((plan, corrupt));
            }
            if rounds > 64 {
                // Answers keep changing (flaky reads): drop nothing this time.
                let mut plan = plan;
                plan.delete.clear();
                plan.held.clear();
                return Ok((plan, corrupt));
            }
            warn!(name = %newest, "a snapshot remembered as good no longer verifies; planning retention again");
        }
    }

    /// The retention plan, and how many quarantined files the same listing holds.
    fn plan_and_count_quarantined(&self) -> Result<(RetentionPlan, usize), StoreError> {
        let files = self.list()?;
        let committed = in_state(&files, FileState::Committed);
        let plan = retention::plan_retention(
            &committed,
            self.opts.keep_last,
            self.opts.max_bytes,
            |name| self.holds.is_held(name),
            |entry| self.standing(&entry.name),
        );
        Ok((plan, in_state(&files, FileState::Corrupt).len()))
    }

    /// What verification says about committed `name`, remembering a success.
    fn standing(&self, name: &SnapshotName) -> Standing {
        if self.known_good.lock().contains(name) {
            return Standing::Verified;
        }
        match open_snapshot_with(&*self.dir, name, &*self.opts.verifier, Some(&self.chunks)) {
            Ok(_) => {
                self.known_good.lock().insert(*name);
                Standing::Verified
            }
            Err(e) => {
                let standing = Standing::of_failure(&e);
                // An untrusted signer is a matter of the key set: nothing to warn about.
                if e.is_io() {
                    warn!(name = %name, error = %ErrorChain(&e), "cannot read snapshot; retention leaves it alone");
                } else if standing == Standing::Failed {
                    warn!(name = %name, error = %ErrorChain(&e), "snapshot failed verification");
                }
                standing
            }
        }
    }

    /// Carries out retention: counts only snapshots that verify, quarantines committed files
    /// found failing on the way, deletes what the rules drop (`keep_last` and `max_bytes` of
    /// [`StoreOptions`], counting only snapshots that verify), sparing held snapshots, fsyncs the
    /// directory, and trims the quarantine to `max_quarantined`. The newest snapshot that
    /// verifies is never deleted. Refused once a directory fsync failed
    /// ([`StoreError::Failed`]).
    pub fn apply_retention(&self) -> Result<RetentionReport, StoreError> {
        self.retention_pass(None)
    }

    /// [`apply_retention`](Self::apply_retention); `fresh` is a snapshot this process has
    /// just written, which needs no fresh verification.
    fn retention_pass(&self, fresh: Option<SnapshotName>) -> Result<RetentionReport, StoreError> {
        let _maintenance = self.maintenance.lock();
        if let Some(f) = self.guard.failure() {
            return Err(StoreError::Failed {
                dir: self.path.clone(),
                earlier: f.first,
            });
        }
        let (plan, corrupt) = self.plan_checked(fresh)?;
        let mut quarantined = Vec::new();
        for entry in &plan.quarantine {
            if self.quarantine_locked(entry.name) {
                quarantined.push(entry.name);
            }
        }
        let result = retention::apply(&*self.dir, &plan, &self.holds);
        // The bound is enforced here too, not only when something new was quarantined.
        let quarantine_deleted = if corrupt + quarantined.len() > self.opts.max_quarantined {
            self.trim_quarantine_locked()
        } else {
            Vec::new()
        };
        let mut report = result?;
        report.quarantined = quarantined;
        report.quarantine_deleted = quarantine_deleted;
        self.sweep_chunks()?;
        {
            let mut known = self.known_good.lock();
            for name in report.deleted.iter().chain(&report.vanished) {
                known.remove(name);
            }
        }
        bump(
            &self.counters.retention_deleted,
            "snapseal_store_retention_deleted_total",
            report.deleted.len() as u64,
        );
        if !report.deleted.is_empty() || !report.spared.is_empty() {
            debug!(
                deleted = report.deleted.len(),
                spared = report.spared.len(),
                freed = report.freed_bytes,
                "retention"
            );
        }
        Ok(report)
    }

    /// The chunk sweep after snapshot retention (docs/FORMAT.md §10.4): the claims record
    /// starts before the listing of the snapshots whose lists are live, so neither a persist
    /// committing meanwhile nor one relying on a stored chunk loses a chunk it names. The
    /// caller holds `maintenance`. Nothing to do for a store without packs.
    fn sweep_chunks(&self) -> Result<(), StoreError> {
        if self.chunks.is_empty() {
            return Ok(());
        }
        let sweeping = self.chunks.begin_sweep();
        let live = self.chunks.live_chunks()?;
        self.chunks.sweep(&live, &sweeping)?;
        Ok(())
    }

    /// Removes our stale uncommitted and pending files (leftovers of a crash mid-write, or of
    /// generations that were pending when the process stopped: their proof never came).
    /// Returns how many quarantined files the listing held.
    fn remove_stale(&self, entries: &[DirEntry]) -> Result<usize, StoreError> {
        let corrupt = in_state(&our_files(entries), FileState::Corrupt).len();
        let uncommitted = in_state(&our_files(entries), FileState::Uncommitted)
            .into_iter()
            .map(|e| (e.name.file_name(), e.len, "uncommitted"));
        let pending = pending_files(entries)
            .into_iter()
            .map(|e| (e.name.file_name(), e.len, "pending"));
        let mut removed = 0;
        for (file_name, bytes, kind) in uncommitted.chain(pending) {
            match self.dir.unlink(&file_name) {
                Ok(()) => {
                    info!(name = %file_name, bytes, kind, "removed stale file");
                    removed += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        path: self.path.join(&file_name),
                        step: StoreStep::UnlinkStale,
                        source,
                    })
                }
            }
        }
        if removed > 0 {
            self.dir.sync().map_err(|source| StoreError::Io {
                path: self.path.clone(),
                step: StoreStep::DirSync,
                source,
            })?;
            bump(
                &self.counters.stale_removed,
                "snapseal_store_stale_removed_total",
                removed,
            );
        }
        Ok(corrupt)
    }
}

/// Why [`plan_latest`] passed over a file newer than the one it chose.
#[derive(Debug)]
#[non_exhaustive]
pub enum PassOverReason {
    /// An uncommitted file: being written, or stale after a crash (removed when a store opens
    /// the directory).
    Uncommitted,
    /// A file quarantined earlier (its `.corrupt` name).
    Quarantined,
    /// A pending (spilled body) file: a body waiting for its proof, not a snapshot (removed
    /// when a store opens the directory).
    Pending,
    /// A committed file that failed verification: [`SnapshotStore::latest`] quarantines it.
    Failed(VerifyError),
    /// A committed file whose only fault is a signer outside the trusted keys, or a receipt
    /// scheme the verifier is not configured for: left in place (a wrong key set must not
    /// destroy good snapshots).
    Untrusted(VerifyError),
    /// A committed file that disappeared between listing and reading.
    Vanished,
    /// A committed name that is not a regular file any more (replaced after listing).
    NotRegular(VerifyError),
}

/// A file newer than the chosen snapshot, and why it was not chosen.
#[derive(Debug)]
pub struct PassedOver {
    /// The file's name in the directory.
    pub file_name: String,
    /// The snapshot name, for a snapshot file (`None` for a pending file).
    pub snapshot: Option<SnapshotName>,
    /// The pending name, for a pending file.
    pub pending: Option<PendingName>,
    /// Its size as listed.
    pub len: u64,
    /// Why it was passed over.
    pub reason: PassOverReason,
}

impl PassedOver {
    /// True when [`SnapshotStore::latest`] moves this file to quarantine.
    pub fn would_quarantine(&self) -> bool {
        matches!(self.reason, PassOverReason::Failed(_))
    }

    /// True when opening a store removes this file (stale uncommitted and pending files).
    pub fn removed_at_open(&self) -> bool {
        matches!(
            self.reason,
            PassOverReason::Uncommitted | PassOverReason::Pending
        )
    }
}

/// What [`plan_latest`] (or [`SnapshotStore::plan_latest`]) decided.
#[derive(Debug)]
pub struct LatestPlan {
    /// The newest committed snapshot that verifies, read and verified; `None` when there is
    /// none.
    pub chosen: Option<SnapshotFile>,
    /// Every file newer than the chosen one (all of them when none was chosen) and why it was
    /// passed over: snapshot files newest first, then pending files newest first.
    pub passed_over: Vec<PassedOver>,
}

/// The recovery decision of [`SnapshotStore::latest`] for the open directory `dir`, made
/// read-only and without the store's lock: committed files are verified newest first, and
/// those `latest` would quarantine are reported, not moved. An I/O error reading a candidate
/// (other than the file vanishing) is returned, as `latest` returns it.
pub fn plan_latest(
    dir: &dyn DirHandle,
    verifier: &dyn ReceiptVerifier,
) -> Result<LatestPlan, StoreError> {
    let listed = classify_dir(dir)?;
    let (plan, stopped) = plan_over(dir, &listed, verifier, None, |_| None);
    match stopped {
        Some(e) => Err(e),
        None => Ok(plan),
    }
}

/// The one selection logic. `pin` gives the hold to take on a candidate before reading it (so
/// retention cannot delete it meanwhile). Returns the plan made up to an I/O error, if one
/// stopped it.
fn plan_over(
    dir: &dyn DirHandle,
    listed: &[ListedEntry],
    verifier: &dyn ReceiptVerifier,
    chunks: Option<&Arc<ChunkStore>>,
    pin: impl Fn(&SnapshotName) -> Option<Hold>,
) -> (LatestPlan, Option<StoreError>) {
    let mut plan = LatestPlan {
        chosen: None,
        passed_over: Vec::new(),
    };
    let mut stopped = None;
    let snapshots: Vec<SnapshotEntry> = listed.iter().filter_map(ListedEntry::snapshot).collect();
    for entry in snapshots.iter().rev() {
        let passed = |reason| PassedOver {
            file_name: entry.name.file_name(),
            snapshot: Some(entry.name),
            pending: None,
            len: entry.len,
            reason,
        };
        let reason = match entry.name.state {
            FileState::Uncommitted => PassOverReason::Uncommitted,
            FileState::Corrupt => PassOverReason::Quarantined,
            FileState::Committed => {
                let hold = pin(&entry.name);
                match open_snapshot_with(dir, &entry.name, verifier, chunks) {
                    Ok(file) => {
                        plan.chosen = Some(match hold {
                            Some(hold) => file.with_hold(hold),
                            None => file,
                        });
                        break;
                    }
                    Err(VerifyError::Read { source, .. })
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        // Deleted between listing and reading (retention, another caller).
                        PassOverReason::Vanished
                    }
                    Err(VerifyError::Read { file, source }) => {
                        stopped = Some(StoreError::Io {
                            path: file,
                            step: StoreStep::Read,
                            source,
                        });
                        break;
                    }
                    Err(e @ VerifyError::NotRegularFile { .. }) => PassOverReason::NotRegular(e),
                    Err(e)
                        if matches!(&e, VerifyError::Receipt { source, .. }
                            if source.is_untrusted()) =>
                    {
                        PassOverReason::Untrusted(e)
                    }
                    Err(e) => PassOverReason::Failed(e),
                }
            }
        };
        plan.passed_over.push(passed(reason));
    }
    if stopped.is_none() {
        let floor = plan.chosen.as_ref().map(|f| f.name().idx);
        let pending = listed
            .iter()
            .rev()
            .filter_map(|e| match e.class {
                EntryClass::Pending(name) => Some((name, e.len)),
                _ => None,
            })
            .filter(|(name, _)| floor.is_none_or(|f| name.idx > f));
        for (name, len) in pending {
            plan.passed_over.push(PassedOver {
                file_name: name.file_name(),
                snapshot: None,
                pending: Some(name),
                len,
                reason: PassOverReason::Pending,
            });
        }
    }
    (plan, stopped)
}
