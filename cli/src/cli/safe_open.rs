//! Opening the files the command reads besides snapshots (`node.pub`, `--key` files,
//! `--config`, `committed.log`) as if someone hostile had put them there.
//!
//! The rule, the same for every such file:
//!
//! - **No symbolic link is followed** on the last component: the open uses `O_NOFOLLOW`, and
//!   a link is refused with "is a symbolic link". A file in the snapshot directory
//!   (`node.pub`, `committed.log`) is opened relative to the directory's fd, so the name is
//!   looked up in that directory and nowhere else; a path the user gave (`--key`, `--config`)
//!   may go through linked directories, but its last component must not be a link.
//! - **The open never blocks** (`O_NONBLOCK`, so a FIFO cannot hang it) and the fd is not
//!   inherited (`O_CLOEXEC`).
//! - **It must be a regular file**, checked with `fstat` on the open fd (no race with a
//!   rename): a FIFO, socket, device or directory is refused, naming what it is.
//! - **Its size is capped before anything is read** ([`Limit`]), and at most cap + 1 bytes are
//!   read, so a file that grows while being read is caught too. A writer clears `O_NONBLOCK`
//!   again once the checks pass.
//!
//! Every error names the file and what is wrong with it.

// nix 0.29's `open`/`openat` return raw fds; owning them needs `unsafe` (each block says why).
#![allow(unsafe_code)]

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::fcntl::{fcntl, openat, FcntlArg, OFlag};
use nix::sys::stat::Mode;

use crate::cli::output;

/// The most the command reads from one kind of file, and what to call that kind in errors.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limit {
    /// "key file", "config file", ...
    pub what: &'static str,
    /// Largest accepted size in bytes.
    pub max_bytes: u64,
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

/// How to open a file in the snapshot directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    /// Read only; a missing file is `None`.
    Read,
    /// Read and append, created (mode 0644) when missing.
    ReadAppendCreate,
}

/// Checks the subdirectory `name` of `dir` (the demo's `ledger/`) before it is opened: it
/// must be a directory, not a symbolic link to one nor anything else. `false` when missing.
/// The files inside are then opened by the ledger with the same rule (no link followed,
/// regular files only, size capped before reading).
pub(super) fn check_subdir(dir: &Path, name: &str) -> anyhow::Result<bool> {
    let path = dir.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            anyhow::bail!("{}: is a symbolic link; refused", path.display())
        }
        Ok(meta) if !meta.is_dir() => {
            anyhow::bail!("{}: is not a directory; refused", path.display())
        }
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("checking {}", path.display())),
    }
}

/// Reads `path` (a path the user gave) under the rule in the module docs.
pub(super) fn read_path(path: &Path, limit: Limit) -> anyhow::Result<Vec<u8>> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::open(path, flags, Mode::empty())
        .map_err(|e| refused(path, e, limit))
        // SAFETY: `open` just returned this fd and nothing else owns it.
        .map(|raw| unsafe { OwnedFd::from_raw_fd(raw) })?;
    let mut file = File::from(fd);
    let len = check_regular(&file, path, limit)?;
    read_capped(&mut file, len, path, limit)
}

/// Reads `name` in the directory `dir` (relative to the directory's fd) under the rule in
/// the module docs; `None` when there is no such file.
pub(super) fn read_in_dir(dir: &Path, name: &str, limit: Limit) -> anyhow::Result<Option<Vec<u8>>> {
    let path = dir.join(name);
    match open_in_dir(dir, name, Access::Read, limit)? {
        Some((mut file, len)) => read_capped(&mut file, len, &path, limit).map(Some),
        None => Ok(None),
    }
}

