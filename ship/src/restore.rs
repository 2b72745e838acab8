//! Restore: the newest remote snapshot that verifies, brought into a local store through the
//! store's ingest (pending file, fsync, close, full verification, non-replacing rename).
//!
//! Before a candidate's body is fetched, its size is checked against the index and the limit,
//! its header (the first ranged read) against its name and the index's claims, and its receipt
//! (a second ranged read) against the trusted keys: a forged or hostile object, however large
//! it claims to be, costs two small reads.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path;
use snapseal_persist::internals::format::{Header, HEADER_LEN};
use snapseal_persist::internals::Escaped;
use snapseal_persist::receipt::{Expected, ReceiptVerifier};
use snapseal_persist::{to_hex, Ingested, SnapshotName, SnapshotStore};
use tracing::{info, warn};

use crate::error::{describe, ErrorClass, ShipError};
use crate::index::{EntryClaims, IndexEntry};
use crate::layout::order;
use crate::local_error::LocalError;
use crate::remote::{Remote, READ_IN_FLIGHT, READ_PIECE};
use crate::restore_chunks::fetch_chunks;
use crate::view::read_views;
use snapseal_persist::internals::chunks::ChunkImportError;
use snapseal_persist::Flags;

/// The largest receipt checked before a body is fetched; a header claiming a larger one is
/// refused (the built-in scheme's receipts are at most 16 KiB).
pub const MAX_RECEIPT_BYTES: u64 = 1 << 20;

/// Hears a restore's progress: the candidate, bytes fetched so far, its size.
pub type RestoreProgress = Arc<dyn Fn(&SnapshotName, u64, u64) + Send + Sync>;

/// How a restore chooses and fetches.
#[derive(Clone)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Only this node's snapshots; `None`: any node's (all are checked against the same
    /// trusted keys).
    pub node: Option<String>,
    /// The largest file accepted (the header gives the size; a larger one is refused after
    /// its first 160 bytes).
    pub max_file_bytes: u64,
    /// Attempts per candidate on transient errors before falling back to an older one.
    pub attempts: u32,
    /// Called after each piece fetched (every 8 MiB), for a progress bar.
    pub progress: Option<RestoreProgress>,
    /// More remotes to take a chunked snapshot's chunks from (the same node's chunk objects
    /// there), tried in turn after the remote the snapshot is on, each chunk checked against
    /// its hash: a joining node pulling from several places.
    pub chunk_sources: Vec<Arc<Remote>>,
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("node", &self.node)
            .field("max_file_bytes", &self.max_file_bytes)
            .field("attempts", &self.attempts)
            .field("progress", &self.progress.is_some())
            .field("chunk_sources", &self.chunk_sources.len())
            .finish()
    }
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            node: None,
            max_file_bytes: 64 << 30,
            attempts: 3,
            progress: None,
            chunk_sources: Vec::new(),
        }
    }
}

/// Chained setters, one per field (the struct is `#[non_exhaustive]`, so it is built from
/// [`RestoreOptions::default`], never by a literal; assigning a field works as well).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use snapseal_ship::RestoreOptions;
///
/// // Only node-1's snapshots, up to 1 GiB, five tries each, with a byte counter.
/// let fetched = Arc::new(AtomicU64::new(0));
/// let counter = Arc::clone(&fetched);
/// let options = RestoreOptions::default()
///     .with_node("node-1")
///     .with_max_file_bytes(1 << 30)
///     .with_attempts(5)
///     .with_progress(move |_name, done, _size| counter.store(done, Ordering::Relaxed));
/// assert_eq!(options.node.as_deref(), Some("node-1"));
/// assert_eq!((options.max_file_bytes, options.attempts), (1 << 30, 5));
/// assert!(options.progress.is_some());
/// ```
impl RestoreOptions {
    /// Sets [`node`](Self::node): only this node's snapshots.
    pub fn with_node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Sets [`max_file_bytes`](Self::max_file_bytes).
    pub fn with_max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes;
        self
    }

    /// Sets [`attempts`](Self::attempts) per candidate.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// Adds a remote to [`chunk_sources`](Self::chunk_sources).
    pub fn with_chunk_source(mut self, remote: Arc<Remote>) -> Self {
        self.chunk_sources.push(remote);
        self
    }

    /// Sets [`progress`](Self::progress): called with the candidate, the bytes fetched so far
    /// and its size.
    pub fn with_progress(
        mut self,
        progress: impl Fn(&SnapshotName, u64, u64) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }
}

