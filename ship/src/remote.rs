//! The remote: an object store opened from a URL, its runtime, the key layout and the plain
//! object calls (uploads: `upload.rs`; the index object: `remote_index.rs`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::confirm::{Confirm, Confirmation, Decide};
use crate::error::ShipError;
use crate::local_store::LocalStore;
use crate::runtime::BlockingRuntime;

/// Bytes per ranged read when reading an object back or restoring it.
pub(crate) const READ_PIECE: u64 = 8 << 20;

/// Ranged reads in flight at a time (memory: `READ_PIECE` times this).
pub(crate) const READ_IN_FLIGHT: usize = 2;

/// The index object's name under the remote prefix.
pub const INDEX_OBJECT: &str = "index.json";

/// How a remote is reached beyond its URL.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RemoteOptions {
    /// Extra store options as `(key, value)`, e.g. `("aws_endpoint", "http://127.0.0.1:9000")`,
    /// `("aws_allow_http", "true")`. For `s3://` the `AWS_*` environment variables are read
    /// first and these override them.
    pub options: Vec<(String, String)>,
    /// Per-request timeout (the store's own; the shipper's backoff runs on top of it).
    pub request_timeout: Duration,
    /// Worker threads of the private runtime the blocking API runs on (at least 1; default 2,
    /// or fewer when fewer CPUs are granted to snapseal:
    /// [`granted_cpus`](snapseal_engine::granted_cpus)). It is built on the first blocking
    /// call, never for the async API, which runs on the caller's runtime.
    pub io_threads: usize,
    /// `file://` only: the largest object the store opens (a larger one is refused after one
    /// `fstat`, before any byte is read).
    pub max_object_bytes: u64,
    /// How an upload is confirmed (default [`Confirm::Auto`]: decided per remote).
    pub confirm: Confirm,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            options: Vec::new(),
            request_timeout: Duration::from_secs(30),
            io_threads: snapseal_engine::granted_cpus().get().min(2),
            max_object_bytes: 1 << 40,
            confirm: Confirm::Auto,
        }
    }
}

/// Chained setters, one per field (the struct is `#[non_exhaustive]`, so it is built from
/// [`RemoteOptions::default`], never by a literal; assigning a field works as well).
///
/// ```
/// use std::time::Duration;
/// use snapseal_ship::{Confirm, RemoteOptions};
///
/// // An S3-compatible server on the local network, over plain HTTP.
/// let options = RemoteOptions::default()
///     .with_option("aws_endpoint", "http://127.0.0.1:9000")
///     .with_option("aws_allow_http", "true")
///     .with_request_timeout(Duration::from_secs(10))
///     .with_io_threads(1)
///     .with_confirm(Confirm::ReadBack);
/// assert_eq!(options.options.len(), 2);
/// assert_eq!(options.options[1], ("aws_allow_http".to_string(), "true".to_string()));
/// assert_eq!((options.io_threads, options.confirm), (1, Confirm::ReadBack));
/// ```
impl RemoteOptions {
    /// Adds one store option `(key, value)` to [`options`](Self::options) (later ones
    /// override earlier ones and the environment).
    pub fn with_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.push((key.into(), value.into()));
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`io_threads`](Self::io_threads).
    pub fn with_io_threads(mut self, threads: usize) -> Self {
        self.io_threads = threads;
        self
    }

    /// Sets [`max_object_bytes`](Self::max_object_bytes) (`file://` only).
    pub fn with_max_object_bytes(mut self, bytes: u64) -> Self {
        self.max_object_bytes = bytes;
        self
    }

    /// Sets [`confirm`](Self::confirm).
    pub fn with_confirm(mut self, confirm: Confirm) -> Self {
        self.confirm = confirm;
        self
    }
}

/// An opened remote: the store and the key prefix under it.
///
/// Its calls run on the caller's tokio runtime (the async API), or, for the blocking API, on
/// a private runtime built on the first blocking call. Dropping a `Remote` never blocks and
/// never panics, whatever thread drops it (a tokio task included).
pub struct Remote {
    /// The blocking API's runtime (see [`Remote::block_on`]).
    rt: BlockingRuntime,
    pub(crate) store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
    /// The directory of a `file://` remote.
    local_root: Option<std::path::PathBuf>,
    /// How uploads are confirmed (`confirm.rs`).
    pub(crate) confirmation: Confirmation,
    /// The store's multipart calls by upload id, where it has them (S3): what lets the
    /// shipper record an upload before its first part and abort it after a crash.
    pub(crate) multipart: Option<Arc<dyn MultipartStore>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field("store", &self.store.to_string())
            .finish()
    }
}

