//! Reading the directory listing into our snapshot files, and nothing else.
//!
//! Only regular files with one of our names count. Anything else under one of our names (a
//! symlink, a directory, a fifo) was planted or left by something that is not the store: it
//! is reported and skipped, never read, followed or deleted. Names that are not ours are not
//! looked at at all.

use crate::fs::{DirEntry, EntryKind};
use crate::names::{FileState, SnapshotName};

/// One of our snapshot files, as listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotEntry {
    /// Its parsed name (which carries its state).
    pub name: SnapshotName,
    /// Its size in bytes.
    pub len: u64,
}

/// Our snapshot files among `entries`, sorted by name (idx, then evidence_idx, then state).
/// Non-regular entries under our names are logged and left out.
pub(crate) fn our_files(entries: &[DirEntry]) -> Vec<SnapshotEntry> {
    let mut out: Vec<SnapshotEntry> = entries
        .iter()
        .filter_map(|e| {
            let name = SnapshotName::parse_os(&e.name)?;
            if e.kind != EntryKind::File {
                tracing::warn!(
                    name = %name,
                    kind = ?e.kind,
                    "not a regular file under a snapshot name; skipped and left alone"
                );
                return None;
            }
            Some(SnapshotEntry { name, len: e.len })
        })
        .collect();
    out.sort_by_key(|e| e.name);
    out
}

/// The entries in `state`, in the same (oldest first) order.
pub(crate) fn in_state(files: &[SnapshotEntry], state: FileState) -> Vec<SnapshotEntry> {
    files
        .iter()
        .filter(|e| e.name.state == state)
        .copied()
        .collect()
}
