//! The state one task system shares between its handles, its threads and its queues.

use std::sync::atomic::{AtomicU64 as StdAtomicU64, AtomicUsize as StdAtomicUsize};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::admission::Admission;
use crate::board::Board;
use crate::counters::{CounterCells, Counters};
use crate::job::Job;
use crate::manual::{ManualBoard, Pick};
use crate::sync::{AtomicBool, Mutex, Ordering};
use crate::task::TaskCore;
use crate::timer::Timers;
use crate::worker::current_thread_serves;

/// Source of system ids (0 is "no system", see `worker::SERVES`). A plain std atomic even
/// under loom: it is not part of any modelled protocol, and loom atomics cannot be statics.
static NEXT_ID: StdAtomicU64 = StdAtomicU64::new(1);

pub(crate) enum Scheduler {
    /// Boxed: the board's atomics each fill a cache line, which would bloat every manual
    /// system too.
    Threaded(Box<Board>),
    Manual(ManualBoard),
}

enum Clock {
    /// Threaded: time elapsed since the system started.
    Wall(Instant),
    /// Manual: the sum of `tick`s, kept by the timers.
    Manual,
}

/// Aligned to its own cache lines so that the `Arc` reference counts in front of it (changed
/// whenever a queue, a task or a worker takes or drops its reference) never share a line with
/// the fields every worker reads for every action (the board, the counters).
#[repr(align(128))]
pub(crate) struct Shared {
    id: u64,
    scheduler: Scheduler,
    timers: Timers,
    clock: Clock,
    counters: Arc<CounterCells>,
    /// False from the first moment of a shutdown: new work is refused from then on.
    accepting: AtomicBool,
    /// The slot the next worker to start takes (from 1); see `worker::worker_slot`. A plain
    /// std atomic even under loom, like the ids: only a worker's start-up touches it.
    next_worker_slot: StdAtomicUsize,
    /// Worker and timer threads not yet joined.
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    workers: usize,
}

impl Shared {
    fn new(scheduler: Scheduler, clock: Clock, workers: usize) -> Self {
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            id,
            scheduler,
            timers: Timers::new(),
            clock,
            counters: Arc::new(CounterCells::new(id)),
            next_worker_slot: StdAtomicUsize::new(1),
            accepting: AtomicBool::new(true),
            threads: Mutex::new(Vec::new()),
            workers,
        }
    }

    pub(crate) fn threaded(workers: usize) -> Self {
        Self::new(
            Scheduler::Threaded(Box::new(Board::new())),
            Clock::Wall(Instant::now()),
            workers,
        )
    }

    pub(crate) fn manual(pick: Pick) -> Self {
        Self::new(Scheduler::Manual(ManualBoard::new(pick)), Clock::Manual, 0)
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// A worker's slot in this system, from 1, each worker its own.
    pub(crate) fn claim_worker_slot(&self) -> usize {
        self.next_worker_slot
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// The threaded board, if this is a threaded system.
    pub(crate) fn board(&self) -> Option<&Board> {
        match &self.scheduler {
            Scheduler::Threaded(board) => Some(board),
            Scheduler::Manual(_) => None,
        }
    }

    pub(crate) fn timers(&self) -> &Timers {
        &self.timers
    }

    pub(crate) fn counter_cells(&self) -> &Arc<CounterCells> {
        &self.counters
    }

    pub(crate) fn counters(&self) -> Counters {
        self.counters.read()
    }

    pub(crate) fn is_manual(&self) -> bool {
        matches!(self.scheduler, Scheduler::Manual(_))
    }

    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    pub(crate) fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// Stops accepting new work, for good.
    pub(crate) fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }

    /// Whether the calling thread is one of this system's own threads.
    pub(crate) fn on_own_thread(&self) -> bool {
        current_thread_serves(self.id)
    }

    /// The instant the threaded clock counts from (`None` in manual mode).
    pub(crate) fn wall_origin(&self) -> Option<Instant> {
        match self.clock {
            Clock::Wall(start) => Some(start),
            Clock::Manual => None,
        }
    }

    pub(crate) fn now(&self) -> Duration {
        match self.clock {
            Clock::Wall(start) => start.elapsed(),
            Clock::Manual => self.timers.manual_now(),
        }
    }

    /// Whether a queue that just finished its `ran`-th action of this pick may run its next
    /// action right away on the same thread. Threaded: while its turn lasts or no other job
    /// waits (see `Board::may_continue_here`). Manual: never, so that every action is a pick
    /// of its own and seeds explore interleavings.
    pub(crate) fn may_continue_here(&self, ran: usize) -> bool {
        match &self.scheduler {
            Scheduler::Threaded(board) => board.may_continue_here(ran),
            Scheduler::Manual(_) => false,
        }
    }

    pub(crate) fn submit(&self, job: Job, admission: Admission) -> Result<(), Job> {
        match &self.scheduler {
            Scheduler::Threaded(board) => board.submit(job, admission),
            Scheduler::Manual(board) => board.submit(job, admission),
        }
    }

    /// Puts timers that came due on the board, in firing order.
    pub(crate) fn fire(&self, due: Vec<Arc<TaskCore>>) {
        for task in due {
            if task.make_ready() {
                if let Err(job) = self.submit(Job::Task(task), Admission::Continuation) {
                    job.skip();
                }
            }
        }
    }

    pub(crate) fn tick(&self, elapsed: Duration) {
        let due = match self.clock {
            Clock::Manual => self.timers.advance(elapsed),
            // The wall clock cannot be advanced: enqueue what is due now.
            Clock::Wall(_) => self.timers.take_due(self.now()),
        };
        self.fire(due);
    }

    /// Manual mode: runs one ready job on the calling thread.
    pub(crate) fn run_one(&self) -> bool {
        let Scheduler::Manual(board) = &self.scheduler else {
            return false;
        };
        let Some(job) = board.take() else {
            return false;
        };
        if let Some(again) = job.run(self) {
            if let Err(job) = board.submit(again, Admission::Continuation) {
                job.skip();
            }
        }
        true
    }

    pub(crate) fn wait_idle(&self, timeout: Duration) -> bool {
        match &self.scheduler {
            Scheduler::Manual(_) => {
                while self.run_one() {}
                true
            }
            Scheduler::Threaded(board) => {
                if self.on_own_thread() {
                    // The caller's own job keeps the board busy: waiting could only time out.
                    return false;
                }
                board.wait_idle(Instant::now().checked_add(timeout))
            }
        }
    }

    /// Jobs waiting on the board (threaded: in the FIFO; manual: ready).
    pub(crate) fn ready_jobs(&self) -> usize {
        match &self.scheduler {
            Scheduler::Manual(board) => board.ready(),
            Scheduler::Threaded(board) => board.queued(),
        }
    }
}