/// Opens `name` in `dir` relative to the directory's fd, checked as the module docs say;
/// returns the file and its size (`None`: missing, only with [`Access::Read`]). With
/// [`Access::ReadAppendCreate`] the returned file is blocking again, ready to append.
pub(super) fn open_in_dir(
    dir: &Path,
    name: &str,
    access: Access,
    limit: Limit,
) -> anyhow::Result<Option<(File, u64)>> {
    let path = dir.join(name);
    let dir_fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening directory {}", dir.display()))
    // SAFETY: `open` just returned this fd and nothing else owns it.
    .map(|raw| unsafe { OwnedFd::from_raw_fd(raw) })?;
    let base = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let (flags, mode) = match access {
        Access::Read => (base | OFlag::O_RDONLY, Mode::empty()),
        Access::ReadAppendCreate => (
            base | OFlag::O_RDWR | OFlag::O_APPEND | OFlag::O_CREAT,
            Mode::from_bits_truncate(0o644),
        ),
    };
    let raw = match openat(Some(dir_fd.as_raw_fd()), name, flags, mode) {
        Ok(raw) => raw,
        Err(Errno::ENOENT) if access == Access::Read => return Ok(None),
        Err(e) => return Err(refused(&path, e, limit)),
    };
    // SAFETY: `openat` just returned this fd and nothing else owns it.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
    let len = check_regular(&file, &path, limit)?;
    if access == Access::ReadAppendCreate {
        // A regular file never blocks anyway; clear the flag so the writes are plain ones.
        fcntl(file.as_raw_fd(), FcntlArg::F_GETFL)
            .map(|bits| OFlag::from_bits_truncate(bits) - OFlag::O_NONBLOCK)
            .and_then(|flags| fcntl(file.as_raw_fd(), FcntlArg::F_SETFL(flags)))
            .with_context(|| format!("clearing O_NONBLOCK on {}", path.display()))?;
    }
    Ok(Some((file, len)))
}

/// The error for a failed open: what the errno means under our flags.
fn refused(path: &Path, e: Errno, limit: Limit) -> anyhow::Error {
    match e {
        // O_NOFOLLOW on a link gives ELOOP (EMLINK on some BSDs).
        Errno::ELOOP | Errno::EMLINK => anyhow::anyhow!(
            "{} {} is a symbolic link; links are not followed (give the target's path)",
            limit.what,
            path.display()
        ),
        Errno::EISDIR => anyhow::anyhow!(
            "{} {} is a directory, not a regular file",
            limit.what,
            path.display()
        ),
        e => anyhow::Error::new(std::io::Error::from(e)).context(format!(
            "opening {} {}",
            limit.what,
            path.display()
        )),
    }
}

/// `fstat` on the open file: it must be a regular file within `limit`; returns its size.
fn check_regular(file: &File, path: &Path, limit: Limit) -> anyhow::Result<u64> {
    let meta = file
        .metadata()
        .with_context(|| format!("fstat of {} {}", limit.what, path.display()))?;
    let kind = meta.file_type();
    let not_regular = if kind.is_fifo() {
        Some("a FIFO")
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
    if let Some(what) = not_regular {
        bail!(
            "{} {} is {what}, not a regular file",
            limit.what,
            path.display()
        );
    }
    if meta.len() > limit.max_bytes {
        bail!(
            "{} {} is {}, over the {} limit for a {}",
            limit.what,
            path.display(),
            output::bytes(meta.len()),
            output::bytes(limit.max_bytes),
            limit.what
        );
    }
    Ok(meta.len())
}

/// Reads at most `limit.max_bytes + 1` bytes: one more than the cap means it grew.
fn read_capped(file: &mut File, len: u64, path: &Path, limit: Limit) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limit.max_bytes + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {} {}", limit.what, path.display()))?;
    if bytes.len() as u64 > limit.max_bytes {
        bail!(
            "{} {} grew past the {} limit for a {} while being read",
            limit.what,
            path.display(),
            output::bytes(limit.max_bytes),
            limit.what
        );
    }
    Ok(bytes)
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
            ("fifo", "is a FIFO, not a regular file"),
            ("sub", "is a directory, not a regular file"),
            ("big", "over the 64 KiB limit for a key file"),
        ] {
            for e in [
                read_path(&d.join(name), KEY_FILE).unwrap_err(),
                read_in_dir(d, name, KEY_FILE).unwrap_err(),
            ] {
                let e = format!("{e:#}");
                assert!(e.contains(why) && e.contains(name), "{name}: {e}");
            }
        }
        for name in ["link", "fifo"] {
            let e = open_in_dir(d, name, Access::ReadAppendCreate, COMMITTED_LOG).unwrap_err();
            assert!(format!("{e:#}").contains(name), "{e:#}");
        }
        assert_eq!(std::fs::read(d.join("target")).unwrap(), b"secret");
    }
}
