//! The physical floor of a crash-safe snapshot write: the bare syscall sequence snapseal's
//! writer follows, straight on nix, with nothing else around it. Every persist row and divan
//! bench compares against this one copy.

// nix hands back raw fds; owning them needs `unsafe` (each block says why it holds).
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{self, OFlag, RenameFlags};
use nix::sys::stat::Mode;

use super::BenchError;

/// An open directory to write floor files into.
#[derive(Debug)]
pub struct Floor {
    dir: OwnedFd,
}

impl Floor {
    /// Opens `path` (a directory) for floor writes.
    pub fn open(path: &Path) -> Result<Self, BenchError> {
        let raw = fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| BenchError::io(path, "open dir", e.into()))?;
        // SAFETY: `raw` was just returned by open and is owned by nobody else.
        let dir = unsafe { OwnedFd::from_raw_fd(raw) };
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
    ) -> Result<(), (&'static str, nix::Error)> {
        let dir = Some(self.dir.as_raw_fd());
        let raw = fcntl::openat(
            dir,
            tmp,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| ("create", e))?;
        // SAFETY: just returned by openat, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        for part in parts {
            let mut buf = *part;
            while !buf.is_empty() {
                match nix::unistd::write(&fd, buf) {
                    Ok(n) => buf = &buf[n..],
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(("write", e)),
                }
            }
        }
        nix::unistd::fsync(fd.as_raw_fd()).map_err(|e| ("fsync", e))?;
        // A close error is a failure, as in the writer.
        nix::unistd::close(std::os::fd::IntoRawFd::into_raw_fd(fd)).map_err(|e| ("close", e))?;
        fcntl::renameat2(dir, tmp, dir, committed, RenameFlags::RENAME_NOREPLACE)
            .map_err(|e| ("rename", e))?;
        nix::unistd::fsync(self.dir.as_raw_fd()).map_err(|e| ("dir fsync", e))
    }
}
