//! [`RealFs`]: the seam over the real (Linux) filesystem, via `nix`.
//!
//! Every file operation is an `*at` call relative to the open directory fd, and every file
//! open carries `O_NOFOLLOW` and `O_CLOEXEC`. File descriptors are [`OwnedFd`]s so nothing
//! leaks on an error path; where a close error matters it is closed explicitly.

// `sync_file_range` needs `unsafe`; the block says why it holds.
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::fs::{File, TryLockError};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag};
use nix::libc;
use nix::sys::stat::{self, FileStat, Mode};
use nix::unistd::{self, UnlinkatFlags};

use super::name_check::check_name;
use super::{
    DirEntry, DirHandle, DirLock, EntryKind, FileBytes, FileSystem, NotRegular, ReadableFile,
    WritableFile,
};

/// The real filesystem. Stateless; cheap to copy.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl RealFs {
    /// The real filesystem.
    pub fn new() -> Self {
        RealFs
    }
}

impl FileSystem for RealFs {
    fn open_dir(&self, path: &Path, create: bool) -> io::Result<Arc<dyn DirHandle>> {
        if create {
            create_dir_all_durable(path)?;
        }
        // No O_NOFOLLOW here on purpose: see `FileSystem::open_dir`.
        let fd = fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Arc::new(RealDir {
            path: path.to_path_buf(),
            fd,
        }))
    }
}

/// Creates every missing directory of `path` (mode `0o700`), fsyncing each new directory's
/// parent so that its entry survives a crash.
fn create_dir_all_durable(path: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = path;
    loop {
        match std::fs::metadata(cur) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => return Err(Errno::ENOTDIR.into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(cur),
            Err(e) => return Err(e),
        }
        match cur.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => cur = parent,
            // Relative path: its base is the working directory, which exists.
            _ => break,
        }
    }
    for dir in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            // Someone else created it meanwhile; it is theirs to make durable.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let parent_fd = fcntl::open(
            parent,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        unistd::fsync(&parent_fd)?;
    }
    Ok(())
}

/// Fails unless `st` describes a regular file: `EISDIR` for a directory, a [`NotRegular`]
/// ([`io::ErrorKind::InvalidInput`]) naming what it is otherwise.
fn require_regular(st: &FileStat) -> io::Result<()> {
    let what = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => return Ok(()),
        libc::S_IFDIR => return Err(Errno::EISDIR.into()),
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        _ => "unknown file type",
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        NotRegular::new(what),
    ))
}

/// An open directory fd.
#[derive(Debug)]
struct RealDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl RealDir {
    /// `openat(O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK)` and `fstat`: the fd of a regular file
    /// and its size. O_NONBLOCK only matters for a planted fifo: without it the open would hang.
    fn open_regular(&self, name: &str) -> io::Result<(OwnedFd, u64)> {
        check_name(name)?;
        let fd = fcntl::openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        )?;
        let st = stat::fstat(&fd)?;
        require_regular(&st)?;
        let size = u64::try_from(st.st_size).map_err(|_| Errno::EOVERFLOW)?;
        Ok((fd, size))
    }
}

impl DirHandle for RealDir {
    fn path(&self) -> &Path {
        &self.path
    }

    fn create_new(&self, name: &str, mode: u32) -> io::Result<Box<dyn WritableFile>> {
        check_name(name)?;
        let fd = fcntl::openat(
            &self.fd,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(mode),
        )?;
        Ok(Box::new(RealFile { fd }))
    }

    fn rename_noreplace(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        rename_noreplace_at(self.fd.as_fd(), from, to)
    }

    fn hard_link(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        // Empty flags: no AT_SYMLINK_FOLLOW, so a symlink is linked itself, not its target.
        unistd::linkat(&self.fd, from, &self.fd, to, AtFlags::empty())?;
        Ok(())
    }

    fn unlink(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        unistd::unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir)?;
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        unistd::fsync(&self.fd)?;
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<DirEntry>> {
        // A fresh open of "." rather than a dup: a dup would share the directory offset with
        // our handle, so two concurrent listings would steal each other's entries.
        let mut dir = Dir::openat(
            &self.fd,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry?;
            let name = entry.file_name();
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let st = match stat::fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed between readdir and fstatat: it is no longer there to list.
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            let kind = match st.st_mode & libc::S_IFMT {
                libc::S_IFREG => EntryKind::File,
                libc::S_IFDIR => EntryKind::Dir,
                libc::S_IFLNK => EntryKind::Symlink,
                _ => EntryKind::Other,
            };
            out.push(DirEntry {
                name: OsStr::from_bytes(bytes).to_os_string(),
                kind,
                len: u64::try_from(st.st_size).unwrap_or(0),
            });
        }
        Ok(out)
    }

    fn open_read(&self, name: &str) -> io::Result<FileBytes> {
        let (fd, size) = self.open_regular(name)?;
        // Copied with `pread`, never mapped: a file another process truncates meanwhile is a
        // short read (`UnexpectedEof`), not a SIGBUS.
        let len = usize::try_from(size).map_err(|_| Errno::EFBIG)?;
        let mut all = Vec::new();
        all.try_reserve_exact(len)
            .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        all.resize(len, 0);
        read_exact_at(&fd, &mut all)?;
        Ok(FileBytes::from(all))
    }

    fn open_readable(&self, name: &str) -> io::Result<Box<dyn ReadableFile>> {
        let (fd, size) = self.open_regular(name)?;
        Ok(Box::new(RealReadable { fd, size }))
    }

