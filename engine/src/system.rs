//! `TaskSystem`: the public handle to a task system.

use std::fmt;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use crate::admission::Admission;
use crate::counters::Counters;
use crate::job::Job;
use crate::manual::Pick;
use crate::ordered::{OrderedTasks, QueueCore};
use crate::shared::Shared;
use crate::shutdown::ShutdownMode;
use crate::task::{TaskCore, TaskHandle};
use crate::timer::timer_main;
use crate::worker::{mark_current_thread, worker_main};
use crate::{ActionResult, EngineConfig, EngineError};

/// Owned by the `TaskSystem` clones only (workers and queues reach `Shared` without it), so
/// its drop is exactly "the last `TaskSystem` handle went away".
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.release();
    }
}

/// A task system: worker threads (or none, in manual mode), a FIFO job board, timers.
///
/// A cheap, cloneable handle; all clones are the same system. Dropping the last clone shuts
/// the system down with [`ShutdownMode::Cancel`] (queued work is cancelled, running work
/// finishes, threads are joined) — call [`shutdown`](Self::shutdown) with
/// [`ShutdownMode::Drain`] first to have queued work run. If the last clone is dropped on one
/// of the system's own threads (say, by an action that held it), the shutdown is started but
/// the threads are detached instead of joined, since a thread cannot join itself; they exit
/// on their own.
///
/// Tasks and queues do not keep the system alive, but a closure that captures a
/// `TaskSystem` does while it is held — a periodic task capturing its own system keeps it
/// alive until the task is cancelled; capture a [`WeakTaskSystem`] there instead.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use snapseal_engine::{EngineConfig, ShutdownMode, TaskSystem};
///
/// let mut config = EngineConfig::default();
/// config.workers = Some(2);
/// let system = TaskSystem::threaded(config)?;
/// let done = Arc::new(AtomicU32::new(0));
/// for i in 0..8 {
///     let done = Arc::clone(&done);
///     system.spawn(format!("job-{i}"), move || {
///         done.fetch_add(1, Ordering::Relaxed);
///         Ok(())
///     });
/// }
/// // Drain: everything already queued runs, then the threads are joined.
/// system.shutdown(ShutdownMode::Drain);
/// assert_eq!(done.load(Ordering::Relaxed), 8);
/// assert_eq!(system.counters().done, 8);
/// # Ok::<(), snapseal_engine::EngineError>(())
/// ```
#[derive(Clone)]
pub struct TaskSystem {
    owner: Arc<Owner>,
}

/// A handle that does not keep the system alive; see [`TaskSystem::downgrade`].
#[derive(Clone)]
pub struct WeakTaskSystem {
    owner: Weak<Owner>,
}

impl WeakTaskSystem {
    /// The system, if some [`TaskSystem`] handle still holds it.
    pub fn upgrade(&self) -> Option<TaskSystem> {
        self.owner.upgrade().map(|owner| TaskSystem { owner })
    }
}

impl fmt::Debug for WeakTaskSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakTaskSystem").finish_non_exhaustive()
    }
}

