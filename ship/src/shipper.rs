//! The shipper: committed snapshots of a local store to the remote, oldest first, confirmed,
//! then indexed; with backoff, bounded concurrency and back-pressure into local retention.

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;
use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::internals::format::{Header, HEADER_LEN};
use snapseal_persist::internals::fs::{Expect, Untrusted, UntrustedError};
use snapseal_persist::internals::{verify_bytes, Escaped};
use snapseal_persist::receipt::ReceiptVerifier;
use snapseal_persist::{to_hex, FileState, Flags, Hold, SnapshotName, SnapshotStore};
use tracing::{debug, info, warn};

use crate::error::{describe, ErrorClass, ShipError};
use crate::index::{EntryClaims, IndexEntry};
use crate::layout::order;
use crate::local_file::{changed_under_us, Checked, LocalFile};
use crate::orphans::UploadLog;
use crate::own_index::OwnIndex;
use crate::remote::Remote;
use crate::upload::{Difference, Put, Source};

#[path = "shipper_chunks.rs"]
mod chunks;

/// How a shipper behaves.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ShipConfig {
    /// This node's name in the remote (the key prefix and its index entry): 1 to 64 of
    /// `[A-Za-z0-9._-]`, not starting with `.`.
    pub node: String,
    /// Files uploaded at the same time. Default: half the CPUs, at least 1.
    pub concurrency: usize,
    /// Multipart part size (at least 5 MiB); files up to this size go in one conditional put.
    pub part_size: usize,
    /// Parts of one file in flight at a time (memory: at most this many parts per upload are
    /// read and being sent; each is read with `pread` only when there is room for it).
    pub parts_in_flight: usize,
    /// Snapshots the node's index names (the newest); older objects stay on the remote until
    /// remote gc removes them, and readers still find them by listing.
    pub index_keep: usize,
    /// After claiming its node (writing the node's index with its own writer id, at the first
    /// pass), how long the shipper waits before it reads the index back: another shipper
    /// with the same node name claiming it meanwhile is detected then
    /// ([`ShipError::NodeInUse`]).
    pub claim_wait: Duration,
    /// Unshipped snapshots held against local retention, at most this many ...
    pub hold_max_count: usize,
    /// ... and at most this many bytes; beyond either, the oldest unshipped are released.
    pub hold_max_bytes: u64,
    /// First retry delay after a transient error.
    pub backoff_initial: Duration,
    /// Cap of the retry delay.
    pub backoff_max: Duration,
    /// Attempts per file before giving up on transient errors; `None`: retry forever.
    pub max_attempts: Option<u32>,
    /// On-demand requests ([`Shipper::request`]) closer together than this are coalesced.
    pub cooldown: Duration,
    /// The largest local file shipped; a larger one is skipped (as not verifying) after one
    /// `fstat`. Memory does not grow with it: a file is read with `pread` a few MiB at a time
    /// (never mapped, so a file another process truncates is an error, not a `SIGBUS`), and
    /// never held whole — per file in flight, one 8 MiB piece of its verification,
    /// `parts_in_flight` parts of its upload, then 16 MiB of its read-back.
    pub max_file_bytes: u64,
    /// Test hook (feature `test-hooks`): called with a local file's path once it is open and
    /// before any byte of it is read.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub after_open: Option<FileHook>,
    /// Test hook (feature `test-hooks`): called with a local file's path once it verified,
    /// before the verification's result is handed on.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub after_verify: Option<FileHook>,
    /// Test hook (feature `test-hooks`): called with a local file's path once its object is
    /// confirmed on the remote, before the node's index names it (where a crash leaves an
    /// object no index names).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub before_index: Option<FileHook>,
}

/// A hook called with a local file's path at a point of its shipping (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
#[derive(Clone)]
pub struct FileHook(pub Arc<dyn Fn(&FsPath) + Send + Sync>);

#[cfg(feature = "test-hooks")]
impl std::fmt::Debug for FileHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileHook")
    }
}

impl ShipConfig {
    /// The defaults for `node`: concurrency half the CPUs granted to snapseal
    /// ([`granted_cpus`](snapseal_engine::granted_cpus); at least 1), 8 MiB parts, 2 parts in
    /// flight, 64 index entries per node, holds on at most 16 unshipped files and 4 GiB,
    /// backoff 200 ms doubling to 30 s with jitter, retry forever (a one-shot command sets
    /// [`max_attempts`](Self::max_attempts)), cooldown 1 s, files up to 64 GiB.
    pub fn new(node: impl Into<String>) -> Self {
        ShipConfig {
            node: node.into(),
            concurrency: (snapseal_engine::granted_cpus().get() / 2).max(1),
            part_size: 8 << 20,
            parts_in_flight: 2,
            index_keep: 64,
            claim_wait: Duration::from_millis(500),
            hold_max_count: 16,
            hold_max_bytes: 4 << 30,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            max_attempts: None,
            cooldown: Duration::from_secs(1),
            max_file_bytes: 64 << 30,
            #[cfg(feature = "test-hooks")]
            after_open: None,
            #[cfg(feature = "test-hooks")]
            after_verify: None,
            #[cfg(feature = "test-hooks")]
            before_index: None,
        }
    }
}

