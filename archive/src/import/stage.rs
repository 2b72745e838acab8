//! Step 3 of an import (docs/ARCHIVE.md): each entry read, checked as it streams, and staged
//! — a snapshot into the store's unfinished ingest, a chunk into its sealed pending file —
//! or found already present with the same bytes.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};

use snapseal_persist::internals::chunks::ChunkImport;
use snapseal_persist::internals::format::MAGIC;
use snapseal_persist::internals::fs::{Expect, Untrusted, UntrustedError};
use snapseal_persist::internals::receipt::key_id;
use snapseal_persist::internals::{Escaped, VerifiedIngest};
use snapseal_persist::{to_hex, IngestError, SnapshotName};

use super::{chunk_expect, io_err, ImportError, ImportOptions, Target};
use crate::container::{hash_stream, Exact, BUF};
use crate::manifest::{Artifact, ArtifactKind, MAX_SNAPSHOT};
use crate::pending::{PendingError, PendingFile, Sealed, Stale};
use crate::snapshot::{SnapshotCheck, SnapshotProof};
use crate::source::{CheckedChunk, ChunkCheckError, ChunkRef, ChunkVerifier};

/// A snapshot read from the archive.
pub(super) struct StagedSnapshot {
    pub(super) path: String,
    pub(super) proof: SnapshotProof,
    /// Durable and fully verified under its pending name, waiting for its committed name;
    /// `None`: the directory holds it already, with the same bytes.
    pub(super) ingest: Option<VerifiedIngest>,
}

/// What becomes of a chunk read from the archive.
#[derive(Debug)]
pub(super) enum ChunkFate<'a> {
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
    pub(super) fn is_new(&self) -> bool {
        matches!(self, ChunkFate::New(_))
    }
}

pub(super) struct StagedChunk<'a> {
    pub(super) path: String,
    pub(super) range: (u64, u64),
    pub(super) checked: CheckedChunk,
    pub(super) fate: ChunkFate<'a>,
}

/// Everything read from the archive and not yet published. Dropped, what it staged goes
/// with it: the store's ingest files and the sealed pending chunks remove themselves.
pub(super) struct Stage<'a> {
    pub(super) target: Target<'a>,
    /// The chunks of chunked snapshots, added to the store's packs (each checked against its
    /// name) and claimed against its retention until this stage is dropped, after
    /// publication: the snapshots naming them are verified against the packs and committed
    /// meanwhile. Chunks of an import that failed stay in sealed packs, named by no snapshot,
    /// until the next retention sweep.
    pub(super) snapshot_chunks: Option<ChunkImport>,
    pub(super) snapshots: Vec<StagedSnapshot>,
    pub(super) chunks: Vec<StagedChunk<'a>>,
}

/// BLAKE3 of a file of the target directory.
pub(super) fn hash_file(file: &Untrusted) -> Result<blake3::Hash, ImportError> {
    let (hash, _) = hash_stream(&mut file.reader()).map_err(|e| untrusted_read(file, e))?;
    Ok(hash)
}

/// A read error of a file of the target directory: the [`UntrustedError`] inside it when
/// there is one (it names the file).
pub(super) fn untrusted_read(file: &Untrusted, e: io::Error) -> ImportError {
    if !e.get_ref().is_some_and(|i| i.is::<UntrustedError>()) {
        return ImportError::Io {
            what: file.path().display().to_string(),
            step: "reading",
            source: e,
        };
    }
    ImportError::File(e)
}

/// Reads one entry (of the size the manifest gives) and stages or checks it.
pub(super) fn stage_entry<R: Read>(
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
        ArtifactKind::Chunk => {
            // At most 256 KiB (the manifest's cap, checked against the tar header too).
            let mut bytes = vec![0u8; usize::try_from(artifact.len).unwrap_or(0)];
            data.fill(&mut bytes).map_err(reading)?;
            let hash = blake3::hash(&bytes);
            if hash.to_hex().as_str() != artifact.blake3 {
                return Err(digest_differs());
            }
            let store = stage.target.store;
            let import = stage
                .snapshot_chunks
                .get_or_insert_with(|| ChunkImport::new(store));
            import
                .add(hash.as_bytes(), &bytes)
                .map_err(|e| ImportError::Io {
                    what: path.to_string(),
                    step: "storing the chunk in the store's packs",
                    source: io::Error::other(e),
                })?;
        }
        ArtifactKind::Snapshot => {
            // The chunks come first (kind order): durable before a chunked snapshot is
            // verified against the packs.
            if let Some(import) = stage.snapshot_chunks.as_mut() {
                import.seal().map_err(|e| ImportError::Io {
                    what: path.to_string(),
                    step: "making the archive's chunks durable",
                    source: io::Error::other(e),
                })?;
            }
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

pub(super) fn stage_snapshot<R: Read>(
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
    let present =
        Untrusted::open_in(target.dir.fd(), file_name, expect).map_err(ImportError::file)?;
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
                let source = match target.store.verify_ingest(file) {
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
    // Verified whole now (receipt, body digest, zstd frame, from the file on disk), so a
    // snapshot that would fail at publication fails here, before anything is committed.
    let ingest = match ingest {
        Some(file) => {
            Some(
                target
                    .store
                    .verify_ingest(file)
                    .map_err(|source| ImportError::Ingest {
                        path: path.to_string(),
                        source,
                    })?,
            )
        }
        None => None,
    };
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

pub(super) fn stage_chunk<'a, R: Read>(
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
        let Some(file) = Untrusted::open_in(ledger.fd(), file_name, chunk_expect())
            .map_err(ImportError::file)?
        else {
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

pub(super) fn pending_failed(e: PendingError) -> ImportError {
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
