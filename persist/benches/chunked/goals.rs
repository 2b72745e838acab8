//! The chunked-snapshot goals of issue 24 item 7, measured as ratios within one run (each
//! repetition runs ours and its baseline back to back, so the machine's load hits both):
//!
//! `cargo bench -p snapseal-persist --bench persist -- chunked-goals [MiB [page KiB]]` (default
//! 1024 MiB in pages of 1024 KiB).
//!
//! The state is a paged one, as a node that hands out frozen chunks keeps it: pages of
//! [`PAGE`] bytes (or as given), each an `Arc` the node replaces (copy on write) when it changes bytes in
//! it, so a snapshot's unchanged pages are the same `Arc`s as the last one's. Every persist
//! goes to a real directory (next to the target dir, or `SNAPSEAL_BENCH_DIR`) and is timed
//! from the frozen pages to the committed file (hashing, cutting, chunk packs, fsyncs), each
//! after a `sync`, so no persist waits for the write-back of the one before:
//!
//! - plain full: `PendingBody::from_frozen` + commit (the zero-copy whole-body path);
//! - chunked first: `PendingBody::from_frozen_in` into an empty chunked store;
//! - 1% contiguous / 1% in 100 runs at random offsets: the next snapshot after the change;
//!   bytes written are the new chunk bytes plus the snapshot file (its chunk list);
//! - 1% of keys (1 KiB records) updated uniformly at random: bytes written against the bytes
//!   of the previous snapshot's chunks that hold a changed byte;
//! - dedup over 100 consecutive snapshots, 1% changed (contiguous) before each;
//! - peak RSS above the state: a child process (this binary, `chunked-rss`) builds the state,
//!   resets its peak (`/proc/self/clear_refs` 5), takes a first and ten 1% snapshots, and
//!   prints `VmHWM` minus its resident size before the snapshots.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
use snapseal_persist::{
    FrozenChunk, MemoryBudget, PendingBody, SigningKey, SnapshotStore, SpillTarget, StoreOptions,
};

/// Bytes of one page of the state (a frozen chunk), unless the command line says otherwise.
const PAGE: usize = 1 << 20;

static PAGE_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(PAGE);

fn page() -> usize {
    PAGE_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}
/// Bytes of one record for the "1% of keys" row.
const RECORD: usize = 1024;
/// Repetitions of the timed rows.
const REPS: usize = 5;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A paged state: a write replaces the pages it touches.
#[derive(Clone)]
struct Paged {
    pages: Vec<Arc<Vec<u8>>>,
}

impl Paged {
    fn new(size: usize, seed: u64) -> Paged {
        let mut rng = Rng(seed | 1);
        let pages = (0..size.div_ceil(page()))
            .map(|p| {
                let len = page().min(size - p * page());
                let mut v = vec![0u8; len];
                for w in v.chunks_mut(8) {
                    let x = rng.next().to_le_bytes();
                    w.copy_from_slice(&x[..w.len()]);
                }
                Arc::new(v)
            })
            .collect();
        Paged { pages }
    }
    /// Changes `len` bytes at `at` (each incremented by `by`).
    fn change(&mut self, mut at: usize, mut len: usize, by: u8) {
        while len > 0 {
            let (p, off) = (at / page(), at % page());
            let page = Arc::make_mut(&mut self.pages[p]);
            let n = len.min(page.len() - off);
            for b in &mut page[off..off + n] {
                *b = b.wrapping_add(by);
            }
            at += n;
            len -= n;
        }
    }
    fn frozen(&self) -> Vec<FrozenChunk> {
        self.pages
            .iter()
            .map(|p| Arc::clone(p) as FrozenChunk)
            .collect()
    }
}

fn store(dir: &Path, chunked: bool, keep_last: usize) -> Arc<SnapshotStore> {
    let trusted = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key().verifying_key()]);
    let mut opts = StoreOptions::new(Arc::new(trusted));
    opts.chunked = chunked;
    opts.keep_last = keep_last;
    Arc::new(SnapshotStore::open(Arc::new(RealFs), dir, opts).expect("open the bench store"))
}

