//! Import: verify everything, then publish; nothing is committed unless all of it verified.
//!
//! 1. **Read and check**, in archive order (docs/ARCHIVE.md, "What import verifies"): the
//!    manifest ([`manifest::check`], the level), the target directory (what it may already
//!    hold), then each entry as it streams: keys against the trusted ones; snapshots through
//!    [`SnapshotCheck`] into the store's [`IngestFile`] (a pending file, not yet finished);
//!    chunks through the [`ChunkVerifier`] (head first, then whole) into
//!    `ledger_<s>-<e>.pending` (`O_EXCL`, fsync, close). Then the end of the archive.
//! 2. **Cross-check** ([`crate::chain`]): chunks chain with each other, with the snapshots'
//!    receipts, and with the chunks the ledger directory already holds next to them.
//! 3. **Publish**: each snapshot's ingest is finished (fsync, the store's complete
//!    verification, rename without replacing, directory fsync), oldest first; then each
//!    chunk is renamed without replacing to its committed name and the directory fsynced, in
//!    order. A chunk rename or fsync that fails rolls back the chunks this run published.
//!
//! A failure in steps 1 and 2 leaves nothing committed: the staged files are removed (a
//! crash leaves them as stale pending files, which the store and the ledger remove when
//! opened). A crash in step 3 leaves a prefix of the artifacts, each whole and verified;
//! rerunning the import completes it.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};

use ed25519_dalek::VerifyingKey;
use snapseal_persist::format::MAGIC;
use snapseal_persist::fs::{DirHandle, Expect, Untrusted, UntrustedError};
use snapseal_persist::receipt::key_id;
use snapseal_persist::{
    to_hex, Escaped, FileState, IngestError, IngestFile, Ingested, SnapshotName, SnapshotStore,
};

