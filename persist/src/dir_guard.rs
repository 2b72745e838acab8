//! [`GuardedDir`]: the store's directory handle, which remembers a failed directory `fsync`.
//!
//! After a failed `fsync` the kernel may have dropped the dirty directory metadata and report
//! the error only once, so a later `fsync` of the same fd that succeeds proves nothing. The
//! store therefore never calls `fsync` on its directory again after one failed: every later
//! [`sync`](DirHandle::sync) fails at once with an error naming the first failure, and the
//! store refuses further changes until it is reopened (a fresh open of the directory starts
//! from what is actually on disk).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::fs::{DirEntry, DirHandle, DirLock, FileBytes, ReadableFile, WritableFile};

/// The payload of the [`io::Error`] a [`GuardedDir`] returns instead of fsyncing again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EarlierSyncFailure {
    /// The first failure, in words.
    pub(crate) first: String,
}

impl fmt::Display for EarlierSyncFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an earlier fsync of the directory failed ({}); it is never retried on the same \
             directory, reopen the store",
            self.first
        )
    }
}

impl std::error::Error for EarlierSyncFailure {}

/// A directory handle that refuses to `fsync` again after a failed `fsync`.
#[derive(Debug)]
pub(crate) struct GuardedDir {
    inner: Arc<dyn DirHandle>,
    failed: Mutex<Option<EarlierSyncFailure>>,
}

impl GuardedDir {
    pub(crate) fn new(inner: Arc<dyn DirHandle>) -> GuardedDir {
        GuardedDir {
            inner,
            failed: Mutex::new(None),
        }
    }

    /// The first directory `fsync` failure, if one happened.
    pub(crate) fn failure(&self) -> Option<EarlierSyncFailure> {
        self.failed.lock().clone()
    }
}

impl DirHandle for GuardedDir {
    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn create_new(&self, name: &str, mode: u32) -> io::Result<Box<dyn WritableFile>> {
        self.inner.create_new(name, mode)
    }

    fn rename_noreplace(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename_noreplace(from, to)
    }

    fn hard_link(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.hard_link(from, to)
    }

    fn unlink(&self, name: &str) -> io::Result<()> {
        self.inner.unlink(name)
    }

    fn sync(&self) -> io::Result<()> {
        // Held across the call, so two threads cannot both fsync after one of them failed.
        let mut failed = self.failed.lock();
        if let Some(earlier) = &*failed {
            return Err(io::Error::other(earlier.clone()));
        }
        let result = self.inner.sync();
        if let Err(e) = &result {
            *failed = Some(EarlierSyncFailure {
                first: e.to_string(),
            });
        }
        result
    }

    fn list(&self) -> io::Result<Vec<DirEntry>> {
        self.inner.list()
    }

    fn open_read(&self, name: &str) -> io::Result<FileBytes> {
        self.inner.open_read(name)
    }

    fn open_readable(&self, name: &str) -> io::Result<Box<dyn ReadableFile>> {
        self.inner.open_readable(name)
    }

    fn open_subdir(&self, name: &str, create: bool) -> io::Result<Arc<dyn DirHandle>> {
        self.inner.open_subdir(name, create)
    }

    fn lock_exclusive(&self, name: &str) -> io::Result<Box<dyn DirLock>> {
        self.inner.lock_exclusive(name)
    }
}