/// What a restore brought in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restored {
    /// The snapshot now committed locally.
    pub name: SnapshotName,
    /// The node that shipped it.
    pub node: String,
    /// False when the store already had it (nothing was written).
    pub written: bool,
    /// Newer candidates passed over, with the reason (`node/file: reason`).
    pub passed_over: Vec<String>,
    /// Whether any candidate came from a listing rather than from its node's index (the index
    /// was missing, unusable, stale or disagreeing with the listing, or the object is older
    /// than the index keeps): such a candidate's header and receipt were verified before its
    /// body was fetched.
    pub listed: bool,
    /// Newer candidates this machine could not store, with the reason (`node/file: reason`):
    /// a local I/O error (write, fsync, close, rename), a full or failed store, or a file
    /// that does not verify holding the committed name. Not empty means that what was
    /// restored is older than what the remote offers: a caller reports that as a failure.
    pub failed_locally: Vec<String>,
}

/// One remote snapshot to try.
struct Candidate {
    node: String,
    name: SnapshotName,
    /// What the index says the object is, when it came from the index.
    entry: Option<IndexEntry>,
}

/// Brings the newest remote snapshot that verifies into `store`, blocking:
/// [`restore_async`] run to completion on the remote's private runtime (built on the first
/// blocking call).
///
/// Blocks the calling thread. From a tokio task it does not panic (the restore runs on the
/// private runtime from a helper thread) but it holds the task's worker thread meanwhile:
/// there, `.await` [`restore_async`] instead.
pub fn restore(
    remote: &Remote,
    store: &SnapshotStore,
    opts: &RestoreOptions,
) -> Result<Restored, ShipError> {
    remote.block_on(restore_async(remote, store, opts))
}

/// Brings the newest remote snapshot that verifies into `store`, on the caller's tokio
/// runtime (its blocking twin is [`restore`]).
///
/// Candidates come from a listing of the remote, each node's index vouching for the objects
/// it names with the listed size (newest first). Each candidate is streamed into the store's
/// ingest: its header must carry the indices its object name gives (and, from the index, the
/// claims the index recorded), the bytes must have the size and BLAKE3 the index recorded,
/// and the store verifies the whole file against its trusted keys before it gets a committed
/// name. A candidate that fails any of that is passed over for the next older one; a
/// terminal remote error (authentication, missing bucket) ends the restore. A candidate this
/// machine fails to store (see [`Restored::failed_locally`]) is reported and the next older
/// one tried. A store that already has newer snapshots keeps them: an older one brought in
/// does not change what `latest` returns.
///
/// Runs on the polling task: the remote calls, the BLAKE3 of each 8 MiB piece, and the
/// store's writes of it (page-cache writes). The store's final step — fsync, the whole
/// file's verification, the rename — is the long one: on a multi-thread runtime it runs in
/// `block_in_place` (the worker hands its other tasks on first); on a current-thread runtime
/// it holds that thread. The future is `Send`. Needs a runtime with I/O and time enabled.
///
/// ```
/// use std::sync::Arc;
/// use snapseal_persist::fs::RealFs;
/// use snapseal_persist::receipt::Ed25519Verifier;
/// use snapseal_persist::{SigningKey, SnapshotStore, StoreOptions};
/// use snapseal_ship::{restore_async, Remote, RemoteOptions, RestoreOptions, ShipConfig, Shipper};
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
/// let (node_dir, backups, fresh_dir) = (tempfile::tempdir()?, tempfile::tempdir()?, tempfile::tempdir()?);
/// let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), node_dir.path(), trusting(&key))?);
/// commit(&store, &key, 10, b"state at 10")?;
/// commit(&store, &key, 20, b"state at 20")?;
/// let url = format!("file://{}", backups.path().display());
/// let remote = Arc::new(Remote::open(&url, &RemoteOptions::default())?);
/// Shipper::new(Arc::clone(&remote), store, ShipConfig::new("node-1"))?.ship_pending()?;
///
/// // A node joining on a multi-thread runtime restores the newest snapshot into its empty store.
/// let fresh = SnapshotStore::open(Arc::new(RealFs), fresh_dir.path(), trusting(&key))?;
/// let rt = tokio::runtime::Runtime::new()?;
/// let restored = rt.block_on(restore_async(&remote, &fresh, &RestoreOptions::default()))?;
/// assert_eq!((restored.name.idx, restored.node.as_str()), (20, "node-1"));
/// assert!(restored.written && restored.passed_over.is_empty());
/// assert_eq!(fresh.latest()?.map(|s| *s.name()), Some(restored.name));
/// # Ok(()) }
/// ```
pub async fn restore_async(
    remote: &Remote,
    store: &SnapshotStore,
    opts: &RestoreOptions,
) -> Result<Restored, ShipError> {
    let (candidates, listed) = candidates(remote, opts).await?;
    let verifier = Arc::clone(&store.options().verifier);
    let mut passed_over = Vec::new();
    let mut failed_locally = Vec::new();
    for c in candidates {
        let key = remote.key(&c.node, &c.name.file_name());
        let shown = Escaped::str(key.as_ref());
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            match fetch_one(remote, store, &*verifier, &key, &c, opts).await {
                Err(e) if e.class() == ErrorClass::Transient && attempt < opts.attempts.max(1) => {
                    let delay = Duration::from_millis(200 << attempt.min(6));
                    warn!(object = %shown, attempt, error = %describe(&e), "restore: transient error, retrying");
                    tokio::time::sleep(delay).await;
                }
                other => break other,
            }
        };
        match result {
            Ok(written) => {
                info!(object = %shown, written, "restored");
                return Ok(Restored {
                    name: c.name,
                    node: c.node,
                    written,
                    passed_over,
                    listed,
                    failed_locally,
                });
            }
            Err(e)
                if e.class() == ErrorClass::Terminal && matches!(e, ShipError::Remote { .. }) =>
            {
                return Err(e)
            }
            Err(e) => {
                let reason = describe(&e);
                let entry = format!("{}/{}: {reason}", c.node, c.name.file_name());
                if e.is_local() {
                    warn!(object = %shown, reason = %reason, "restore: could not store it here; trying an older one");
                    failed_locally.push(entry);
                } else {
                    warn!(object = %shown, reason = %reason, "restore: passing over");
                    passed_over.push(entry);
                }
            }
        }
    }
    Err(ShipError::NothingRestored {
        url: remote.url().to_string(),
        passed_over,
        failed_locally,
    })
}