/// Chained setters, one per field a node sets (the struct is `#[non_exhaustive]`, so it is
/// built from [`ShipConfig::new`], never by a literal; assigning a field works as well).
///
/// ```
/// use std::time::Duration;
/// use snapseal_ship::ShipConfig;
///
/// // A one-shot command on a small machine: one upload at a time, give up after 5 tries.
/// let config = ShipConfig::new("node-1")
///     .with_concurrency(1)
///     .with_max_attempts(5)
///     .with_backoff(Duration::from_millis(50), Duration::from_secs(2))
///     .with_hold_limits(4, 1 << 30);
/// assert_eq!((config.node.as_str(), config.concurrency), ("node-1", 1));
/// assert_eq!(config.max_attempts, Some(5));
/// assert_eq!((config.hold_max_count, config.hold_max_bytes), (4, 1 << 30));
/// assert_eq!(config.part_size, ShipConfig::new("node-1").part_size); // the rest: defaults
/// ```
impl ShipConfig {
    /// Sets [`concurrency`](Self::concurrency): files uploaded at the same time.
    pub fn with_concurrency(mut self, files: usize) -> Self {
        self.concurrency = files;
        self
    }

    /// Sets [`part_size`](Self::part_size) and [`parts_in_flight`](Self::parts_in_flight).
    pub fn with_parts(mut self, part_size: usize, parts_in_flight: usize) -> Self {
        self.part_size = part_size;
        self.parts_in_flight = parts_in_flight;
        self
    }

    /// Sets [`index_keep`](Self::index_keep): snapshots the node's index names.
    pub fn with_index_keep(mut self, snapshots: usize) -> Self {
        self.index_keep = snapshots;
        self
    }

    /// Sets [`claim_wait`](Self::claim_wait).
    pub fn with_claim_wait(mut self, wait: Duration) -> Self {
        self.claim_wait = wait;
        self
    }

    /// Sets [`hold_max_count`](Self::hold_max_count) and
    /// [`hold_max_bytes`](Self::hold_max_bytes): how much unshipped data is held against
    /// local retention.
    pub fn with_hold_limits(mut self, max_count: usize, max_bytes: u64) -> Self {
        self.hold_max_count = max_count;
        self.hold_max_bytes = max_bytes;
        self
    }

    /// Sets [`backoff_initial`](Self::backoff_initial) and
    /// [`backoff_max`](Self::backoff_max).
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts) to `attempts` per file (the default retries
    /// forever).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Sets [`cooldown`](Self::cooldown).
    pub fn with_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Sets [`max_file_bytes`](Self::max_file_bytes).
    pub fn with_max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes;
        self
    }
}

/// Whether `node` is usable as a node name (it becomes a key segment).
pub fn valid_node_name(node: &str) -> bool {
    (1..=64).contains(&node.len())
        && !node.starts_with('.')
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Refuses a node name that is not [valid](valid_node_name), naming it escaped.
pub(crate) fn check_node(url: &str, node: &str) -> Result<(), ShipError> {
    if valid_node_name(node) {
        return Ok(());
    }
    Err(ShipError::Config {
        url: url.to_string(),
        reason: format!(
            "node name \"{}\": 1 to 64 of [A-Za-z0-9._-], not starting with '.'",
            Escaped::str(node)
        ),
    })
}

/// Something the shipper did that an operator may want to see.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShipEvent {
    /// A snapshot was confirmed on the remote and indexed.
    Shipped {
        /// The committed file.
        name: SnapshotName,
        /// Its size.
        bytes: u64,
        /// False when the remote already held it complete (a resumed run).
        uploaded: bool,
    },
    /// An upload in parts moved on: `sent` of the file's `total` bytes were handed to the
    /// store (at most `parts_in_flight` parts ahead of what it acknowledged). One event per
    /// part; the file's `Shipped` event follows once it is confirmed.
    Progress {
        /// The committed file.
        name: SnapshotName,
        /// Bytes handed to the upload so far.
        sent: u64,
        /// The file's size.
        total: u64,
    },
    /// A transient error; the file is tried again after `delay`.
    Retrying {
        /// The committed file.
        name: SnapshotName,
        /// The attempt that failed (1 is the first).
        attempt: u32,
        /// The wait before the next.
        delay: Duration,
        /// The error.
        error: String,
    },
    /// The hold bound was exceeded: this unshipped snapshot no longer holds off retention.
    ReleasedUnshipped {
        /// The committed file.
        name: SnapshotName,
    },
    /// A committed file that does not verify is never shipped.
    SkippedUnverified {
        /// The committed file.
        name: SnapshotName,
        /// Why it failed.
        reason: String,
    },
    /// The node's index named this snapshot, but its object is not on the remote (and remote
    /// gc did not delete it): it is shipped again if the local file is still there.
    MissingOnRemote {
        /// The committed file.
        name: SnapshotName,
        /// Whether the local file is there to ship again.
        reshipping: bool,
    },
    /// The file went away (local retention) before it was shipped.
    Vanished {
        /// The committed file.
        name: SnapshotName,
    },
    /// A terminal error stopped the shipper.
    Stopped {
        /// The error.
        error: String,
    },
}

