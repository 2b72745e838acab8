//! `snapseal bench`: snapseal against its floor and peers, side by side, in one process.
//!
//! [`run`] measures each of snapseal's costs next to the physical floor or a peer on the same
//! machine, in the same run, alternating the two sides so a noisy machine slows both alike,
//! and returns a [`BenchTable`] (print it with `Display`):
//!
//! | row | ours | floor / peer | target |
//! |-----|------|--------------|--------|
//! | persist (4 KiB, 256 MiB; in memory and spilled) | `SnapshotStore::persist` / spill + `commit_spill` | bare write + fsync + rename + dir fsync | ≤ 1.25× / ≤ 1.05× |
//! | serialise (frozen chunks; in memory; spilled) | state view → `BodyBuilder` | `b3sum --num-threads N`, N the hashing pool's threads | ≥ 0.9×; ≥ 0.85×; information |
//! | serialise spilled | the same | bare `write(2)` of the same bytes | ≥ 0.9× throughput |
//! | verify | `SnapshotStore::latest()` of 1 GiB | `b3sum --num-threads N` of the file | ≥ 0.95× throughput |
//! | peak RSS | one 2 GiB generation, spill on | — | ≤ 64 MiB above state |
//! | openraft build (256 MiB; copied and frozen state) | `SealedStateMachine` snapshot build, child process | openraft's in-memory build (a serialised copy in a `Vec`) | time ≤ 1.5×; peak ≤ +64 MiB above it |
//! | peak RSS of a restart | open, `latest()` and the body read of a 256 MiB snapshot, child process | — | ≤ 16 MiB above the start |
//! | persist N at once | 4 × 64 MiB through the store from 4 threads | 4 bare write + fsync + rename + dir fsync sequences from 4 threads | ≤ 1.05× (vs the same persists one after another: information) |
//! | consensus | p99 with 5 × 64 MiB in flight | p99 while a peer hashes and writes the same bytes at the same nice; the p99 itself | ≤ 1.1×; ≤ 5 µs (vs none: information) |
//! | engine | 64 independent queues, CPU count and 8 threads | crossbeam pool | ≥ 1.0× throughput |
//! | ship, restore (file:// remote) | `Shipper::ship_pending`, `snapseal_ship::restore` | `object_store` put; ranged get + BLAKE3, streamed get + BLAKE3 | ≥ 0.9× throughput |
//! | chunked (1 GiB state, 1 MiB pages) | persist after a 1% contiguous change; first chunked persist; ship of that change; restore from a file:// remote | a full plain persist (time ≤ 10%, bytes ≤ 3%; first ≤ 1.2×); a full ship (bytes ≤ 3%); get + BLAKE3 of the same chunk objects, 8 in flight (≥ 0.9×) | as stated |
//!
//! The `atomic-write-file` crate (a user's obvious alternative for the write path) is compared
//! in `benches/persist_peers.rs` only: a peer to measure against is a dev-dependency, never one
//! of the command's.
//!
//! A run can be kept and compared with a later one: [`Record`] is its versioned JSON
//! document (`snapseal bench --save FILE`), [`compare()`] weighs each row's change against the
//! run-to-run noise both runs measured (`--compare FILE`).
//!
//! Peak RSS needs a fresh process: give [`BenchOptions::rss_probe`] a command that runs this
//! library's [`rss::probe_main`] (e.g. `snapseal bench` re-running itself with
//! [`rss::PROBE_ARG`], or `examples/bench.rs`); without one the row is measured in-process.

use std::io;
use std::path::{Path, PathBuf};

mod background;
mod chunked;
pub mod compare;
mod consensus;
pub mod engine;
pub mod fixture;
pub mod floor;
mod hashing;
pub mod machine;
mod openraft;
mod persist;
pub mod record;
mod restart;
mod rig;
pub mod rss;
mod ship;
mod table;

pub use crate::units::{bytes, secs};
pub use compare::{compare, Comparison};
pub use consensus::{measure as consensus_latency, Latency};
pub use fixture::Runs;
pub use machine::Machine;
pub use record::{Record, RecordError};
pub use table::{BenchRow, BenchTable, Figures, Rate, Target, Verdict};

