//! The threaded job board: a lock-free FIFO (an injector) plus an atomic count of parked
//! workers, so that neither a submission nor a pick takes a lock while workers are busy.
//!
//! Three atomics carry the protocol:
//!
//! - `outstanding`: jobs admitted and not yet finished (in the FIFO or running). A submitter
//!   counts its job before pushing it, a worker uncounts it after running it (and its
//!   continuations in place), so `outstanding == 0` means the board is idle.
//! - `parked`: workers that are about to sleep or asleep. A worker counts itself, then looks
//!   at the FIFO once more before sleeping; a submitter pushes, then looks at `parked`. Both
//!   sides put a `SeqCst` fence between their write and their read, so at least one of them
//!   sees the other: either the worker finds the job, or the submitter sees the worker and
//!   hands it a wake-up token under the sleep lock (no lost wake-ups). A submission that sees
//!   nobody parked touches no lock at all.
//! - `phase` (Open, Draining, Closed). Admission is checked before pushing and `Closed` is
//!   checked again after (behind the same kind of fence), and whoever closes the board drains
//!   the FIFO after closing it: a job pushed while the board closes is seen by one of the two
//!   and skipped, never stranded.
//!
//! The sleep lock is only taken to park, to wake a parked worker, to close the board and to
//! wait for idleness. (Under loom the FIFO is a loom mutex; see `sync::Injector`.)

use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::admission::{Admission, Phase};
use crate::job::Job;
use crate::shutdown::ShutdownMode;
use crate::sync::{fence, AtomicU8, AtomicUsize, Condvar, Injector, Mutex, Ordering};

/// What happened to a queue a worker wanted to put back on the board after one of its actions.
pub(crate) enum Continue {
    /// Nothing else was waiting: the same worker runs it again right away (same order as if it
    /// had gone through the empty FIFO, without a hand-off or a wake-up).
    Here(Job),
    /// Other jobs were waiting: it went to the back of the FIFO.
    Queued,
    /// The board is closed: the caller cancels it.
    Refused(Job),
}

/// How many actions of one queue a worker runs in a row before the queue goes to the back of
/// the line when other jobs wait. One push and pop of the FIFO per turn instead of per
/// action; small enough that a busy queue holds a worker from others only briefly.
pub(crate) const TURN: usize = 16;

/// How many times a worker that found the FIFO empty yields its CPU, looking again after
/// each, before it parks.
#[cfg(not(loom))]
const YIELDS_BEFORE_PARKING: usize = 4;

const OPEN: u8 = 0;
const DRAINING: u8 = 1;
const CLOSED: u8 = 2;

fn phase_of(raw: u8) -> Phase {
    match raw {
        OPEN => Phase::Open,
        DRAINING => Phase::Draining,
        _ => Phase::Closed,
    }
}

/// What the sleep lock guards.
struct Sleep {
    /// Wake-ups handed out and not yet taken by a parked worker. Never more than `parked`
    /// at the time they were handed out, so a burst of submissions cannot pile them up.
    tokens: usize,
}

/// The job board of a threaded system.
///
/// Each hot atomic sits on its own cache line: submitters write the FIFO's tail and
/// `outstanding`, workers the FIFO's head, `outstanding` and (when they run dry) `parked`.
pub(crate) struct Board {
    fifo: Injector<Job>,
    outstanding: CachePadded<AtomicUsize>,
    parked: CachePadded<AtomicUsize>,
    /// Workers woken by a token that have not found a job yet (at most one, but for a
    /// token left over from a worker that did not need it).
    searching: CachePadded<AtomicUsize>,
    phase: CachePadded<AtomicU8>,
    /// Threads blocked in `wait_idle` (so a worker reaching idle only locks when one waits).
    idle_waiters: AtomicUsize,
    sleep: Mutex<Sleep>,
    /// Parked workers wait here for a token or for the board to close.
    wake: Condvar,
    /// Signalled when `outstanding` reaches zero while someone waits for it.
    idle: Condvar,
}

impl Board {
    pub(crate) fn new() -> Self {
        Self {
            fifo: Injector::new(),
            outstanding: CachePadded::new(AtomicUsize::new(0)),
            parked: CachePadded::new(AtomicUsize::new(0)),
            searching: CachePadded::new(AtomicUsize::new(0)),
            phase: CachePadded::new(AtomicU8::new(OPEN)),
            idle_waiters: AtomicUsize::new(0),
            sleep: Mutex::new(Sleep { tokens: 0 }),
            wake: Condvar::new(),
            idle: Condvar::new(),
        }
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }

