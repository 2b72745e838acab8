//! `snapseal verify DIR|FILE [--key K]`: the full check of one file, or of every committed
//! file in a directory, with a reason per failure. Read-only: nothing is renamed or
//! quarantined (that is `latest --repair`'s job).
//!
//! Nothing that looks committed is skipped silently: in a directory, every entry whose name
//! ends in `.committed` but is not a snapshot name (`foo.committed`,
//! `snapshot_01_5.committed`) is listed as unrecognised (a node never reads it) and fails the
//! run; a single file must carry a snapshot name that agrees with its header.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use snapseal::persist::fs::{FileSystem, RealFs};
use snapseal::persist::internals::fs::DirHandle;
use snapseal::persist::internals::{classify_dir, EntryClass, Standing};
use snapseal::persist::{Check, FileState, SnapshotName};

use crate::cli::check::{self, Verdict};
use crate::cli::exit::Status;
use crate::cli::keys::Trusted;
use crate::cli::output::{self, info, text, Escaped, Out};
use crate::cli::progress::{Progress, Unit};

/// `verify` arguments.
#[derive(Debug, Args)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub(crate) struct VerifyArgs {
    /// A snapshot directory (every `.committed` file in it is checked) or a single file.
    pub path: PathBuf,
    /// Trusted public key file (hex Ed25519 key per line, as the demo's node.pub); may be
    /// repeated. Default: node.pub in the directory (for a file: next to it).
    /// A regular file of at most 64 KiB; a symbolic link is refused (give the target's path).
    #[arg(long = "key", value_name = "K")]
    pub keys: Vec<PathBuf>,
}

/// The result for one file.
#[derive(Debug, Serialize)]
pub(super) struct FileResult {
    /// The path checked.
    #[serde(serialize_with = "output::escaped_path")]
    pub file: PathBuf,
    /// `ok`, `failed`, `unreadable` or `vanished`.
    pub status: &'static str,
    /// Why it is not ok.
    pub reason: Option<String>,
    /// The check that failed.
    pub check: Option<String>,
    /// Size in bytes (as listed).
    pub size: Option<u64>,
    /// Snapshot index (verified files).
    pub idx: Option<u64>,
    /// Evidence index (verified files).
    pub evidence_idx: Option<u64>,
    /// Signature index the receipt proves (verified files).
    pub sig_idx: Option<u64>,
    /// Signer key id (verified files).
    pub signer: Option<String>,
    /// Receipt scheme the file names: `merkle` or `statement` (verified files).
    pub scheme: Option<String>,
}

impl FileResult {
    /// The result for `file` from its verdict.
    pub(super) fn new(file: PathBuf, size: Option<u64>, verdict: &Verdict) -> FileResult {
        let mut r = FileResult {
            file,
            status: verdict.word(),
            reason: verdict.reason(),
            check: None,
            size,
            idx: None,
            evidence_idx: None,
            sig_idx: None,
            signer: None,
            scheme: None,
        };
        match verdict {
            Verdict::Verified {
                header,
                sig_idx,
                signer,
                scheme,
            } => {
                r.idx = Some(header.idx);
                r.evidence_idx = Some(header.evidence_idx);
                r.sig_idx = Some(*sig_idx);
                r.signer = Some(signer.clone());
                r.scheme = Some(scheme.name());
            }
            Verdict::Failed { check, .. } => r.check = Some(check.to_string()),
            Verdict::Unreadable { .. } | Verdict::Vanished => {}
        }
        r
    }