/// Counters, for metrics and tests (also exported through the `metrics` facade).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShipStats {
    /// Snapshots confirmed and indexed.
    pub shipped: u64,
    /// Their bytes.
    pub shipped_bytes: u64,
    /// Snapshots actually uploaded (the rest were found complete on the remote).
    pub uploaded: u64,
    /// Transient errors retried.
    pub retries: u64,
    /// Committed snapshots not yet shipped, after the last pass.
    pub queue_depth: u64,
    /// Seconds the oldest of them has waited (since this shipper first saw it).
    pub oldest_unshipped_secs: u64,
    /// Terminal errors.
    pub terminal_errors: u64,
    /// Unshipped snapshots released from their hold by the bound.
    pub released_unshipped: u64,
    /// Committed files skipped because they do not verify.
    pub skipped_unverified: u64,
    /// Chunk objects of chunked snapshots uploaded (the remote lacked them).
    pub chunks_uploaded: u64,
    /// Their bytes.
    pub chunk_bytes_uploaded: u64,
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShipReport {
    /// Shipped in this pass, oldest first.
    pub shipped: Vec<SnapshotName>,
    /// Of those, the ones uploaded (the rest were already complete on the remote).
    pub uploaded: Vec<SnapshotName>,
    /// Skipped: do not verify, or gone.
    pub skipped: Vec<SnapshotName>,
    /// Bytes shipped.
    pub bytes: u64,
}

/// A listener for [`ShipEvent`]s.
pub type EventSink = Box<dyn Fn(&ShipEvent) + Send + Sync>;

/// An unshipped snapshot the shipper knows about.
struct Waiting {
    hold: Option<Hold>,
    len: u64,
    since: Instant,
}

#[derive(Default)]
struct Counters {
    shipped: AtomicU64,
    shipped_bytes: AtomicU64,
    uploaded: AtomicU64,
    retries: AtomicU64,
    queue_depth: AtomicU64,
    terminal_errors: AtomicU64,
    released_unshipped: AtomicU64,
    skipped_unverified: AtomicU64,
    chunks_uploaded: AtomicU64,
    chunk_bytes_uploaded: AtomicU64,
}

/// Ships a store's committed snapshots to a remote. Runs beside the node's Snapshotter and
/// shares its [`SnapshotStore`] (for holds); one shipper per node name at a time.
pub struct Shipper {
    remote: Arc<Remote>,
    store: Arc<SnapshotStore>,
    verifier: Arc<dyn ReceiptVerifier>,
    config: ShipConfig,
    waiting: Mutex<BTreeMap<SnapshotName, Waiting>>,
    last_request: Mutex<Option<Instant>>,
    stopped: Mutex<Option<String>>,
    counters: Counters,
    sink: Option<EventSink>,
    rng: Mutex<SplitMix64>,
    /// The node's index: its claim, and the writer-id check before each write.
    own: OwnIndex,
    /// Its multipart uploads in progress, recorded so that the next shipper aborts those a
    /// crash interrupts (`orphans.rs`).
    uploads: Arc<UploadLog>,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field("remote", &self.remote)
            .field("dir", &self.store.dir())
            .field("config", &self.config)
            .finish()
    }
}

/// What happened to one file.
enum Outcome {
    Confirmed { entry: IndexEntry, uploaded: bool },
    Unverified(String),
    Vanished,
}

impl Shipper {
    /// A shipper for `store`'s snapshots (verified with the store's own verifier).
    pub fn new(
        remote: Arc<Remote>,
        store: Arc<SnapshotStore>,
        config: ShipConfig,
    ) -> Result<Shipper, ShipError> {
        check_node(remote.url(), &config.node)?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let uploads = Arc::new(UploadLog::new(
            store.dir().to_path_buf(),
            remote.url(),
            &config.node,
        ));
        Ok(Shipper {
            own: OwnIndex::new(&config.node, config.index_keep, config.claim_wait),
            verifier: Arc::clone(&store.options().verifier),
            remote,
            store,
            config,
            waiting: Mutex::new(BTreeMap::new()),
            last_request: Mutex::new(None),
            stopped: Mutex::new(None),
            counters: Counters::default(),
            sink: None,
            rng: Mutex::new(SplitMix64::seed_from_u64(seed)),
            uploads,
        })
    }