/// Persists `state` as snapshot `idx`: the time from the frozen pages to the committed file,
/// and the bytes written (new chunk bytes plus the file).
fn persist(st: &Arc<SnapshotStore>, idx: u64, state: &Paged) -> (Duration, u64) {
    // The write-back of the previous persist must not be charged to this one.
    let _ = std::process::Command::new("sync").status();
    let before = st.stats().chunk_bytes_written;
    let chunks = state.frozen();
    let start = Instant::now();
    let target = SpillTarget {
        store: Arc::clone(st),
        idx,
        generation: idx,
        budget: MemoryBudget::new(64 << 20),
    };
    let body = PendingBody::from_frozen_in(chunks, target).expect("build the body");
    let receipt = statement_receipt(&key(), &body.claims(idx), idx + 1, None).expect("receipt");
    let committed = body.commit(st, idx, idx + 1, &receipt).expect("commit");
    let took = start.elapsed();
    (
        took,
        st.stats().chunk_bytes_written - before + committed.file_len,
    )
}

fn work_dir() -> PathBuf {
    std::env::var_os("SNAPSEAL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("chunked-goals")
        .tempdir_in(work_dir())
        .expect("a bench directory")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn row(name: &str, value: f64, unit: &str, goal: &str, met: Option<bool>) {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "reported",
    };
    println!("{name:<52} {value:>9.3}{unit:<2} goal {goal:<10} {verdict}");
}

/// The chunk bounds FastCDC gives a page (the store cuts each frozen chunk on its own).
fn page_cuts(page: &[u8]) -> Vec<(usize, usize)> {
    fastcdc::v2020::FastCDC::new(page, 16 << 10, 64 << 10, 256 << 10)
        .map(|c| (c.offset, c.offset + c.length))
        .collect()
}

pub(crate) fn run(mib: usize, page_kib: usize) {
    PAGE_BYTES.store(page_kib << 10, std::sync::atomic::Ordering::Relaxed);
    let size = mib << 20;
    println!(
        "chunked goals: state {mib} MiB in {} pages of {} KiB; {REPS} repetitions, median ratio",
        size.div_ceil(page()),
        page() >> 10
    );
    let base = Paged::new(size, 0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut first, mut contiguous, mut scattered) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bytes_contig, mut bytes_scattered) = (Vec::new(), Vec::new());
    for rep in 0..REPS {
        let plain_dir = tempdir();
        let plain = store(plain_dir.path(), false, 2);
        let (t_plain, full_bytes) = persist(&plain, 10, &base);
        drop((plain, plain_dir));
        let dir = tempdir();
        let st = store(dir.path(), true, 2);
        let (t_first, _) = persist(&st, 10, &base);
        first.push(t_first.as_secs_f64() / t_plain.as_secs_f64());

        let mut s = base.clone();
        let len = size / 100;
        s.change(rng.below(size - len), len, 1 + rep as u8);
        let (t, b) = persist(&st, 20, &s);
        contiguous.push(t.as_secs_f64() / t_plain.as_secs_f64());
        bytes_contig.push(b as f64 / full_bytes as f64);

        for _ in 0..100 {
            let run = size / 10_000;
            s.change(rng.below(size - run), run, 3);
        }
        let (t, b) = persist(&st, 30, &s);
        scattered.push(t.as_secs_f64() / t_plain.as_secs_f64());
        bytes_scattered.push(b as f64 / full_bytes as f64);
        eprintln!(
            "rep {rep}: plain {:.2}s first {:.2}s contiguous {:.3}s scattered {:.3}s",
            t_plain.as_secs_f64(),
            t_first.as_secs_f64(),
            contiguous[rep] * t_plain.as_secs_f64(),
            scattered[rep] * t_plain.as_secs_f64()
        );
    }
    let (c_b, c_t) = (median(bytes_contig), median(contiguous));
    let (s_b, s_t) = (median(bytes_scattered), median(scattered));
    let f = median(first);
    row(
        "1% contiguous: bytes written / full snapshot",
        c_b * 100.0,
        "%",
        "<= 3%",
        Some(c_b <= 0.03),
    );
    row(
        "1% contiguous: persist time / full persist",
        c_t * 100.0,
        "%",
        "<= 10%",
        Some(c_t <= 0.10),
    );
    row(
        "1% in 100 runs: bytes written / full snapshot",
        s_b * 100.0,
        "%",
        "<= 3%",
        Some(s_b <= 0.03),
    );
    row(
        "1% in 100 runs: persist time / full persist",
        s_t * 100.0,
        "%",
        "<= 10%",
        Some(s_t <= 0.10),
    );
    row(
        "first chunked persist / plain persist",
        f,
        "x",
        "<= 1.2x",
        Some(f <= 1.2),
    );

    random_keys(&base, size);
    dedup(&base, size);
    match rss_child(mib, page() >> 10) {
        Ok(above) => row(
            "peak RSS above the state (first + ten 1% snapshots)",
            above as f64 / (1 << 20) as f64,
            "Mi",
            "<= 64 MiB",
            Some(above <= 64 << 20),
        ),
        Err(e) => eprintln!("peak RSS row not measured: {e}"),
    }
}

