//! `snapseal ship DIR --to URL [--follow]`: committed snapshots that verify go to object
//! storage, oldest first, each confirmed (size and BLAKE3 read back) before the remote index
//! names it. Also the `--ship-to` step of `snapseal demo`.
//!
//! Takes the store's lock (no node may run on DIR meanwhile; a node ships with the library's
//! `Shipper` beside its own store instead). DIR is checked before the remote is touched, so a
//! typo never creates a remote directory.
//!
//! One-shot (without `--follow`) it stops, exit 2, at the first terminal condition (a
//! read-only or full remote, refused credentials, a hostile remote) and after
//! `--max-attempts` tries of a transient one (default [`ONE_SHOT_ATTEMPTS`]), each retry
//! logged; `--follow` retries transient errors forever unless given `--max-attempts`.
//! Errors print each cause once, escaped ([`ship_error`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use parking_lot::Mutex;
use serde::Serialize;
use snapseal::persist::fs::{FileSystem, RealFs};
use snapseal::persist::{SnapshotName, SnapshotStore};
use snapseal_ship::{
    describe, Remote, RemoteOptions, ShipConfig, ShipError, ShipEvent, ShipStats, Shipper,
};

use crate::cli::config::FileConfig;
use crate::cli::exit::Status;
use crate::cli::keys::Trusted;
use crate::cli::output::{self, text, Out};
use crate::cli::progress::{Progress, Unit};

/// How a remote is reached: shared by `ship`, `restore` and `remote`.
#[derive(Debug, Args)]
pub(crate) struct RemoteArgs {
    /// A store option as KEY=VALUE (e.g. aws_endpoint=http://127.0.0.1:5055,
    /// aws_allow_http=true); may be repeated. For s3:// the AWS_* environment variables are
    /// read first (credentials, region, endpoint).
    #[arg(long = "remote-opt", value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub remote_opts: Vec<(String, String)>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

/// Attempts a one-shot `ship` makes of a transient failure before it gives up.
pub(super) const ONE_SHOT_ATTEMPTS: u32 = 5;

/// A library error for the binary: its message and every cause on one line, each once
/// (`anyhow`'s `{:#}` would print a cause both inside its parent's text and on its own).
pub(super) fn ship_error(e: ShipError) -> anyhow::Error {
    anyhow::Error::msg(describe(&e))
}

/// Opens the remote `url` (`file:///abs/dir` or `s3://bucket/prefix`).
pub(super) fn open_remote(url: &str, args: &RemoteArgs) -> anyhow::Result<Arc<Remote>> {
    let mut opts = RemoteOptions::default();
    opts.options = args.remote_opts.clone();
    Ok(Arc::new(
        Remote::open(url, &opts)
            .map_err(ship_error)
            .with_context(|| format!("opening remote {url}"))?,
    ))
}

/// `ship` arguments.
#[derive(Debug, Args)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub(crate) struct ShipArgs {
    /// The snapshot directory.
    pub dir: PathBuf,
    /// Where to: file:///abs/dir (a local directory) or s3://bucket[/prefix].
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// This node's name on the remote (1 to 64 of [A-Za-z0-9._-]).
    #[arg(long, default_value = "default")]
    pub node: String,
    /// Keep shipping new snapshots as they are committed, a pass every --poll seconds, until
    /// interrupted or a terminal error.
    #[arg(long)]
    pub follow: bool,
    /// Seconds between passes with --follow (1 to 86400).
    #[arg(long, default_value_t = 2, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub poll: u64,
    /// Files uploaded at the same time, 1 to 256 (default: half the CPUs, at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: Option<u16>,
    /// Give up after this many tries of a transient failure, 1 to 1000000 (default: 5; with
    /// --follow, retry forever). Terminal failures (read-only or full remote, refused
    /// credentials) are never retried.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_attempts: Option<u32>,
    /// Trusted public key file (as node.pub); may be repeated. Default: DIR/node.pub. Only
    /// files that verify are shipped.
    #[arg(long = "key", value_name = "K")]
    pub keys: Vec<PathBuf>,
    /// How the remote is reached.
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Serialize)]
struct Report {
    dir: PathBuf,
    to: String,
    node: String,
    shipped: Vec<String>,
    uploaded: Vec<String>,
    skipped: Vec<String>,
    bytes: u64,
    retries: u64,
    released_unshipped: u64,
    queue_depth: u64,
}

