//! Building a snapshot through the adapter (serialise, hash, sign, crash-safe commit with
//! fsyncs, and the verified read-back openraft is handed) against openraft's in-memory
//! example store (the same serialisation into a `Vec`, kept in memory: no durability), for the
//! same key-value state.
//!
//! `cargo bench -p snapseal-openraft --bench openraft_snapshot`

#[path = "../tests/support/mod.rs"]
mod support;

use std::cell::{Cell, RefCell};
use std::io::Cursor;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use snapseal_openraft::{SealedState, SealedStateMachine};
use support::{Cfg, Kv, Put};

/// 100 000 keys of 100-byte values: about 12 MB serialised.
const KEYS: u64 = 100_000;

fn entry(i: u64) -> Entry<Cfg> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
        payload: EntryPayload::Normal(Put {
            key: format!("key{i:08}"),
            value: format!("{i:0100}"),
        }),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn adapter_build_and_persist(bencher: divan::Bencher) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let sm: SealedStateMachine<Cfg, Kv> =
        SealedStateMachine::open(dir.path(), support::options(1, 1)).unwrap();
    let sm = RefCell::new(sm);
    rt.block_on(sm.borrow_mut().apply((0..KEYS).map(entry)))
        .unwrap();
    let next = Cell::new(KEYS);
    bencher
        .with_inputs(|| {
            // One more entry each time, so every build is a new log position.
            let i = next.get();
            next.set(i + 1);
            let mut sm = sm.borrow_mut();
            rt.block_on(async {
                sm.apply([entry(i)]).await.unwrap();
                sm.get_snapshot_builder().await
            })
        })
        .bench_local_values(|mut builder| rt.block_on(builder.build_snapshot()).unwrap());
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn in_memory_example_store(bencher: divan::Bencher) {
    let mut kv = Kv::default();
    for i in 0..KEYS {
        if let EntryPayload::Normal(put) = &entry(i).payload {
            kv.0.insert(put.key.clone(), put.value.clone());
        }
    }
    bencher.bench_local(|| {
        // What openraft's memstore example does: the state serialised into a buffer that
        // stays in memory as the snapshot. (The copy both sides take first is not timed.)
        let mut buf = Vec::new();
        kv.serialise(&mut buf).unwrap();
        Cursor::new(buf)
    });
}

fn main() {
    divan::main();
}