impl TaskSystem {
    fn from_shared(shared: Shared) -> Self {
        Self {
            owner: Arc::new(Owner {
                shared: Arc::new(shared),
            }),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.owner.shared
    }

    /// A system with `config.workers` worker threads and a timer thread, named `snapseal-w<i>`
    /// and `snapseal-timer` (short enough for Linux's 15-byte thread names). If a thread
    /// cannot be started, the ones already started are stopped and joined and the error names
    /// the thread.
    pub fn threaded(config: EngineConfig) -> Result<TaskSystem, EngineError> {
        config.validate()?;
        let workers = config.resolved_workers()?;
        let nice = config.worker_nice;
        let system = Self::from_shared(Shared::threaded(workers));
        // On an early return `system` is dropped, which shuts down and joins what was started.
        for index in 0..workers {
            let shared = Arc::clone(system.shared());
            system.start_thread(format!("snapseal-w{index}"), move || {
                crate::priority::lower_thread_priority(nice);
                worker_main(shared);
            })?;
        }
        let shared = Arc::clone(system.shared());
        let resolution = config.timer_resolution;
        system.start_thread("snapseal-timer".to_owned(), move || {
            mark_current_thread(shared.id());
            if let Some(origin) = shared.wall_origin() {
                timer_main(shared, origin, resolution);
            }
        })?;
        Ok(system)
    }

    fn start_thread(
        &self,
        name: String,
        body: impl FnOnce() + Send + 'static,
    ) -> Result<(), EngineError> {
        let handle = thread::Builder::new()
            .name(name.clone())
            .spawn(body)
            .map_err(|source| EngineError::SpawnThread {
                thread: name,
                source,
            })?;
        self.shared().threads.lock().push(handle);
        Ok(())
    }

    /// Model checking only: a threaded system (threaded board and clock) that starts no
    /// threads; the model's own loom threads become its workers by calling
    /// [`work`](Self::work). No timer thread runs.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn threaded_model(workers: usize) -> TaskSystem {
        Self::from_shared(Shared::threaded(workers))
    }

