//! `snapseal gc DIR [--keep-last N] [--key K] [--dry-run]`: retention and stale-file cleanup,
//! with the plan printed before anything is removed.
//!
//! Retention counts only snapshots that verify, so gc needs the trusted keys (`--key`, default
//! `node.pub` in the directory): junk or bit rot under a committed name never pushes a good
//! snapshot out, and the newest snapshot that verifies is never deleted. Committed files found
//! failing on the way are quarantined (`.corrupt`, bounded by `max_quarantined`), as a node's
//! `latest()` would.
//!
//! The real run opens the store (its exclusive lock: no node may be running on the directory),
//! which removes stale uncommitted files and trims the quarantine, then applies retention
//! through the store's own `retention_plan` / `apply_retention`. `--dry-run` takes no lock and
//! changes nothing (it verifies the files the plan depends on, reading them with `pread`: a
//! file another process truncates meanwhile is "not verifiable", never `SIGBUS`). Only
//! snapseal's own file names are ever removed.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use snapseal::persist::fs::RealFs;
use snapseal::persist::internals::{classify_dir, ListedEntry};
use snapseal::persist::{FileState, SnapshotEntry, SnapshotName, SnapshotStore};

use crate::cli::config::FileConfig;
use crate::cli::exit::Status;
use crate::cli::keys::Trusted;
use crate::cli::output::{self, text, Escaped, Out};
use crate::cli::retention;
use crate::cli::safe_open;

/// `gc` arguments.
#[derive(Debug, Args)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub(crate) struct GcArgs {
    /// The snapshot directory.
    pub dir: PathBuf,
    /// Committed snapshots to keep, newest first, 1 ..= 1000000 (default: \[store\]
    /// keep_last, else 5).
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u64>,
    /// Also drop the oldest kept snapshots while the kept total is over this many bytes,
    /// 1 ..= 9223372036854775807 (never the newest; default: \[store\] max_bytes, else no
    /// limit).
    #[arg(long, value_name = "BYTES")]
    pub max_bytes: Option<u64>,
    /// Trusted public key file (hex Ed25519 key per line, as the demo's node.pub); may be
    /// repeated. Default: node.pub in the directory. Retention counts only snapshots that
    /// verify.
    #[arg(long = "key", value_name = "K")]
    pub keys: Vec<PathBuf>,
    /// Print the plan and change nothing (takes no lock).
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    #[serde(serialize_with = "output::escaped_path")]
    dir: PathBuf,
    dry_run: bool,
    keep_last: usize,
    max_bytes: Option<u64>,
    /// Stale uncommitted and pending files (removed, or to be removed).
    stale: Vec<String>,
    /// Committed snapshots retention keeps, newest first.
    keep: Vec<String>,
    /// Committed snapshots retention deletes, oldest first.
    delete: Vec<String>,
    /// Bytes the deletions free.
    delete_bytes: u64,
    /// What was actually deleted (empty on a dry run).
    deleted: Vec<String>,
    /// Bytes actually freed.
    freed_bytes: u64,
    /// Planned deletions spared by a hold.
    spared: Vec<String>,
    /// Committed files that fail verification: quarantined (or to be).
    quarantine: Vec<String>,
    /// Committed files that could not be verified either way (unreadable, or signed by a key
    /// outside the trusted set): left in place, not counted.
    unverified: Vec<String>,
    /// Quarantined files deleted to keep the quarantine within its bound (real run only).
    quarantine_deleted: Vec<String>,
}

fn names(entries: &[SnapshotEntry]) -> Vec<String> {
    entries.iter().map(|e| e.name.file_name()).collect()
}

