//! The async edge: closing, dropping and waiting never hold a runtime worker; the event
//! stream is bounded and says what it did not keep.

use std::io::{self, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use snapseal_actors::{
    CaptureError, CloseMode, EvidenceSink, Hash, SnapshotEvent, Snapshotter, SnapshotterConfig,
    StateSource, StateView,
};
use snapseal_engine::{EngineConfig, TaskSystem};
use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::{SigningKey, SnapshotStore, StoreError, StoreOptions};
use snapseal_tokio::{open_store, AsyncSnapshotter};

/// Only a guard against a hang (a blocking close would never return): no test's outcome
/// depends on it.
const HANG: Duration = Duration::from_secs(120);

fn key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

fn options() -> StoreOptions {
    let verifier =
        Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key().verifying_key()]);
    StoreOptions::new(Arc::new(verifier))
}

/// The state: fixed bytes; points listed in `refuse` are refused at capture. With a gate, each
/// view announces its start on the gate's first channel and writes only once the second one
/// says go.
#[derive(Default)]
struct State {
    refuse: Vec<u64>,
    gate: Option<Gate>,
}

struct Gate {
    started: Mutex<mpsc::Sender<u64>>,
    go: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl StateSource for State {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        if self.refuse.contains(&idx) {
            return Err(CaptureError::new(idx, "no state kept"));
        }
        let gate = self.gate.as_ref().map(|g| {
            let _ = g.started.lock().unwrap().send(idx);
            Arc::clone(&g.go)
        });
        Ok(Box::new(View { gate }))
    }
}

struct View {
    gate: Option<Arc<Mutex<mpsc::Receiver<()>>>>,
}

impl StateView for View {
    fn write_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(go) = &self.gate {
            let _ = go.lock().unwrap().recv();
        }
        out.write_all(b"the state")
    }
}

/// Evidence requests, for the test to answer.
struct Requests(Mutex<mpsc::Sender<(u64, Hash)>>);

impl EvidenceSink for Requests {
    fn append_evidence(&self, snapshot_idx: u64, claims_digest: Hash) {
        let _ = self.0.lock().unwrap().send((snapshot_idx, claims_digest));
    }
}

struct Node {
    snap: AsyncSnapshotter,
    store: Arc<SnapshotStore>,
    requests: mpsc::Receiver<(u64, Hash)>,
}

async fn node(
    dir: &std::path::Path,
    tasks: TaskSystem,
    config: SnapshotterConfig,
    state: State,
) -> Node {
    let store = open_store(Arc::new(RealFs), dir, options()).await.unwrap();
    let (tx, requests) = mpsc::channel();
    let sink = Arc::new(Requests(Mutex::new(tx)));
    let store2 = Arc::clone(&store);
    let snap = AsyncSnapshotter::open_with(move || {
        Snapshotter::new(config, tasks, store2, Arc::new(state), sink)
            .map(|s| s.with_statement_key(key()))
    })
    .await
    .unwrap();
    Node {
        snap,
        store,
        requests,
    }
}

fn every(tx_interval: u64) -> SnapshotterConfig {
    SnapshotterConfig {
        tx_interval,
        ..SnapshotterConfig::default()
    }
}

/// A state whose views announce their start on the returned receiver and write only once the
/// returned sender says go.
fn gated() -> (State, mpsc::Receiver<u64>, mpsc::Sender<()>) {
    let (started_tx, started) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let state = State {
        gate: Some(Gate {
            started: Mutex::new(started_tx),
            go: Arc::new(Mutex::new(go_rx)),
        }),
        ..State::default()
    };
    (state, started, go)
}

/// Whether `future` is still pending after one poll.
async fn is_pending<F: std::future::Future + Unpin>(future: &mut F) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx).is_pending()))
        .await
}