use crate::chain::{check_anchor, check_links, Broken, Origin, View};
use crate::container::{
    check_trailer, entry_path, hash_stream, Exact, ReadFailure, Tracked, Tracker, BUF,
};
use crate::manifest::{
    self, Artifact, ArtifactKind, Invalid, Level, Listing, Manifest, MANIFEST_PATH, MAX_CHUNK,
    MAX_MANIFEST, MAX_SNAPSHOT,
};
use crate::pending::{PendingError, PendingFile, Sealed, Stale};
use crate::snapshot::{SnapshotCheck, SnapshotProof};
use crate::source::{cover, CheckedChunk, ChunkCheckError, ChunkRef, ChunkVerifier};

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
    pub dir: &'a dyn DirHandle,
    /// The ledger directory chunks go to.
    pub ledger: &'a dyn DirHandle,
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
    /// A file of the target directory was refused or could not be read (it names itself).
    #[error(transparent)]
    File(#[from] UntrustedError),
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

fn io_err(what: &str, step: &'static str) -> impl FnOnce(io::Error) -> ImportError {
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

fn chunk_expect() -> Expect {
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

/// A snapshot read from the archive.
struct StagedSnapshot {
    path: String,
    proof: SnapshotProof,
    /// `None`: the directory holds it already, with the same bytes.
    ingest: Option<IngestFile>,
}

/// What becomes of a chunk read from the archive.
#[derive(Debug)]
enum ChunkFate<'a> {
    /// Durable under its pending name, waiting to be published (dropped: removed).
    New(Sealed<'a>),
    /// Published by this run.
    Published,
    /// The directory holds it with the same bytes.
    Present,
    /// A different chunk of the directory overlaps it (repopulate).
    Skipped,
}

impl ChunkFate<'_> {
    fn is_new(&self) -> bool {
        matches!(self, ChunkFate::New(_))
    }
}

struct StagedChunk<'a> {
    path: String,
    range: (u64, u64),
    checked: CheckedChunk,
    fate: ChunkFate<'a>,
}

/// Everything read from the archive and not yet published. Dropped, what it staged goes
/// with it: the store's ingest files and the sealed pending chunks remove themselves.
struct Stage<'a> {
    target: Target<'a>,
    snapshots: Vec<StagedSnapshot>,
    chunks: Vec<StagedChunk<'a>>,
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

/// BLAKE3 of a file of the target directory.
fn hash_file(file: &Untrusted) -> Result<blake3::Hash, ImportError> {
    let (hash, _) = hash_stream(&mut file.reader()).map_err(|e| untrusted_read(file, e))?;
    Ok(hash)
}

/// Reads and verifies a chunk the ledger directory holds.
fn dir_chunk(
    ledger: &dyn DirHandle,
    chunks: &dyn ChunkVerifier,
    (start, end): (u64, u64),
) -> Result<Option<CheckedChunk>, ImportError> {
    let name = ChunkRef { start, end, len: 0 }.file_name();
    let Some(file) = Untrusted::open_in(ledger, &name, chunk_expect())? else {
        return Ok(None);
    };
    let mut src = io::BufReader::with_capacity(BUF, file.reader());
    match chunks.verify_chunk(&mut src, file.len(), start, end) {
        Ok(checked) => Ok(Some(checked)),
        Err(ChunkCheckError::Invalid(why)) => Err(ImportError::Conflict(format!(
            "{}: the directory's own chunk does not verify ({why}); nothing can chain with it",
            Escaped::path(file.path())
        ))),
        Err(ChunkCheckError::Read(e)) => Err(untrusted_read(&file, e)),
    }
}

/// A read error of a file of the target directory: the [`UntrustedError`] inside it when
/// there is one (it names the file).
fn untrusted_read(file: &Untrusted, e: io::Error) -> ImportError {
    let what = file.path().display().to_string();
    if !e.get_ref().is_some_and(|i| i.is::<UntrustedError>()) {
        return ImportError::Io {
            what,
            step: "reading",
            source: e,
        };
    }
    match e.into_inner().map(|i| i.downcast::<UntrustedError>()) {
        Some(Ok(u)) => ImportError::File(*u),
        _ => ImportError::Io {
            what,
            step: "reading",
            source: io::ErrorKind::Other.into(),
        },
    }
}

/// Imports the tar stream `src` into `target`: snapshots through its store's ingest, chunks
/// (verified by `chunks`) into its ledger directory. Everything is read and verified before
/// anything is committed (module docs).
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
    let existing = listed_chunks(target.ledger)?;
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

/// Reads one entry (of the size the manifest gives) and stages or checks it.
fn stage_entry<R: Read>(
    stage: &mut Stage<'_>,
    artifact: &Artifact,
    data: &mut Exact<R>,
    existing: &BTreeSet<(u64, u64)>,
    chunks: &dyn ChunkVerifier,
    opts: &ImportOptions,
) -> Result<(), ImportError> {
    let path = artifact.path.as_str();
    let refused = |why: &str| ImportError::Refused {
        path: path.to_string(),
        why: why.to_string(),
    };
    let digest_differs = || refused("BLAKE3 differs from the manifest's");
    let reading = |e| ImportError::Io {
        what: path.to_string(),
        step: "reading from the archive",
        source: e,
    };
    match artifact.kind {
        ArtifactKind::Debug => {
            // For a human to look at, never brought into a node's directory; its bytes are
            // still checked, so a tampered debug archive is refused as a whole.
            let (hash, _) = hash_stream(data).map_err(reading)?;
            if hash.to_hex().as_str() != artifact.blake3 {
                return Err(digest_differs());
            }
        }
        ArtifactKind::Key => {
            let mut bytes = [0u8; 32];
            data.fill(&mut bytes).map_err(reading)?;
            if blake3::hash(&bytes).to_hex().as_str() != artifact.blake3 {
                return Err(digest_differs());
            }
            let Some(key) = opts.trusted_keys.iter().find(|k| k.as_bytes() == &bytes) else {
                return Err(refused("a key this node does not trust"));
            };
            if format!("keys/{}.pub", to_hex(&key_id(key))) != path {
                return Err(refused("named for another key"));
            }
        }
        ArtifactKind::Snapshot => {
            let staged = stage_snapshot(stage.target, artifact, data)?;
            stage.snapshots.push(staged);
        }
        ArtifactKind::Ledger => {
            let staged = stage_chunk(stage, artifact, data, existing, chunks)?;
            stage.chunks.push(staged);
        }
    }
    Ok(())
}

fn stage_snapshot<R: Read>(
    target: Target<'_>,
    artifact: &Artifact,
    data: &mut Exact<R>,
) -> Result<StagedSnapshot, ImportError> {
    let path = artifact.path.as_str();
    let refused = |why: String| ImportError::Refused {
        path: path.to_string(),
        why,
    };
    let file_name = path.strip_prefix("snapshots/").unwrap_or_default();
    let name =
        SnapshotName::parse(file_name).ok_or_else(|| refused("not a snapshot name".into()))?;
    let verifier = &*target.store.options().verifier;
    let mut check = SnapshotCheck::new(name, artifact.len, verifier);
    let mut hash = blake3::Hasher::new();
    let expect = Expect::new("snapshot", MAX_SNAPSHOT).with_magic(&MAGIC);
    let present = Untrusted::open_in(target.dir, file_name, expect)?;
    let mut ingest = present
        .is_none()
        .then(|| target.store.begin_ingest(artifact.len));
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(path, "reading from the archive")(e)),
        };
        let block = &buf[..n];
        check.update(block).map_err(refused)?;
        hash.update(block);
        if let Some(file) = ingest.as_mut() {
            if file.write_all(block).is_err() {
                // The ingest recorded why; finishing it reports that, and commits nothing.
                let Some(file) = ingest.take() else { break };
                let source = match target.store.finish_ingest(file) {
                    Err(e) => e,
                    Ok(_) => IngestError::Read {
                        received: 0,
                        source: io::Error::other("the ingest refused a write"),
                    },
                };
                return Err(ImportError::Ingest {
                    path: path.to_string(),
                    source,
                });
            }
        }
    }
    if hash.finalize().to_hex().as_str() != artifact.blake3 {
        return Err(refused("BLAKE3 differs from the manifest's".into()));
    }
    let proof = check.finish().map_err(refused)?;
    if let Some(existing) = present {
        if hash_file(&existing)?.to_hex().as_str() != artifact.blake3 {
            return Err(ImportError::Conflict(format!(
                "{}: exists with other bytes (another run's snapshot at the same indices); \
                 never overwritten",
                Escaped::path(existing.path())
            )));
        }
    }
    Ok(StagedSnapshot {
        path: path.to_string(),
        proof,
        ingest,
    })
}

