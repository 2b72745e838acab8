//! The seam's traits: [`FileSystem`] opens directories, [`DirHandle`] does everything else
//! relative to one, and the file and lock handles it returns.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::FileBytes;
#[cfg(doc)]
use super::{RealFs, Untrusted};

/// What a [`SnapshotStore`](crate::SnapshotStore) runs on: [`RealFs`](super::RealFs), or
/// with the `sim` feature `SimFs`. It opens directories; every other call goes through the
/// handle it returns, which is this crate's own (`internals::fs::DirHandle` with the
/// `internals` feature), so outside this crate the trait is sealed.
pub trait FileSystem: Send + Sync + fmt::Debug + 'static {
    /// Opens the directory at `path`; every other operation is relative to the returned handle
    /// (an open directory fd for the real filesystem).
    ///
    /// With `create`, missing directories are created *recursively* (mode `0o700`: snapshots
    /// may hold sensitive state), and each newly created directory's entry is made durable by
    /// fsyncing its parent, so a crash cannot lose the directory we are about to trust. Without
    /// `create`, a missing directory is [`io::ErrorKind::NotFound`].
    ///
    /// The directory path itself may go through symlinks: it is operator configuration (e.g. a
    /// data dir symlinked onto another disk). `O_NOFOLLOW` guards the names *inside* it.
    fn open_dir(&self, path: &Path, create: bool) -> io::Result<Arc<dyn DirHandle>>;
}

internals_pub! {
    /// An open directory; every name passed to it must be a single file name (no `/`, not `.`
    /// or `..`, not empty, no NUL), otherwise the call fails with [`io::ErrorKind::InvalidInput`].
    trait DirHandle: Send + Sync + fmt::Debug {
        /// The path the directory was opened with; for error messages only (the directory may have
        /// been moved since).
        fn path(&self) -> &Path;

        /// Creates a new file exclusively:
        /// `openat(dir, name, O_CREAT|O_EXCL|O_WRONLY|O_CLOEXEC|O_NOFOLLOW, mode)`.
        /// An existing name (of any kind, including a symlink) fails with `EEXIST`.
        fn create_new(&self, name: &str, mode: u32) -> io::Result<Box<dyn WritableFile>>;

        /// Renames without ever replacing: `renameat2(dir, from, dir, to, RENAME_NOREPLACE)`.
        /// An existing `to` fails with `EEXIST` and changes nothing. If the kernel or
        /// filesystem refuses the flag, the error satisfies [`is_noreplace_unsupported`]; the
        /// caller then falls back to [`hard_link`](Self::hard_link) +
        /// [`unlink`](Self::unlink).
        fn rename_noreplace(&self, from: &str, to: &str) -> io::Result<()>;

        /// Adds a second name for a file: `linkat(dir, from, dir, to, 0)` (a symlink `from` is
        /// linked itself, never followed). An existing `to` fails with `EEXIST`.
        fn hard_link(&self, from: &str, to: &str) -> io::Result<()>;

        /// Removes a name: `unlinkat(dir, name, 0)`.
        fn unlink(&self, name: &str) -> io::Result<()>;

        /// Makes the directory's entries durable: `fsync(dirfd)`.
        fn sync(&self) -> io::Result<()>;

        /// Lists the directory (without `.` and `..`), describing each entry without following
        /// symlinks. The order is unspecified.
        fn list(&self) -> io::Result<Vec<DirEntry>>;

        /// Reads a whole regular file into memory: `openat(O_RDONLY|O_NOFOLLOW|O_NONBLOCK|
        /// O_CLOEXEC)`, `fstat`, then `pread` until its size is read (an empty buffer for an empty
        /// file; one that shrank meanwhile is [`io::ErrorKind::UnexpectedEof`]). A symlink fails
        /// with `ELOOP`, a directory with `EISDIR`, any other non-regular file with a
        /// [`NotRegular`] error (kind [`io::ErrorKind::InvalidInput`], no OS code) that says
        /// what it is. For small files a test or tool wants whole; snapseal reads what it did
        /// not just write through [`Untrusted`], in bounded memory.
        fn open_read(&self, name: &str) -> io::Result<FileBytes>;

        /// Opens `name` for positional reads: `openat(O_RDONLY|O_NOFOLLOW|
        /// O_NONBLOCK|O_CLOEXEC)` relative to the directory, then `fstat` on the open fd, which
        /// must show a regular file (a symlink fails with `ELOOP`, a directory with `EISDIR`,
        /// anything else with a [`NotRegular`] error). Nothing is read.
        ///
        /// This is the primitive under [`Untrusted`], the one way snapseal opens a file it did not
        /// just write: reads are `pread`s, so a file another process truncates gives a short read
        /// (an error) instead of a `SIGBUS`.
        ///
        /// The default reads the whole file with [`open_read`](Self::open_read): right for an
        /// in-memory seam, where there is nothing to truncate.
        fn open_readable(&self, name: &str) -> io::Result<Box<dyn ReadableFile>> {
            Ok(Box::new(self.open_read(name)?))
        }

        /// Opens the subdirectory `name` of this directory without following a symlink
        /// (`openat(O_DIRECTORY|O_NOFOLLOW)`): a symlink fails with `ELOOP`, any
        /// other non-directory with `ENOTDIR`. With `create`, a missing one is made (`mkdirat`,
        /// mode `0o700`) and this directory fsynced so its entry survives a crash. Every call on
        /// the returned handle stays inside that directory, so a walk made of these calls never
        /// leaves the directory it started from.
        ///
        /// The default refuses with [`io::ErrorKind::Unsupported`].
        fn open_subdir(&self, name: &str, create: bool) -> io::Result<Arc<dyn DirHandle>> {
            let _ = (name, create);
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this filesystem seam has no subdirectories",
            ))
        }

        /// Takes an exclusive lock on the directory for as long as the returned guard lives.
        /// A lock held elsewhere (another process, or another lock of the same directory in this
        /// process) fails with [`io::ErrorKind::WouldBlock`].
        ///
        /// [`RealFs`] takes `flock(LOCK_EX|LOCK_NB)` on a fresh open of the directory itself,
        /// whose name nobody can unlink from under a running store, and then on `name` (created
        /// if missing, mode `0o600`, `O_NOFOLLOW`) too, so that older versions, which lock only
        /// the file, are kept out as well. Unlinking `name` therefore does not let a second
        /// store in.
        fn lock_exclusive(&self, name: &str) -> io::Result<Box<dyn DirLock>>;
    }
}