/// Runs `ship`.
pub(super) fn run(args: &ShipArgs, file: &FileConfig, out: &Out) -> anyhow::Result<Status> {
    // The source first: a missing DIR must not leave a remote directory behind.
    check_source(&args.dir)?;
    let trusted = Trusted::load(&args.keys, &args.dir)?;
    let remote = open_remote(&args.to, &args.remote)?;
    let mut config = ShipConfig::new(args.node.clone());
    if let Some(n) = args.concurrency {
        config.concurrency = usize::from(n);
    }
    config.max_attempts = match (args.max_attempts, args.follow) {
        (Some(n), _) => Some(n),
        (None, true) => None,
        (None, false) => Some(ONE_SHOT_ATTEMPTS),
    };
    let shipper = shipper(&args.dir, remote, config, &trusted, file, out)?;
    let report = if args.follow {
        let stop = AtomicBool::new(false);
        // Runs until interrupted (the process ends) or a terminal error.
        shipper
            .follow(Duration::from_secs(args.poll), &stop)
            .map_err(ship_error)
            .context("shipping")?;
        snapseal_ship::ShipReport::default()
    } else {
        shipper
            .ship_pending()
            .map_err(ship_error)
            .context("shipping")?
    };
    let stats = shipper.stats();
    let names = |v: &[snapseal::persist::SnapshotName]| v.iter().map(|n| n.file_name()).collect();
    let report = Report {
        dir: args.dir.clone(),
        to: args.to.clone(),
        node: args.node.clone(),
        shipped: names(&report.shipped),
        uploaded: names(&report.uploaded),
        skipped: names(&report.skipped),
        bytes: report.bytes,
        retries: stats.retries,
        released_unshipped: stats.released_unshipped,
        queue_depth: stats.queue_depth,
    };
    out.json(&report)?;
    print_text(&report, &stats, out)?;
    Ok(Status::failed_if(!report.skipped.is_empty()))
}

/// Refuses a snapshot directory that does not exist (opening the store would create it).
fn check_source(dir: &Path) -> anyhow::Result<()> {
    RealFs::new()
        .open_dir(dir, false)
        .with_context(|| format!("opening snapshot directory {}", dir.display()))?;
    Ok(())
}

/// Opens the store in `dir` and a shipper for it, with a byte progress bar over the queue.
fn shipper(
    dir: &Path,
    remote: Arc<Remote>,
    config: ShipConfig,
    trusted: &Trusted,
    file: &FileConfig,
    out: &Out,
) -> anyhow::Result<Shipper> {
    let store = SnapshotStore::open(
        Arc::new(RealFs::new()),
        dir,
        file.store.options(trusted.verifier()),
    )
    .context("opening the snapshot store")?;
    let total: u64 = store
        .list()
        .context("listing the snapshot store")?
        .iter()
        .filter(|e| e.name.state == snapseal::persist::FileState::Committed)
        .map(|e| e.len)
        .sum();
    let bar = Progress::new(out.bars(), total, Unit::Bytes, "shipping");
    // Bytes already counted for files still in flight (uploads in parts report as they go).
    let counted: Mutex<HashMap<SnapshotName, u64>> = Mutex::new(HashMap::new());
    let shipper = Shipper::new(remote, Arc::new(store), config)
        .map_err(ship_error)
        .context("starting the shipper")?;
    Ok(shipper.with_events(Box::new(move |e| {
        let mut counted = counted.lock();
        match e {
            ShipEvent::Progress { name, sent, .. } => {
                let before = counted.insert(*name, *sent).unwrap_or(0);
                bar.inc(sent.saturating_sub(before));
            }
            ShipEvent::Shipped { name, bytes, .. } => {
                let before = counted.remove(name).unwrap_or(0);
                bar.inc(bytes.saturating_sub(before));
            }
            _ => {}
        }
    })))
}

fn print_text(r: &Report, stats: &ShipStats, out: &Out) -> anyhow::Result<()> {
    text!(
        out,
        "shipped {} snapshot(s) ({}) from {} to {} as node {} ({} uploaded, {} already there)",
        r.shipped.len(),
        output::bytes(r.bytes),
        r.dir.display(),
        r.to,
        r.node,
        r.uploaded.len(),
        r.shipped.len() - r.uploaded.len()
    );
    for s in &r.skipped {
        text!(out, "  skipped (does not verify, or gone): {s}");
    }
    if stats.retries > 0 || stats.released_unshipped > 0 {
        text!(
            out,
            "  {} transient error(s) retried, {} unshipped snapshot(s) released to local retention",
            stats.retries,
            stats.released_unshipped
        );
    }
    Ok(())
}

/// `demo --ship-to URL`: ships the demo's directory once it is done (node name `demo`) to
/// `remote`, which the demo opened before its run.
pub(super) fn after_demo(
    dir: &Path,
    url: &str,
    remote: Arc<Remote>,
    file: &FileConfig,
    out: &Out,
) -> anyhow::Result<()> {
    let trusted = Trusted::load(&[], dir)?;
    let mut config = ShipConfig::new("demo");
    config.max_attempts = Some(ONE_SHOT_ATTEMPTS);
    let shipper = shipper(dir, remote, config, &trusted, file, out)?;
    let report = shipper
        .ship_pending()
        .map_err(ship_error)
        .context("shipping the demo's snapshots")?;
    output::info!(
        out,
        "shipped {} snapshot(s) ({}) to {url} as node demo",
        report.shipped.len(),
        output::bytes(report.bytes)
    );
    Ok(())
}
