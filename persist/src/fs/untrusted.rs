//! [`Untrusted`]: the one way snapseal opens and reads a file it did not just write.
//!
//! Every file a command or a library call reads — a snapshot directory's `node.pub`, a ledger
//! chunk, an archive, a manifest, an object of a `file://` remote, its index, a `--key` or
//! `--config` file — may have been put there by someone hostile, or damaged by a flaky disk.
//! Every crate opens such files here, under one rule:
//!
//! 1. **Relative to an open directory** ([`Untrusted::open_in`]), so the name is looked up in
//!    that directory and nowhere else; a path a user typed ([`Untrusted::open_path`]) may go
//!    through linked directories (operator configuration), but its last component may not.
//! 2. **No symbolic link is followed** (`O_NOFOLLOW`), and **the open never blocks**
//!    (`O_NONBLOCK`, so a FIFO cannot hang it); the fd is not inherited (`O_CLOEXEC`).
//! 3. **Regular files only**, checked with `fstat` on the open fd (no race with a rename):
//!    a FIFO, socket, device or directory is refused, naming what it is.
//! 4. **The size is capped before anything is read** ([`Expect::max_bytes`]): a 4 GiB sparse
//!    file costs one `fstat`, not 4 GiB of memory.
//! 5. **The magic is checked after a small read** ([`Expect::magic`]), before the caller reads
//!    anything else.
//! 6. **Reads are `pread`s, never a map**: a file truncated by another process while it is
//!    read gives [`UntrustedError::Truncated`], not a `SIGBUS` that kills the process.
//! 7. **The verdict cannot be ignored**: the only way to the bytes is through an
//!    [`Untrusted`] value, which exists only once checks 1–5 passed, and every read returns a
//!    `Result` marked `#[must_use]`.
//!
//! Opening does not make the bytes trustworthy: what they *say* must still be verified (a
//! snapshot's receipt, a chunk's signature, an object's digest) before anything acts on it.
//! This module only guarantees that looking at them is safe.
//!
//! ```
//! use snapseal_persist::fs::{FileSystem, RealFs};
//! use snapseal_persist::internals::fs::{Expect, Untrusted};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! std::fs::write(tmp.path().join("chunk"), b"MAGIC123 and the rest")?;
//! let dir = RealFs.open_dir(tmp.path(), false)?;
//! let expect = Expect::new("ledger chunk", 1 << 20).with_magic(b"MAGIC123");
//! let file = Untrusted::open_in(&*dir, "chunk", expect)?.expect("it exists");
//! assert_eq!(file.len(), 21);
//! assert_eq!(file.read_all()?, b"MAGIC123 and the rest");
//!
//! std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("link"))?;
//! let err = Untrusted::open_in(&*dir, "link", expect).unwrap_err();
//! assert!(err.to_string().contains("is a symbolic link"));
//! # Ok(())
//! # }
//! ```

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use thiserror::Error;

use super::{DirHandle, FileSystem, NotRegular, ReadableFile, RealFs};
use crate::escape::Escaped;

/// What a caller expects of a file: what to call it in messages, the largest size it accepts
/// and the bytes it must start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    /// What the file is, for messages: `"ledger chunk"`, `"key file"`, `"remote index"`.
    pub what: &'static str,
    /// Largest accepted size in bytes; a larger file is refused before anything is read.
    pub max_bytes: u64,
    /// The bytes the file must start with (empty: no magic).
    pub magic: &'static [u8],
}

impl Expect {
    /// A file called `what`, at most `max_bytes` long, with no magic.
    pub const fn new(what: &'static str, max_bytes: u64) -> Expect {
        Expect {
            what,
            max_bytes,
            magic: &[],
        }
    }

    /// The same, but the file must start with `magic`.
    pub const fn with_magic(self, magic: &'static [u8]) -> Expect {
        Expect { magic, ..self }
    }
}

