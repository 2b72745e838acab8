//! loom model of the queue hand-off: the real `OrderedTasks` state machine and manual board,
//! compiled against loom's mutexes and atomics (see `src/sync.rs`), run by loom threads that
//! play the part of workers and of an outside thread adding actions.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p snapseal-engine --test loom_handoff --release`
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use std::time::Duration;

use snapseal_engine::{OrderedTasks, ShutdownMode, TaskSystem};

/// Runs a loom model and reports how many interleavings it explored (a plain std counter:
/// it is bookkeeping outside the model).
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inner = std::sync::Arc::clone(&counted);
    loom::model(move || {
        inner.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    let n = counted.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{name}: explored {n} interleavings");
}

/// What the model observes of one queue.
#[derive(Default)]
struct Observed {
    ran: Mutex<Vec<u32>>,
    in_action: AtomicBool,
    overlaps: AtomicUsize,
}

fn add(queue: &OrderedTasks, observed: &Arc<Observed>, id: u32) -> bool {
    let observed = Arc::clone(observed);
    queue.add_action(format!("a{id}"), move || {
        if observed.in_action.swap(true, Ordering::SeqCst) {
            observed.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        observed
            .ran
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
        observed.in_action.store(false, Ordering::SeqCst);
        Ok(())
    })
}

fn ran(observed: &Observed) -> Vec<u32> {
    observed
        .ran
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// The queue's last pending action finishes on one thread while another thread adds an
/// action: the new action must run exactly once, after the first.
#[test]
fn action_added_while_the_last_action_finishes_is_run_exactly_once() {
    model("last action vs add", || {
        let system = TaskSystem::manual_fifo();
        let queue = system.ordered("q");
        let observed = Arc::new(Observed::default());
        assert!(add(&queue, &observed, 1));

        let worker = {
            let system = system.clone();
            thread::spawn(move || {
                system.run_one();
            })
        };
        let accepted = add(&queue, &observed, 2);
        let _ = worker.join();
        system.run_until_idle();

        assert!(accepted);
        assert_eq!(ran(&observed), vec![1, 2]);
        assert!(queue.is_idle());
        assert_eq!(system.counters().done, 2);
        assert_eq!(system.counters().queued, 0);
    });
}

/// Two "workers" pick from the board at the same time while an action of the queue adds a
/// follow-up and an outside thread adds another: never two actions at once, never lost,
/// never twice, order = order of acceptance.
#[test]
fn two_workers_an_inner_add_and_an_outer_add_keep_order_and_exclusion() {
    model("two workers, inner and outer add", || {
        let system = TaskSystem::manual_fifo();
        let queue = system.ordered("q");
        let observed = Arc::new(Observed::default());
        {
            let (inner_queue, inner_observed) = (queue.clone(), Arc::clone(&observed));
            assert!(queue.add_action("a1", move || {
                inner_observed
                    .ran
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(1);
                if !add(&inner_queue, &inner_observed, 3) {
                    return Err("refused".into());
                }
                Ok(())
            }));
        }

        // Each "worker" makes two picks, so continuations race with the other worker too.
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let system = system.clone();
                thread::spawn(move || {
                    system.run_one();
                    system.run_one();
                })
            })
            .collect();
        let accepted = add(&queue, &observed, 2);
        for worker in workers {
            let _ = worker.join();
        }
        system.run_until_idle();

        assert!(accepted);
        let order = ran(&observed);
        // 1 first (it was the only action when the workers started); 2 and 3 follow in the
        // order the queue accepted them, which depends on the interleaving.
        assert!(
            order == vec![1, 2, 3] || order == vec![1, 3, 2],
            "order {order:?}"
        );
        assert_eq!(observed.overlaps.load(Ordering::SeqCst), 0);
        assert!(queue.is_idle());
        assert_eq!(system.counters().done, 3);
    });
}

/// A cancel racing with the queue's hand-off: every action either runs or is counted as
/// cancelled, never both, and nothing runs after the cancel took effect.
#[test]
fn cancel_racing_the_hand_off_accounts_for_every_action() {
    model("cancel vs hand-off", || {
        let system = TaskSystem::manual_fifo();
        let queue = system.ordered("q");
        let observed = Arc::new(Observed::default());
        assert!(add(&queue, &observed, 1));
        assert!(add(&queue, &observed, 2));

        let worker = {
            let system = system.clone();
            thread::spawn(move || {
                system.run_one();
            })
        };
        queue.cancel();
        let _ = worker.join();
        system.run_until_idle();

        let order = ran(&observed);
        assert!(
            order.is_empty() || order == vec![1],
            "ran after cancel: {order:?}"
        );
        let counters = system.counters();
        assert_eq!(counters.done + counters.cancelled, 2);
        assert_eq!(counters.done as usize, order.len());
        assert_eq!(counters.queued, 0);
        assert!(queue.is_idle());
    });
}

/// `resume` racing a worker that picks the paused queue off the board: whichever wins, the
/// queue is neither stranded (pending but off the board) nor put on the board twice.
#[test]
fn resume_racing_a_pick_of_the_paused_queue_never_strands_it() {
    model("resume vs pick", || {
        let system = TaskSystem::manual_fifo();
        let queue = system.ordered("q");
        let observed = Arc::new(Observed::default());
        assert!(add(&queue, &observed, 1));
        assert!(add(&queue, &observed, 2));
        queue.pause();

        let worker = {
            let system = system.clone();
            thread::spawn(move || {
                system.run_one();
            })
        };
        queue.resume();
        let _ = worker.join();
        system.run_until_idle();

        assert_eq!(ran(&observed), vec![1, 2]);
        assert_eq!(observed.overlaps.load(Ordering::SeqCst), 0);
        assert!(queue.is_idle());
        assert_eq!(system.counters().done, 2);
    });
}

/// The threaded board, with loom threads as its workers: an action added while the queue's
/// only action finishes on a worker (the queue going Idle races the add submitting it again
/// through the injector, and the worker parking races the submitter's look at the parked
/// count) runs exactly once, after the first; the drain then ends the worker.
#[test]
fn threaded_add_while_the_queue_finishes_is_run_exactly_once() {
    model("threaded: last action vs add", || {
        let system = TaskSystem::threaded_model(1);
        let queue = system.ordered("q");
        let observed = Arc::new(Observed::default());
        let worker = {
            let system = system.clone();
            thread::spawn(move || system.work())
        };
        assert!(add(&queue, &observed, 1));
        assert!(add(&queue, &observed, 2));
        system.shutdown(ShutdownMode::Drain);
        let _ = worker.join();

        assert_eq!(ran(&observed), vec![1, 2]);
        assert_eq!(observed.overlaps.load(Ordering::SeqCst), 0);
        assert!(queue.is_idle());
        let counters = system.counters();
        assert_eq!(
            (counters.done, counters.queued, counters.running),
            (2, 0, 0)
        );
    });
}

/// Two workers that may both be parked, one submission each for two queues: no wake-up is
/// lost (a lost one would leave `wait_idle` blocked forever, which loom reports as a
/// deadlock) and both actions run once.
#[test]
fn threaded_two_parked_workers_never_miss_a_wake_up() {
    model("threaded: two workers, wake-ups", || {
        let system = TaskSystem::threaded_model(2);
        let (q1, q2) = (system.ordered("q1"), system.ordered("q2"));
        let (o1, o2) = (Arc::new(Observed::default()), Arc::new(Observed::default()));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let system = system.clone();
                thread::spawn(move || system.work())
            })
            .collect();
        assert!(add(&q1, &o1, 1));
        assert!(add(&q2, &o2, 2));
        assert!(system.wait_idle(Duration::from_secs(1)));
        assert_eq!((ran(&o1), ran(&o2)), (vec![1], vec![2]));
        system.shutdown(ShutdownMode::Cancel);
        for worker in workers {
            let _ = worker.join();
        }
        assert_eq!(system.counters().done, 2);
    });
}

