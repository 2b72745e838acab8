//! [`SpillFile`]: a snapshot body streamed straight into its final file before the ledger has
//! proved it, so a body of any size never has to sit in memory.
//!
//! The file is created under a *pending* name ([`PendingName`]) with a placeholder header of
//! [`HEADER_LEN`] zero bytes, and the body is appended as it is produced. Nothing is fsynced
//! then: a pending file is never trusted, and the store removes leftovers when it opens. Once
//! the proof exists, [`SnapshotWriter::commit_spill`](super::SnapshotWriter::commit_spill)
//! completes the very same file — receipt appended, real header written at offset 0, fsync,
//! close, non-replacing rename to the committed name, directory fsync — so the body is written
//! exactly once and the committed file is byte-identical to one written in a single pass.
//!
//! A `SpillFile` that is dropped (generation rolled back, serialisation failed) closes and
//! unlinks its pending file, so a cancelled generation leaves no file behind.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{debug, warn};

use super::{write_all, FILE_MODE};
use crate::error::{PersistError, Step};
use crate::format::HEADER_LEN;
use crate::fs::{DirHandle, WritableFile};
use crate::names::PendingName;

/// A body being streamed into its pending file. Write the body through [`io::Write`] (or
/// [`write_body`](Self::write_body)); hand it to
/// the store's [`commit_spill`](crate::SnapshotStore::commit_spill) once the receipt exists, or drop it
/// to remove the file.
pub struct SpillFile {
    pub(super) dir: Arc<dyn DirHandle>,
    pub(super) name: PendingName,
    /// `None` once handed over (commit) or closed (a failed write).
    file: Option<Box<dyn WritableFile>>,
    pub(super) body_len: u64,
    /// Set once a commit took the file over: from then on the commit decides the name's fate.
    handed_over: bool,
}

impl SpillFile {
    /// Creates `name` exclusively in `dir` and writes the placeholder header.
    ///
    /// An existing pending name is an error, never removed: the store deletes every leftover
    /// when it opens, so an existing one belongs to a live generation.
    pub(super) fn create(dir: Arc<dyn DirHandle>, name: PendingName) -> Result<Self, PersistError> {
        let file_name = name.file_name();
        let path = dir.path().join(&file_name);
        let file = dir
            .create_new(&file_name, FILE_MODE)
            .map_err(|source| PersistError::Io {
                path: path.clone(),
                step: Step::Create,
                source,
            })?;
        let mut spill = SpillFile {
            dir,
            name,
            file: Some(file),
            body_len: 0,
            handed_over: false,
        };
        // The header's place, filled in by the commit; zeros until then.
        if let Some(file) = spill.file.as_deref_mut() {
            if let Err(source) = write_all(file, &[0u8; HEADER_LEN]) {
                // Drop closes and unlinks.
                return Err(PersistError::Io {
                    path,
                    step: Step::Write,
                    source,
                });
            }
        }
        debug!(name = %spill.name, "pending file created");
        Ok(spill)
    }

    /// The pending file's name.
    pub fn name(&self) -> PendingName {
        self.name
    }

    /// Directory path joined with the pending name.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join(self.name.file_name())
    }

    /// True after a body write failed: the file is closed and its contents unknown, so it can
    /// only be dropped (a commit refuses it).
    pub fn is_failed(&self) -> bool {
        self.file.is_none() && !self.handed_over
    }

    /// Body bytes written so far.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Appends `buf` to the body (short writes looped, `EINTR` retried). After a failure the
    /// file is closed and every later call fails: its contents are unknown, so the only thing
    /// left to do with it is drop it (which removes it).
    pub fn write_body(&mut self, buf: &[u8]) -> Result<(), PersistError> {
        let path = self.path();
        let Some(file) = self.file.as_deref_mut() else {
            return Err(PersistError::Io {
                path,
                step: Step::Write,
                source: io::Error::other("an earlier write to this pending file failed"),
            });
        };
        // No writeback is started here, unlike a persist's write: the body streams in while
        // serialising, usually faster than the disk takes it, and starting its writeback
        // throttled the serialisation to the disk's pace (spilled serialise fell from
        // 1.04-1.06x to 0.88x of a bare write(2)) to save the commit's fsync that time. The
        // commit comes after the ledger's round trip; the kernel's own writeback has that
        // long.
        match write_all(file, buf) {
            Ok(()) => {
                self.body_len += buf.len() as u64;
                Ok(())
            }
            Err(source) => {
                self.close_quietly();
                Err(PersistError::Io {
                    path,
                    step: Step::Write,
                    source,
                })
            }
        }
    }

    /// Closes the file, logging (only) a close error: used on paths that already failed.
    fn close_quietly(&mut self) {
        if let Some(file) = self.file.take() {
            if let Err(e) = file.close() {
                warn!(name = %self.name, error = %e, "close of abandoned pending file failed");
            }
        }
    }

    /// Hands the open file over to the commit, which is then responsible for closing it and,
    /// on failure, for unlinking the name; drop no longer touches either.
    pub(super) fn hand_over(&mut self) -> Option<Box<dyn WritableFile>> {
        self.handed_over = true;
        self.file.take()
    }
}

impl io::Write for SpillFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // PersistError names the file and the step; keep it as the io::Error's source.
        self.write_body(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Unbuffered: every byte is already in the kernel. Durability is the commit's fsync.
        Ok(())
    }
}

impl Drop for SpillFile {
    /// Removes the pending file unless a commit took it over: a dropped spill is a cancelled
    /// or failed generation, which must leave no file.
    fn drop(&mut self) {
        if self.handed_over {
            return;
        }
        self.close_quietly();
        let file_name = self.name.file_name();
        match self.dir.unlink(&file_name) {
            Ok(()) => debug!(name = %file_name, "pending file removed"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => warn!(
                name = %file_name,
                step = %Step::UnlinkUncommitted,
                error = %e,
                "could not remove pending file; it is removed at the next open"
            ),
        }
    }
}

impl fmt::Debug for SpillFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpillFile")
            .field("path", &self.path())
            .field("body_len", &self.body_len)
            .field("open", &self.file.is_some())
            .finish()
    }
}