    fn open_subdir(&self, name: &str, create: bool) -> io::Result<Arc<dyn DirHandle>> {
        check_name(name)?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match fcntl::openat(&self.fd, name, flags, Mode::empty()) {
            Err(Errno::ENOENT) if create => {
                match stat::mkdirat(&self.fd, name, Mode::from_bits_truncate(0o700)) {
                    // Someone else made it meanwhile: theirs to make durable.
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                // The new entry must survive a crash before anything is put inside it.
                unistd::fsync(&self.fd)?;
                fcntl::openat(&self.fd, name, flags, Mode::empty())?
            }
            // O_DIRECTORY|O_NOFOLLOW on a symlink gives ENOTDIR; say what it is.
            Err(Errno::ENOTDIR) => {
                let st = stat::fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
                return Err(if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    Errno::ELOOP
                } else {
                    Errno::ENOTDIR
                }
                .into());
            }
            other => other?,
        };
        Ok(Arc::new(RealDir {
            path: self.path.join(name),
            fd,
        }))
    }

    fn lock_exclusive(&self, name: &str) -> io::Result<Box<dyn DirLock>> {
        check_name(name)?;
        // The directory itself first: its name cannot be unlinked from under a running store,
        // unlike the lock file's. A fresh open, so the lock is on an open file description of
        // its own and closing it (on drop) releases it.
        let dir_fd = File::from(fcntl::openat(
            &self.fd,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?);
        try_flock(&dir_fd)?;
        // Read-only is enough for flock, and O_NONBLOCK keeps a planted fifo from hanging us.
        let fd = File::from(fcntl::openat(
            &self.fd,
            name,
            OFlag::O_RDONLY
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC
                | OFlag::O_NONBLOCK,
            Mode::from_bits_truncate(0o600),
        )?);
        require_regular(&stat::fstat(&fd)?)?;
        try_flock(&fd)?;
        Ok(Box::new(RealLock {
            path: self.path.join(name),
            _file_fd: fd,
            _dir_fd: dir_fd,
        }))
    }
}

/// `flock(fd, LOCK_EX|LOCK_NB)`, through std's [`File::try_lock`] (which is that call on
/// Linux, and flock needs no write access; `fs_real`'s lock test checks that a plain `flock`
/// from another open of the file conflicts with it). A lock held elsewhere is `EWOULDBLOCK`.
///
/// Not `nix::fcntl::Flock`: its Drop unlocks and panics if that fails, and it is not needed
/// at all, since closing our (only) fd of this open file description releases the lock. Nor
/// nix's plain `flock`, which is deprecated for `Flock`. `File::try_lock` keeps neither a
/// guard nor `unsafe`: the lock lives exactly as long as the `File`.
fn try_flock(file: &File) -> io::Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(Errno::EWOULDBLOCK.into()),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Fills `buf` from offset 0 of `fd` with `pread`, retrying `EINTR` and short reads. A file
/// that ends early (it shrank after `fstat`) is `UnexpectedEof`.
// Bytes past the end are not checked: a file that grew is read as long as it was.
fn read_exact_at(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let offset = libc::off_t::try_from(done).map_err(|_| Errno::EOVERFLOW)?;
        match nix::sys::uio::pread(fd, &mut buf[done..], offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than its size when opened",
                ))
            }
            Ok(n) => done += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rename_noreplace_at(dir: BorrowedFd<'_>, from: &str, to: &str) -> io::Result<()> {
    fcntl::renameat2(dir, from, dir, to, fcntl::RenameFlags::RENAME_NOREPLACE)?;
    Ok(())
}

/// Without `renameat2` there is no non-replacing rename; report it as unsupported so the
/// caller takes the link + unlink fallback (never an overwriting rename).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn rename_noreplace_at(_dir: BorrowedFd<'_>, _from: &str, _to: &str) -> io::Result<()> {
    Err(Errno::ENOSYS.into())
}

/// A regular file open for `pread`s; closed on drop (a read-only fd's close error says
/// nothing about data).
#[derive(Debug)]
struct RealReadable {
    fd: OwnedFd,
    size: u64,
}

impl ReadableFile for RealReadable {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let offset = libc::off_t::try_from(offset).map_err(|_| Errno::EOVERFLOW)?;
        Ok(nix::sys::uio::pread(&self.fd, buf, offset)?)
    }
}

/// A file open for writing. Dropping it closes the fd (via [`OwnedFd`]), ignoring errors.
#[derive(Debug)]
struct RealFile {
    fd: OwnedFd,
}

impl WritableFile for RealFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(unistd::write(&self.fd, buf)?)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let offset = libc::off_t::try_from(offset).map_err(|_| Errno::EFBIG)?;
        Ok(nix::sys::uio::pwrite(&self.fd, buf, offset)?)
    }

    fn start_writeback(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "writeback range beyond i64",
            ));
        };
        // SAFETY: a plain syscall on an fd this handle owns; no memory is passed.
        let rc = unsafe {
            nix::libc::sync_file_range(
                self.fd.as_raw_fd(),
                offset,
                len,
                nix::libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        nix::errno::Errno::result(rc)?;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        unistd::fsync(&self.fd)?;
        Ok(())
    }

    fn close(self: Box<Self>) -> io::Result<()> {
        // On Linux the fd is released even when close reports an error (EINTR included), so
        // the error is returned and never retried.
        unistd::close(self.fd)?;
        Ok(())
    }
}

/// Holds the directory and the lock file open; each `flock` goes away when its fd is closed
/// on drop (the file's first, declared first).
struct RealLock {
    /// Which lock this is, for `Debug`.
    path: PathBuf,
    _file_fd: File,
    _dir_fd: File,
}

impl std::fmt::Debug for RealLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealLock")
            .field("path", &self.path)
            .finish()
    }
}

impl DirLock for RealLock {}