#[tokio::test(flavor = "current_thread")]
async fn close_leaves_the_runtime_free_while_a_running_serialisation_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (state, started, go) = gated();
    let tasks = TaskSystem::threaded(EngineConfig::default()).unwrap();
    let mut n = node(dir.path(), tasks, every(5), state).await;
    assert!(n.snap.record_committable(5));
    n.snap.commit(5);
    assert_eq!(started.recv().unwrap(), 5);
    // The serialisation is held until `go`: a close that blocked this (only) runtime thread
    // would never let the line that sends it run.
    let mut closing = tokio::spawn(n.snap.close(CloseMode::Cancel));
    tokio::task::yield_now().await;
    assert!(
        is_pending(&mut closing).await,
        "close waits for the running serialisation"
    );
    go.send(()).unwrap();
    tokio::time::timeout(HANG, closing)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Resolved means closed: the Snapshotter's store handle is gone, so dropping ours frees
    // the directory's lock, and the store opens again.
    drop(n.store);
    SnapshotStore::open(Arc::new(RealFs), dir.path(), options()).unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_it_on_the_runtime_closes_it_on_a_blocking_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (state, started, go) = gated();
    let tasks = TaskSystem::threaded(EngineConfig::default()).unwrap();
    let mut n = node(dir.path(), tasks, every(5), state).await;
    let mut events = n.snap.events();
    assert!(n.snap.record_committable(5));
    n.snap.commit(5);
    assert_eq!(started.recv().unwrap(), 5);
    // A Snapshotter's drop waits for the held serialisation; this one returns at once, or the
    // next line, which releases it, would never run.
    drop(n.snap);
    go.send(()).unwrap();
    let ended = tokio::time::timeout(HANG, async {
        let mut seen = Vec::new();
        while let Some(event) = events.next().await {
            seen.push(event);
        }
        seen
    })
    .await
    .unwrap();
    assert!(
        matches!(&ended[..], [SnapshotEvent::Dropped { idx: 5, .. }]),
        "dropping is a Cancel close: {ended:?}"
    );
    assert!(n.store.list().unwrap().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn wait_idle_resolves_once_every_started_generation_ended() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = TaskSystem::manual(3);
    let state = State {
        refuse: vec![5],
        ..State::default()
    };
    let mut n = node(dir.path(), tasks.clone(), every(5), state).await;
    // Generation 0: its capture is refused (it ends at once, Failed). Generation 1 at 10.
    for idx in 1..=10 {
        n.snap.record_committable(idx);
        n.snap.commit(idx);
    }
    assert_eq!(n.snap.counters().failed, 1);
    let mut idle = Box::pin(n.snap.wait_idle());
    tasks.run_until_idle();
    assert!(
        is_pending(&mut idle).await,
        "the generation at 10 waits for its evidence"
    );
    let (idx, digest) = n.requests.try_recv().unwrap();
    assert_eq!(idx, 10);
    n.snap.record_evidence_in_term(11, idx, digest, 1).unwrap();
    n.snap.commit(11);
    assert!(is_pending(&mut idle).await, "queued, not yet written");
    tasks.run_until_idle();
    tokio::time::timeout(HANG, idle).await.unwrap();
    assert_eq!(n.snap.latest().await.unwrap().unwrap().name().idx, 10);
    // Nothing started since: resolves at once.
    n.snap.wait_idle().await;
    n.snap.close(CloseMode::Drain).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn the_event_stream_keeps_1024_events_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = SnapshotterConfig {
        tx_interval: 1,
        max_pending: 1,
        ..SnapshotterConfig::default()
    };
    let mut n = node(dir.path(), TaskSystem::manual(4), config, State::default()).await;
    let mut events = n.snap.events();
    // 1 starts the one generation allowed; 2 ..= 1101 are skipped: 1100 events, unread.
    for idx in 1..=1101 {
        n.snap.record_committable(idx);
        n.snap.commit(idx);
    }
    for idx in 2..=1025 {
        let event = events.next().await;
        assert!(
            matches!(event, Some(SnapshotEvent::Skipped { idx: i }) if i == idx),
            "{idx}: {event:?}"
        );
    }
    assert!(matches!(
        events.next().await,
        Some(SnapshotEvent::Overflowed {
            lost: 76,
            committed: 0,
            failed: 0
        })
    ));
    n.snap.close(CloseMode::Cancel).await.unwrap();
    assert!(matches!(
        events.next().await,
        Some(SnapshotEvent::Dropped { idx: 1, .. })
    ));
    assert!(events.next().await.is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn a_second_open_of_a_store_in_use_is_refused_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(Arc::new(RealFs), dir.path(), options())
        .await
        .unwrap();
    let again = open_store(Arc::new(RealFs), dir.path(), options()).await;
    assert!(matches!(
        again,
        Err(snapseal_tokio::Error::Store(StoreError::Locked { .. }))
    ));
    drop(store);
    open_store(Arc::new(RealFs), dir.path(), options())
        .await
        .unwrap();
}