impl Remote {
    /// Opens `url`: `file:///abs/dir` (a local directory, see [`LocalStore`]: nothing outside
    /// it is ever read, written or deleted; created by the first write if missing, never by a
    /// read; files are fsynced before they become visible) or `s3://bucket[/prefix]`
    /// (credentials, region and endpoint from the `AWS_*` environment and `opts`).
    ///
    /// ```
    /// use snapseal_ship::{Remote, RemoteOptions, ShipError};
    ///
    /// # fn main() -> Result<(), ShipError> {
    /// let backups = tempfile::tempdir().expect("a temporary directory");
    /// let url = format!("file://{}", backups.path().display());
    /// let remote = Remote::open(&url, &RemoteOptions::default())?;
    /// assert_eq!(remote.local_root(), Some(backups.path()));
    /// // Opening creates nothing (the first write does), so a typo costs no directory.
    /// let missing = backups.path().join("not-yet");
    /// Remote::open(&format!("file://{}", missing.display()), &RemoteOptions::default())?;
    /// assert!(!missing.exists());
    ///
    /// // A URL it cannot serve is a configuration error, before any I/O.
    /// let err = Remote::open("ftp://example.invalid/backups", &RemoteOptions::default());
    /// assert!(matches!(err, Err(ShipError::Config { .. })));
    /// # Ok(()) }
    /// ```
    pub fn open(url: &str, opts: &RemoteOptions) -> Result<Remote, ShipError> {
        let config = |reason: String| ShipError::Config {
            url: url.to_string(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| config(e.to_string()))?;
        let how;
        let multipart: Option<Arc<dyn MultipartStore>>;
        let (store, prefix, local_root): (Arc<dyn ObjectStore>, Path, _) = match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| config("not an absolute local path".into()))?;
                how = Decide::Own;
                multipart = None;
                (
                    Arc::new(LocalStore::new(dir.clone(), opts.max_object_bytes)),
                    Path::default(),
                    Some(dir),
                )
            }
            #[cfg(feature = "s3")]
            "s3" | "s3a" => {
                let s3 = crate::s3::open(url, &parsed, opts).map_err(config)?;
                how = Decide::probe(&s3);
                multipart = Some(Arc::clone(&s3.store) as Arc<dyn MultipartStore>);
                (s3.store as Arc<dyn ObjectStore>, s3.prefix, None)
            }
            #[cfg(not(feature = "s3"))]
            "s3" | "s3a" => {
                return Err(config(
                    "s3:// needs snapseal-ship's `s3` feature (this build has no S3 client)".into(),
                ))
            }
            other => {
                return Err(config(format!(
                    "scheme {other}: is not supported (file:// or s3://)"
                )))
            }
        };
        let mut remote = Remote::with_store(url, store, prefix, opts)?;
        remote.local_root = local_root;
        remote.confirmation = Confirmation::new(opts.confirm, how);
        remote.multipart = multipart;
        Ok(remote)
    }

    /// A remote over a store built elsewhere (a wrapper adding limits or faults, a store
    /// configured beyond what a URL says), its keys under `prefix`; `url` names it in
    /// messages. Its [`local_root`](Self::local_root) is `None`: remote gc sweeps staging
    /// files only for a remote [`open`](Self::open)ed from a `file://` URL.
    pub fn with_store(
        url: &str,
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        opts: &RemoteOptions,
    ) -> Result<Remote, ShipError> {
        Ok(Remote {
            rt: BlockingRuntime::new(opts.io_threads),
            store,
            prefix,
            url: url.to_string(),
            local_root: None,
            confirmation: Confirmation::new(opts.confirm, Decide::Unknown),
            multipart: None,
        })
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The directory behind a `file://` remote (`None` for any other).
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// The underlying store (for benchmarks comparing against raw calls).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Runs `f` on the private runtime, blocking the calling thread: how every blocking fn of
    /// the crate runs its async twin. Never panics on any thread: from inside a tokio runtime
    /// `f` runs on a helper thread (see [`BlockingRuntime::run`]). The error when the runtime
    /// or that thread cannot be started is [`ShipError::Runtime`].
    pub(crate) fn block_on<T, F>(&self, f: F) -> Result<T, ShipError>
    where
        F: Future<Output = Result<T, ShipError>> + Send,
        T: Send,
    {
        self.rt.run(f).map_err(ShipError::Runtime)?
    }

    /// The key of `file_name` shipped by `node`.
    pub fn key(&self, node: &str, file_name: &str) -> Path {
        self.prefix.clone().join(node).join(file_name)
    }

    /// The index object's key.
    pub fn index_key(&self) -> Path {
        self.prefix.clone().join(INDEX_OBJECT)
    }

    /// The key prefix of `node`'s objects.
    pub fn node_prefix(&self, node: &str) -> Path {
        self.prefix.clone().join(node)
    }

    /// The object's metadata, `None` when it does not exist.
    pub(crate) async fn head(&self, key: &Path) -> Result<Option<ObjectMeta>, ShipError> {
        match self.store.head(key).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(ShipError::remote("head", key.as_ref(), e)),
        }
    }

    /// The object's bytes in order, as pieces of `piece` bytes read with ranged gets, at most
    /// `in_flight` at a time (memory: `piece * in_flight`). `size` is what a `head` reported;
    /// an object that changes underneath shows up as a failed range or as bytes that do not
    /// verify.
    pub(crate) fn pieces<'a>(
        &'a self,
        key: &'a Path,
        size: u64,
        piece: u64,
        in_flight: usize,
    ) -> impl futures::Stream<Item = Result<Bytes, ShipError>> + 'a {
        let piece = piece.max(1);
        let ranges = (0..size.div_ceil(piece)).map(move |i| i * piece..((i + 1) * piece).min(size));
        futures::stream::iter(ranges)
            .map(move |range| async move {
                self.store
                    .get_range(key, range)
                    .await
                    .map_err(|e| ShipError::remote("get", key.as_ref(), e))
            })
            .buffered(in_flight.max(1))
    }

    /// Exactly the bytes `range` of the object at `key` (one ranged read): fewer, or more,
    /// is an error.
    pub(crate) async fn read_range(
        &self,
        key: &Path,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, ShipError> {
        let want = range.end - range.start;
        let bytes = self
            .store
            .get_range(key, range.clone())
            .await
            .map_err(|e| ShipError::remote("get", key.as_ref(), e))?;
        if bytes.len() as u64 != want {
            return Err(ShipError::Refused {
                object: key.to_string(),
                reason: format!(
                    "a read of bytes {}..{} returned {} bytes",
                    range.start,
                    range.end,
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }

    /// Deletes one object (absent is fine).
    pub(crate) async fn delete(&self, key: &Path) -> Result<(), ShipError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ShipError::remote("delete", key.as_ref(), e)),
        }
    }
}