    /// One text line.
    pub(super) fn line(&self) -> String {
        match (self.status, &self.reason) {
            ("ok", _) => format!(
                "ok          {}  (idx {}, evidence {}, signature {}, signer {}, scheme {})",
                Escaped::path(&self.file),
                self.idx.unwrap_or_default(),
                self.evidence_idx.unwrap_or_default(),
                self.sig_idx.unwrap_or_default(),
                self.signer.as_deref().unwrap_or("?"),
                self.scheme.as_deref().unwrap_or("?")
            ),
            (word, reason) => format!(
                "{:<11} {}: {}",
                word.to_uppercase(),
                Escaped::path(&self.file),
                reason.as_deref().unwrap_or("")
            ),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    #[serde(serialize_with = "output::escaped_path")]
    path: PathBuf,
    #[serde(serialize_with = "output::escaped_paths")]
    key_files: Vec<PathBuf>,
    key_ids: Vec<String>,
    files: Vec<FileResult>,
    verified: usize,
    failed: usize,
    unreadable: usize,
    /// Uncommitted and quarantined files in the directory, not checked.
    skipped: usize,
    /// Entries named `*.committed` that are not snapshot names: never read by a node.
    #[serde(serialize_with = "output::escaped_paths")]
    unrecognised: Vec<PathBuf>,
}

/// Runs `verify`.
pub(super) fn run(args: &VerifyArgs, out: &Out) -> anyhow::Result<Status> {
    // Whether PATH is a directory is what opening it as one says (no separate stat to race
    // with).
    let dir = match RealFs::new().open_dir(&args.path, false) {
        Ok(dir) => Some(dir),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOTDIR as i32) => None,
        Err(e) => {
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("cannot verify {}", Escaped::path(&args.path)))
        }
    };
    let key_dir = match dir {
        Some(_) => args.path.clone(),
        None => check::split_path(&args.path)
            .map(|(parent, _)| parent)
            .with_context(|| format!("cannot verify {}", Escaped::path(&args.path)))?,
    };
    let trusted = Trusted::load(&args.keys, &key_dir)?;
    let verifier = trusted.verifier();
    let mut report = Report {
        path: args.path.clone(),
        key_files: trusted.files.clone(),
        key_ids: trusted.key_ids(),
        files: Vec::new(),
        verified: 0,
        failed: 0,
        unreadable: 0,
        skipped: 0,
        unrecognised: Vec::new(),
    };
    if let Some(dir) = dir {
        let listing = list_dir(&*dir, &args.path)?;
        let (committed, skipped) = (listing.committed, listing.skipped);
        report.skipped = skipped;
        report.unrecognised = listing
            .unrecognised
            .iter()
            .map(|n| args.path.join(n))
            .collect();
        for path in &report.unrecognised {
            text!(
                out,
                "UNRECOGNISED {}: named .committed but not a snapshot name \
                 (snapshot_<idx>_<evidence_idx>.committed); a node never reads it",
                Escaped::path(path)
            );
        }
        if committed.is_empty() {
            out.json(&report)?;
            text!(
                out,
                "nothing to verify: no committed snapshot in {}",
                Escaped::path(&args.path)
            );
            return Ok(Status::Failed);
        }
        let total = committed.iter().map(|(_, len)| len).sum();
        let bar = Progress::new(out.bars(), total, Unit::Bytes, "verifying");
        for (name, len) in &committed {
            let verdict = check::check_in_dir(&*dir, name, &*verifier);
            let result = FileResult::new(args.path.join(name.file_name()), Some(*len), &verdict);
            text!(out, "{}", result.line());
            report.files.push(result);
            bar.inc(*len);
        }
    } else {
        let verdict = match args.path.file_name().and_then(SnapshotName::parse_os) {
            Some(_) => check::check_path(&args.path, &*verifier),
            None => not_a_snapshot_name(&args.path, &*verifier),
        };
        let size = std::fs::symlink_metadata(&args.path).ok().map(|m| m.len());
        let result = FileResult::new(args.path.clone(), size, &verdict);
        text!(out, "{}", result.line());
        report.files.push(result);
    }
    for f in &report.files {
        match f.status {
            "ok" => report.verified += 1,
            "failed" => report.failed += 1,
            "unreadable" => report.unreadable += 1,
            _ => {}
        }
    }
    out.json(&report)?;
    let checked = report.verified + report.failed + report.unreadable;
    text!(
        out,
        "{} of {checked} verified, {} failed, {} unreadable (trusted key id{} {})",
        report.verified,
        report.failed,
        report.unreadable,
        if report.key_ids.len() == 1 { "" } else { "s" },
        report.key_ids.join(", ")
    );
    if report.skipped > 0 {
        info!(
            out,
            "{} uncommitted or quarantined file(s) not checked (see `snapseal list`)",
            report.skipped
        );
    }
    // A definite verification failure is the more important news: it wins over I/O trouble.
    if report.failed > 0 || !report.unrecognised.is_empty() {
        return Ok(Status::Failed);
    }
    if report.unreadable > 0 {
        bail!(
            "{} file(s) could not be read (see above)",
            report.unreadable
        );
    }
    Ok(Status::Ok)
}

