//! Holds: RAII pins that keep retention from deleting a committed snapshot while someone
//! (a reader, an exporter, a shipper) still needs it.
//!
//! The store keeps one reference count per snapshot. Retention checks the count and unlinks
//! under the same lock, so a hold taken before the check wins, and a hold taken after it finds
//! the file gone (which [`SnapshotStore::hold`](crate::SnapshotStore::hold) reports).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::names::{FileState, SnapshotName};

/// Reference counts of held snapshots, shared by a store and every hold it gave out (a hold
/// may outlive its store).
#[derive(Debug, Default)]
pub(crate) struct HoldTable {
    counts: Mutex<HashMap<SnapshotName, usize>>,
}

impl HoldTable {
    /// Pins `name` (whatever its state: holds are on the snapshot, keyed by its committed name).
    pub(crate) fn acquire(self: &Arc<Self>, name: SnapshotName) -> Hold {
        let name = name.with_state(FileState::Committed);
        *self.counts.lock().entry(name).or_insert(0) += 1;
        Hold {
            table: Arc::clone(self),
            name,
        }
    }

    /// True when at least one hold on `name` is alive.
    pub(crate) fn is_held(&self, name: &SnapshotName) -> bool {
        self.counts
            .lock()
            .contains_key(&name.with_state(FileState::Committed))
    }

    /// Runs `f` unless `name` is held, with new holds blocked until it returns (so a deletion
    /// in `f` cannot race a hold being taken). `None` when held.
    pub(crate) fn unless_held<R>(&self, name: &SnapshotName, f: impl FnOnce() -> R) -> Option<R> {
        let counts = self.counts.lock();
        if counts.contains_key(&name.with_state(FileState::Committed)) {
            return None;
        }
        let result = f();
        drop(counts);
        Some(result)
    }

    fn release(&self, name: &SnapshotName) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                counts.remove(name);
            }
        }
    }
}

/// A pin on one committed snapshot: while any hold on it lives, retention will not delete
/// it. Dropping the hold releases the pin; clones pin independently.
pub struct Hold {
    table: Arc<HoldTable>,
    name: SnapshotName,
}

impl Hold {
    internals_pub! {
        /// The held snapshot (its committed name).
        fn name(&self) -> SnapshotName {
            self.name
        }
    }
}

impl Clone for Hold {
    fn clone(&self) -> Self {
        self.table.acquire(self.name)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.table.release(&self.name);
    }
}

impl fmt::Debug for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hold").field(&self.name.file_name()).finish()
    }
}
