//! Delayed and periodic tasks against the manual clock (exact firing counts) and the threaded
//! timer thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use snapseal_engine::{TaskState, TaskSystem};

use crate::common::{threaded, HANG_GUARD};

const MS: Duration = Duration::from_millis(1);

fn counter() -> (
    Arc<AtomicUsize>,
    impl FnMut() -> snapseal_engine::ActionResult,
) {
    let count = Arc::new(AtomicUsize::new(0));
    let inner = Arc::clone(&count);
    (count, move || {
        inner.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
}

#[test]
fn delayed_task_fires_at_the_first_tick_reaching_its_due_time() {
    let system = TaskSystem::manual(1);
    let (count, f) = counter();
    let task = system.spawn_after("later", 30 * MS, f);
    assert_eq!(system.armed_timers(), 1);
    for _ in 0..2 {
        system.tick(10 * MS);
        assert_eq!(system.run_until_idle(), 0);
    }
    assert_eq!(task.state(), TaskState::Queued);
    assert_eq!(
        system.counters().queued,
        0,
        "a delayed task is not queued before it is due"
    );
    system.tick(10 * MS);
    assert_eq!(system.now(), 30 * MS);
    assert_eq!(system.counters().queued, 1);
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "tick enqueues, it does not run"
    );
    assert_eq!(system.run_until_idle(), 1);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(task.state(), TaskState::Done);
    system.tick(100 * MS);
    assert_eq!(system.run_until_idle(), 0);
    assert_eq!(system.armed_timers(), 0);
}

#[test]
fn periodic_task_fires_once_per_period_of_ticks() {
    let system = TaskSystem::manual(2);
    let (count, f) = counter();
    let task = system.spawn_periodic("beat", 10 * MS, f);
    for expected in 1..=10 {
        system.tick(10 * MS);
        system.run_until_idle();
        assert_eq!(count.load(Ordering::SeqCst), expected);
    }
    // Half periods: one firing per two ticks.
    for _ in 0..10 {
        system.tick(5 * MS);
        system.run_until_idle();
    }
    assert_eq!(count.load(Ordering::SeqCst), 15);
    // A long tick fires once; missed periods are not caught up.
    system.tick(35 * MS);
    system.run_until_idle();
    assert_eq!(count.load(Ordering::SeqCst), 16);
    // Re-armed 10ms after that run (at 195ms), not on the old 10ms grid (190ms).
    system.tick(9 * MS);
    system.run_until_idle();
    assert_eq!(count.load(Ordering::SeqCst), 16);
    system.tick(MS);
    system.run_until_idle();
    assert_eq!(count.load(Ordering::SeqCst), 17);
    assert_eq!(task.state(), TaskState::Queued);

    task.cancel();
    assert_eq!(task.state(), TaskState::Cancelled);
    for _ in 0..5 {
        system.tick(10 * MS);
        system.run_until_idle();
    }
    assert_eq!(count.load(Ordering::SeqCst), 17);
    assert_eq!(
        system.armed_timers(),
        0,
        "the cancelled timer is dropped when reached"
    );
    let counters = system.counters();
    assert_eq!((counters.done, counters.cancelled), (17, 1));
}

#[test]
fn failing_periodic_task_stops() {
    let system = TaskSystem::manual(3);
    let runs = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&runs);
    let task = system.spawn_periodic("flaky", 10 * MS, move || {
        if seen.fetch_add(1, Ordering::SeqCst) == 2 {
            return Err("third run fails".into());
        }
        Ok(())
    });
    for _ in 0..10 {
        system.tick(10 * MS);
        system.run_until_idle();
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(task.state(), TaskState::Failed);
    assert_eq!(system.armed_timers(), 0);
    let counters = system.counters();
    assert_eq!((counters.done, counters.failed), (2, 1));
}

#[test]
fn timers_due_in_one_tick_fire_in_due_then_arming_order() {
    let system = TaskSystem::manual_fifo();
    let order = Arc::new(Mutex::new(Vec::new()));
    for (name, delay) in [("c", 30), ("a", 10), ("b1", 20), ("b2", 20)] {
        let log = Arc::clone(&order);
        system.spawn_after(name, delay * MS, move || {
            log.lock().push(name);
            Ok(())
        });
    }
    system.tick(100 * MS);
    system.run_until_idle();
    assert_eq!(*order.lock(), vec!["a", "b1", "b2", "c"]);
}

#[test]
fn zero_period_fires_once_per_tick_and_never_loops() {
    let system = TaskSystem::manual(4);
    let (count, f) = counter();
    let _task = system.spawn_periodic("spin", Duration::ZERO, f);
    for expected in 1..=5 {
        system.tick(Duration::ZERO);
        assert_eq!(system.run_until_idle(), 1);
        assert_eq!(count.load(Ordering::SeqCst), expected);
    }
}

#[test]
fn threaded_timers_fire_and_cancelled_periodic_stops() {
    let system = threaded(2);
    let (fired_tx, fired) = crossbeam_channel::bounded::<()>(1);
    let delayed = system.spawn_after("once", 20 * MS, move || {
        fired_tx.send(())?;
        Ok(())
    });
    assert!(fired.recv_timeout(HANG_GUARD).is_ok());
    assert!(system.now() >= 20 * MS, "fired before its due time");

    let (beats_tx, beats) = crossbeam_channel::unbounded::<()>();
    let periodic = system.spawn_periodic("beat", 2 * MS, move || {
        beats_tx.send(())?;
        Ok(())
    });
    for _ in 0..5 {
        assert!(beats.recv_timeout(HANG_GUARD).is_ok());
    }
    periodic.cancel();
    assert!(system.wait_idle(HANG_GUARD));
    while periodic.state() != TaskState::Cancelled {
        // A firing in flight when cancel() was called finishes first.
        assert!(system.wait_idle(HANG_GUARD));
        std::thread::yield_now();
    }
    // Drain what was sent before the cancel took effect, then nothing more may come.
    while beats.try_recv().is_ok() {}
    std::thread::sleep(20 * MS);
    assert!(
        beats.try_recv().is_err(),
        "a cancelled periodic task fired again"
    );
    assert_eq!(delayed.state(), TaskState::Done);
}

#[test]
fn public_tick_in_threaded_mode_enqueues_what_is_due_and_does_not_move_the_clock() {
    let system = threaded(1);
    let before = system.now();
    system.tick(Duration::from_secs(3600));
    assert!(system.now() < before + Duration::from_secs(3600));
    let (count, f) = counter();
    let task = system.spawn_after("far", Duration::from_secs(3600), f);
    system.tick(Duration::from_secs(7200));
    assert!(system.wait_idle(HANG_GUARD));
    assert_eq!(count.load(Ordering::SeqCst), 0);
    assert_eq!(task.state(), TaskState::Queued);
}
