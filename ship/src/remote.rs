//! The remote: an object store opened from a URL, the key layout, uploads that become visible
//! only complete, read-back confirmation and the index object.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, UpdateVersion, WriteMultipart,
};
use snapseal_persist::internals::format::PARALLEL_HASH_THRESHOLD;
use tracing::debug;

use crate::error::ShipError;
use crate::index::{Index, INDEX_FORMAT, INDEX_MAX_BYTES};
use crate::local_error::LocalError;
use crate::local_store::LocalStore;

/// Bytes per ranged read when reading an object back or restoring it.
pub(crate) const READ_PIECE: u64 = 8 << 20;

/// Ranged reads in flight at a time (memory: `READ_PIECE` times this).
pub(crate) const READ_IN_FLIGHT: usize = 2;

/// What an upload did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Put {
    /// The object was created.
    Created,
    /// A conditional create found it already there.
    Existed,
    /// Not made visible: the file was not ready (it did not verify).
    Withheld,
}

/// How a remote object differs from the local file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Difference {
    /// It has this many bytes.
    Size(u64),
    /// Its first differing byte is at this offset.
    Byte(u64),
    /// It is the local file as it is now, which is not what verified: the file was rewritten
    /// after its verification.
    LocalChanged,
}

/// The bytes of a local file an upload or a read-back reads, one range at a time (never the
/// whole file at once): the shipper's committed file, read with `pread` on a blocking thread.
pub(crate) trait Source: Sync {
    /// Its size.
    fn len(&self) -> u64;

    /// Exactly the bytes `offset..offset + len`.
    fn read(&self, offset: u64, len: usize) -> BoxFuture<'_, Result<Bytes, ShipError>>;
}

/// Adds `bytes` (a piece of a few MiB) to `hasher`, on every core when it is large enough for
/// that to pay off. The upload and the read-back call it from their futures, which run on the
/// thread that called [`Remote::block_on`], not on a runtime worker: hashing there holds up
/// only the other futures of the same pass, not the parts in flight.
pub(crate) fn hash_piece(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    if bytes.len() >= PARALLEL_HASH_THRESHOLD {
        hasher.update_rayon(bytes);
    } else {
        hasher.update(bytes);
    }
}

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
    /// Worker threads of the I/O runtime (at least 1).
    pub io_threads: usize,
    /// `file://` only: the largest object the store opens (a larger one is refused after one
    /// `fstat`, before any byte is read).
    pub max_object_bytes: u64,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            options: Vec::new(),
            request_timeout: Duration::from_secs(30),
            io_threads: 2,
            max_object_bytes: 1 << 40,
        }
    }
}

