//! Manual mode: a seed fixes the execution order bit for bit; different seeds explore
//! different interleavings, and every one of them keeps each queue's order.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use snapseal_engine::TaskSystem;

type Trace = Arc<Mutex<Vec<String>>>;

/// A workload mixing queues (some fed by their own actions), plain tasks and timers; returns
/// the order in which everything ran.
fn trace_of(system: &TaskSystem) -> Vec<String> {
    let trace: Trace = Arc::new(Mutex::new(Vec::new()));
    let record = |trace: &Trace, what: String| {
        let trace = Arc::clone(trace);
        move || {
            trace.lock().push(what);
            Ok(())
        }
    };
    let queues: Vec<_> = (0..6).map(|q| system.ordered(format!("q{q}"))).collect();
    for (q, queue) in queues.iter().enumerate() {
        for a in 0..8 {
            if a % 3 == 0 {
                let (inner_queue, inner_trace) = (queue.clone(), Arc::clone(&trace));
                let nested = record(&trace, format!("q{q}.{a}+"));
                assert!(queue.add_action(format!("{a}"), move || {
                    inner_trace.lock().push(format!("q{q}.{a}"));
                    if !inner_queue.add_action("nested", nested) {
                        return Err("refused".into());
                    }
                    Ok(())
                }));
            } else {
                assert!(queue.add_action(format!("{a}"), record(&trace, format!("q{q}.{a}"))));
            }
        }
    }
    for t in 0..10 {
        system.spawn(format!("t{t}"), record(&trace, format!("t{t}")));
    }
    for d in 0..4 {
        system.spawn_after(
            format!("d{d}"),
            Duration::from_millis(5),
            record(&trace, format!("d{d}")),
        );
    }
    system.run_until_idle();
    system.tick(Duration::from_millis(5));
    system.run_until_idle();
    let result = trace.lock().clone();
    result
}

/// The run order of one queue's entries, extracted from a trace.
fn queue_order(trace: &[String], q: usize) -> Vec<String> {
    let prefix = format!("q{q}.");
    trace
        .iter()
        .filter(|e| e.starts_with(&prefix))
        .cloned()
        .collect()
}

#[test]
fn same_seed_gives_an_identical_trace() {
    for seed in [0, 1, 42, u64::MAX] {
        let first = trace_of(&TaskSystem::manual(seed));
        let second = trace_of(&TaskSystem::manual(seed));
        assert_eq!(first.len(), 6 * (8 + 3) + 10 + 4);
        assert_eq!(first, second, "seed {seed} was not reproducible");
    }
}

#[test]
fn different_seeds_explore_different_interleavings() {
    let traces: Vec<_> = (0..8)
        .map(|seed| trace_of(&TaskSystem::manual(seed)))
        .collect();
    let distinct = {
        let mut sorted = traces.clone();
        sorted.sort();
        sorted.dedup();
        sorted.len()
    };
    assert!(
        distinct >= 4,
        "only {distinct} distinct traces from 8 seeds"
    );
    // Whatever the interleaving, each queue's own order is the same.
    for q in 0..6 {
        let reference = queue_order(&traces[0], q);
        for trace in &traces[1..] {
            assert_eq!(
                queue_order(trace, q),
                reference,
                "queue {q} order depends on the seed"
            );
        }
    }
}

#[test]
fn fifo_manual_runs_jobs_in_submission_order() {
    let system = TaskSystem::manual_fifo();
    let trace: Trace = Arc::new(Mutex::new(Vec::new()));
    for t in 0..5 {
        let trace = Arc::clone(&trace);
        system.spawn(format!("t{t}"), move || {
            trace.lock().push(format!("t{t}"));
            Ok(())
        });
    }
    system.run_until_idle();
    assert_eq!(*trace.lock(), ["t0", "t1", "t2", "t3", "t4"]);
}
