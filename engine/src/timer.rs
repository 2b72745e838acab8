//! Delayed and periodic tasks kept against the engine clock, and the thread that drives them
//! in threaded mode.
//!
//! Timers only ever move to the board through [`Timers::take_due`]: from `tick` (manual mode,
//! or a public `tick` call in threaded mode) or from the timer thread. A firing never puts a
//! task on the board directly, so even a zero period cannot loop without the clock moving.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shared::Shared;
use crate::sync::{Condvar, Mutex};
use crate::task::TaskCore;

/// One armed timer. Ordered so that `BinaryHeap` (a max-heap) pops the earliest `due` first,
/// and among equal `due`s the one armed first.
struct Entry {
    due: Duration,
    seq: u64,
    task: Arc<TaskCore>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.seq == other.seq
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

struct TimerState {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
    /// The manual clock: the sum of all `tick`s (unused in threaded mode).
    manual_now: Duration,
    stopped: bool,
}

impl TimerState {
    fn pop_due(&mut self, now: Duration) -> Vec<Arc<TaskCore>> {
        let mut due = Vec::new();
        while self.heap.peek().is_some_and(|entry| entry.due <= now) {
            if let Some(entry) = self.heap.pop() {
                due.push(entry.task);
            }
        }
        due
    }
}

/// The armed timers of one system.
pub(crate) struct Timers {
    state: Mutex<TimerState>,
    /// Wakes the timer thread: an earlier timer was armed, or the timers were stopped.
    wake: Condvar,
}

impl Timers {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(TimerState {
                heap: BinaryHeap::new(),
                next_seq: 0,
                manual_now: Duration::ZERO,
                stopped: false,
            }),
            wake: Condvar::new(),
        }
    }

    /// Arms `task` to become ready at clock reading `due`. Refused once stopped.
    pub(crate) fn arm(&self, task: Arc<TaskCore>, due: Duration) -> Result<(), Arc<TaskCore>> {
        let mut state = self.state.lock();
        if state.stopped {
            return Err(task);
        }
        let earliest = state.heap.peek().is_none_or(|entry| due < entry.due);
        let seq = state.next_seq;
        state.next_seq = seq.wrapping_add(1);
        state.heap.push(Entry { due, seq, task });
        if earliest {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Manual clock reading.
    pub(crate) fn manual_now(&self) -> Duration {
        self.state.lock().manual_now
    }

    /// Manual mode: advances the clock and returns the timers now due, in firing order.
    pub(crate) fn advance(&self, elapsed: Duration) -> Vec<Arc<TaskCore>> {
        let mut state = self.state.lock();
        state.manual_now = state.manual_now.saturating_add(elapsed);
        let now = state.manual_now;
        state.pop_due(now)
    }

    /// Returns the timers due at clock reading `now`, in firing order.
    pub(crate) fn take_due(&self, now: Duration) -> Vec<Arc<TaskCore>> {
        self.state.lock().pop_due(now)
    }

    /// Stops the timers for good: wakes the timer thread so it exits, and returns every armed
    /// task for the caller to cancel. Idempotent.
    pub(crate) fn stop(&self) -> Vec<Arc<TaskCore>> {
        let mut state = self.state.lock();
        state.stopped = true;
        self.wake.notify_all();
        state.heap.drain().map(|entry| entry.task).collect()
    }

    /// Number of armed timers (cancelled ones not yet reached included).
    pub(crate) fn armed(&self) -> usize {
        self.state.lock().heap.len()
    }
}

/// Body of the timer thread. It sleeps until the earliest timer is due (indefinitely while
/// none is armed), but wakes at most once per `resolution`, so timers due close together are
/// enqueued in one batch.
pub(crate) fn timer_main(shared: Arc<Shared>, start: Instant, resolution: Duration) {
    let timers = shared.timers();
    let mut not_before = start;
    loop {
        let due = {
            let mut state = timers.state.lock();
            loop {
                if state.stopped {
                    return;
                }
                let target = state
                    .heap
                    .peek()
                    .and_then(|entry| start.checked_add(entry.due))
                    .map(|at| at.max(not_before));
                match target {
                    Some(at) if at <= Instant::now() => {
                        break state.pop_due(shared.now());
                    }
                    Some(at) => {
                        timers.wake.wait_until(&mut state, at);
                    }
                    // Nothing armed (or only timers beyond the range of `Instant`).
                    None => timers.wake.wait(&mut state),
                }
            }
        };
        let fired_at = Instant::now();
        not_before = fired_at.checked_add(resolution).unwrap_or(fired_at);
        shared.fire(due);
    }
}
