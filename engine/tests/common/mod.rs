//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

pub(crate) mod nice;

use std::time::Duration;

use snapseal_engine::{EngineConfig, TaskSystem};

/// Only a guard against a hang: every test that waits passes long before this.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(60);

/// A threaded system with `workers` workers and a fine timer.
pub(crate) fn threaded(workers: usize) -> TaskSystem {
    match TaskSystem::threaded(EngineConfig {
        workers: Some(workers),
        timer_resolution: Duration::from_millis(1),
        worker_nice: 0,
    }) {
        Ok(system) => system,
        Err(error) => panic!("building a threaded system failed: {error}"),
    }
}
