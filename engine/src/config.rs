//! Configuration of a threaded task system.

use std::time::Duration;

use crate::EngineError;

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
    /// Number of worker threads; `None` means half the CPUs, at least 1. Must be in
    /// `1..=1024` when set.
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
            None => {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                Ok((cpus / 2).max(1))
            }
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

    /// Checks the fields that have a range (`workers`, `worker_nice`).
    pub fn validate(&self) -> Result<(), EngineError> {
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
