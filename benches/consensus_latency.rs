//! Consensus-thread cost of the Snapshotter's calls while large generations are in flight
//! (issue 4, item 7), against the same calls with nothing in flight, in one run.
//!
//! `cargo bench --bench consensus_latency` prints a table. Each "tx" is the work a node's
//! consensus thread does per signature: `record_committable`, `record_signature`,
//! `record_tree` and `commit`. Phase A runs it with no generation; phase B with
//! `GENERATIONS` generations of `BODY_MIB` MiB each serialising and persisting (real temp dir,
//! threaded engine with its default worker count) for as long as they are in flight.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use snapseal::actors::CaptureError;
use snapseal::engine::{EngineConfig, TaskSystem};
use snapseal::ledger::{Ledger, TxKind};
use snapseal::node::ChannelSink;
use snapseal::persist::receipt::Ed25519Verifier;
use snapseal::persist::{RealFs, SnapshotStore, StoreOptions};
use snapseal::{Snapshotter, SnapshotterConfig, StateSource, StateView};

const GENERATIONS: u64 = 5;
const BODY_MIB: usize = 64;

/// A state of `BODY_MIB` MiB of pseudo-random bytes (so nothing is cheap to hash or write).
struct BigState;
struct BigView(u64);

impl StateSource for BigState {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        Ok(Box::new(BigView(idx)))
    }
}

impl StateView for BigView {
    fn write_to(&mut self, out: &mut dyn io::Write) -> io::Result<()> {
        let mut chunk = vec![0u8; 1 << 20];
        let mut x = self.0 | 1;
        for _ in 0..BODY_MIB {
            for w in chunk.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w.copy_from_slice(&x.to_le_bytes());
            }
            out.write_all(&chunk)?;
        }
        Ok(())
    }
}

struct Rig {
    ledger: Ledger,
    snap: Snapshotter,
    evidence: crossbeam_channel::Receiver<(u64, [u8; 32])>,
    tasks: TaskSystem,
    last_sig: u64,
    _tmp: tempfile::TempDir,
}

impl Rig {
    fn new(tx_interval: u64) -> Rig {
        let tmp = tempfile::tempdir().expect("temp dir");
        let ledger = Ledger::from_seed(3);
        let verifier = Arc::new(Ed25519Verifier::new(vec![ledger.verifying_key()]));
        let mut opts = StoreOptions::new(verifier);
        opts.keep_last = GENERATIONS as usize + 1;
        let store = SnapshotStore::open(Arc::new(RealFs::new()), tmp.path(), opts).expect("store");
        let tasks = TaskSystem::threaded(EngineConfig::default()).expect("engine");
        let (sink, evidence) = ChannelSink::new();
        let cfg = SnapshotterConfig {
            tx_interval,
            max_pending: GENERATIONS as usize,
            ..Default::default()
        };
        let snap = Snapshotter::new(
            cfg,
            tasks.clone(),
            Arc::new(store),
            Arc::new(BigState),
            Arc::new(sink),
        )
        .expect("config");
        Rig {
            ledger,
            snap,
            evidence,
            tasks,
            last_sig: 0,
            _tmp: tmp,
        }
    }

    /// One signature's worth of consensus-thread calls; returns their total wall time.
    fn tx(&mut self) -> Duration {
        for (snapshot_idx, digest) in self.evidence.try_iter() {
            let e = self.ledger.append(TxKind::Evidence {
                snapshot_idx,
                digest,
            });
            self.snap.record_evidence(e, snapshot_idx, digest);
        }
        self.ledger.append(TxKind::Write {
            key: 1,
            value: Arc::from(vec![0u8; 8]),
        });
        let signed = self.ledger.append_signature();
        let sig_idx = signed.sig_idx;
        let proofs = self.ledger.proofs();
        let prev = std::mem::replace(&mut self.last_sig, sig_idx);
        let start = Instant::now();
        self.snap.record_committable(sig_idx);
        self.snap.record_signature(signed);
        self.snap.record_tree(sig_idx, proofs);
        self.snap.commit(prev);
        start.elapsed()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // Phase A: no generation in flight (interval never reached).
    let mut idle = Rig::new(u64::MAX);
    let mut a: Vec<Duration> = (0..20_000).map(|_| idle.tx()).collect();

    // Phase B: every signature is a snapshot point until GENERATIONS are pending; keep calling
    // (with tiny sleeps so the workers progress) until they are all persisted.
    let mut busy = Rig::new(u64::MAX);
    let mut b = Vec::new();
    let start = Instant::now();
    let mut forced = 0;
    while busy.snap.counters().scheduled < GENERATIONS || !busy.snap.pending().is_empty() {
        if forced < GENERATIONS {
            busy.snap.trigger_snapshot(); // the next signature becomes a snapshot point
            forced += 1;
        }
        b.push(busy.tx());
        std::thread::sleep(Duration::from_micros(50));
        if start.elapsed() > Duration::from_secs(300) {
            eprintln!("generations did not finish in 5 minutes; reporting what we have");
            break;
        }
    }
    let in_flight_for = start.elapsed();
    let c = busy.snap.counters();
    let workers = busy.tasks.workers();
    busy.tasks.shutdown(snapseal::engine::ShutdownMode::Drain);
    a.sort();
    b.sort();
    println!("consensus-thread cost per signature (record_committable + record_signature + record_tree + commit)");
    println!(
        "{:<44} {:>8} {:>10} {:>10} {:>10}",
        "case", "calls", "p50", "p99", "max"
    );
    for (name, v) in [
        ("no generation in flight", &a),
        ("5 x 64 MiB generations in flight", &b),
    ] {
        println!(
            "{:<44} {:>8} {:>10.1?} {:>10.1?} {:>10.1?}",
            name,
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.99),
            v[v.len() - 1]
        );
    }
    println!(
        "ratio p50 {:.2}x, p99 {:.2}x; generations scheduled {}, persisted {}, skipped {}; in flight for {:.1?}; workers {}",
        percentile(&b, 0.5).as_secs_f64() / percentile(&a, 0.5).as_secs_f64(),
        percentile(&b, 0.99).as_secs_f64() / percentile(&a, 0.99).as_secs_f64(),
        c.scheduled,
        c.persisted,
        c.skipped,
        in_flight_for,
        workers,
    );
}
