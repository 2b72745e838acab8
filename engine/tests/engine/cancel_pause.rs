//! Cancelling tasks and queues, pausing and resuming queues.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use snapseal_engine::{TaskState, TaskSystem};

use crate::common::{threaded, HANG_GUARD};

fn counting(counter: &Arc<AtomicUsize>) -> impl FnOnce() -> snapseal_engine::ActionResult {
    let counter = Arc::clone(counter);
    move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn cancelled_task_is_skipped_when_reached() {
    let system = TaskSystem::manual_fifo();
    let runs = Arc::new(AtomicUsize::new(0));
    let first = system.spawn("first", counting(&runs));
    let doomed = system.spawn("doomed", counting(&runs));
    doomed.cancel();
    doomed.cancel(); // idempotent
    assert!(doomed.is_cancelled());
    assert_eq!(doomed.state(), TaskState::Cancelled);
    // Still on the board: skipped only when its turn comes.
    assert_eq!(system.ready_jobs(), 2);
    assert_eq!(system.run_until_idle(), 2);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(first.state(), TaskState::Done);
    let counters = system.counters();
    assert_eq!(
        (counters.done, counters.cancelled, counters.queued),
        (1, 1, 0)
    );
}

#[test]
fn cancelling_a_running_task_lets_it_finish() {
    let system = threaded(1);
    let (started_tx, started) = crossbeam_channel::bounded::<()>(1);
    let (release, release_rx) = crossbeam_channel::bounded::<()>(1);
    let task = system.spawn("long", move || {
        started_tx.send(())?;
        release_rx.recv_timeout(HANG_GUARD)?;
        Ok(())
    });
    assert!(started.recv_timeout(HANG_GUARD).is_ok());
    task.cancel();
    assert!(task.is_cancelled());
    assert_eq!(task.state(), TaskState::Running);
    assert!(release.send(()).is_ok());
    assert!(system.wait_idle(HANG_GUARD));
    assert_eq!(task.state(), TaskState::Done);
    assert_eq!(system.counters().cancelled, 0);
}

#[test]
fn cancelled_queue_skips_pending_but_finishes_the_running_action() {
    let system = threaded(2);
    let queue = system.ordered("q");
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (started_tx, started) = crossbeam_channel::bounded::<()>(1);
    let (release, release_rx) = crossbeam_channel::bounded::<()>(1);
    let log = Arc::clone(&ran);
    assert!(queue.add_action("blocker", move || {
        started_tx.send(())?;
        release_rx.recv_timeout(HANG_GUARD)?;
        log.lock().push(0);
        Ok(())
    }));
    for i in 1..=10 {
        let log = Arc::clone(&ran);
        assert!(queue.add_action(format!("a{i}"), move || {
            log.lock().push(i);
            Ok(())
        }));
    }
    assert!(started.recv_timeout(HANG_GUARD).is_ok());
    assert_eq!(queue.pending(), 10);
    queue.cancel();
    assert!(queue.is_cancelled());
    assert_eq!(queue.pending(), 0);
    // Not idle while the running action runs.
    assert!(!queue.is_idle());
    assert!(!queue.add_action("late", || Ok(())));
    assert!(release.send(()).is_ok());
    assert!(queue.wait_idle(HANG_GUARD));
    assert_eq!(*ran.lock(), vec![0]);
    let counters = system.counters();
    assert_eq!(
        (counters.done, counters.cancelled, counters.queued),
        (1, 10, 0)
    );
}

#[test]
fn queue_cancelled_while_on_the_board_is_skipped() {
    let system = TaskSystem::manual_fifo();
    let queue = system.ordered("q");
    let runs = Arc::new(AtomicUsize::new(0));
    assert!(queue.add_action("a", counting(&runs)));
    assert!(queue.add_action("b", counting(&runs)));
    queue.cancel();
    assert_eq!(system.ready_jobs(), 1);
    assert_eq!(system.run_until_idle(), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(system.counters().cancelled, 2);
}

#[test]
fn paused_queue_runs_nothing_until_resumed_then_runs_in_order() {
    let system = TaskSystem::manual(3);
    let queue = system.ordered("q");
    let ran = Arc::new(Mutex::new(Vec::new()));
    let add = |i: u32| {
        let log = Arc::clone(&ran);
        assert!(queue.add_action(format!("a{i}"), move || {
            log.lock().push(i);
            Ok(())
        }));
    };
    add(0);
    queue.pause();
    add(1);
    // Paused while on the board: the pick skips it and it leaves the board.
    system.run_until_idle();
    assert!(ran.lock().is_empty());
    assert_eq!(queue.pending(), 2);
    assert!(!queue.is_idle());
    add(2);
    assert_eq!(
        system.run_until_idle(),
        0,
        "a paused queue must not be put on the board"
    );
    queue.resume();
    queue.resume(); // idempotent: must not put the queue on the board twice
    assert_eq!(system.ready_jobs(), 1);
    assert!(queue.wait_idle(HANG_GUARD));
    assert_eq!(*ran.lock(), vec![0, 1, 2]);
}

#[test]
fn pause_stops_the_next_action_of_a_running_queue() {
    let system = threaded(2);
    let queue = system.ordered("q");
    let ran = Arc::new(AtomicUsize::new(0));
    let (started_tx, started) = crossbeam_channel::bounded::<()>(1);
    let (release, release_rx) = crossbeam_channel::bounded::<()>(1);
    let first = Arc::clone(&ran);
    assert!(queue.add_action("blocker", move || {
        started_tx.send(())?;
        release_rx.recv_timeout(HANG_GUARD)?;
        first.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }));
    assert!(queue.add_action("second", counting(&ran)));
    assert!(started.recv_timeout(HANG_GUARD).is_ok());
    queue.pause();
    assert!(release.send(()).is_ok());
    // The system goes idle with the second action still pending.
    assert!(system.wait_idle(HANG_GUARD));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(queue.pending(), 1);
    queue.resume();
    assert!(queue.wait_idle(HANG_GUARD));
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

#[test]
fn actions_can_add_actions_to_their_own_queue() {
    let system = TaskSystem::manual(11);
    let queue = system.ordered("q");
    let ran = Arc::new(Mutex::new(Vec::new()));
    fn chain(queue: &snapseal_engine::OrderedTasks, log: &Arc<Mutex<Vec<u32>>>, i: u32) -> bool {
        let (next_queue, next_log) = (queue.clone(), Arc::clone(log));
        queue.add_action(format!("c{i}"), move || {
            next_log.lock().push(i);
            if i < 20 && !chain(&next_queue, &next_log, i + 1) {
                return Err("refused".into());
            }
            Ok(())
        })
    }
    assert!(chain(&queue, &ran, 0));
    assert!(queue.wait_idle(HANG_GUARD));
    assert_eq!(*ran.lock(), (0..=20).collect::<Vec<_>>());
    assert_eq!(system.counters().done, 21);
}

#[test]
fn queue_outliving_its_system_refuses_actions() {
    let system = TaskSystem::manual_fifo();
    let queue = system.ordered("q");
    drop(system);
    assert!(!queue.add_action("late", || Ok(())));
    assert!(queue.wait_idle(HANG_GUARD));
}
