//! `OrderedTasks`: a serial queue of named actions that is itself a job on the board.
//!
//! State machine of the queue's place on the board (`Sched`), all under the queue's lock:
//!
//! ```text
//!   Idle --add_action/resume (pending, not paused, not cancelled)--> Scheduled   [submit]
//!   Scheduled --picked, runnable--> Running --action returned, more runnable--> Scheduled [resubmit]
//!   Scheduled --picked, paused/cancelled/empty--> Idle
//!   Running --action returned, nothing runnable--> Idle
//!   Running --action returned, more runnable, turn not over--> Running [next action popped
//!                                                              in the same lock step]
//! ```
//!
//! Only the thread that moves the queue Idle -> Scheduled submits it, and only the worker that
//! moves it Running -> Scheduled resubmits it, so the queue is on a board at most once and at
//! most one of its actions runs at a time. An action added while the queue is Scheduled or
//! Running is picked up by the pick in flight or by the one the running worker schedules when
//! it sees the action pending — that check and the `add_action` push happen under the same
//! lock, so neither can miss the other (the loom model in `tests/loom_handoff.rs` checks this).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info_span};

use crate::admission::Admission;
use crate::counters::CounterCells;
use crate::failure::{run_caught, ActionFailure};
use crate::inline_body::InlineBody;
use crate::job::Job;
use crate::shared::Shared;
use crate::sync::{Condvar, Mutex};

type FailureCallback = Arc<dyn Fn(&ActionFailure) + Send + Sync + 'static>;

struct Action {
    /// Borrowed for the usual `&'static str` names: no allocation per action.
    name: Cow<'static, str>,
    /// In place for the usual small closures: no allocation either.
    body: InlineBody,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sched {
    /// Not on a board.
    Idle,
    /// On a board, waiting to be picked.
    Scheduled,
    /// One of its actions is running.
    Running,
}

struct QueueState {
    pending: VecDeque<Action>,
    sched: Sched,
    paused: bool,
    cancelled: bool,
    failure: Option<ActionFailure>,
    callbacks: Vec<FailureCallback>,
}

impl QueueState {
    fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.sched != Sched::Running
    }

    fn runnable(&self) -> bool {
        !self.cancelled && !self.paused && !self.pending.is_empty()
    }
}

/// The shared state of one queue.
///
/// Aligned to its own cache lines so that the `Arc` reference counts in front of it (bumped by
/// every submission, dropped by the worker) do not share a line with its lock.
#[repr(align(128))]
pub(crate) struct QueueCore {
    name: String,
    /// The system's shared state, held strongly: `add_action` reads it for every action, and
    /// upgrading a `Weak` each time cost two atomic read-modify-writes per action (the
    /// engine bench's profile). This does not keep the *system* alive: that is the
    /// `TaskSystem` handles' `Owner`, whose drop shuts the system down (refusing work from
    /// then on), so a queue that outlives its system refuses new actions as before. Nor does
    /// it leak: a queue holds the board only while it is off it or running; a queue on the
    /// board (the one cycle, board → queue → board) is taken off by the shutdown.
    system: Arc<Shared>,
    counters: Arc<CounterCells>,
    state: Mutex<QueueState>,
    /// Signalled whenever the queue may have become idle.
    idle: Condvar,
}

impl QueueCore {
    pub(crate) fn new(name: String, system: Arc<Shared>, counters: Arc<CounterCells>) -> Self {
        Self {
            name,
            system,
            counters,
            state: Mutex::new(QueueState {
                pending: VecDeque::new(),
                sched: Sched::Idle,
                paused: false,
                cancelled: false,
                failure: None,
                callbacks: Vec::new(),
            }),
            idle: Condvar::new(),
        }
    }

    fn add(self: &Arc<Self>, name: Cow<'static, str>, body: InlineBody) -> bool {
        let shared = &self.system;
        if !shared.accepting() {
            return false;
        }
        let action = Action { name, body };
        let mut state = self.state.lock();
        if state.cancelled {
            drop(state);
            drop(action);
            return false;
        }
        state.pending.push_back(action);
        self.counters.enqueued(1);
        let submit = state.sched == Sched::Idle && !state.paused;
        if submit {
            state.sched = Sched::Scheduled;
        }
        drop(state);
        if submit {
            if let Err(job) = shared.submit(Job::Queue(Arc::clone(self)), Admission::New) {
                // Shutdown won the race: everything pending is cancelled, ours included.
                job.skip();
                return false;
            }
        }
        true
    }

