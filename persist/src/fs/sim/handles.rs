//! The handles `SimFs` gives out: each call goes through the `SimFs` gate (counting, tracing,
//! halting, dead-handle check, faults) and then the model.

use std::io;
use std::path::{Path, PathBuf};

use super::model::Ino;
use super::{fail_if, FaultKind, Op, Outcome, Shared, SimFs, Site};
use crate::fs::{DirEntry, DirHandle, DirLock, FileBytes, WritableFile};
use nix::errno::Errno;

/// An open simulated directory.
#[derive(Debug)]
pub(super) struct SimDir {
    fs: SimFs,
    path: PathBuf,
    /// The crash epoch it was opened in; after a crash it is dead.
    epoch: u64,
}

impl SimDir {
    pub(super) fn new(fs: SimFs, path: PathBuf, epoch: u64) -> Self {
        Self { fs, path, epoch }
    }

    fn site<'a>(&'a self, op: Op, name: Option<&'a str>, to: Option<&'a str>) -> Site<'a> {
        Site {
            op,
            dir: &self.path,
            name,
            to,
            epoch: Some(self.epoch),
        }
    }
}

impl DirHandle for SimDir {
    fn path(&self) -> &Path {
        &self.path
    }

    fn create_new(&self, name: &str, _mode: u32) -> io::Result<Box<dyn WritableFile>> {
        let ino = self.fs.call(
            self.site(Op::CreateNew, Some(name), None),
            |s, fault| {
                fail_if(fault)?;
                s.model.create_new(&self.path, name)
            },
            |_| Outcome::Ok,
        )?;
        Ok(Box::new(SimFile {
            fs: self.fs.clone(),
            dir: self.path.clone(),
            name: name.to_owned(),
            ino,
            epoch: self.epoch,
            open: true,
        }))
    }

    fn rename_noreplace(&self, from: &str, to: &str) -> io::Result<()> {
        self.fs.call(
            self.site(Op::Rename, Some(from), Some(to)),
            |s, fault| {
                fail_if(fault)?;
                if !s.noreplace_supported {
                    return Err(io::Error::from_raw_os_error(Errno::EINVAL as i32));
                }
                s.model.rename_noreplace(&self.path, from, to)
            },
            |_| Outcome::Ok,
        )
    }

    fn hard_link(&self, from: &str, to: &str) -> io::Result<()> {
        self.fs.call(
            self.site(Op::HardLink, Some(from), Some(to)),
            |s, fault| {
                fail_if(fault)?;
                s.model.hard_link(&self.path, from, to)
            },
            |_| Outcome::Ok,
        )
    }

    fn unlink(&self, name: &str) -> io::Result<()> {
        self.fs.call(
            self.site(Op::Unlink, Some(name), None),
            |s, fault| {
                fail_if(fault)?;
                s.model.unlink(&self.path, name)
            },
            |_| Outcome::Ok,
        )
    }

    fn sync(&self) -> io::Result<()> {
        self.fs.call(
            self.site(Op::SyncDir, None, None),
            |s, fault| {
                fail_if(fault)?;
                s.model.sync_dir(&self.path)
            },
            |_| Outcome::Ok,
        )
    }

    fn list(&self) -> io::Result<Vec<DirEntry>> {
        self.fs.call(
            self.site(Op::List, None, None),
            |s, fault| {
                fail_if(fault)?;
                s.model.list(&self.path)
            },
            |_| Outcome::Ok,
        )
    }

    fn open_read(&self, name: &str) -> io::Result<FileBytes> {
        let bytes = self.fs.call(
            self.site(Op::OpenRead, Some(name), None),
            |s, fault| {
                fail_if(fault)?;
                s.model.read(&self.path, name)
            },
            |_| Outcome::Ok,
        )?;
        Ok(if bytes.is_empty() {
            FileBytes::empty()
        } else {
            FileBytes::from_shared(bytes)
        })
    }

