//! Retention planning for the commands that must not take the store's lock (`list`,
//! `gc --dry-run`): the store's own planner over a plain listing. With no store open in this
//! process there are no holds to spare anything.

use snapseal::persist::RetentionPlan;
use snapseal::persist::SnapshotEntry;

/// What retention would do with the committed snapshots in `committed` (any order).
pub(super) fn plan(
    committed: &[SnapshotEntry],
    keep_last: usize,
    max_bytes: Option<u64>,
) -> RetentionPlan {
    snapseal::persist::plan_retention(committed, keep_last, max_bytes, |_| false)
}
