//! Building a threaded system: defaults and out-of-range values.

use std::time::Duration;

use snapseal_engine::{EngineConfig, EngineError, TaskSystem, MAX_WORKERS};

#[test]
fn default_workers_is_half_the_cpus_at_least_one() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config = EngineConfig::default();
    assert_eq!(config.workers, None);
    assert!(matches!(config.resolved_workers(), Ok(n) if n == (cpus / 2).max(1)));
    let system = match TaskSystem::threaded(config) {
        Ok(system) => system,
        Err(error) => panic!("default config refused: {error}"),
    };
    assert_eq!(system.workers(), (cpus / 2).max(1));
    assert!(!system.is_manual());
    assert!(TaskSystem::manual(0).is_manual());
    assert_eq!(TaskSystem::manual(0).workers(), 0);
}

#[test]
fn out_of_range_worker_counts_are_refused_naming_the_field() {
    for workers in [0, MAX_WORKERS + 1] {
        let result = TaskSystem::threaded(EngineConfig {
            workers: Some(workers),
            timer_resolution: Duration::from_millis(1),
        });
        match result {
            Err(error @ EngineError::InvalidConfig { field, .. }) => {
                assert_eq!(field, "workers");
                assert!(error.to_string().contains("`workers`"), "{error}");
            }
            other => panic!("workers = {workers} was not refused: {other:?}"),
        }
    }
}
