//! Plain tasks: one-shot, delayed and periodic, and the handle that observes and cancels them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info_span};

use crate::counters::CounterCells;
use crate::failure::{run_caught, ActionFailure};
use crate::shared::Shared;
use crate::sync::Mutex;
use crate::ActionResult;

/// A one-shot body.
pub(crate) type OnceBody = Box<dyn FnOnce() -> ActionResult + Send + 'static>;
/// A periodic body.
pub(crate) type RepeatBody = Box<dyn FnMut() -> ActionResult + Send + 'static>;

/// Where a task is in its life, as seen through a [`TaskHandle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Waiting to run: on the job board, or waiting for its time (delayed and periodic tasks;
    /// a periodic task is back here between firings).
    Queued,
    /// Running on a worker (or, in manual mode, on the thread that called `run_one`).
    Running,
    /// Ran and returned `Ok` (a periodic task never ends here; it runs until cancelled).
    Done,
    /// Returned `Err` or panicked; see [`TaskHandle::failure`].
    Failed,
    /// Cancelled before it ran (or, for a periodic task, before its next firing).
    Cancelled,
}

enum Body {
    Once(OnceBody),
    Repeat { f: RepeatBody, period: Duration },
}

/// The task's state; the body travels with the state that may still run it, so a task that
/// can no longer run provably holds no closure.
enum Slot {
    /// Waiting for the clock (not counted as queued).
    Delayed(Body),
    /// On the board (counted as queued).
    Ready(Body),
    Running,
    Done,
    Failed(ActionFailure),
    Cancelled,
}

struct TaskInner {
    slot: Slot,
    cancel_requested: bool,
}

/// The shared state of one task.
pub(crate) struct TaskCore {
    name: String,
    counters: Arc<CounterCells>,
    inner: Mutex<TaskInner>,
}

impl TaskCore {
    /// A one-shot task ready to go on the board (counted as queued now).
    pub(crate) fn ready(name: String, counters: Arc<CounterCells>, f: OnceBody) -> Arc<Self> {
        counters.enqueued(1);
        Self::with_slot(name, counters, Slot::Ready(Body::Once(f)))
    }

    /// A one-shot task waiting for the clock.
    pub(crate) fn delayed(name: String, counters: Arc<CounterCells>, f: OnceBody) -> Arc<Self> {
        Self::with_slot(name, counters, Slot::Delayed(Body::Once(f)))
    }

    /// A periodic task waiting for its first firing.
    pub(crate) fn periodic(
        name: String,
        counters: Arc<CounterCells>,
        f: RepeatBody,
        period: Duration,
    ) -> Arc<Self> {
        Self::with_slot(name, counters, Slot::Delayed(Body::Repeat { f, period }))
    }

    fn with_slot(name: String, counters: Arc<CounterCells>, slot: Slot) -> Arc<Self> {
        Arc::new(Self {
            name,
            counters,
            inner: Mutex::new(TaskInner {
                slot,
                cancel_requested: false,
            }),
        })
    }

    /// The task's time came: Delayed -> Ready. False if it was cancelled meanwhile (then it
    /// must not go on the board).
    pub(crate) fn make_ready(&self) -> bool {
        let mut inner = self.inner.lock();
        match std::mem::replace(&mut inner.slot, Slot::Running) {
            Slot::Delayed(body) => {
                inner.slot = Slot::Ready(body);
                self.counters.enqueued(1);
                true
            }
            other => {
                inner.slot = other;
                false
            }
        }
    }

    /// Cancels the task if it has not started; a running task is left to finish. The body is
    /// dropped after the lock is released, since dropping user captures may re-enter the
    /// engine.
    pub(crate) fn abandon(&self) {
        let body = {
            let mut inner = self.inner.lock();
            inner.cancel_requested = true;
            match std::mem::replace(&mut inner.slot, Slot::Cancelled) {
                Slot::Ready(body) => {
                    self.counters.cancelled_queued(1);
                    Some(body)
                }
                Slot::Delayed(body) => {
                    self.counters.cancelled_delayed();
                    Some(body)
                }
                other => {
                    inner.slot = other;
                    None
                }
            }
        };
        drop(body);
    }

