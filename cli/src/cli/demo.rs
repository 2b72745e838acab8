//! `snapseal demo`: the simulated node from the reference ledger, snapshotting into a real
//! directory on the threaded engine, then a verification of every committed file and a
//! summary (see the subcommand's `--help`). With `--resume` it goes on in a directory an
//! earlier demo wrote ([`resume`]).

mod resume;

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Args;
use parking_lot::Mutex;
use serde::Serialize;
use snapseal::engine::{EngineConfig, ShutdownMode, TaskSystem};
use snapseal::persist::fs::{FileSystem, RealFs};
use snapseal::persist::internals::receipt::key_id;
use snapseal::persist::receipt::{Ed25519Verifier, ReceiptVerifier};
use snapseal::persist::SnapshotStore;
use snapseal::{CommittedSnapshot, SnapshotEvent};
use snapseal_archive::LEDGER_DIR;
use snapseal_cli::units::percentile;
use snapseal_ledger::disk_ledger::{DiskLedger, DEFAULT_CHUNK_BYTES};
use snapseal_ledger::disk_node::DiskKv;
use snapseal_ledger::ledger::Ledger;
use snapseal_ledger::node::{NodeEvent, SimNode};

use crate::cli::check::{self, Verdict};
use crate::cli::committed_log::{CommittedLog, LogLine};
use crate::cli::config::{self, DemoSettings, DemoValues, FileConfig};
use crate::cli::exit::Status;
use crate::cli::keys::{self, NODE_PUB};
use crate::cli::metrics::{self, DemoMetrics};
use crate::cli::output::{self, hex, info, text, Out};
use crate::cli::progress::{Progress, Unit};
use crate::cli::ship::{open_remote, RemoteArgs};
use crate::cli::verify::{committed_files, FileResult};

/// `demo` arguments. Each numeric flag overrides the `[demo]` key of the same name.
#[derive(Debug, Args)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub(crate) struct DemoArgs {
    /// Snapshot directory; must be new or empty (the demo starts a fresh ledger and never
    /// touches files it did not write), unless --resume. Default: a fresh directory under the
    /// system temp directory, printed.
    #[arg(long, value_name = "D")]
    pub dir: Option<PathBuf>,
    /// Go on in D where an earlier demo with the same --seed stopped, even if it was killed:
    /// the store's recovery runs (stale uncommitted and pending files removed, the newest
    /// snapshot that verifies found, newer ones that fail quarantined), node.pub must hold
    /// the seed's key, committed.log is appended to (an unfinished last line is cut off), and
    /// the ledger continues after the largest index any snapshot file or logged commit in D
    /// names, so a committed snapshot's name is never reused. Each run appends --txs more
    /// txs. A missing or empty D starts fresh; a D holding files the demo does not write is
    /// refused.
    #[arg(long, requires = "dir")]
    pub resume: bool,
    /// The settings that are also `[demo]` keys.
    #[command(flatten)]
    pub values: DemoValues,
    /// At the end, print the run's counters and latency summaries in Prometheus text format.
    #[arg(long)]
    pub metrics: bool,
    /// Reproducible run: the engine's tasks run on the node's own thread (the manual executor,
    /// seeded from --seed, run until idle after every tx) and the engine clock advances a fixed
    /// 10 µs per tx instead of following the wall clock. The same settings and --seed then
    /// give a byte-identical directory: every file name and every byte of every file,
    /// node.pub and committed.log included; only the timings in the summary vary. Slower
    /// than the threaded engine; excludes --workers.
    #[arg(long, conflicts_with = "workers")]
    pub deterministic: bool,
    /// The ledger's open chunk (in D/ledger) is sealed into `ledger_<start>-<end>.committed`
    /// at the first committed signature once it holds this many bytes (at most 128 MiB; see
    /// docs/LEDGER.md).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_CHUNK_BYTES)]
    pub ledger_chunk_bytes: u64,
    /// When the run is done, ship its committed snapshots to URL (file:///abs/dir or
    /// s3://bucket[/prefix]) as node `demo`, as `snapseal ship` does. The remote is opened
    /// (its URL and options checked) before the run starts.
    #[arg(long, value_name = "URL")]
    pub ship_to: Option<String>,
    /// How the --ship-to remote is reached (--remote-opt needs --ship-to).
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Chunked snapshots (docs/FORMAT.md §2.2): each snapshot's state is cut into
    /// content-defined chunks stored once in pack files beside the snapshots, so a snapshot
    /// writes only the chunks that changed; the summary lists the bytes each one wrote.
    /// Excludes --compression.
    #[arg(long, conflicts_with = "compression")]
    pub chunked: bool,
}

