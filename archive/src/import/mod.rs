//! Import: verify everything, then publish; nothing is committed unless all of it verified.
//! The steps are those of docs/ARCHIVE.md, "Import: what is verified, in which order":
//!
//! 1. the manifest ([`manifest::check`]) and the level; 2. the target directory (what it may
//!    already hold); 3. each entry as it streams ([`stage`]): keys against the trusted ones,
//!    snapshots through [`SnapshotCheck`](crate::snapshot::SnapshotCheck) into the store's
//!    unfinished ingest, chunks through the [`ChunkVerifier`] into sealed pending files;
//!    4. the end of the archive;
//! 5. the chain ([`links`]): chunks with each other, with the snapshots' receipts and with
//!    the chunks the ledger directory already holds next to them;
//! 6. publication ([`publish`]): snapshots, then chunks, get their committed names.
//!
//! A failure in steps 1 to 5 leaves nothing committed: what was staged is removed (a crash
//! leaves stale pending files, which the store and the ledger remove when opened). A crash in
//! step 6 leaves a prefix of the artifacts, each whole and verified; rerunning completes it.

use std::collections::BTreeSet;
use std::io::{self, Read};

use ed25519_dalek::VerifyingKey;
use snapseal_persist::internals::fs::{DirHandle, Expect, UntrustedError};

use crate::Dir;
use snapseal_persist::internals::Escaped;
use snapseal_persist::{FileState, IngestError, SnapshotStore};

use crate::container::{check_trailer, entry_path, Exact, ReadFailure, Tracked, Tracker};
use crate::manifest::{
    self, Invalid, Level, Listing, Manifest, MANIFEST_PATH, MAX_CHUNK, MAX_MANIFEST,
};
use crate::source::{cover, ChunkRef, ChunkVerifier};

mod links;
mod publish;
mod stage;

use links::cross_check;
use publish::publish_all;
use stage::{stage_entry, Stage};

/// How to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The level the archive must reach; anything less is refused before anything is written.
    pub level: Level,
    /// The keys this node trusts; every key in the archive must be one of them (the archive
    /// cannot bring its own trust).
    pub trusted_keys: Vec<VerifyingKey>,
    /// Fill the gaps of an existing directory: snapshots and chunks already there that the
    /// archive does not list are fine, and an archived chunk overlapping a different existing
    /// one is skipped; every chunk the import adds must chain with the directory's chunks on
    /// each side where the directory holds any. Without it, the directory may only hold
    /// artifacts of this archive (an earlier, interrupted run of the same import).
    pub repopulate: bool,
}

/// Where an import writes.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The snapshot store (snapshots go through its ingest).
    pub store: &'a SnapshotStore,
    /// The store's directory, for reading what it already holds.
    pub dir: &'a Dir,
    /// The ledger directory chunks go to: the snapshot directory's `ledger/`, best opened
    /// by [`Dir::open_subdir`] on `dir` (no symbolic link followed).
    pub ledger: &'a Dir,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The archive's level.
    pub level: Option<Level>,
    /// Index of the newest snapshot the archive holds.
    pub snapshot_idx: u64,
    /// The commit index the archive was cut at.
    pub commit_idx: u64,
    /// Snapshots committed by this run.
    pub snapshots_committed: Vec<String>,
    /// Snapshots already present with the same bytes (an earlier run, or repopulate).
    pub snapshots_present: Vec<String>,
    /// Chunks committed by this run.
    pub chunks_committed: Vec<String>,
    /// Chunks already present with the same bytes.
    pub chunks_present: Vec<String>,
    /// Chunks skipped because a different chunk of the directory overlaps them (repopulate
    /// only).
    pub chunks_skipped: Vec<String>,
    /// Artifact bytes read from the archive.
    pub bytes: u64,
}

