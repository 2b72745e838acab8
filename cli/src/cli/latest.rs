//! `snapseal latest DIR`: which snapshot a node starting now would recover from, and why each
//! newer file was passed over.
//!
//! Read-only by default: it asks the store's own planner (`plan_latest`, the selection
//! `SnapshotStore::latest` carries out) and reports the failing ones as those a node would
//! quarantine. `--repair` opens the store (its lock; stale uncommitted files are removed) and
//! lets `SnapshotStore::latest` quarantine them for real.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use snapseal::persist::fs::{FileSystem, RealFs};
use snapseal::persist::internals::fs::DirHandle;
use snapseal::persist::internals::{
    classify_dir, plan_latest, LatestPlan, ListedEntry, PassOverReason,
};
use snapseal::persist::{FileState, SnapshotName, SnapshotStore, StoreError};

use crate::cli::check;
use crate::cli::config::FileConfig;
use crate::cli::exit::Status;
use crate::cli::keys::Trusted;
use crate::cli::output::{self, text, Escaped, Out};
use crate::cli::progress::Progress;

/// `latest` arguments.
#[derive(Debug, Args)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub(crate) struct LatestArgs {
    /// The snapshot directory.
    pub dir: PathBuf,
    /// Trusted public key file (as node.pub); may be repeated. Default: DIR/node.pub.
    /// A regular file of at most 64 KiB; a symbolic link is refused (give the target's path).
    #[arg(long = "key", value_name = "K")]
    pub keys: Vec<PathBuf>,
    /// Act as a starting node: take the store's lock (removing stale uncommitted files) and
    /// quarantine committed files that fail verification (rename to `.corrupt`).
    #[arg(long)]
    pub repair: bool,
}

/// The snapshot a node would start from.
#[derive(Debug, Serialize)]
struct Chosen {
    #[serde(serialize_with = "output::escaped_path")]
    file: PathBuf,
    idx: u64,
    evidence_idx: u64,
    sig_idx: u64,
    signer: String,
    size: u64,
}

/// A file newer than the chosen one, and why it was not chosen.
#[derive(Debug, Serialize)]
struct PassedOver {
    #[serde(serialize_with = "output::escaped_path")]
    file: PathBuf,
    state: &'static str,
    reason: String,
    /// What a node does with it: `quarantine`, `remove at open` or `none`.
    node_action: &'static str,
}

#[derive(Debug, Serialize)]
struct Report {
    #[serde(serialize_with = "output::escaped_path")]
    dir: PathBuf,
    latest: Option<Chosen>,
    passed_over: Vec<PassedOver>,
    repaired: bool,
    /// Files moved to quarantine by --repair.
    quarantined: Vec<String>,
    /// Stale uncommitted files removed by --repair.
    stale_removed: u64,
}

/// Runs `latest`.
pub(super) fn run(args: &LatestArgs, file: &FileConfig, out: &Out) -> anyhow::Result<Status> {
    let trusted = Trusted::load(&args.keys, &args.dir)?;
    let verifier = trusted.verifier();
    let fs = Arc::new(RealFs::new());
    // Opening the store would create a missing directory: refuse first. Files are read with
    // `pread`, never mapped: without --repair no lock is held, and a file truncated meanwhile
    // by another process must be a read error, not SIGBUS.
    let dir = fs
        .open_dir(&args.dir, false)
        .with_context(|| format!("opening snapshot directory {}", Escaped::path(&args.dir)))?;
    let mut report = Report {
        dir: args.dir.clone(),
        latest: None,
        passed_over: Vec::new(),
        repaired: args.repair,
        quarantined: Vec::new(),
        stale_removed: 0,
    };
    // With --repair, the store's lock is held from here on, so the plan below and the
    // store's own pass see the same directory.
    let store = if args.repair {
        let opts = file.store.options(Arc::clone(&verifier));
        Some(SnapshotStore::open(fs, &args.dir, opts).context("opening the snapshot store")?)
    } else {
        None
    };
    let before = snapshot_files(&*dir, &args.dir)?;
    // Hashing a large body takes a while; a spinner says something is happening.
    let spinner = Progress::spinner(out.bars(), "verifying newest first");
    // The store's own selection, made read-only: what `SnapshotStore::latest` would do.
    let plan = match plan_latest(&*dir, &*verifier) {
        Ok(plan) => plan,
        Err(StoreError::Io { path, source, .. }) => bail!(
            "reading {}: {} (a node starting here would stop with this I/O error)",
            Escaped::path(&path),
            check::io_reason(&source)
        ),
        Err(e) => return Err(e).context("planning the recovery"),
    };
    report_plan(&plan, &args.dir, &mut report);
    if let Some(store) = &store {
        report.stale_removed = store.stats().stale_removed;
        let picked = store.latest().context("recovering the latest snapshot")?;
        let after = snapshot_files(&*dir, &args.dir)?;
        report.quarantined = before
            .iter()
            .filter(|n| n.state == FileState::Committed)
            .filter(|n| after.contains(&n.with_state(FileState::Corrupt)))
            .filter(|n| !after.contains(n))
            .map(|n| n.file_name())
            .collect();
        let agreed = match (&picked, &report.latest) {
            (Some(p), Some(c)) => p.path() == c.file,
            (None, None) => true,
            _ => false,
        };
        if !agreed {
            // The directory changed under us (should not happen: we hold the lock).
            let shown = |p: Option<&std::path::Path>| {
                p.map_or_else(|| "nothing".to_string(), |p| Escaped::path(p).to_string())
            };
            bail!(
                "the store picked {} but the plan found {}",
                shown(picked.as_ref().map(|p| p.path())),
                shown(report.latest.as_ref().map(|c| c.file.as_path()))
            );
        }
    }
    drop(spinner);
    out.json(&report)?;
    print_text(&report, out, args)?;
    Ok(Status::failed_if(report.latest.is_none()))
}