/// With --deterministic, the engine clock advances this much per tx (about the threaded
/// demo's pace), so `cooldown_ms` and `time_interval_ms` still mean something.
const DETERMINISTIC_TX_TIME: Duration = Duration::from_micros(10);

/// Rounds of signatures `SimNode::finish` may add to flush pending generations; each needs
/// about three (evidence, a signature after it, that signature committed).
const FLUSH_ROUNDS: usize = 1_000;

/// What the observer records on the node's thread.
#[derive(Debug)]
struct Timeline {
    /// Every commit call: (commit index, when), in call order (indices never decrease).
    commits: Vec<(u64, Instant)>,
    /// Per committed snapshot: from the commit that opened its gate to the node seeing it.
    persist: Vec<Duration>,
    log: CommittedLog,
    /// The first committed.log failure (the observer cannot return it).
    log_error: Option<anyhow::Error>,
    /// With --chunked: what each committed snapshot wrote, in commit order (`None` for a
    /// plain store).
    chunked: Option<Vec<ChunkedRow>>,
}

/// What one chunked snapshot wrote: its file (the chunk list, header and receipt) and the
/// chunks its body wrote into packs (those no pack held when it was cut), as its `Committed`
/// event says: each row is that snapshot's own, however generations overlap.
#[derive(Debug, Serialize)]
struct ChunkedRow {
    idx: u64,
    file_bytes: u64,
    new_chunk_bytes: u64,
}

impl Timeline {
    fn committed(&mut self, c: &CommittedSnapshot, seen: Instant) {
        // The gate opens at the first commit call reaching the signature that covers the
        // evidence: serialisation and evidence necessarily came before that signature.
        let first = self.commits.partition_point(|(idx, _)| *idx < c.sig_idx);
        if let Some((_, opened)) = self.commits.get(first) {
            self.persist.push(seen.saturating_duration_since(*opened));
        }
        if let Some(rows) = &mut self.chunked {
            rows.push(ChunkedRow {
                idx: c.idx,
                file_bytes: c.file_len,
                new_chunk_bytes: c.new_chunk_bytes,
            });
        }
        if self.log_error.is_none() {
            if let Err(e) = self.log.append(c) {
                self.log_error = Some(e);
            }
        }
    }
}

/// Latency percentiles.
#[derive(Debug, Default, Serialize)]
struct Percentiles {
    samples: usize,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
}

impl Percentiles {
    fn of(samples: &[Duration]) -> Percentiles {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let at = |q: f64| percentile(&sorted, q).as_secs_f64() * 1e6;
        Percentiles {
            samples: sorted.len(),
            p50_us: at(0.50),
            p99_us: at(0.99),
            max_us: at(1.0),
        }
    }

    fn text(&self) -> String {
        let d = |us: f64| output::duration(Duration::from_secs_f64(us / 1e6));
        if self.samples == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {}, p99 {}, max {} ({} samples)",
            d(self.p50_us),
            d(self.p99_us),
            d(self.max_us),
            self.samples
        )
    }
}

#[derive(Debug, Serialize)]
struct SnapshotCounts {
    scheduled: u64,
    committed: u64,
    skipped: u64,
    deferred: u64,
    dropped: u64,
    failed: u64,
}

