//! The write path against its floor and a user's obvious alternative, same bytes, same
//! directory, same run:
//!
//! - `ours`: `SnapshotStore::persist` (body in memory);
//! - `ours_spilled`: the body streamed into a pending file in 1 MiB writes, then
//!   `commit_spill` (receipt, header pwrite, fsync, close, rename, dir fsync);
//! - `floor`: bare openat(O_EXCL) + write + fsync + close + renameat2(NOREPLACE) + dir fsync;
//! - `atomic_write_file`: the `atomic-write-file` crate (temp file, write, fsync, rename over,
//!   dir fsync) — the crate a user would otherwise reach for.
//!
//! `cargo bench --bench persist_peers` (`SNAPSEAL_BENCH_DIR` picks the filesystem). The
//! previous iteration's file is removed outside the timed section. The bytes, receipt and
//! floor are `snapseal bench`'s own (`snapseal_cli::bench::{fixture, floor}`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use divan::Bencher;
use snapseal::persist::fs::RealFs;
use snapseal::persist::internals::PersistRequest;
use snapseal::persist::internals::SpillCommit;
use snapseal::persist::receipt::Ed25519Verifier;
use snapseal::persist::Flags;
use snapseal::persist::{SnapshotStore, StoreOptions};
use snapseal_cli::bench::fixture::{committed_name, key, Fixture, EVIDENCE};
use snapseal_cli::bench::floor::Floor;

fn main() {
    divan::main();
}

const SIZES: [usize; 4] = [4 << 10, 1 << 20, 64 << 20, 256 << 20];

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("SNAPSEAL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::tempdir_in(base).unwrap()
}

static NEXT_IDX: AtomicU64 = AtomicU64::new(1);

/// Removes the previous iteration's file (untimed) and hands out a fresh index.
fn next_idx(dir: &Path, last: &mut Option<PathBuf>) -> u64 {
    if let Some(p) = last.take() {
        let _ = std::fs::remove_file(p);
    }
    let idx = NEXT_IDX.fetch_add(1, Ordering::Relaxed);
    *last = Some(dir.join(committed_name(idx)));
    idx
}

fn store(dir: &Path) -> SnapshotStore {
    let mut opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![key().verifying_key()])));
    opts.keep_last = usize::MAX;
    SnapshotStore::open(Arc::new(RealFs), dir, opts).unwrap()
}

#[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
fn ours(bencher: Bencher, size: usize) {
    let fx = Fixture::new(size).unwrap();
    let tmp = bench_dir();
    let store = store(tmp.path());
    let mut last = None;
    bencher
        .with_inputs(|| next_idx(tmp.path(), &mut last))
        .bench_local_values(|idx| {
            store
                .persist(&PersistRequest {
                    idx,
                    evidence_idx: EVIDENCE,
                    flags: Flags::NONE,
                    raw_len: fx.body.len() as u64,
                    body_digest: fx.digest,
                    body: &fx.body,
                    receipt: &fx.receipt,
                })
                .unwrap()
        });
}

#[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
fn ours_spilled(bencher: Bencher, size: usize) {
    let fx = Fixture::new(size).unwrap();
    let tmp = bench_dir();
    let store = store(tmp.path());
    let mut last = None;
    bencher
        .with_inputs(|| next_idx(tmp.path(), &mut last))
        .bench_local_values(|idx| {
            let mut spill = store.create_spill(idx, 0).unwrap();
            for chunk in fx.body.chunks(1 << 20) {
                spill.write_body(chunk).unwrap();
            }
            let req = SpillCommit {
                evidence_idx: EVIDENCE,
                flags: Flags::NONE,
                raw_len: fx.body.len() as u64,
                body_digest: fx.digest,
                receipt: &fx.receipt,
            };
            store.commit_spill(spill, &req).unwrap()
        });
}

#[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
fn floor(bencher: Bencher, size: usize) {
    let fx = Fixture::new(size).unwrap();
    let tmp = bench_dir();
    let floor = Floor::open(tmp.path()).unwrap();
    let mut last = None;
    bencher
        .with_inputs(|| {
            let idx = next_idx(tmp.path(), &mut last);
            (idx, fx.file_bytes(idx))
        })
        .bench_local_values(|(idx, bytes)| {
            let tmp_name = format!("snapshot_{idx}_{EVIDENCE}");
            floor
                .write(&tmp_name, &committed_name(idx), &[&bytes])
                .unwrap();
        });
}

#[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
fn atomic_write_file(bencher: Bencher, size: usize) {
    let fx = Fixture::new(size).unwrap();
    let tmp = bench_dir();
    let mut last = None;
    bencher
        .with_inputs(|| {
            let idx = next_idx(tmp.path(), &mut last);
            (tmp.path().join(committed_name(idx)), fx.file_bytes(idx))
        })
        .bench_local_values(|(path, bytes)| {
            let mut file = atomic_write_file::AtomicWriteFile::open(&path).unwrap();
            file.write_all(&bytes).unwrap();
            file.commit().unwrap();
        });
}
