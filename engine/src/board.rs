//! The threaded job board: a FIFO plus direct hand-off to idle workers.
//!
//! Every worker that finds the FIFO empty registers a one-slot hand-off channel in `waiting`
//! and blocks on it. A submitter takes the most recently idle worker (its caches are the
//! warmest) and sends the job straight to it; only when no worker waits does the job go to the
//! FIFO. Registration and the emptiness check happen under the board lock, as do the
//! submitter's choice between the two, so a job can never sit in the FIFO while a worker sleeps
//! (no lost wake-ups), and a worker is handed at most one job per registration.

use std::collections::VecDeque;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::admission::{Admission, Phase};
use crate::job::Job;
use crate::shutdown::ShutdownMode;
use crate::sync::{Condvar, Mutex};

/// What a hand-off channel carries: a job, or `None` to make the worker look at the board
/// again (used on shutdown).
type Slot = Option<Job>;

/// A worker's private hand-off channel.
pub(crate) struct HandOff {
    tx: Sender<Slot>,
    rx: Receiver<Slot>,
}

impl HandOff {
    pub(crate) fn new() -> Self {
        // One slot is enough: a worker is registered (and so can be sent to) once per wait.
        let (tx, rx) = crossbeam_channel::bounded(1);
        Self { tx, rx }
    }
}

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

struct BoardState {
    fifo: VecDeque<Job>,
    waiting: Vec<Sender<Slot>>,
    /// Jobs taken by a worker (popped or handed off) and not yet finished.
    active: usize,
    phase: Phase,
}

impl BoardState {
    fn is_idle(&self) -> bool {
        self.fifo.is_empty() && self.active == 0
    }

    fn wake_all_waiting(&mut self) {
        for tx in self.waiting.drain(..) {
            // Cannot be full (one send per registration) and the worker is blocked on the
            // other end, so this only fails if that worker is gone, and then nobody cares.
            let _ = tx.try_send(None);
        }
    }
}

/// The job board of a threaded system.
///
/// Aligned to its own cache lines: every worker takes its lock for every job, and it must not
/// share a line with the owning `Arc`'s reference counts, which submitters touch (a shared
/// line would make each of their `Weak::upgrade`s a cache miss).
#[repr(align(128))]
pub(crate) struct Board {
    state: Mutex<BoardState>,
    /// Signalled when the board becomes idle (FIFO empty, nothing active).
    idle: Condvar,
}

impl Board {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(BoardState {
                fifo: VecDeque::new(),
                waiting: Vec::new(),
                active: 0,
                phase: Phase::Open,
            }),
            idle: Condvar::new(),
        }
    }

    pub(crate) fn submit(&self, job: Job, admission: Admission) -> Result<(), Job> {
        let mut state = self.state.lock();
        if !state.phase.admits(admission) {
            return Err(job);
        }
        let mut job = job;
        while let Some(tx) = state.waiting.pop() {
            match tx.try_send(Some(job)) {
                Ok(()) => {
                    state.active += 1;
                    return Ok(());
                }
                // Not reachable while workers only leave `recv` with a message; if it ever
                // happens, try the next waiting worker or fall back to the FIFO.
                Err(refused) => match refused.into_inner() {
                    Some(back) => job = back,
                    None => return Ok(()),
                },
            }
        }
        state.fifo.push_back(job);
        Ok(())
    }

    /// A worker's queue has more to run after one action; see [`Continue`].
    pub(crate) fn continue_with(&self, job: Job) -> Continue {
        let mut state = self.state.lock();
        if !state.phase.admits(Admission::Continuation) {
            return Continue::Refused(job);
        }
        if state.fifo.is_empty() {
            Continue::Here(job)
        } else {
            state.fifo.push_back(job);
            Continue::Queued
        }
    }

    /// The next job for a worker, blocking while there is none. `None`: the worker must exit.
    pub(crate) fn next(&self, hand_off: &HandOff) -> Option<Job> {
        let state = self.state.lock();
        self.next_locked(state, hand_off)
    }

    /// A worker finished the job it took (and any continuation it ran in place) and wants the
    /// next one: both under one lock acquisition.
    pub(crate) fn finish_and_next(&self, hand_off: &HandOff) -> Option<Job> {
        let mut state = self.state.lock();
        state.active = state.active.saturating_sub(1);
        if state.is_idle() {
            self.idle.notify_all();
        }
        self.next_locked(state, hand_off)
    }

    fn next_locked<'a>(
        &'a self,
        mut state: crate::sync::MutexGuard<'a, BoardState>,
        hand_off: &HandOff,
    ) -> Option<Job> {
        loop {
            if let Some(job) = state.fifo.pop_front() {
                state.active += 1;
                return Some(job);
            }
            match state.phase {
                Phase::Open => {}
                Phase::Draining => {
                    if state.active == 0 {
                        // Drained: nothing queued, nothing running that could add more.
                        state.phase = Phase::Closed;
                        state.wake_all_waiting();
                        self.idle.notify_all();
                        return None;
                    }
                }
                Phase::Closed => return None,
            }
            state.waiting.push(hand_off.tx.clone());
            drop(state);
            let handed = hand_off.rx.recv();
            if let Ok(Some(job)) = handed {
                // The submitter counted it as active already.
                return Some(job);
            }
            state = self.state.lock();
        }
    }

    /// Starts a shutdown; returns the jobs to cancel (Cancel mode: everything in the FIFO).
    /// A later Cancel escalates an ongoing Drain.
    pub(crate) fn begin_shutdown(&self, mode: ShutdownMode) -> Vec<Job> {
        let mut state = self.state.lock();
        match (state.phase, mode) {
            (Phase::Closed, _) | (Phase::Draining, ShutdownMode::Drain) => Vec::new(),
            (_, ShutdownMode::Cancel) => {
                state.phase = Phase::Closed;
                state.wake_all_waiting();
                self.idle.notify_all();
                let jobs = state.fifo.drain(..).collect();
                jobs
            }
            (Phase::Open, ShutdownMode::Drain) => {
                state.phase = Phase::Draining;
                if state.is_idle() {
                    // No worker is busy, so none would notice the drain is already complete.
                    state.phase = Phase::Closed;
                    state.wake_all_waiting();
                }
                Vec::new()
            }
        }
    }

    /// Jobs waiting in the FIFO.
    pub(crate) fn queued(&self) -> usize {
        self.state.lock().fifo.len()
    }

    /// Waits until the FIFO is empty and no job is running, or until `deadline`.
    pub(crate) fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        let mut state = self.state.lock();
        while !state.is_idle() {
            match deadline {
                Some(deadline) => {
                    if self.idle.wait_until(&mut state, deadline).timed_out() {
                        return state.is_idle();
                    }
                }
                None => self.idle.wait(&mut state),
            }
        }
        true
    }
}