/// Why a file was refused or could not be read. Every variant names the file (escaped) and
/// what it was expected to be.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UntrustedError {
    /// The name is a symbolic link; links are never followed.
    #[error("{what} {}: is a symbolic link; links are not followed", Escaped::path(.path))]
    Symlink {
        /// What the file was expected to be.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The name is not a regular file.
    #[error("{what} {}: is {kind}, not a regular file", Escaped::path(.path))]
    NotRegular {
        /// What the file was expected to be.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What it is instead: `"a directory"`, `"a fifo"`, ...
        kind: &'static str,
    },
    /// The file is larger than the caller accepts.
    #[error("{what} {}: {len} bytes, over the limit of {max} bytes", Escaped::path(.path))]
    TooLarge {
        /// What the file was expected to be.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The file does not start with the expected magic (or is shorter than it).
    #[error("{what} {}: does not start with the {what} magic", Escaped::path(.path))]
    BadMagic {
        /// What the file was expected to be.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The file ended before the size it had when opened: someone truncated it meanwhile.
    #[error(
        "{what} {}: truncated while being read (ends at byte {at}, was {len} bytes when opened)",
        Escaped::path(.path)
    )]
    Truncated {
        /// What the file was expected to be.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its size when opened.
        len: u64,
        /// Where it ended.
        at: u64,
    },
    /// A system call failed.
    #[error("{what} {}: {step}", Escaped::path(.path))]
    Io {
        /// What the file was expected to be.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The call: `"open"`, `"opening the directory"`, `"read"`.
        step: &'static str,
        /// The error, with its errno.
        #[source]
        source: io::Error,
    },
}

