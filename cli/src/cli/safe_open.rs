//! The files the command reads besides snapshots (`node.pub`, `--key` files, `--config`,
//! `committed.log`), opened as if someone hostile had put them there: through persist's one
//! hardened path, [`Untrusted`] (relative to the directory's fd, no symbolic link followed,
//! `O_NONBLOCK` so a FIFO cannot hang the open, regular files only by `fstat`, size capped
//! before anything is read, `pread`, never a map). This module only names the files and their
//! caps ([`Limit`]) and turns the results into the command's errors.
//!
//! Two things `Untrusted` does not do live here as well, under the same rule and with the same
//! messages ([`UntrustedError`]): opening a subdirectory ([`open_subdir`], by the directory's
//! fd, so what is checked is what is used) and opening `committed.log` to append
//! ([`open_append`]: the workspace's one append-open; persist's seam has no such call, since
//! the library only ever creates files new and renames them into place).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::{fcntl, openat, FcntlArg, OFlag};
use nix::sys::stat::Mode;
use snapseal::persist::fs::{FileSystem, RealFs};
use snapseal::persist::internals::fs::{DirHandle, Expect, Untrusted, UntrustedError};

use crate::cli::output::Escaped;

/// The most the command reads from one kind of file, and what to call that kind in errors.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limit {
    /// "key file", "config file", ...
    pub what: &'static str,
    /// Largest accepted size in bytes.
    pub max_bytes: u64,
}

impl Limit {
    /// What [`Untrusted`] checks for this kind of file.
    pub(super) const fn expect(self) -> Expect {
        Expect::new(self.what, self.max_bytes)
    }
}

/// A key file (`node.pub`, `--key`): a few 65-byte lines; 64 KiB is about a thousand keys.
pub(super) const KEY_FILE: Limit = Limit {
    what: "key file",
    max_bytes: 64 << 10,
};

/// A `--config` file: a handful of keys.
pub(super) const CONFIG_FILE: Limit = Limit {
    what: "config file",
    max_bytes: 1 << 20,
};

/// `committed.log`: about 150 bytes a line, so 64 MiB is over 400 000 acknowledged commits.
pub(super) const COMMITTED_LOG: Limit = Limit {
    what: "committed log",
    max_bytes: 64 << 20,
};

/// Opens the existing directory `dir` (a path the user gave or derived from one) for reading:
/// files in it are only ever read with `pread`, never mapped.
pub(super) fn open_dir(dir: &Path) -> anyhow::Result<Arc<dyn DirHandle>> {
    RealFs::new()
        .open_dir(dir, false)
        .with_context(|| format!("opening directory {}", Escaped::path(dir)))
}

/// Reads `path` (a path the user gave: its last component may not be a link).
pub(super) fn read_path(path: &Path, limit: Limit) -> anyhow::Result<Vec<u8>> {
    Ok(Untrusted::open_path(path, limit.expect())?.read_all()?)
}

/// Reads `name` in the open directory `dir`; `None` when there is no such file.
pub(super) fn read_in(
    dir: &dyn DirHandle,
    name: &str,
    limit: Limit,
) -> anyhow::Result<Option<Vec<u8>>> {
    match Untrusted::open_in(dir, name, limit.expect())? {
        Some(file) => Ok(Some(file.read_all()?)),
        None => Ok(None),
    }
}

/// Reads `name` in the directory at `dir`; `None` when there is no such file.
pub(super) fn read_in_dir(dir: &Path, name: &str, limit: Limit) -> anyhow::Result<Option<Vec<u8>>> {
    read_in(&*open_dir(dir)?, name, limit)
}