/// What to measure and where.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Directory the files go to (a scratch subdirectory is made and removed): put it on the
    /// filesystem you care about. Needs room for about twice the largest size.
    pub dir: PathBuf,
    /// Body sizes for the persist rows (the targets: 4 KiB ≤ 1.25×, others ≤ 1.05×).
    pub persist_sizes: Vec<u64>,
    /// Generations persisted at once, and the body size of each, for the parallel persist row.
    pub parallel_persist: (usize, u64),
    /// Bytes serialised for the serialise rows.
    pub serialise_size: u64,
    /// Body size of the snapshot `latest()` verifies.
    pub verify_size: u64,
    /// State size of the peak-RSS row; `None` leaves the row out.
    pub rss_size: Option<u64>,
    /// Body size of the snapshot the restart row reads back; `None` leaves the row out.
    pub restart_size: Option<u64>,
    /// State size of the openraft build rows; `None` leaves them out.
    pub openraft_size: Option<u64>,
    /// Body size of each of the five generations in flight in the consensus row.
    pub consensus_body: u64,
    /// Body size of the snapshot the ship and restore rows move.
    pub ship_size: u64,
    /// State size of the chunked rows (issue 24), in pages of 1 MiB.
    pub chunked_size: u64,
    /// An S3-compatible test server (`http://host:port`, e.g. moto or s3rver): the ship and
    /// restore rows, and the chunked ship and restore rows (at `ship_size`), run against it
    /// too, each in a bucket of their own. `None`: `file://` only.
    pub s3_endpoint: Option<String>,
    /// Smaller sizes and fewer repetitions (a quick look, not the figures to quote).
    pub quick: bool,
    /// The `b3sum` binary; `None` looks on `PATH`, then in `~/.cargo/bin`.
    pub b3sum: Option<PathBuf>,
    /// Command (program and leading arguments) that runs [`rss::probe_main`] in a child
    /// process; `None` measures peak RSS in this process instead.
    pub rss_probe: Option<Vec<String>>,
    /// Only the rows whose names start with this; only the comparisons that can make such a
    /// row run. `None`: every row.
    pub only: Option<String>,
}

impl BenchOptions {
    /// The full sizes in `dir`: persist 4 KiB and 256 MiB, 4 × 64 MiB at once, serialise 256 MiB, verify 1 GiB,
    /// RSS at 2 GiB, a restart reading 256 MiB, an openraft build of 256 MiB, consensus with 5 × 64 MiB, a chunked state of 1 GiB.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        BenchOptions {
            dir: dir.into(),
            persist_sizes: vec![4 << 10, 256 << 20],
            parallel_persist: (4, 64 << 20),
            serialise_size: 256 << 20,
            verify_size: 1 << 30,
            rss_size: Some(2 << 30),
            restart_size: Some(256 << 20),
            openraft_size: Some(256 << 20),
            consensus_body: 64 << 20,
            ship_size: 256 << 20,
            chunked_size: 1 << 30,
            s3_endpoint: None,
            quick: false,
            b3sum: None,
            rss_probe: None,
            only: None,
        }
    }

    /// Quick mode: persist 4 KiB and 64 MiB, 4 × 8 MiB at once, serialise and verify 64 MiB, RSS at 256 MiB, a restart reading 32 MiB, an openraft build of 32 MiB,
    /// consensus with 5 × 16 MiB, a chunked state of 32 MiB, fewer repetitions.
    pub fn quick(dir: impl Into<PathBuf>) -> Self {
        BenchOptions {
            persist_sizes: vec![4 << 10, 64 << 20],
            parallel_persist: (4, 8 << 20),
            serialise_size: 64 << 20,
            verify_size: 64 << 20,
            rss_size: Some(256 << 20),
            restart_size: Some(32 << 20),
            openraft_size: Some(32 << 20),
            consensus_body: 16 << 20,
            ship_size: 64 << 20,
            chunked_size: 32 << 20,
            quick: true,
            ..BenchOptions::new(dir)
        }
    }
}

/// Why a bench run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file operation of the harness itself failed.
    #[error("{step} {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Setting up a comparison failed (store, engine, fixture).
    #[error("bench setup: {0}")]
    Setup(String),
    /// A measured operation failed (it must succeed to be measured).
    #[error("bench run: {0}")]
    Run(String),
}

impl BenchError {
    pub(crate) fn io(path: &Path, step: &'static str, source: io::Error) -> Self {
        BenchError::Io {
            path: path.to_path_buf(),
            step,
            source,
        }
    }
}