    /// Runs the next action, if the queue is still runnable, and then the ones after it for as
    /// long as `keep_going(actions run so far)` (asked under the queue's lock; it must only
    /// read atomics) allows. Each further action costs one lock acquisition: the check that the
    /// queue is still runnable and the pop of its next action are one step, and the queue
    /// stays Running in between. Returns true when the queue has more to run and was moved
    /// back to Scheduled: the caller must put it back on the board.
    pub(crate) fn run_next(&self, keep_going: &dyn Fn(usize) -> bool) -> bool {
        let mut state = self.state.lock();
        let mut ran = 0;
        loop {
            let next = if state.cancelled || state.paused {
                None
            } else {
                state.pending.pop_front()
            };
            let Some(action) = next else {
                // Paused, cancelled or emptied while on the board (or while it ran): off the
                // board until an add or a resume submits it again.
                state.sched = Sched::Idle;
                self.idle.notify_all();
                return false;
            };
            state.sched = Sched::Running;
            drop(state);
            self.counters.started();
            let Action { name, body } = action;
            let outcome = {
                let span = info_span!("action", queue = %self.name, action = %name);
                let _entered = span.enter();
                run_caught(move || body.call())
            };
            self.counters.finished(outcome.is_ok());
            if let Err(fault) = outcome {
                self.fail(fault.into_failure(&self.name, &name));
                return false;
            }
            drop(name);
            ran += 1;
            state = self.state.lock();
            if !state.runnable() {
                state.sched = Sched::Idle;
                self.idle.notify_all();
                return false;
            }
            if !keep_going(ran) {
                state.sched = Sched::Scheduled;
                return true;
            }
        }
    }

    /// An action failed: record it, cancel the rest, report, and only then go Idle, so that
    /// whoever sees the queue idle also sees the failure fully reported.
    fn fail(&self, failure: ActionFailure) {
        let (dropped, callbacks) = {
            let mut state = self.state.lock();
            state.cancelled = true;
            state.failure = Some(failure.clone());
            (std::mem::take(&mut state.pending), state.callbacks.clone())
        };
        self.counters.cancelled_queued(dropped.len() as u64);
        drop(dropped);
        error!(
            queue = %failure.queue,
            action = %failure.action,
            panicked = failure.panicked,
            message = %failure.message,
            "action failed; the rest of its queue is cancelled"
        );
        for callback in callbacks {
            call_back(&callback, &failure);
        }
        let mut state = self.state.lock();
        state.sched = Sched::Idle;
        self.idle.notify_all();
    }

    /// Cancels everything pending. Returns without waiting for a running action.
    fn cancel(&self) {
        let dropped = {
            let mut state = self.state.lock();
            if state.cancelled {
                return;
            }
            state.cancelled = true;
            self.idle.notify_all();
            std::mem::take(&mut state.pending)
        };
        self.counters.cancelled_queued(dropped.len() as u64);
        drop(dropped);
    }

    /// The board refused the queue or was torn down while the queue was on it: cancel the
    /// rest and leave the board.
    pub(crate) fn abandon(&self) {
        let dropped = {
            let mut state = self.state.lock();
            state.cancelled = true;
            if state.sched == Sched::Scheduled {
                state.sched = Sched::Idle;
            }
            self.idle.notify_all();
            std::mem::take(&mut state.pending)
        };
        self.counters.cancelled_queued(dropped.len() as u64);
        drop(dropped);
    }

    fn pause(&self) {
        self.state.lock().paused = true;
    }

    fn resume(self: &Arc<Self>) {
        let submit = {
            let mut state = self.state.lock();
            state.paused = false;
            let submit = state.sched == Sched::Idle && state.runnable();
            if submit {
                state.sched = Sched::Scheduled;
            }
            submit
        };
        if !submit {
            return;
        }
        if let Err(job) = self
            .system
            .submit(Job::Queue(Arc::clone(self)), Admission::New)
        {
            job.skip();
        }
    }

    fn on_failure(&self, callback: FailureCallback) {
        let already = {
            let mut state = self.state.lock();
            match &state.failure {
                Some(failure) => Some(failure.clone()),
                None => {
                    state.callbacks.push(Arc::clone(&callback));
                    None
                }
            }
        };
        if let Some(failure) = already {
            call_back(&callback, &failure);
        }
    }