    /// Runs the task if it is still Ready (a task cancelled while on the board is skipped
    /// here, when its turn comes). A periodic task that succeeds is re-armed `period` after
    /// the clock reading at the end of the run.
    pub(crate) fn run(self: &Arc<Self>, shared: &Shared) {
        let body = {
            let mut inner = self.inner.lock();
            match std::mem::replace(&mut inner.slot, Slot::Running) {
                Slot::Ready(body) => body,
                other => {
                    inner.slot = other;
                    return;
                }
            }
        };
        self.counters.started();
        let span = info_span!("task", task = %self.name);
        let _entered = span.enter();
        let (outcome, rearm) = match body {
            Body::Once(f) => (run_caught(f), None),
            Body::Repeat { mut f, period } => {
                let outcome = run_caught(&mut f);
                // A periodic task that failed stops: its closure is dropped here.
                let rearm = outcome.is_ok().then_some((f, period));
                (outcome, rearm)
            }
        };
        self.counters.finished(outcome.is_ok());
        let failure = outcome.err().map(|fault| {
            let failure = fault.into_failure(&self.name, &self.name);
            error!(
                task = %self.name,
                panicked = failure.panicked,
                message = %failure.message,
                "task failed"
            );
            failure
        });
        // Whatever closure is not put back is dropped after the lock is released.
        let mut leftover = None;
        let next_due = {
            let mut inner = self.inner.lock();
            match (failure, rearm) {
                (Some(failure), _) => {
                    inner.slot = Slot::Failed(failure);
                    None
                }
                (None, None) => {
                    inner.slot = Slot::Done;
                    None
                }
                (None, Some(repeat)) if inner.cancel_requested => {
                    // Cancelled while running: the next firing is simply never armed.
                    inner.slot = Slot::Cancelled;
                    leftover = Some(repeat);
                    None
                }
                (None, Some((f, period))) => {
                    inner.slot = Slot::Delayed(Body::Repeat { f, period });
                    Some(period)
                }
            }
        };
        drop(leftover);
        if let Some(period) = next_due {
            let due = shared.now().saturating_add(period);
            if let Err(task) = shared.timers().arm(Arc::clone(self), due) {
                task.abandon();
            }
        }
    }

    fn state(&self) -> TaskState {
        match self.inner.lock().slot {
            Slot::Delayed(_) | Slot::Ready(_) => TaskState::Queued,
            Slot::Running => TaskState::Running,
            Slot::Done => TaskState::Done,
            Slot::Failed(_) => TaskState::Failed,
            Slot::Cancelled => TaskState::Cancelled,
        }
    }
}

impl Drop for TaskCore {
    fn drop(&mut self) {
        // A task dropped while still waiting (e.g. left on a board that was torn down) is
        // accounted as cancelled so the counters stay balanced.
        match self.inner.get_mut().slot {
            Slot::Ready(_) => self.counters.cancelled_queued(1),
            Slot::Delayed(_) => self.counters.cancelled_delayed(),
            _ => {}
        }
    }
}

/// A cheap, cloneable handle to one task: observe it, cancel it.
///
/// Dropping the handle does not cancel the task.
///
/// ```
/// use snapseal_engine::{TaskState, TaskSystem};
///
/// let system = TaskSystem::manual_fifo();
/// let handle = system.spawn("compact", || Ok(()));
/// handle.cancel(); // not started yet: it never will
/// system.run_until_idle();
/// assert_eq!(handle.state(), TaskState::Cancelled);
/// assert_eq!(system.counters().cancelled, 1);
/// ```
#[derive(Clone)]
pub struct TaskHandle {
    core: Arc<TaskCore>,
}

impl TaskHandle {
    pub(crate) fn new(core: Arc<TaskCore>) -> Self {
        Self { core }
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Cancels the task. A task that has not started will never start (it stays where it is
    /// and is skipped when its turn comes; it is counted as cancelled now). A running task
    /// finishes; a periodic task is then not re-armed. Idempotent.
    pub fn cancel(&self) {
        self.core.abandon();
    }

    /// Whether the task was cancelled (by [`cancel`](Self::cancel) or by a shutdown).
    pub fn is_cancelled(&self) -> bool {
        self.core.inner.lock().cancel_requested
    }

    /// Where the task is now.
    pub fn state(&self) -> TaskState {
        self.core.state()
    }

    /// The failure report, once the task has failed.
    pub fn failure(&self) -> Option<ActionFailure> {
        match &self.core.inner.lock().slot {
            Slot::Failed(failure) => Some(failure.clone()),
            _ => None,
        }
    }
}

impl fmt::Debug for TaskHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("name", &self.core.name)
            .field("state", &self.state())
            .finish()
    }
}
