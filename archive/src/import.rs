//! Import: verify every artifact, commit it through the crash-safe sequence, never overwrite.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use ed25519_dalek::VerifyingKey;
use snapseal_persist::fs::DirHandle;
use snapseal_persist::receipt::key_id;
use snapseal_persist::{to_hex, FileState, IngestError, Ingested, SnapshotName, SnapshotStore};

use crate::durable::{publish, write_pending, DurableError, BUF};
use crate::manifest::{ArtifactKind, Level, Manifest, FORMAT, MANIFEST_PATH, MAX_MANIFEST};
use crate::source::{ChunkLinks, ChunkRef, ChunkVerifier};

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
    /// one is skipped. Without it, the directory may only hold artifacts of this archive (an
    /// earlier, interrupted run of the same import).
    pub repopulate: bool,
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
    /// Snapshots already present (an earlier run, or repopulate).
    pub snapshots_present: Vec<String>,
    /// Chunks committed by this run.
    pub chunks_committed: Vec<String>,
    /// Chunks already present with the same bytes.
    pub chunks_present: Vec<String>,
    /// Chunks skipped because a different chunk overlaps them (repopulate only).
    pub chunks_skipped: Vec<String>,
    /// Artifact bytes read from the archive.
    pub bytes: u64,
}

/// Why an import was refused or failed. Artifacts committed before the failure verified and
/// stay; rerunning the same import completes it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The archive's structure is wrong (no manifest first, an unlisted or repeated entry,
    /// a length other than the manifest's).
    #[error("archive: {0}")]
    Malformed(String),
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
    #[error("{0}: listed in the manifest but not in the archive")]
    Absent(String),
    /// An artifact's bytes are not what the manifest says, or it does not verify.
    #[error("{path}: refused: {why}")]
    Refused {
        /// The artifact's path in the archive.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The directory holds something the import would have to overwrite, or (without
    /// repopulate) artifacts of another origin.
    #[error("{0}")]
    Conflict(String),
    /// Bringing a snapshot in failed.
    #[error("{path}: {source}")]
    Ingest {
        /// The artifact's path in the archive.
        path: String,
        /// The error.
        #[source]
        source: IngestError,
    },
    /// A filesystem or archive read failed.
    #[error("{what}: {step}: {source}")]
    Io {
        /// The file.
        what: String,
        /// What was being done.
        step: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn io_err(what: &str, step: &'static str) -> impl FnOnce(io::Error) -> ImportError {
    let what = what.to_string();
    move |source| ImportError::Io { what, step, source }
}

/// Chunk ranges the manifest lists, sorted.
fn listed_chunks(m: &Manifest) -> Result<Vec<ChunkRef>, ImportError> {
    let mut out = Vec::new();
    for a in m
        .artifacts
        .iter()
        .filter(|a| a.kind == ArtifactKind::Ledger)
    {
        let name = a.path.strip_prefix("ledger/").unwrap_or_default();
        let (start, end) = ChunkRef::parse_name(name)
            .ok_or_else(|| ImportError::Malformed(format!("{}: not a chunk name", a.path)))?;
        out.push(ChunkRef {
            start,
            end,
            len: a.len,
        });
    }
    out.sort();
    Ok(out)
}

/// Checks what the level needs is there: a snapshot at `snapshot_idx`, and for replay the
/// chunks from it to the commit index.
fn check_level(m: &Manifest, chunks: &[ChunkRef], want: Level) -> Result<(), ImportError> {
    if m.level < want {
        return Err(ImportError::Level {
            have: m.level.name(),
            want: want.name(),
        });
    }
    let has_snapshot = m.artifacts.iter().any(|a| {
        a.kind == ArtifactKind::Snapshot
            && a.path
                .strip_prefix("snapshots/")
                .and_then(SnapshotName::parse)
                .is_some_and(|n| n.idx == m.snapshot_idx)
    });
    if !has_snapshot {
        return Err(ImportError::Malformed(format!(
            "no snapshot at the manifest's index {}",
            m.snapshot_idx
        )));
    }
    // Archival never fails for a gap; replay needs the whole range whatever the archive's level.
    if want == Level::Replay {
        if let Err((from, to)) = crate::source::cover(chunks, m.snapshot_idx + 1, m.commit_idx) {
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

/// Existing sealed chunks of the ledger directory.
fn existing_chunks(ledger: &dyn DirHandle) -> Result<Vec<(u64, u64)>, ImportError> {
    let mut out: Vec<(u64, u64)> = ledger
        .list()
        .map_err(io_err(&ledger.path().display().to_string(), "listing"))?
        .iter()
        .filter_map(|e| e.name.to_str().and_then(ChunkRef::parse_name))
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// Imports the tar stream `src` into `store` (snapshots, through its ingest) and the ledger
/// directory `ledger` (chunks, each verified by `chunks` before it gets its committed name).
/// The manifest is read first and the level checked before anything is written.
pub fn import(
    src: &mut dyn Read,
    store: &SnapshotStore,
    ledger: &dyn DirHandle,
    chunks: &dyn ChunkVerifier,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut archive = tar::Archive::new(src);
    let mut entries = archive
        .entries()
        .map_err(io_err("archive", "reading entries"))?;
    let manifest: Manifest = {
        let mut first = entries
            .next()
            .ok_or_else(|| ImportError::Malformed("empty archive".into()))?
            .map_err(io_err("archive", "reading the first entry"))?;
        let path = entry_path(&first)?;
        if path != MANIFEST_PATH || first.size() > MAX_MANIFEST {
            return Err(ImportError::Malformed(format!(
                "the first entry must be {MANIFEST_PATH} of at most {MAX_MANIFEST} bytes, not {path}"
            )));
        }
        let mut bytes = Vec::new();
        (&mut first)
            .take(MAX_MANIFEST)
            .read_to_end(&mut bytes)
            .map_err(io_err(MANIFEST_PATH, "reading"))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ImportError::Malformed(format!("{MANIFEST_PATH}: {e}")))?
    };
    if manifest.format != FORMAT {
        return Err(ImportError::Malformed(format!(
            "format {:?}, expected {FORMAT:?}",
            manifest.format
        )));
    }
    let listed = listed_chunks(&manifest)?;
    check_level(&manifest, &listed, opts.level)?;
    let by_path: BTreeMap<&str, &crate::manifest::Artifact> = manifest
        .artifacts
        .iter()
        .map(|a| (a.path.as_str(), a))
        .collect();
    if by_path.len() != manifest.artifacts.len() {
        return Err(ImportError::Malformed("an artifact is listed twice".into()));
    }
    let existing = existing_chunks(ledger)?;
    if !opts.repopulate {
        let listed_snapshots: BTreeSet<&str> = manifest
            .artifacts
            .iter()
            .filter_map(|a| a.path.strip_prefix("snapshots/"))
            .collect();
        let stores = store
            .list()
            .map_err(|e| ImportError::Conflict(format!("listing the store: {e}")))?;
        for s in stores
            .iter()
            .filter(|s| s.name.state == FileState::Committed)
        {
            if !listed_snapshots.contains(s.name.file_name().as_str()) {
                return Err(ImportError::Conflict(format!(
                    "{} holds {}, which this archive does not; import into a fresh directory or repopulate",
                    store.dir().display(),
                    s.name
                )));
            }
        }
        for &(start, end) in &existing {
            if !listed.iter().any(|c| (c.start, c.end) == (start, end)) {
                return Err(ImportError::Conflict(format!(
                    "{} holds ledger_{start}-{end}, which this archive does not; import into a fresh directory or repopulate",
                    ledger.path().display()
                )));
            }
        }
    }

    let mut report = ImportReport {
        level: Some(manifest.level),
        snapshot_idx: manifest.snapshot_idx,
        commit_idx: manifest.commit_idx,
        ..ImportReport::default()
    };
    let mut seen = BTreeSet::new();
    let mut links: BTreeMap<(u64, u64), ChunkLinks> = BTreeMap::new();
    for entry in entries {
        let mut entry = entry.map_err(io_err("archive", "reading an entry"))?;
        let path = entry_path(&entry)?;
        let Some(artifact) = by_path.get(path.as_str()) else {
            return Err(ImportError::Malformed(format!(
                "{path}: not in the manifest"
            )));
        };
        if !seen.insert(path.clone()) {
            return Err(ImportError::Malformed(format!("{path}: appears twice")));
        }
        if entry.size() != artifact.len {
            return Err(ImportError::Refused {
                path,
                why: format!("{} bytes, the manifest says {}", entry.size(), artifact.len),
            });
        }
        report.bytes += artifact.len;
        let refused = |why: String| ImportError::Refused {
            path: path.clone(),
            why,
        };
        match artifact.kind {
            ArtifactKind::Debug => {
                // For a human to look at, never brought into a node's directory; its bytes
                // are still checked, so a tampered debug archive is refused as a whole.
                let (hash, _) =
                    crate::durable::hash_stream(&mut entry).map_err(io_err(&path, "reading"))?;
                if hash.to_hex().as_str() != artifact.blake3 {
                    return Err(refused("BLAKE3 differs from the manifest's".into()));
                }
            }
            ArtifactKind::Key => {
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(64)
                    .read_to_end(&mut bytes)
                    .map_err(io_err(&path, "reading"))?;
                if blake3::hash(&bytes).to_hex().as_str() != artifact.blake3 {
                    return Err(refused("BLAKE3 differs from the manifest's".into()));
                }
                let trusted = opts
                    .trusted_keys
                    .iter()
                    .any(|k| k.as_bytes()[..] == bytes[..]);
                if !trusted {
                    return Err(refused("a key this node does not trust".into()));
                }
                let named = opts
                    .trusted_keys
                    .iter()
                    .find(|k| k.as_bytes()[..] == bytes[..])
                    .map(|k| format!("keys/{}.pub", to_hex(&key_id(k))));
                if named.as_deref() != Some(path.as_str()) {
                    return Err(refused("named for another key".into()));
                }
            }
            ArtifactKind::Snapshot => {
                let name = path
                    .strip_prefix("snapshots/")
                    .and_then(SnapshotName::parse)
                    .filter(|n| n.state == FileState::Committed)
                    .ok_or_else(|| refused("not a committed snapshot name".into()))?;
                let mut file = store.begin_ingest(artifact.len);
                let mut h = blake3::Hasher::new();
                let mut buf = vec![0u8; BUF];
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(io_err(&path, "reading")(e)),
                    };
                    h.update(&buf[..n]);
                    io::Write::write_all(&mut file, &buf[..n])
                        .map_err(io_err(&path, "writing the pending file"))?;
                }
                if h.finalize().to_hex().as_str() != artifact.blake3 {
                    // Dropping the ingest leaves at most a stale pending file, which the
                    // store removes when next opened.
                    return Err(refused("BLAKE3 differs from the manifest's".into()));
                }
                let done = store
                    .finish_ingest(file)
                    .map_err(|source| ImportError::Ingest {
                        path: path.clone(),
                        source,
                    })?;
                if done.name() != name {
                    return Err(refused(format!(
                        "its header names {}, the archive labels it {name}",
                        done.name()
                    )));
                }
                match done {
                    Ingested::Committed(_) => report.snapshots_committed.push(path.clone()),
                    _ => report.snapshots_present.push(path.clone()),
                }
            }
            ArtifactKind::Ledger => {
                let file_name = path.strip_prefix("ledger/").unwrap_or_default().to_string();
                let (start, end) = ChunkRef::parse_name(&file_name)
                    .ok_or_else(|| refused("not a chunk name".into()))?;
                if existing.contains(&(start, end)) {
                    let bytes = ledger
                        .open_read(&file_name)
                        .map_err(io_err(&file_name, "reading the existing chunk"))?;
                    if blake3::hash(&bytes).to_hex().as_str() != artifact.blake3 {
                        return Err(ImportError::Conflict(format!(
                            "{}: exists with other bytes; never overwritten",
                            ledger.path().join(&file_name).display()
                        )));
                    }
                    let l = chunks.verify_chunk(&bytes, start, end).map_err(|why| {
                        ImportError::Conflict(format!(
                            "existing {file_name} does not verify: {why}"
                        ))
                    })?;
                    links.insert((start, end), l);
                    report.chunks_present.push(path.clone());
                    io::copy(&mut entry, &mut io::sink()).map_err(io_err(&path, "reading"))?;
                    continue;
                }
                if existing.iter().any(|&(s, e)| s <= end && start <= e) {
                    if opts.repopulate {
                        report.chunks_skipped.push(path.clone());
                        io::copy(&mut entry, &mut io::sink()).map_err(io_err(&path, "reading"))?;
                        continue;
                    }
                    return Err(ImportError::Conflict(format!(
                        "{path} overlaps a different chunk in {}",
                        ledger.path().display()
                    )));
                }
                let pending = format!("ledger_{start}-{end}.pending");
                let fail = |w: DurableError| ImportError::Io {
                    what: ledger.path().join(&pending).display().to_string(),
                    step: w.step,
                    source: w.source,
                };
                let (hash, n) =
                    write_pending(ledger, &pending, &mut entry, artifact.len).map_err(fail)?;
                let verdict = if n != artifact.len || hash.to_hex().as_str() != artifact.blake3 {
                    Err("BLAKE3 differs from the manifest's".to_string())
                } else {
                    ledger
                        .open_read(&pending)
                        .map_err(|e| format!("reading it back: {e}"))
                        .and_then(|bytes| chunks.verify_chunk(&bytes, start, end))
                };
                match verdict {
                    Ok(l) => {
                        publish(ledger, &pending, &file_name).map_err(fail)?;
                        links.insert((start, end), l);
                        report.chunks_committed.push(path.clone());
                    }
                    Err(why) => {
                        let _ = ledger.unlink(&pending);
                        return Err(refused(why));
                    }
                }
            }
        }
    }
    for a in &manifest.artifacts {
        if !seen.contains(&a.path) {
            return Err(ImportError::Absent(a.path.clone()));
        }
    }
    // Consecutive chunks must continue one another's Merkle tree.
    let mut prev: Option<(&(u64, u64), &ChunkLinks)> = None;
    for (range, l) in &links {
        if let Some((p, pl)) = prev {
            if p.1 + 1 == range.0 && pl.end != l.start {
                return Err(ImportError::Refused {
                    path: format!(
                        "ledger/{}",
                        ChunkRef {
                            start: range.0,
                            end: range.1,
                            len: 0
                        }
                        .file_name()
                    ),
                    why: format!("does not continue the tree of ledger_{}-{}", p.0, p.1),
                });
            }
        }
        prev = Some((range, l));
    }
    Ok(report)
}

fn entry_path<R: Read>(e: &tar::Entry<'_, R>) -> Result<String, ImportError> {
    if e.header().entry_type() != tar::EntryType::Regular {
        return Err(ImportError::Malformed(
            "an entry that is not a regular file".into(),
        ));
    }
    let p = e.path_bytes().into_owned();
    String::from_utf8(p).map_err(|_| ImportError::Malformed("a non-UTF-8 path".into()))
}
