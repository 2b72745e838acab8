//! Retention planning for the commands that must not take the store's lock (`list`,
//! `gc --dry-run`): the store's own planner over a plain listing. With no store open in this
//! process there are no holds to spare anything.

use snapseal::persist::internals::fs::DirHandle;
use snapseal::persist::internals::{RetentionPlan, Standing};
use snapseal::persist::receipt::ReceiptVerifier;
use snapseal::persist::SnapshotEntry;

use crate::cli::check;

/// What retention would do with the committed snapshots in `committed` (any order) if every
/// one of them verified: `list`'s view, which reads the listing only (no key, no
/// verification). The store counts only snapshots that verify, so junk under a committed
/// name can make it keep older files than this plan shows; `gc --dry-run` verifies.
pub(super) fn plan(
    committed: &[SnapshotEntry],
    keep_last: usize,
    max_bytes: Option<u64>,
) -> RetentionPlan {
    snapseal::persist::internals::plan_retention(
        committed,
        keep_last,
        max_bytes,
        |_| false,
        |_| Standing::Verified,
    )
}

/// What retention would do, verifying the files it needs to (newest first, as the store
/// does), read-only. Each file is judged by the store's own rule ([`check::Verdict::standing`],
/// after [`Standing::of_failure`]).
pub(super) fn plan_verified(
    committed: &[SnapshotEntry],
    keep_last: usize,
    max_bytes: Option<u64>,
    dir: &dyn DirHandle,
    verifier: &dyn ReceiptVerifier,
) -> RetentionPlan {
    snapseal::persist::internals::plan_retention(
        committed,
        keep_last,
        max_bytes,
        |_| false,
        |entry| check::check_in_dir(dir, &entry.name, verifier).standing(),
    )
}
