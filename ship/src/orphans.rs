//! The shipper's record of its multipart uploads in progress, so that one interrupted by a
//! crash, a `kill -9` or a failed abort is aborted by the next shipper instead of lingering
//! on the server (an incomplete S3 upload is invisible to readers but stored, and billed,
//! until aborted; object_store cannot list them, and lifecycle rules are not available on
//! every server).
//!
//! One small file per upload in the snapshot store's directory,
//! `ship-upload.<pid>.<nanos>.<n>` (a name no snapshot file has), holding JSON
//! `{"format":1,"url":…,"node":…,"key":…,"upload_id":…}`. It is written crash-safe
//! (`write_pending` to `<name>.tmp`: `O_EXCL`, fsync, close; then `publish`:
//! `RENAME_NOREPLACE`, directory fsync) after the server gave the upload its id and **before
//! its first part**, and removed (unlink, directory fsync) once the upload completed or was
//! aborted. So after any crash, every upload that may hold a part is named by a record. The
//! one window left open: a crash between the server's answer to "start an upload" and the
//! record's fsync leaves an upload with no part, unrecorded.
//!
//! Before its first upload, a shipper aborts every upload its records name for the same
//! remote URL and node (one shipper per node name at a time is the rule, so none of them is
//! still running), and removes each record whose upload is aborted or no longer exists; a
//! record whose abort fails is kept, logged, for the next shipper. Records are read as hostile
//! input (`Untrusted`: no link followed, regular files, at most 64 KiB, closed JSON), and a
//! key outside this node's prefix is never aborted.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use object_store::path::Path;
use serde::{Deserialize, Serialize};
use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::internals::fs::{
    publish, write_pending, DirHandle, EntryKind, Expect, Untrusted,
};
use snapseal_persist::internals::Escaped;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::error::{describe, ShipError};
use crate::remote::Remote;

/// Every record's name starts with this.
const PREFIX: &str = "ship-upload.";

/// A record being written has this suffix until it is published.
const PENDING: &str = ".tmp";

/// The largest record read.
const MAX_RECORD_BYTES: u64 = 64 << 10;

/// The format tag of a record.
const FORMAT: u32 = 1;

/// One upload in progress, as recorded.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    format: u32,
    url: String,
    node: String,
    key: String,
    upload_id: String,
}

/// The record of one upload, to remove once it completed or was aborted.
#[derive(Debug)]
pub(crate) struct Recorded {
    name: String,
}

/// A shipper's records of its uploads in progress, in the snapshot store's directory.
#[derive(Debug)]
pub(crate) struct UploadLog {
    dir: PathBuf,
    url: String,
    node: String,
    seq: AtomicU64,
    swept: OnceCell<()>,
}

impl UploadLog {
    /// The records of `node`'s uploads to `url`, in the directory `dir`.
    pub(crate) fn new(dir: PathBuf, url: &str, node: &str) -> UploadLog {
        UploadLog {
            dir,
            url: url.to_string(),
            node: node.to_string(),
            seq: AtomicU64::new(0),
            swept: OnceCell::new(),
        }
    }

    fn local_io(&self, name: &str, step: &'static str, source: io::Error) -> ShipError {
        ShipError::LocalIo {
            dir: self.dir.join(name),
            step,
            source,
        }
    }

    fn open_dir(&self) -> Result<Arc<dyn DirHandle>, ShipError> {
        RealFs
            .open_dir(&self.dir, false)
            .map_err(|e| ShipError::LocalIo {
                dir: self.dir.clone(),
                step: "opening the directory of upload records",
                source: e,
            })
    }