#[derive(Debug, Serialize)]
struct Summary {
    dir: PathBuf,
    /// Set when the run went on in an earlier demo's directory.
    resumed: Option<resume::ResumeInfo>,
    node_pub: PathBuf,
    key_id: String,
    committed_log: PathBuf,
    txs: u64,
    ledger_last_idx: u64,
    /// The ledger directory (`ledger/` in the demo directory).
    ledger_dir: PathBuf,
    /// The ledger's commit index at the end: every tx up to it is durable (after a clean
    /// stop, in a sealed chunk).
    ledger_commit_idx: u64,
    /// The KV state's hash at `ledger_commit_idx`, hex (what a node replaying to that index
    /// from any snapshot and the ledger must reach).
    state_hash: String,
    run_secs: f64,
    flush_secs: f64,
    txs_per_sec: f64,
    snapshots: SnapshotCounts,
    bytes_written: u64,
    /// With --chunked: per committed snapshot, its file and its new chunk bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    chunked: Option<Vec<ChunkedRow>>,
    snapshot_bytes_per_sec: f64,
    files_on_disk: usize,
    deleted_by_retention: u64,
    keep_last: usize,
    persist_latency: Percentiles,
    consensus_call_latency: Percentiles,
    latest: Option<PathBuf>,
    verification: Vec<FileResult>,
    verified: usize,
    failures: Vec<String>,
    metrics: Option<String>,
}

/// Runs `demo`.
pub(super) fn run(args: &DemoArgs, file: &FileConfig, out: &Out) -> anyhow::Result<Status> {
    let settings = config::demo_settings(file, &args.values)?;
    // A remote that cannot be opened (a bad URL or option, no credentials) is said before
    // the run, not after it.
    let ship_to = match &args.ship_to {
        Some(url) => Some((url, open_remote(url, &args.remote)?)),
        None if !args.remote.remote_opts.is_empty() => {
            bail!("--remote-opt is an option of --ship-to's remote: pass --ship-to URL too")
        }
        None => None,
    };
    let key = Ledger::seed_key(settings.sim.seed).verifying_key();
    let (dir, survey) = match &args.dir {
        Some(d) if args.resume => {
            let survey = resume::survey(d, &key)?;
            if survey.fresh {
                (prepare_dir(d)?, None)
            } else {
                (d.clone(), Some(survey))
            }
        }
        Some(d) => (prepare_dir(d)?, None),
        None => (fresh_temp_dir()?, None),
    };
    // Once, before the run (a long run shows where it writes), as the summary's first line.
    text!(out, "snapseal demo: {}", dir.display());
    let summary = run_in(&dir, &settings, survey.as_ref(), args, out)?;
    out.json(&summary)?;
    print_summary(&summary, out)?;
    if let Some(first) = summary.failures.first() {
        bail!(
            "the run failed ({} failure(s) listed above); first: {first}",
            summary.failures.len()
        );
    }
    if let Some((url, remote)) = ship_to {
        super::ship::after_demo(&dir, url, remote, file, out)?;
    }
    let bad = summary.verification.iter().any(|f| f.status == "failed");
    // Nothing usable: no committed file verifies (for a fresh run: none was committed).
    Ok(Status::failed_if(bad || summary.verified == 0))
}

/// Makes sure `dir` exists and is empty (creating it, mode 0700, if missing).
fn prepare_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                let hint = if dir.join(NODE_PUB).exists() {
                    "; to go on where an earlier demo there stopped, pass --resume"
                } else {
                    ""
                };
                bail!(
                    "{} is not empty: the demo starts a fresh ledger and needs a new or empty \
                     directory (it never touches files it did not write){hint}",
                    dir.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", dir.display())),
    }
    Ok(dir.to_path_buf())
}

/// A new directory `snapseal-demo-<pid>-<n>` under the system temp directory.
fn fresh_temp_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for attempt in 0..100u32 {
        let dir = base.join(format!(
            "snapseal-demo-{}-{}",
            std::process::id(),
            nanos.wrapping_add(attempt)
        ));
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("creating {}", dir.display()));
            }
        }
    }
    bail!(
        "could not create a fresh directory under {}",
        base.display()
    )
}

