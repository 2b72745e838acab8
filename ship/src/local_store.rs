//! [`LocalStore`]: the `file://` remote, an [`ObjectStore`] over a local directory that never
//! reads, writes or deletes anything outside it.
//!
//! A remote directory is as hostile as a bucket: whoever can write to it may plant symbolic
//! links, FIFOs, devices, sparse giants or directories where objects should be. So the store
//! works from one open directory fd, its root, and obeys these rules:
//!
//! - **Keys are walked by fd.** Every component of a key is a single name (not empty, `.`,
//!   `..`, and without `/`, `#` or control characters) opened with
//!   [`DirHandle::open_subdir`]: a symbolic link (`ELOOP`) or a non-directory (`ENOTDIR`) on
//!   the way is refused, so no call ever reaches outside the root. The root itself may go
//!   through links (it is the operator's configuration); each call opens it afresh, so a
//!   remote directory removed and made again is the one written to, never the removed one.
//! - **Objects are read through [`Untrusted`]**: relative to their directory's fd, without
//!   following a link, non-blocking (a FIFO cannot hang a reader), regular files only, size
//!   capped before any byte is read, read with `pread` (a file truncated meanwhile is an
//!   error, never a `SIGBUS`). Nothing is read before a caller polls the returned stream, so
//!   a caller checks the size first.
//! - **Objects are written whole or not at all**: into a staging file `<name>#<digits>` in the
//!   object's directory (`O_EXCL`, mode 0600), fsynced and closed, then renamed into place and
//!   the directory fsynced. [`PutMode::Create`] and a completed multipart upload never replace
//!   an existing object (`RENAME_NOREPLACE`, or link + unlink where the kernel lacks it);
//!   [`PutMode::Overwrite`] replaces it atomically (`rename`). A staging file an interrupted
//!   upload leaves is never listed; remote gc removes it once stale.
//! - **Deletes are `unlinkat` relative to the parent's fd**, followed by a directory fsync.
//! - **Listings walk by fd** and skip (with a `warn` log, names escaped) symbolic links,
//!   FIFOs, sockets, devices, names that are not valid keys, and anything deeper than
//!   [`MAX_DEPTH`] directories.
//!
//! What is not offered, honestly: [`PutMode::Update`] (a conditional replace needs an atomic
//! compare-and-swap that a directory does not have; callers fall back to one writer at a
//! time), copies, renames and delimiter listings ([`object_store::Error::NotImplemented`]).

use std::io::{self, Read};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::{Path, PathPart};
use object_store::{
    Attributes, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    UploadPart,
};
use parking_lot::Mutex;
use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::internals::fs::{
    is_noreplace_unsupported, write_pending, DirHandle, EntryKind, Expect, Untrusted, WritableFile,
};
use snapseal_persist::internals::Escaped;
use tracing::{debug, warn};

use crate::local_error::LocalError;

/// Directories a listing descends at most below its starting point (snapseal's layout needs
/// two); deeper ones are skipped with a warning, so a hostile tree cannot exhaust fds.
pub const MAX_DEPTH: usize = 8;

/// Bytes read per `pread` when a get is streamed.
const READ_CHUNK: u64 = 8 << 20;

/// The directory holding an object, opened by fd, and the object's name in it.
type Located = (Arc<dyn DirHandle>, String);

/// The name `object_store` errors and `Display` give this store.
const STORE: &str = "LocalDir";

/// An object store rooted at a local directory (see the module docs for its rules).
#[derive(Clone, Debug)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// A missing root is an empty remote until the first write creates it.
    root: PathBuf,
    max_object_bytes: u64,
    /// Staging names are `<name>#<pid, 10 digits><start nanos, 9 digits><n>`: unique to this
    /// process and call.
    staging_prefix: String,
    staging_seq: AtomicU64,
}

impl std::fmt::Display for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{STORE}({})", Escaped::path(&self.inner.root))
    }
}