impl UntrustedError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            UntrustedError::Symlink { path, .. }
            | UntrustedError::NotRegular { path, .. }
            | UntrustedError::TooLarge { path, .. }
            | UntrustedError::BadMagic { path, .. }
            | UntrustedError::Truncated { path, .. }
            | UntrustedError::Io { path, .. } => path,
        }
    }

    /// True when the file is missing (only from [`Untrusted::open_path`]; `open_in` returns
    /// `None` instead).
    pub fn is_not_found(&self) -> bool {
        matches!(self, UntrustedError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// Maps a failed open to the variant that says what the name is.
    fn from_open(what: &'static str, path: PathBuf, e: io::Error) -> UntrustedError {
        if let Some(nr) = e.get_ref().and_then(|r| r.downcast_ref::<NotRegular>()) {
            let kind = match nr.what() {
                "fifo" => "a fifo",
                "socket" => "a socket",
                "character device" => "a character device",
                "block device" => "a block device",
                _ => "not a plain file",
            };
            return UntrustedError::NotRegular { what, path, kind };
        }
        match e.raw_os_error().map(Errno::from_raw) {
            // O_NOFOLLOW on a link gives ELOOP (EMLINK on some BSDs).
            Some(Errno::ELOOP | Errno::EMLINK) => UntrustedError::Symlink { what, path },
            Some(Errno::EISDIR) => UntrustedError::NotRegular {
                what,
                path,
                kind: "a directory",
            },
            _ => UntrustedError::Io {
                what,
                path,
                step: "open",
                source: e,
            },
        }
    }
}

/// A file opened under the module's rule: a regular file, within its size cap, starting with
/// its magic. Its bytes are read with `pread` only.
#[must_use = "an opened file is only useful once read"]
#[derive(Debug)]
pub struct Untrusted {
    file: Box<dyn ReadableFile>,
    path: PathBuf,
    what: &'static str,
    len: u64,
}

impl Untrusted {
    /// Opens `name` in `dir` (a single file name, looked up relative to the directory's fd) and
    /// checks it against `expect`. `Ok(None)` when there is no such file.
    pub fn open_in(
        dir: &dyn DirHandle,
        name: &str,
        expect: Expect,
    ) -> Result<Option<Untrusted>, UntrustedError> {
        let path = dir.path().join(name);
        match dir.open_readable(name) {
            Ok(file) => Untrusted::check(file, path, expect).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(UntrustedError::from_open(expect.what, path, e)),
        }
    }

    /// Opens the file at `path`, a path a user gave: its directory is opened as given (it may
    /// go through symlinked directories), its last component under the module's rule. A
    /// missing file is an error ([`UntrustedError::is_not_found`]).
    pub fn open_path(path: &Path, expect: Expect) -> Result<Untrusted, UntrustedError> {
        let io = |step, source| UntrustedError::Io {
            what: expect.what,
            path: path.to_path_buf(),
            step,
            source,
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|_| !path.as_os_str().as_encoded_bytes().ends_with(b"/"))
            .ok_or_else(|| {
                io(
                    "open",
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "not a path to a file (no UTF-8 file name at its end)",
                    ),
                )
            })?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = RealFs
            .open_dir(parent, false)
            .map_err(|e| io("opening the directory", e))?;
        match dir.open_readable(name) {
            Ok(file) => Untrusted::check(file, path.to_path_buf(), expect),
            Err(e) => Err(UntrustedError::from_open(
                expect.what,
                path.to_path_buf(),
                e,
            )),
        }
    }

    fn check(
        file: Box<dyn ReadableFile>,
        path: PathBuf,
        expect: Expect,
    ) -> Result<Untrusted, UntrustedError> {
        let len = file.size();
        if len > expect.max_bytes {
            return Err(UntrustedError::TooLarge {
                what: expect.what,
                path,
                len,
                max: expect.max_bytes,
            });
        }
        let opened = Untrusted {
            file,
            path,
            what: expect.what,
            len,
        };
        if !expect.magic.is_empty() {
            let bad = || UntrustedError::BadMagic {
                what: expect.what,
                path: opened.path.clone(),
            };
            if len < expect.magic.len() as u64 {
                return Err(bad());
            }
            let mut head = vec![0u8; expect.magic.len()];
            opened.read_exact_at(0, &mut head)?;
            if head != expect.magic {
                return Err(bad());
            }
        }
        Ok(opened)
    }

    /// Its size when it was opened (at most the cap).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file's path, for messages (print it with [`Escaped::path`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the file was opened as.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Fills `buf` from byte `offset` (`pread`, short reads and `EINTR` retried). A file that
    /// ends early is [`UntrustedError::Truncated`]. Reading past the size it had when opened is
    /// refused the same way: what lies beyond was never checked against the cap.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), UntrustedError> {
        let end = offset.saturating_add(buf.len() as u64);
        if end > self.len {
            return Err(self.truncated(self.len));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            match self.file.read_at(&mut buf[done..], at) {
                Ok(0) => return Err(self.truncated(at)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(self.io("read", source)),
            }
        }
        Ok(())
    }

    /// The bytes `offset..offset + len`.
    pub fn read_range(&self, offset: u64, len: usize) -> Result<Vec<u8>, UntrustedError> {
        let mut buf = Vec::new();
        buf.try_reserve_exact(len)
            .map_err(|_| self.io("read", io::Error::from(io::ErrorKind::OutOfMemory)))?;
        buf.resize(len, 0);
        self.read_exact_at(offset, &mut buf)?;
        Ok(buf)
    }

    /// The whole file (its size when opened, which is within the cap).
    pub fn read_all(&self) -> Result<Vec<u8>, UntrustedError> {
        let len = usize::try_from(self.len)
            .map_err(|_| self.io("read", io::Error::from(io::ErrorKind::OutOfMemory)))?;
        self.read_range(0, len)
    }

    /// A sequential reader over the whole file (from byte 0 to its size when opened), for
    /// streaming through a hasher or a decoder in bounded memory. A file truncated meanwhile
    /// fails the read with an [`io::Error`] whose inner error is the [`UntrustedError`].
    pub fn reader(&self) -> UntrustedReader<'_> {
        UntrustedReader { file: self, pos: 0 }
    }

    fn truncated(&self, at: u64) -> UntrustedError {
        UntrustedError::Truncated {
            what: self.what,
            path: self.path.clone(),
            len: self.len,
            at,
        }
    }

    fn io(&self, step: &'static str, source: io::Error) -> UntrustedError {
        UntrustedError::Io {
            what: self.what,
            path: self.path.clone(),
            step,
            source,
        }
    }
}

/// Reads an [`Untrusted`] file from start to end with `pread`; see [`Untrusted::reader`].
#[derive(Debug)]
pub struct UntrustedReader<'a> {
    file: &'a Untrusted,
    pos: u64,
}

impl UntrustedReader<'_> {
    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl Read for UntrustedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.file.len - self.pos;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        loop {
            match self.file.file.read_at(&mut buf[..want], self.pos) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        self.file.truncated(self.pos),
                    ))
                }
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
