//! Export: one tar stream at a level.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::receipt::{key_id, ReceiptVerifier};
use snapseal_persist::{classify_dir, open_snapshot, plan_latest, to_hex, FileState, SnapshotName};

use crate::durable::{hash_stream, open_regular};
use crate::manifest::{Artifact, ArtifactKind, Level, Manifest, Missing, FORMAT, MANIFEST_PATH};
use crate::source::{ArtifactSource, ChunkRef, SourceError};

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The level.
    pub level: Level,
    /// The public keys a node needs (written under `keys/`).
    pub keys: Vec<VerifyingKey>,
    /// Verifies snapshots (only ones that verify are exported).
    pub verifier: Arc<dyn ReceiptVerifier>,
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportReport {
    /// The manifest written first.
    pub manifest: Manifest,
    /// Bytes of artifacts copied (the archive is slightly larger: tar headers, manifest).
    pub artifact_bytes: u64,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// No committed snapshot in the directory verifies.
    #[error("{dir}: no committed snapshot verifies; nothing to start a node from")]
    NoSnapshot {
        /// The snapshot directory.
        dir: PathBuf,
    },
    /// The replay level needs ledger entries the source does not hold.
    #[error("replay export: ledger entries {from}..={to} are missing (the snapshot is at {snapshot_idx}, the commit index {commit_idx})")]
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
    /// Reading the store failed.
    #[error("{dir}: {source}")]
    Store {
        /// The snapshot directory.
        dir: PathBuf,
        /// The error.
        #[source]
        source: snapseal_persist::StoreError,
    },
    /// Reading the ledger failed.
    #[error("ledger: {0}")]
    Source(#[from] SourceError),
    /// Reading an artifact failed.
    #[error("{path}: {step}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What was being done.
        step: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An artifact changed between hashing and copying.
    #[error("{0}: changed while being exported")]
    Changed(String),
    /// Writing the archive failed.
    #[error("writing the archive: {0}")]
    Write(#[source] io::Error),
}

/// One artifact to copy: where its bytes come from.
enum From<'a> {
    Bytes(Vec<u8>),
    File(PathBuf),
    Chunk(&'a dyn ArtifactSource, ChunkRef),
    Other(&'a dyn ArtifactSource, String),
}

impl From<'_> {
    fn open(&self, len: u64) -> Result<Box<dyn Read + '_>, ExportError> {
        Ok(match self {
            From::Bytes(b) => Box::new(&b[..]),
            From::File(p) => {
                Box::new(open_regular(p, len).map_err(|source| ExportError::Read {
                    path: p.display().to_string(),
                    step: "opening",
                    source,
                })?)
            }
            From::Chunk(s, c) => s.open_chunk(c)?,
            From::Other(s, name) => s.open_other(name)?,
        })
    }
}

/// Exports the snapshot directory `dir` and the ledger `source` at `opts.level` into `out`
/// as a tar stream. Operational and replay archives are deterministic: the same store and
/// ledger give the same bytes.
pub fn export(
    dir: &Path,
    source: &dyn ArtifactSource,
    opts: &ExportOptions,
    out: &mut dyn Write,
) -> Result<ExportReport, ExportError> {
    let store_err = |source| ExportError::Store {
        dir: dir.to_path_buf(),
        source,
    };
    let handle = RealFs::new()
        .open_dir(dir, false)
        .map_err(|source| ExportError::Read {
            path: dir.display().to_string(),
            step: "opening the snapshot directory",
            source,
        })?;
    let plan = plan_latest(&*handle, &*opts.verifier).map_err(store_err)?;
    let Some(newest) = plan.chosen else {
        return Err(ExportError::NoSnapshot {
            dir: dir.to_path_buf(),
        });
    };
    let newest_name = *newest.name();
    let newest_len = newest.file_len();
    drop(newest);
    let mut snapshots: Vec<(SnapshotName, u64)> = vec![(newest_name, newest_len)];
    if opts.level >= Level::Archival {
        snapshots.clear();
        for e in classify_dir(&*handle).map_err(store_err)? {
            let Some(s) = e.snapshot() else { continue };
            if s.name.state != FileState::Committed {
                continue;
            }
            match open_snapshot(&*handle, &s.name, &*opts.verifier) {
                Ok(f) => snapshots.push((s.name, f.file_len())),
                Err(e) => {
                    tracing::warn!(file = %s.name, error = %e, "not exported: does not verify")
                }
            }
        }
    }
    let commit_idx = source.commit_idx()?;
    let chunks_all = source.chunks()?;
    let (chunks, missing) = match opts.level {
        Level::Operational => (Vec::new(), Vec::new()),
        Level::Replay => match crate::source::cover(&chunks_all, newest_name.idx + 1, commit_idx) {
            Ok(c) => (c, Vec::new()),
            Err((from, to)) => {
                return Err(ExportError::Missing {
                    from,
                    to,
                    snapshot_idx: newest_name.idx,
                    commit_idx,
                })
            }
        },
        Level::Archival | Level::Debug => {
            let mut missing = Vec::new();
            let mut next = 1;
            for c in &chunks_all {
                if c.start > next {
                    missing.push(Missing {
                        from: next,
                        to: c.start - 1,
                    });
                }
                next = next.max(c.end + 1);
            }
            (chunks_all.clone(), missing)
        }
    };

    let mut keys = opts.keys.clone();
    keys.sort_by_key(|k| k.to_bytes());
    keys.dedup();
    let mut items: Vec<(String, ArtifactKind, u64, From<'_>)> = Vec::new();
    for k in &keys {
        let path = format!("keys/{}.pub", to_hex(&key_id(k)));
        items.push((
            path,
            ArtifactKind::Key,
            32,
            From::Bytes(k.to_bytes().to_vec()),
        ));
    }
    snapshots.sort();
    for (name, len) in &snapshots {
        let file = name.file_name();
        items.push((
            format!("snapshots/{file}"),
            ArtifactKind::Snapshot,
            *len,
            From::File(dir.join(&file)),
        ));
    }
    for c in &chunks {
        items.push((
            format!("ledger/{}", c.file_name()),
            ArtifactKind::Ledger,
            c.len,
            From::Chunk(source, *c),
        ));
    }
    if opts.level >= Level::Debug {
        let mut debug = Vec::new();
        // Best effort, as found: every other regular file of both directories.
        for e in handle.list().map_err(|source| ExportError::Read {
            path: dir.display().to_string(),
            step: "listing",
            source,
        })? {
            if e.kind != snapseal_persist::fs::EntryKind::File {
                continue;
            }
            let Some(name) = e.name.to_str() else {
                continue;
            };
            let is_exported_snapshot =
                SnapshotName::parse(name).is_some_and(|n| snapshots.iter().any(|(s, _)| *s == n));
            if !is_exported_snapshot {
                debug.push((
                    format!("debug/{name}"),
                    ArtifactKind::Debug,
                    e.len,
                    From::File(dir.join(name)),
                ));
            }
        }
        for (name, len) in source.other_files()? {
            debug.push((
                format!("debug/ledger/{name}"),
                ArtifactKind::Debug,
                len,
                From::Other(source, name),
            ));
        }
        debug.sort_by(|a, b| a.0.cmp(&b.0));
        items.extend(debug);
    }
    // First pass: hashes, so the manifest can come first and an importer can refuse early.
    let mut artifacts = Vec::with_capacity(items.len());
    for (path, kind, len, from) in &items {
        let (hash, n) = hash_stream(&mut from.open(*len)?).map_err(|source| ExportError::Read {
            path: path.clone(),
            step: "hashing",
            source,
        })?;
        if n != *len {
            return Err(ExportError::Changed(path.clone()));
        }
        artifacts.push(Artifact {
            path: path.clone(),
            kind: *kind,
            len: *len,
            blake3: hash.to_hex().to_string(),
        });
    }
    let manifest = Manifest {
        format: FORMAT.to_string(),
        level: opts.level,
        snapshot_idx: newest_name.idx,
        commit_idx,
        artifacts,
        missing,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| ExportError::Write(io::Error::other(e)))?;
    let mut tar = tar::Builder::new(out);
    append(
        &mut tar,
        MANIFEST_PATH,
        manifest_bytes.len() as u64,
        &mut &manifest_bytes[..],
    )?;
    let mut artifact_bytes = 0;
    for ((path, _, len, from), a) in items.iter().zip(&manifest.artifacts) {
        let mut check = HashingReader {
            inner: from.open(*len)?,
            hasher: blake3::Hasher::new(),
        };
        append(&mut tar, path, *len, &mut check)?;
        if check.hasher.finalize().to_hex().as_str() != a.blake3 {
            return Err(ExportError::Changed(path.clone()));
        }
        artifact_bytes += len;
    }
    tar.into_inner()
        .and_then(|w| w.flush())
        .map_err(ExportError::Write)?;
    Ok(ExportReport {
        manifest,
        artifact_bytes,
    })
}

/// Hashes what passes through, so the copy is checked against the first pass.
struct HashingReader<'a> {
    inner: Box<dyn Read + 'a>,
    hasher: blake3::Hasher,
}

impl Read for HashingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Appends one regular-file entry with fixed metadata (the determinism of the archive).
fn append(
    tar: &mut tar::Builder<&mut dyn Write>,
    path: &str,
    len: u64,
    src: &mut dyn Read,
) -> Result<(), ExportError> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(len);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    // A source shorter than `len` would make a broken entry; `take` plus the length check
    // below catches one that changed size.
    let mut limited = src.take(len);
    tar.append_data(&mut h, path, &mut limited)
        .map_err(ExportError::Write)?;
    if limited.limit() != 0 {
        return Err(ExportError::Changed(path.to_string()));
    }
    Ok(())
}