    /// Records that the upload `upload_id` of `key` is in progress, durably (on a blocking
    /// thread).
    pub(crate) async fn record(
        self: &Arc<Self>,
        key: &Path,
        upload_id: &str,
    ) -> Result<Recorded, ShipError> {
        let record = Record {
            format: FORMAT,
            url: self.url.clone(),
            node: self.node.clone(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
        };
        let name = format!(
            "{PREFIX}{}.{}.{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let log = Arc::clone(self);
        blocking(move || log.write(&name, &record).map(|()| Recorded { name })).await
    }

    fn write(&self, name: &str, record: &Record) -> Result<(), ShipError> {
        let bytes = serde_json::to_vec(record)
            .map_err(|e| self.local_io(name, "encoding an upload record", io::Error::other(e)))?;
        let dir = self.open_dir()?;
        let pending = format!("{name}{PENDING}");
        let durable = write_pending(
            &*dir,
            &pending,
            &mut &bytes[..],
            MAX_RECORD_BYTES,
            &mut |_| {},
        )
        .and_then(|_| publish(&*dir, &pending, name));
        durable.map_err(|e| {
            // Not published: nothing names the upload, which the caller aborts.
            if let Err(u) = dir.unlink(&pending) {
                if u.kind() != io::ErrorKind::NotFound {
                    warn!(file = %Escaped::path(&self.dir.join(&pending)), error = %u, "could not remove an unpublished upload record");
                }
            }
            self.local_io(name, e.step, e.source)
        })
    }

    /// Removes a record once its upload completed or was aborted (on a blocking thread).
    pub(crate) async fn forget(self: &Arc<Self>, recorded: Recorded) -> Result<(), ShipError> {
        let log = Arc::clone(self);
        blocking(move || log.remove(&recorded.name)).await
    }

    fn remove(&self, name: &str) -> Result<(), ShipError> {
        let dir = self.open_dir()?;
        match dir.unlink(name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.local_io(name, "removing an upload record", e)),
        }
        dir.sync()
            .map_err(|e| self.local_io(name, "fsync of the directory", e))
    }

    /// The records in the directory: published ones, and pending ones that were written
    /// whole (a pending record that does not parse is removed: its upload, if any, was
    /// aborted by the writer that failed to publish it, or never had a part).
    fn leftovers(&self) -> Result<Vec<(String, Record)>, ShipError> {
        let dir = self.open_dir()?;
        let entries = dir.list().map_err(|e| ShipError::LocalIo {
            dir: self.dir.clone(),
            step: "listing upload records",
            source: e,
        })?;
        let mut out = Vec::new();
        for entry in entries {
            let Some(name) = entry.name.to_str().filter(|n| n.starts_with(PREFIX)) else {
                continue;
            };
            if entry.kind != EntryKind::File {
                warn!(file = %Escaped::path(&self.dir.join(&entry.name)), "not a regular file under an upload record's name: left alone");
                continue;
            }
            match self.read(&*dir, name) {
                Ok(Some(record)) => out.push((name.to_string(), record)),
                Ok(None) => {}
                Err(reason) if name.ends_with(PENDING) => {
                    info!(file = %Escaped::path(&self.dir.join(name)), reason = %reason, "removing a torn upload record");
                    self.remove(name)?;
                }
                Err(reason) => {
                    warn!(file = %Escaped::path(&self.dir.join(name)), reason = %reason, "an upload record that does not read: left alone");
                }
            }
        }
        Ok(out)
    }

    /// One record, or why it is not one; `None` when it is gone.
    fn read(&self, dir: &dyn DirHandle, name: &str) -> Result<Option<Record>, String> {
        let expect = Expect::new("upload record", MAX_RECORD_BYTES);
        let file = match Untrusted::open_in(dir, name, expect) {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(None),
            Err(e) => return Err(describe(&e)),
        };
        let bytes = file.read_all().map_err(|e| describe(&e))?;
        let record: Record = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if record.format != FORMAT {
            return Err(format!("format {}, not {FORMAT}", record.format));
        }
        Ok(Some(record))
    }

    /// Once per log (the first call; later ones return at once): aborts every upload the
    /// records name for this remote and node, and removes each record whose upload is gone.
    /// An abort that fails keeps its record (logged) for the next shipper; an error reading
    /// the directory is returned, and the next call tries again.
    pub(crate) async fn sweep_once(self: &Arc<Self>, remote: &Remote) -> Result<(), ShipError> {
        self.swept
            .get_or_try_init(|| self.sweep(remote))
            .await
            .map(|_| ())
    }

    async fn sweep(self: &Arc<Self>, remote: &Remote) -> Result<(), ShipError> {
        let log = Arc::clone(self);
        let leftovers = blocking(move || log.leftovers()).await?;
        let prefix = remote.node_prefix(&self.node);
        for (name, record) in leftovers {
            let shown = Escaped::path(&self.dir.join(&name)).to_string();
            if record.url != self.url || record.node != self.node {
                continue;
            }
            let key = match Path::parse(&record.key) {
                Ok(key) if key.prefix_matches(&prefix) => key,
                _ => {
                    warn!(file = %shown, key = %Escaped::str(&record.key), "an upload record names a key outside this node's prefix: left alone");
                    continue;
                }
            };
            let Some(parts) = &remote.multipart else {
                warn!(file = %shown, "an upload record for a store without upload ids: left alone");
                continue;
            };
            match parts.abort_multipart(&key, &record.upload_id).await {
                // Gone: completed before the crash, or aborted already.
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    info!(object = %key, upload = %Escaped::str(&record.upload_id), "aborted an interrupted multipart upload");
                    self.forget(Recorded { name }).await?;
                }
                Err(e) => {
                    warn!(object = %key, file = %shown, error = %describe(&e), "aborting an interrupted multipart upload failed; the record is kept for the next shipper");
                }
            }
        }
        Ok(())
    }
}

/// Runs local filesystem work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ShipError> + Send + 'static,
) -> Result<T, ShipError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ShipError::LocalIo {
            dir: PathBuf::new(),
            step: "an upload record's blocking task",
            source: io::Error::other(e),
        })?
}
