//! Order within a queue and mutual exclusion of its actions, under real contention: many
//! workers, many queues, producers adding while the queues run, and actions adding actions.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use parking_lot::Mutex;
use snapseal_engine::OrderedTasks;

use crate::common::{threaded, HANG_GUARD};

const QUEUES: usize = 200;
const ACTIONS: u32 = 200;
/// Every FOLLOW_UP_EVERY-th action adds a follow-up to its own queue while it runs.
const FOLLOW_UP_EVERY: u32 = 20;
const FOLLOW_UP_BASE: u32 = 1_000_000;

/// One queue under test plus what the test observes of it.
struct Probe {
    queue: OrderedTasks,
    /// The order in which `add_action` was called; each add happens while holding this lock,
    /// so this is exactly the order the queue accepted them in.
    added: Mutex<Vec<u32>>,
    /// The order in which the actions ran.
    ran: Mutex<Vec<u32>>,
    /// Set while one of this queue's actions runs.
    in_action: AtomicBool,
}

/// Counts actions that found another action of the same queue still running.
static OVERLAPS: AtomicUsize = AtomicUsize::new(0);

fn add(probe: &Arc<Probe>, id: u32) {
    let mut added = probe.added.lock();
    let runner = Arc::clone(probe);
    let accepted = probe.queue.add_action(format!("a{id}"), move || {
        body(&runner, id);
        Ok(())
    });
    assert!(accepted, "queue {} refused action {id}", probe.queue.name());
    added.push(id);
}

fn body(probe: &Arc<Probe>, id: u32) {
    if probe.in_action.swap(true, Ordering::SeqCst) {
        OVERLAPS.fetch_add(1, Ordering::SeqCst);
    }
    // Widen the window in which a second, wrongly scheduled run would overlap this one.
    thread::yield_now();
    probe.ran.lock().push(id);
    if id < FOLLOW_UP_BASE && id.is_multiple_of(FOLLOW_UP_EVERY) {
        add(probe, FOLLOW_UP_BASE + id);
    }
    probe.in_action.store(false, Ordering::SeqCst);
}

#[test]
fn queues_keep_exact_order_and_never_overlap_under_contention() {
    // More workers than cores, so workers are preempted mid-action as well.
    let system = threaded(4);
    let probes: Arc<Vec<Arc<Probe>>> = Arc::new(
        (0..QUEUES)
            .map(|i| {
                Arc::new(Probe {
                    queue: system.ordered(format!("q{i}")),
                    added: Mutex::new(Vec::new()),
                    ran: Mutex::new(Vec::new()),
                    in_action: AtomicBool::new(false),
                })
            })
            .collect(),
    );
    // Two producers feed every queue round-robin (even and odd ids), so queues are being
    // added to while they run, go idle, and get re-submitted.
    let producers: Vec<_> = (0..2u32)
        .map(|parity| {
            let probes = Arc::clone(&probes);
            thread::spawn(move || {
                for id in (parity..ACTIONS).step_by(2) {
                    for probe in probes.iter() {
                        add(probe, id);
                    }
                }
            })
        })
        .collect();
    for producer in producers {
        assert!(producer.join().is_ok(), "a producer panicked");
    }
    assert!(system.wait_idle(HANG_GUARD), "the system did not go idle");

    assert_eq!(
        OVERLAPS.load(Ordering::SeqCst),
        0,
        "two actions of a queue overlapped"
    );
    let follow_ups = ACTIONS / FOLLOW_UP_EVERY;
    for probe in probes.iter() {
        let added = probe.added.lock();
        let ran = probe.ran.lock();
        assert_eq!(added.len(), (ACTIONS + follow_ups) as usize);
        assert_eq!(
            *ran,
            *added,
            "queue {} ran out of order",
            probe.queue.name()
        );
        assert!(probe.queue.is_idle());
        assert_eq!(probe.queue.pending(), 0);
    }
    let counters = system.counters();
    let total = (QUEUES as u64) * u64::from(ACTIONS + follow_ups);
    assert_eq!(counters.done, total);
    assert_eq!((counters.queued, counters.running), (0, 0));
    assert_eq!((counters.failed, counters.cancelled), (0, 0));
}

#[test]
fn queues_run_in_parallel_with_each_other() {
    // Two queues whose first actions each wait for the other to have started: this only
    // completes if different queues really run at the same time on different workers.
    let system = threaded(2);
    let (a_started, a_seen) = crossbeam_channel::bounded::<()>(1);
    let (b_started, b_seen) = crossbeam_channel::bounded::<()>(1);
    let first = system.ordered("first");
    let second = system.ordered("second");
    let met = Arc::new(AtomicUsize::new(0));
    let m1 = Arc::clone(&met);
    assert!(first.add_action("meet", move || {
        a_started.send(())?;
        b_seen.recv_timeout(HANG_GUARD)?;
        m1.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }));
    let m2 = Arc::clone(&met);
    assert!(second.add_action("meet", move || {
        b_started.send(())?;
        a_seen.recv_timeout(HANG_GUARD)?;
        m2.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }));
    assert!(first.wait_idle(HANG_GUARD) && second.wait_idle(HANG_GUARD));
    assert_eq!(met.load(Ordering::SeqCst), 2);
    assert_eq!(system.counters().failed, 0);
}
