//! Stopping a node frees its snapshot directory by the time the stop returns, even with a
//! snapshot build still running when openraft's `Raft::shutdown` returned (openraft does not
//! wait for its state machine worker or its build tasks; they hold the directory lock).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use openraft::{BasicNode, Config, LogId, Raft, SnapshotPolicy};
use parking_lot::Mutex;
use snapseal_openraft::testing::{MemLog, Router};
use snapseal_openraft::{SealedState, SealedStateMachine};
use snapseal_persist::StoreError;
use tokio::sync::Semaphore;

use crate::example::{self, Cfg, Put};

/// Where a serialise stops until the test lets it go on.
struct Gate {
    /// A permit once a serialise is waiting at the gate.
    entered: Semaphore,
    /// Opened by sending (or dropping the sender).
    open: Mutex<mpsc::Receiver<()>>,
}

/// A counter whose serialise waits at its gate.
#[derive(Clone)]
struct Gated {
    applied: u64,
    gate: Arc<Gate>,
    open: Arc<Mutex<Option<mpsc::Sender<()>>>>,
}

impl Default for Gated {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel();
        Gated {
            applied: 0,
            gate: Arc::new(Gate {
                entered: Semaphore::new(0),
                open: Mutex::new(rx),
            }),
            open: Arc::new(Mutex::new(Some(tx))),
        }
    }
}

impl SealedState<Cfg> for Gated {
    fn apply(&mut self, _: &LogId<u64>, _: &Put) -> Option<String> {
        self.applied += 1;
        None
    }
    fn no_data_response(&self, _: &LogId<u64>) -> Option<String> {
        None
    }
    fn serialise(&self, out: &mut dyn Write) -> io::Result<()> {
        self.gate.entered.add_permits(1);
        // Err: the sender was dropped, which opens the gate too.
        let _ = self.gate.open.lock().recv();
        out.write_all(&self.applied.to_le_bytes())
    }
    fn restore(input: &mut dyn Read) -> io::Result<Self> {
        let mut b = [0; 8];
        input.read_exact(&mut b)?;
        Ok(Gated {
            applied: u64::from_le_bytes(b),
            ..Gated::default()
        })
    }
}

fn open(dir: &std::path::Path) -> Result<SealedStateMachine<Cfg, Gated>, snapseal_openraft::Error> {
    SealedStateMachine::open(dir, example::options(1, 1))
}

/// A single-node cluster on `dir` with a few entries applied.
async fn single_node(dir: &std::path::Path, router: &Router<Cfg>) -> (Raft<Cfg>, SealedParts) {
    let sm = open(dir).unwrap();
    let parts = SealedParts {
        state: sm.state_handle(),
        released: sm.released(),
    };
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        snapshot_policy: SnapshotPolicy::Never,
        ..Default::default()
    };
    let raft = Raft::new(
        1,
        Arc::new(config.validate().unwrap()),
        router.clone(),
        MemLog::default(),
        sm,
    )
    .await
    .unwrap();
    router.serve(1, raft.clone());
    raft.initialize(BTreeMap::from([(1, BasicNode::default())]))
        .await
        .unwrap();
    raft.wait(Some(Duration::from_secs(30)))
        .metrics(|m| m.current_leader == Some(1), "leader")
        .await
        .unwrap();
    for i in 0..5 {
        let put = Put {
            key: format!("k{i}"),
            value: "v".into(),
        };
        raft.client_write(put).await.unwrap();
    }
    (raft, parts)
}

struct SealedParts {
    state: snapseal_openraft::StateHandle<Gated>,
    released: snapseal_openraft::Released,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_shutdown_the_directory_opens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::default();
    let (raft, parts) = single_node(dir.path(), &router).await;
    // Nothing holds the gate: a build would pass it.
    drop(parts.state.read().open.lock().take());
    router.remove(1);
    snapseal_openraft::shutdown(&raft, parts.released)
        .await
        .unwrap();
    open(dir.path()).expect("the directory is free when shutdown returns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_running_at_shutdown_holds_the_directory_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::default();
    let (raft, parts) = single_node(dir.path(), &router).await;
    let (gate, open_gate) = {
        let state = parts.state.read();
        let open_gate = state.open.lock().take().unwrap();
        (Arc::clone(&state.gate), open_gate)
    };
    raft.trigger().snapshot().await.unwrap();
    // The build's serialise is waiting at the gate, on a blocking thread.
    gate.entered.acquire().await.unwrap().forget();

    router.remove(1);
    raft.shutdown().await.unwrap();
    // openraft's shutdown returned, but its build task still holds the machine's store: the
    // directory is locked, and `Released` says so.
    assert!(!parts.released.is_released());
    assert!(matches!(
        open(dir.path()),
        Err(snapseal_openraft::Error::Store(StoreError::Locked { .. }))
    ));

    // The build ends (it commits its snapshot); then the directory is free, and the
    // snapshot is there.
    open_gate.send(()).unwrap();
    parts.released.wait().await;
    let sm = open(dir.path()).expect("the directory is free once released");
    assert_eq!(sm.state_handle().read().applied, 5);
}
