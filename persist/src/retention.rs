//! Retention: which committed snapshots to delete. Planning only (a pure function of the
//! listing, the options, the holds and what verification says about each file); the store
//! carries the plan out.
//!
//! Only snapshots that verify count: a junk or bit-rotted file under a committed name must
//! never push a good snapshot out. Rules, applied newest first (by `idx`, then
//! `evidence_idx`):
//! 1. keep the newest `keep_last` snapshots that verify ([`Standing::Verified`]);
//! 2. with `max_bytes`, drop the oldest kept ones while the kept total exceeds it, but never
//!    the newest one that verifies;
//! 3. everything older than the oldest kept snapshot is dropped (it is beyond `keep_last`
//!    good ones, so it is not verified first: that would hash every old file);
//! 4. among the newer ones, a file that failed verification ([`Standing::Failed`]) goes to
//!    quarantine, and one whose state is unknown ([`Standing::Unknown`]: unreadable, or
//!    signed by a key outside the trusted set) is left in place and not counted;
//! 5. a dropped snapshot under a [`Hold`](crate::Hold) is spared (not deleted, and not counted
//!    against `max_bytes`: an old snapshot pinned by an exporter should not cost us newer
//!    ones) until a later pass finds it released.
//!
//! So with no snapshot that verifies, retention deletes nothing, and the newest snapshot that
//! verifies is never deleted.

use std::io;

use crate::error::{StoreError, StoreStep, VerifyError};
use crate::fs::DirHandle;
use crate::hold::HoldTable;
use crate::names::SnapshotName;
use crate::scan::SnapshotEntry;

/// What verification says about one committed snapshot, as retention needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Standing {
    /// It verifies (or this process committed it): it counts toward `keep_last`.
    Verified,
    /// It was read and failed a check: quarantined, never counted.
    Failed,
    /// Nothing definite is known (an I/O error, a signer outside the trusted keys, a name
    /// that is not a regular file any more): left in place unless older than every kept
    /// snapshot, never counted.
    Unknown,
}

impl Standing {
    /// What a failed verification says about a file: read and failing a check is
    /// [`Failed`](Standing::Failed); an I/O error (nothing learnt about the contents, a name
    /// that is not a regular file included) or a signer or scheme outside the trusted set (a
    /// matter of the key set, not of the file: a wrong key set must not destroy good
    /// snapshots), or a chunked body checked without its chunks, is
    /// [`Unknown`](Standing::Unknown). The store's retention and the read-only
    /// tools that plan with its rules judge files by this one rule.
    pub fn of_failure(e: &VerifyError) -> Standing {
        match e {
            VerifyError::Receipt { source, .. } if source.is_untrusted() => Standing::Unknown,
            // A chunked file checked without its directory's packs: nothing learnt.
            VerifyError::Body {
                source: crate::error::BodyError::NoChunkStore,
                ..
            } => Standing::Unknown,
            e if e.is_io() => Standing::Unknown,
            _ => Standing::Failed,
        }
    }
}

/// What retention would do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Committed snapshots kept by the rules (all verified), newest first.
    pub keep: Vec<SnapshotEntry>,
    /// Committed snapshots to delete, oldest first.
    pub delete: Vec<SnapshotEntry>,
    /// Snapshots the rules drop but a hold spares, oldest first.
    pub held: Vec<SnapshotEntry>,
    /// Committed files newer than the oldest kept one that failed verification: moved to
    /// quarantine (newest first).
    pub quarantine: Vec<SnapshotEntry>,
    /// Committed files newer than the oldest kept one that could not be verified either way:
    /// left in place and not counted (newest first).
    pub unverified: Vec<SnapshotEntry>,
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
    /// Committed files that failed verification and were moved to quarantine.
    pub quarantined: Vec<SnapshotName>,
    /// Quarantined files deleted to bring the quarantine down to `max_quarantined`.
    pub quarantine_deleted: Vec<SnapshotName>,
}

/// Plans retention over `committed` (committed files, any order); `is_held` says which names
/// are pinned, `standing` what verification says about a file. `standing` is asked newest
/// first and only until `keep_last` verified snapshots are found (the older ones are dropped
/// unverified), so a caller that verifies lazily hashes as few files as the rules need.
///
/// Rules, newest first (by `idx`, then `evidence_idx`): keep the newest `keep_last` snapshots
/// that verify; with `max_bytes`, drop the oldest kept ones while their total exceeds it, never
/// the newest; drop everything older than the oldest kept one; among the newer ones, a
/// [`Standing::Failed`] file goes to quarantine and a [`Standing::Unknown`] one is left in
/// place, neither counted; a dropped snapshot under a [`Hold`](crate::Hold) is spared. With no
/// snapshot that verifies nothing is dropped. Public so tools that must not take the store's
/// lock (a `list`, a dry run) plan with exactly the store's rules.
pub fn plan_retention(
    committed: &[SnapshotEntry],
    keep_last: usize,
    max_bytes: Option<u64>,
    is_held: impl Fn(&SnapshotName) -> bool,
    mut standing: impl FnMut(&SnapshotEntry) -> Standing,
) -> RetentionPlan {
    let mut newest_first = committed.to_vec();
    newest_first.sort_by_key(|e| std::cmp::Reverse(e.name));
    // keep_last >= 1 is validated with the options; never let 0 delete everything anyway.
    let keep_n = keep_last.max(1);
    let mut keep = Vec::new();
    let mut quarantine = Vec::new();
    let mut unverified = Vec::new();
    let mut looked_at = 0;
    for entry in &newest_first {
        if keep.len() == keep_n {
            break;
        }
        looked_at += 1;
        match standing(entry) {
            Standing::Verified => keep.push(*entry),
            Standing::Failed => quarantine.push(*entry),
            Standing::Unknown => unverified.push(*entry),
        }
    }
    // Without a kept snapshot there is no boundary: nothing is dropped.
    let mut dropped: Vec<SnapshotEntry> = if keep.is_empty() {
        Vec::new()
    } else {
        newest_first.split_off(looked_at)
    };
    if let Some(max) = max_bytes {
        let mut total = keep.iter().fold(0u64, |s, e| s.saturating_add(e.len));
        while total > max && keep.len() > 1 {
            if let Some(oldest) = keep.pop() {
                total = total.saturating_sub(oldest.len);
                dropped.push(oldest);
            }
        }
    }
    // Whatever is older than the oldest kept snapshot goes, unverified files included; junk
    // found on the way still goes to quarantine rather than being deleted silently.
    if let Some(oldest_kept) = keep.last().map(|e| e.name) {
        let (older, newer): (Vec<_>, Vec<_>) =
            unverified.into_iter().partition(|e| e.name < oldest_kept);
        dropped.extend(older);
        unverified = newer;
    }
    // Oldest first, so deletions free the least valuable snapshots first.
    dropped.sort_by_key(|e| e.name);
    let (held, delete) = dropped.into_iter().partition(|e| is_held(&e.name));
    RetentionPlan {
        keep,
        delete,
        held,
        quarantine,
        unverified,
    }
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