/// Runs `f`, a long blocking step of an async restore, where it holds up the fewest tasks: in
/// `block_in_place` on a multi-thread runtime. On a current-thread runtime (where
/// `block_in_place` panics) it runs inline: handing it to `spawn_blocking` would need the
/// store by `Arc`, and the caller's task waits for it either way.
pub(crate) fn off_the_workers<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The candidates, newest first, and whether any came from a listing rather than from its
/// node's index (see [`crate::view`]: an index missing, torn, stale or disagreeing with the
/// listing is not trusted for what it gets wrong).
async fn candidates(
    remote: &Remote,
    opts: &RestoreOptions,
) -> Result<(Vec<Candidate>, bool), ShipError> {
    let views = read_views(remote, opts.node.as_deref()).await?;
    let mut list: Vec<Candidate> = views
        .nodes
        .into_iter()
        .flat_map(|view| {
            let node = view.node;
            view.offered.into_iter().map(move |o| Candidate {
                node: node.clone(),
                name: o.name,
                entry: o.entry,
            })
        })
        .collect();
    list.sort_by_key(|c| std::cmp::Reverse(order(&c.name)));
    let listed = list.iter().any(|c| c.entry.is_none());
    Ok((list, listed))
}

/// A remote error about this one object (on a `file://` remote: a link, FIFO, device,
/// directory or giant where the object should be) refuses the candidate; any other is about
/// the remote as a whole and keeps its class.
pub(crate) fn about_object(e: ShipError) -> ShipError {
    if let ShipError::Remote { object, source, .. } = &e {
        if let Some(local) = LocalError::of(source).filter(|l| !matches!(l, LocalError::Io { .. }))
        {
            return ShipError::Refused {
                object: object.clone(),
                reason: local.to_string(),
            };
        }
    }
    e
}