/// Runs every comparison and returns the table. Failing targets are rows marked `FAIL`, not
/// errors; an error means a comparison could not be made at all.
pub fn run(opts: &BenchOptions) -> Result<BenchTable, BenchError> {
    std::fs::create_dir_all(&opts.dir).map_err(|e| BenchError::io(&opts.dir, "create", e))?;
    let reps = if opts.quick { 3 } else { 7 };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hashing_threads = hashing::threads();
    let b3sum = hashing::find_b3sum(opts.b3sum.as_deref());
    let mut table = BenchTable {
        rows: Vec::new(),
        context: vec![
            format!(
                "snapseal bench: dir {}, {threads} CPUs, engine workers {} (default), hashing threads {hashing_threads} (default; b3sum gets as many), b3sum {}",
                opts.dir.display(),
                snapseal_engine::EngineConfig::default()
                    .resolved_workers()
                    .unwrap_or(1),
                b3sum
                    .as_ref()
                    .map_or_else(|| "not found".into(), |p| p.display().to_string())
            ),
            format!(
                "each ratio: medians of {reps} alternating runs of ours and the floor/peer{}",
                if opts.quick {
                    " (quick mode: small sizes, not the figures to quote)"
                } else {
                    ""
                }
            ),
        ],
    };
    // A comparison runs when a row it makes could start with `--only`'s prefix: the prefix
    // and one of the names the comparison's rows start with are prefixes of one another.
    let wants = |starts: &[&str]| match &opts.only {
        None => true,
        Some(only) => starts
            .iter()
            .any(|s| s.starts_with(only.as_str()) || only.starts_with(s)),
    };
    for &size in &opts.persist_sizes {
        if !wants(&[&format!("persist {}", bytes(size))]) {
            continue;
        }
        let bound = if size <= 4 << 10 { 1.25 } else { 1.05 };
        let size = usize::try_from(size).map_err(|_| BenchError::Setup("size too large".into()))?;
        // Small files are dominated by fsync, whose time varies run to run: take more runs.
        let reps = if size <= 1 << 20 { reps * 5 } else { reps };
        table
            .rows
            .extend(persist::rows(&opts.dir, size, reps, bound)?);
    }
    let to_usize =
        |n: u64| usize::try_from(n).map_err(|_| BenchError::Setup("size too large".into()));
    let (count, size) = opts.parallel_persist;
    if count > 1 && wants(&["persist"]) {
        table.rows.extend(persist::parallel_rows(
            &opts.dir,
            count,
            to_usize(size)?,
            reps,
        )?);
    }
    if wants(&["serialise", "latest() verify"]) {
        table.rows.extend(hashing::rows(
            &opts.dir,
            b3sum,
            to_usize(opts.serialise_size)?,
            to_usize(opts.verify_size)?,
            reps,
        )?);
    }
    if let Some(size) = opts.rss_size.filter(|_| wants(&["peak RSS"])) {
        table
            .rows
            .push(rss::row(&opts.dir, size, opts.rss_probe.as_deref())?);
    }
    if let Some(size) = opts
        .restart_size
        .filter(|_| wants(&["peak RSS of a restart"]))
    {
        table
            .rows
            .push(restart::row(&opts.dir, size, opts.rss_probe.as_deref())?);
    }
    if let Some(size) = opts.openraft_size.filter(|_| wants(&["openraft"])) {
        let runs = if opts.quick { 3 } else { 5 };
        table.rows.extend(openraft::rows(
            &opts.dir,
            size,
            runs,
            opts.rss_probe.as_deref(),
        )?);
    }
    if wants(&["consensus"]) {
        // A round is a few seconds, and one round's p99 (the ~20th slowest of ~2,000
        // signatures) swings with whatever else the machine does: the rounds of one run
        // spread 0.57-1.93x with 3 of them. Nine put the median on firmer ground.
        let rounds = if opts.quick { 3 } else { 9 };
        table
            .rows
            .extend(consensus::rows(&opts.dir, 5, opts.consensus_body, rounds)?);
    }
    if wants(&["ship", "restore"]) {
        table
            .rows
            .extend(ship::rows(&opts.dir, to_usize(opts.ship_size)?, reps)?);
        if let Some(endpoint) = &opts.s3_endpoint {
            table.rows.extend(ship::s3_rows(
                &opts.dir,
                to_usize(opts.ship_size)?,
                reps,
                endpoint,
            )?);
        }
    }
    if wants(&["chunked"]) {
        let s3 = match &opts.s3_endpoint {
            Some(endpoint) => Some((endpoint.as_str(), to_usize(opts.ship_size)?)),
            None => None,
        };
        table.rows.extend(chunked::rows(
            &opts.dir,
            to_usize(opts.chunked_size)?,
            1 << 20,
            reps,
            s3,
        )?);
    }
    if wants(&["engine"]) {
        // The rows before leave gigabytes of dirty pages whose writeback runs on kernel
        // threads; the engine rows measure CPU-bound threads on every CPU, so let it finish
        // first (as the chunked rows do before each repetition).
        nix::unistd::sync();
        let per_queue = if opts.quick { 200 } else { 1000 };
        // One run is a few milliseconds: many alternating runs for a stable median.
        table.rows.push(engine::row(threads, per_queue, reps * 3)?);
        // Oversubscribed: more workers (and pool threads) than CPUs.
        table.rows.push(engine::row(8, per_queue, reps * 3)?);
    }
    if let Some(only) = &opts.only {
        table.rows.retain(|r| r.what.starts_with(only.as_str()));
    }
    Ok(table)
}