fn run_in(
    dir: &Path,
    s: &DemoSettings,
    survey: Option<&resume::Survey>,
    args: &DemoArgs,
    out: &Out,
) -> anyhow::Result<Summary> {
    // Before the node exists, so every counter the libraries emit lands in it.
    let recorder = args.metrics.then(metrics::install).transpose()?;
    let signing_key = Ledger::seed_key(s.sim.seed);
    let key = signing_key.verifying_key();
    // A fresh run makes node.pub and the log durable before the store exists; a resumed
    // one touches them only under the store's lock (`resume::go_on`).
    let fresh_log = match survey {
        None => {
            keys::write_node_pub(dir, &key)?;
            Some(CommittedLog::create(dir)?)
        }
        Some(_) => None,
    };
    let node_pub = dir.join(NODE_PUB);
    let verifier: Arc<dyn ReceiptVerifier> = Arc::new(Ed25519Verifier::new(vec![key]));
    let tasks = if args.deterministic {
        // Seeded from the demo's seed: which ready job runs first is then fixed too.
        TaskSystem::manual(s.sim.seed)
    } else {
        TaskSystem::threaded(EngineConfig {
            workers: s.workers,
            ..EngineConfig::default()
        })
        .context("starting the task system")?
    };
    let mut store_opts = s.store.options(Arc::clone(&verifier));
    store_opts.chunked = args.chunked;
    let store = Arc::new(
        SnapshotStore::open(Arc::new(RealFs::new()), dir, store_opts)
            .context("opening the snapshot store")?,
    );
    let ledger_path = dir.join(LEDGER_DIR);
    if survey.is_some() {
        // The ledger directory itself must not be a link; its chunk files are opened without
        // following links, regular files only, size capped, and verified against the node's
        // key before anything is replayed (docs/LEDGER.md).
        crate::cli::safe_open::check_subdir(dir, LEDGER_DIR)?;
    }
    let disk_ledger = DiskLedger::open(
        &RealFs::new(),
        &ledger_path,
        signing_key,
        args.ledger_chunk_bytes,
    )
    .with_context(|| format!("opening the ledger in {}", ledger_path.display()))?;
    let (ledger, log, earlier, resumed) = match (survey, fresh_log) {
        (Some(survey), _) => {
            let mut r = resume::go_on(dir, &key, survey, &store, disk_ledger.commit_idx())?;
            let kv = DiskKv::open(disk_ledger, r.snapshot.take())
                .with_context(|| format!("rebuilding the state from {}", ledger_path.display()))?;
            r.info.state_hash = hex(&kv.state_hash());
            info!(
                out,
                "snapseal demo: resuming after idx {} ({} earlier commits logged; {} stale \
                 file(s) removed; recovering from {})",
                r.info.base,
                r.info.earlier_acknowledged,
                r.info.stale_removed,
                r.info
                    .recovered
                    .as_ref()
                    .map_or_else(|| "nothing".to_string(), |p| p.display().to_string())
            );
            (kv, r.log, r.earlier, Some(r.info))
        }
        (None, Some(log)) => {
            let kv = DiskKv::open(disk_ledger, None)
                .with_context(|| format!("starting the ledger in {}", ledger_path.display()))?;
            (kv, log, Vec::new(), None)
        }
        (None, None) => bail!("internal: a fresh run without its committed.log"),
    };
    let log_path = log.path().to_path_buf();
    let mut node = SimNode::with_ledger(
        s.sim.clone(),
        ledger,
        s.snap.clone(),
        tasks.clone(),
        Arc::clone(&store),
    )?;
    let timeline = Arc::new(Mutex::new(Timeline {
        commits: Vec::new(),
        persist: Vec::new(),
        log,
        log_error: None,
        chunked: args.chunked.then(Vec::new),
    }));
    let observed = Arc::clone(&timeline);
    node.set_observer(move |event| {
        let now = Instant::now();
        let mut t = observed.lock();
        match event {
            NodeEvent::Commit(idx) => t.commits.push((idx, now)),
            NodeEvent::Snapshot(SnapshotEvent::Committed(c)) => t.committed(c, now),
            NodeEvent::Snapshot(_) => {}
        }
    });

    let bar = Progress::new(out.bars(), s.sim.txs, Unit::Items, "txs");
    let started = Instant::now();
    while node.step() {
        if args.deterministic {
            // Every serialisation and persist the tx made due runs now, on this thread, so
            // its evidence lands at the same position in every run.
            tasks.tick(DETERMINISTIC_TX_TIME);
            tasks.run_until_idle();
        }
        // Redrawing per tx would cost more than the tx; every 1024 is plenty.
        if node.appended() % 1024 == 0 {
            bar.set_position(node.appended());
        }
    }
    let run_time = started.elapsed();
    drop(bar);
    let spinner = Progress::spinner(out.bars(), "flushing pending snapshots");
    let flush_started = Instant::now();
    let flushed = node.finish(FLUSH_ROUNDS);
    let flush_time = flush_started.elapsed();
    drop(spinner);

    let counters = node.snapshotter().counters();
    let store_stats = node.snapshotter().store().stats();
    let committed = node.committed().to_vec();
    // The ledger's failure first: it stopped the node, and the error line names the first
    // failure. Its text carries the cause with its errno.
    let mut failures: Vec<String> = node
        .ledger_error()
        .map(str::to_string)
        .into_iter()
        .collect();
    failures.extend(node.other_events().iter().filter_map(|e| match e {
        SnapshotEvent::Failed {
            generation,
            idx,
            error,
        } => Some(format!("generation {generation} (idx {idx}): {error}")),
        _ => None,
    }));
    // A failed ledger also ends the flush early; only generations really left are one.
    let pending = node.snapshotter().pending().len();
    if !flushed && pending > 0 {
        failures.push(format!(
            "{pending} generation(s) still pending after the flush ({FLUSH_ROUNDS} rounds at \
             most)"
        ));
    }
    let call_latencies = node.call_latencies().to_vec();
    let txs = node.appended();
    let last_idx = node.ledger().ledger().last_idx();
    // A clean stop: the open chunk becomes a sealed one, so an export reaches the commit
    // index. (A killed run's open chunk, or a failed one's, is recovered when the ledger is
    // next opened; a failed ledger seals nothing, and its failure is listed already.)
    let kv = node.ledger().clone();
    if kv.ledger().failure().is_none() {
        if let Err(e) = kv.ledger().seal() {
            failures.push(format!("sealing the ledger: {e}"));
        }
    }
    let ledger_commit_idx = kv.applied_idx();
    let state_hash = hex(&kv.state_hash());
    drop(kv);
    // The node owns the store; dropping it releases the lock before verification.
    drop(node);
    tasks.shutdown(ShutdownMode::Drain);
    let engine_counters = tasks.counters();

    let (persist_latencies, log_error, chunked) = {
        let mut t = timeline.lock();
        let chunked = t.chunked.take();
        (std::mem::take(&mut t.persist), t.log_error.take(), chunked)
    };
    if let Some(e) = log_error {
        return Err(e);
    }

    let base = resumed.as_ref().map_or(0, |r| r.base);
    let verification = verify_all(dir, &committed, (base, &earlier), &*verifier, out)?;
    let verified = verification.iter().filter(|f| f.status == "ok").count();
    // Snapshot files, and with --chunked the chunk packs' new bytes too.
    let bytes_written: u64 =
        committed.iter().map(|c| c.file_len).sum::<u64>() + store_stats.chunk_bytes_written;
    let latest = committed
        .iter()
        .max_by_key(|c| (c.idx, c.evidence_idx))
        .map(|c| c.path.clone())
        .or_else(|| resumed.as_ref().and_then(|r| r.recovered.clone()));
    let total_secs = (run_time + flush_time).as_secs_f64();
    let mut summary = Summary {
        dir: dir.to_path_buf(),
        resumed,
        node_pub,
        key_id: hex(&key_id(&key)),
        committed_log: log_path,
        txs,
        ledger_last_idx: last_idx,
        ledger_dir: ledger_path,
        ledger_commit_idx,
        state_hash,
        run_secs: run_time.as_secs_f64(),
        flush_secs: flush_time.as_secs_f64(),
        txs_per_sec: rate(txs as f64, run_time.as_secs_f64()),
        snapshots: SnapshotCounts {
            scheduled: counters.scheduled,
            committed: counters.persisted,
            skipped: counters.skipped,
            deferred: counters.deferred,
            dropped: counters.dropped,
            failed: counters.failed,
        },
        bytes_written,
        chunked,
        snapshot_bytes_per_sec: rate(bytes_written as f64, total_secs),
        files_on_disk: verification.len(),
        deleted_by_retention: store_stats.retention_deleted,
        keep_last: s.store.keep_last,
        persist_latency: Percentiles::of(&persist_latencies),
        consensus_call_latency: Percentiles::of(&call_latencies),
        latest,
        verified,
        verification,
        failures,
        metrics: None,
    };
    if let Some(recorder) = &recorder {
        summary.metrics = Some(metrics::render(
            recorder,
            &DemoMetrics {
                txs,
                engine: engine_counters,
                bytes_written,
                files_on_disk: summary.files_on_disk as u64,
                persist_latencies: &persist_latencies,
                call_latencies: &call_latencies,
            },
        ));
    }
    Ok(summary)
}

