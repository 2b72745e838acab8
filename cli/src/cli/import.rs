//! `snapseal import --level L [--repopulate] ARCHIVE DIR`: verify an archive
//! ([`snapseal_archive::import`]) and bring its artifacts into a snapshot directory: snapshots
//! through the store's ingest (receipt verified, pending, fsync, rename without replace),
//! chunks into `DIR/ledger` (verified against the signed roots, the same sequence).
//!
//! It trusts only the keys given (`--key`, or `DIR/node.pub`), never the archive's. Rerunning
//! it after a crash completes it; nothing committed is ever overwritten.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use snapseal::persist::fs::{FileSystem, RealFs};
use snapseal::persist::{SnapshotStore, StoreOptions};
use snapseal_archive::{import, ImportError, ImportOptions, LEDGER_DIR};
use snapseal_sim::disk_ledger::ChunkKeys;

use crate::cli::exit::Status;
use crate::cli::export::LevelArg;
use crate::cli::keys::{self, Trusted, NODE_PUB};
use crate::cli::output::{text, Out};
use crate::cli::progress::{Progress, Unit};
use crate::cli::safe_open::{self, Access, Limit};

/// An archive is streamed, never read whole; the cap only keeps the size check of the rule.
const ARCHIVE: Limit = Limit {
    what: "archive",
    max_bytes: 1 << 44,
};

/// `import` arguments.
#[derive(Debug, Args)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub(crate) struct ImportArgs {
    /// The level the archive must reach; an archive below it is refused before anything is
    /// written (a debug archive imports as archival: its debug/ files are checked, not kept).
    #[arg(long, value_enum)]
    pub level: LevelArg,
    /// Fill the gaps of an existing directory: artifacts already there that the archive does
    /// not hold are fine, and an archived chunk overlapping a different existing one is
    /// skipped. Without it DIR must be new, empty, or hold only this archive's artifacts (an
    /// interrupted earlier run).
    #[arg(long)]
    pub repopulate: bool,
    /// The archive (a tar stream `snapseal export` wrote). A regular file; a symbolic link is
    /// refused.
    pub archive: PathBuf,
    /// The snapshot directory (created if missing); chunks go to DIR/ledger.
    pub dir: PathBuf,
    /// Trusted public key file (hex Ed25519 key per line); may be repeated. Default:
    /// DIR/node.pub. Every key the archive carries must be one of these. When DIR has no
    /// node.pub, the given keys are written there (so the other commands find them).
    #[arg(long = "key", value_name = "K")]
    pub keys: Vec<PathBuf>,
}

/// What `import --json` prints.
#[derive(Debug, Serialize)]
struct ImportSummary {
    dir: PathBuf,
    level: Option<&'static str>,
    snapshot_idx: u64,
    commit_idx: u64,
    snapshots_committed: Vec<String>,
    snapshots_present: Vec<String>,
    chunks_committed: Vec<String>,
    chunks_present: Vec<String>,
    chunks_skipped: Vec<String>,
    bytes: u64,
    secs: f64,
}

/// Reads through and moves the bar.
struct Counting<R> {
    inner: R,
    n: u64,
    bar: Progress,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        self.bar.set_position(self.n);
        Ok(k)
    }
}

/// Runs `import`.
pub(super) fn run(args: &ImportArgs, out: &Out) -> anyhow::Result<Status> {
    let level = args.level.level();
    let trusted = Trusted::load(&args.keys, &args.dir)?;
    let (parent, name) = match (args.archive.parent(), args.archive.file_name()) {
        (Some(p), Some(n)) => (
            if p.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                p
            },
            n.to_string_lossy().into_owned(),
        ),
        _ => anyhow::bail!("{}: not a file path", args.archive.display()),
    };
    let Some((file, len)) = safe_open::open_in_dir(parent, &name, Access::Read, ARCHIVE)? else {
        anyhow::bail!("{}: no such file", args.archive.display());
    };
    let fs = RealFs::new();
    let store = SnapshotStore::open(
        std::sync::Arc::new(RealFs::new()),
        &args.dir,
        StoreOptions::new(trusted.verifier()),
    )
    .with_context(|| format!("opening the snapshot store {}", args.dir.display()))?;
    safe_open::check_subdir(&args.dir, LEDGER_DIR)?;
    let ledger_path = args.dir.join(LEDGER_DIR);
    let ledger = fs
        .open_dir(&ledger_path, true)
        .with_context(|| format!("opening {}", ledger_path.display()))?;
    if !args.keys.is_empty() && keys::read_node_pub(&args.dir)?.is_none() {
        if let [key] = trusted.keys[..] {
            keys::write_node_pub(&args.dir, &key)?;
        }
    }
    let started = std::time::Instant::now();
    let mut src = Counting {
        inner: std::io::BufReader::with_capacity(1 << 16, file),
        n: 0,
        bar: Progress::new(out.bars(), len, Unit::Bytes, "importing"),
    };
    let opts = ImportOptions {
        level,
        trusted_keys: trusted.keys.clone(),
        repopulate: args.repopulate,
    };
    let report = match import(
        &mut src,
        &store,
        &*ledger,
        &ChunkKeys(trusted.keys.clone()),
        &opts,
    ) {
        Ok(r) => r,
        Err(e) => {
            drop(src);
            return match e {
                ImportError::Conflict(_) | ImportError::Io { .. } => Err(anyhow::Error::new(e))
                    .with_context(|| format!("importing {}", args.archive.display())),
                // The archive does not verify or does not reach the level (exit 1); what
                // verified before stays committed, and rerunning completes nothing more.
                e => {
                    crate::cli::progress::suspend(|| {
                        eprintln!("error: importing {}: {e}", args.archive.display())
                    });
                    Ok(Status::Failed)
                }
            };
        }
    };
    drop(src);
    let summary = ImportSummary {
        dir: args.dir.clone(),
        level: report.level.map(|l| l.name()),
        snapshot_idx: report.snapshot_idx,
        commit_idx: report.commit_idx,
        snapshots_committed: report.snapshots_committed,
        snapshots_present: report.snapshots_present,
        chunks_committed: report.chunks_committed,
        chunks_present: report.chunks_present,
        chunks_skipped: report.chunks_skipped,
        bytes: report.bytes,
        secs: started.elapsed().as_secs_f64(),
    };
    out.json(&summary)?;
    text!(
        out,
        "imported {} into {} at level {}: snapshot at idx {}, ledger to idx {}; {} snapshot(s) and {} chunk(s) committed, {} and {} already there, {} chunk(s) skipped; {} bytes in {:.2} s",
        args.archive.display(),
        args.dir.display(),
        summary.level.unwrap_or("?"),
        summary.snapshot_idx,
        summary.commit_idx,
        summary.snapshots_committed.len(),
        summary.chunks_committed.len(),
        summary.snapshots_present.len(),
        summary.chunks_present.len(),
        summary.chunks_skipped.len(),
        summary.bytes,
        summary.secs
    );
    if keys::read_node_pub(&args.dir)?.is_none() {
        text!(
            out,
            "  note: {} has no {NODE_PUB}; pass --key to the other commands",
            args.dir.display()
        );
    }
    Ok(Status::Ok)
}