/// What passes through to the chunk verifier is hashed and, for a chunk to add, written to
/// its pending file.
struct Tee<'r, 'p, R> {
    inner: &'r mut Exact<R>,
    hasher: blake3::Hasher,
    copy: Option<&'r mut PendingFile<'p>>,
    write_failed: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(w) = self.copy.as_deref_mut() {
            if let Err(e) = w.write_all(&buf[..n]) {
                self.write_failed = Some(e);
                return Err(io::Error::other("writing the pending chunk failed"));
            }
        }
        Ok(n)
    }
}

fn stage_chunk<'a, R: Read>(
    stage: &Stage<'a>,
    artifact: &Artifact,
    data: &mut Exact<R>,
    existing: &BTreeSet<(u64, u64)>,
    chunks: &dyn ChunkVerifier,
) -> Result<StagedChunk<'a>, ImportError> {
    let path = artifact.path.as_str();
    let refused = |why: String| ImportError::Refused {
        path: path.to_string(),
        why,
    };
    let file_name = path.strip_prefix("ledger/").unwrap_or_default();
    let (start, end) =
        ChunkRef::parse_name(file_name).ok_or_else(|| refused("not a chunk name".into()))?;
    let ledger = stage.target.ledger;
    let present = existing.contains(&(start, end));
    // Only reachable with repopulate: without it such a chunk is a conflict already.
    let skipped = !present && existing.iter().any(|&(s, e)| s <= end && start <= e);
    let pending_name = format!("ledger_{start}-{end}.pending");
    let mut pending = if present || skipped {
        None
    } else {
        // The store's lock on the snapshot directory keeps other imports out, so a file of
        // this name is a crashed earlier run's.
        Some(
            PendingFile::create(ledger, &pending_name, 0o600, Stale::Remove)
                .map_err(pending_failed)?,
        )
    };
    // Verified as it streams (header first: junk is refused after a few bytes), and written
    // to the pending file as it passes when it is to be added.
    // Buffered above the tee: a verifier reads entry by entry, the file gets whole blocks.
    let mut tee = io::BufReader::with_capacity(
        BUF,
        Tee {
            inner: data,
            hasher: blake3::Hasher::new(),
            copy: pending.as_mut(),
            write_failed: None,
        },
    );
    let verdict = chunks.verify_chunk(&mut tee, artifact.len, start, end);
    let Tee {
        hasher,
        write_failed,
        ..
    } = tee.into_inner();
    if let Some(source) = write_failed {
        return Err(ImportError::Io {
            what: ledger.path().join(&pending_name).display().to_string(),
            step: "writing",
            source,
        });
    }
    let mut checked = match verdict {
        Ok(c) => c,
        Err(ChunkCheckError::Invalid(why)) => return Err(refused(why)),
        Err(ChunkCheckError::Read(e)) => return Err(io_err(path, "reading from the archive")(e)),
    };
    if !data.is_done() {
        return Err(refused("bytes after the chunk's last entry".into()));
    }
    if hasher.finalize().to_hex().as_str() != artifact.blake3 {
        return Err(refused("BLAKE3 differs from the manifest's".into()));
    }
    let wanted: Vec<u64> = stage
        .snapshots
        .iter()
        .filter(|s| s.proof.root.is_some())
        .map(|s| s.proof.sig_idx)
        .collect();
    checked.signed.retain(|(i, _)| wanted.contains(i));
    let fate = if present {
        let Some(file) = Untrusted::open_in(ledger, file_name, chunk_expect())? else {
            return Err(ImportError::Conflict(format!(
                "{}: vanished during the import",
                Escaped::path(&ledger.path().join(file_name))
            )));
        };
        if hash_file(&file)?.to_hex().as_str() != artifact.blake3 {
            return Err(ImportError::Conflict(format!(
                "{}: exists with other bytes; never overwritten",
                Escaped::path(file.path())
            )));
        }
        ChunkFate::Present
    } else if let Some(p) = pending {
        ChunkFate::New(p.seal().map_err(pending_failed)?)
    } else {
        ChunkFate::Skipped
    };
    Ok(StagedChunk {
        path: path.to_string(),
        range: (start, end),
        checked,
        fate,
    })
}

