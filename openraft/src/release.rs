//! [`Released`] and [`shutdown`]: stopping a node so that its snapshot directory is free when
//! the stop returns.
//!
//! openraft 0.9's `Raft::shutdown` returns once its core task has ended. The state machine is
//! not owned by that task: it lives in a worker task of its own, which openraft spawns and
//! never joins (it quits when it sees the core's command channel close), and a snapshot build
//! runs in a further detached task holding its builder. Both hold the machine's store, hence
//! the directory lock, for a while after `Raft::shutdown` returned: the worker until the
//! runtime next polls it (or its current command — an apply, an install — is done), a build
//! until it has committed its file. Opening the directory again in that window fails with
//! `StoreError::Locked`. So the adapter says when the last of them is gone.

use openraft::{Raft, RaftTypeConfig};
use tokio::sync::watch;

use crate::Error;

/// Resolves when a [`SealedStateMachine`](crate::SealedStateMachine), every snapshot build it
/// started, and every built snapshot's data not yet opened (openraft drops it at once) have
/// been dropped, so its snapshot store is closed and the directory lock released. Take it with [`released`](crate::SealedStateMachine::released) before handing the
/// machine to `Raft::new`; or use [`shutdown`], which stops the node and waits for it.
#[derive(Debug)]
pub struct Released {
    rx: watch::Receiver<()>,
}

/// The other end of [`Released`]: dropped with the machine's shared parts, after their store.
pub(crate) struct ReleaseSignal(watch::Sender<()>);

impl ReleaseSignal {
    pub(crate) fn new() -> Self {
        ReleaseSignal(watch::channel(()).0)
    }

    pub(crate) fn released(&self) -> Released {
        Released {
            rx: self.0.subscribe(),
        }
    }
}

impl Released {
    /// Waits until the directory lock is released. Nothing is ever sent on the channel: it
    /// only closes, when the signal is dropped.
    pub async fn wait(mut self) {
        while self.rx.changed().await.is_ok() {}
    }

    /// True once the directory lock is released.
    pub fn is_released(&self) -> bool {
        self.rx.has_changed().is_err()
    }
}

/// Stops `raft` (`Raft::shutdown`) and returns once its state machine — given as the
/// [`Released`] taken from it — has released the snapshot directory: the directory can be
/// opened again as soon as this returns. An error is openraft's core task having panicked;
/// the directory is released either way.
pub async fn shutdown<C: RaftTypeConfig>(raft: &Raft<C>, released: Released) -> Result<(), Error> {
    let stopped = raft.shutdown().await;
    released.wait().await;
    stopped.map_err(|e| Error::Task(e.to_string()))
}