/// The verdict for a file whose name is not a snapshot name: its header cannot be checked
/// against a name, and a node would never read it under that name, so it is reported as a
/// failed name check (naming what the header says the file should be called).
fn not_a_snapshot_name(
    path: &Path,
    verifier: &dyn snapseal::persist::receipt::ReceiptVerifier,
) -> Verdict {
    let shown = path.file_name().map_or_else(
        || Escaped::path(path).to_string(),
        |n| Escaped::bytes(n.as_bytes()).to_string(),
    );
    match check::check_path(path, verifier) {
        Verdict::Verified { header, .. } => Verdict::Failed {
            check: Check::Name,
            reason: format!(
                "{} check failed: `{shown}` is not a snapshot name; the header says \
                 snapshot_{}_{}.committed",
                Check::Name,
                header.idx,
                header.evidence_idx
            ),
            standing: Standing::Failed,
        },
        Verdict::Failed {
            check,
            reason,
            standing,
        } => Verdict::Failed {
            check,
            reason: format!("{reason} (and `{shown}` is not a snapshot name)"),
            standing,
        },
        other => other,
    }
}

/// What a directory listing holds for `verify`.
pub(super) struct Listing {
    /// Committed files (name, size), oldest first.
    pub committed: Vec<(SnapshotName, u64)>,
    /// Other snapshot files (uncommitted, quarantined, not regular).
    pub skipped: usize,
    /// Names ending in `.committed` that are not snapshot names, sorted (as the directory
    /// has them: print them escaped).
    pub unrecognised: Vec<OsString>,
}

/// Lists `dir` for `verify`, through persist's classification (regular files under our
/// names only; nothing opened).
pub(super) fn list_dir(dir: &dyn DirHandle, path: &Path) -> anyhow::Result<Listing> {
    let entries = classify_dir(dir).with_context(|| format!("listing {}", Escaped::path(path)))?;
    let mut listing = Listing {
        committed: Vec::new(),
        skipped: 0,
        unrecognised: Vec::new(),
    };
    // classify_dir gives snapshot files by name and every other entry by name: both lists
    // come out sorted.
    for e in entries {
        match e.class {
            EntryClass::Snapshot(name) if name.state == FileState::Committed => {
                listing.committed.push((name, e.len));
            }
            EntryClass::Snapshot(_) => listing.skipped += 1,
            // A snapshot name (not a pending one) on something that is not a regular file.
            EntryClass::NotRegular if SnapshotName::parse_os(&e.file_name).is_some() => {
                listing.skipped += 1;
            }
            EntryClass::Foreign if e.file_name.as_bytes().ends_with(b".committed") => {
                listing.unrecognised.push(e.file_name);
            }
            _ => {}
        }
    }
    Ok(listing)
}

/// Committed files (name, size), oldest first, and how many other snapshot files there are.
pub(super) fn committed_files(
    dir: &dyn DirHandle,
    path: &Path,
) -> anyhow::Result<(Vec<(SnapshotName, u64)>, usize)> {
    let listing = list_dir(dir, path)?;
    Ok((listing.committed, listing.skipped))
}
