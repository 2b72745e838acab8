//! [`Machine`]: the node's state machine — snapseal's `SealedStateMachine` over the [`Kv`]
//! state — with what the node needs around it: counts of snapshots built and installed, the
//! applied index read together with the state (for `/state`), and each snapshot built or
//! installed handed to the shipping outbox.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StoredMembership};
use snapseal_openraft::{SealedData, SealedSnapshotBuilder, SealedStateMachine, StateHandle};
use tokio::sync::RwLock;
use tracing::warn;

use crate::kv::{Cfg, Kv, NodeId};
use crate::outbox::Outbox;

/// Counters the node reports in `/status`.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Snapshots this node built.
    pub(crate) built: AtomicU64,
    /// Snapshots this node received from a leader and installed.
    pub(crate) installed: AtomicU64,
}

/// The state and its applied index, read together.
#[derive(Clone, Debug)]
pub(crate) struct View {
    state: StateHandle<Kv>,
    /// Written by the machine around every apply and install, so a reader holding it sees a
    /// state and the index it is the state of.
    applied: Arc<RwLock<Option<u64>>>,
}

impl View {
    /// Runs `f` on the state and its last applied index.
    pub(crate) async fn read<T>(&self, f: impl FnOnce(&Kv, Option<u64>) -> T) -> T {
        let applied = self.applied.read().await;
        let state = self.state.read();
        f(&state, *applied)
    }

    /// Runs `f` on the state as it is now (for a read already ordered by the leader).
    pub(crate) fn now<T>(&self, f: impl FnOnce(&Kv) -> T) -> T {
        f(&self.state.read())
    }
}

/// The node's state machine (see the module docs).
pub(crate) struct Machine {
    inner: SealedStateMachine<Cfg, Kv>,
    view: View,
    counts: Arc<Counts>,
    outbox: Outbox,
}

impl Machine {
    /// Wraps `inner`, whose state was recovered at `applied`.
    pub(crate) async fn new(
        mut inner: SealedStateMachine<Cfg, Kv>,
        counts: Arc<Counts>,
        outbox: Outbox,
    ) -> Result<Machine, StorageError<NodeId>> {
        let (applied, _) = inner.applied_state().await?;
        let view = View {
            state: inner.state_handle(),
            applied: Arc::new(RwLock::new(applied.map(|l| l.index))),
        };
        Ok(Machine {
            inner,
            view,
            counts,
            outbox,
        })
    }

    /// The state and applied index, for the HTTP handlers.
    pub(crate) fn view(&self) -> View {
        self.view.clone()
    }
}

/// Builds a snapshot through the adapter's builder, then counts it and hands it to the
/// outbox.
pub(crate) struct Builder {
    inner: SealedSnapshotBuilder<Cfg, Kv>,
    counts: Arc<Counts>,
    outbox: Outbox,
}

impl RaftSnapshotBuilder<Cfg> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Cfg>, StorageError<NodeId>> {
        let snapshot = self.inner.build_snapshot().await?;
        self.counts.built.fetch_add(1, Ordering::Relaxed);
        let Snapshot { meta, snapshot } = snapshot;
        // openraft keeps only the metadata; the data (the committed file) is copied into the
        // outbox first, off the runtime's threads. A failure there costs a shipment, not the
        // snapshot.
        let outbox = self.outbox.clone();
        let data = match tokio::task::spawn_blocking(move || {
            outbox.take(&snapshot);
            snapshot
        })
        .await
        {
            Ok(data) => data,
            Err(e) => {
                warn!(error = %e, "outbox copy task failed");
                return Err(openraft::StorageIOError::write_snapshot(
                    Some(meta.signature()),
                    openraft::AnyError::error(e),
                )
                .into());
            }
        };
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl RaftStateMachine<Cfg> for Machine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<NodeId>>,
            StoredMembership<NodeId, openraft::BasicNode>,
        ),
        StorageError<NodeId>,
    > {
        self.inner.applied_state().await
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> Result<Vec<crate::kv::Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<Cfg>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let last = entries.last().map(|e| e.log_id.index);
        let mut applied = self.view.applied.write().await;
        let responses = self.inner.apply(entries).await?;
        if last.is_some() {
            *applied = last;
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        Builder {
            inner: self.inner.get_snapshot_builder().await,
            counts: Arc::clone(&self.counts),
            outbox: self.outbox.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SealedData>, StorageError<NodeId>> {
        self.inner.begin_receiving_snapshot().await
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<SealedData>,
    ) -> Result<(), StorageError<NodeId>> {
        {
            let mut applied = self.view.applied.write().await;
            self.inner.install_snapshot(meta, snapshot).await?;
            *applied = meta.last_log_id.map(|l| l.index);
        }
        self.counts.installed.fetch_add(1, Ordering::Relaxed);
        // The installed snapshot is now this node's newest: it is shipped too, like a built
        // one (the node ships what its snapshot directory holds).
        if let Some(current) = self.inner.get_current_snapshot().await? {
            let outbox = self.outbox.clone();
            let copied = tokio::task::spawn_blocking(move || outbox.take(&current.snapshot)).await;
            if let Err(e) = copied {
                warn!(error = %e, "outbox copy task failed");
            }
        }
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<Cfg>>, StorageError<NodeId>> {
        self.inner.get_current_snapshot().await
    }
}