/// Opens the subdirectory `name` of `dir` by the directory's fd, never through a symbolic link
/// (the demo's `ledger/`): `None` when it does not exist; a link or anything but a directory is
/// refused by name. The handle is what the caller must go on with: every call on it stays
/// inside that directory, so nothing can swap it between a check and a use.
pub(super) fn open_subdir(
    dir: &dyn DirHandle,
    name: &str,
) -> anyhow::Result<Option<Arc<dyn DirHandle>>> {
    let path = dir.path().join(name);
    match dir.open_subdir(name, false) {
        Ok(sub) => Ok(Some(sub)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(match e.raw_os_error().map(Errno::from_raw) {
            Some(Errno::ELOOP) => {
                anyhow::anyhow!("{}: is a symbolic link; refused", Escaped::path(&path))
            }
            Some(Errno::ENOTDIR) => {
                anyhow::anyhow!("{}: is not a directory; refused", Escaped::path(&path))
            }
            _ => anyhow::Error::new(e).context(format!("opening {}", Escaped::path(&path))),
        }),
    }
}

/// Whether the subdirectory `name` of `dir` exists, checked as [`open_subdir`] does.
///
/// Kept for callers that still open the subdirectory by its path afterwards; such a caller
/// should keep the handle [`open_subdir`] returns instead, so the directory it checked is the
/// one it uses.
pub(super) fn check_subdir(dir: &Path, name: &str) -> anyhow::Result<bool> {
    Ok(open_subdir(&*open_dir(dir)?, name)?.is_some())
}

/// Opens `name` in `dir` to read it and append to it, creating it (mode 0644) when missing,
/// under the rule of [`Untrusted`] (relative to the directory's fd, no link followed, never
/// blocking, a regular file within `limit` by `fstat`); reads it whole (a file that grows past
/// `limit.max_bytes` while read is refused) and returns the file, positioned to append, and
/// its bytes. One fd for the read and the appends, so what was read is what is appended to.
pub(super) fn open_append(dir: &Path, name: &str, limit: Limit) -> anyhow::Result<(File, Vec<u8>)> {
    let dir_fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening directory {}", Escaped::path(dir)))?;
    let path = dir.join(name);
    let flags = OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC
        | OFlag::O_RDWR
        | OFlag::O_APPEND
        | OFlag::O_CREAT;
    let mut file = File::from(
        openat(&dir_fd, name, flags, Mode::from_bits_truncate(0o644))
            .map_err(|e| refused(limit, path.clone(), e))?,
    );
    let len = check_regular(&file, limit, &path)?;
    // A regular file never blocks anyway; clear the flag so the writes are plain ones.
    fcntl(&file, FcntlArg::F_GETFL)
        .map(|bits| OFlag::from_bits_truncate(bits) - OFlag::O_NONBLOCK)
        .and_then(|flags| fcntl(&file, FcntlArg::F_SETFL(flags)))
        .with_context(|| format!("clearing O_NONBLOCK on {}", Escaped::path(&path)))?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    (&mut file)
        .take(limit.max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| UntrustedError::Io {
            what: limit.what,
            path: path.clone(),
            step: "read",
            source,
        })?;
    if bytes.len() as u64 > limit.max_bytes {
        return Err(UntrustedError::TooLarge {
            what: limit.what,
            path,
            len: bytes.len() as u64,
            max: limit.max_bytes,
        }
        .into());
    }
    Ok((file, bytes))
}

/// The error for a failed open, in [`Untrusted`]'s words.
fn refused(limit: Limit, path: PathBuf, e: Errno) -> UntrustedError {
    match e {
        // O_NOFOLLOW on a link gives ELOOP (EMLINK on some BSDs).
        Errno::ELOOP | Errno::EMLINK => UntrustedError::Symlink {
            what: limit.what,
            path,
        },
        Errno::EISDIR => UntrustedError::NotRegular {
            what: limit.what,
            path,
            kind: "a directory",
        },
        e => UntrustedError::Io {
            what: limit.what,
            path,
            step: "open",
            source: e.into(),
        },
    }
}

/// `fstat` on the open file: a regular file within `limit`; returns its size.
fn check_regular(file: &File, limit: Limit, path: &Path) -> Result<u64, UntrustedError> {
    let meta = file.metadata().map_err(|source| UntrustedError::Io {
        what: limit.what,
        path: path.to_path_buf(),
        step: "fstat",
        source,
    })?;
    let kind = meta.file_type();
    let not_regular = if kind.is_fifo() {
        Some("a fifo")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_dir() {
        Some("a directory")
    } else if !kind.is_file() {
        Some("not a plain file")
    } else {
        None
    };
    if let Some(kind) = not_regular {
        return Err(UntrustedError::NotRegular {
            what: limit.what,
            path: path.to_path_buf(),
            kind,
        });
    }
    if meta.len() > limit.max_bytes {
        return Err(UntrustedError::TooLarge {
            what: limit.what,
            path: path.to_path_buf(),
            len: meta.len(),
            max: limit.max_bytes,
        });
    }
    Ok(meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_within_the_limit_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("k"), b"abc").unwrap();
        assert_eq!(read_path(&tmp.path().join("k"), KEY_FILE).unwrap(), b"abc");
        assert_eq!(
            read_in_dir(tmp.path(), "k", KEY_FILE).unwrap().unwrap(),
            b"abc"
        );
        assert!(read_in_dir(tmp.path(), "missing", KEY_FILE)
            .unwrap()
            .is_none());
    }

    #[test]
    fn links_fifos_directories_and_big_files_are_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("target"), b"secret").unwrap();
        std::os::unix::fs::symlink(d.join("target"), d.join("link")).unwrap();
        nix::unistd::mkfifo(&d.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::File::create(d.join("big"))
            .unwrap()
            .set_len(KEY_FILE.max_bytes + 1)
            .unwrap();
        for (name, why) in [
            ("link", "is a symbolic link"),
            ("fifo", "is a fifo, not a regular file"),
            ("sub", "is a directory, not a regular file"),
            ("big", "65537 bytes, over the limit of 65536 bytes"),
        ] {
            for e in [
                read_path(&d.join(name), KEY_FILE).unwrap_err(),
                read_in_dir(d, name, KEY_FILE).unwrap_err(),
            ] {
                let e = format!("{e:#}");
                assert!(e.contains(why) && e.contains(name), "{name}: {e}");
            }
        }
        for (name, why) in [
            ("link", "is a symbolic link"),
            ("fifo", "is a fifo, not a regular file"),
            ("sub", "is a directory, not a regular file"),
        ] {
            let e = format!("{:#}", open_append(d, name, COMMITTED_LOG).unwrap_err());
            assert!(e.contains(why) && e.contains(name), "{name}: {e}");
        }
        assert_eq!(std::fs::read(d.join("target")).unwrap(), b"secret");
    }

    #[test]
    fn a_subdirectory_is_opened_by_fd_and_a_link_or_file_in_its_place_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir(d.join("ledger")).unwrap();
        std::fs::write(d.join("ledger").join("inside"), b"x").unwrap();
        std::os::unix::fs::symlink(d.join("ledger"), d.join("linked")).unwrap();
        std::fs::write(d.join("plain"), b"x").unwrap();
        let dir = open_dir(d).unwrap();
        let sub = open_subdir(&*dir, "ledger").unwrap().unwrap();
        // The handle is the directory itself: renaming it away does not change what it reads.
        std::fs::rename(d.join("ledger"), d.join("moved")).unwrap();
        std::fs::create_dir(d.join("ledger")).unwrap();
        assert_eq!(read_in(&*sub, "inside", KEY_FILE).unwrap().unwrap(), b"x");
        assert!(open_subdir(&*dir, "missing").unwrap().is_none());
        for (name, why) in [
            ("linked", "is a symbolic link; refused"),
            ("plain", "is not a directory; refused"),
        ] {
            let e = format!("{:#}", open_subdir(&*dir, name).unwrap_err());
            assert!(e.contains(why) && e.contains(name), "{e}");
            let e = format!("{:#}", check_subdir(d, name).unwrap_err());
            assert!(e.contains(why), "{e}");
        }
    }
}
