//! Action throughput of independent `OrderedTasks` queues against a plain crossbeam-channel
//! worker pool with the same number of threads running the same tiny closures. The pool and
//! the closure are public: `benches/engine_dispatch.rs` measures against the same ones.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use snapseal_engine::{EngineConfig, ShutdownMode, TaskSystem};

use super::fixture::{alternate, timed};
use super::table::{BenchRow, Rate};
use super::BenchError;

const QUEUES: usize = 64;
const HANG_GUARD: Duration = Duration::from_secs(600);

/// What every action and every pool job does: a few operations the optimiser cannot remove.
#[inline(always)]
pub fn tiny(i: usize) {
    black_box(black_box(i).wrapping_mul(0x9E37_79B9).rotate_left(7));
}

type PoolJob = Box<dyn FnOnce() + Send>;

/// A fixed pool of threads taking boxed closures from one channel: the peer of the engine.
#[derive(Debug)]
pub struct Pool {
    tx: Option<Sender<PoolJob>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `threads` threads; they stop when the pool is dropped.
    pub fn new(threads: usize) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<PoolJob>();
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
        Pool {
            tx: Some(tx),
            threads,
        }
    }

    /// Runs `jobs` closures [`tiny`]`(i)` and waits until all ran (at most ten minutes).
    pub fn run(&self, jobs: usize) -> Result<(), BenchError> {
        let Some(tx) = &self.tx else {
            return Err(BenchError::Run("pool closed".into()));
        };
        let remaining = Arc::new(AtomicUsize::new(jobs));
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
        for i in 0..jobs {
            let remaining = Arc::clone(&remaining);
            let done_tx = done_tx.clone();
            let job: PoolJob = Box::new(move || {
                tiny(i);
                if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    let _ = done_tx.send(());
                }
            });
            tx.send(job)
                .map_err(|_| BenchError::Run("pool closed".into()))?;
        }
        done_rx
            .recv_timeout(HANG_GUARD)
            .map_err(|_| BenchError::Run("pool did not finish".into()))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The row: `QUEUES` queues × `per_queue` actions added round-robin, against the pool running
/// as many closures, `threads` threads each.
pub(crate) fn row(threads: usize, per_queue: usize, reps: usize) -> Result<BenchRow, BenchError> {
    let system = TaskSystem::threaded(EngineConfig {
        workers: Some(threads),
        ..EngineConfig::default()
    })
    .map_err(|e| BenchError::Setup(format!("engine: {e}")))?;
    let pool = Pool::new(threads);
    let items = QUEUES * per_queue;
    let engine = || -> Result<Duration, BenchError> {
        let (idle, t) = timed(|| {
            let queues: Vec<_> = (0..QUEUES).map(|_| system.ordered("q")).collect();
            for i in 0..per_queue {
                for q in &queues {
                    q.add_action("a", move || {
                        tiny(i);
                        Ok(())
                    });
                }
            }
            system.wait_idle(HANG_GUARD)
        });
        if idle {
            Ok(t)
        } else {
            Err(BenchError::Run("engine did not go idle".into()))
        }
    };
    let result = alternate(reps, engine, || {
        let (r, t) = timed(|| pool.run(items));
        r.map(|()| t)
    });
    system.shutdown(ShutdownMode::Cancel);
    let runs = result?;
    Ok(BenchRow::throughputs(
        format!(
            "engine: {QUEUES} queues x {per_queue} actions vs crossbeam pool, {threads} threads"
        ),
        items as f64,
        &runs,
        1.0,
        Rate::Items,
    ))
}