impl LocalStore {
    /// A store over the directory `root`, whose objects may be at most `max_object_bytes`
    /// long. Nothing is opened or created yet: the root is opened by the first call that needs
    /// it, and created (with its missing parents, each fsynced) only by the first write.
    pub fn new(root: PathBuf, max_object_bytes: u64) -> LocalStore {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        LocalStore {
            inner: Arc::new(Inner {
                root,
                max_object_bytes,
                staging_prefix: format!("{:010}{start:09}", std::process::id()),
                staging_seq: AtomicU64::new(0),
            }),
        }
    }

    /// The directory it serves.
    pub fn root(&self) -> &std::path::Path {
        &self.inner.root
    }
}

/// Runs blocking filesystem work off the async threads (inline without a runtime).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, object_store::Error> + Send + 'static,
) -> Result<T, object_store::Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => rt.spawn_blocking(f).await?,
        Err(_) => f(),
    }
}

/// The components of `key`, each checked to be a name the store accepts.
fn parts(key: &Path) -> Result<Vec<String>, LocalError> {
    let bad = |reason| LocalError::BadKey {
        key: key.to_string(),
        reason,
    };
    let parts: Vec<String> = key.parts().map(|p| p.as_ref().to_string()).collect();
    if parts.is_empty() {
        return Err(bad("empty"));
    }
    for p in &parts {
        if p.is_empty() || p == "." || p == ".." {
            return Err(bad("a component is empty, '.' or '..'"));
        }
        if p.contains('#') {
            return Err(bad("'#' is reserved for staging files"));
        }
        if p.chars().any(|c| c == '/' || c.is_control()) {
            return Err(bad("a component holds '/' or a control character"));
        }
    }
    Ok(parts)
}

/// An object's last-modified time.
///
/// [`DirHandle`] gives no times, so this one `lstat` goes by path (the last component is not
/// followed). A directory swapped for a link meanwhile can only make it report another file's
/// time for an object the fd walk found; a time it cannot vouch for (an error, or a file that
/// is not the one listed: another type or size) reads as now, i.e. young, so gc keeps what it
/// cannot date.
// TODO(persist): DirEntry::modified, from the fstatat the listing already makes.
fn modified(dir: &dyn DirHandle, name: &str, len: u64) -> DateTime<Utc> {
    match std::fs::symlink_metadata(dir.path().join(name)) {
        Ok(m) if m.file_type().is_file() && m.len() == len => {
            m.modified().map_or_else(|_| Utc::now(), DateTime::from)
        }
        _ => Utc::now(),
    }
}

/// Replaces `to` with `from` in `dir` atomically (`rename(2)`).
///
/// [`DirHandle`] has no replacing rename, so this one call goes by path. It cannot reach
/// outside the root: `from` was just created through `dir`'s fd under a name unique to this
/// call, so if a directory on `dir`'s path has been swapped for a link since, the path finds
/// no `from` (`ENOENT`, nothing renamed), unless someone who can write where the link leads
/// put that name there, and then the rename changes only that directory, which they could
/// change themselves.
// TODO(persist): DirHandle::rename_replace (renameat without flags).
fn rename_replace(dir: &dyn DirHandle, from: &str, to: &str) -> io::Result<()> {
    std::fs::rename(dir.path().join(from), dir.path().join(to))
}

/// Gives the durable staging file `from` the name `to` without ever replacing one:
/// `RENAME_NOREPLACE`, or link + unlink where the kernel or filesystem lacks it.
fn rename_noreplace(dir: &dyn DirHandle, from: &str, to: &str) -> io::Result<()> {
    match dir.rename_noreplace(from, to) {
        Err(e) if is_noreplace_unsupported(&e) => {
            dir.hard_link(from, to)?;
            if let Err(e) = dir.unlink(from) {
                // The object is in place; the extra name is a staging file gc removes.
                warn!(file = %Escaped::path(&dir.path().join(from)), error = %e, "could not remove a staging name after linking it");
            }
            Ok(())
        }
        other => other,
    }
}

/// Removes a staging file after a failure (best effort: gc removes what is left).
fn discard(dir: &dyn DirHandle, staging: &str) {
    match dir.unlink(staging) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            warn!(file = %Escaped::path(&dir.path().join(staging)), error = %e, "could not remove a staging file; remote gc removes it once stale")
        }
    }
}