    /// Model checking only: runs the worker loop on the calling thread until the board
    /// closes (a shutdown).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn work(&self) {
        worker_main(Arc::clone(self.shared()));
    }

    /// A manual system: zero threads; nothing runs until the caller calls
    /// [`run_one`](Self::run_one), [`run_until_idle`](Self::run_until_idle) (or a
    /// `wait_idle`), and timers move only with [`tick`](Self::tick). Each pick chooses
    /// among the ready jobs pseudo-randomly from `seed`: the same seed and the same calls give
    /// the same execution order bit for bit; different seeds explore different interleavings.
    ///
    /// A test drives it step by step, and the clock only moves when told:
    ///
    /// ```
    /// use std::time::Duration;
    /// use snapseal_engine::{TaskState, TaskSystem};
    ///
    /// let system = TaskSystem::manual(42);
    /// let now = system.spawn("now", || Ok(()));
    /// let later = system.spawn_after("later", Duration::from_secs(5), || Ok(()));
    /// assert_eq!(system.run_until_idle(), 1); // only `now` was ready
    /// assert_eq!((now.state(), later.state()), (TaskState::Done, TaskState::Queued));
    /// system.tick(Duration::from_secs(5)); // `later` comes due and goes on the board
    /// assert!(system.run_one());
    /// assert_eq!(later.state(), TaskState::Done);
    /// ```
    pub fn manual(seed: u64) -> TaskSystem {
        Self::from_shared(Shared::manual(Pick::Seeded(crate::rng::seeded(seed))))
    }

    /// A manual system that always runs the oldest ready job first.
    pub fn manual_fifo() -> TaskSystem {
        Self::from_shared(Shared::manual(Pick::Fifo))
    }

    /// A handle that does not keep the system alive.
    ///
    /// A periodic task that submits more work captures one of these, not a `TaskSystem`
    /// (which would keep the system alive until the task is cancelled):
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use snapseal_engine::TaskSystem;
    ///
    /// let system = TaskSystem::manual_fifo();
    /// let compactions = Arc::new(AtomicU32::new(0));
    /// let (weak, done) = (system.downgrade(), Arc::clone(&compactions));
    /// system.spawn_periodic("gc", Duration::from_secs(60), move || {
    ///     if let Some(system) = weak.upgrade() {
    ///         let done = Arc::clone(&done);
    ///         system.spawn("compact", move || {
    ///             done.fetch_add(1, Ordering::Relaxed);
    ///             Ok(())
    ///         });
    ///     }
    ///     Ok(())
    /// });
    /// system.tick(Duration::from_secs(60));
    /// system.run_until_idle(); // `gc`, then the `compact` it spawned
    /// assert_eq!(compactions.load(Ordering::Relaxed), 1);
    /// assert_eq!(system.counters().done, 2);
    ///
    /// let weak = system.downgrade();
    /// drop(system); // the last handle: the periodic task does not keep the system alive
    /// assert!(weak.upgrade().is_none());
    /// ```
    pub fn downgrade(&self) -> WeakTaskSystem {
        WeakTaskSystem {
            owner: Arc::downgrade(&self.owner),
        }
    }

    /// Puts a one-shot task on the board. If the system is shutting down the task is refused:
    /// the handle is already [`Cancelled`](crate::TaskState::Cancelled) (and counted so).
    pub fn spawn(
        &self,
        name: impl Into<String>,
        f: impl FnOnce() -> ActionResult + Send + 'static,
    ) -> TaskHandle {
        let shared = self.shared();
        let task = TaskCore::ready(name.into(), Arc::clone(shared.counter_cells()), Box::new(f));
        if let Err(job) = shared.submit(Job::Task(Arc::clone(&task)), Admission::New) {
            job.skip();
        }
        TaskHandle::new(task)
    }

    /// A one-shot task that goes on the board at the first tick at which
    /// [`now`](Self::now) `>= now() + delay` (even a zero delay waits for a tick).
    pub fn spawn_after(
        &self,
        name: impl Into<String>,
        delay: Duration,
        f: impl FnOnce() -> ActionResult + Send + 'static,
    ) -> TaskHandle {
        let shared = self.shared();
        let task = TaskCore::delayed(name.into(), Arc::clone(shared.counter_cells()), Box::new(f));
        self.arm(&task, delay);
        TaskHandle::new(task)
    }

    /// A task that runs every `period`: first due at `now() + period`; after each successful
    /// run it is re-armed `period` after the clock reading at the end of that run (fixed
    /// delay: runs never overlap and missed periods are not caught up). It runs until
    /// cancelled, until a run fails (returns `Err` or panics), or until shutdown.
    ///
    /// ```
    /// use std::time::Duration;
    /// use snapseal_engine::{TaskState, TaskSystem};
    ///
    /// let system = TaskSystem::manual_fifo();
    /// let mut runs = 0;
    /// let task = system.spawn_periodic("flush", Duration::from_millis(10), move || {
    ///     runs += 1;
    ///     if runs < 3 { Ok(()) } else { Err("the third run fails".into()) }
    /// });
    /// for _ in 0..3 {
    ///     system.tick(Duration::from_millis(10));
    ///     system.run_until_idle();
    /// }
    /// // A failed run stops a periodic task; the failure says which and why.
    /// assert_eq!(task.state(), TaskState::Failed);
    /// assert!(task.failure().unwrap().to_string().contains("the third run fails"));
    /// ```
    pub fn spawn_periodic(
        &self,
        name: impl Into<String>,
        period: Duration,
        f: impl FnMut() -> ActionResult + Send + 'static,
    ) -> TaskHandle {
        let shared = self.shared();
        let task = TaskCore::periodic(
            name.into(),
            Arc::clone(shared.counter_cells()),
            Box::new(f),
            period,
        );
        self.arm(&task, period);
        TaskHandle::new(task)
    }

    fn arm(&self, task: &Arc<TaskCore>, delay: Duration) {
        let shared = self.shared();
        let armed = shared.accepting()
            && shared
                .timers()
                .arm(Arc::clone(task), shared.now().saturating_add(delay))
                .is_ok();
        if !armed {
            task.abandon();
        }
    }

    /// A new, empty, running (not paused) ordered queue.
    pub fn ordered(&self, name: impl Into<String>) -> OrderedTasks {
        let shared = self.shared();
        OrderedTasks::new(QueueCore::new(
            name.into(),
            Arc::clone(shared),
            Arc::clone(shared.counter_cells()),
        ))
    }

    /// The engine clock. Manual: the sum of all [`tick`](Self::tick)s. Threaded: time elapsed
    /// since the system was built.
    pub fn now(&self) -> Duration {
        self.shared().now()
    }

    /// Manual: advances the clock by `elapsed` and puts every timer now due on the board (in
    /// due order, ties in arming order); it runs nothing. Threaded: the clock is the wall
    /// clock, so `elapsed` is ignored; the call puts on the board whatever is due now, a
    /// little earlier than the timer thread would.
    pub fn tick(&self, elapsed: Duration) {
        self.shared().tick(elapsed);
    }

    /// Manual: runs one ready job on the calling thread — one task, or one action of a queue —
    /// and returns `true`; `false` if nothing was ready. A job that turns out to have nothing
    /// to do (a cancelled task, a paused queue) still counts as run. Threaded: does nothing
    /// and returns `false` (the workers run everything).
    pub fn run_one(&self) -> bool {
        self.shared().run_one()
    }

    /// Manual: [`run_one`](Self::run_one) until nothing is ready (jobs the run adds included);
    /// returns how many jobs ran. Threaded: returns 0.
    pub fn run_until_idle(&self) -> usize {
        let mut ran = 0;
        while self.run_one() {
            ran += 1;
        }
        ran
    }

    /// Threaded: blocks until no job is on the board and none is running, or `timeout`
    /// passes; returns whether that state was reached. Armed timers and paused queues do not
    /// count as work. Called from one of the system's workers it returns `false` at once (its
    /// own job keeps the system busy). Manual: [`run_until_idle`](Self::run_until_idle), then
    /// `true`.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.shared().wait_idle(timeout)
    }

    /// The work counters; see [`Counters`].
    pub fn counters(&self) -> Counters {
        self.shared().counters()
    }

    /// Jobs waiting on the board right now (threaded: in the FIFO, not yet handed to a
    /// worker; manual: ready to be picked).
    pub fn ready_jobs(&self) -> usize {
        self.shared().ready_jobs()
    }

    /// Armed timers (delayed tasks not yet due, periodic tasks between firings; a cancelled
    /// one stays counted until its time comes and it is skipped).
    pub fn armed_timers(&self) -> usize {
        self.shared().timers().armed()
    }

    /// Shuts the system down; see [`ShutdownMode`]. From the first moment no new work is
    /// accepted (`spawn` returns cancelled handles, `add_action` returns `false`) and armed
    /// timers are cancelled. Then queued work is drained or cancelled (the work already
    /// running always finishes) and every thread, the timer's included, is joined before this
    /// returns. Idempotent; a `Cancel` call during a `Drain` escalates it.
    ///
    /// Called on one of the system's own threads (from an action), it starts the shutdown
    /// but does not wait: the threads are detached and exit once done. Manual `Drain` runs the
    /// remaining jobs on the calling thread.
    ///
    /// ```
    /// use snapseal_engine::{ShutdownMode, TaskState, TaskSystem};
    ///
    /// let system = TaskSystem::manual(5);
    /// let queued = system.spawn("upload", || Ok(()));
    /// let queue = system.ordered("generation-3");
    /// queue.add_action("serialise", || Ok(()));
    /// queue.add_action("persist", || Ok(()));
    ///
    /// // Cancel: nothing that has not started runs; every item is accounted as cancelled.
    /// system.shutdown(ShutdownMode::Cancel);
    /// assert_eq!(queued.state(), TaskState::Cancelled);
    /// assert!(queue.is_cancelled());
    /// let counters = system.counters();
    /// assert_eq!((counters.done, counters.cancelled, counters.queued), (0, 3, 0));
    /// // New work is refused from now on.
    /// assert_eq!(system.spawn("late", || Ok(())).state(), TaskState::Cancelled);
    /// ```
    pub fn shutdown(&self, mode: ShutdownMode) {
        self.shared().shutdown(mode);
    }

    /// Whether this is a manual (zero-thread) system.
    pub fn is_manual(&self) -> bool {
        self.shared().is_manual()
    }

    /// Number of worker threads (0 in manual mode).
    pub fn workers(&self) -> usize {
        self.shared().workers()
    }
}

impl fmt::Debug for TaskSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSystem")
            .field("manual", &self.is_manual())
            .field("workers", &self.workers())
            .field("counters", &self.counters())
            .finish()
    }
}
