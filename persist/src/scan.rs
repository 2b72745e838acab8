//! Reading the directory listing: which entries are our snapshot files, our pending spilled
//! bodies, the lock, or something else. The store and the read-only tools share this.
//!
//! Only regular files with one of our names count. Anything else under one of our names (a
//! symlink, a directory, a fifo) was planted or left by something that is not the store: it
//! is reported and skipped, never read, followed or deleted. Names that are not ours are not
//! looked at at all.

use std::ffi::OsString;

use crate::error::{StoreError, StoreStep};
use crate::fs::{DirEntry, DirHandle, EntryKind};
use crate::names::{FileState, PendingName, SnapshotName, LOCK_FILE};

/// One of our snapshot files, as listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotEntry {
    /// Its parsed name (which carries its state).
    pub name: SnapshotName,
    /// Its size in bytes.
    pub len: u64,
}

/// One of our pending (spilled body) files, as listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PendingEntry {
    /// Its parsed name.
    pub name: PendingName,
    /// Its size in bytes (placeholder header and the body so far).
    pub len: u64,
}

/// What a directory entry is to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryClass {
    /// A snapshot file (regular): committed, uncommitted or quarantined, per `name.state`.
    Snapshot(SnapshotName),
    /// A pending (spilled body) file (regular): a body waiting for its proof, or stale.
    Pending(PendingName),
    /// The store's lock file.
    Lock,
    /// Not a regular file under one of our snapshot or pending names: skipped, never touched.
    NotRegular,
    /// Not one of our names: never touched.
    Foreign,
}

/// One directory entry with its classification (see [`classify_dir`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedEntry {
    /// The entry's name as listed (not necessarily UTF-8).
    pub file_name: OsString,
    /// What the name refers to (without following symlinks).
    pub kind: EntryKind,
    /// Size in bytes.
    pub len: u64,
    /// What it is to the store.
    pub class: EntryClass,
}

impl ListedEntry {
    /// The snapshot entry, for a snapshot file.
    pub fn snapshot(&self) -> Option<SnapshotEntry> {
        match self.class {
            EntryClass::Snapshot(name) => Some(SnapshotEntry {
                name,
                len: self.len,
            }),
            _ => None,
        }
    }

    /// The pending entry, for a pending file.
    pub fn pending(&self) -> Option<PendingEntry> {
        match self.class {
            EntryClass::Pending(name) => Some(PendingEntry {
                name,
                len: self.len,
            }),
            _ => None,
        }
    }
}

/// Lists and classifies every entry of an open snapshot directory, read-only: no lock is
/// taken and nothing is opened or changed, so it is safe next to a running store. Order:
/// snapshot files by name (idx, then evidence_idx, then state), then pending files by
/// (idx, generation), then every other entry by name.
pub fn classify_dir(dir: &dyn DirHandle) -> Result<Vec<ListedEntry>, StoreError> {
    let entries = dir.list().map_err(|source| StoreError::Io {
        path: dir.path().to_path_buf(),
        step: StoreStep::List,
        source,
    })?;
    Ok(classify(&entries))
}

/// [`classify_dir`] over a listing already made.
pub(crate) fn classify(entries: &[DirEntry]) -> Vec<ListedEntry> {
    let mut out: Vec<ListedEntry> = entries
        .iter()
        .map(|e| {
            let text = e.name.to_str();
            let snapshot = text.and_then(SnapshotName::parse);
            let pending = text.and_then(PendingName::parse);
            let regular = e.kind == EntryKind::File;
            let class = match (snapshot, pending) {
                (Some(name), _) if regular => EntryClass::Snapshot(name),
                (_, Some(name)) if regular => EntryClass::Pending(name),
                (Some(_), _) | (_, Some(_)) => EntryClass::NotRegular,
                (None, None) if text == Some(LOCK_FILE) => EntryClass::Lock,
                (None, None) => EntryClass::Foreign,
            };
            ListedEntry {
                file_name: e.name.clone(),
                kind: e.kind,
                len: e.len,
                class,
            }
        })
        .collect();
    out.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    out
}

type OrderKey<'a> = (u8, Option<SnapshotName>, Option<PendingName>, &'a OsString);

fn order_key(e: &ListedEntry) -> OrderKey<'_> {
    match e.class {
        EntryClass::Snapshot(n) => (0, Some(n), None, &e.file_name),
        EntryClass::Pending(n) => (1, None, Some(n), &e.file_name),
        _ => (2, None, None, &e.file_name),
    }
}

/// Our snapshot files among `entries`, sorted by name (idx, then evidence_idx, then state).
/// Non-regular entries under our names are logged and left out.
pub(crate) fn our_files(entries: &[DirEntry]) -> Vec<SnapshotEntry> {
    let listed = classify(entries);
    warn_not_regular(&listed);
    listed.iter().filter_map(ListedEntry::snapshot).collect()
}

/// Our pending files among `entries`, sorted by (idx, generation). Non-regular entries under
/// a pending name are logged and left out, as for snapshot names.
pub(crate) fn pending_files(entries: &[DirEntry]) -> Vec<PendingEntry> {
    let listed = classify(entries);
    warn_not_regular(&listed);
    listed.iter().filter_map(ListedEntry::pending).collect()
}

fn warn_not_regular(listed: &[ListedEntry]) {
    for e in listed.iter().filter(|e| e.class == EntryClass::NotRegular) {
        tracing::warn!(
            name = %e.file_name.to_string_lossy(),
            kind = ?e.kind,
            "not a regular file under a snapshot or pending name; skipped and left alone"
        );
    }
}

/// The entries in `state`, in the same (oldest first) order.
pub(crate) fn in_state(files: &[SnapshotEntry], state: FileState) -> Vec<SnapshotEntry> {
    files
        .iter()
        .filter(|e| e.name.state == state)
        .copied()
        .collect()
}