/// Runs `gc`.
pub(super) fn run(args: &GcArgs, file: &FileConfig, out: &Out) -> anyhow::Result<Status> {
    let settings = file.store.with_flags(args.keep_last, args.max_bytes)?;
    // The store would create a missing directory; gc must not. Without the store's lock (the
    // dry run, and this listing before the store is opened) files are read with `pread`.
    let dir = safe_open::open_dir(&args.dir)?;
    let trusted = Trusted::load(&args.keys, &args.dir)?;
    // Regular files under our names only, snapshot files sorted by name and pending ones by
    // (idx, generation): persist's classification, as the store makes it.
    let listed =
        classify_dir(&*dir).with_context(|| format!("listing {}", Escaped::path(&args.dir)))?;
    let in_state = |state| -> Vec<SnapshotEntry> {
        listed
            .iter()
            .filter_map(ListedEntry::snapshot)
            .filter(|e| e.name.state == state)
            .collect()
    };
    // Pending (spilled body) files are removed with the stale ones when the store opens.
    let mut stale = names(&in_state(FileState::Uncommitted));
    stale.extend(
        listed
            .iter()
            .filter_map(ListedEntry::pending)
            .map(|p| p.name.file_name()),
    );
    let mut report = Report {
        dir: args.dir.clone(),
        dry_run: args.dry_run,
        keep_last: settings.keep_last,
        max_bytes: settings.max_bytes,
        stale,
        ..Report::default()
    };
    if args.dry_run {
        let plan = retention::plan_verified(
            &in_state(FileState::Committed),
            settings.keep_last,
            settings.max_bytes,
            &*dir,
            &*trusted.verifier(),
        );
        report.keep = names(&plan.keep);
        report.delete = names(&plan.delete);
        report.delete_bytes = plan.delete.iter().map(|e| e.len).sum();
        report.quarantine = names(&plan.quarantine);
        report.unverified = names(&plan.unverified);
    } else {
        let opts = settings.options(trusted.verifier());
        // The store maps the files it verifies: it holds the directory's lock, and never
        // changes a committed file in place.
        let store = SnapshotStore::open(Arc::new(RealFs::new()), &args.dir, opts)
            .context("opening the snapshot store")?;
        // The names come from the listing taken before the lock; keep them only if the
        // store removed exactly those (nothing raced in between).
        let removed = store.stats().stale_removed;
        if removed != report.stale.len() as u64 {
            report.stale = vec![format!("{removed} file(s)")];
        }
        let plan = store.retention_plan().context("planning retention")?;
        report.keep = names(&plan.keep);
        report.delete = names(&plan.delete);
        report.delete_bytes = plan.delete_bytes();
        report.unverified = names(&plan.unverified);
        let done = store.apply_retention().context("applying retention")?;
        let file_names = |v: &[SnapshotName]| v.iter().map(|n| n.file_name()).collect();
        report.deleted = file_names(&done.deleted);
        report.freed_bytes = done.freed_bytes;
        report.spared = file_names(&done.spared);
        report.quarantine = file_names(&done.quarantined);
        report.quarantine_deleted = file_names(&done.quarantine_deleted);
    }
    out.json(&report)?;
    print_text(&report, out)?;
    Ok(Status::Ok)
}

fn print_text(r: &Report, out: &Out) -> anyhow::Result<()> {
    let limit = r.max_bytes.map_or_else(
        || "no byte limit".to_string(),
        |b| format!("max {}", output::bytes(b)),
    );
    let verb = |dry: &'static str, done: &'static str| if r.dry_run { dry } else { done };
    text!(
        out,
        "gc {}{} (keep_last {}, {limit})",
        Escaped::path(&r.dir),
        if r.dry_run { " --dry-run" } else { "" },
        r.keep_last
    );
    text!(
        out,
        "stale uncommitted/pending files {}: {}",
        verb("to remove", "removed"),
        list_or_none(&r.stale)
    );
    text!(
        out,
        "keep ({}, newest first): {}",
        r.keep.len(),
        list_or_none(&r.keep)
    );
    text!(
        out,
        "delete ({}, {}): {}",
        r.delete.len(),
        output::bytes(r.delete_bytes),
        list_or_none(&r.delete)
    );
    text!(
        out,
        "quarantine (failed verification; {}): {}",
        verb("to quarantine", "quarantined"),
        list_or_none(&r.quarantine)
    );
    if !r.unverified.is_empty() {
        text!(
            out,
            "not verifiable (unreadable or untrusted signer; left in place, not counted): {}",
            r.unverified.join(", ")
        );
    }
    if !r.quarantine_deleted.is_empty() {
        text!(
            out,
            "old quarantined files deleted (over max_quarantined): {}",
            r.quarantine_deleted.len()
        );
    }
    if r.dry_run {
        text!(out, "dry run: nothing changed");
    } else {
        text!(
            out,
            "deleted {} file(s), freed {}",
            r.deleted.len(),
            output::bytes(r.freed_bytes)
        );
        if !r.spared.is_empty() {
            text!(out, "spared by a hold: {}", r.spared.join(", "));
        }
    }
    Ok(())
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