internals_pub! {
    /// A file opened for writing by [`DirHandle::create_new`].
    ///
    /// Dropping it without [`close`](Self::close) still closes it, but any close error is lost;
    /// the writer always closes explicitly.
    trait WritableFile: Send + fmt::Debug {
        /// Exactly one `write(2)`: it may write fewer bytes than given and may fail with `EINTR`;
        /// the caller loops.
        fn write(&mut self, buf: &[u8]) -> io::Result<usize>;

        /// Exactly one `pwrite(2)` at byte `offset`, leaving the file offset (where
        /// [`write`](Self::write) appends) where it was. Like `write` it may be short and may fail
        /// with `EINTR`; the caller loops. Writing past the end extends the file (the gap reads as
        /// zeros). The writer uses it once per spilled snapshot, to fill in the header of a file
        /// whose body was streamed first.
        ///
        /// The default refuses with [`io::ErrorKind::Unsupported`] (no system call made), so a
        /// seam implementation without it still works for in-memory bodies; both [`RealFs`] and
        /// `SimFs` implement it.
        fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
            let _ = (buf, offset);
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this filesystem seam does not implement write_at",
            ))
        }

        /// A hint, not a durability point: start writing `len` bytes from `offset` back to the
        /// device now (`sync_file_range(2)` with `SYNC_FILE_RANGE_WRITE`), so that the `fsync` at
        /// the end has less left to wait for while the caller is still producing bytes. Only
        /// [`sync`](Self::sync) makes anything durable. The default does nothing.
        fn start_writeback(&mut self, offset: u64, len: u64) -> io::Result<()> {
            let _ = (offset, len);
            Ok(())
        }

        /// `fsync(2)`. After a failure, never call it again on this file and never treat a later
        /// success as proof that the data is durable (the kernel may have dropped the dirty pages).
        fn sync(&mut self) -> io::Result<()>;

        /// `close(2)` with its error reported. The file is closed even when this fails; there is
        /// nothing to retry.
        fn close(self: Box<Self>) -> io::Result<()>;
    }
}

internals_pub! {
    /// A file opened for reading by [`DirHandle::open_readable`].
    trait ReadableFile: Send + Sync + fmt::Debug {
        /// Its size as `fstat` saw it when it was opened.
        fn size(&self) -> u64;

        /// Exactly one `pread(2)` at `offset`: it may read fewer bytes than asked, and reads 0 at
        /// or past the file's current end (which is before [`size`](Self::size) if the file
        /// shrank).
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    }
}

impl ReadableFile for FileBytes {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

internals_pub! {
    /// Guard of a lock taken by [`DirHandle::lock_exclusive`]; dropping it releases the lock.
    trait DirLock: Send + Sync + fmt::Debug {}
}

/// The payload of the [`io::Error`] for opening something that is not a regular file (a fifo,
/// socket or device): says what it is, since the bare `EINVAL` the check used to give reads as
/// "Invalid argument" and names nothing. Find it with [`io::Error::get_ref`] and
/// `downcast_ref`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotRegular {
    what: &'static str,
}

impl NotRegular {
    /// For a file of the kind `what` (`"fifo"`, `"socket"`, ...).
    pub fn new(what: &'static str) -> NotRegular {
        NotRegular { what }
    }

    /// What the file is instead of a regular file.
    pub fn what(&self) -> &'static str {
        self.what
    }
}

impl fmt::Display for NotRegular {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a regular file ({})", self.what)
    }
}

impl std::error::Error for NotRegular {}

internals_pub! {
    /// One directory entry, as returned by [`DirHandle::list`].
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct DirEntry {
        /// The entry's name (not necessarily UTF-8).
        pub name: OsString,
        /// What the name refers to, without following symlinks.
        pub kind: EntryKind,
        /// Size in bytes (for a symlink: the length of its target).
        pub len: u64,
    }
}

internals_pub! {
    /// The kind of a directory entry (as `lstat` sees it).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    enum EntryKind {
        /// A regular file.
        File,
        /// A directory.
        Dir,
        /// A symbolic link (never followed).
        Symlink,
        /// Anything else: fifo, socket, device.
        Other,
    }
}

/// True when `err` says `renameat2(RENAME_NOREPLACE)` is not available here (`EINVAL`,
/// `ENOSYS` or `EOPNOTSUPP`), so the caller should fall back to link + unlink. It is never
/// true for a refused overwrite (`EEXIST`).
pub fn is_noreplace_unsupported(err: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        err.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP)
    )
}