/// An opened remote: the store, the key prefix under it, and the runtime its calls run on.
pub struct Remote {
    rt: Arc<tokio::runtime::Runtime>,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
    /// Cleared once the store answers a conditional update with "not implemented".
    conditional_update: AtomicBool,
    /// The directory of a `file://` remote.
    local_root: Option<std::path::PathBuf>,
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
    pub fn open(url: &str, opts: &RemoteOptions) -> Result<Remote, ShipError> {
        let config = |reason: String| ShipError::Config {
            url: url.to_string(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| config(e.to_string()))?;
        let mut local_root = None;
        let (store, prefix): (Arc<dyn ObjectStore>, Path) = match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| config("not an absolute local path".into()))?;
                local_root = Some(dir.clone());
                (
                    Arc::new(LocalStore::new(dir, opts.max_object_bytes)),
                    Path::default(),
                )
            }
            "s3" | "s3a" => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_url(url)
                    .with_client_options(
                        ClientOptions::new()
                            .with_timeout(opts.request_timeout)
                            .with_connect_timeout(Duration::from_secs(5)),
                    )
                    // Short inner retries: the shipper's own backoff is the visible one.
                    .with_retry(RetryConfig {
                        backoff: BackoffConfig::default(),
                        max_retries: 2,
                        retry_timeout: Duration::from_secs(20),
                    });
                // A client option, which `from_env` does not read: an http:// endpoint (a
                // local test server) is refused without it.
                if std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true") {
                    builder = builder.with_allow_http(true);
                }
                for (k, v) in &opts.options {
                    let key = k
                        .parse()
                        .map_err(|e: object_store::Error| config(e.to_string()))?;
                    builder = builder.with_config(key, v);
                }
                let store = builder.build().map_err(|e| config(e.to_string()))?;
                let prefix = Path::from(parsed.path().trim_matches('/'));
                (Arc::new(store), prefix)
            }
            other => {
                return Err(config(format!(
                    "scheme {other}: is not supported (file:// or s3://)"
                )))
            }
        };
        let mut remote = Remote::with_store(url, store, prefix, opts)?;
        remote.local_root = local_root;
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
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.io_threads.max(1))
            .thread_name("snapseal-ship-io")
            .enable_all()
            .build()
            .map_err(ShipError::Runtime)?;
        Ok(Remote {
            rt: Arc::new(rt),
            store,
            prefix,
            url: url.to_string(),
            conditional_update: AtomicBool::new(true),
            local_root: None,
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

    /// Runs `f` on the remote's runtime, blocking the caller.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
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

    /// Uploads the bytes of `local` to `key` so that the object is visible only complete, and
    /// only if `ready` resolves to the BLAKE3 of exactly the bytes sent (`None`: the file did
    /// not verify). Up to `part_size`: once `ready` resolved, the file is read, hashed and sent
    /// in one conditional create (`PutMode::Create`). Above it: a multipart upload of
    /// `part_size` parts, each read only when there is room for it (at most `parts_in_flight`
    /// parts in memory), sent while `ready` is pending, completed only after it matched, and
    /// aborted if it does not or anything fails (a failed local read included, returned as
    /// is); `progress` hears the bytes handed over after each part.
    ///
    /// The hash of what was sent is what makes the file's verification apply to the object:
    /// the file is read again here, not kept from its verification, and a file rewritten in
    /// place meanwhile is [`Put::Withheld`], never made visible.
    pub(crate) async fn put_file(
        &self,
        key: &Path,
        local: &dyn Source,
        part_size: usize,
        parts_in_flight: usize,
        ready: impl Future<Output = Option<blake3::Hash>>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Put, ShipError> {
        let part_size = part_size.max(5 << 20);
        let len = local.len();
        let mut sent = blake3::Hasher::new();
        if len <= part_size as u64 {
            let Some(verified) = ready.await else {
                return Ok(Put::Withheld);
            };
            // At most part_size: fits in usize.
            let bytes = local.read(0, len as usize).await?;
            hash_piece(&mut sent, &bytes);
            if sent.finalize() != verified {
                return Ok(Put::Withheld);
            }
            let opts = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            return match self
                .store
                .put_opts(key, PutPayload::from_bytes(bytes), opts)
                .await
            {
                Ok(_) => Ok(Put::Created),
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => Ok(Put::Existed),
                Err(e) => Err(ShipError::remote("put", key.as_ref(), e)),
            };
        }
        let upload = self
            .store
            .put_multipart_opts(key, PutMultipartOptions::default())
            .await
            .map_err(|e| ShipError::remote("multipart start", key.as_ref(), e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        let mut at = 0u64;
        while at < len {
            // At most part_size: fits in usize.
            let n = (len - at).min(part_size as u64) as usize;
            // Room first, then the read: the part read is the only one not yet in flight.
            if let Err(e) = writer.wait_for_capacity(parts_in_flight.max(1)).await {
                abort(writer, key).await;
                return Err(ShipError::remote("multipart part", key.as_ref(), e));
            }
            let part = match local.read(at, n).await {
                Ok(part) => part,
                Err(e) => {
                    abort(writer, key).await;
                    return Err(e);
                }
            };
            hash_piece(&mut sent, &part);
            // A whole part: handed over as it is, no copy.
            writer.put(part);
            at += n as u64;
            progress(at);
        }
        if ready.await != Some(sent.finalize()) {
            abort(writer, key).await;
            return Ok(Put::Withheld);
        }
        match writer.finish().await {
            Ok(_) => Ok(Put::Created),
            Err(e) => Err(ShipError::remote("multipart complete", key.as_ref(), e)),
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

    /// Confirms that the object holds exactly the bytes whose BLAKE3 is `verified` (the local
    /// file's, as it verified): its size (`head`), then its BLAKE3, read back in ranged pieces
    /// (memory: `READ_PIECE * READ_IN_FLIGHT`). Only when the hash differs is it read again and
    /// compared piece by piece with `local` as it is now, to say where (one local piece more).
    ///
    /// Hashing what the remote returns, rather than comparing it with the file, is what
    /// confirms the object against the bytes that verified: the file is read again, not held.
    pub(crate) async fn differs_from(
        &self,
        key: &Path,
        local: &dyn Source,
        verified: &blake3::Hash,
    ) -> Result<Option<Difference>, ShipError> {
        let Some(meta) = self.head(key).await? else {
            return Err(ShipError::remote(
                "head",
                key.as_ref(),
                object_store::Error::NotFound {
                    path: key.to_string(),
                    source: "gone right after the upload".into(),
                },
            ));
        };
        if meta.size != local.len() {
            return Ok(Some(Difference::Size(meta.size)));
        }
        let mut hasher = blake3::Hasher::new();
        let mut at = 0u64;
        let mut pieces = std::pin::pin!(self.pieces(key, meta.size, READ_PIECE, READ_IN_FLIGHT));
        while let Some(piece) = pieces.next().await {
            let piece = piece?;
            hash_piece(&mut hasher, &piece);
            at += piece.len() as u64;
        }
        if at != meta.size {
            return Ok(Some(Difference::Size(at)));
        }
        if hasher.finalize() == *verified {
            return Ok(None);
        }
        self.first_difference(key, meta.size, local).await.map(Some)
    }

    /// Where the object first differs from `local` (both `size` bytes), read again in ranged
    /// pieces, each compared with the same range of `local`; [`Difference::LocalChanged`]
    /// when no byte does.
    async fn first_difference(
        &self,
        key: &Path,
        size: u64,
        local: &dyn Source,
    ) -> Result<Difference, ShipError> {
        let mut pieces = std::pin::pin!(self.pieces(key, size, READ_PIECE, READ_IN_FLIGHT));
        let mut at = 0u64;
        while let Some(piece) = pieces.next().await {
            let piece = piece?;
            if at + piece.len() as u64 > size {
                return Ok(Difference::Size(at + piece.len() as u64));
            }
            let want = local.read(at, piece.len()).await?;
            // Slice equality is a memcmp; the offset is looked for only when they differ.
            if want != piece {
                let i = want
                    .iter()
                    .zip(piece.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                return Ok(Difference::Byte(at + i as u64));
            }
            at += piece.len() as u64;
        }
        Ok(if at == size {
            Difference::LocalChanged
        } else {
            Difference::Size(at)
        })
    }

    /// Reads the index and its version; an absent index is an empty one.
    ///
    /// The index is hostile input: anything but a regular file of at most
    /// [`INDEX_MAX_BYTES`] (a link, a FIFO, a directory, a giant) is an unusable index
    /// ([`ShipError::Index`]) before a byte of it is read, and no more than that many bytes
    /// are ever read, whatever the store claims, before it is parsed.
    pub(crate) async fn read_index(&self) -> Result<(Index, Option<UpdateVersion>), ShipError> {
        let key = self.index_key();
        let unusable = |reason: String| ShipError::Index {
            object: key.to_string(),
            reason,
        };
        let got = match self.store.get(&key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Ok((
                    Index {
                        format: INDEX_FORMAT,
                        ..Index::default()
                    },
                    None,
                ))
            }
            Err(e) => {
                return Err(match LocalError::of(&e) {
                    Some(refused @ LocalError::Refused(_)) if refused.is_terminal() => {
                        unusable(refused.to_string())
                    }
                    _ => ShipError::remote("get", key.as_ref(), e),
                })
            }
        };
        if got.meta.size > INDEX_MAX_BYTES {
            return Err(unusable(format!(
                "{} bytes, more than the limit of {INDEX_MAX_BYTES}",
                got.meta.size
            )));
        }
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        let mut bytes = Vec::new();
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ShipError::remote("get", key.as_ref(), e))?;
            if (bytes.len() + chunk.len()) as u64 > INDEX_MAX_BYTES {
                return Err(unusable(format!(
                    "more than the limit of {INDEX_MAX_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let index = Index::decode(&bytes).map_err(unusable)?;
        Ok((index, Some(version)))
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

    /// Reads the index, applies `change` and writes it back. Where the store supports it the
    /// write is conditional on the version read (a concurrent writer makes it start over);
    /// elsewhere it overwrites (one writer per remote at a time, see docs/SHIPPING.md).
    pub(crate) async fn update_index(
        &self,
        mut change: impl FnMut(&mut Index),
    ) -> Result<Index, ShipError> {
        let key = self.index_key();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (mut index, version) = self.read_index().await?;
            change(&mut index);
            let conditional = self.conditional_update.load(Ordering::Relaxed);
            let mode = match (&version, conditional) {
                (None, _) => PutMode::Create,
                (Some(v), true) => PutMode::Update(v.clone()),
                (Some(_), false) => PutMode::Overwrite,
            };
            let opts = PutOptions {
                mode,
                ..PutOptions::default()
            };
            let payload = PutPayload::from(index.encode());
            match self.store.put_opts(&key, payload, opts).await {
                Ok(_) => return Ok(index),
                Err(object_store::Error::NotImplemented { .. }) if version.is_some() => {
                    debug!(remote = %self.url, "conditional update not supported: overwriting the index");
                    self.conditional_update.store(false, Ordering::Relaxed);
                }
                Err(
                    e @ (object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }),
                ) => {
                    if attempts >= 20 {
                        return Err(ShipError::remote("put", key.as_ref(), e));
                    }
                    debug!(remote = %self.url, "index changed under us: reading it again");
                }
                Err(e) => return Err(ShipError::remote("put", key.as_ref(), e)),
            }
        }
    }

    /// Every object under the remote's prefix (for gc, and restore without an index).
    pub(crate) async fn list_all(&self) -> Result<Vec<ObjectMeta>, ShipError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let mut stream = self.store.list(prefix);
        let mut out = Vec::new();
        while let Some(meta) = stream.next().await {
            out.push(meta.map_err(|e| ShipError::remote("list", self.prefix.as_ref(), e))?);
        }
        Ok(out)
    }

    /// Deletes one object (absent is fine).
    pub(crate) async fn delete(&self, key: &Path) -> Result<(), ShipError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ShipError::remote("delete", key.as_ref(), e)),
        }
    }
}

/// Aborts a failed multipart upload; a failure to abort is logged (the store's lifecycle
/// rules or the next gc clean up what is left).
async fn abort(writer: WriteMultipart, key: &Path) {
    if let Err(e) = writer.abort().await {
        tracing::warn!(object = %key, error = %e, "aborting a failed multipart upload failed");
    }
}