/// `cancel` racing a worker of the threaded board that runs the queue's turn (the worker
/// pops the next action in the same lock step that checks the queue is still runnable):
/// nothing runs after the cancel took effect, every action is run or cancelled exactly once.
#[test]
fn threaded_cancel_racing_a_turn_accounts_for_every_action() {
    model("threaded: cancel vs turn", || {
        let system = TaskSystem::threaded_model(1);
        let queue = system.ordered("q");
        let observed = Arc::new(Observed::default());
        assert!(add(&queue, &observed, 1));
        assert!(add(&queue, &observed, 2));
        let worker = {
            let system = system.clone();
            thread::spawn(move || system.work())
        };
        queue.cancel();
        let after_cancel = ran(&observed).len();
        system.shutdown(ShutdownMode::Drain);
        let _ = worker.join();

        let order = ran(&observed);
        // In order, each at most once (the turn may have run both before the cancel).
        assert!([1, 2].starts_with(&order), "order {order:?}");
        // After `cancel` returned, at most the action already running finishes; none starts.
        assert!(order.len() <= after_cancel + 1);
        let counters = system.counters();
        assert_eq!(counters.done + counters.cancelled, 2);
        assert_eq!(counters.done as usize, order.len());
        assert!(queue.is_idle());
    });
}

/// `pause` racing a worker's turn, then `resume`: after `pause` returns no action starts
/// until `resume`, and after it both run in order; the queue is never stranded.
#[test]
fn threaded_pause_and_resume_racing_a_turn_never_strand_the_queue() {
    model("threaded: pause/resume vs turn", || {
        let system = TaskSystem::threaded_model(1);
        let queue = system.ordered("q");
        let observed = Arc::new(Observed::default());
        assert!(add(&queue, &observed, 1));
        assert!(add(&queue, &observed, 2));
        let worker = {
            let system = system.clone();
            thread::spawn(move || system.work())
        };
        queue.pause();
        let at_pause = ran(&observed).len();
        // Whatever started before the pause may finish; nothing else starts.
        let started_after = |observed: &Observed| ran(observed).len().saturating_sub(at_pause);
        assert!(started_after(&observed) <= 1);
        queue.resume();
        system.shutdown(ShutdownMode::Drain);
        let _ = worker.join();

        assert_eq!(ran(&observed), vec![1, 2]);
        assert_eq!(observed.overlaps.load(Ordering::SeqCst), 0);
        assert!(queue.is_idle());
        assert_eq!(system.counters().done, 2);
    });
}
