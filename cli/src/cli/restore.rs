//! `snapseal restore --from URL DIR`: the newest remote snapshot that verifies against the
//! trusted keys, brought into DIR through the store's ingest (verified completely before it
//! gets a committed name), falling back to older ones.
//!
//! What it prints is true: "already there" only when a file that verifies holds the name; a
//! newer snapshot this machine failed to store (an I/O error, a file that does not verify
//! holding its name) is named, and then the command exits 2 even though an older one was
//! restored.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use snapseal::persist::fs::RealFs;
use snapseal::persist::SnapshotStore;
use snapseal_ship::{restore, RestoreOptions, ShipError};

use crate::cli::config::FileConfig;
use crate::cli::exit::Status;
use crate::cli::keys::Trusted;
use crate::cli::output::{self, text, Out};
use crate::cli::progress::{Progress, Unit};
use crate::cli::ship::{open_remote, ship_error, RemoteArgs};

/// `restore` arguments.
#[derive(Debug, Args)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub(crate) struct RestoreArgs {
    /// Where from: file:///abs/dir or s3://bucket[/prefix].
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The snapshot directory to restore into (created if missing; snapshots already there
    /// are kept).
    pub dir: PathBuf,
    /// Only this node's snapshots (default: any node's).
    #[arg(long)]
    pub node: Option<String>,
    /// The largest snapshot file accepted, in bytes (1 to 2^62; default 64 GiB): a larger
    /// object is refused by its size, before a byte of it is read.
    #[arg(long, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..=1 << 62))]
    pub max_file_bytes: Option<u64>,
    /// Another remote to take a chunked snapshot's chunks from (the same node's chunk
    /// objects there), tried in turn after --from, each chunk checked against its hash; may
    /// be repeated. Reached with the same remote options as --from.
    #[arg(long = "chunk-source", value_name = "URL")]
    pub chunk_sources: Vec<String>,
    /// Trusted public key file (as node.pub); may be repeated. Default: DIR/node.pub.
    #[arg(long = "key", value_name = "K")]
    pub keys: Vec<PathBuf>,
    /// How the remote is reached.
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Serialize)]
struct Report {
    from: String,
    dir: PathBuf,
    restored: String,
    node: String,
    written: bool,
    passed_over: Vec<String>,
    failed_locally: Vec<String>,
    listed: bool,
    /// The snapshot a node starting in DIR now recovers from.
    latest: Option<String>,
}

/// Runs `restore`.
pub(super) fn run(args: &RestoreArgs, file: &FileConfig, out: &Out) -> anyhow::Result<Status> {
    let trusted = Trusted::load(&args.keys, &args.dir)?;
    let remote = open_remote(&args.from, &args.remote)?;
    let mut opts = RestoreOptions::default();
    for url in &args.chunk_sources {
        opts = opts.with_chunk_source(open_remote(url, &args.remote)?);
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let store = SnapshotStore::open(
        Arc::new(RealFs::new()),
        &args.dir,
        file.store.options(trusted.verifier()),
    )
    .context("opening the snapshot store")?;
    opts.node = args.node.clone();
    if let Some(max) = args.max_file_bytes {
        opts.max_file_bytes = max;
    }
    // A byte bar over the candidate being fetched (its size is known once it starts).
    let bar = Arc::new(Progress::new(out.bars(), 0, Unit::Bytes, "restoring"));
    let shown = Arc::clone(&bar);
    opts.progress = Some(Arc::new(move |_, done, total| {
        shown.set_length(total);
        shown.set_position(done);
    }));
    let restored = restore(&remote, &store, &opts);
    opts.progress = None;
    drop(bar);
    let restored = match restored {
        Ok(r) => r,
        Err(ShipError::NothingRestored {
            url,
            passed_over,
            failed_locally,
        }) => {
            for p in &passed_over {
                output::info!(out, "  refused: {p}");
            }
            for p in &failed_locally {
                output::info!(out, "  failed here: {p}");
            }
            bail!(
                "restoring: remote {url}: no snapshot restored ({} refused, {} failed here)",
                passed_over.len(),
                failed_locally.len()
            );
        }
        Err(e) => return Err(ship_error(e).context("restoring")),
    };
    let latest = store
        .latest()
        .context("checking the restored directory")?
        .map(|f| f.name().file_name());
    let report = Report {
        from: args.from.clone(),
        dir: args.dir.clone(),
        restored: restored.name.file_name(),
        node: restored.node.clone(),
        written: restored.written,
        passed_over: restored.passed_over.clone(),
        failed_locally: restored.failed_locally.clone(),
        listed: restored.listed,
        latest,
    };
    out.json(&report)?;
    text!(
        out,
        "restored {} (node {}) into {}{}",
        report.restored,
        report.node,
        report.dir.display(),
        if report.written {
            ""
        } else {
            " (already there)"
        }
    );
    for p in &report.passed_over {
        text!(out, "  passed over: {p}");
    }
    for p in &report.failed_locally {
        text!(out, "  NOT restored, failed here: {p}");
    }
    if let Some(l) = &report.latest {
        text!(
            out,
            "  a node starting in {} recovers from {l}",
            report.dir.display()
        );
    }
    if !report.failed_locally.is_empty() {
        bail!(
            "restoring: {} newer snapshot(s) could not be stored in {} (see above); the older {} was restored instead",
            report.failed_locally.len(),
            report.dir.display(),
            report.restored
        );
    }
    Ok(Status::failed_if(report.latest.is_none()))
}
