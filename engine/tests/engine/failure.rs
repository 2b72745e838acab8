//! Failure and panic isolation: a failing action stops only its own queue, is reported in
//! every way promised, and the worker that ran it carries on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use snapseal_engine::{ActionFailure, TaskState, TaskSystem};

use crate::common::{threaded, HANG_GUARD};

#[derive(Debug, thiserror::Error)]
#[error("disk on fire")]
struct DiskOnFire(#[source] std::io::Error);

fn panicking_queue_isolated(system: &TaskSystem) {
    let doomed = system.ordered("doomed");
    let healthy = system.ordered("healthy");
    let ran = Arc::new(Mutex::new(Vec::new()));
    let reports: Arc<Mutex<Vec<ActionFailure>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    doomed.on_failure(move |failure| sink.lock().push(failure.clone()));
    doomed.pause();
    for i in 0..5 {
        let ran = Arc::clone(&ran);
        assert!(doomed.add_action(format!("step{i}"), move || {
            ran.lock().push(i);
            if i == 1 {
                panic!("step {i} exploded");
            }
            Ok(())
        }));
    }
    let healthy_runs = Arc::new(AtomicUsize::new(0));
    for i in 0..100 {
        let runs = Arc::clone(&healthy_runs);
        assert!(healthy.add_action(format!("h{i}"), move || {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }));
    }
    doomed.resume();
    assert!(doomed.wait_idle(HANG_GUARD));
    assert!(healthy.wait_idle(HANG_GUARD));

    // Only the actions up to the panicking one ran; the rest were cancelled.
    assert_eq!(*ran.lock(), vec![0, 1]);
    assert_eq!(doomed.pending(), 0);
    assert!(doomed.is_cancelled());
    let expected = ActionFailure {
        queue: "doomed".into(),
        action: "step1".into(),
        message: "step 1 exploded".into(),
        panicked: true,
    };
    assert_eq!(doomed.failure(), Some(expected.clone()));
    // The callback had run by the time the queue reported idle.
    assert_eq!(*reports.lock(), vec![expected.clone()]);
    // Later adds are refused, and a late callback registration is told at once.
    assert!(!doomed.add_action("late", || Ok(())));
    let late = Arc::new(Mutex::new(None));
    let late_sink = Arc::clone(&late);
    doomed.on_failure(move |failure| *late_sink.lock() = Some(failure.clone()));
    assert_eq!(*late.lock(), Some(expected));

    // The other queue was unaffected.
    assert_eq!(healthy_runs.load(Ordering::SeqCst), 100);
    assert!(!healthy.is_cancelled());
    assert_eq!(healthy.failure(), None);

    let counters = system.counters();
    assert_eq!(counters.failed, 1);
    assert_eq!(counters.cancelled, 3);
    assert_eq!(counters.done, 101);
    assert_eq!((counters.queued, counters.running), (0, 0));
}

#[test]
fn panicking_action_cancels_only_its_queue_threaded() {
    panicking_queue_isolated(&threaded(2));
}

#[test]
fn panicking_action_cancels_only_its_queue_manual() {
    let system = TaskSystem::manual(7);
    panicking_queue_isolated(&system);
}

#[test]
fn the_only_worker_survives_panics_and_errors() {
    // One worker: if a panic killed it, nothing after it could ever run.
    let system = threaded(1);
    assert_eq!(system.workers(), 1);
    for round in 0..3 {
        let queue = system.ordered(format!("round{round}"));
        assert!(queue.add_action("boom", || panic!("boom")));
        assert!(queue.wait_idle(HANG_GUARD));
        assert!(queue.failure().is_some_and(|f| f.panicked));

        let errs = system.spawn(format!("err{round}"), || Err("plain error".into()));
        let after = system.spawn(format!("after{round}"), || Ok(()));
        assert!(system.wait_idle(HANG_GUARD));
        assert_eq!(errs.state(), TaskState::Failed);
        assert_eq!(after.state(), TaskState::Done);
    }
    let counters = system.counters();
    assert_eq!((counters.failed, counters.done), (6, 3));
}

#[test]
fn error_failure_carries_the_source_chain_and_is_not_a_panic() {
    let system = TaskSystem::manual_fifo();
    let queue = system.ordered("writer");
    assert!(queue.add_action("fsync", || Err(
        DiskOnFire(std::io::Error::other("EIO")).into()
    )));
    assert!(queue.add_action("rename", || Ok(())));
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    queue.on_failure(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(system.run_until_idle(), 1);
    let failure = queue.failure();
    assert_eq!(
        failure,
        Some(ActionFailure {
            queue: "writer".into(),
            action: "fsync".into(),
            message: "disk on fire: EIO".into(),
            panicked: false,
        })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let counters = system.counters();
    assert_eq!(
        (counters.failed, counters.cancelled, counters.done),
        (1, 1, 0)
    );
}

#[test]
fn failed_task_reports_its_failure_and_a_panicking_callback_is_contained() {
    let system = TaskSystem::manual_fifo();
    let task = system.spawn("t", || Err("nope".into()));
    assert_eq!(task.failure(), None);
    system.run_until_idle();
    assert_eq!(task.state(), TaskState::Failed);
    assert_eq!(task.failure().map(|f| f.message), Some("nope".to_owned()));

    let queue = system.ordered("q");
    queue.on_failure(|_| panic!("callback panics"));
    assert!(queue.add_action("bad", || Err("bad".into())));
    assert!(queue.add_action("never", || Ok(())));
    system.run_until_idle();
    assert!(queue.is_idle());
    // The system still works after the callback's panic.
    let ok = system.spawn("ok", || Ok(()));
    system.run_until_idle();
    assert_eq!(ok.state(), TaskState::Done);
}
