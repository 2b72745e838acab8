//! Shutting a task system down: refuse new work, drain or cancel, join the threads.

use tracing::error;

use crate::shared::{Scheduler, Shared};

/// What [`TaskSystem::shutdown`](crate::TaskSystem::shutdown) does with work already queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShutdownMode {
    /// Run everything already on the board, and every action already accepted by a queue
    /// that is not paused, then stop. Armed timers are cancelled, not waited for.
    Drain,
    /// Skip everything that has not started (counted as cancelled); actions and tasks already
    /// running finish.
    Cancel,
}

impl Shared {
    /// See [`TaskSystem::shutdown`](crate::TaskSystem::shutdown) for the contract.
    pub(crate) fn shutdown(&self, mode: ShutdownMode) {
        // The board changes phase first, so that once `spawn`/`add_action` are seen refusing
        // work, nothing the board holds can start any more (under Cancel).
        let skipped = match self.scheduler() {
            Scheduler::Threaded(board) => board.begin_shutdown(mode),
            Scheduler::Manual(board) => match mode {
                ShutdownMode::Drain => {
                    board.begin_drain();
                    Vec::new()
                }
                ShutdownMode::Cancel => board.close(),
            },
        };
        self.stop_accepting();
        let armed = self.timers().stop();
        // Only now drop user closures: dropping captures may drop the last `TaskSystem`
        // handle and re-enter here (seeing the shutdown begun, that nested call only joins
        // threads, which by now are on their way out).
        for job in skipped {
            job.skip();
        }
        for task in armed {
            task.abandon();
        }
        if let Scheduler::Manual(board) = self.scheduler() {
            if mode == ShutdownMode::Drain {
                while self.run_one() {}
            }
            for job in board.close() {
                job.skip();
            }
        }
        self.join_threads();
    }

    /// What dropping the last handle does: shut down (Cancel) unless a shutdown already began,
    /// in which case only make sure the threads are joined.
    pub(crate) fn release(&self) {
        if self.accepting() {
            self.shutdown(ShutdownMode::Cancel);
        } else {
            self.join_threads();
        }
    }

    /// Joins the worker and timer threads. On one of the system's own threads it returns at
    /// once instead (the threads are detached: they exit on their own once the board is
    /// closed, and a later call from another thread still joins them). Concurrent callers
    /// wait for the one doing the joining, since it holds the lock throughout — none of the
    /// threads being joined ever takes that lock.
    pub(crate) fn join_threads(&self) {
        if self.on_own_thread() {
            return;
        }
        let mut threads = self.threads.lock();
        for handle in threads.drain(..) {
            let name = handle.thread().name().unwrap_or("unnamed").to_owned();
            if handle.join().is_err() {
                error!(thread = %name, "an engine thread ended by panicking");
            }
        }
    }
}
