//! `snapseal import --level L [--repopulate] ARCHIVE DIR`: verify an archive and bring its
//! artifacts into a snapshot directory ([`snapseal_archive::import`]): everything is read and
//! verified — each snapshot's receipt, each chunk's signed roots, the chain between the
//! chunks, the snapshots' receipts and the chunks DIR/ledger already holds — before anything
//! gets a committed name; then snapshots go through the store's ingest and chunks into
//! `DIR/ledger` (rename without replacing, directory fsync).
//!
//! It trusts only the keys given (`--key`, or `DIR/node.pub`), never the archive's. Rerunning
//! it after a crash completes it; nothing committed is ever overwritten.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use snapseal::persist::fs::RealFs;
use snapseal::persist::internals::fs::{Expect, Untrusted};
use snapseal::persist::internals::Escaped;
use snapseal::persist::{SnapshotStore, StoreOptions};
use snapseal_archive::{import, Dir, ImportOptions, Target, LEDGER_DIR};
use snapseal_ledger::disk_ledger::ChunkKeys;

use crate::cli::exit::Status;
use crate::cli::export::LevelArg;
use crate::cli::keys::{self, Trusted, NODE_PUB};
use crate::cli::output::{text, Out};
use crate::cli::progress::{Progress, Unit};
use crate::cli::safe_open;

/// An archive is streamed, never read whole; the cap only keeps the size check of the rule.
const ARCHIVE: Expect = Expect::new("archive", 1 << 44);

/// `import` arguments.
#[derive(Debug, Args)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub(crate) struct ImportArgs {
    /// The level the archive must reach; an archive below it is refused before anything is
    /// written (a debug archive imports as archival: its debug/ files are checked, not kept).
    #[arg(long, value_enum)]
    pub level: LevelArg,
    /// Fill the gaps of an existing directory: artifacts already there that the archive does
    /// not hold are fine, an archived chunk overlapping a different existing one is skipped,
    /// and every chunk added must chain with DIR's chunks on each side where DIR holds any.
    /// Without it DIR must be new, empty, or hold only this archive's artifacts (an
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
    /// node.pub, a single given key is written there once the import succeeded (so the other
    /// commands find it).
    #[arg(long = "key", value_name = "K")]
    pub keys: Vec<PathBuf>,
}

/// What `import --json` prints.
#[derive(Debug, Serialize)]
struct ImportSummary {
    #[serde(serialize_with = "crate::cli::output::escaped_path")]
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
    let archive = Untrusted::open_path(&args.archive, ARCHIVE)?;
    let store = SnapshotStore::open(
        std::sync::Arc::new(RealFs::new()),
        &args.dir,
        StoreOptions::new(trusted.verifier()),
    )
    .with_context(|| format!("opening the snapshot store {}", Escaped::path(&args.dir)))?;
    let dir = safe_open::open_dir(&args.dir)?;
    // The ledger directory by the snapshot directory's fd: never through a symbolic link.
    let ledger = dir.open_subdir(LEDGER_DIR, true).with_context(|| {
        format!(
            "opening {} (a directory, not a link)",
            Escaped::path(&args.dir.join(LEDGER_DIR))
        )
    })?;
    let started = std::time::Instant::now();
    let mut src = Counting {
        inner: std::io::BufReader::with_capacity(1 << 16, archive.reader()),
        n: 0,
        bar: Progress::new(out.bars(), archive.len(), Unit::Bytes, "importing"),
    };
    let opts = ImportOptions {
        level,
        trusted_keys: trusted.keys.clone(),
        repopulate: args.repopulate,
    };
    let target = Target {
        store: &store,
        dir: &Dir::from_handle(dir),
        ledger: &Dir::from_handle(ledger),
    };
    let result = import(&mut src, &target, &ChunkKeys(trusted.keys.clone()), &opts);
    drop(src);
    let report = match result {
        Ok(r) => r,
        // The archive does not verify or does not reach the level (exit 1); nothing was
        // committed (a partial import says what stays).
        Err(e) if e.is_refusal() => {
            crate::cli::progress::suspend(|| {
                eprintln!(
                    "error: importing {}: {}",
                    Escaped::path(&args.archive),
                    crate::cli::exit::causes(&e)
                )
            });
            return Ok(Status::Failed);
        }
        Err(e) => {
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("importing {}", Escaped::path(&args.archive)))
        }
    };
    // Written only once the import verified and committed: a refused archive leaves no
    // trust behind.
    if !args.keys.is_empty() && keys::read_node_pub(&args.dir)?.is_none() {
        if let [key] = trusted.keys[..] {
            keys::write_node_pub(&args.dir, &key)?;
        }
    }
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
        Escaped::path(&args.archive),
        Escaped::path(&args.dir),
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
            Escaped::path(&args.dir)
        );
    }
    Ok(Status::Ok)
}
