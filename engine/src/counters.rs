//! Work counters: how many work items are waiting, running, and how they ended.

use crate::sync::{AtomicU64, Ordering};
use crate::worker::worker_slot;
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
/// Only monotonic totals are kept: a gauge like `queued` would be written by the submitter
/// and by a worker for every action (up when added, down when started), bouncing its cache
/// line between them; the gauges are computed at read time instead. And each thread bumps the
/// totals of a *shard* (a cache line of its own): the system's worker `i` shard `1 + i`
/// (modulo the shards there are), every other thread — submitters, the timer, another
/// system's workers — shard 0. So two workers finishing actions at the same time, or a
/// submitter adding while a worker starts, never write the same line: a profile of the engine
/// bench had the workers' shared `started`/`done` lines as the hottest instructions of the
/// action path. (Handing shards out round-robin per thread instead let a long-lived
/// process's later workers land on the submitter's shard: the engine row fell from about
/// 1.05× to 0.73× of the pool when run after the other rows.) A reading adds the shards up.
pub(crate) struct CounterCells {
    /// The system these count for: its workers have shards of their own.
    system: u64,
    shards: [Line<Shard>; SHARDS],
}

/// How many shards a system's counters have: one for every thread that is not one of the
/// system's workers, and one each for up to seven workers (more share them). Three under
/// loom: the model needs two workers' shards and the others', not 48 atomics.
const SHARDS: usize = if cfg!(loom) { 3 } else { 8 };

/// The totals of the threads that share a shard (every bump is an atomic add).
struct Shard {
    enqueued: AtomicU64,
    started: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    /// Discarded while queued.
    cancelled_queued: AtomicU64,
    /// Discarded before they were ever queued (delayed tasks).
    cancelled_delayed: AtomicU64,
}

/// A shard on its cache line(s).
type Line<T> = CachePadded<T>;

impl CounterCells {
    pub(crate) fn new(system: u64) -> Self {
        Self {
            system,
            shards: std::array::from_fn(|_| {
                CachePadded::new(Shard {
                    enqueued: AtomicU64::new(0),
                    started: AtomicU64::new(0),
                    done: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                    cancelled_queued: AtomicU64::new(0),
                    cancelled_delayed: AtomicU64::new(0),
                })
            }),
        }
    }

    /// The calling thread's shard.
    fn mine(&self) -> &Shard {
        let index = match worker_slot(self.system) {
            0 => 0,
            slot => 1 + (slot - 1) % (SHARDS - 1),
        };
        &self.shards[index]
    }

    /// `n` items became ready to run.
    pub(crate) fn enqueued(&self, n: u64) {
        self.mine().enqueued.fetch_add(n, Ordering::Release);
    }

    /// One queued item started.
    pub(crate) fn started(&self) {
        self.mine().started.fetch_add(1, Ordering::Release);
    }

    /// One running item ended, successfully or not. Called on the thread that started it, so
    /// its `started` and its end are in the same shard, in that order.
    pub(crate) fn finished(&self, ok: bool) {
        let shard = self.mine();
        let cell = if ok { &shard.done } else { &shard.failed };
        cell.fetch_add(1, Ordering::Release);
    }

    /// `n` queued items were discarded without running.
    pub(crate) fn cancelled_queued(&self, n: u64) {
        if n > 0 {
            self.mine().cancelled_queued.fetch_add(n, Ordering::Release);
        }
    }

    /// One item that was not counted as queued (a delayed task) was discarded.
    pub(crate) fn cancelled_delayed(&self) {
        self.mine()
            .cancelled_delayed
            .fetch_add(1, Ordering::Release);
    }

    /// The sum of one total over every shard.
    fn sum(&self, total: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|shard| total(shard).load(Ordering::Acquire))
            .sum()
    }

    pub(crate) fn read(&self) -> Counters {
        // Later states first, each total summed once over all shards: an item that moves
        // while we read is then counted in the state it left or the one it entered (or both),
        // never in neither. Its earlier total was bumped before its later one — in the same
        // shard when one thread did both (start, then end), or before a hand-over that the
        // later bump's thread synchronised with (the submitter's enqueue before the queue
        // lock or board push the worker took) — so seeing the later bump (Acquire) means
        // seeing the earlier one too; the one `started` sum serves both gauges.
        let done = self.sum(|s| &s.done);
        let failed = self.sum(|s| &s.failed);
        let cancelled_delayed = self.sum(|s| &s.cancelled_delayed);
        let cancelled_queued = self.sum(|s| &s.cancelled_queued);
        let started = self.sum(|s| &s.started);
        let enqueued = self.sum(|s| &s.enqueued);
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
