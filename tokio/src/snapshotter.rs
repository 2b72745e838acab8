//! [`AsyncSnapshotter`]: a [`Snapshotter`] whose blocking edges (open, close, drop, the
//! newest snapshot) run off the runtime's workers.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use snapseal_actors::{
    CloseMode, ConfigError, EvidenceSink, Snapshotter, SnapshotterConfig, StateSource,
};
use snapseal_engine::TaskSystem;
use snapseal_persist::{SnapshotFile, SnapshotStore};
use tracing::debug;

use crate::events::EventStream;
use crate::idle::Ended;
use crate::{blocking, store, Error};

/// A [`Snapshotter`] for a node on tokio.
///
/// The consensus calls are the Snapshotter's own, through `Deref`/`DerefMut`
/// (`record_committable`, `commit`, `record_evidence_in_term`, `record_signature`,
/// `record_tree`, `rollback`, `trigger_snapshot`): they are synchronous and cheap — they
/// update memory, call the node's `capture` and queue work on the engine, and never wait for
/// I/O or for a task — so the node's consensus task calls them directly. What blocks has an
/// async form here:
///
/// - [`open`](Self::open) / [`open_with`](Self::open_with): [`Snapshotter::new`] reads the
///   store to resume its schedule from the newest snapshot that verifies;
/// - [`latest`](Self::latest): the newest snapshot that verifies, read and hashed;
/// - [`close`](Self::close): waits for running snapshot actions and frees the store;
/// - [`wait_idle`](Self::wait_idle): the generations started so far, ended;
/// - [`events`](Self::events): the events as a `Stream` (this shadows the Snapshotter's
///   blocking [`Events`](snapseal_actors::Events) receiver, which stays reachable as
///   `(*snap).events()`).
///
/// **Dropping** it never blocks the runtime: the Snapshotter is moved to a blocking thread
/// and closed there with [`CloseMode::Cancel`] (as dropping a `Snapshotter` does), so the
/// store's lock is freed shortly after the drop, not at it. Outside a runtime (or when the
/// runtime is shutting down and runs no more blocking tasks) the close runs on the dropping
/// thread. Call [`close`](Self::close) to know when it is done.
///
/// Every async method must run inside a tokio runtime (it uses `spawn_blocking`).
pub struct AsyncSnapshotter {
    /// `None` only once `close` or `drop` took it.
    inner: Option<Snapshotter>,
    ended: Arc<Ended>,
}

impl std::fmt::Debug for AsyncSnapshotter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AsyncSnapshotter")
            .field(&self.inner)
            .finish()
    }
}

impl AsyncSnapshotter {
    /// [`Snapshotter::new`] on a blocking thread: validates `config` and resumes the schedule
    /// from the store's newest snapshot that verifies (which reads the store).
    pub async fn open(
        config: SnapshotterConfig,
        tasks: TaskSystem,
        store: Arc<SnapshotStore>,
        state: Arc<dyn StateSource>,
        sink: Arc<dyn EvidenceSink>,
    ) -> Result<AsyncSnapshotter, Error> {
        Self::open_with(move || Snapshotter::new(config, tasks, store, state, sink)).await
    }

    /// Runs `build` on a blocking thread and wraps the Snapshotter it made: for a Snapshotter
    /// set up beyond [`open`](Self::open)'s arguments, e.g.
    /// `Snapshotter::new(…).map(|s| s.with_statement_key(key))`. `build` only constructs: a
    /// consensus call inside it would start generations [`wait_idle`](Self::wait_idle) does
    /// not see.
    pub async fn open_with<F>(build: F) -> Result<AsyncSnapshotter, Error>
    where
        F: FnOnce() -> Result<Snapshotter, ConfigError> + Send + 'static,
    {
        let snap = blocking::run("starting the snapshotter", build).await??;
        let ended = Ended::watch(&snap);
        Ok(AsyncSnapshotter {
            inner: Some(snap),
            ended,
        })
    }

    fn snap(&self) -> &Snapshotter {
        match &self.inner {
            Some(snap) => snap,
            None => unreachable!("only close and drop take the Snapshotter, and both end self"),
        }
    }

    /// The events from now on, as a `Stream` (bounded, with overflow accounting: see
    /// [`EventStream`]). Each call makes a stream of its own that sees every event.
    pub fn events(&self) -> EventStream {
        EventStream::new(self.snap())
    }

    /// Resolves once every generation started so far has ended — committed, failed or
    /// dropped — so its file, if any, is written. Generations started after this call are not
    /// waited for.
    ///
    /// The future borrows nothing: a generation waits for the node (its evidence, then its
    /// commit, and in Merkle mode a signature and its tree), so **do not await it on the task
    /// that drives the Snapshotter** unless every pending generation is past its gate — spawn
    /// it, or `select!` it with the consensus loop. It is woken by the Snapshotter's events,
    /// never by polling. After a close every generation has ended, so it resolves.
    pub fn wait_idle(&self) -> impl Future<Output = ()> + Send + 'static {
        self.ended.wait_for_started(self.snap())
    }

    /// The newest snapshot that verifies in this Snapshotter's store
    /// ([`SnapshotStore::latest`], on a blocking thread).
    pub async fn latest(&self) -> Result<Option<SnapshotFile>, Error> {
        store::latest(self.snap().store()).await
    }

    /// [`Snapshotter::close`] on a blocking thread; resolves once it returned: generations
    /// drained or cancelled as `mode` says, running actions finished, kept points released,
    /// event streams ended and the Snapshotter's store handle dropped — so once the node drops
    /// its own `Arc<SnapshotStore>` (and any [`SnapshotFile`] it holds) the directory's lock
    /// is free.
    ///
    /// Dropping the future does not stop the close; it completes on its blocking thread.
    pub async fn close(mut self, mode: CloseMode) -> Result<(), Error> {
        let Some(snap) = self.inner.take() else {
            return Ok(());
        };
        blocking::run("closing the snapshotter", move || snap.close(mode)).await
    }
}

impl Deref for AsyncSnapshotter {
    type Target = Snapshotter;

    fn deref(&self) -> &Snapshotter {
        self.snap()
    }
}

impl DerefMut for AsyncSnapshotter {
    fn deref_mut(&mut self) -> &mut Snapshotter {
        match &mut self.inner {
            Some(snap) => snap,
            None => unreachable!("only close and drop take the Snapshotter, and both end self"),
        }
    }
}

impl Drop for AsyncSnapshotter {
    /// A `Cancel` close on a blocking thread (see the type's docs).
    fn drop(&mut self) {
        let Some(snap) = self.inner.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                debug!("snapshotter dropped: closing it on a blocking thread");
                // If the runtime is shutting down the task never runs and drops its closure,
                // which closes the Snapshotter there: it is closed either way.
                drop(runtime.spawn_blocking(move || drop(snap)));
            }
            Err(_) => drop(snap),
        }
    }
}
