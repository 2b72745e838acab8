//! A key-value node on tokio: snapshots through the async edge (`snapseal::tokio`), GETs
//! over TCP, and a restart that resumes from the newest snapshot that verifies — also after
//! a `kill -9` (tests/pipeline/tokio_kv.rs kills it mid-run and restarts it).
//!
//! The node is one replica with an in-memory log: each entry commits as it is appended (a
//! cluster would commit at a quorum; the calls are the same). Its receipts are signed
//! statements by the node's own key (statement mode, docs/SPEC.md §3.3): a log without a
//! Merkle tree. What it shows:
//! - start-up off the runtime's workers: `open_store`, `latest()` (the newest snapshot that
//!   verifies, restored into the state), `AsyncSnapshotter::open_with` (which resumes the
//!   snapshot schedule from there);
//! - the consensus task calls `record_committable`, `commit` and `record_evidence_in_term`
//!   directly: they are synchronous and never wait for I/O;
//! - evidence requests reach the consensus task through a tokio channel (the sink never
//!   blocks), and committed snapshots through the event `Stream`;
//! - the state hands out copy-on-write versions (`StateSource`), kept per snapshot point until
//!   snapseal releases it;
//! - `close(CloseMode::Drain).await` on `QUIT`.
//!
//! Run: `cargo run --example tokio_kv --features tokio -- <dir>`. It prints `restored <idx>
//! <keys>`, `listening <addr>` and `committed <idx>` per snapshot, and writes until stopped.
//! On `<addr>`, one command per line: `GET <key>` (the value, or `-`), `APPLIED` (the
//! applied index), `QUIT` (drain, close, exit).
//!
//! The log is not durable here, so the entries after the newest snapshot die with the
//! process; a real node replays its durable log from the snapshot's index on.

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use snapseal::actors::CaptureError;
use snapseal::persist::receipt::Ed25519Verifier;
use snapseal::persist::{Hash, SigningKey};
use snapseal::tokio::{open_store, AsyncSnapshotter};
use snapseal::{
    CloseMode, EngineConfig, EvidenceSink, RealFs, SnapshotEvent, Snapshotter, SnapshotterConfig,
    StateSource, StateView, StoreOptions, TaskSystem,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

type BoxError = Box<dyn Error + Send + Sync>;

/// The node's key. A real node loads its own from its key store; its peers and its restarts
/// trust statements by it (`with_statement_keys`).
const NODE_KEY: [u8; 32] = [0x6b; 32];
/// One node, one term: a cluster signs each evidence entry's own term.
const TERM: u64 = 1;
/// Keys the writes cycle through.
const KEYS: u64 = 4096;
/// Entries between snapshots.
const SNAPSHOT_EVERY: u64 = 2000;

type Map = BTreeMap<String, String>;

/// The store's options: statements by the node's key are trusted.
pub(crate) fn store_options() -> StoreOptions {
    let key = SigningKey::from_bytes(&NODE_KEY).verifying_key();
    StoreOptions::new(Arc::new(
        Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key]),
    ))
}

/// The write at log index `idx`: key `k<idx mod KEYS>` takes the value `<idx>`.
fn write_at(idx: u64) -> (String, String) {
    (format!("k{}", idx % KEYS), idx.to_string())
}

/// A snapshot body: `key=value` lines.
fn encode(map: &Map, out: &mut dyn Write) -> io::Result<()> {
    let mut out = io::BufWriter::new(out);
    for (k, v) in map {
        writeln!(out, "{k}={v}")?;
    }
    out.flush()
}

/// The state in a snapshot body (written by [`encode`]; it verified before it got here).
pub(crate) fn decode(body: impl io::Read) -> io::Result<Map> {
    let mut map = Map::new();
    for line in io::BufReader::new(body).lines() {
        let line = line?;
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a line without '='"))?;
        map.insert(k.to_string(), v.to_string());
    }
    Ok(map)
}

/// The live map (GETs read it) and the versions kept for snapshot points. Copy-on-write: a
/// kept version is an `Arc` clone; the next write copies the map only while a version holds it.
#[derive(Default)]
struct Kv {
    live: RwLock<Arc<Map>>,
    kept: Mutex<HashMap<u64, Arc<Map>>>,
}

impl StateSource for Kv {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        match self.kept.lock().get(&idx) {
            Some(map) => Ok(Box::new(View(Arc::clone(map)))),
            None => Err(CaptureError::new(idx, "no version kept")),
        }
    }

    fn release(&self, idx: u64) {
        self.kept.lock().remove(&idx);
    }
}

struct View(Arc<Map>);

impl StateView for View {
    fn write_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        encode(&self.0, out)
    }
}

/// Evidence requests into the consensus task: an unbounded send never blocks snapseal's worker.
struct ToConsensus(mpsc::UnboundedSender<(u64, Hash)>);

