//! Reading the directory listing into our snapshot files (and our pending spilled bodies),
//! and nothing else.
//!
//! Only regular files with one of our names count. Anything else under one of our names (a
//! symlink, a directory, a fifo) was planted or left by something that is not the store: it
//! is reported and skipped, never read, followed or deleted. Names that are not ours are not
//! looked at at all.

use crate::fs::{DirEntry, EntryKind};
use crate::names::{FileState, PendingName, SnapshotName};

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

/// One of our pending (spilled body) files, as listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PendingEntry {
    /// Its parsed name.
    pub name: PendingName,
    /// Its size in bytes (placeholder header and the body so far).
    pub len: u64,
}

/// Our pending files among `entries`, sorted by (idx, generation). Non-regular entries under
/// a pending name are logged and left out, as for snapshot names.
pub(crate) fn pending_files(entries: &[DirEntry]) -> Vec<PendingEntry> {
    let mut out: Vec<PendingEntry> = entries
        .iter()
        .filter_map(|e| {
            let name = PendingName::parse_os(&e.name)?;
            if e.kind != EntryKind::File {
                tracing::warn!(
                    name = %name,
                    kind = ?e.kind,
                    "not a regular file under a pending name; skipped and left alone"
                );
                return None;
            }
            Some(PendingEntry { name, len: e.len })
        })
        .collect();
    out.sort_by_key(|e| e.name);
    out
}
