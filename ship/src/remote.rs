//! The remote: an object store opened from a URL, the key layout, uploads that become visible
//! only complete, read-back confirmation and the index object.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, UpdateVersion, WriteMultipart,
};
use tracing::debug;

use crate::error::ShipError;
use crate::index::{Index, INDEX_FORMAT, INDEX_MAX_BYTES};

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
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            options: Vec::new(),
            request_timeout: Duration::from_secs(30),
            io_threads: 2,
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
    /// Opens `url`: `file:///abs/dir` (a local directory, created if missing; files are
    /// fsynced before they become visible) or `s3://bucket[/prefix]` (credentials, region and
    /// endpoint from the `AWS_*` environment and `opts`).
    pub fn open(url: &str, opts: &RemoteOptions) -> Result<Remote, ShipError> {
        let config = |reason: String| ShipError::Config {
            url: url.to_string(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| config(e.to_string()))?;
        let (store, prefix): (Arc<dyn ObjectStore>, Path) = match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| config("not an absolute local path".into()))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| config(format!("creating {}: {e}", dir.display())))?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| config(e.to_string()))?
                    .with_fsync(true);
                (Arc::new(fs), Path::default())
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
        })
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
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

    /// Uploads `bytes` to `key` so that the object is visible only complete: one conditional
    /// create (`PutMode::Create`) up to `part_size`, a multipart upload of `part_size` parts
    /// (at most `parts_in_flight` at a time) above it, aborted if it fails. Returns
    /// `Ok(false)` when a conditional create found the object already there.
    pub(crate) async fn put_file(
        &self,
        key: &Path,
        bytes: Bytes,
        part_size: usize,
        parts_in_flight: usize,
    ) -> Result<bool, ShipError> {
        let part_size = part_size.max(5 << 20);
        if bytes.len() <= part_size {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            return match self
                .store
                .put_opts(key, PutPayload::from_bytes(bytes), opts)
                .await
            {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => Ok(false),
                Err(e) => Err(ShipError::remote("put", key.as_ref(), e)),
            };
        }
        let upload = self
            .store
            .put_multipart_opts(key, PutMultipartOptions::default())
            .await
            .map_err(|e| ShipError::remote("multipart start", key.as_ref(), e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + part_size).min(bytes.len());
            if let Err(e) = writer.wait_for_capacity(parts_in_flight.max(1)).await {
                abort(writer, key).await;
                return Err(ShipError::remote("multipart part", key.as_ref(), e));
            }
            // A slice of the mapped file: no copy of the body.
            writer.put(bytes.slice(at..end));
            at = end;
        }
        match writer.finish().await {
            Ok(_) => Ok(true),
            Err(e) => Err(ShipError::remote("multipart complete", key.as_ref(), e)),
        }
    }

    /// Reads the object back, streamed: its size and BLAKE3.
    pub(crate) async fn read_back(&self, key: &Path) -> Result<(u64, blake3::Hash), ShipError> {
        let got = self
            .store
            .get(key)
            .await
            .map_err(|e| ShipError::remote("get", key.as_ref(), e))?;
        let mut stream = got.into_stream();
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ShipError::remote("get", key.as_ref(), e))?;
            len += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((len, hasher.finalize()))
    }

    /// Reads the index and its version; an absent index is an empty one.
    pub(crate) async fn read_index(&self) -> Result<(Index, Option<UpdateVersion>), ShipError> {
        let key = self.index_key();
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
            Err(e) => return Err(ShipError::remote("get", key.as_ref(), e)),
        };
        if got.meta.size > INDEX_MAX_BYTES {
            return Err(ShipError::Index {
                object: key.to_string(),
                reason: format!("{} bytes, more than {INDEX_MAX_BYTES}", got.meta.size),
            });
        }
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        let bytes = got
            .bytes()
            .await
            .map_err(|e| ShipError::remote("get", key.as_ref(), e))?;
        let index = Index::decode(&bytes).map_err(|reason| ShipError::Index {
            object: key.to_string(),
            reason,
        })?;
        Ok((index, Some(version)))
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

    /// Starts reading an object.
    pub(crate) async fn get(&self, key: &Path) -> Result<object_store::GetResult, ShipError> {
        self.store
            .get(key)
            .await
            .map_err(|e| ShipError::remote("get", key.as_ref(), e))
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
