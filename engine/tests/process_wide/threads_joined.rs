//! `shutdown` and the last handle's drop join every worker before returning; after a
//! last-handle drop on a worker the detached threads still exit on their own. It counts the
//! process's engine threads, so it runs alone ([`crate::alone`]): no other test's threads are
//! around.
//!
//! Proof of a join: each worker installs a thread-local guard whose destructor counts the
//! thread's exit. Thread-local destructors run before a thread can be joined, so the count is
//! complete the moment `join` (and so `shutdown`) returns.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use snapseal_engine::{ShutdownMode, TaskSystem};

use crate::common::{threaded, HANG_GUARD};

static EXITED: AtomicUsize = AtomicUsize::new(0);

struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        EXITED.fetch_add(1, Ordering::SeqCst);
    }
}

thread_local! {
    static GUARD: RefCell<Option<ExitGuard>> = const { RefCell::new(None) };
}

/// Makes every one of the `workers` workers install an exit guard: the tasks meet at a
/// barrier, so they must all be running at once, on distinct workers.
fn mark_every_worker(system: &TaskSystem, workers: usize) {
    let barrier = Arc::new(Barrier::new(workers));
    for i in 0..workers {
        let barrier = Arc::clone(&barrier);
        system.spawn(format!("mark{i}"), move || {
            GUARD.with(|guard| *guard.borrow_mut() = Some(ExitGuard));
            barrier.wait();
            Ok(())
        });
    }
    assert!(system.wait_idle(HANG_GUARD));
}

/// Names of this process's threads that belong to a snapseal engine.
fn engine_threads() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("snapseal-"))
        .collect()
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !condition() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::yield_now();
    }
}

#[test]
fn workers_are_joined_and_no_engine_thread_outlives_its_system() {
    let _alone = crate::alone();
    // Explicit shutdown joins every worker before returning.
    let system = threaded(3);
    if std::path::Path::new("/proc/self/task").exists() {
        // A thread names itself once it runs, so names can show up a moment after spawn.
        wait_until("all threads named", || engine_threads().len() == 4);
        let mut names = engine_threads();
        names.sort();
        assert_eq!(
            names,
            [
                "snapseal-timer",
                "snapseal-w0",
                "snapseal-w1",
                "snapseal-w2"
            ]
        );
    }
    mark_every_worker(&system, 3);
    let before = EXITED.load(Ordering::SeqCst);
    system.shutdown(ShutdownMode::Drain);
    assert_eq!(
        EXITED.load(Ordering::SeqCst) - before,
        3,
        "shutdown returned before joining"
    );

    // Dropping the last handle joins too.
    let system = threaded(2);
    mark_every_worker(&system, 2);
    let before = EXITED.load(Ordering::SeqCst);
    drop(system);
    assert_eq!(
        EXITED.load(Ordering::SeqCst) - before,
        2,
        "drop returned before joining"
    );

    // Last handle dropped on a worker: detached, but the workers still exit by themselves.
    let system = threaded(2);
    mark_every_worker(&system, 2);
    let before = EXITED.load(Ordering::SeqCst);
    let last = system.clone();
    let (go_tx, go) = crossbeam_channel::bounded::<()>(1);
    system.spawn("holder", move || {
        go.recv_timeout(HANG_GUARD)?;
        drop(last);
        Ok(())
    });
    drop(system);
    assert!(go_tx.send(()).is_ok());
    wait_until("detached workers exit", || {
        EXITED.load(Ordering::SeqCst) - before == 2
    });

    // And the timer threads are gone too (the kernel may list a joined thread for a moment).
    wait_until("no engine thread left", || engine_threads().is_empty());
}
