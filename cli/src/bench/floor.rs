//! The physical floor of a crash-safe snapshot write: the bare syscall sequence snapseal's
//! writer follows, through persist's filesystem seam (the same `openat`, `write` loop,
//! `fsync`, `close`, `renameat2` and directory `fsync` the writer makes) with nothing of the
//! writer around it. Every persist row and divan bench compares against this one copy. It
//! starts no writeback: the writer's `sync_file_range` every 16 MiB (SPEC §5 step 2) is
//! something snapseal adds, so a large persist can beat this floor by overlapping the
//! device's writing with the copy into the page cache.

use std::io;
use std::path::Path;
use std::sync::Arc;

use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::internals::fs::{write_all, DirHandle};

use super::BenchError;

/// An open directory to write floor files into.
#[derive(Debug)]
pub struct Floor {
    dir: Arc<dyn DirHandle>,
}

impl Floor {
    /// Opens `path` (an existing directory) for floor writes.
    pub fn open(path: &Path) -> Result<Self, BenchError> {
        let dir = RealFs::new()
            .open_dir(path, false)
            .map_err(|e| BenchError::io(path, "open dir", e))?;
        Ok(Floor { dir })
    }

    /// `openat(tmp, O_CREAT|O_EXCL|O_NOFOLLOW)`, write `parts` fully, `fsync`, `close`,
    /// `renameat2(tmp, committed, RENAME_NOREPLACE)`, `fsync(dir)`. On failure, the step and
    /// the error (the temporary file is left for the caller's scratch directory to remove).
    pub fn write(
        &self,
        tmp: &str,
        committed: &str,
        parts: &[&[u8]],
    ) -> Result<(), (&'static str, io::Error)> {
        self.write_streamed(tmp, committed, |write| {
            parts.iter().try_for_each(|p| write(p))
        })
    }

    /// [`write`](Self::write) of bytes made while writing: `produce` hands each piece to the
    /// function it is given, which writes it fully (its error is the write's).
    pub fn write_streamed(
        &self,
        tmp: &str,
        committed: &str,
        produce: impl FnOnce(&mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>,
    ) -> Result<(), (&'static str, io::Error)> {
        let mut file = self.dir.create_new(tmp, 0o600).map_err(|e| ("create", e))?;
        produce(&mut |part| write_all(&mut *file, part)).map_err(|e| ("write", e))?;
        file.sync().map_err(|e| ("fsync", e))?;
        // A close error is a failure, as in the writer.
        file.close().map_err(|e| ("close", e))?;
        self.dir
            .rename_noreplace(tmp, committed)
            .map_err(|e| ("rename", e))?;
        self.dir.sync().map_err(|e| ("dir fsync", e))
    }
}
