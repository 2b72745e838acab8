//! Worker threads, and knowing whether the current thread is one of a system's own threads.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use tracing::error;

use crate::board::{Board, Continue};
use crate::job::Job;
use crate::shared::Shared;

#[cfg(not(loom))]
thread_local! {
    /// Id of the system this thread works for (0: none). Lets `shutdown`, the last handle's
    /// drop and `wait_idle` notice they are running on a thread they would otherwise wait for.
    static SERVES: Cell<u64> = const { Cell::new(0) };
}

// loom runs its threads as coroutines on one OS thread: a std thread-local would be shared.
#[cfg(loom)]
loom::thread_local! {
    static SERVES: Cell<u64> = Cell::new(0);
}

#[cfg(not(loom))]
thread_local! {
    /// This thread's worker slot (from 1) in the system `SERVES` names; 0: not a worker.
    static WORKER_SLOT: Cell<usize> = const { Cell::new(0) };
}

#[cfg(loom)]
loom::thread_local! {
    static WORKER_SLOT: Cell<usize> = Cell::new(0);
}

/// The calling thread's worker slot (from 1) in system `id`, or 0 when it is not one of that
/// system's workers (the counters give each worker a shard of its own).
pub(crate) fn worker_slot(id: u64) -> usize {
    if current_thread_serves(id) {
        WORKER_SLOT.with(Cell::get)
    } else {
        0
    }
}

/// Marks the current thread as one of system `id`'s own threads.
pub(crate) fn mark_current_thread(id: u64) {
    SERVES.with(|serves| serves.set(id));
}

/// Whether the current thread is one of system `id`'s worker or timer threads.
pub(crate) fn current_thread_serves(id: u64) -> bool {
    SERVES.with(|serves| serves.get() == id)
}

/// Body of a worker thread: take a job, run it (and its continuations while nothing else
/// waits), report it finished, repeat until the board says stop.
pub(crate) fn worker_main(shared: Arc<Shared>) {
    mark_current_thread(shared.id());
    WORKER_SLOT.with(|slot| slot.set(shared.claim_worker_slot()));
    let Some(board) = shared.board() else {
        return;
    };
    while let Some(job) = board.next() {
        // User code is already guarded job by job; this outer guard only keeps the worker and
        // the board's count of outstanding jobs intact if a `Drop` of user captures panics
        // while a job is being skipped.
        if catch_unwind(AssertUnwindSafe(|| run_chain(&shared, board, job))).is_err() {
            error!("a job panicked outside its action guard; the worker carries on");
        }
        board.finish();
    }
}

fn run_chain(shared: &Shared, board: &Board, job: Job) {
    let mut next = Some(job);
    while let Some(job) = next.take() {
        if let Some(again) = job.run(shared) {
            next = match board.continue_with(again) {
                Continue::Here(job) => Some(job),
                Continue::Queued => None,
                Continue::Refused(job) => {
                    job.skip();
                    None
                }
            };
        }
    }
}
