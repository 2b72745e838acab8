//! Building one snapshot of a 256 MiB state through the adapter against openraft's in-memory
//! way (the state cloned, serialised into a `Vec`, kept as a `Cursor<Vec<u8>>`: no
//! durability), for two kinds of state:
//!
//! - **copied**: 1 MiB pages owned outright (`Vec<Vec<u8>>`): a clone copies all of it. The
//!   adapter clones it once and serialises the copy through its body builder (spilled past
//!   the default 64 MiB budget);
//! - **frozen**: the same pages behind `Arc`s, handed to the adapter as frozen chunks: nothing
//!   is cloned or copied, the file is written from the pages. openraft's way still serialises
//!   them into a `Vec` (its clone is cheap here).
//!
//! The adapter's build is the whole of it: the view taken, metadata record, hash, sign, write,
//! fsync, rename, directory fsync, and the verified read-back openraft is handed (a full hash
//! of the mapped file, whose pages count in the resident set).
//!
//! Each run is a fresh child process (this program again, with `--child`): the state is made
//! first, then the peak is reset (`/proc/self/clear_refs`) and the build timed; "peak above"
//! is `VmHWM` after the build minus `VmRSS` before it. Medians of 5 runs; the ratios are
//! within this one run of the program.
//!
//! `cargo bench -p snapseal-openraft --bench build` (`-- --mib N --runs R` to change the
//! state size and the number of runs).

use std::io::{self, Cursor, Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use snapseal_openraft::{FrozenChunk, SealOptions, SealedData, SealedState, SealedStateMachine};
use snapseal_persist::SigningKey;

openraft::declare_raft_types!(
    Cfg: D = u64, R = (), SnapshotData = SealedData,
);

const PAGE: usize = 1 << 20;

/// The bytes of page `i`: distinct, so nothing is shared or zero pages.
fn page(i: u64) -> Vec<u8> {
    let mut p = vec![0u8; PAGE];
    for (j, w) in p.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&(i << 32 | j as u64).to_le_bytes());
    }
    p
}

fn read_pages(input: &mut dyn Read) -> io::Result<Vec<Vec<u8>>> {
    let mut pages = Vec::new();
    loop {
        let mut p = Vec::with_capacity(PAGE);
        let n = input.take(PAGE as u64).read_to_end(&mut p)?;
        if n == 0 {
            return Ok(pages);
        }
        pages.push(p);
    }
}

/// Pages owned outright: a clone copies them.
#[derive(Clone, Default)]
struct Copied(Vec<Vec<u8>>);

impl SealedState<Cfg> for Copied {
    fn apply(&mut self, _: &LogId<u64>, pages: &u64) {
        let start = self.0.len() as u64;
        self.0.extend((start..start + pages).map(page));
    }
    fn no_data_response(&self, _: &LogId<u64>) {}
    fn serialise(&self, out: &mut dyn Write) -> io::Result<()> {
        self.0.iter().try_for_each(|p| out.write_all(p))
    }
    fn restore(input: &mut dyn Read) -> io::Result<Self> {
        read_pages(input).map(Copied)
    }
}

/// The same pages, frozen behind `Arc`s.
#[derive(Clone, Default)]
struct Frozen(Vec<Arc<Vec<u8>>>);

impl SealedState<Cfg> for Frozen {
    fn apply(&mut self, _: &LogId<u64>, pages: &u64) {
        let start = self.0.len() as u64;
        self.0
            .extend((start..start + pages).map(|i| Arc::new(page(i))));
    }
    fn no_data_response(&self, _: &LogId<u64>) {}
    fn serialise(&self, out: &mut dyn Write) -> io::Result<()> {
        self.0.iter().try_for_each(|p| out.write_all(p))
    }
    fn restore(input: &mut dyn Read) -> io::Result<Self> {
        Ok(Frozen(
            read_pages(input)?.into_iter().map(Arc::new).collect(),
        ))
    }
    fn frozen(&self) -> Option<Vec<FrozenChunk>> {
        Some(
            self.0
                .iter()
                .map(|p| Arc::clone(p) as FrozenChunk)
                .collect(),
        )
    }
}

