//! Building a threaded system: defaults and out-of-range values.

use std::time::Duration;

use snapseal_engine::{EngineConfig, EngineError, TaskSystem};

use crate::common::nice::own_nice;

#[test]
fn default_workers_is_half_the_granted_cpus_at_least_one() {
    let cpus = snapseal_engine::granted_cpus().get();
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
    // The documented range is 1..=1024.
    for workers in [0, 1025] {
        let result = TaskSystem::threaded(EngineConfig {
            workers: Some(workers),
            timer_resolution: Duration::from_millis(1),
            worker_nice: 0,
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

#[test]
fn workers_run_at_the_configured_nice_value() {
    // Relative to wherever this test runs (under `nice` too): lowering is always allowed.
    let base = own_nice();
    let wanted = (base + 3).min(19);
    let system = TaskSystem::threaded(EngineConfig {
        workers: Some(1),
        worker_nice: wanted,
        ..EngineConfig::default()
    })
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    system.spawn("nice", move || {
        tx.send(own_nice()).unwrap();
        Ok(())
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)).unwrap(), wanted);
    assert_eq!(own_nice(), base, "the creating thread keeps its priority");
}

#[test]
fn an_out_of_range_nice_value_is_refused_naming_the_field() {
    for worker_nice in [-1, 20] {
        match TaskSystem::threaded(EngineConfig {
            worker_nice,
            ..EngineConfig::default()
        }) {
            Err(EngineError::InvalidConfig { field, .. }) => assert_eq!(field, "worker_nice"),
            other => panic!("worker_nice = {worker_nice} was not refused: {other:?}"),
        }
    }
}