/// Why an import was refused or failed. Unless it is [`ImportError::Partial`], nothing was
/// committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The archive's structure is wrong (the message is printable: every value from the
    /// archive in it is escaped).
    #[error("archive: {0}")]
    Malformed(String),
    /// The archive stream ended before the archive did.
    #[error("archive truncated: it ends at byte {at}, before the end of the archive")]
    Truncated {
        /// Bytes the stream held.
        at: u64,
    },
    /// The archive does not reach the requested level.
    #[error("archive is at level {have}, {want} requested")]
    Level {
        /// The archive's level.
        have: &'static str,
        /// The requested level.
        want: &'static str,
    },
    /// Ledger entries the level needs are not in the archive.
    #[error("ledger entries {from}..={to} are missing from the archive (needed from {snapshot_idx} + 1 to {commit_idx})")]
    Missing {
        /// First missing index.
        from: u64,
        /// Last missing index.
        to: u64,
        /// The snapshot the replay starts from.
        snapshot_idx: u64,
        /// Where it must reach.
        commit_idx: u64,
    },
    /// An artifact the manifest lists never came.
    #[error("{}: listed in the manifest but not in the archive", Escaped::str(.0))]
    Absent(String),
    /// An artifact's bytes are not what the manifest says, it does not verify, or it does
    /// not chain with the rest.
    #[error("{}: refused: {why}", Escaped::str(.path))]
    Refused {
        /// The artifact's path in the archive.
        path: String,
        /// What is wrong (printable).
        why: String,
    },
    /// The directory holds something the import would have to overwrite, or (without
    /// repopulate) artifacts of another origin (printable).
    #[error("{0}")]
    Conflict(String),
    /// Bringing a snapshot in failed.
    #[error("{}: bringing the snapshot into the store failed", Escaped::str(.path))]
    Ingest {
        /// The artifact's path in the archive.
        path: String,
        /// The error.
        #[source]
        source: IngestError,
    },
    /// A filesystem or archive read failed.
    #[error("{}: {step}", Escaped::str(.what))]
    Io {
        /// The file.
        what: String,
        /// What was being done.
        step: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A file of the target directory was refused or could not be read (the error names it).
    #[error(transparent)]
    File(io::Error),
    /// Publishing failed after this run committed artifacts that could not be taken back
    /// (committed snapshots, or a chunk whose removal failed). Each verified; rerunning the
    /// import completes it.
    #[error("the import failed after committing {}; each verified and stays, rerunning completes the import", .kept.join(", "))]
    Partial {
        /// What stays committed.
        kept: Vec<String>,
        /// The failure.
        #[source]
        cause: Box<ImportError>,
    },
}

impl ImportError {
    /// A file of the target directory refused or cut short (the error names it).
    pub(crate) fn file(e: UntrustedError) -> ImportError {
        ImportError::File(io::Error::other(e))
    }

    /// True when the archive itself is refused (malformed, truncated, below the level, an
    /// artifact that does not verify or chain): a property of the archive, not an I/O
    /// failure or a conflict with the directory.
    pub fn is_refusal(&self) -> bool {
        match self {
            ImportError::Malformed(_)
            | ImportError::Truncated { .. }
            | ImportError::Level { .. }
            | ImportError::Missing { .. }
            | ImportError::Absent(_)
            | ImportError::Refused { .. } => true,
            ImportError::Ingest { source, .. } => matches!(source, IngestError::Refused { .. }),
            ImportError::Partial { cause, .. } => cause.is_refusal(),
            _ => false,
        }
    }
}

pub(super) fn io_err(what: &str, step: &'static str) -> impl FnOnce(io::Error) -> ImportError {
    let what = what.to_string();
    move |source| ImportError::Io { what, step, source }
}

fn read_failure(f: ReadFailure) -> ImportError {
    match f {
        ReadFailure::Truncated(at) => ImportError::Truncated { at },
        ReadFailure::Malformed(m) => ImportError::Malformed(m),
        ReadFailure::Io(source) => ImportError::Io {
            what: "archive".into(),
            step: "reading",
            source,
        },
    }
}

pub(super) fn chunk_expect() -> Expect {
    Expect::new("ledger chunk", MAX_CHUNK)
}

/// Checks the archive reaches `want`: its level, and for replay the chunks from its
/// snapshot to its commit index (the listing is already consistent with its own level).
fn check_level(m: &Manifest, listing: &Listing, want: Level) -> Result<(), ImportError> {
    if m.level < want {
        return Err(ImportError::Level {
            have: m.level.name(),
            want: want.name(),
        });
    }
    if want == Level::Replay {
        let from = m.snapshot_idx.saturating_add(1);
        if let Err((from, to)) = cover(&listing.chunks, from, m.commit_idx) {
            return Err(ImportError::Missing {
                from,
                to,
                snapshot_idx: m.snapshot_idx,
                commit_idx: m.commit_idx,
            });
        }
    }
    Ok(())
}

/// The sealed chunks of the ledger directory, by range.
fn listed_chunks(ledger: &dyn DirHandle) -> Result<BTreeSet<(u64, u64)>, ImportError> {
    Ok(ledger
        .list()
        .map_err(io_err(&ledger.path().display().to_string(), "listing"))?
        .iter()
        .filter_map(|e| e.name.to_str().and_then(ChunkRef::parse_name))
        .collect())
}