    /// Sends every event to `sink` as well as to the log.
    pub fn with_events(mut self, sink: EventSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The counters now.
    pub fn stats(&self) -> ShipStats {
        let c = &self.counters;
        let oldest = self
            .waiting
            .lock()
            .values()
            .map(|w| w.since.elapsed().as_secs())
            .max()
            .unwrap_or(0);
        ShipStats {
            shipped: c.shipped.load(Ordering::Relaxed),
            shipped_bytes: c.shipped_bytes.load(Ordering::Relaxed),
            uploaded: c.uploaded.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            queue_depth: c.queue_depth.load(Ordering::Relaxed),
            oldest_unshipped_secs: oldest,
            terminal_errors: c.terminal_errors.load(Ordering::Relaxed),
            released_unshipped: c.released_unshipped.load(Ordering::Relaxed),
            skipped_unverified: c.skipped_unverified.load(Ordering::Relaxed),
            chunks_uploaded: c.chunks_uploaded.load(Ordering::Relaxed),
            chunk_bytes_uploaded: c.chunk_bytes_uploaded.load(Ordering::Relaxed),
        }
    }

    /// The terminal error that stopped this shipper, if one did.
    pub fn stopped(&self) -> Option<String> {
        self.stopped.lock().clone()
    }

    /// An on-demand pass (e.g. after each commit): runs [`ship_pending`](Self::ship_pending)
    /// unless the previous request was less than the cooldown ago (`Ok(None)`; the next pass
    /// picks those files up).
    ///
    /// Blocks the calling thread for the pass. From a tokio task it does not panic (the pass
    /// runs on the private runtime from a helper thread) but it holds the task's worker
    /// thread meanwhile: there, call [`ship`](Self::ship) instead.
    pub fn request(&self) -> Result<Option<ShipReport>, ShipError> {
        {
            let mut last = self.last_request.lock();
            if last.is_some_and(|t| t.elapsed() < self.config.cooldown) {
                return Ok(None);
            }
            *last = Some(Instant::now());
        }
        self.ship_pending().map(Some)
    }

    /// Ships until `stop` is set, a pass every `poll`; returns on a terminal error.
    ///
    /// Blocks the calling thread until then (meant for a thread of its own). An async node
    /// runs its own loop of [`ship`](Self::ship) instead, on its runtime.
    pub fn follow(&self, poll: Duration, stop: &AtomicBool) -> Result<ShipStats, ShipError> {
        while !stop.load(Ordering::Relaxed) {
            self.ship_pending()?;
            let until = Instant::now() + poll;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50).min(poll));
            }
        }
        Ok(self.stats())
    }

    /// One pass, blocking: [`ship`](Self::ship) run to completion on the remote's private
    /// runtime (built on the first blocking call).
    ///
    /// Blocks the calling thread for the pass. From a tokio task it does not panic (the pass
    /// runs on the private runtime from a helper thread) but it holds the task's worker
    /// thread meanwhile: there, `.await` [`ship`](Self::ship) instead.
    pub fn ship_pending(&self) -> Result<ShipReport, ShipError> {
        self.remote.block_on(self.ship())
    }

    /// One pass, on the caller's tokio runtime: every committed snapshot newer than the newest
    /// one the index names for this node, oldest first, is read and verified, uploaded (or
    /// found complete on the remote), confirmed by size and BLAKE3 of what the remote
    /// returns, and only then added to the index, in order. A terminal error stops the
    /// shipper (this and every later call fails with it).
    ///
    /// The local file's opening, `pread`s and full verification run on the runtime's
    /// blocking threads (`spawn_blocking`); what runs on the polling task is the remote calls
    /// and the BLAKE3 of each piece sent or read back (a few MiB, hashed on rayon's threads
    /// while the task waits: milliseconds per piece). The future is `Send`, so a node may
    /// `tokio::spawn` it. Needs a runtime with I/O and time enabled (`enable_all`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use snapseal_persist::fs::RealFs;
    /// use snapseal_persist::receipt::Ed25519Verifier;
    /// use snapseal_persist::{SigningKey, SnapshotStore, StoreOptions};
    /// use snapseal_ship::{Remote, RemoteOptions, ShipConfig, Shipper};
    /// # use std::io::Write;
    /// # use snapseal_persist::receipt::statement_receipt;
    /// # use snapseal_persist::BodyBuilder;
    /// # type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
    /// # // A snapshot of `state` committed at `idx` and proven at `idx + 1` by a statement `key`
    /// # // signs: what the node's Snapshotter does (see snapseal_persist's crate example).
    /// # fn commit(store: &SnapshotStore, key: &SigningKey, idx: u64, state: &[u8]) -> Result<()> {
    /// #     let mut body = BodyBuilder::new(None)?;
    /// #     body.write_all(state)?;
    /// #     let body = body.finish()?;
    /// #     let receipt = statement_receipt(key, &body.claims(idx), idx + 1, None)?;
    /// #     body.commit(store, idx, idx + 1, &receipt)?;
    /// #     Ok(())
    /// # }
    /// # // Stores trusting statements by `key`.
    /// # fn trusting(key: &SigningKey) -> StoreOptions {
    /// #     let verifier = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
    /// #     StoreOptions::new(Arc::new(verifier))
    /// # }
    ///
    /// # fn main() -> Result<()> {
    /// let key = SigningKey::from_bytes(&[7; 32]);
    /// let (node_dir, backups) = (tempfile::tempdir()?, tempfile::tempdir()?);
    /// let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), node_dir.path(), trusting(&key))?);
    /// let url = format!("file://{}", backups.path().display());
    /// let remote = Arc::new(Remote::open(&url, &RemoteOptions::default())?);
    /// let shipper = Arc::new(Shipper::new(remote, Arc::clone(&store), ShipConfig::new("node-1"))?);
    ///
    /// // The node's own runtime (any flavour, with I/O and time enabled).
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// rt.block_on(async {
    ///     commit(&store, &key, 10, b"state at 10")?;
    ///     commit(&store, &key, 20, b"state at 20")?;
    ///     // A pass as a task of its own (the future is `Send`), e.g. after each commit.
    ///     let pass = tokio::spawn({
    ///         let shipper = Arc::clone(&shipper);
    ///         async move { shipper.ship().await }
    ///     });
    ///     assert_eq!(pass.await??.shipped.len(), 2);
    ///     assert!(shipper.ship().await?.shipped.is_empty(), "nothing new to ship");
    ///     Ok::<_, Box<dyn std::error::Error>>(())
    /// })?;
    /// // Dropped anywhere, a task included, a shipper never panics.
    /// drop(shipper);
    /// # Ok(()) }
    /// ```
    pub async fn ship(&self) -> Result<ShipReport, ShipError> {
        if let Some(reason) = self.stopped() {
            return Err(ShipError::Config {
                url: self.remote.url().to_string(),
                reason: format!("shipper stopped earlier: {reason}"),
            });
        }
        let result = self.pass().await;
        if let Err(e) = &result {
            if e.class() == ErrorClass::Terminal {
                let text = describe(e);
                self.counters
                    .terminal_errors
                    .fetch_add(1, Ordering::Relaxed);
                metrics::counter!("snapseal_ship_terminal_errors_total").increment(1);
                // The error goes back to the caller (and to the event sink): logging its text
                // as well would print every cause twice wherever both reach the operator.
                warn!(remote = %self.remote.url(), "shipping stopped on a terminal error (returned to the caller)");
                debug!(remote = %self.remote.url(), error = %text, "the terminal error");
                *self.stopped.lock() = Some(text.clone());
                self.emit(ShipEvent::Stopped { error: text });
            }
        }
        result
    }

    async fn pass(&self) -> Result<ShipReport, ShipError> {
        let plan = self.retrying(None, || self.own.plan(&self.remote)).await?;
        let local = self.store.list().map_err(|source| ShipError::Store {
            dir: self.store.dir().to_path_buf(),
            source,
        })?;
        let committed: BTreeMap<SnapshotName, u64> = local
            .iter()
            .filter(|e| e.name.state == FileState::Committed)
            .map(|e| (e.name, e.len))
            .collect();
        for name in &plan.missing {
            let reshipping = committed.contains_key(name);
            warn!(node = %self.config.node, file = %name, reshipping, "the node's index named a snapshot that is not on the remote");
            self.emit(ShipEvent::MissingOnRemote {
                name: *name,
                reshipping,
            });
        }
        let queue = self.queue(&plan, &committed);
        // Held first: a remote that takes no write still holds off local retention.
        self.hold_queue(&queue);
        self.retrying(None, || self.own.settle(&self.remote, &plan))
            .await?;
        let mut report = ShipReport::default();
        let dir = self.store.dir().to_path_buf();
        let names: Vec<SnapshotName> = queue.iter().map(|(name, _)| *name).collect();
        let mut results = futures::stream::iter(names)
            .map(|name| {
                let dir = dir.clone();
                async move { (name, self.ship_one(&dir, name).await) }
            })
            .buffered(self.config.concurrency.max(1));
        // `buffered` yields in queue order: a file is indexed only after every older one was.
        while let Some((name, outcome)) = results.next().await {
            match outcome? {
                Outcome::Confirmed { entry, uploaded } => {
                    #[cfg(feature = "test-hooks")]
                    if let Some(hook) = &self.config.before_index {
                        (hook.0)(&dir.join(name.file_name()));
                    }
                    self.retrying(Some(name), || self.own.record(&self.remote, entry.clone()))
                        .await?;
                    self.waiting.lock().remove(&name);
                    let c = &self.counters;
                    c.shipped.fetch_add(1, Ordering::Relaxed);
                    c.shipped_bytes.fetch_add(entry.size, Ordering::Relaxed);
                    metrics::counter!("snapseal_ship_shipped_total").increment(1);
                    metrics::counter!("snapseal_ship_shipped_bytes_total").increment(entry.size);
                    if uploaded {
                        c.uploaded.fetch_add(1, Ordering::Relaxed);
                        report.uploaded.push(name);
                    }
                    report.shipped.push(name);
                    report.bytes += entry.size;
                    info!(file = %name, bytes = entry.size, uploaded, "shipped");
                    self.emit(ShipEvent::Shipped {
                        name,
                        bytes: entry.size,
                        uploaded,
                    });
                }
                Outcome::Unverified(reason) => {
                    self.waiting.lock().remove(&name);
                    self.counters
                        .skipped_unverified
                        .fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("snapseal_ship_skipped_unverified_total").increment(1);
                    warn!(file = %name, reason = %reason, "not shipping a file that does not verify");
                    report.skipped.push(name);
                    self.emit(ShipEvent::SkippedUnverified { name, reason });
                }
                Outcome::Vanished => {
                    self.waiting.lock().remove(&name);
                    report.skipped.push(name);
                    self.emit(ShipEvent::Vanished { name });
                }
            }
            self.set_queue_depth();
        }
        self.set_queue_depth();
        Ok(report)
    }

    /// The pass's queue, oldest first: every local committed snapshot the node's index does
    /// not name (whatever its age: an entry lost or dropped is shipped again, or found
    /// complete on the remote and indexed), except those at or below remote gc's floor, and
    /// only among the newest `index_keep` of what the index names and the store holds — what
    /// retention on either side would keep.
    fn queue(
        &self,
        plan: &crate::own_index::Plan,
        committed: &BTreeMap<SnapshotName, u64>,
    ) -> Vec<(SnapshotName, u64)> {
        let floor = plan.objects.gc_floor();
        let mut all: Vec<SnapshotName> =
            plan.named.iter().chain(committed.keys()).copied().collect();
        all.sort_by_key(order);
        all.dedup();
        let window = all.len().saturating_sub(self.config.index_keep.max(1));
        all[window..]
            .iter()
            .filter(|n| !plan.named.contains(n))
            .filter(|n| floor.is_none_or(|f| order(n) > order(&f)))
            .filter_map(|n| committed.get(n).map(|len| (*n, *len)))
            .collect()
    }

    fn set_queue_depth(&self) {
        let waiting = self.waiting.lock();
        let depth = waiting.len() as u64;
        let oldest = waiting
            .values()
            .map(|w| w.since.elapsed().as_secs_f64())
            .fold(0.0, f64::max);
        drop(waiting);
        self.counters.queue_depth.store(depth, Ordering::Relaxed);
        metrics::gauge!("snapseal_ship_queue_depth").set(depth as f64);
        metrics::gauge!("snapseal_ship_oldest_unshipped_seconds").set(oldest);
    }

    /// Back-pressure: every queued file is held against local retention, oldest released
    /// first when the count or byte bound is exceeded (with an event and a counter).
    fn hold_queue(&self, queue: &[(SnapshotName, u64)]) {
        let mut waiting = self.waiting.lock();
        waiting.retain(|name, _| queue.iter().any(|(n, _)| n == name));
        for (name, len) in queue {
            waiting.entry(*name).or_insert_with(|| Waiting {
                // A file retention already removed is found gone when it is read.
                hold: self.store.hold(name).ok(),
                len: *len,
                since: Instant::now(),
            });
        }
        loop {
            let held: Vec<(SnapshotName, u64)> = waiting
                .iter()
                .filter(|(_, w)| w.hold.is_some())
                .map(|(n, w)| (*n, w.len))
                .collect();
            let bytes: u64 = held.iter().map(|(_, l)| l).sum();
            if held.len() <= self.config.hold_max_count && bytes <= self.config.hold_max_bytes {
                break;
            }
            let Some((oldest, _)) = held.first() else {
                break;
            };
            if let Some(w) = waiting.get_mut(oldest) {
                w.hold = None;
            }
            self.counters
                .released_unshipped
                .fetch_add(1, Ordering::Relaxed);
            metrics::counter!("snapseal_ship_released_unshipped_total").increment(1);
            warn!(file = %oldest, "hold bound reached: releasing the oldest unshipped snapshot to local retention");
            self.emit(ShipEvent::ReleasedUnshipped { name: *oldest });
        }
        let depth = waiting.len() as u64;
        drop(waiting);
        self.counters.queue_depth.store(depth, Ordering::Relaxed);
    }

    /// One file, transient errors retried with backoff.
    async fn ship_one(&self, dir: &FsPath, name: SnapshotName) -> Result<Outcome, ShipError> {
        let opened = {
            let dir = dir.to_path_buf();
            let verifier = Arc::clone(&self.verifier);
            let config = self.config.clone();
            tokio::task::spawn_blocking(move || {
                let opened = open_local(&dir, name, &config, &*verifier)?;
                Ok(match opened {
                    Ok(file) => {
                        let chunked = is_chunked(&file);
                        Ok((file, chunked))
                    }
                    Err(outcome) => Err(outcome),
                })
            })
            .await
            .map_err(|e| ShipError::LocalIo {
                dir: self.store.dir().to_path_buf(),
                step: "reading a snapshot file",
                source: std::io::Error::other(e),
            })??
        };
        let (file, chunked) = match opened {
            Ok(opened) => opened,
            Err(outcome) => return Ok(outcome),
        };
        let local = Arc::new(LocalFile::verify(
            file,
            name,
            Arc::clone(&self.verifier),
            chunked,
            #[cfg(feature = "test-hooks")]
            self.config.after_verify.clone(),
        ));
        if chunked {
            return self.ship_chunked(name, local).await;
        }
        self.retrying(Some(name), || {
            self.upload_confirmed(name, Arc::clone(&local))
        })
        .await
    }

    /// Upload (unless the remote already holds it), made visible only once the local file
    /// verified and only if the bytes sent are the ones that verified, then confirmed: read
    /// back, or, for an object it created on a store that proved the bytes, by its size
    /// (`confirm.rs`). The file changing under us (truncated, rewritten) makes it a file not
    /// shipped; a local read failing is a local I/O error, which ends the pass.
    async fn upload_confirmed(
        &self,
        name: SnapshotName,
        local: Arc<LocalFile>,
    ) -> Result<Outcome, ShipError> {
        let file_name = name.file_name();
        let key = self.remote.key(&self.config.node, &file_name);
        let verified = local.checked().map(|c| match c {
            Checked::Good { hash, .. } => Some(hash),
            Checked::Bad(_) | Checked::Unreadable(_) => None,
        });
        let total = local.len();
        let put = match self.remote.head(&key).await? {
            Some(_) => None,
            None => {
                // Before this shipper's first upload: abort what an earlier one left.
                self.uploads.sweep_once(&self.remote).await?;
                let put = self
                    .remote
                    .put_file(
                        &key,
                        &*local,
                        (self.config.part_size, self.config.parts_in_flight),
                        verified,
                        &|sent| self.emit(ShipEvent::Progress { name, sent, total }),
                        Some(&self.uploads),
                    )
                    .await;
                match put {
                    Ok(put) => Some(put),
                    Err(e) => return unless_changed(e),
                }
            }
        };
        let (header, hash) = match local.checked().await {
            Checked::Good { header, hash, .. } => (header, hash),
            Checked::Bad(reason) => return Ok(Outcome::Unverified(reason)),
            Checked::Unreadable(e) => return Err(local.unreadable(&e)),
        };
        if put == Some(Put::Withheld) {
            // It verified, but what the upload read is not what verified.
            return Ok(Outcome::Unverified(local.changed_after_verified()));
        }
        let differs = |remote_len, first_difference| ShipError::Differs {
            object: key.to_string(),
            remote_len,
            local_len: total,
            first_difference,
        };
        let created = put == Some(Put::Created);
        match self
            .remote
            .confirm_upload(&key, &*local, &hash, created)
            .await
        {
            Ok(None) => {}
            Ok(Some(Difference::Size(remote_len))) => return Err(differs(remote_len, None)),
            Ok(Some(Difference::Byte(at))) => return Err(differs(total, Some(at))),
            Ok(Some(Difference::LocalChanged)) => {
                return Ok(Outcome::Unverified(local.changed_after_verified()))
            }
            Err(e) => return unless_changed(e),
        }
        let shipped_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Outcome::Confirmed {
            entry: IndexEntry {
                name: file_name,
                size: total,
                blake3: to_hex(hash.as_bytes()),
                claims: EntryClaims::of(&header),
                shipped_unix,
            },
            uploaded: put == Some(Put::Created),
        })
    }

    /// Runs `op` until it succeeds, fails terminally, or runs out of attempts; transient
    /// failures wait a capped exponential delay with jitter, each one logged and counted.
    async fn retrying<T, F, Fut>(
        &self,
        name: Option<SnapshotName>,
        mut op: F,
    ) -> Result<T, ShipError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ShipError>>,
    {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let e = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            // A local file that cannot be read ends the pass, as a failed open does: trying
            // the remote again cannot help it.
            if e.class() == ErrorClass::Terminal || matches!(e, ShipError::LocalIo { .. }) {
                return Err(e);
            }
            if self.config.max_attempts.is_some_and(|max| attempt >= max) {
                return Err(ShipError::GaveUp {
                    attempts: attempt,
                    last: Box::new(e),
                });
            }
            let delay = self.backoff(attempt);
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("snapseal_ship_retries_total").increment(1);
            let error = describe(&e);
            warn!(file = ?name.map(|n| n.file_name()), attempt, delay_ms = delay.as_millis() as u64, error = %error, "transient error: retrying");
            if let Some(name) = name {
                self.emit(ShipEvent::Retrying {
                    name,
                    attempt,
                    delay,
                    error,
                });
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Capped exponential backoff with jitter: a uniform draw from the upper half of
    /// `min(max, initial * 2^(attempt-1))`, so retries of many files spread out.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .backoff_initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.config.backoff_max);
        let unit = (self.rng.lock().next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        cap.mul_f64(0.5 + unit / 2.0)
    }

    fn emit(&self, event: ShipEvent) {
        if let Some(sink) = &self.sink {
            sink(&event);
        }
    }
}

/// True when the header of `file` (read again: 160 bytes) says its body is a chunk list.
fn is_chunked(file: &Untrusted) -> bool {
    file.read_range(0, HEADER_LEN.min(file.len() as usize))
        .ok()
        .and_then(|head| Header::decode(&head).ok())
        .is_some_and(|h| h.flags.contains(Flags::CHUNKED))
}

/// A failed read of the local file: the file changed under us (truncated) is a file not
/// shipped, any other failure stays an error.
fn unless_changed(e: ShipError) -> Result<Outcome, ShipError> {
    match &e {
        ShipError::LocalIo { source, .. } => match changed_under_us(source) {
            Some(changed) => Ok(Outcome::Unverified(describe(changed))),
            None => Err(e),
        },
        _ => Err(e),
    }
}

/// Opens one local committed file as hostile input (the outer error is an I/O failure worth
/// retrying; the inner one says the file is not to be shipped): relative to the store's
/// directory through [`Untrusted`] (no link followed, regular files only, at most
/// [`ShipConfig::max_file_bytes`]), its header read with `pread` and checked against its name
/// and its size before anything else is read. A file truncated meanwhile is refused, never a
/// `SIGBUS`.
fn open_local(
    dir: &FsPath,
    name: SnapshotName,
    config: &ShipConfig,
    verifier: &dyn ReceiptVerifier,
) -> Result<Result<Untrusted, Outcome>, ShipError> {
    let file_name = name.file_name();
    let local_io = |step, source| ShipError::LocalIo {
        dir: dir.join(&file_name),
        step,
        source,
    };
    let unverified =
        |e: &(dyn std::error::Error + 'static)| Ok(Err(Outcome::Unverified(describe(e))));
    let handle = RealFs
        .open_dir(dir, false)
        .map_err(|e| local_io("opening its directory", e))?;
    let expect = Expect::new("snapshot file", config.max_file_bytes);
    let file = match Untrusted::open_in(&*handle, &file_name, expect) {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(Err(Outcome::Vanished)),
        Err(UntrustedError::Io { source, .. }) => return Err(local_io("open", source)),
        // A link, a FIFO, a device, a giant: not a snapshot to ship.
        Err(e) => return unverified(&e),
    };
    #[cfg(feature = "test-hooks")]
    if let Some(hook) = &config.after_open {
        (hook.0)(file.path());
    }
    let head = match file.read_range(0, HEADER_LEN.min(file.len() as usize)) {
        Ok(head) => head,
        Err(UntrustedError::Io { source, .. }) => return Err(local_io("read", source)),
        Err(e) => return unverified(&e),
    };
    match Header::decode(&head) {
        Ok(h) if (h.idx, h.evidence_idx) == (name.idx, name.evidence_idx) => {
            if h.file_len().ok() != Some(file.len()) {
                return Ok(Err(Outcome::Unverified(format!(
                    "{file_name}: the header gives {} bytes, the file has {}",
                    h.file_len()
                        .map_or_else(|e| e.to_string(), |n| n.to_string()),
                    file.len()
                ))));
            }
        }
        // The header or the name is wrong: the whole-file check says which, from the head.
        _ => match verify_bytes(&head, Some(&name), verifier) {
            Err(e) => return unverified(&e),
            Ok(_) => {
                return Ok(Err(Outcome::Unverified(format!(
                    "{file_name}: not a snapshot file"
                ))))
            }
        },
    }
    Ok(Ok(file))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use snapseal_persist::receipt::Schemes;
    use snapseal_persist::StoreOptions;

    use super::*;
    use crate::remote::RemoteOptions;

    #[test]
    fn a_local_read_failure_ends_the_attempts_at_once_and_is_not_retried() {
        let (local, remote) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = SnapshotStore::open(
            Arc::new(RealFs::new()),
            local.path(),
            StoreOptions::new(Arc::new(Schemes::new())),
        )
        .unwrap();
        let url = format!("file://{}", remote.path().display());
        let remote = Remote::open(&url, &RemoteOptions::default()).unwrap();
        let mut config = ShipConfig::new("n1");
        config.backoff_initial = Duration::from_millis(1);
        config.max_attempts = Some(3);
        let shipper = Shipper::new(Arc::new(remote), Arc::new(store), config).unwrap();
        let calls = AtomicU32::new(0);
        let result = shipper.remote.block_on(shipper.retrying(None, || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(ShipError::LocalIo {
                dir: local.path().join("snapshot_1_2.committed"),
                step: "read",
                source: std::io::Error::from_raw_os_error(nix::libc::EIO),
            })
        }));
        assert!(
            matches!(result, Err(ShipError::LocalIo { .. })),
            "{result:?}"
        );
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(shipper.stats().retries, 0);
    }
}
