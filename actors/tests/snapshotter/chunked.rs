//! A Snapshotter over a chunked store (`StoreOptions::chunked`): each snapshot writes only the
//! chunks its state changed — a node handing out frozen chunks included, whose chunks are
//! cut at their own boundaries (`PendingBody::from_frozen_in`) — and compression is refused
//! when the Snapshotter is built, not at the first serialisation.

use std::io::{self, Read};
use std::sync::Arc;

use crate::common::Drive;
use snapseal_actors::{
    CaptureError, FrozenChunk, SnapshotEvent, Snapshotter, SnapshotterConfig, StateSource,
    StateView,
};
use snapseal_engine::TaskSystem;
use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::{SnapshotStore, StoreOptions};
use snapseal_sim::ledger::Ledger;
use snapseal_sim::node::ChannelSink;

const STATE: usize = 2 << 20;

/// A 2 MiB state of which 1000 bytes, at a place depending on the index, change per point.
struct Blob {
    base: Vec<u8>,
}

impl Blob {
    fn at(&self, idx: u64) -> Vec<u8> {
        let mut out = self.base.clone();
        let at = (idx as usize * 7919) % (STATE - 1000);
        for b in &mut out[at..at + 1000] {
            *b = b.wrapping_add(idx as u8);
        }
        out
    }
}

struct BlobView(Arc<Vec<u8>>);

impl StateSource for Blob {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        Ok(Box::new(BlobView(Arc::new(self.at(idx)))))
    }
}

impl StateView for BlobView {
    fn write_to(&mut self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(&self.0)
    }

    fn frozen_chunks(&mut self) -> Option<Vec<FrozenChunk>> {
        Some(vec![self.0.clone() as FrozenChunk])
    }
}

fn blob() -> Arc<Blob> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let base = (0..STATE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    Arc::new(Blob { base })
}

fn chunked_store(dir: &std::path::Path, ledger: &Ledger) -> Arc<SnapshotStore> {
    let verifier = Arc::new(Ed25519Verifier::new(vec![ledger.verifying_key()]));
    let mut opts = StoreOptions::new(verifier);
    opts.chunked = true;
    Arc::new(SnapshotStore::open(Arc::new(RealFs::new()), dir, opts).unwrap())
}

/// A Snapshotter over a chunked store in a temporary directory, on the blob state, driven
/// by hand over the ledger of `seed`.
fn driven(seed: u64) -> (tempfile::TempDir, Arc<SnapshotStore>, Arc<Blob>, Drive) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::from_seed(seed);
    let store = chunked_store(dir.path(), &ledger);
    let state = blob();
    let tasks = TaskSystem::manual_fifo();
    let (sink, evidence) = ChannelSink::new();
    let snap = Snapshotter::new(
        cfg(),
        tasks.clone(),
        Arc::clone(&store),
        state.clone(),
        Arc::new(sink),
    )
    .unwrap();
    let d = Drive {
        ledger,
        snap,
        tasks,
        evidence,
        last_sig: 0,
    };
    (dir, store, state, d)
}

fn cfg() -> SnapshotterConfig {
    SnapshotterConfig {
        tx_interval: 100,
        ..SnapshotterConfig::default()
    }
}

#[test]
fn a_snapshotter_over_a_chunked_store_writes_only_the_changed_chunks_per_snapshot() {
    let (_dir, store, state, mut d) = driven(24);
    d.snapshot_at(100);
    let first = store.stats().chunk_bytes_written;
    assert_eq!(
        first, STATE as u64,
        "the first snapshot stores every byte once"
    );
    d.snapshot_at(200);
    let second = store.stats().chunk_bytes_written - first;
    assert!(
        second > 0 && second <= 1 << 20,
        "a 1000-byte change wrote {second} bytes"
    );
    assert_eq!(store.stats().persisted, 2);

    let latest = store.latest().unwrap().expect("the second snapshot");
    assert_eq!(latest.name().idx, 200);
    let mut read = Vec::new();
    latest
        .body_reader()
        .unwrap()
        .read_to_end(&mut read)
        .unwrap();
    assert_eq!(read, state.at(200));
}

#[test]
fn a_chunked_store_with_compression_is_refused_when_the_snapshotter_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::from_seed(25);
    let store = chunked_store(dir.path(), &ledger);
    let (sink, _evidence) = ChannelSink::new();
    let cfg = SnapshotterConfig {
        compression: Some(3),
        ..cfg()
    };
    let refused = Snapshotter::new(
        cfg,
        TaskSystem::manual_fifo(),
        store,
        blob(),
        Arc::new(sink),
    );
    let Err(err) = refused else {
        panic!("compression with a chunked store is refused");
    };
    assert_eq!(err.field, "compression");
}

#[test]
fn each_committed_event_counts_only_the_chunks_its_own_body_wrote_when_generations_overlap() {
    let (_dir, store, _state, mut d) = driven(25);
    // Both generations serialise (and write their chunks) before either persists.
    for point in [100, 200] {
        d.writes_until(point);
        assert!(d.sign(), "{point} must be a snapshot point");
        d.commit(point);
        d.settle();
        assert_eq!(d.evidence().len(), 1);
    }
    d.sign();
    d.commit(d.last_sig);
    d.settle();
    let mut committed = Vec::new();
    while let Some(e) = d.snap.events().try_recv() {
        if let SnapshotEvent::Committed(c) = e {
            committed.push((c.idx, c.new_chunk_bytes));
        }
    }
    assert_eq!(committed.len(), 2, "{committed:?}");
    // The first wrote the whole state; the second only the chunks its change touched, though
    // both were cut before the first commit (a counter read at each commit would give the
    // first both and the second nothing).
    assert_eq!(committed[0], (100, STATE as u64));
    assert_eq!(committed[1].0, 200);
    assert!(
        committed[1].1 > 0 && committed[1].1 <= 1 << 20,
        "{committed:?}"
    );
    assert_eq!(
        committed[0].1 + committed[1].1,
        store.stats().chunk_bytes_written
    );
}
