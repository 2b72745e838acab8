//! Work counters: how many work items are waiting, running, and how they ended.

use crate::sync::{AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

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
///
/// Only monotonic totals are kept, each written by one side: submitters only bump
/// `enqueued`, workers only `started` and `done`/`failed`. A gauge like `queued` would be
/// written by both for every action (up when added, down when started), bouncing its cache
/// line between the producer and the workers; the gauges are computed at read time instead.
/// Each total sits on its own cache line for the same reason.
pub(crate) struct CounterCells {
    enqueued: Line<AtomicU64>,
    started: Line<AtomicU64>,
    done: Line<AtomicU64>,
    failed: Line<AtomicU64>,
    /// Discarded while queued.
    cancelled_queued: Line<AtomicU64>,
    /// Discarded before they were ever queued (delayed tasks).
    cancelled_delayed: Line<AtomicU64>,
}

/// Each counter alone on its cache line(s), so workers bumping different counters do not
/// contend on one line.
type Line<T> = CachePadded<T>;

impl CounterCells {
    pub(crate) fn new() -> Self {
        let zero = || CachePadded::new(AtomicU64::new(0));
        Self {
            enqueued: zero(),
            started: zero(),
            done: zero(),
            failed: zero(),
            cancelled_queued: zero(),
            cancelled_delayed: zero(),
        }
    }

    /// `n` items became ready to run.
    pub(crate) fn enqueued(&self, n: u64) {
        self.enqueued.fetch_add(n, Ordering::Release);
    }

    /// One queued item started.
    pub(crate) fn started(&self) {
        self.started.fetch_add(1, Ordering::Release);
    }

    /// One running item ended, successfully or not.
    pub(crate) fn finished(&self, ok: bool) {
        let cell = if ok { &self.done } else { &self.failed };
        cell.fetch_add(1, Ordering::Release);
    }

    /// `n` queued items were discarded without running.
    pub(crate) fn cancelled_queued(&self, n: u64) {
        if n > 0 {
            self.cancelled_queued.fetch_add(n, Ordering::Release);
        }
    }

    /// One item that was not counted as queued (a delayed task) was discarded.
    pub(crate) fn cancelled_delayed(&self) {
        self.cancelled_delayed.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn read(&self) -> Counters {
        // Later states first, each total read once: an item that moves while we read is then
        // counted in the state it left or the one it entered (or both), never in neither. Its
        // earlier total was bumped before its later one, so seeing the later bump (Acquire)
        // means seeing the earlier one too; the one `started` reading serves both gauges.
        let done = self.done.load(Ordering::Acquire);
        let failed = self.failed.load(Ordering::Acquire);
        let cancelled_delayed = self.cancelled_delayed.load(Ordering::Acquire);
        let cancelled_queued = self.cancelled_queued.load(Ordering::Acquire);
        let started = self.started.load(Ordering::Acquire);
        let enqueued = self.enqueued.load(Ordering::Acquire);
        Counters {
            queued: enqueued
                .saturating_sub(started)
                .saturating_sub(cancelled_queued),
            running: started.saturating_sub(done).saturating_sub(failed),
            done,
            failed,
            cancelled: cancelled_queued + cancelled_delayed,
        }
    }
}
