//! Shutdown with work in flight: Drain runs everything queued, Cancel skips it, both join
//! every thread, nothing hangs — including shutdowns and last-handle drops from inside a
//! worker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use snapseal_engine::{ShutdownMode, TaskState, TaskSystem};

use crate::common::{threaded, HANG_GUARD};

fn counting(counter: &Arc<AtomicUsize>) -> impl FnOnce() -> snapseal_engine::ActionResult {
    let counter = Arc::clone(counter);
    move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn drain_runs_everything_queued_then_joins() {
    let system = threaded(2);
    let runs = Arc::new(AtomicUsize::new(0));
    let queues: Vec<_> = (0..50).map(|q| system.ordered(format!("q{q}"))).collect();
    for a in 0..100 {
        for queue in &queues {
            assert!(queue.add_action(format!("a{a}"), counting(&runs)));
        }
    }
    let tasks: Vec<_> = (0..20)
        .map(|t| system.spawn(format!("t{t}"), counting(&runs)))
        .collect();
    let far = system.spawn_after("far", Duration::from_secs(3600), counting(&runs));
    system.shutdown(ShutdownMode::Drain);
    assert_eq!(runs.load(Ordering::SeqCst), 50 * 100 + 20);
    assert!(tasks.iter().all(|t| t.state() == TaskState::Done));
    assert_eq!(
        far.state(),
        TaskState::Cancelled,
        "armed timers are cancelled, not awaited"
    );
    let counters = system.counters();
    assert_eq!((counters.done, counters.cancelled), (5020, 1));
    assert_eq!((counters.queued, counters.running), (0, 0));
    // Nothing new is accepted afterwards.
    assert!(!queues[0].add_action("late", || Ok(())));
    assert_eq!(
        system.spawn("late", || Ok(())).state(),
        TaskState::Cancelled
    );
    system.shutdown(ShutdownMode::Drain); // idempotent
    system.shutdown(ShutdownMode::Cancel);
}

#[test]
fn drain_runs_actions_that_actions_add_before_it_started() {
    // Drain keeps running a queue whose actions were accepted before the shutdown, even
    // though each pick re-submits the queue while the board no longer takes new work.
    let system = threaded(1);
    let queue = system.ordered("long");
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..500 {
        assert!(queue.add_action("step", counting(&runs)));
    }
    system.shutdown(ShutdownMode::Drain);
    assert_eq!(runs.load(Ordering::SeqCst), 500);
}

#[test]
fn cancel_skips_queued_work_and_lets_running_work_finish() {
    let system = threaded(1);
    let queue = system.ordered("q");
    let runs = Arc::new(AtomicUsize::new(0));
    let (started_tx, started) = crossbeam_channel::bounded::<()>(1);
    let (release, release_rx) = crossbeam_channel::bounded::<()>(1);
    let blocker_runs = Arc::clone(&runs);
    assert!(queue.add_action("blocker", move || {
        started_tx.send(())?;
        release_rx.recv_timeout(HANG_GUARD)?;
        blocker_runs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }));
    for a in 0..100 {
        assert!(queue.add_action(format!("a{a}"), counting(&runs)));
    }
    let tasks: Vec<_> = (0..10)
        .map(|t| system.spawn(format!("t{t}"), counting(&runs)))
        .collect();
    assert!(started.recv_timeout(HANG_GUARD).is_ok());

    let closer = {
        let system = system.clone();
        std::thread::spawn(move || system.shutdown(ShutdownMode::Cancel))
    };
    // Wait (hang-guarded) until the shutdown has begun, then let the running action finish.
    let probe = system.ordered("probe");
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while probe.add_action("probe", || Ok(())) {
        assert!(std::time::Instant::now() < deadline, "shutdown never began");
        std::thread::yield_now();
    }
    assert!(release.send(()).is_ok());
    assert!(closer.join().is_ok());

    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "only the running action may finish"
    );
    assert!(tasks.iter().all(|t| t.state() == TaskState::Cancelled));
    assert!(queue.is_cancelled());
    assert_eq!(queue.pending(), 0);
    let counters = system.counters();
    // The probe actions accepted before the shutdown began were cancelled too.
    assert_eq!(counters.done, 1);
    assert!(counters.cancelled >= 110);
    assert_eq!((counters.queued, counters.running), (0, 0));
}

