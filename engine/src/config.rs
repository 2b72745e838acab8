//! Configuration of a threaded task system.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::EngineError;

/// The CPUs granted with [`grant_cpus`]; 0 until a grant.
static GRANTED: AtomicUsize = AtomicUsize::new(0);

/// Grants snapseal `cpus` CPUs: the one knob that sizes every thread pool snapseal starts
/// from then on, process-wide — the engine's workers (half the grant, at least 1, where
/// [`EngineConfig::workers`] is unset), the hashing pool (the grant, where
/// `HashingConfig::threads` is left at its default) and snapseal-ship's runtime and
/// concurrency defaults. Call it at start-up, before the first task system or snapshot: a pool
/// already started keeps its size. Without a grant, [`granted_cpus`] is every CPU this
/// process may run on but one, which is left to the node's consensus thread.
///
/// ```
/// use std::num::NonZeroUsize;
/// use snapseal_engine::{grant_cpus, granted_cpus, EngineConfig, TaskSystem};
///
/// // This node runs snapseal beside a busy consensus core: 2 CPUs for snapseal.
/// grant_cpus(NonZeroUsize::new(2).unwrap());
/// assert_eq!(granted_cpus().get(), 2);
/// assert_eq!(TaskSystem::threaded(EngineConfig::default())?.workers(), 1);
/// # Ok::<(), snapseal_engine::EngineError>(())
/// ```
pub fn grant_cpus(cpus: NonZeroUsize) {
    GRANTED.store(cpus.get(), Ordering::Relaxed);
}

/// The CPUs snapseal's pools are sized from: the [`grant_cpus`] grant, or without one every
/// CPU the process may run on (its affinity mask, cgroup quota included) but one, at least 1.
pub fn granted_cpus() -> NonZeroUsize {
    match NonZeroUsize::new(GRANTED.load(Ordering::Relaxed)) {
        Some(granted) => granted,
        None => {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            NonZeroUsize::new(cpus.saturating_sub(1)).unwrap_or(NonZeroUsize::MIN)
        }
    }
}

/// Most worker threads a system may have; far more than 2× any machine snapseal targets, low
/// enough that a typo cannot ask the OS for a million threads.
pub(crate) const MAX_WORKERS: usize = 1024;

/// Configuration of [`TaskSystem::threaded`](crate::TaskSystem::threaded).
///
/// ```
/// use snapseal_engine::{EngineConfig, EngineError, TaskSystem};
///
/// let mut config = EngineConfig::default();
/// config.workers = Some(0);
/// assert!(matches!(TaskSystem::threaded(config.clone()), Err(EngineError::InvalidConfig { field: "workers", .. })));
/// config.workers = Some(1);
/// config.worker_nice = 10; // leave the CPU to the node's own threads when both are ready
/// assert_eq!(TaskSystem::threaded(config)?.workers(), 1);
/// # Ok::<(), EngineError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Number of worker threads; `None` means half the [granted CPUs](granted_cpus), at
    /// least 1 (a serialisation keeps the hashing pool busy too). Must be in `1..=1024` when
    /// set.
    pub workers: Option<usize>,
    /// The timer thread wakes at most once per this period (timers due within one period are
    /// enqueued together); it sleeps while no timer is armed. Zero wakes exactly at each due
    /// time.
    pub timer_resolution: Duration,
    /// Nice value of the worker threads, 0 (the creating thread's priority, the default) to 19
    /// (lowest). Above 0 the workers' actions (serialising, writing snapshots) yield the CPU
    /// to the node's own threads, its consensus thread above all, whenever both are ready.
    /// Linux sets it per thread; where it cannot be set, a warning is logged and the workers
    /// run at the default priority.
    pub worker_nice: i32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: None,
            timer_resolution: Duration::from_millis(1),
            worker_nice: 0,
        }
    }
}

impl EngineConfig {
    /// The number of workers this config asks for, after applying the default.
    pub fn resolved_workers(&self) -> Result<usize, EngineError> {
        match self.workers {
            None => Ok((granted_cpus().get() / 2).max(1)),
            Some(0) => Err(EngineError::InvalidConfig {
                field: "workers",
                reason: "must be at least 1 (use TaskSystem::manual for zero threads)".into(),
            }),
            Some(n) if n > MAX_WORKERS => Err(EngineError::InvalidConfig {
                field: "workers",
                reason: format!("is {n}, more than the maximum of {MAX_WORKERS}"),
            }),
            Some(n) => Ok(n),
        }
    }

    /// Checks the fields that have a range (`workers`, `worker_nice`);
    /// [`TaskSystem::threaded`](crate::TaskSystem::threaded) refuses a config that fails it.
    pub(crate) fn validate(&self) -> Result<(), EngineError> {
        self.resolved_workers()?;
        if !(0..=19).contains(&self.worker_nice) {
            return Err(EngineError::InvalidConfig {
                field: "worker_nice",
                reason: format!("is {}, must be in 0..=19", self.worker_nice),
            });
        }
        Ok(())
    }
}