impl EvidenceSink for ToConsensus {
    fn append_evidence(&self, snapshot_idx: u64, claims_digest: Hash) {
        let _ = self.0.send((snapshot_idx, claims_digest));
    }
}

/// Runs the node over the snapshot directory `dir` until a `QUIT` command.
pub(crate) async fn run(dir: PathBuf) -> Result<(), BoxError> {
    // Start-up: the store (its lock; what a crash left is cleaned up) and the newest snapshot
    // that verifies, both on blocking threads.
    let store = open_store(Arc::new(RealFs), dir, store_options()).await?;
    let kv = Arc::new(Kv::default());
    let mut applied = 0;
    if let Some(file) = snapseal::tokio::latest(&store).await? {
        // Reading the body is I/O too: a blocking thread.
        let (idx, map) = tokio::task::spawn_blocking(move || -> io::Result<(u64, Map)> {
            Ok((file.name().idx, decode(file.body_reader()?)?))
        })
        .await??;
        applied = idx;
        println!("restored {applied} {}", map.len());
        *kv.live.write() = Arc::new(map);
    } else {
        println!("restored 0 0");
    }

    let (requests, mut evidence_wanted) = mpsc::unbounded_channel();
    let config = SnapshotterConfig {
        tx_interval: SNAPSHOT_EVERY,
        ..SnapshotterConfig::default()
    };
    let (store2, state) = (Arc::clone(&store), Arc::clone(&kv) as Arc<dyn StateSource>);
    let sink = Arc::new(ToConsensus(requests));
    let tasks = TaskSystem::threaded(EngineConfig::default())?;
    let mut snap = AsyncSnapshotter::open_with(move || {
        Snapshotter::new(config, tasks, store2, state, sink)
            .map(|s| s.with_statement_key(SigningKey::from_bytes(&NODE_KEY)))
    })
    .await?;
    drop(store); // the Snapshotter holds the store; closing it frees the directory

    let mut events = snap.events();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                SnapshotEvent::Committed(c) => println!("committed {}", c.idx),
                SnapshotEvent::Failed { idx, error, .. } => println!("failed {idx}: {error}"),
                _ => {}
            }
        }
    });

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    let (quit_tx, mut quit) = mpsc::channel(1);
    let applied_now = Arc::new(std::sync::atomic::AtomicU64::new(applied));
    let (reads, applied_seen) = (Arc::clone(&kv), Arc::clone(&applied_now));
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (kv, applied, quit) = (
                Arc::clone(&reads),
                Arc::clone(&applied_seen),
                quit_tx.clone(),
            );
            tokio::spawn(serve(conn, kv, applied, quit));
        }
    });

    // The consensus task: appends entries (client writes, and the evidence snapseal asks
    // for), and each commits at once.
    loop {
        let evidence = tokio::select! {
            biased;
            _ = quit.recv() => break,
            request = evidence_wanted.recv() => request,
            // No request waiting: a client write.
            _ = tokio::task::yield_now() => None,
        };
        applied += 1;
        match evidence {
            Some((snapshot_idx, digest)) => {
                // A stale request (its generation was dropped) is refused; nothing to do.
                if let Err(e) = snap.record_evidence_in_term(applied, snapshot_idx, digest, TERM) {
                    println!("evidence {applied} not recorded: {e}");
                }
            }
            None => {
                let (key, value) = write_at(applied);
                Arc::make_mut(&mut *kv.live.write()).insert(key, value);
            }
        }
        if snap.record_committable(applied) {
            let version = Arc::clone(&kv.live.read());
            kv.kept.lock().insert(applied, version);
        }
        snap.commit(applied);
        applied_now.store(applied, std::sync::atomic::Ordering::Relaxed);
    }
    // Snapshots whose evidence is committed are written; the others are dropped.
    snap.close(CloseMode::Drain).await?;
    println!("closed {applied}");
    Ok(())
}

/// One client connection: `GET <key>`, `APPLIED`, `QUIT`.
async fn serve(
    conn: TcpStream,
    kv: Arc<Kv>,
    applied: Arc<std::sync::atomic::AtomicU64>,
    quit: mpsc::Sender<()>,
) -> io::Result<()> {
    let (read, mut write) = conn.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let answer = match line.split_once(' ') {
            Some(("GET", key)) => kv.live.read().get(key).cloned().unwrap_or("-".into()),
            None if line == "APPLIED" => applied
                .load(std::sync::atomic::Ordering::Relaxed)
                .to_string(),
            None if line == "QUIT" => {
                let _ = quit.send(()).await;
                "bye".into()
            }
            _ => "?".into(),
        };
        write.write_all(format!("{answer}\n").as_bytes()).await?;
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let Some(dir) = std::env::args_os().nth(1) else {
        return Err("usage: tokio_kv <snapshot-dir>".into());
    };
    tokio::runtime::Runtime::new()?.block_on(run(PathBuf::from(dir)))
}