/// Reads a [`PutPayload`]'s chunks in order.
struct PayloadReader<'a> {
    chunks: std::slice::Iter<'a, Bytes>,
    current: &'a [u8],
}

impl Read for PayloadReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.next() {
                Some(next) => self.current = next,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = &self.current[n..];
        Ok(n)
    }
}

impl Inner {
    /// The root directory, opened for one call; `None` when it does not exist and `create`
    /// is false.
    fn root_dir(&self, create: bool) -> Result<Option<Arc<dyn DirHandle>>, LocalError> {
        let io = |step, source| LocalError::Io {
            path: self.root.clone(),
            step,
            source,
        };
        let dir = match RealFs.open_dir(&self.root, false) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Creates it and its missing parents, each entry made durable.
                drop(
                    RealFs
                        .open_dir(&self.root, true)
                        .map_err(|e| io("creating the remote directory", e))?,
                );
                RealFs
                    .open_dir(&self.root, false)
                    .map_err(|e| io("opening the remote directory", e))?
            }
            Err(e) => return Err(io("opening the remote directory", e)),
        };
        Ok(Some(dir))
    }

    /// The directory `dirs` names under the root, walked by fd; `None` when part of it does
    /// not exist and `create` is false.
    fn walk(
        &self,
        dirs: &[String],
        create: bool,
    ) -> Result<Option<Arc<dyn DirHandle>>, LocalError> {
        let Some(mut dir) = self.root_dir(create)? else {
            return Ok(None);
        };
        for name in dirs {
            dir = match dir.open_subdir(name, create) {
                Ok(sub) => sub,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
                Err(e) => return Err(LocalError::subdir(dir.path().join(name), e)),
            };
        }
        Ok(Some(dir))
    }

    /// The directory holding `key` and the object's name in it.
    fn parent(&self, key: &Path, create: bool) -> Result<Option<Located>, LocalError> {
        let mut parts = parts(key)?;
        let name = parts.pop().unwrap_or_default();
        Ok(self.walk(&parts, create)?.map(|dir| (dir, name)))
    }

    fn not_found(&self, key: &Path) -> LocalError {
        LocalError::Io {
            path: self.root.join(key.as_ref()),
            step: "open",
            source: io::Error::from(io::ErrorKind::NotFound),
        }
    }

    /// Opens the object at `key` for reading, under [`Untrusted`]'s rules.
    fn open(&self, key: &Path) -> Result<(Untrusted, ObjectMeta), LocalError> {
        let Some((dir, name)) = self.parent(key, false)? else {
            return Err(self.not_found(key));
        };
        let expect = Expect::new("remote object", self.max_object_bytes);
        let Some(file) = Untrusted::open_in(&*dir, &name, expect)? else {
            return Err(self.not_found(key));
        };
        let meta = ObjectMeta {
            location: key.clone(),
            last_modified: modified(&*dir, &name, file.len()),
            size: file.len(),
            e_tag: None,
            version: None,
        };
        Ok((file, meta))
    }

    fn staging_name(&self, name: &str) -> String {
        let n = self.staging_seq.fetch_add(1, Ordering::Relaxed);
        format!("{name}#{}{n}", self.staging_prefix)
    }

    /// A single put: staged, durable, then published as `mode` says.
    fn put(&self, key: &Path, payload: &PutPayload, mode: &PutMode) -> Result<(), LocalError> {
        let Some((dir, name)) = self.parent(key, true)? else {
            return Err(self.not_found(key));
        };
        let staging = self.staging_name(&name);
        let staged_path = || dir.path().join(&staging);
        let mut src = PayloadReader {
            chunks: payload.as_ref().iter(),
            current: &[],
        };
        if let Err(e) = write_pending(&*dir, &staging, &mut src, u64::MAX, &mut |_| {}) {
            discard(&*dir, &staging);
            return Err(LocalError::Io {
                path: staged_path(),
                step: e.step,
                source: e.source,
            });
        }
        let published = match mode {
            PutMode::Overwrite => {
                rename_replace(&*dir, &staging, &name).map_err(|e| ("rename over the object", e))
            }
            _ => rename_noreplace(&*dir, &staging, &name).map_err(|e| ("rename (no replace)", e)),
        };
        if let Err((step, source)) = published {
            discard(&*dir, &staging);
            return Err(LocalError::Io {
                path: dir.path().join(&name),
                step,
                source,
            });
        }
        dir.sync().map_err(|source| LocalError::Io {
            path: dir.path().to_path_buf(),
            step: "fsync of the directory",
            source,
        })
    }

    fn delete(&self, key: &Path) -> Result<(), LocalError> {
        let Some((dir, name)) = self.parent(key, false)? else {
            return Err(self.not_found(key));
        };
        let io = |step, source| LocalError::Io {
            path: dir.path().join(&name),
            step,
            source,
        };
        dir.unlink(&name).map_err(|e| io("unlink", e))?;
        dir.sync().map_err(|e| io("fsync of the directory", e))
    }

    /// Every object under `prefix`, sorted by key.
    fn list(&self, prefix: Option<&Path>) -> Result<Vec<ObjectMeta>, LocalError> {
        let dirs = match prefix {
            Some(p) if p.parts().next().is_some() => parts(p)?,
            _ => Vec::new(),
        };
        let Some(dir) = self.walk(&dirs, false)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        list_into(&*dir, &prefix.cloned().unwrap_or_default(), 0, &mut out)?;
        out.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(out)
    }
}