/// Streams one object into the store. `Ok(false)`: the store already had it (a file that
/// verifies holds its name).
async fn fetch_one(
    remote: &Remote,
    store: &SnapshotStore,
    verifier: &dyn ReceiptVerifier,
    key: &Path,
    c: &Candidate,
    opts: &RestoreOptions,
) -> Result<bool, ShipError> {
    let limit = opts.max_file_bytes;
    let refuse = |reason: String| ShipError::Refused {
        object: key.to_string(),
        reason,
    };
    let Some(meta) = remote.head(key).await.map_err(about_object)? else {
        return Err(refuse("gone (listed or indexed, but not there)".into()));
    };
    if meta.size > limit {
        return Err(refuse(format!(
            "{} bytes, more than the limit {limit}",
            meta.size
        )));
    }
    if let Some(e) = c.entry.as_ref().filter(|e| e.size != meta.size) {
        return Err(refuse(format!(
            "{} bytes, the index says {}",
            meta.size, e.size
        )));
    }
    if meta.size < HEADER_LEN as u64 {
        return Err(refuse(format!(
            "{} bytes: shorter than a header",
            meta.size
        )));
    }
    // The first ranged read is the header: name, claims and size checked before anything else.
    let head = remote
        .read_range(key, 0..HEADER_LEN as u64)
        .await
        .map_err(about_object)?;
    let header = check_label(&head, c).map_err(refuse)?;
    if header.file_len().ok() != Some(meta.size) {
        return Err(refuse(format!(
            "the header gives {} bytes, the object has {}",
            header
                .file_len()
                .map_or_else(|e| e.to_string(), |n| n.to_string()),
            meta.size
        )));
    }
    // The second is the receipt, checked against the trusted keys before the body is fetched.
    if !(1..=MAX_RECEIPT_BYTES).contains(&header.receipt_len) {
        return Err(refuse(format!(
            "a {} byte receipt (this reader accepts 1 to {MAX_RECEIPT_BYTES})",
            header.receipt_len
        )));
    }
    let receipt = remote
        .read_range(key, meta.size - header.receipt_len..meta.size)
        .await
        .map_err(about_object)?;
    check_receipt(&header, &receipt, verifier).map_err(refuse)?;

    let import = if header.flags.contains(Flags::CHUNKED) {
        let fetched = fetch_chunks(remote, &opts.chunk_sources, &c.node, key, &header, store);
        Some(fetched.await?)
    } else {
        None
    };

    let mut stream = std::pin::pin!(remote.pieces(key, meta.size, READ_PIECE, READ_IN_FLIGHT));
    let mut file = store.begin_ingest(limit);
    let mut hasher = blake3::Hasher::new();
    let mut len = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(about_object)?;
        if len < HEADER_LEN as u64 && !chunk.starts_with(&head[len as usize..]) {
            return Err(refuse("its header changed while it was read".into()));
        }
        len += chunk.len() as u64;
        crate::upload::hash_piece(&mut hasher, &chunk);
        if file.write_all(&chunk).is_err() {
            // The file recorded why; finishing reports it.
            break;
        }
        if let Some(progress) = &opts.progress {
            progress(&c.name, len, meta.size);
        }
    }
    if let Some(e) = &c.entry {
        let hash = to_hex(hasher.finalize().as_bytes());
        if len != e.size || hash != e.blake3 {
            return Err(refuse(format!(
                "{len} bytes with BLAKE3 {hash}, the index says {} bytes with BLAKE3 {}",
                e.size, e.blake3
            )));
        }
    }
    let ingest = |source| ShipError::Ingest {
        object: key.to_string(),
        source,
    };
    let finished = match import {
        None => off_the_workers(|| store.finish_ingest(file)).map_err(ingest),
        Some(import) => {
            off_the_workers(|| import.finish_ingest(store, file)).map_err(|e| match e {
                ChunkImportError::Ingest(source) => ingest(source),
                ChunkImportError::Chunks(source) => ShipError::LocalChunk {
                    dir: store.dir().to_path_buf(),
                    source,
                },
                other => ShipError::LocalIo {
                    dir: store.dir().to_path_buf(),
                    step: "committing imported chunks",
                    source: std::io::Error::other(other),
                },
            })
        }
    };
    match finished {
        Ok(Ingested::Committed(committed)) if committed.name == c.name => Ok(true),
        Ok(Ingested::AlreadyPresent(name)) if name == c.name => Ok(false),
        Ok(other) => Err(refuse(format!(
            "the store committed {} for an object named {}",
            other.name(),
            c.name
        ))),
        Err(e) => Err(e),
    }
}

/// The header must name what the object's key names, and claim what the index recorded:
/// a genuine snapshot under another snapshot's name (relabelled) is refused here.
fn check_label(head: &[u8], c: &Candidate) -> Result<Header, String> {
    let header = check_name(head, &c.name)?;
    if let Some(e) = &c.entry {
        if EntryClaims::of(&header) != e.claims {
            return Err("the header's claims differ from the index's".into());
        }
    }
    Ok(header)
}

/// The header (the first 160 bytes of an object) decodes and names `name`'s indices.
pub(crate) fn check_name(head: &[u8], name: &SnapshotName) -> Result<Header, String> {
    let header = Header::decode(head).map_err(|e| format!("header: {e}"))?;
    if (header.idx, header.evidence_idx) != (name.idx, name.evidence_idx) {
        return Err(format!(
            "relabelled: the header is snapshot {}/{}, the object is named {}",
            header.idx, header.evidence_idx, name
        ));
    }
    Ok(header)
}

/// The receipt must be the one the header's digest names and prove the header's claims under
/// a trusted key: the check the store makes at the end, made first, so that a forged object
/// is refused before its body is fetched.
pub(crate) fn check_receipt(
    header: &Header,
    receipt: &[u8],
    verifier: &dyn ReceiptVerifier,
) -> Result<(), String> {
    if blake3::hash(receipt).as_bytes() != &header.receipt_digest {
        return Err("the receipt does not match the header's receipt digest".into());
    }
    let expected = Expected {
        idx: header.idx,
        evidence_idx: header.evidence_idx,
        body_digest: header.body_digest,
        claims_digest: header.claims().digest(),
    };
    verifier
        .verify(receipt, &expected)
        .map(drop)
        .map_err(|e| format!("receipt: {}", describe(&e)))
}