fn pending_failed(e: PendingError) -> ImportError {
    match e {
        PendingError::Io { path, step, source } => ImportError::Io {
            what: path.display().to_string(),
            step,
            source,
        },
        PendingError::DirSync { path, source } => ImportError::Io {
            what: path.display().to_string(),
            step: "fsync of the directory",
            source,
        },
        e => ImportError::Conflict(e.to_string()),
    }
}

/// Step 2: the archive's chunks chain with each other, with the snapshots' receipts and with
/// the directory's own chunks around the ones this import adds.
fn cross_check(
    stage: &Stage<'_>,
    m: &Manifest,
    chunks: &dyn ChunkVerifier,
    existing: &BTreeSet<(u64, u64)>,
    opts: &ImportOptions,
) -> Result<(), ImportError> {
    let proofs: Vec<&SnapshotProof> = stage.snapshots.iter().map(|s| &s.proof).collect();
    let newest = proofs
        .iter()
        .find(|p| p.name.idx == m.snapshot_idx)
        .ok_or_else(|| ImportError::Malformed("no snapshot at snapshot_idx".into()))?;
    if m.commit_idx < newest.sig_idx {
        return Err(ImportError::Malformed(format!(
            "commit_idx {} is below the index {} the newest snapshot's receipt proves committed",
            m.commit_idx, newest.sig_idx
        )));
    }
    let mut view = View::new();
    for c in &stage.chunks {
        if !matches!(c.fate, ChunkFate::Skipped) {
            view.insert(c.range, (c.checked.clone(), Origin::Archive));
        }
    }
    // The directory's chunks that the added ones touch, and those holding a receipt's index.
    let mut consult = BTreeSet::new();
    for c in stage.chunks.iter().filter(|c| c.fate.is_new()) {
        let (s, e) = c.range;
        consult.extend(existing.iter().filter(|r| r.1.checked_add(1) == Some(s)));
        consult.extend(existing.iter().filter(|r| e.checked_add(1) == Some(r.0)));
    }
    for p in &proofs {
        consult.extend(
            existing
                .iter()
                .filter(|r| r.0 <= p.sig_idx && p.sig_idx <= r.1),
        );
    }
    let wanted: Vec<u64> = proofs
        .iter()
        .filter(|p| p.root.is_some())
        .map(|p| p.sig_idx)
        .collect();
    for range in consult {
        if view.contains_key(&range) {
            continue;
        }
        if let Some(mut checked) = dir_chunk(stage.target.ledger, chunks, range)? {
            checked.signed.retain(|(i, _)| wanted.contains(i));
            view.insert(range, (checked, Origin::Dir));
        }
    }
    let refused = |b: Broken| ImportError::Refused {
        path: format!("ledger/{}", b.chunk),
        why: b.why,
    };
    check_links(&view).map_err(refused)?;
    for p in &proofs {
        let anchored = check_anchor(&view, p).map_err(refused)?;
        let required = opts.level == Level::Replay && p.name.idx == m.snapshot_idx;
        if required && p.root.is_some() && !anchored {
            return Err(ImportError::Refused {
                path: format!("snapshots/{}", p.name.file_name()),
                why: format!(
                    "no chunk holds the index {} its receipt proves; it cannot be tied to the \
                     archive's ledger",
                    p.sig_idx
                ),
            });
        }
    }
    // A chunk added next to a gap while the directory holds chunks beyond that gap would
    // chain with nothing there: another ledger's chunk could sit in it unnoticed.
    let archived: BTreeSet<(u64, u64)> = stage.chunks.iter().map(|c| c.range).collect();
    let foreign: Vec<&(u64, u64)> = existing.iter().filter(|r| !archived.contains(r)).collect();
    for c in stage.chunks.iter().filter(|c| c.fate.is_new()) {
        let (s, e) = c.range;
        let before = s > 1 && !view.keys().any(|r| r.1.checked_add(1) == Some(s));
        let after = !view.keys().any(|r| e.checked_add(1) == Some(r.0));
        let side = if before && foreign.iter().any(|r| r.1 < s) {
            Some("before")
        } else if after && foreign.iter().any(|r| r.0 > e) {
            Some("after")
        } else {
            None
        };
        if let Some(side) = side {
            return Err(ImportError::Refused {
                path: c.path.clone(),
                why: format!(
                    "the ledger directory holds chunks {side} it but none adjacent: it would \
                     fill part of a gap without chaining with them ({} only fills a gap with \
                     chunks that chain on both sides)",
                    if opts.repopulate {
                        "repopulate"
                    } else {
                        "an import"
                    }
                ),
            });
        }
    }
    Ok(())
}