/// Appends the objects in `dir` (whose key is `at`) and below it to `out`.
fn list_into(
    dir: &dyn DirHandle,
    at: &Path,
    depth: usize,
    out: &mut Vec<ObjectMeta>,
) -> Result<(), LocalError> {
    let entries = dir.list().map_err(|source| LocalError::Io {
        path: dir.path().to_path_buf(),
        step: "list",
        source,
    })?;
    for entry in entries {
        let shown = dir.path().join(&entry.name);
        let (name, part) = match entry.name.to_str().map(|n| (n, PathPart::parse(n))) {
            Some((n, Ok(part))) if !n.contains('#') => (n, part),
            // `<name>#<digits>` is a staging file; other such names are not keys either.
            Some((n, _)) if n.contains('#') => continue,
            _ => {
                warn!(entry = %Escaped::path(&shown), "remote listing: skipping a name that is not a valid key");
                continue;
            }
        };
        match entry.kind {
            EntryKind::File => out.push(ObjectMeta {
                location: at.clone().join(part),
                last_modified: modified(dir, name, entry.len),
                size: entry.len,
                e_tag: None,
                version: None,
            }),
            EntryKind::Dir if depth >= MAX_DEPTH => {
                warn!(dir = %Escaped::path(&shown), max = MAX_DEPTH, "remote listing: not descending deeper")
            }
            EntryKind::Dir => match dir.open_subdir(name, false) {
                Ok(sub) => list_into(&*sub, &at.clone().join(part), depth + 1, out)?,
                // Gone since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Swapped for a link or a file since it was listed: skipped like one.
                Err(e) => {
                    warn!(dir = %Escaped::path(&shown), error = %e, "remote listing: skipping a directory that cannot be opened without following a link")
                }
            },
            EntryKind::Symlink => {
                warn!(entry = %Escaped::path(&shown), "remote listing: skipping a symbolic link (never followed)")
            }
            _ => {
                warn!(entry = %Escaped::path(&shown), "remote listing: skipping an entry that is not a regular file or directory (fifo, socket or device)")
            }
        }
    }
    Ok(())
}

/// The bytes `range` of `file`, as a stream of `pread`s of at most [`READ_CHUNK`] bytes, each
/// made only when the stream is polled.
fn read_stream(
    file: Arc<Untrusted>,
    key: Path,
    range: Range<u64>,
) -> BoxStream<'static, Result<Bytes, object_store::Error>> {
    let end = range.end;
    stream::try_unfold(range.start, move |at| {
        let (file, key) = (Arc::clone(&file), key.clone());
        async move {
            if at >= end {
                return Ok(None);
            }
            // At most READ_CHUNK, so it fits a usize.
            let len = (end - at).min(READ_CHUNK) as usize;
            let bytes = blocking(move || {
                file.read_range(at, len)
                    .map_err(|e| LocalError::Refused(e).into_store_error(&key))
            })
            .await?;
            Ok(Some((Bytes::from(bytes), at + len as u64)))
        }
    })
    .boxed()
}