fn rate(amount: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

/// Verifies every committed file left in `dir` against the node's key, and that each one is
/// a snapshot the node was told about, with the digest it was told. `earlier` is a resumed
/// run's base and the commits earlier runs logged: a file at or below the base comes from an
/// earlier run, and if it was logged its digest must be the logged one (an earlier run may
/// have been stopped after committing a file but before logging it; such a file must still
/// verify).
fn verify_all(
    dir: &Path,
    committed: &[CommittedSnapshot],
    earlier: (u64, &[LogLine]),
    verifier: &dyn ReceiptVerifier,
    out: &Out,
) -> anyhow::Result<Vec<FileResult>> {
    let handle = RealFs::new()
        .open_dir(dir, false)
        .with_context(|| format!("opening {}", dir.display()))?;
    let (files, _) = committed_files(&*handle, dir)?;
    let bar = Progress::new(
        out.bars(),
        files.iter().map(|(_, len)| len).sum(),
        Unit::Bytes,
        "verifying",
    );
    let mut results = Vec::new();
    for (name, len) in &files {
        let path = dir.join(name.file_name());
        let mut verdict = check::check_in_dir(&*handle, name, verifier);
        if let Verdict::Verified { header, .. } = &verdict {
            let (base, logged) = earlier;
            let told = if name.idx <= base && name.evidence_idx <= base {
                // From an earlier run: its log line, if it got that far.
                logged
                    .iter()
                    .find(|l| l.name == *name)
                    .map_or(Some(Told::NotLogged), |l| Some(Told::Digest(l.digest)))
            } else {
                committed
                    .iter()
                    .find(|c| c.path == path)
                    .map(|c| Told::Digest(c.digest))
            };
            let reason = match told {
                None => Some("on disk, but the node was never told it was committed".to_string()),
                Some(Told::Digest(d)) if d != header.body_digest => Some(format!(
                    "body digest {} differs from the committed event's {}",
                    hex(&header.body_digest),
                    hex(&d)
                )),
                Some(_) => None,
            };
            if let Some(reason) = reason {
                verdict = Verdict::Failed {
                    check: snapseal::persist::Check::BodyDigest,
                    reason,
                    standing: snapseal::persist::internals::Standing::Failed,
                };
            }
        }
        results.push(FileResult::new(path, Some(*len), &verdict));
        bar.inc(*len);
    }
    Ok(results)
}

/// What the node was told about a committed file.
enum Told {
    /// Committed with this body digest.
    Digest([u8; 32]),
    /// Nothing: an earlier run committed it and stopped before logging it.
    NotLogged,
}

fn print_summary(s: &Summary, out: &Out) -> anyhow::Result<()> {
    let c = &s.snapshots;
    if let Some(r) = &s.resumed {
        text!(
            out,
            "  resumed          after idx {} ({} earlier commits logged, {} stale file(s) removed, {} quarantined{})",
            r.base,
            r.earlier_acknowledged,
            r.stale_removed,
            r.quarantined,
            if r.log_tail_cut > 0 {
                format!(", unfinished log line of {} bytes cut", r.log_tail_cut)
            } else {
                String::new()
            }
        );
    }
    text!(
        out,
        "  node key         {} (key id {})",
        s.node_pub.display(),
        s.key_id
    );
    text!(
        out,
        "  ledger           {} txs appended; ledger ends at idx {} (signatures and evidence included)",
        s.txs,
        s.ledger_last_idx
    );
    text!(
        out,
        "  ledger on disk   {} (committed to idx {}; state hash there {})",
        s.ledger_dir.display(),
        s.ledger_commit_idx,
        s.state_hash
    );
    text!(
        out,
        "  snapshots        {} committed, {} skipped, {} dropped, {} failed ({} scheduled, {} deferred)",
        c.committed,
        c.skipped,
        c.dropped,
        c.failed,
        c.scheduled,
        c.deferred
    );
    text!(
        out,
        "  bytes written    {} ({} files kept by retention, keep_last {}; {} deleted)",
        output::bytes(s.bytes_written),
        s.files_on_disk,
        s.keep_last,
        s.deleted_by_retention
    );
    if let Some(rows) = &s.chunked {
        text!(
            out,
            "  chunked          bytes written per snapshot (its file + its new chunks):"
        );
        for r in rows {
            text!(
                out,
                "                   idx {}: {} + {}",
                r.idx,
                output::bytes(r.file_bytes),
                output::bytes(r.new_chunk_bytes)
            );
        }
    }
    text!(out, "  persist latency  {}", s.persist_latency.text());
    text!(
        out,
        "                   (from the commit that opens a snapshot's gate to the node seeing it committed)"
    );
    text!(
        out,
        "  consensus calls  {}",
        s.consensus_call_latency.text()
    );
    text!(
        out,
        "  throughput       {:.0} txs/s over {:.2} s (+{:.2} s flushing); {}/s of snapshots",
        s.txs_per_sec,
        s.run_secs,
        s.flush_secs,
        output::bytes(s.snapshot_bytes_per_sec as u64)
    );
    match &s.latest {
        Some(p) => text!(out, "  latest snapshot  {}", p.display()),
        None => text!(out, "  latest snapshot  none committed"),
    }
    text!(out, "  committed log    {}", s.committed_log.display());
    let failed: Vec<&FileResult> = s.verification.iter().filter(|f| f.status != "ok").collect();
    text!(
        out,
        "  verification     {} of {} committed files verify (header, receipt signature, body digest)",
        s.verified,
        s.verification.len()
    );
    for f in failed {
        text!(out, "    {}", f.line());
    }
    for f in &s.failures {
        text!(out, "  FAILED           {f}");
    }
    if let Some(m) = &s.metrics {
        text!(out, "{}", m.trim_end());
    }
    if s.failures.is_empty() && s.verified > 0 {
        info!(
            out,
            "next: snapseal list {d} | snapseal verify {d} | snapseal latest {d}",
            d = s.dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let p = Percentiles::of(&samples);
        assert_eq!(
            (
                p.samples,
                p.p50_us.round(),
                p.p99_us.round(),
                p.max_us.round()
            ),
            (100, 50.0, 99.0, 100.0)
        );
        assert_eq!(Percentiles::of(&[]).samples, 0);
    }

    #[test]
    fn a_non_empty_directory_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("mine.txt"), b"x").unwrap();
        let e = prepare_dir(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("not empty"), "{e}");
        assert!(tmp.path().join("mine.txt").exists());
        let new = tmp.path().join("a/b");
        prepare_dir(&new).unwrap();
        assert!(new.is_dir());
    }
}
