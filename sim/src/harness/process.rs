//! One incarnation of the simulated node process: executor, store, Snapshotter and the
//! channels between them. A crash drops it whole; recovery builds a new one over the same
//! (simulated) disk and ledger.

use std::path::Path;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use snapseal_actors::ConfigError;
use snapseal_actors::{Events, Snapshotter};
use snapseal_engine::{ShutdownMode, TaskSystem};
use snapseal_persist::fs::{FileSystem, SimFs};
use snapseal_persist::receipt::ReceiptVerifier;
use snapseal_persist::Hash;
use snapseal_persist::{Hold, SnapshotStore, StoreError, StoreOptions};

use super::config::HarnessConfig;
use snapseal_ledger::ledger::Ledger;
use snapseal_ledger::node::{ChannelSink, KvState};

/// Why a process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Opening the store (and its recovery scan) failed.
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    /// The harness configuration is not a valid Snapshotter configuration.
    #[error("{0}")]
    Config(#[from] ConfigError),
}

/// The live process.
pub(crate) struct Process {
    pub tasks: TaskSystem,
    pub snap: Snapshotter,
    pub store: Arc<SnapshotStore>,
    pub evidence_rx: Receiver<(u64, Hash)>,
    pub events_rx: Events,
    /// Holds the simulated operator took (dropped with the process).
    pub holds: Vec<Hold>,
}

impl Process {
    /// Opens the store (recovery: stale files removed) and starts a fresh Snapshotter.
    pub(super) fn start(
        sim: &SimFs,
        dir: &Path,
        ledger: &Ledger,
        verifier: &Arc<dyn ReceiptVerifier>,
        cfg: &HarnessConfig,
        exec_seed: u64,
    ) -> Result<Process, StartError> {
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        let opts = StoreOptions {
            keep_last: cfg.keep_last,
            max_bytes: cfg.max_bytes,
            max_quarantined: cfg.max_quarantined,
            ..StoreOptions::new(Arc::clone(verifier))
        };
        let store = Arc::new(SnapshotStore::open(fs, dir, opts)?);
        let tasks = if cfg.fifo {
            TaskSystem::manual_fifo()
        } else {
            TaskSystem::manual(exec_seed)
        };
        let (sink, evidence_rx) = ChannelSink::new();
        let state = Arc::new(KvState::new(ledger.clone()));
        let snap = Snapshotter::new(
            cfg.snapshotter(),
            tasks.clone(),
            Arc::clone(&store),
            state,
            Arc::new(sink),
        )?;
        let events_rx = snap.events();
        Ok(Process {
            tasks,
            snap,
            store,
            evidence_rx,
            events_rx,
            holds: Vec::new(),
        })
    }

    /// The process dies: nothing queued runs any more, every hold and handle goes away.
    pub(super) fn kill(self) {
        self.tasks.shutdown(ShutdownMode::Cancel);
        drop(self);
    }
}