    fn lock_exclusive(&self, name: &str) -> io::Result<Box<dyn DirLock>> {
        let (ino, id) = self.fs.call(
            self.site(Op::Lock, Some(name), None),
            |s, fault| {
                fail_if(fault)?;
                s.model.lock(&self.path, name)
            },
            |_| Outcome::Ok,
        )?;
        Ok(Box::new(SimLock {
            fs: self.fs.clone(),
            ino,
            id,
        }))
    }
}

/// A simulated file open for writing: `write` appends (files come from `create_new`),
/// `write_at` overwrites in place.
#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    dir: PathBuf,
    name: String,
    ino: Ino,
    epoch: u64,
    /// False once closed (explicitly or by drop).
    open: bool,
}

impl SimFile {
    fn site(&self, op: Op) -> Site<'_> {
        Site {
            op,
            dir: &self.dir,
            name: Some(&self.name),
            to: None,
            epoch: Some(self.epoch),
        }
    }

    /// Closes the handle in the model, once. After a crash the model already forgot it.
    fn release(&mut self) {
        if std::mem::take(&mut self.open) {
            let mut s = self.fs.shared.lock();
            if s.epoch == self.epoch {
                s.model.release_writer(self.ino);
            }
        }
    }
}

/// How many of `len` bytes a write call under `fault` writes: all of them; a strict prefix of
/// at least one byte for a short write (a one-byte buffer goes whole); none for a failure,
/// which is returned instead.
fn written_len(s: &mut Shared, fault: Option<FaultKind>, len: usize) -> io::Result<usize> {
    match fault {
        Some(FaultKind::ShortWrite) if len > 1 => {
            Ok(1 + s.fault_rng.below(len as u64 - 1) as usize)
        }
        Some(FaultKind::ShortWrite) | None => Ok(len),
        Some(kind) => Err(kind.error()),
    }
}

impl WritableFile for SimFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let ino = self.ino;
        self.fs.call(
            self.site(Op::Write),
            |s, fault| {
                let len = written_len(s, fault, buf.len())?;
                s.model.append(ino, &buf[..len])?;
                Ok(len)
            },
            |&n| Outcome::Wrote(n),
        )
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let ino = self.ino;
        self.fs.call(
            self.site(Op::WriteAt),
            |s, fault| {
                let len = written_len(s, fault, buf.len())?;
                s.model.write_at(ino, offset, &buf[..len])?;
                Ok(len)
            },
            |&n| Outcome::Wrote(n),
        )
    }

    fn start_writeback(&mut self, _offset: u64, _len: u64) -> io::Result<()> {
        // Changes nothing in the model: only `sync` makes data durable.
        self.fs.call(
            self.site(Op::Writeback),
            |_, fault| fail_if(fault),
            |_| Outcome::Ok,
        )
    }

    fn sync(&mut self) -> io::Result<()> {
        let ino = self.ino;
        self.fs.call(
            self.site(Op::Sync),
            |s, fault| {
                if let Some(kind) = fault {
                    // Data stays non-durable, and this file's fsync can never succeed again.
                    s.model.poison(ino);
                    return Err(kind.error());
                }
                s.model.sync_file(ino)
            },
            |_| Outcome::Ok,
        )
    }

    fn close(mut self: Box<Self>) -> io::Result<()> {
        let result = self.fs.call(
            self.site(Op::Close),
            |_, fault| fail_if(fault),
            |_| Outcome::Ok,
        );
        // Closed whatever close reported (Linux releases the fd even on error).
        self.release();
        result
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        self.release();
    }
}

/// A simulated flock; dropping it unlocks (unless a crash or a later lock superseded it).
#[derive(Debug)]
struct SimLock {
    fs: SimFs,
    ino: Ino,
    id: u64,
}

impl DirLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.fs.shared.lock().model.unlock(self.ino, self.id);
    }
}
