//! Work counters: how many work items are waiting, running, and how they ended.

use crate::sync::{AtomicU64, Ordering};

/// A reading of a [`TaskSystem`](crate::TaskSystem)'s work counters.
///
/// A *work item* is one run of a task (a periodic task is one item per firing) or one action of
/// an [`OrderedTasks`](crate::OrderedTasks). Each field is read atomically, but the five are
/// read one after the other: while work is in flight, an item moving between two states may be
/// seen in both, never in neither (an item only moves forward — queued, running, ended — the
/// fields are read in that order, and each move publishes its increment before, and with, the
/// matching decrement). Once the system is idle the reading is exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counters {
    /// Items accepted and waiting to run: tasks on the job board and actions pending in
    /// queues, paused queues included. Delayed and periodic tasks waiting for their time are
    /// not counted until they are due.
    pub queued: u64,
    /// Items running right now.
    pub running: u64,
    /// Runs that returned `Ok`.
    pub done: u64,
    /// Runs that returned `Err` or panicked.
    pub failed: u64,
    /// Accepted items discarded without running (task or queue cancelled, rest of a failed
    /// queue, shutdown). Work refused outright (`add_action` returning `false`) is not counted.
    pub cancelled: u64,
}

/// The shared cells behind [`Counters`]; every engine object that changes an item's state
/// holds an `Arc` to them.
pub(crate) struct CounterCells {
    queued: AtomicU64,
    running: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
}

impl CounterCells {
    pub(crate) fn new() -> Self {
        Self {
            queued: AtomicU64::new(0),
            running: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
        }
    }

    /// `n` items became ready to run.
    pub(crate) fn enqueued(&self, n: u64) {
        self.queued.fetch_add(n, Ordering::Relaxed);
    }

    /// One queued item started.
    pub(crate) fn started(&self) {
        self.running.fetch_add(1, Ordering::Relaxed);
        // Release: a reader that sees the item leave `queued` also sees it in `running`.
        self.queued.fetch_sub(1, Ordering::Release);
    }

    /// One running item ended, successfully or not.
    pub(crate) fn finished(&self, ok: bool) {
        if ok {
            self.done.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.running.fetch_sub(1, Ordering::Release);
    }

    /// `n` queued items were discarded without running.
    pub(crate) fn cancelled_queued(&self, n: u64) {
        if n > 0 {
            self.cancelled.fetch_add(n, Ordering::Relaxed);
            self.queued.fetch_sub(n, Ordering::Release);
        }
    }

    /// One item that was not counted as queued (a delayed task) was discarded.
    pub(crate) fn cancelled_delayed(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> Counters {
        // In the order items move, each an Acquire pairing with the Release decrements.
        let queued = self.queued.load(Ordering::Acquire);
        let running = self.running.load(Ordering::Acquire);
        Counters {
            queued,
            running,
            done: self.done.load(Ordering::Acquire),
            failed: self.failed.load(Ordering::Acquire),
            cancelled: self.cancelled.load(Ordering::Acquire),
        }
    }
}
