//! Staging files that interrupted uploads leave on a `file://` remote.
//!
//! The local store writes an upload in parts into `<object>#<n>` and renames it into place
//! when the upload completes; a shipper killed in between leaves that file behind. Such names
//! are invisible through `object_store` (its listing skips them), so remote gc finds them on
//! the filesystem itself. Everything there is treated as hostile: only real directories
//! (named like a node) and regular files are looked at, never through a symlink, and only
//! names of the exact form `<snapseal object name>#<digits>` are candidates. A file younger
//! than the given age is left alone: it may belong to an upload still running.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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

/// The staging files under `root` (the remote's directory) not written for `older_than`.
pub(crate) fn find(root: &Path, older_than: Duration) -> io::Result<Vec<StaleUpload>> {
    let now = SystemTime::now();
    let mut found = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // `symlink_metadata` (the entry's own type): a symlink is never followed.
        let meta = fs::symlink_metadata(entry.path())?;
        if meta.is_dir() && valid_node_name(name) {
            for inner in fs::read_dir(entry.path())? {
                let inner = inner?;
                let file = inner.file_name();
                let Some(file) = file.to_str() else { continue };
                if staged_snapshot(file) {
                    consider(&inner.path(), now, older_than, &mut found)?;
                }
            }
        } else if staged_of(name).is_some_and(|base| base == INDEX_OBJECT) {
            consider(&entry.path(), now, older_than, &mut found)?;
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// Removes them; a file already gone is fine.
pub(crate) fn remove(stale: &[StaleUpload]) -> io::Result<()> {
    for s in stale {
        match fs::remove_file(&s.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

fn consider(
    path: &Path,
    now: SystemTime,
    older_than: Duration,
    found: &mut Vec<StaleUpload>,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_file() {
        return Ok(());
    }
    let age = now
        .duration_since(meta.modified()?)
        .unwrap_or(Duration::ZERO);
    if age >= older_than {
        found.push(StaleUpload {
            path: path.to_path_buf(),
            size: meta.len(),
            age,
        });
    }
    Ok(())
}
