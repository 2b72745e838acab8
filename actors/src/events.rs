//! What the Snapshotter tells the node, and the counters it keeps.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use snapseal_persist::Hash;

/// A notification on [`Snapshotter::events`](crate::Snapshotter::events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotEvent {
    /// A generation was persisted: its `.committed` file is durable (file and directory synced).
    Committed(CommittedSnapshot),
    /// A generation failed (serialise or persist); it left no `.committed` file.
    Failed {
        /// Generation number.
        generation: u64,
        /// Snapshot index.
        idx: u64,
        /// What went wrong, including the file and step for persistence errors.
        error: String,
    },
    /// A pending generation was dropped by a rollback; it leaves no file.
    Dropped {
        /// Generation number.
        generation: u64,
        /// Snapshot index.
        idx: u64,
    },
    /// A due snapshot point was skipped because `max_pending` generations were pending.
    Skipped {
        /// The skipped point.
        idx: u64,
    },
}

/// A generation that reached disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedSnapshot {
    /// Generation number (0, 1, 2 … in creation order).
    pub generation: u64,
    /// Snapshot index.
    pub idx: u64,
    /// Index of the evidence tx carrying the digest.
    pub evidence_idx: u64,
    /// Index of the signature that proves the evidence.
    pub sig_idx: u64,
    /// Path of the `.committed` file.
    pub path: PathBuf,
    /// BLAKE3 of the stored body.
    pub digest: Hash,
    /// Size of the committed file in bytes.
    pub file_len: u64,
}

/// Point-in-time copy of the Snapshotter's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotCounters {
    /// Generations created (serialisation scheduled).
    pub scheduled: u64,
    /// Due points skipped because of `max_pending`.
    pub skipped: u64,
    /// Due points deferred (cooldown, or a forced point waiting for a free slot); counted once
    /// per point.
    pub deferred: u64,
    /// Generations persisted.
    pub persisted: u64,
    /// Generations dropped by rollback.
    pub dropped: u64,
    /// Generations that failed.
    pub failed: u64,
}

/// Shared, lock-free counters (updated by the consensus thread and the workers).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub scheduled: AtomicU64,
    pub skipped: AtomicU64,
    pub deferred: AtomicU64,
    pub persisted: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> SnapshotCounters {
        SnapshotCounters {
            scheduled: self.scheduled.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            deferred: self.deferred.load(Ordering::Relaxed),
            persisted: self.persisted.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}
