//! Action dispatch cost of the snapseal engine against a plain crossbeam-channel worker pool
//! with the same number of threads running the same tiny closure (the pool and the closure are
//! `snapseal bench`'s own, `snapseal_cli::bench::engine`):
//!
//! - `many_queues`: 64 `OrderedTasks` × 1000 actions, added round-robin;
//! - `one_long_queue`: one `OrderedTasks` of 50 000 actions (serial by contract, so at most
//!   one worker is busy; the pool runs the same 50 000 closures unordered, on all threads).
//!
//! Each sample builds the work from scratch and waits until all of it ran. Run with
//! `cargo bench --bench engine_dispatch`.

use std::time::Duration;

use divan::Bencher;
use snapseal_cli::bench::engine::{tiny, Pool};
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

fn engine() -> TaskSystem {
    match TaskSystem::threaded(EngineConfig {
        workers: Some(WORKERS),
        ..EngineConfig::default()
    }) {
        Ok(system) => system,
        Err(error) => panic!("cannot start the engine: {error}"),
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
            .bench_local(|| pool.run(QUEUES * ACTIONS_PER_QUEUE).unwrap());
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
            .bench_local(|| pool.run(LONG_QUEUE).unwrap());
    }
}