fn not_implemented(operation: &str) -> object_store::Error {
    object_store::Error::NotImplemented {
        operation: operation.into(),
        implementer: STORE.into(),
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if matches!(opts.mode, PutMode::Update(_)) {
            return Err(not_implemented(
                "a conditional update (PutMode::Update) of a local directory",
            ));
        }
        if !opts.attributes.is_empty() {
            return Err(not_implemented("object attributes"));
        }
        let (inner, key) = (Arc::clone(&self.inner), location.clone());
        blocking(move || {
            inner
                .put(&key, &payload, &opts.mode)
                .map_err(|e| e.into_store_error(&key))
        })
        .await?;
        Ok(PutResult {
            e_tag: None,
            version: None,
            extensions: Default::default(),
        })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if !opts.attributes.is_empty() {
            return Err(not_implemented("object attributes"));
        }
        let (inner, key) = (Arc::clone(&self.inner), location.clone());
        let upload = blocking(move || {
            LocalUpload::start(&inner, &key).map_err(|e| e.into_store_error(&key))
        })
        .await?;
        Ok(Box::new(upload))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let (inner, key) = (Arc::clone(&self.inner), location.clone());
        let (file, meta) =
            blocking(move || inner.open(&key).map_err(|e| e.into_store_error(&key))).await?;
        options.check_preconditions(&meta)?;
        let range = match &options.range {
            Some(r) => r
                .as_range(meta.size)
                .map_err(|source| object_store::Error::Generic {
                    store: STORE,
                    source: Box::new(source),
                })?,
            None => 0..meta.size,
        };
        let payload = if options.head {
            stream::empty().boxed()
        } else {
            read_stream(Arc::new(file), location.clone(), range.clone())
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            meta,
            range,
            attributes: Attributes::default(),
            extensions: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let inner = Arc::clone(&self.inner);
        locations
            .map(move |location| {
                let inner = Arc::clone(&inner);
                async move {
                    let key = location?;
                    blocking(move || {
                        inner.delete(&key).map_err(|e| e.into_store_error(&key))?;
                        Ok(key)
                    })
                    .await
                }
            })
            .buffered(1)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let (inner, prefix) = (Arc::clone(&self.inner), prefix.cloned());
        stream::once(async move {
            let shown = prefix.clone().unwrap_or_default();
            blocking(move || {
                inner
                    .list(prefix.as_ref())
                    .map_err(|e| e.into_store_error(&shown))
            })
            .await
        })
        .map(|listed| match listed {
            Ok(objects) => stream::iter(objects.into_iter().map(Ok)).boxed(),
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(
        &self,
        _prefix: Option<&Path>,
    ) -> object_store::Result<ListResult> {
        Err(not_implemented("a listing with delimiter"))
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        _to: &Path,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        Err(not_implemented("copy"))
    }
}

/// A multipart upload: parts written at their offsets into one staging file, which completion
/// makes durable and renames into place without replacing anything.
#[derive(Debug)]
struct LocalUpload {
    staged: Arc<Staged>,
    /// Where the next part goes.
    offset: u64,
}

/// An upload's staging file and where it goes, shared by its part writes and its completion
/// (each on a blocking thread).
#[derive(Debug)]
struct Staged {
    dir: Arc<dyn DirHandle>,
    key: Path,
    name: String,
    staging: String,
    /// `None` once completed or aborted.
    file: Mutex<Option<Box<dyn WritableFile>>>,
    /// Set by a failed part: such a file is never made durable or renamed.
    failed: AtomicBool,
}

impl LocalUpload {
    fn start(inner: &Inner, key: &Path) -> Result<LocalUpload, LocalError> {
        let Some((dir, name)) = inner.parent(key, true)? else {
            return Err(inner.not_found(key));
        };
        let staging = inner.staging_name(&name);
        let file = dir
            .create_new(&staging, 0o600)
            .map_err(|source| LocalError::Io {
                path: dir.path().join(&staging),
                step: "creating (O_EXCL)",
                source,
            })?;
        debug!(file = %Escaped::path(&dir.path().join(&staging)), "multipart upload staged");
        Ok(LocalUpload {
            staged: Arc::new(Staged {
                dir,
                key: key.clone(),
                name,
                staging,
                file: Mutex::new(Some(file)),
                failed: AtomicBool::new(false),
            }),
            offset: 0,
        })
    }
}

impl Staged {
    fn io(&self, step: &'static str, source: io::Error) -> object_store::Error {
        LocalError::Io {
            path: self.dir.path().join(&self.staging),
            step,
            source,
        }
        .into_store_error(&self.key)
    }

    /// Writes one part at `at`; a failure marks the upload failed.
    fn write_part(&self, data: &PutPayload, at: u64) -> object_store::Result<()> {
        let mut guard = self.file.lock();
        let written = match guard.as_mut() {
            Some(f) => data.iter().try_fold(at, |at, chunk| {
                write_all_at(&mut **f, chunk, at).map(|()| at + chunk.len() as u64)
            }),
            None => Err(io::Error::other("the upload was completed or aborted")),
        };
        written.map(drop).map_err(|e| {
            self.failed.store(true, Ordering::SeqCst);
            self.io("writing a part", e)
        })
    }

    /// Makes the staged file durable and gives it its name (never replacing one); on any
    /// failure the staging file is removed.
    fn finish(&self) -> object_store::Result<()> {
        let done = (|| {
            let Some(mut file) = self.file.lock().take() else {
                let gone = io::Error::other("already completed or aborted");
                return Err(self.io("complete", gone));
            };
            if self.failed.load(Ordering::SeqCst) {
                // Never sealed: what a failed write touched is not trusted.
                let failed = io::Error::other("a part failed to write");
                return Err(self.io("complete", failed));
            }
            // A failed fsync is never retried, and the file is then thrown away.
            file.sync().map_err(|e| self.io("fsync", e))?;
            file.close().map_err(|e| self.io("close", e))?;
            rename_noreplace(&*self.dir, &self.staging, &self.name)
                .map_err(|e| self.io("rename (no replace)", e))?;
            self.dir
                .sync()
                .map_err(|e| self.io("fsync of the directory", e))
        })();
        if done.is_err() {
            discard(&*self.dir, &self.staging);
        }
        done
    }

    /// Closes and removes the staging file unless the upload was completed or aborted.
    fn abandon(&self) {
        if let Some(file) = self.file.lock().take() {
            // Thrown away: its close error says nothing we act on.
            if let Err(e) = file.close() {
                debug!(error = %e, "close of an abandoned upload's staging file failed");
            }
            discard(&*self.dir, &self.staging);
        }
    }
}

/// `pwrite`s all of `buf` at `offset` (short writes looped; `EINTR` retried, a bounded
/// number of times in a row).
// TODO(persist): export fs::write_all_at and call it here.
fn write_all_at(file: &mut dyn WritableFile, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    let mut interrupts = 0;
    while !buf.is_empty() {
        match file.write_at(buf, offset) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                let n = n.min(buf.len());
                buf = &buf[n..];
                offset += n as u64;
                interrupts = 0;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupts < 1024 => {
                interrupts += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[async_trait]
impl MultipartUpload for LocalUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let at = self.offset;
        self.offset += data.content_length() as u64;
        let staged = Arc::clone(&self.staged);
        Box::pin(blocking(move || staged.write_part(&data, at)))
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let staged = Arc::clone(&self.staged);
        blocking(move || staged.finish()).await?;
        Ok(PutResult {
            e_tag: None,
            version: None,
            extensions: Default::default(),
        })
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let staged = Arc::clone(&self.staged);
        blocking(move || {
            staged.abandon();
            Ok(())
        })
        .await
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        // Neither completed nor aborted (the caller gave up on it): remove what it staged.
        self.staged.abandon();
    }
}
