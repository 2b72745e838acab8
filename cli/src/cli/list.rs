//! `snapseal list DIR`: every snapshot file, its state, and what retention would do with it.
//!
//! Reads the directory listing only: no key, no lock, no verification, no change, no file
//! opened. Names that are not snapseal's are shown escaped.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use snapseal::persist::internals::{classify_dir, EntryClass, ListedEntry};
use snapseal::persist::{FileState, SnapshotEntry};

use crate::cli::config::FileConfig;
use crate::cli::exit::Status;
use crate::cli::output::{self, text, Escaped, Out};
use crate::cli::retention;
use crate::cli::safe_open;

/// `list` arguments.
#[derive(Debug, Args)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub(crate) struct ListArgs {
    /// The snapshot directory.
    pub dir: PathBuf,
}

/// One row of the listing.
#[derive(Debug, Serialize)]
struct Row {
    file: String,
    idx: u64,
    /// Null for a pending body (its evidence does not exist yet).
    evidence_idx: Option<u64>,
    size: u64,
    /// `committed`, `uncommitted`, `corrupt` (quarantined) or `pending` (a spilled body
    /// waiting for its proof).
    state: &'static str,
    /// For committed files: `keep` or `delete`; null otherwise.
    retention: Option<&'static str>,
}

/// An entry that is not one of our snapshot files.
#[derive(Debug, Serialize)]
struct Other {
    /// As the directory has it, escaped.
    name: String,
    /// What it is: `lock` (the store's), `not ours`, or `not a regular file` (under a
    /// snapshot name; the store skips it).
    what: &'static str,
}

#[derive(Debug, Serialize)]
struct Listing {
    #[serde(serialize_with = "output::escaped_path")]
    dir: PathBuf,
    keep_last: usize,
    max_bytes: Option<u64>,
    files: Vec<Row>,
    other: Vec<Other>,
    /// What the retention column rests on: names and sizes only, as if every committed file
    /// verified (`list` reads no key and verifies nothing).
    retention_basis: &'static str,
}

/// [`Listing::retention_basis`]: `gc --dry-run` is the verified plan.
const RETENTION_BASIS: &str =
    "names and sizes only, as if every committed file verified; `snapseal gc --dry-run` verifies";

/// The word for a state.
pub(super) fn state_word(state: FileState) -> &'static str {
    match state {
        FileState::Uncommitted => "uncommitted",
        FileState::Committed => "committed",
        FileState::Corrupt => "corrupt",
    }
}

/// Runs `list`.
pub(super) fn run(args: &ListArgs, file: &FileConfig, out: &Out) -> anyhow::Result<Status> {
    let dir = safe_open::open_dir(&args.dir)?;
    let listed =
        classify_dir(&*dir).with_context(|| format!("listing {}", Escaped::path(&args.dir)))?;
    let store = file.store;
    let committed: Vec<SnapshotEntry> = listed
        .iter()
        .filter_map(ListedEntry::snapshot)
        .filter(|e| e.name.state == FileState::Committed)
        .collect();
    let plan = retention::plan(&committed, store.keep_last, store.max_bytes);
    let mut rows = Vec::new();
    let mut other = Vec::new();
    // classify_dir gives snapshot files by name, then pending files, then the rest by name.
    for e in &listed {
        let name = Escaped::bytes(e.file_name.as_bytes()).to_string();
        match e.class {
            EntryClass::Snapshot(n) => rows.push(Row {
                file: n.file_name(),
                idx: n.idx,
                evidence_idx: Some(n.evidence_idx),
                size: e.len,
                state: state_word(n.state),
                retention: (n.state == FileState::Committed).then(|| {
                    let entry = SnapshotEntry {
                        name: n,
                        len: e.len,
                    };
                    if plan.keeps(&entry) {
                        "keep"
                    } else {
                        "delete"
                    }
                }),
            }),
            EntryClass::Pending(p) => rows.push(Row {
                file: p.file_name(),
                idx: p.idx,
                evidence_idx: None,
                size: e.len,
                state: "pending",
                retention: None,
            }),
            EntryClass::Lock => other.push(Other { name, what: "lock" }),
            EntryClass::NotRegular => other.push(Other {
                name,
                what: "not a regular file",
            }),
            _ => other.push(Other {
                name,
                what: "not ours",
            }),
        }
    }
    // Stable: snapshot files keep their order within one idx, pending ones come after them.
    rows.sort_by_key(|r| r.idx);
    let listing = Listing {
        dir: args.dir.clone(),
        keep_last: store.keep_last,
        max_bytes: store.max_bytes,
        files: rows,
        other,
        retention_basis: RETENTION_BASIS,
    };
    out.json(&listing)?;
    print_text(&listing, out)?;
    Ok(Status::Ok)
}

fn print_text(l: &Listing, out: &Out) -> anyhow::Result<()> {
    let limit = l.max_bytes.map_or_else(
        || "no byte limit".to_string(),
        |b| format!("max {}", output::bytes(b)),
    );
    text!(
        out,
        "{} (retention: keep_last {}, {limit})",
        Escaped::path(&l.dir),
        l.keep_last
    );
    if l.files.is_empty() {
        text!(out, "no snapshot files");
    } else {
        text!(
            out,
            "{:>12} {:>12} {:>10}  {:<11}  {:<9}  FILE",
            "IDX",
            "EVIDENCE",
            "SIZE",
            "STATE",
            "RETENTION"
        );
        for r in &l.files {
            text!(
                out,
                "{:>12} {:>12} {:>10}  {:<11}  {:<9}  {}",
                r.idx,
                r.evidence_idx
                    .map_or_else(|| "-".to_string(), |e| e.to_string()),
                output::bytes(r.size),
                r.state,
                r.retention.unwrap_or("-"),
                r.file
            );
        }
    }
    let foreign: Vec<&str> = l
        .other
        .iter()
        .filter(|o| o.what != "lock")
        .map(|o| o.name.as_str())
        .collect();
    if !foreign.is_empty() {
        text!(
            out,
            "{} other entr{} (not snapshot files; never touched): {}",
            foreign.len(),
            if foreign.len() == 1 { "y" } else { "ies" },
            foreign.join(", ")
        );
    }
    if l.files.iter().any(|r| r.retention.is_some()) {
        text!(out, "retention column: {}", l.retention_basis);
    }
    if l.files
        .iter()
        .any(|r| r.state == "uncommitted" || r.state == "pending")
    {
        text!(
            out,
            "uncommitted and pending files belong to a running node, or are stale after a crash \
             (removed when a store next opens the directory)"
        );
    }
    Ok(())
}