#[test]
fn manual_shutdown_drain_runs_and_cancel_skips() {
    let runs = Arc::new(AtomicUsize::new(0));
    let drained = TaskSystem::manual(5);
    let queue = drained.ordered("q");
    for _ in 0..10 {
        assert!(queue.add_action("a", counting(&runs)));
    }
    drained.spawn("t", counting(&runs));
    drained.shutdown(ShutdownMode::Drain);
    assert_eq!(runs.load(Ordering::SeqCst), 11);
    assert!(!drained.run_one());

    let cancelled = TaskSystem::manual(5);
    let queue = cancelled.ordered("q");
    for _ in 0..10 {
        assert!(queue.add_action("a", counting(&runs)));
    }
    cancelled.shutdown(ShutdownMode::Cancel);
    assert_eq!(runs.load(Ordering::SeqCst), 11);
    assert_eq!(cancelled.counters().cancelled, 10);
    assert!(!cancelled.run_one());
}

#[test]
fn shutdown_from_inside_an_action_does_not_hang() {
    for mode in [ShutdownMode::Drain, ShutdownMode::Cancel] {
        let system = threaded(2);
        let (done_tx, done) = crossbeam_channel::bounded::<()>(1);
        let inner = system.clone();
        let queue = system.ordered("q");
        assert!(queue.add_action("stop", move || {
            inner.shutdown(mode);
            done_tx.send(())?;
            Ok(())
        }));
        assert!(
            done.recv_timeout(HANG_GUARD).is_ok(),
            "{mode:?} from a worker hung"
        );
        // From outside, the same call now joins the detached threads.
        system.shutdown(mode);
        assert!(!queue.add_action("late", || Ok(())));
    }
}

#[test]
fn wait_idle_on_a_worker_returns_false_at_once() {
    let system = threaded(1);
    let inner = system.clone();
    let task = system.spawn("waits", move || {
        if inner.wait_idle(HANG_GUARD) {
            return Err("a worker saw its own system idle".into());
        }
        Ok(())
    });
    assert!(system.wait_idle(HANG_GUARD));
    assert_eq!(task.state(), TaskState::Done);
}

#[test]
fn dropping_the_last_handle_inside_a_worker_detaches_without_deadlock() {
    let system = threaded(2);
    let last = system.clone();
    let (dropped_tx, dropped) = crossbeam_channel::bounded::<()>(1);
    let (go_tx, go) = crossbeam_channel::bounded::<()>(1);
    let queued_behind = system.ordered("behind");
    let runs = Arc::new(AtomicUsize::new(0));
    system.spawn("holder", move || {
        go.recv_timeout(HANG_GUARD)?;
        drop(last); // the last TaskSystem handle goes away on a worker
        dropped_tx.send(())?;
        Ok(())
    });
    drop(system);
    assert!(go_tx.send(()).is_ok());
    assert!(
        dropped.recv_timeout(HANG_GUARD).is_ok(),
        "dropping on a worker hung"
    );
    // The system is shut down: nothing new is accepted.
    assert!(!queued_behind.add_action("late", counting(&runs)));
}

#[test]
fn dropping_the_last_handle_cancels_and_joins() {
    let runs = Arc::new(AtomicUsize::new(0));
    let system = threaded(1);
    let (started_tx, started) = crossbeam_channel::bounded::<()>(1);
    let (release, release_rx) = crossbeam_channel::bounded::<()>(1);
    let blocker = system.spawn("blocker", move || {
        started_tx.send(())?;
        release_rx.recv_timeout(HANG_GUARD)?;
        Ok(())
    });
    let queued = system.spawn("queued", counting(&runs));
    assert!(started.recv_timeout(HANG_GUARD).is_ok());
    // Release the blocker only once the drop's shutdown has begun, so `queued` is still
    // waiting when it does.
    let probe = system.ordered("probe");
    let releaser = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + HANG_GUARD;
        while probe.add_action("probe", || Ok(())) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        release.send(())
    });
    drop(system); // blocks until the blocker finished and the worker was joined
    assert_eq!(blocker.state(), TaskState::Done);
    assert_eq!(queued.state(), TaskState::Cancelled);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert!(releaser.join().is_ok_and(|sent| sent.is_ok()));
}