/// Step 3: snapshots, then chunks. A chunk step that fails takes back the chunks this run
/// published; committed snapshots cannot be taken back and are reported in
/// [`ImportError::Partial`].
fn publish_all(mut stage: Stage<'_>, report: &mut ImportReport) -> Result<(), ImportError> {
    let store = stage.target.store;
    let mut kept: Vec<String> = Vec::new();
    let partial = |kept: &[String], cause: ImportError| {
        if kept.is_empty() {
            cause
        } else {
            ImportError::Partial {
                kept: kept.to_vec(),
                cause: Box::new(cause),
            }
        }
    };
    for s in &mut stage.snapshots {
        let Some(file) = s.ingest.take() else {
            report.snapshots_present.push(s.path.clone());
            continue;
        };
        match store.finish_ingest(file) {
            Ok(Ingested::Committed(_)) => {
                kept.push(s.path.clone());
                report.snapshots_committed.push(s.path.clone());
            }
            Ok(_) => report.snapshots_present.push(s.path.clone()),
            Err(source) => {
                let cause = ImportError::Ingest {
                    path: s.path.clone(),
                    source,
                };
                return Err(partial(&kept, cause));
            }
        }
    }
    let ledger = stage.target.ledger;
    let mut published: Vec<String> = Vec::new();
    let mut failure = None;
    for c in &mut stage.chunks {
        match std::mem::replace(&mut c.fate, ChunkFate::Published) {
            ChunkFate::Present => report.chunks_present.push(c.path.clone()),
            ChunkFate::Skipped => report.chunks_skipped.push(c.path.clone()),
            ChunkFate::Published => {}
            ChunkFate::New(sealed) => {
                let name = ChunkRef {
                    start: c.range.0,
                    end: c.range.1,
                    len: 0,
                }
                .file_name();
                match sealed.publish(&name) {
                    Ok(()) => {
                        published.push(name);
                        report.chunks_committed.push(c.path.clone());
                    }
                    Err(e) => {
                        // A failed directory fsync took the name back itself.
                        let dir_fsync = matches!(e, PendingError::DirSync { .. });
                        failure = Some((dir_fsync, pending_failed(e)));
                        break;
                    }
                }
            }
        }
    }
    let Some((dir_fsync_failed, cause)) = failure else {
        return Ok(());
    };
    // Take back what this run published, newest first. After a failed directory fsync the
    // directory's durable state is unknown and fsyncing again proves nothing, so it is not
    // retried; a crash may then still leave some of these names, each a whole verified chunk.
    for name in published.iter().rev() {
        if ledger.unlink(name).is_err() {
            kept.push(format!("ledger/{name}"));
        }
    }
    if !dir_fsync_failed && ledger.sync().is_err() {
        kept.extend(published.iter().map(|n| format!("ledger/{n}")));
    }
    Err(partial(&kept, cause))
}