    fn wait_idle(&self, timeout: Duration) -> bool {
        {
            let shared = &self.system;
            if shared.is_manual() {
                // No thread will make progress for us: run the board here until this queue is
                // idle or nothing is ready (same picks as `run_one`, so still deterministic).
                loop {
                    if self.state.lock().is_idle() {
                        return true;
                    }
                    if !shared.run_one() {
                        return self.state.lock().is_idle();
                    }
                }
            }
        }
        let deadline = Instant::now().checked_add(timeout);
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

impl Drop for QueueCore {
    fn drop(&mut self) {
        // Actions still pending when the last handle goes (a paused queue, a queue that
        // outlived its system) were accepted and will never run.
        let pending = self.state.get_mut().pending.len() as u64;
        self.counters.cancelled_queued(pending);
    }
}

fn call_back(callback: &FailureCallback, failure: &ActionFailure) {
    // A panicking callback must not take the worker down with it.
    if catch_unwind(AssertUnwindSafe(|| callback(failure))).is_err() {
        error!(queue = %failure.queue, "an on_failure callback panicked");
    }
}

/// A serial queue of named actions, run on the engine's workers one at a time, in the order
/// they were added.
///
/// Cheap to clone (an `Arc` inside); all clones are the same queue. The queue is itself a job
/// on the [`TaskSystem`](crate::TaskSystem)'s board: each time the board picks it, its next
/// action runs (threaded mode: and the ones after it, for a turn of a few actions or while
/// nothing else waits), and if more remain the queue goes back on the board (to the back of
/// the line when other jobs are waiting, so busy queues share the workers fairly). An action may add
/// actions to its own queue by capturing a clone. See the crate docs for the exact ordering
/// guarantees.
///
/// Holding an `OrderedTasks` does not keep its `TaskSystem` alive: once the system is gone,
/// `add_action` returns `false`.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use parking_lot::Mutex;
/// use snapseal_engine::{EngineConfig, TaskSystem};
///
/// let system = TaskSystem::threaded(EngineConfig::default())?;
/// let queue = system.ordered("generation-42");
/// let log = Arc::new(Mutex::new(Vec::new()));
/// for step in ["serialise", "persist", "publish"] {
///     let log = Arc::clone(&log);
///     queue.add_action(step, move || {
///         log.lock().push(step);
///         Ok(())
///     });
/// }
/// assert!(queue.wait_idle(Duration::from_secs(10)));
/// // Actions run one at a time, in the order they were added, whichever worker runs them.
/// assert_eq!(*log.lock(), ["serialise", "persist", "publish"]);
/// # Ok::<(), snapseal_engine::EngineError>(())
/// ```
#[derive(Clone)]
pub struct OrderedTasks {
    core: Arc<QueueCore>,
}

impl OrderedTasks {
    pub(crate) fn new(core: QueueCore) -> Self {
        Self {
            core: Arc::new(core),
        }
    }

    /// The queue's name (carried by the tracing span of each of its actions).
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Appends an action. Returns `true` if it was accepted: it then runs after every action
    /// accepted before it, unless the queue is cancelled, fails or the system is shut down
    /// first (then it is counted as cancelled). Returns `false` — the action is dropped
    /// without running — if the queue was already cancelled or failed, or the system is
    /// shutting down or gone.
    ///
    /// Cost: one lock of the queue (and a push onto the job board if the queue was idle).
    /// Beyond the queue's amortised growth, nothing is allocated for a `&'static str` name
    /// and a closure whose captures fit four machine words at a word's alignment (an `Arc`
    /// or two and an index, say): such a closure is stored in the queue itself. A larger
    /// one is boxed.
    ///
    /// An action may add the next step to its own queue once it knows it; that step still
    /// runs after everything added before it:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use parking_lot::Mutex;
    /// use snapseal_engine::{ShutdownMode, TaskSystem};
    ///
    /// let system = TaskSystem::manual(3);
    /// let queue = system.ordered("generation-9");
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let (this_queue, l) = (queue.clone(), Arc::clone(&log));
    /// assert!(queue.add_action("serialise", move || {
    ///     l.lock().push("serialise");
    ///     let l = Arc::clone(&l);
    ///     this_queue.add_action("persist", move || {
    ///         l.lock().push("persist");
    ///         Ok(())
    ///     });
    ///     Ok(())
    /// }));
    /// let l = Arc::clone(&log);
    /// queue.add_action("notify", move || {
    ///     l.lock().push("notify");
    ///     Ok(())
    /// });
    /// system.run_until_idle();
    /// assert_eq!(*log.lock(), ["serialise", "notify", "persist"]);
    ///
    /// system.shutdown(ShutdownMode::Drain);
    /// assert!(!queue.add_action("late", || Ok(()))); // refused: dropped without running
    /// ```
    pub fn add_action(
        &self,
        name: impl Into<Cow<'static, str>>,
        f: impl FnOnce() -> crate::ActionResult + Send + 'static,
    ) -> bool {
        self.core.add(name.into(), InlineBody::new(f))
    }

    /// Stops starting actions: once `pause` returns no further action of this queue starts
    /// (one already running finishes). Actions can still be added.
    ///
    /// ```
    /// use snapseal_engine::TaskSystem;
    ///
    /// let system = TaskSystem::manual(7);
    /// let queue = system.ordered("gated");
    /// queue.pause(); // e.g. until the ledger commits the evidence
    /// queue.add_action("persist", || Ok(()));
    /// system.run_until_idle();
    /// assert_eq!(queue.pending(), 1); // held back
    /// queue.resume();
    /// system.run_until_idle();
    /// assert!(queue.is_idle());
    /// ```
    pub fn pause(&self) {
        self.core.pause();
    }

    /// Undoes [`pause`](Self::pause): if actions are pending the queue goes back on the board
    /// (at the back of the line). During or after a shutdown the pending actions are
    /// cancelled instead.
    pub fn resume(&self) {
        self.core.resume();
    }

    /// Cancels the queue: pending actions will never run (they are dropped and counted as
    /// cancelled now); a running action finishes. Later `add_action` calls return `false`.
    /// The queue's place on the board, if it has one, is skipped when reached. Idempotent.
    pub fn cancel(&self) {
        self.core.cancel();
    }

    /// Whether the queue was cancelled — by [`cancel`](Self::cancel), by a failed action, or
    /// by a shutdown that discarded its work.
    pub fn is_cancelled(&self) -> bool {
        self.core.state.lock().cancelled
    }

    /// Actions accepted and not yet started.
    pub fn pending(&self) -> usize {
        self.core.state.lock().pending.len()
    }

    /// Nothing pending and no action running. (A paused queue with pending actions is not
    /// idle.)
    pub fn is_idle(&self) -> bool {
        self.core.state.lock().is_idle()
    }

    /// The first failure, once an action has returned `Err` or panicked.
    pub fn failure(&self) -> Option<ActionFailure> {
        self.core.state.lock().failure.clone()
    }

    /// Registers a callback for the queue's failure. It is called once, on the worker that
    /// ran the failing action, after the rest of the queue was cancelled and before the queue
    /// reports idle. If the queue has already failed it is called right away, on the calling
    /// thread. A panic in the callback is caught and logged.
    ///
    /// A failed action stops its queue: what comes after it never runs.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use snapseal_engine::TaskSystem;
    ///
    /// let system = TaskSystem::manual(1);
    /// let queue = system.ordered("generation-7");
    /// let reported = Arc::new(AtomicBool::new(false));
    /// let seen = Arc::clone(&reported);
    /// queue.on_failure(move |f| seen.store(f.to_string().contains("disk full"), Ordering::SeqCst));
    /// queue.add_action("write", || Err("disk full".into()));
    /// queue.add_action("rename", || unreachable!("never runs after a failure"));
    /// system.run_until_idle();
    /// assert!(reported.load(Ordering::SeqCst));
    /// assert!(queue.is_cancelled());
    /// assert!(!queue.add_action("late", || Ok(()))); // refused from now on
    /// ```
    pub fn on_failure(&self, f: impl Fn(&ActionFailure) + Send + Sync + 'static) {
        self.core.on_failure(Arc::new(f));
    }

    /// Waits until the queue is idle (see [`is_idle`](Self::is_idle)) or `timeout` passes;
    /// returns whether it is idle.
    ///
    /// Threaded mode: blocks the caller. Calling it from one of this queue's own actions can
    /// only time out (the queue is busy running the caller).
    ///
    /// Manual mode: nothing else would make progress, so it runs ready jobs on the calling
    /// thread (the same seeded picks as [`run_one`](crate::TaskSystem::run_one), other queues'
    /// jobs included) until this queue is idle or nothing is ready; `timeout` is ignored and
    /// the clock does not move, so actions waiting behind a pause or a timer stay pending.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.core.wait_idle(timeout)
    }
}

impl fmt::Debug for OrderedTasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.core.state.lock();
        f.debug_struct("OrderedTasks")
            .field("name", &self.core.name)
            .field("pending", &state.pending.len())
            .field("sched", &state.sched)
            .field("paused", &state.paused)
            .field("cancelled", &state.cancelled)
            .finish()
    }
}
