//! Retention: which committed snapshots to delete. Planning only (a pure function of the
//! listing, the options and the holds); the store carries the plan out.
//!
//! Rules, applied newest first (by `idx`, then `evidence_idx`):
//! 1. keep the newest `keep_last`;
//! 2. with `max_bytes`, drop the oldest kept ones while the kept total exceeds it, but never
//!    the newest snapshot;
//! 3. a dropped snapshot under a [`Hold`](crate::Hold) is spared (not deleted, and not counted
//!    against `max_bytes`: an old snapshot pinned by an exporter should not cost us newer
//!    ones) until a later pass finds it released.
//!
//! Retention does not verify files (that would mean hashing every one on every commit);
//! `latest()` quarantines bad ones when it meets them.

use std::io;

use crate::error::{StoreError, StoreStep};
use crate::fs::DirHandle;
use crate::hold::HoldTable;
use crate::names::SnapshotName;
use crate::scan::SnapshotEntry;

/// What retention would do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Committed snapshots kept by the rules, newest first.
    pub keep: Vec<SnapshotEntry>,
    /// Committed snapshots to delete, oldest first.
    pub delete: Vec<SnapshotEntry>,
    /// Snapshots the rules drop but a hold spares, oldest first.
    pub held: Vec<SnapshotEntry>,
}

impl RetentionPlan {
    /// True when the rules keep `entry`.
    pub fn keeps(&self, entry: &SnapshotEntry) -> bool {
        self.keep.iter().any(|k| k.name == entry.name)
    }

    /// Bytes the deletions would free.
    pub fn delete_bytes(&self) -> u64 {
        self.delete
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.len))
    }
}

/// What a retention pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Deleted snapshots, oldest first.
    pub deleted: Vec<SnapshotName>,
    /// Bytes freed by the deletions.
    pub freed_bytes: u64,
    /// Snapshots the rules dropped but a hold spared (including ones held after planning).
    pub spared: Vec<SnapshotName>,
    /// Planned deletions that were already gone.
    pub vanished: Vec<SnapshotName>,
}

/// Plans retention over `committed` (committed files, any order); `is_held` says which names
/// are pinned.
///
/// Rules, applied newest first (by `idx`, then `evidence_idx`):
/// 1. keep the newest `keep_last`;
/// 2. with `max_bytes`, drop the oldest kept ones while the kept total exceeds it, but never
///    the newest snapshot;
/// 3. a dropped snapshot under a [`Hold`](crate::Hold) is spared (not deleted, and not counted
///    against `max_bytes`) until a later pass finds it released.
///
/// Public so tools that must not take the store's lock (a `list`, a dry run) plan
/// with exactly the store's rules.
pub fn plan_retention(
    committed: &[SnapshotEntry],
    keep_last: usize,
    max_bytes: Option<u64>,
    is_held: impl Fn(&SnapshotName) -> bool,
) -> RetentionPlan {
    let mut newest_first = committed.to_vec();
    newest_first.sort_by_key(|e| std::cmp::Reverse(e.name));
    // keep_last >= 1 is validated with the options; never let 0 delete everything anyway.
    let keep_n = keep_last.max(1).min(newest_first.len());
    let mut dropped = newest_first.split_off(keep_n);
    let mut keep = newest_first;
    if let Some(max) = max_bytes {
        let mut total = keep.iter().fold(0u64, |s, e| s.saturating_add(e.len));
        while total > max && keep.len() > 1 {
            if let Some(oldest) = keep.pop() {
                total = total.saturating_sub(oldest.len);
                dropped.push(oldest);
            }
        }
    }
    // Oldest first, so deletions free the least valuable snapshots first.
    dropped.sort_by_key(|e| e.name);
    let (held, delete) = dropped.into_iter().partition(|e| is_held(&e.name));
    RetentionPlan { keep, delete, held }
}

/// Carries out `plan`: unlinks each planned deletion unless it became held meanwhile (checked
/// under the hold table's lock, so no hold can slip in between check and unlink), then fsyncs
/// the directory. An unlink failure does not stop the others; the first is returned after
/// the directory fsync.
pub(crate) fn apply(
    dir: &dyn DirHandle,
    plan: &RetentionPlan,
    holds: &HoldTable,
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport {
        spared: plan.held.iter().map(|e| e.name).collect(),
        ..RetentionReport::default()
    };
    let mut failure = None;
    for entry in &plan.delete {
        let file_name = entry.name.file_name();
        match holds.unless_held(&entry.name, || dir.unlink(&file_name)) {
            None => report.spared.push(entry.name),
            Some(Ok(())) => {
                tracing::debug!(name = %entry.name, bytes = entry.len, "retention deleted");
                report.deleted.push(entry.name);
                report.freed_bytes = report.freed_bytes.saturating_add(entry.len);
            }
            Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => report.vanished.push(entry.name),
            Some(Err(source)) => {
                failure.get_or_insert(StoreError::Io {
                    path: dir.path().join(&file_name),
                    step: StoreStep::UnlinkExpired,
                    source,
                });
            }
        }
    }
    if !report.deleted.is_empty() {
        if let Err(source) = dir.sync() {
            failure.get_or_insert(StoreError::Io {
                path: dir.path().to_path_buf(),
                step: StoreStep::DirSync,
                source,
            });
        }
    }
    report.spared.sort();
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}
