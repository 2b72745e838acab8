//! snapseal's task system: worker threads, a FIFO job board, ordered queues of actions,
//! delayed and periodic tasks, and a deterministic manual executor.
//!
//! The engine knows nothing about snapshots. Its users put work on it as
//!
//! - **tasks** ([`TaskSystem::spawn`], [`spawn_after`](TaskSystem::spawn_after),
//!   [`spawn_periodic`](TaskSystem::spawn_periodic)), observed and cancelled through a
//!   [`TaskHandle`];
//! - **ordered queues** ([`TaskSystem::ordered`] → [`OrderedTasks`]) of named *actions* that
//!   run one at a time, in the order added, on whichever worker picks the queue up.
//!
//! A task or an action is a closure returning [`ActionResult`]. One that returns `Err` or
//! panics is a *failure*: it is caught (the worker survives), logged as a `tracing` `error!`
//! event, counted in [`Counters::failed`], and — for an action — stops its queue: the rest of
//! the queue is cancelled, [`OrderedTasks::failure`] is set and the
//! [`on_failure`](OrderedTasks::on_failure) callbacks run. Every run happens inside a
//! `tracing` span: `task{task=<name>}` or `action{queue=<queue>, action=<action>}`.
//!
//! # Two modes
//!
//! - [`TaskSystem::threaded`]: N workers (default half the CPUs, at least 1) and a timer
//!   thread. A job handed to the board goes to the back of the FIFO, and a parked worker is
//!   woken for it if none is awake to take it.
//! - [`TaskSystem::manual`]: zero threads. Nothing runs until the caller calls
//!   [`run_one`](TaskSystem::run_one) / [`run_until_idle`](TaskSystem::run_until_idle), and
//!   the clock only moves with [`tick`](TaskSystem::tick). Each pick chooses among the ready
//!   jobs with a SplitMix64 stream seeded by the caller, so a test is reproducible bit for bit
//!   from its seed, and sweeping seeds explores different interleavings of queues and tasks.
//!   ([`TaskSystem::manual_fifo`] picks oldest-first instead.)
//!
//! # Ordering guarantees
//!
//! Within one [`OrderedTasks`]:
//!
//! 1. Actions start in the order of the [`add_action`](OrderedTasks::add_action) calls that
//!    returned `true` (for calls racing on different threads, the order in which they took
//!    the queue's lock).
//! 2. An action starts only after the previous one returned, so two actions of one queue
//!    never overlap, and everything an action did *happens before* the next action starts —
//!    whichever workers they ran on.
//! 3. Everything the caller did before `add_action` happens before that action starts.
//! 4. An action added while the queue runs (by one of its own actions or by any thread)
//!    runs after the actions before it; it is never lost and never run twice.
//! 5. After [`pause`](OrderedTasks::pause) returns, no further action starts until
//!    [`resume`](OrderedTasks::resume); after [`cancel`](OrderedTasks::cancel) returns or a
//!    failure is recorded, none ever starts again. An action already running finishes.
//! 6. When a queue is seen idle ([`is_idle`](OrderedTasks::is_idle),
//!    [`wait_idle`](OrderedTasks::wait_idle)) after a failure, the failure is fully reported:
//!    [`failure`](OrderedTasks::failure) is set, the counters are updated, the `error!` event
//!    was emitted and every `on_failure` callback has returned.
//!
//! Across queues and tasks there is no ordering, except that the board is FIFO: jobs are
//! taken in the order they were put on it. (Taken, not finished: with several workers, jobs
//! taken in order run in parallel.) A queue is one job on the board. In manual mode each pick
//! runs exactly one of its actions. In threaded mode a pick runs the queue's actions one after
//! another on the same worker for a turn of up to 16 actions, and beyond that for as long as
//! no other job waits; when its turn is up and other jobs wait, the queue goes to the back of
//! the line (so a long queue does not starve the others). Different queues run in parallel.
//!
//! Timers: a delayed or periodic task goes on the board at the first tick whose clock reading
//! is `>=` its due time; tasks coming due in the same tick go on in due order, ties in arming
//! order. Only a tick moves timers, so nothing loops without the clock moving.
//!
//! Counters: each field is exact at the moment it is read, but the five fields are not one
//! atomic snapshot while work is in flight (see [`Counters`]). After
//! [`wait_idle`](TaskSystem::wait_idle) returns `true` with no other thread submitting,
//! `running` is 0 and `done + failed + cancelled` account for every item that ended.
//!
//! # No lost wake-ups, no deadlocks
//!
//! The threaded board is a lock-free FIFO (crossbeam-deque's injector) with an atomic count of
//! parked workers. A worker counts itself parked and then looks at the FIFO once more; a
//! submitter pushes and then looks at the count; a `SeqCst` fence on each side makes at least
//! one of them see the other, so a job never waits in the FIFO while every worker sleeps. A
//! submission that finds nobody parked (or a worker already woken and looking) takes no lock.
//! The engine never holds one of its locks while it takes another, runs user code, or drops
//! user closures, so user code may call any engine method (including dropping the last
//! handle) from inside an action.
//!
//! # Shutdown
//!
//! [`TaskSystem::shutdown`] refuses new work from its first moment, cancels armed timers,
//! then drains ([`ShutdownMode::Drain`]: everything already queued runs, including every
//! action already accepted by a queue that is not paused) or cancels
//! ([`ShutdownMode::Cancel`]: nothing queued starts), and joins every thread. Dropping the
//! last [`TaskSystem`] handle does a `Cancel` shutdown.
//!
//! # Model checking
//!
//! Under `--cfg loom` the queue state machine, the manual board and the threaded board's
//! parking protocol compile against loom's mutexes and atomics (see the private `sync`
//! module; the injector becomes a loom mutex around a `VecDeque`), and
//! `tests/loom_handoff.rs` explores the queue hand-off, the wake-ups and pause/cancel races
//! with them, loom threads standing in for the workers:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p snapseal-engine --test
//! loom_handoff --release`.
#![deny(missing_docs)]

mod admission;
mod board;
mod config;
mod counters;
mod error;
mod failure;
mod inline_body;
mod job;
mod manual;
mod ordered;
mod priority;
mod rng;
mod shared;
mod shutdown;
mod sync;
mod system;
mod task;
mod timer;
mod worker;

pub use config::{grant_cpus, granted_cpus, EngineConfig};
pub use counters::Counters;
pub use error::EngineError;
pub use failure::ActionFailure;
pub use ordered::OrderedTasks;
pub use priority::lower_thread_priority;
pub use shutdown::ShutdownMode;
pub use system::{TaskSystem, WeakTaskSystem};
pub use task::{TaskHandle, TaskState};

/// The error an action or task returns: any error, boxed.
pub type ActionError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What an action or task returns.
pub type ActionResult = Result<(), ActionError>;
