//! The private runtime behind the blocking API. The async API runs on the caller's runtime
//! and never reaches this one; a blocking call builds it on first use and drives its future
//! there, from a helper thread when the caller is itself inside a runtime (where a `block_on`
//! of its own thread would panic). Dropped with `shutdown_background`, which never blocks, so
//! the last owner may drop it anywhere, a task included.

use std::future::Future;
use std::io;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

/// A multi-thread runtime built on the first [`run`](Self::run). Multi-thread so that it
/// keeps driving its I/O (pooled connections of an `s3://` store) between blocking calls.
pub(crate) struct BlockingRuntime {
    threads: usize,
    rt: OnceLock<Runtime>,
}

impl BlockingRuntime {
    /// A runtime of `threads` workers (at least 1), not built yet.
    pub(crate) fn new(threads: usize) -> Self {
        BlockingRuntime {
            threads: threads.max(1),
            rt: OnceLock::new(),
        }
    }

    /// Runs `f` to completion, blocking the calling thread. Outside any runtime, `f` runs in
    /// this runtime's `block_on` on the calling thread. Inside one (a task of any runtime, or
    /// one of its blocking threads) it runs in `block_on` on a helper thread while the caller
    /// waits: a caller on a current-thread runtime blocks that runtime meanwhile, but `f` does
    /// not need it, so this completes. A panic inside `f` is resumed on the caller, as if `f`
    /// had run there. The error: the runtime or the helper thread could not be started.
    pub(crate) fn run<F>(&self, f: F) -> io::Result<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        let rt = self.get()?;
        if Handle::try_current().is_err() {
            return Ok(rt.block_on(f));
        }
        std::thread::scope(|scope| {
            let helper = std::thread::Builder::new()
                .name("snapseal-ship-block".into())
                .spawn_scoped(scope, || rt.block_on(f))?;
            match helper.join() {
                Ok(out) => Ok(out),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// The runtime, built now if this is the first call.
    fn get(&self) -> io::Result<&Runtime> {
        if let Some(rt) = self.rt.get() {
            return Ok(rt);
        }
        let built = Builder::new_multi_thread()
            .worker_threads(self.threads)
            // The local reads (`pread`, verification) run on the blocking pool: capped like the
            // workers (at least two, so a read never waits behind one verification), not at
            // tokio's 512, so shipping stays within the CPUs the node granted.
            .max_blocking_threads(self.threads.max(2))
            .thread_name("snapseal-ship-io")
            .enable_all()
            .build()?;
        // Another thread may have built one meanwhile: keep the first, and drop ours without
        // blocking (this thread may be inside a runtime).
        if let Err(spare) = self.rt.set(built) {
            spare.shutdown_background();
        }
        self.rt
            .get()
            .ok_or_else(|| io::Error::other("the blocking runtime was not kept"))
    }
}

impl Drop for BlockingRuntime {
    fn drop(&mut self) {
        // A plain drop of a runtime waits for its blocking threads and panics inside a task.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