/// `(VmRSS, VmHWM)` of this process in KiB.
fn status_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS and a VmHWM line")
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One case in this (child) process: prints `seconds peak_above_mib`.
fn child(case: &str, mib: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let entry = Entry::<Cfg> {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), 0),
        payload: EntryPayload::Normal(mib),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::from_bytes(&[1; 32]);
    let opts = SealOptions::new(key.clone(), vec![key.verifying_key()]);
    let (elapsed, before) = match case {
        "in-memory-copied" | "in-memory-frozen" => {
            let mut copied = Copied::default();
            let mut frozen = Frozen::default();
            if case == "in-memory-copied" {
                copied.apply(&entry.log_id, &mib);
            } else {
                frozen.apply(&entry.log_id, &mib);
            }
            let before = reset_peak();
            let start = Instant::now();
            // openraft's in-memory store: a copy of the state serialised into a buffer that
            // stays in memory as the snapshot.
            let mut buf = Vec::new();
            if case == "in-memory-copied" {
                copied.clone().serialise(&mut buf).expect("serialise");
            } else {
                frozen.clone().serialise(&mut buf).expect("serialise");
            }
            let snapshot = Cursor::new(buf);
            let elapsed = start.elapsed();
            std::hint::black_box(&snapshot);
            (elapsed, before)
        }
        "sealed-copied" => sealed::<Copied>(&rt, dir.path(), opts, entry),
        "sealed-frozen" => sealed::<Frozen>(&rt, dir.path(), opts, entry),
        other => panic!("no case {other}"),
    };
    let (_, hwm) = status_kib();
    let above = hwm.saturating_sub(before);
    println!("{} {}", elapsed.as_secs_f64(), above as f64 / 1024.0);
}

/// Resets the peak to the current resident set, and returns that (KiB).
fn reset_peak() -> u64 {
    // "5" resets VmHWM to VmRSS (Linux >= 4.0).
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    status_kib().0
}

fn sealed<S: SealedState<Cfg>>(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    opts: SealOptions,
    entry: Entry<Cfg>,
) -> (Duration, u64) {
    let mut sm: SealedStateMachine<Cfg, S> =
        SealedStateMachine::open(dir, opts).expect("open the store");
    rt.block_on(sm.apply([entry])).expect("apply");
    let before = reset_peak();
    let start = Instant::now();
    let snapshot = rt.block_on(async {
        let mut builder = sm.get_snapshot_builder().await;
        builder.build_snapshot().await
    });
    let elapsed = start.elapsed();
    let snapshot = snapshot.expect("build");
    std::hint::black_box(&snapshot);
    (elapsed, before)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let mib: u64 = arg("--mib").map_or(256, |v| v.parse().expect("--mib N"));
    if let Some(case) = arg("--child") {
        child(case, mib);
        return;
    }
    let runs: usize = arg("--runs").map_or(5, |v| v.parse().expect("--runs N"));
    let exe = std::env::current_exe().expect("this program");
    let measure = |case: &str| {
        let (mut times, mut peaks) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let out = Command::new(&exe)
                .args(["--child", case, "--mib", &mib.to_string()])
                .output()
                .expect("run the child");
            assert!(
                out.status.success(),
                "{case}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = String::from_utf8_lossy(&out.stdout);
            let mut fields = line
                .split_whitespace()
                .map(|f| f.parse::<f64>().expect("a number"));
            times.push(fields.next().expect("time"));
            peaks.push(fields.next().expect("peak"));
        }
        (median(times), median(peaks))
    };
    println!(
        "openraft snapshot build of a {mib} MiB state, median of {runs} runs (child process each)"
    );
    println!(
        "{:<8} {:>14} {:>14} {:>12} {:>12} {:>10} {:>12}",
        "state",
        "openraft time",
        "sealed time",
        "time ratio",
        "openraft +MiB",
        "sealed +MiB",
        "+MiB diff"
    );
    for kind in ["copied", "frozen"] {
        let (mem_t, mem_p) = measure(&format!("in-memory-{kind}"));
        let (seal_t, seal_p) = measure(&format!("sealed-{kind}"));
        println!(
            "{:<8} {:>12.3} s {:>12.3} s {:>11.2}x {:>12.0} {:>11.0} {:>+12.0}",
            kind,
            mem_t,
            seal_t,
            seal_t / mem_t,
            mem_p,
            seal_p,
            seal_p - mem_p
        );
    }
}
