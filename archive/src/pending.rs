//! A new file written whole or not at all, by a writer that pushes its bytes: an archive
//! being exported, a chunk being verified as it streams in.
//!
//! [`PendingFile::create`] makes the pending name (`O_EXCL`); bytes are written to it;
//! [`PendingFile::seal`] fsyncs and closes it ([`Sealed`]); [`Sealed::publish`] renames it
//! without replacing to its final name and fsyncs the directory. A process killed at any
//! point leaves nothing under the final name but a whole, durable file; a pending file left
//! by a kill is at most stale. Dropped before publishing, either removes its pending file.
//!
//! (`persist::fs::write_pending` is the same sequence for a writer that can hand over a
//! reader; here the bytes come from a writer that pushes them.)

use std::io::{self, Write};
use std::path::PathBuf;

use snapseal_persist::internals::fs::{write_all, WritableFile};
use snapseal_persist::internals::Escaped;

use crate::Dir;

/// A step of writing a new file failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PendingError {
    /// The final name exists; it is never replaced.
    #[error("{}: exists (an existing file is never overwritten)", Escaped::path(.0))]
    Exists(PathBuf),
    /// The pending name exists and may not be replaced: another writer of the same file is
    /// running, or one was killed.
    #[error("{}: exists: another export to this name is running, or one was interrupted (remove it if none is running)", Escaped::path(.0))]
    PendingExists(PathBuf),
    /// The directory fsync after the rename failed: the final name was removed again, since
    /// whether its entry would survive a crash is unknown (and a second fsync proves nothing).
    #[error("{}: fsync of the directory after the rename", Escaped::path(.path))]
    DirSync {
        /// The final name.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Another step failed.
    #[error("{}: {step}", Escaped::path(.path))]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// A file being written under its pending name.
///
/// Where an archive is written to a file: a crash or an error leaves no file of the final
/// name, never half of one, and an existing file is never replaced.
///
/// ```
/// use std::io::Write;
/// use snapseal_archive::{Dir, PendingError, PendingFile, Stale};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let out = tempfile::tempdir()?;
/// let dir = Dir::open(out.path())?;
/// let mut file = PendingFile::create(&dir, "node.tar.pending", 0o600, Stale::Refuse)?;
/// file.write_all(b"the archive")?; // e.g. `export(..., &mut file)`
/// file.seal()?.publish("node.tar")?; // fsync, close, rename (no replace), directory fsync
/// assert_eq!(std::fs::read(out.path().join("node.tar"))?, b"the archive");
///
/// // A second archive of that name is refused, and leaves nothing behind.
/// let mut second = PendingFile::create(&dir, "node.tar.pending", 0o600, Stale::Refuse)?;
/// second.write_all(b"another archive")?;
/// let refused = second.seal()?.publish("node.tar");
/// assert!(matches!(refused, Err(PendingError::Exists(_))));
/// assert_eq!(std::fs::read(out.path().join("node.tar"))?, b"the archive");
/// assert!(!out.path().join("node.tar.pending").exists());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PendingFile<'d> {
    dir: &'d Dir,
    pending: String,
    file: Option<Box<dyn WritableFile>>,
    failed: bool,
}

/// Whether [`PendingFile::create`] may remove a file already at the pending name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale {
    /// Remove it: only a crashed earlier run of the same writer can have left it (the caller
    /// excludes concurrent ones, e.g. by a directory lock).
    Remove,
    /// Refuse ([`PendingError::PendingExists`]): it may be a running writer's.
    Refuse,
}

impl<'d> PendingFile<'d> {
    /// Creates `pending` in `dir` exclusively (`O_EXCL`, `mode`), after removing a stale one
    /// if `stale` says so.
    pub fn create(
        dir: &'d Dir,
        pending: &str,
        mode: u32,
        stale: Stale,
    ) -> Result<PendingFile<'d>, PendingError> {
        let path = || dir.path().join(pending);
        if stale == Stale::Remove {
            match dir.fd().unlink(pending) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(PendingError::Io {
                        path: path(),
                        step: "removing a stale pending file",
                        source,
                    })
                }
            }
        }
        let file = dir.fd().create_new(pending, mode).map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                PendingError::PendingExists(path())
            } else {
                PendingError::Io {
                    path: path(),
                    step: "creating (O_EXCL)",
                    source,
                }
            }
        })?;
        Ok(PendingFile {
            dir,
            pending: pending.to_string(),
            file: Some(file),
            failed: false,
        })
    }

    fn io(&self, step: &'static str) -> impl FnOnce(io::Error) -> PendingError {
        let path = self.dir.path().join(&self.pending);
        move |source| PendingError::Io { path, step, source }
    }

    /// fsync and close: a failure of either is final (never retried) and removes the file.
    /// A write that failed earlier fails this too: what it left is never sealed.
    pub fn seal(mut self) -> Result<Sealed<'d>, PendingError> {
        let file = match self.file.take() {
            Some(f) if !self.failed => f,
            _ => {
                return Err(self.io("writing")(io::Error::other(
                    "an earlier write failed",
                )))
            }
        };
        let mut file = file;
        file.sync().map_err(self.io("fsync"))?;
        file.close().map_err(self.io("close"))?;
        Ok(Sealed {
            dir: self.dir,
            pending: std::mem::take(&mut self.pending),
        })
    }
}

impl Write for PendingFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(file) = self.file.as_deref_mut().filter(|_| !self.failed) else {
            return Err(io::Error::other("an earlier write failed"));
        };
        if let Err(e) = write_all(file, buf) {
            self.failed = true;
            return Err(e);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Durability is seal's fsync; nothing is buffered here.
        Ok(())
    }
}

impl Drop for PendingFile<'_> {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            drop(self.file.take());
            let _ = self.dir.fd().unlink(&self.pending);
        }
    }
}

/// A durable file under its pending name, waiting for its final one.
#[derive(Debug)]
pub struct Sealed<'d> {
    dir: &'d Dir,
    pending: String,
}

impl Sealed<'_> {
    /// Renames it without replacing to `name` and fsyncs the directory. After an error
    /// nothing of it is left under either name.
    pub fn publish(mut self, name: &str) -> Result<(), PendingError> {
        let path = self.dir.path().join(name);
        match self.dir.fd().rename_noreplace(&self.pending, name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(PendingError::Exists(path))
            }
            Err(source) => {
                return Err(PendingError::Io {
                    path,
                    step: "rename (no replace)",
                    source,
                })
            }
        }
        self.pending.clear();
        if let Err(source) = self.dir.fd().sync() {
            let _ = self.dir.fd().unlink(name);
            return Err(PendingError::DirSync { path, source });
        }
        Ok(())
    }
}

impl Drop for Sealed<'_> {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let _ = self.dir.fd().unlink(&self.pending);
        }
    }
}

/// Checks that `name` in `dir` is free: no file, link, directory or anything else by that
/// name ([`PendingError::Exists`] otherwise). The final rename refuses an existing name
/// anyway; this says so before any work is done.
pub fn ensure_free(dir: &Dir, name: &str) -> Result<(), PendingError> {
    match dir.fd().open_readable(name) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        _ => Err(PendingError::Exists(dir.path().join(name))),
    }
}