/// 1% of the records, uniformly at random: bytes written against the bytes of the previous
/// snapshot's chunks holding a changed byte.
fn random_keys(base: &Paged, size: usize) {
    let dir = tempdir();
    let st = store(dir.path(), true, 2);
    persist(&st, 10, base);
    let mut rng = Rng(77);
    let mut s = base.clone();
    let records = size / RECORD;
    let mut changed = vec![false; size.div_ceil(page())];
    let mut touched_at: Vec<Vec<usize>> = vec![Vec::new(); changed.len()];
    for _ in 0..records / 100 {
        let at = rng.below(records) * RECORD;
        s.change(at, RECORD, 1);
        changed[at / page()] = true;
        touched_at[at / page()].push(at % page());
    }
    let before = st.stats().chunk_bytes_written;
    persist(&st, 20, &s);
    let written = st.stats().chunk_bytes_written - before;
    let mut touched = 0u64;
    for (p, offs) in touched_at.iter().enumerate() {
        if offs.is_empty() {
            continue;
        }
        for (from, to) in page_cuts(&base.pages[p]) {
            if offs.iter().any(|&o| o < to && o + RECORD > from) {
                touched += (to - from) as u64;
            }
        }
    }
    let r = written as f64 / touched as f64;
    row(
        "1% of keys (1 KiB records): bytes / touched chunks",
        r,
        "x",
        "<= 1.1x",
        Some(r <= 1.1),
    );
    println!(
        "    ({:.1}% of the state's chunks touched; {written} chunk bytes written)",
        touched as f64 * 100.0 / size as f64
    );
}

/// 100 consecutive snapshots, 1% changed before each: logical bytes against stored bytes.
fn dedup(base: &Paged, size: usize) {
    let dir = tempdir();
    let st = store(dir.path(), true, 100);
    let mut rng = Rng(99);
    let mut s = base.clone();
    let mut written = 0u64;
    for i in 0..100u64 {
        if i > 0 {
            let len = size / 100;
            s.change(rng.below(size - len), len, 5);
        }
        written += persist(&st, 10 * (i + 1), &s).1;
    }
    let logical = 100 * size as u64;
    let r = logical as f64 / written as f64;
    row(
        "dedup over 100 snapshots (1% each): logical / written",
        r,
        "x",
        "reported",
        None,
    );
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs this binary as `chunked-rss <mib>` and reads its one line: bytes above the state.
fn rss_child(mib: usize, page_kib: usize) -> Result<u64, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(me)
        .args(["chunked-rss", &mib.to_string(), &page_kib.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("above_state_bytes="))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no report: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

/// The child of [`rss_child`].
pub(crate) fn rss(mib: usize, page_kib: usize) {
    PAGE_BYTES.store(page_kib << 10, std::sync::atomic::Ordering::Relaxed);
    let size = mib << 20;
    let mut s = Paged::new(size, 0x9e37_79b9_7f4a_7c15);
    let dir = tempdir();
    let st = store(dir.path(), true, 2);
    let resident = status_kib("VmRSS:").unwrap_or(0);
    // Resets VmHWM to the resident size (Linux >= 4.0).
    let reset = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/clear_refs")
        .and_then(|mut f| f.write_all(b"5"));
    if let Err(e) = reset {
        eprintln!("cannot reset the peak RSS: {e}");
        return;
    }
    let mut rng = Rng(5);
    persist(&st, 10, &s);
    for i in 1..=10u64 {
        let len = size / 100;
        s.change(rng.below(size - len), len, 1);
        persist(&st, 10 * (i + 1), &s);
    }
    let peak = status_kib("VmHWM:").unwrap_or(0);
    println!("above_state_bytes={}", peak.saturating_sub(resident) * 1024);
}
