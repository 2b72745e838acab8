//! Serialisation cost against hashing alone, same bytes, same run:
//!
//! - `body_in_memory`: 1 MiB writes through `BodyBuilder` (copy into the body, BLAKE3 on all
//!   cores in 4 MiB batches);
//! - `body_spilled`: the same, spilled at once to a pending file (budget 0);
//! - `blake3_rayon`: `Hasher::update_rayon` over the bytes where they are (no copy, no store):
//!   the in-process equivalent of `b3sum`, the floor the serialiser cannot beat.
//!
//! `cargo bench --bench serialise` (`SNAPSEAL_BENCH_DIR` picks the filesystem of the spill).
//! The `b3sum` comparison itself runs in `cargo run --release --example bench`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use divan::Bencher;
use snapseal::persist::fs::RealFs;
use snapseal::persist::receipt::Ed25519Verifier;
use snapseal::persist::{BodyBuilder, MemoryBudget, SpillTarget};
use snapseal::persist::{SnapshotStore, StoreOptions};

fn main() {
    divan::main();
}

const SIZES: [usize; 2] = [64 << 20, 256 << 20];

/// `snapseal bench`'s deterministic bytes: cheap to make, nothing in them for BLAKE3 to skip.
fn state(len: usize) -> Vec<u8> {
    snapseal_cli::bench::fixture::bytes(len, 0x5EED)
}

#[divan::bench(args = SIZES, sample_count = 7, sample_size = 1)]
fn body_in_memory(bencher: Bencher, size: usize) {
    let bytes = state(size);
    bencher.bench_local(|| {
        let mut b = BodyBuilder::new(None).unwrap();
        for chunk in bytes.chunks(1 << 20) {
            b.write_all(chunk).unwrap();
        }
        b.finish().unwrap()
    });
}

#[divan::bench(args = SIZES, sample_count = 7, sample_size = 1)]
fn body_spilled(bencher: Bencher, size: usize) {
    let bytes = state(size);
    let base = std::env::var_os("SNAPSEAL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(base).unwrap();
    let verifier = Arc::new(Ed25519Verifier::new(Vec::new()));
    let store = Arc::new(
        SnapshotStore::open(Arc::new(RealFs), tmp.path(), StoreOptions::new(verifier)).unwrap(),
    );
    let mut generation = 0;
    // Each body is dropped (its pending file removed) outside the timed section.
    bencher
        .with_inputs(|| {
            generation += 1;
            generation
        })
        .bench_local_values(|generation| {
            let target = SpillTarget {
                store: Arc::clone(&store),
                idx: 1,
                generation,
                budget: MemoryBudget::new(0),
            };
            let mut b = BodyBuilder::with_spill(None, target).unwrap();
            for chunk in bytes.chunks(1 << 20) {
                b.write_all(chunk).unwrap();
            }
            b.finish().unwrap()
        });
}

#[divan::bench(args = SIZES, sample_count = 7, sample_size = 1)]
fn blake3_rayon(bencher: Bencher, size: usize) {
    let bytes = state(size);
    bencher.bench_local(|| {
        let mut h = blake3::Hasher::new();
        h.update_rayon(divan::black_box(&bytes));
        *h.finalize().as_bytes()
    });
}
