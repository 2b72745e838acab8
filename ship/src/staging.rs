//! Staging files that interrupted uploads leave on a `file://` remote.
//!
//! [`LocalStore`](crate::LocalStore) writes every upload into `<object>#<digits>` and renames
//! it into place when it completes; a shipper killed in between leaves that file behind. Such
//! names are never listed as objects, so remote gc finds them on the filesystem itself. Everything there is treated as hostile: only real directories
//! (named like a node) and regular files are looked at, never through a symlink, and only
//! names of the exact form `<snapseal object name>#<digits>` are candidates, each resolved
//! relative to its directory's fd. A file younger than the given age is left alone: it may
//! belong to an upload still running.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::libc;
use nix::sys::stat::{self, Mode};
use nix::unistd::{self, UnlinkatFlags};

use snapseal_persist::SnapshotName;

use crate::remote::INDEX_OBJECT;
use crate::shipper::valid_node_name;

/// A staging file an interrupted upload left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaleUpload {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// How long since it was last written.
    pub age: Duration,
}

/// The staging files under `root` (the remote's directory) not written for `older_than`;
/// with `remove`, each is unlinked as it is found (a file already gone is fine).
///
/// Every name is resolved relative to an open directory fd, never by path: a node directory
/// is opened with `O_NOFOLLOW`, files are examined with `fstatat(AT_SYMLINK_NOFOLLOW)` and
/// removed with `unlinkat`, so swapping a directory for a symlink mid-sweep leads nowhere.
/// (`root` itself may go through symlinks: it is the operator's configuration.)
pub(crate) fn sweep(
    root: &Path,
    older_than: Duration,
    remove: bool,
) -> io::Result<Vec<StaleUpload>> {
    let now = SystemTime::now();
    let mut found = Vec::new();
    let mut top = match Dir::open(
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(dir) => dir,
        // A remote nothing was ever written to has no directory yet, and nothing to sweep.
        Err(Errno::ENOENT) => return Ok(found),
        Err(e) => return Err(e.into()),
    };
    let listed = utf8_names(&mut top)?;
    let top_fd = top.as_fd();
    let mut nodes = Vec::new();
    let mut index_leftovers = Vec::new();
    for name in listed {
        if valid_node_name(&name) && kind(top_fd, &name)? == Some(libc::S_IFDIR) {
            nodes.push(name);
        } else if staged_of(&name).is_some_and(|b| b == INDEX_OBJECT) {
            index_leftovers.push(name);
        }
    }
    for name in index_leftovers {
        consider(top_fd, root, &name, now, older_than, remove, &mut found)?;
    }
    for node in nodes {
        let mut dir = match Dir::openat(
            top_fd,
            node.as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(dir) => dir,
            // Gone, or replaced by a symlink or a file since it was listed: not ours to walk.
            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut names = utf8_names(&mut dir)?;
        // Snapshot objects, and the node's own index.
        names.retain(|name| staged_snapshot(name) || staged_of(name) == Some(INDEX_OBJECT));
        let path = root.join(&node);
        for name in names {
            consider(
                dir.as_fd(),
                &path,
                &name,
                now,
                older_than,
                remove,
                &mut found,
            )?;
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// The names in `dir` that are UTF-8 (no snapseal name is anything else), listed before any is
/// looked at, so the listing's borrow of `dir` ends before the `*at` calls borrow its fd.
fn utf8_names(dir: &mut Dir) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in dir.iter() {
        if let Ok(name) = entry?.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// The file type of `name` in `dir` (the entry itself, never a symlink's target); `None`
/// when it is gone.
fn kind(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<libc::mode_t>> {
    match stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st.st_mode & libc::S_IFMT)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The object name a staging name stands for: `<base>#<digits>`.
fn staged_of(name: &str) -> Option<&str> {
    let (base, n) = name.rsplit_once('#')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(base)
}

/// Whether `name` stages a snapshot object (its base is a committed snapshot name, exactly).
fn staged_snapshot(name: &str) -> bool {
    staged_of(name)
        .is_some_and(|base| SnapshotName::parse(base).is_some_and(|n| n.file_name() == base))
}

/// Records `name` in `dir` (shown as under `path`) if it is a regular file not written for
/// `older_than`, unlinking it with `remove`.
fn consider(
    dir: BorrowedFd<'_>,
    path: &Path,
    name: &str,
    now: SystemTime,
    older_than: Duration,
    remove: bool,
    found: &mut Vec<StaleUpload>,
) -> io::Result<()> {
    let st = match stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(());
    }
    let modified = UNIX_EPOCH
        + Duration::new(
            u64::try_from(st.st_mtime).unwrap_or(0),
            u32::try_from(st.st_mtime_nsec).unwrap_or(0),
        );
    let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
    if age < older_than {
        return Ok(());
    }
    if remove {
        match unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    found.push(StaleUpload {
        path: path.join(name),
        size: u64::try_from(st.st_size).unwrap_or(0),
        age,
    });
    Ok(())
}