/// Our regular snapshot files, oldest first.
fn snapshot_files(dir: &dyn DirHandle, path: &Path) -> anyhow::Result<Vec<SnapshotName>> {
    let listed = classify_dir(dir).with_context(|| format!("listing {}", Escaped::path(path)))?;
    Ok(listed
        .iter()
        .filter_map(ListedEntry::snapshot)
        .map(|e| e.name)
        .collect())
}

/// The plan in the report's words.
fn report_plan(plan: &LatestPlan, path: &Path, report: &mut Report) {
    report.latest = plan.chosen.as_ref().map(|f| Chosen {
        file: f.path().to_path_buf(),
        idx: f.header().idx,
        evidence_idx: f.header().evidence_idx,
        sig_idx: f.receipt().sig_idx,
        signer: f.receipt().signer.clone(),
        size: f.file_len(),
    });
    for p in &plan.passed_over {
        let (state, reason, node_action) = match &p.reason {
            PassOverReason::Uncommitted => (
                "uncommitted",
                "not committed: being written, or stale after a crash".to_string(),
                "remove at open",
            ),
            PassOverReason::Quarantined => (
                "corrupt",
                "quarantined earlier (failed verification)".to_string(),
                "none",
            ),
            PassOverReason::Pending => (
                "pending",
                "a spilled body waiting for its proof, not a snapshot".to_string(),
                "remove at open",
            ),
            PassOverReason::Untrusted(e) => (
                "committed",
                format!(
                    "{}: a node skips it but leaves it in place (a wrong trusted key \
                     set must not destroy good snapshots)",
                    check::reason(e)
                ),
                "none",
            ),
            PassOverReason::Failed(e) => (
                "committed",
                format!("fails verification: {}", check::reason(e)),
                "quarantine",
            ),
            PassOverReason::NotRegular(e) => ("committed", check::reason(e), "none"),
            // Deleted between listing and reading: nothing to report.
            _ => continue,
        };
        report.passed_over.push(PassedOver {
            file: path.join(&p.file_name),
            state,
            reason,
            node_action,
        });
    }
}

fn print_text(r: &Report, out: &Out, args: &LatestArgs) -> anyhow::Result<()> {
    match &r.latest {
        Some(c) => text!(
            out,
            "latest: {} (idx {}, evidence {}, signature {}, signer {}, {})",
            Escaped::path(&c.file),
            c.idx,
            c.evidence_idx,
            c.sig_idx,
            c.signer,
            output::bytes(c.size)
        ),
        None => text!(
            out,
            "no usable snapshot in {}: a node starting here would start from scratch",
            Escaped::path(&r.dir)
        ),
    }
    if !r.passed_over.is_empty() {
        text!(out, "passed over (newest first):");
        for p in &r.passed_over {
            text!(out, "  {}: {}", Escaped::path(&p.file), p.reason);
        }
    }
    let to_quarantine = r
        .passed_over
        .iter()
        .filter(|p| p.node_action == "quarantine")
        .count();
    if args.repair {
        for q in &r.quarantined {
            text!(out, "quarantined: {q} -> {q}.corrupt");
        }
        if r.stale_removed > 0 {
            text!(out, "removed {} stale uncommitted file(s)", r.stale_removed);
        }
    } else if to_quarantine > 0 {
        text!(
            out,
            "a node starting here would quarantine the {to_quarantine} failing file(s) \
             (rename to .corrupt); `snapseal latest --repair {}` does that now",
            Escaped::path(&r.dir)
        );
    }
    Ok(())
}
