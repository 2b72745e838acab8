//! Quarantine: moving a committed file that failed verification out of the way (to its
//! `.corrupt` name), and keeping the number of quarantined files bounded.
//!
//! A quarantined file is only ever renamed, never rewritten. Deleting one (beyond
//! `max_quarantined`, oldest first) re-verifies it first: a file that verifies now (say it was
//! quarantined under a wrong set of trusted keys) is never deleted, nor is one that cannot be
//! read.

use std::io;

use tracing::{debug, warn};

use crate::error::{StoreError, StoreStep};
use crate::fs::{is_noreplace_unsupported, DirHandle};
use crate::names::{FileState, SnapshotName};
use crate::reader::open_snapshot;
use crate::receipt::ReceiptVerifier;
use crate::scan::{in_state, our_files};

/// How a quarantine attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quarantined {
    /// Renamed to its `.corrupt` name, durably.
    Moved,
    /// The committed file was already gone (someone else moved or deleted it).
    Gone,
    /// A `.corrupt` file of that name exists (an earlier copy failed too); nothing was
    /// changed and the committed file stays where it is (never returned, since it fails).
    NameTaken,
}

fn io_err(
    dir: &dyn DirHandle,
    name: &str,
    step: StoreStep,
) -> impl FnOnce(io::Error) -> StoreError {
    let path = dir.path().join(name);
    move |source| StoreError::Io { path, step, source }
}

/// Renames committed `name` to its `.corrupt` name without ever replacing a file (link +
/// unlink where the no-replace rename is unsupported), then fsyncs the directory.
pub(crate) fn quarantine(
    dir: &dyn DirHandle,
    name: SnapshotName,
) -> Result<Quarantined, StoreError> {
    let from = name.with_state(FileState::Committed).file_name();
    let to = name.with_state(FileState::Corrupt).file_name();
    let gone_or_taken = |e: &io::Error| match e.kind() {
        io::ErrorKind::NotFound => Some(Quarantined::Gone),
        io::ErrorKind::AlreadyExists => Some(Quarantined::NameTaken),
        _ => None,
    };
    match dir.rename_noreplace(&from, &to) {
        Ok(()) => {}
        Err(e) if is_noreplace_unsupported(&e) => {
            if let Err(e) = dir.hard_link(&from, &to) {
                return gone_or_taken(&e).ok_or(e).map_err(io_err(
                    dir,
                    &from,
                    StoreStep::Quarantine,
                ));
            }
            match dir.unlink(&from) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(dir, &from, StoreStep::Quarantine)(e)),
            }
        }
        Err(e) => {
            return gone_or_taken(&e)
                .ok_or(e)
                .map_err(io_err(dir, &from, StoreStep::Quarantine))
        }
    }
    dir.sync().map_err(io_err(dir, &to, StoreStep::DirSync))?;
    debug!(from = %from, to = %to, "quarantined");
    Ok(Quarantined::Moved)
}

/// Deletes the oldest quarantined files (by idx, then evidence_idx) until at most `max`
/// remain, skipping any that verify or cannot be read. Returns what it deleted.
pub(crate) fn trim(
    dir: &dyn DirHandle,
    max: usize,
    verifier: &dyn ReceiptVerifier,
) -> Result<Vec<SnapshotName>, StoreError> {
    let entries = dir.list().map_err(|source| StoreError::Io {
        path: dir.path().to_path_buf(),
        step: StoreStep::List,
        source,
    })?;
    let corrupt = in_state(&our_files(&entries), FileState::Corrupt);
    let mut remaining = corrupt.len();
    let mut deleted = Vec::new();
    let mut failure = None;
    for entry in &corrupt {
        if remaining <= max {
            break;
        }
        match open_snapshot(dir, &entry.name, verifier) {
            Ok(_) => {
                warn!(name = %entry.name, "quarantined file verifies now; kept (restore it by hand if wanted)");
                continue;
            }
            Err(e) if e.is_io() => {
                warn!(name = %entry.name, error = %e, "cannot read quarantined file; kept");
                continue;
            }
            Err(_) => {}
        }
        let file_name = entry.name.file_name();
        match dir.unlink(&file_name) {
            Ok(()) => deleted.push(entry.name),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                failure = Some(io_err(dir, &file_name, StoreStep::UnlinkCorrupt)(e));
                break;
            }
        }
        remaining -= 1;
    }
    if !deleted.is_empty() {
        dir.sync().map_err(|source| StoreError::Io {
            path: dir.path().to_path_buf(),
            step: StoreStep::DirSync,
            source,
        })?;
        debug!(count = deleted.len(), "deleted old quarantined files");
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(deleted),
    }
}