    pub(crate) fn submit(&self, job: Job, admission: Admission) -> Result<(), Job> {
        if !phase_of(self.phase()).admits(admission) {
            return Err(job);
        }
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        self.fifo.push(job);
        fence(Ordering::SeqCst);
        if self.phase() == CLOSED {
            // Closed after our admission check: whoever closed may have drained the FIFO
            // before our push landed, so skip whatever is left ourselves.
            for job in self.drain() {
                job.skip();
            }
            return Ok(());
        }
        self.wake_one();
        Ok(())
    }

    /// Wakes one parked worker if some are parked and none is already searching (woken and
    /// not yet holding a job): that one will take the job, and wake the next if more wait.
    /// Waking a worker costs far more than a small job; one search at a time keeps a burst
    /// of submissions from waking every worker for one job each.
    fn wake_one(&self) {
        if self.parked.load(Ordering::SeqCst) == 0
            || self
                .searching
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return;
        }
        let mut sleep = self.sleep.lock();
        if sleep.tokens < self.parked.load(Ordering::SeqCst) {
            sleep.tokens += 1;
            self.wake.notify_one();
        } else {
            // Every parked worker already holds a token: they are as good as searching, and
            // each will look at the FIFO (and wake the next) once it takes its token.
            drop(sleep);
            self.searching.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A searching worker found a job or gave up: the next submission (or this check, if
    /// jobs already wait) may wake another. Same fence pattern as park/submit: either a
    /// submitter saw `searching == 0` and woke someone, or we see its job here.
    fn end_search(&self) {
        self.searching.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !self.fifo.is_empty() {
            self.wake_one();
        }
    }

    /// Whether a queue that has more to run, after `ran` actions in this pick, may run its
    /// next action on the same worker right away: the board still takes continuations, and
    /// nothing else waits or the queue has not used up its turn yet ([`TURN`] actions).
    pub(crate) fn may_continue_here(&self, ran: usize) -> bool {
        self.phase() != CLOSED && (ran < TURN || self.fifo.is_empty())
    }

    /// A worker's queue has more to run after one action; see [`Continue`].
    pub(crate) fn continue_with(&self, job: Job) -> Continue {
        if !phase_of(self.phase()).admits(Admission::Continuation) {
            return Continue::Refused(job);
        }
        if self.fifo.is_empty() {
            return Continue::Here(job);
        }
        match self.submit(job, Admission::Continuation) {
            Ok(()) => Continue::Queued,
            Err(job) => Continue::Refused(job),
        }
    }

    /// The next job for a worker, blocking while there is none. `None`: the worker must exit.
    pub(crate) fn next(&self) -> Option<Job> {
        // Whether this worker was woken by a token and has not found a job since.
        let mut searching = false;
        loop {
            let popped = self.fifo.pop();
            if searching {
                searching = false;
                self.end_search();
            }
            if let Some(job) = popped {
                if self.phase() == CLOSED {
                    // Cancelled: nothing queued starts any more.
                    job.skip();
                    self.finish();
                    continue;
                }
                return Some(job);
            }
            match self.phase() {
                CLOSED => return None,
                DRAINING if self.outstanding.load(Ordering::SeqCst) == 0 => {
                    // Drained: nothing queued, nothing running that could add more.
                    for job in self.close() {
                        job.skip();
                    }
                    return None;
                }
                _ => searching = self.park(),
            }
        }
    }

    /// Whether a worker about to sleep has something to do instead: a job waits, the board
    /// closed, or a drain is complete and someone must close the board.
    fn must_not_sleep(&self) -> bool {
        let phase = self.phase();
        !self.fifo.is_empty()
            || phase == CLOSED
            || (phase == DRAINING && self.outstanding.load(Ordering::SeqCst) == 0)
    }

    /// Sleeps until a token or the close. Returns whether a token was taken (the worker is
    /// then searching).
    fn park(&self) -> bool {
        // Before sleeping, give the CPU away a few times and look again: on a busy machine
        // the submitter often pushes within a time slice, and a yield costs the submitter
        // nothing where a wake-up costs it a system call. (Spinning instead would burn the
        // very CPU the submitter needs when workers outnumber cores.)
        #[cfg(not(loom))]
        for _ in 0..YIELDS_BEFORE_PARKING {
            std::thread::yield_now();
            if self.must_not_sleep() {
                return false;
            }
        }
        let mut woken = false;
        self.parked.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !self.must_not_sleep() {
            let mut sleep = self.sleep.lock();
            loop {
                if sleep.tokens > 0 {
                    sleep.tokens -= 1;
                    woken = true;
                    break;
                }
                if self.phase() == CLOSED {
                    break;
                }
                self.wake.wait(&mut sleep);
            }
        }
        self.parked.fetch_sub(1, Ordering::SeqCst);
        woken
    }

    /// A worker finished the job it took (and any continuation it ran in place).
    pub(crate) fn finish(&self) {
        if self.outstanding.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.reached_idle();
        }
    }

    fn reached_idle(&self) {
        // Pairs with the fences in `begin_shutdown` and `wait_idle`: either they see our zero
        // or we see their phase change or waiter.
        fence(Ordering::SeqCst);
        if self.phase() == DRAINING {
            // The worker that finishes the last job ends the drain. (Skipping is only for
            // stragglers pushed while the board closed; none can be user work that ran.)
            for job in self.close() {
                job.skip();
            }
        }
        if self.idle_waiters.load(Ordering::SeqCst) > 0 {
            let _sleep = self.sleep.lock();
            self.idle.notify_all();
        }
    }

    /// Pops everything left in the FIFO, uncounting it.
    fn drain(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        while let Some(job) = self.fifo.pop() {
            jobs.push(job);
        }
        for _ in 0..jobs.len() {
            self.finish_quietly();
        }
        jobs
    }

    /// Like `finish`, for jobs drained on close: the close itself already wakes everyone.
    fn finish_quietly(&self) {
        if self.outstanding.fetch_sub(1, Ordering::SeqCst) == 1 && {
            fence(Ordering::SeqCst);
            self.idle_waiters.load(Ordering::SeqCst) > 0
        } {
            let _sleep = self.sleep.lock();
            self.idle.notify_all();
        }
    }

    /// Moves the board to Closed, wakes every parked worker and idle waiter, and returns what
    /// was still in the FIFO, for the caller to skip once it holds no lock.
    fn close(&self) -> Vec<Job> {
        self.phase.store(CLOSED, Ordering::SeqCst);
        {
            let _sleep = self.sleep.lock();
            self.wake.notify_all();
            self.idle.notify_all();
        }
        fence(Ordering::SeqCst);
        self.drain()
    }

    /// Starts a shutdown; returns the jobs to cancel (Cancel mode: everything in the FIFO).
    /// A later Cancel escalates an ongoing Drain.
    pub(crate) fn begin_shutdown(&self, mode: ShutdownMode) -> Vec<Job> {
        match mode {
            ShutdownMode::Cancel => {
                if self.phase() == CLOSED {
                    return Vec::new();
                }
                self.close()
            }
            ShutdownMode::Drain => {
                if self
                    .phase
                    .compare_exchange(OPEN, DRAINING, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
                {
                    return Vec::new();
                }
                fence(Ordering::SeqCst);
                if self.outstanding.load(Ordering::SeqCst) == 0 {
                    // No worker is busy, so none would notice the drain is already complete.
                    self.close()
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Jobs waiting in the FIFO.
    pub(crate) fn queued(&self) -> usize {
        self.fifo.len()
    }

    /// Waits until the FIFO is empty and no job is running, or until `deadline`.
    pub(crate) fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        self.idle_waiters.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut idle = true;
        {
            let mut sleep = self.sleep.lock();
            while self.outstanding.load(Ordering::SeqCst) != 0 {
                match deadline {
                    Some(deadline) => {
                        if self.idle.wait_until(&mut sleep, deadline).timed_out() {
                            idle = self.outstanding.load(Ordering::SeqCst) == 0;
                            break;
                        }
                    }
                    None => self.idle.wait(&mut sleep),
                }
            }
        }
        self.idle_waiters.fetch_sub(1, Ordering::SeqCst);
        idle
    }
}
