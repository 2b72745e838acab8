//! Action dispatch cost of the snapseal engine against a plain crossbeam-channel worker pool
//! with the same number of threads running the same tiny closure:
//!
//! - `many_queues`: 64 `OrderedTasks` × 1000 actions, added round-robin;
//! - `one_long_queue`: one `OrderedTasks` of 50 000 actions (serial by contract, so at most
//!   one worker is busy; the pool runs the same 50 000 closures unordered, on all threads).
//!
//! Each sample builds the work from scratch and waits until all of it ran. Run with
//! `cargo bench --bench engine_dispatch`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use divan::{black_box, Bencher};
use snapseal_engine::{EngineConfig, ShutdownMode, TaskSystem};

const WORKERS: usize = 2;
const QUEUES: usize = 64;
const ACTIONS_PER_QUEUE: usize = 1_000;
const LONG_QUEUE: usize = 50_000;
/// Only a hang guard for `wait_idle`.
const HANG_GUARD: Duration = Duration::from_secs(600);

fn main() {
    divan::main();
}

/// The work every action and every pool job does: a few arithmetic operations the optimiser
/// cannot remove.
#[inline(always)]
fn tiny(i: usize) {
    black_box(black_box(i).wrapping_mul(0x9E37_79B9).rotate_left(7));
}

fn engine() -> TaskSystem {
    match TaskSystem::threaded(EngineConfig {
        workers: Some(WORKERS),
        ..EngineConfig::default()
    }) {
        Ok(system) => system,
        Err(error) => panic!("cannot start the engine: {error}"),
    }
}

/// A fixed-size pool of threads taking boxed closures from one crossbeam channel.
struct Pool {
    tx: Option<Sender<Box<dyn FnOnce() + Send>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(threads: usize) -> Self {
        let (tx, rx): (Sender<Box<dyn FnOnce() + Send>>, Receiver<_>) =
            crossbeam_channel::unbounded();
        let threads = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
            })
            .collect();
        Self {
            tx: Some(tx),
            threads,
        }
    }

    /// Runs `jobs` closures `tiny(i)` and waits until all ran.
    fn run(&self, jobs: usize) {
        let Some(tx) = &self.tx else { return };
        let remaining = Arc::new(AtomicUsize::new(jobs));
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
        for i in 0..jobs {
            let remaining = Arc::clone(&remaining);
            let done_tx = done_tx.clone();
            let job: Box<dyn FnOnce() + Send> = Box::new(move || {
                tiny(i);
                if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    let _ = done_tx.send(());
                }
            });
            if tx.send(job).is_err() {
                return;
            }
        }
        let _ = done_rx.recv_timeout(HANG_GUARD);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[divan::bench_group(sample_count = 10, sample_size = 1)]
mod many_queues {
    use super::*;

    #[divan::bench]
    fn engine_ordered_tasks(bencher: Bencher) {
        let system = engine();
        bencher
            .counter(divan::counter::ItemsCount::new(QUEUES * ACTIONS_PER_QUEUE))
            .bench_local(|| {
                let queues: Vec<_> = (0..QUEUES).map(|_| system.ordered("q")).collect();
                for i in 0..ACTIONS_PER_QUEUE {
                    for queue in &queues {
                        queue.add_action("a", move || {
                            tiny(i);
                            Ok(())
                        });
                    }
                }
                assert!(system.wait_idle(HANG_GUARD));
            });
        system.shutdown(ShutdownMode::Cancel);
    }

    #[divan::bench]
    fn crossbeam_pool(bencher: Bencher) {
        let pool = Pool::new(WORKERS);
        bencher
            .counter(divan::counter::ItemsCount::new(QUEUES * ACTIONS_PER_QUEUE))
            .bench_local(|| pool.run(QUEUES * ACTIONS_PER_QUEUE));
    }
}

#[divan::bench_group(sample_count = 10, sample_size = 1)]
mod one_long_queue {
    use super::*;

    #[divan::bench]
    fn engine_ordered_tasks(bencher: Bencher) {
        let system = engine();
        bencher
            .counter(divan::counter::ItemsCount::new(LONG_QUEUE))
            .bench_local(|| {
                let queue = system.ordered("long");
                for i in 0..LONG_QUEUE {
                    queue.add_action("a", move || {
                        tiny(i);
                        Ok(())
                    });
                }
                assert!(queue.wait_idle(HANG_GUARD));
            });
        system.shutdown(ShutdownMode::Cancel);
    }

    #[divan::bench]
    fn crossbeam_pool(bencher: Bencher) {
        let pool = Pool::new(WORKERS);
        bencher
            .counter(divan::counter::ItemsCount::new(LONG_QUEUE))
            .bench_local(|| pool.run(LONG_QUEUE));
    }
}