/// Without repopulate the directory may hold only this archive's artifacts.
fn check_only_ours(
    target: &Target<'_>,
    listing: &Listing,
    existing: &BTreeSet<(u64, u64)>,
) -> Result<(), ImportError> {
    let stores = target.store.list().map_err(|e| {
        ImportError::Conflict(format!(
            "listing the store {}: {e}",
            Escaped::path(target.store.dir())
        ))
    })?;
    let hint = "import into a fresh directory or repopulate";
    for s in stores
        .iter()
        .filter(|s| s.name.state == FileState::Committed)
    {
        if !listing.snapshots.contains(&s.name) {
            return Err(ImportError::Conflict(format!(
                "{} holds {}, which this archive does not; {hint}",
                Escaped::path(target.store.dir()),
                s.name
            )));
        }
    }
    for &(start, end) in existing {
        if !listing
            .chunks
            .iter()
            .any(|c| (c.start, c.end) == (start, end))
        {
            return Err(ImportError::Conflict(format!(
                "{} holds ledger_{start}-{end}.committed, which this archive does not; {hint}",
                Escaped::path(target.ledger.path())
            )));
        }
    }
    Ok(())
}

/// Imports the tar stream `src` into `target`: snapshots through its store's ingest, chunks
/// (verified by `chunks`) into its ledger directory. Everything is read and verified before
/// anything is committed (module docs).
///
/// A new node starts from another node's replay archive: the snapshot through the store's
/// ingest, the ledger chunks into its ledger directory.
///
/// ```
/// use std::sync::Arc;
/// use snapseal_archive::{export, import, Dir, ExportOptions, ImportOptions, Level, Target};
/// use snapseal_ledger::disk_ledger::{ChunkKeys, LedgerDir};
/// use snapseal_persist::fs::RealFs;
/// use snapseal_persist::receipt::Ed25519Verifier;
/// use snapseal_persist::{SnapshotStore, StoreOptions};
/// # use std::path::Path;
/// # use snapseal_actors::SnapshotterConfig;
/// # use snapseal_ledger::ledger::Ledger;
/// # use snapseal_ledger::node::SimConfig;
/// # use snapseal_persist::VerifyingKey;
/// # /// Runs a small simulated node into `dir` (snapshots, and its ledger in `dir/ledger`).
/// # fn run_node(dir: &Path) -> Result<VerifyingKey, String> {
/// #     let key = Ledger::seed_key(3).verifying_key();
/// #     let opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![key])));
/// #     let sim = SimConfig { txs: 300, sig_every: 10, value_size: 8, keys: 20, seed: 3,
/// #         ..SimConfig::default() };
/// #     let snap = SnapshotterConfig { tx_interval: 60, ..SnapshotterConfig::default() };
/// #     snapseal_sim::harness::fuzz_archive::node_with_disk_ledger(
/// #         Arc::new(RealFs), dir, opts, sim, snap, 2048)?;
/// #     Ok(key)
/// # }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let old = tempfile::tempdir()?;
/// # let key = run_node(old.path())?;
/// # let opts = ExportOptions {
/// #     level: Level::Replay,
/// #     keys: vec![key],
/// #     verifier: Arc::new(Ed25519Verifier::new(vec![key])),
/// # };
/// # let ledger = LedgerDir::open(&RealFs, &old.path().join("ledger"))?;
/// # let mut archive = Vec::new();
/// # let snapshots = Dir::open(old.path())?;
/// # export(&snapshots, &ledger, &ChunkKeys(vec![key]), &opts, &mut archive)?;
/// // `archive` is a replay archive of a node whose ledger `key` signs (see `export`).
/// let new = tempfile::tempdir()?;
/// let verifier = Arc::new(Ed25519Verifier::new(vec![key]));
/// let store = SnapshotStore::open(Arc::new(RealFs), new.path(), StoreOptions::new(verifier))?;
/// let dir = Dir::open(new.path())?;
/// // By `dir`'s fd, never through a symbolic link.
/// let ledger = dir.open_subdir("ledger", true)?;
/// let target = Target { store: &store, dir: &dir, ledger: &ledger };
/// let opts = ImportOptions { level: Level::Replay, trusted_keys: vec![key], repopulate: false };
/// let report = import(&mut &archive[..], &target, &ChunkKeys(vec![key]), &opts)?;
/// assert_eq!(report.snapshots_committed.len(), 1);
/// assert!(!report.chunks_committed.is_empty());
/// assert_eq!(store.latest()?.map(|s| s.name().idx), Some(report.snapshot_idx));
///
/// // Rerun (after a crash, say): everything is already there, nothing is replaced.
/// let again = import(&mut &archive[..], &target, &ChunkKeys(vec![key]), &opts)?;
/// assert!(again.snapshots_committed.is_empty() && again.chunks_committed.is_empty());
/// assert_eq!(again.snapshots_present, report.snapshots_committed);
/// # Ok(()) }
/// ```
pub fn import(
    src: &mut dyn Read,
    target: &Target<'_>,
    chunks: &dyn ChunkVerifier,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let tracker = Tracker::default();
    let mut archive = tar::Archive::new(Tracked {
        inner: src,
        tracker: &tracker,
    });
    let existing = listed_chunks(target.ledger.fd())?;
    let (manifest, stage, bytes) = {
        let mut entries = archive
            .entries()
            .map_err(|e| read_failure(tracker.failure(e)))?;
        let mut next = || match entries.next() {
            None => Ok(None),
            Some(Ok(e)) => Ok(Some(e)),
            Some(Err(e)) => Err(read_failure(tracker.failure(e))),
        };
        let manifest = {
            let Some(first) = next()? else {
                return Err(match tracker.failure(io::ErrorKind::UnexpectedEof.into()) {
                    ReadFailure::Truncated(at) => ImportError::Truncated { at },
                    _ => ImportError::Malformed("empty archive".into()),
                });
            };
            let path = entry_path(&first).map_err(ImportError::Malformed)?;
            if path != MANIFEST_PATH.as_bytes() || first.size() > MAX_MANIFEST {
                return Err(ImportError::Malformed(format!(
                    "the first entry must be {MANIFEST_PATH} of at most {MAX_MANIFEST} bytes, \
                     not {} of {} bytes",
                    Escaped::bytes(&path),
                    first.size()
                )));
            }
            let size = first.size();
            let mut bytes = Vec::new();
            Exact::new(first, size)
                .read_rest(&mut bytes)
                .map_err(|e| read_failure(tracker.failure(e)))?;
            let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
                // serde_json quotes the offending input in its message.
                ImportError::Malformed(format!("{MANIFEST_PATH}: {}", Escaped::str(&e.to_string())))
            })?;
            m
        };
        let listing = manifest::check(&manifest).map_err(|e| match e {
            Invalid::Missing { from, to } => ImportError::Missing {
                from,
                to,
                snapshot_idx: manifest.snapshot_idx,
                commit_idx: manifest.commit_idx,
            },
            Invalid::Rule(why) => ImportError::Malformed(why),
        })?;
        check_level(&manifest, &listing, opts.level)?;
        if !opts.repopulate {
            check_only_ours(target, &listing, &existing)?;
        }
        let mut stage = Stage {
            target: *target,
            snapshot_chunks: None,
            snapshots: Vec::new(),
            chunks: Vec::new(),
        };
        let mut bytes = 0;
        for artifact in &manifest.artifacts {
            let Some(entry) = next()? else {
                return Err(match tracker.failure(io::ErrorKind::UnexpectedEof.into()) {
                    ReadFailure::Truncated(at) => ImportError::Truncated { at },
                    _ => ImportError::Absent(artifact.path.clone()),
                });
            };
            let path = entry_path(&entry).map_err(ImportError::Malformed)?;
            if path != artifact.path.as_bytes() {
                return Err(ImportError::Malformed(format!(
                    "entry {} where the manifest lists {}",
                    Escaped::bytes(&path),
                    Escaped::str(&artifact.path)
                )));
            }
            if entry.size() != artifact.len {
                return Err(ImportError::Refused {
                    path: artifact.path.clone(),
                    why: format!("{} bytes, the manifest says {}", entry.size(), artifact.len),
                });
            }
            let mut data = Exact::new(entry, artifact.len);
            let read = stage_entry(&mut stage, artifact, &mut data, &existing, chunks, opts);
            // An entry cut short by the end of the stream is the archive's truncation,
            // whatever step noticed it.
            read.map_err(
                |e| match tracker.failure(io::ErrorKind::UnexpectedEof.into()) {
                    ReadFailure::Truncated(at) => ImportError::Truncated { at },
                    _ => e,
                },
            )?;
            bytes += artifact.len;
        }
        if let Some(extra) = next()? {
            let path = entry_path(&extra).map_err(ImportError::Malformed)?;
            return Err(ImportError::Malformed(format!(
                "{}: an entry the manifest does not list",
                Escaped::bytes(&path)
            )));
        }
        (manifest, stage, bytes)
    };
    let mut rest = archive.into_inner();
    check_trailer(&mut rest, &tracker).map_err(read_failure)?;
    cross_check(&stage, &manifest, chunks, &existing, opts)?;
    let mut report = ImportReport {
        level: Some(manifest.level),
        snapshot_idx: manifest.snapshot_idx,
        commit_idx: manifest.commit_idx,
        bytes,
        ..ImportReport::default()
    };
    publish_all(stage, &mut report)?;
    Ok(report)
}
