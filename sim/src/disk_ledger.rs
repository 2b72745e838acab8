//! The reference ledger on disk: append-only chunk files and a compact Merkle frontier.
//!
//! Layout of the ledger directory (see [`ChunkName`] and the [`chunk`] byte layout):
//! - `ledger_<start>`: the open chunk, appended to at every commit and fsynced;
//! - `ledger_<start>-<end>.committed`: a sealed chunk: once the open chunk reaches the size
//!   threshold at a committed signature tx it is fsynced, closed, renamed (no replace) and the
//!   directory fsynced, the same sequence as a snapshot file;
//! - `ledger_<start>-<end>.pending`: a whole chunk being written (recovery, import); removed
//!   when found at open.
//!
//! Entries past the commit index stay in memory until committed (their number is bounded by
//! the replication lag): every byte on disk is committed, and a rollback, which never goes
//! below the commit index, truncates memory only. In memory the ledger holds the frontier at
//! the open chunk's start, the leaf hashes of the open chunk and of the uncommitted tail, and
//! one `(start, end)` pair per sealed chunk: bounded by the chunk size, not the ledger's length.
//!
//! A crash can tear the open chunk's tail. [`DiskLedger::open`] keeps its valid entries up to
//! the last signature tx, writes them whole as a sealed chunk (pending, fsync, close, rename,
//! directory fsync) and then removes the open file: the ledger continues after that signature.

mod artifacts;
pub mod chunk;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::{SigningKey, VerifyingKey};
use parking_lot::Mutex;
use snapseal_actors::{InclusionProof, ProofSource};
use snapseal_persist::fs::{
    publish, write_all, write_pending, DirHandle, DurableError, EntryKind, FileSystem, WritableFile,
};
use snapseal_persist::receipt::{sign_root, SignedRoot};
use snapseal_persist::Hash;

pub use artifacts::{frontier_digest, ChunkKeys, LedgerDir};
pub use chunk::{verify_chunk, ChunkError, ChunkName, VerifiedChunk};

use crate::frontier::{proof_from, Frontier};
use crate::ledger::TxKind;
use chunk::{decode_header, encode_entry, encode_header, leaf_of, walk_entries};

/// Default size at which the open chunk is sealed (at the next committed signature).
pub const DEFAULT_CHUNK_BYTES: u64 = 8 << 20;

/// Largest chunk file the ledger reads (a sealed chunk is at most the threshold plus one
/// signature interval of entries); anything larger is refused before it is mapped.
pub const MAX_CHUNK_FILE: u64 = 1 << 32;

/// A disk ledger failure, naming the file and the step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// A filesystem call failed.
    #[error("ledger {path}: {step}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A chunk file's contents are bad.
    #[error("ledger chunk {path}: {source}")]
    Chunk {
        /// The chunk file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ChunkError,
    },
    /// The sealed chunks leave a gap or overlap.
    #[error("ledger {dir}: chunks are not contiguous: {what}")]
    Gap {
        /// The ledger directory.
        dir: PathBuf,
        /// The missing or overlapping range.
        what: String,
    },
    /// The call is not allowed in the ledger's state.
    #[error("ledger: {0}")]
    Refused(String),
    /// An earlier write or fsync failed; the ledger accepts no more writes.
    #[error("ledger failed earlier ({0}); it accepts no more writes")]
    Failed(String),
}

/// The open chunk.
#[derive(Debug)]
struct OpenChunk {
    start: u64,
    file: Box<dyn WritableFile>,
    bytes: u64,
    /// Leaves of the entries written to it.
    leaves: Vec<Hash>,
    last_is_signature: bool,
}

#[derive(Debug)]
struct Inner {
    dir: Arc<dyn DirHandle>,
    chunk_bytes: u64,
    /// Sealed chunks, in order.
    sealed: Vec<(u64, u64)>,
    /// Index before the first entry this ledger holds (0 from genesis, more after an import).
    base: u64,
    /// Frontier after the last written (committed) entry.
    written: Frontier,
    /// Frontier at the open chunk's start (the next one's, with no open chunk).
    open_start: Frontier,
    open: Option<OpenChunk>,
    /// Uncommitted entries: `(tx, leaf, tx digest)`, from `written.len() + 1` on.
    tail: Vec<(TxKind, Hash, Hash)>,
    /// Frontier after the last entry (tail included).
    frontier: Frontier,
    failed: Option<String>,
}

/// The reference ledger on disk (index 1 is the first tx). Cloning shares it.
#[derive(Clone, Debug)]
pub struct DiskLedger {
    inner: Arc<Mutex<Inner>>,
    key: Arc<SigningKey>,
}

fn io_err(
    dir: &dyn DirHandle,
    name: &str,
    step: &'static str,
) -> impl FnOnce(io::Error) -> LedgerError {
    let path = dir.path().join(name);
    move |source| LedgerError::Io { path, step, source }
}

/// Reads a chunk file of the ledger directory (regular files only, size capped).
pub fn read_chunk_file(
    dir: &dyn DirHandle,
    name: &str,
) -> io::Result<snapseal_persist::fs::FileBytes> {
    dir.open_read_checked(name, 0, &mut |_, size| {
        if size > MAX_CHUNK_FILE {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{size} bytes, more than a chunk may hold"),
            ))
        } else {
            Ok(())
        }
    })
}

/// Writes `bytes` as the sealed chunk `start..=end` through the crash-safe sequence: a
/// `.pending` file created exclusively (a stale one removed first), written, fsynced, closed,
/// renamed without replacing to the committed name, directory fsynced. Refuses if the
/// committed name exists.
pub fn write_sealed(
    dir: &dyn DirHandle,
    start: u64,
    end: u64,
    src: &mut dyn Read,
) -> Result<(), LedgerError> {
    let pending = ChunkName::Pending { start, end }.file_name();
    let committed = ChunkName::Committed { start, end }.file_name();
    let failed = |name: &str| {
        let path = dir.path().join(name);
        move |e: DurableError| LedgerError::Io {
            path,
            step: e.step,
            source: e.source,
        }
    };
    write_pending(dir, &pending, src, u64::MAX, &mut |_| {}).map_err(failed(&pending))?;
    publish(dir, &pending, &committed).map_err(failed(&committed))
}

/// Sealed `(start, end)` ranges, open chunk starts, stale pending names.
type Listing = (Vec<(u64, u64)>, Vec<u64>, Vec<String>);

/// Lists the ledger directory: sealed chunks in order, the open chunk, stale pending files.
fn list_chunks(dir: &dyn DirHandle) -> Result<Listing, LedgerError> {
    let entries = dir.list().map_err(io_err(dir, "", "listing"))?;
    let (mut sealed, mut open, mut pending) = (Vec::new(), Vec::new(), Vec::new());
    for e in entries {
        let Some(name) = e.name.to_str().and_then(ChunkName::parse) else {
            continue;
        };
        if e.kind != EntryKind::File {
            return Err(LedgerError::Refused(format!(
                "{} is not a regular file",
                dir.path().join(&e.name).display()
            )));
        }
        match name {
            ChunkName::Committed { start, end } => sealed.push((start, end)),
            ChunkName::Open { start } => open.push(start),
            ChunkName::Pending { .. } => pending.push(name.file_name()),
        }
    }
    sealed.sort_unstable();
    open.sort_unstable();
    Ok((sealed, open, pending))
}

/// Checks sealed chunks are contiguous; returns the first start.
fn check_contiguous(dir: &dyn DirHandle, sealed: &[(u64, u64)]) -> Result<(), LedgerError> {
    for w in sealed.windows(2) {
        if w[1].0 != w[0].1 + 1 {
            return Err(LedgerError::Gap {
                dir: dir.path().to_path_buf(),
                what: if w[1].0 > w[0].1 + 1 {
                    format!("{}..={} missing", w[0].1 + 1, w[1].0 - 1)
                } else {
                    format!("{}..={} overlaps {}..={}", w[0].0, w[0].1, w[1].0, w[1].1)
                },
            });
        }
    }
    Ok(())
}

impl DiskLedger {
    /// Opens (creating if missing) the ledger in `path`: removes stale pending chunks, seals
    /// a crashed run's open chunk up to its last signature tx, checks the sealed chunks are
    /// contiguous and restores the frontier from the last one (one chunk read, whatever the
    /// ledger's length). `chunk_bytes` is the size at which the open chunk is sealed.
    pub fn open(
        fs: &dyn FileSystem,
        path: &Path,
        key: SigningKey,
        chunk_bytes: u64,
    ) -> Result<Self, LedgerError> {
        let dir = fs.open_dir(path, true).map_err(|source| LedgerError::Io {
            path: path.to_path_buf(),
            step: "opening the ledger directory",
            source,
        })?;
        let (mut sealed, open, pending) = list_chunks(&*dir)?;
        for p in &pending {
            dir.unlink(p)
                .map_err(io_err(&*dir, p, "removing a stale pending chunk"))?;
        }
        if open.len() > 1 {
            return Err(LedgerError::Refused(format!(
                "{}: more than one open chunk",
                dir.path().display()
            )));
        }
        if let Some(&start) = open.first() {
            let name = ChunkName::Open { start }.file_name();
            if let Some(&(_, end)) = sealed.last() {
                if start != end + 1 {
                    return Err(LedgerError::Gap {
                        dir: dir.path().to_path_buf(),
                        what: format!("open chunk {name} does not follow {end}"),
                    });
                }
            }
            if let Some(end) = seal_crashed(&*dir, start)? {
                sealed.push((start, end));
            }
            dir.unlink(&name)
                .map_err(io_err(&*dir, &name, "removing the recovered open chunk"))?;
            dir.sync()
                .map_err(io_err(&*dir, "", "fsync of the directory"))?;
        }
        check_contiguous(&*dir, &sealed)?;
        let (base, written) = match sealed.last() {
            None => (0, Frontier::new()),
            Some(&(start, end)) => {
                let name = ChunkName::Committed { start, end }.file_name();
                let bytes =
                    read_chunk_file(&*dir, &name).map_err(io_err(&*dir, &name, "reading"))?;
                let header = decode_header(&bytes).map_err(|source| LedgerError::Chunk {
                    path: dir.path().join(&name),
                    source,
                })?;
                let mut f = header.frontier.clone();
                let (_, err) =
                    walk_entries(&bytes, &header, |idx, tx, _| f.push(leaf_of(idx, &tx)));
                if let Some(source) = err {
                    return Err(LedgerError::Chunk {
                        path: dir.path().join(&name),
                        source,
                    });
                }
                if f.len() != end {
                    return Err(LedgerError::Chunk {
                        path: dir.path().join(&name),
                        source: ChunkError::End(format!("ends at {}, not {end}", f.len())),
                    });
                }
                (sealed.first().map_or(0, |s| s.0 - 1), f)
            }
        };
        Ok(DiskLedger {
            inner: Arc::new(Mutex::new(Inner {
                dir,
                chunk_bytes,
                sealed,
                base,
                open_start: written.clone(),
                frontier: written.clone(),
                written,
                open: None,
                tail: Vec::new(),
                failed: None,
            })),
            key: Arc::new(key),
        })
    }

    /// The public key that verifies this ledger's signatures.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Index of the last tx (0 when empty).
    pub fn last_idx(&self) -> u64 {
        self.inner.lock().frontier.len()
    }

    /// Index of the last committed (written) tx.
    pub fn commit_idx(&self) -> u64 {
        self.inner.lock().written.len()
    }

    /// Index before the first tx held (0 unless the ledger starts after an imported snapshot).
    pub fn base(&self) -> u64 {
        self.inner.lock().base
    }

    /// The sealed chunks, as `(start, end)`.
    pub fn sealed(&self) -> Vec<(u64, u64)> {
        self.inner.lock().sealed.clone()
    }

    /// Appends `kind` to the uncommitted tail; returns its index.
    pub fn append(&self, kind: TxKind) -> u64 {
        let mut e = self.inner.lock();
        let idx = e.frontier.len() + 1;
        let digest = kind.digest(idx);
        let leaf = snapseal_persist::receipt::leaf_hash(&digest, &kind.claims_digest());
        e.frontier.push(leaf);
        e.tail.push((kind, leaf, digest));
        idx
    }

    /// Appends a signature tx signing the root over every tx before it.
    pub fn append_signature(&self) -> SignedRoot {
        let root = self.inner.lock().frontier.root();
        let sig_idx = self.last_idx() + 1;
        let signed = sign_root(&self.key, sig_idx, &root);
        self.append(TxKind::Signature(signed.clone()));
        signed
    }

    /// Rolls the uncommitted tail back to `idx`; refused below the commit index.
    pub fn truncate(&self, idx: u64) -> Result<(), LedgerError> {
        let mut e = self.inner.lock();
        let committed = e.written.len();
        if idx < committed {
            return Err(LedgerError::Refused(format!(
                "rollback to {idx} is below the commit index {committed}"
            )));
        }
        let keep = usize::try_from(idx - committed).unwrap_or(usize::MAX);
        e.tail.truncate(keep);
        let mut f = e.written.clone();
        for (_, leaf, _) in &e.tail {
            f.push(*leaf);
        }
        e.frontier = f;
        Ok(())
    }

    /// Commits every tx up to `idx`: appends them to the open chunk (creating it, its name made
    /// durable) and fsyncs it; seals the open chunk when it reached the size threshold and
    /// ends with a signature tx. A failed write or fsync fails the ledger for good.
    pub fn commit(&self, idx: u64) -> Result<(), LedgerError> {
        let mut guard = self.inner.lock();
        let e = &mut *guard;
        if let Some(f) = &e.failed {
            return Err(LedgerError::Failed(f.clone()));
        }
        let committed = e.written.len();
        if idx <= committed {
            return Ok(());
        }
        if idx > e.frontier.len() {
            return Err(LedgerError::Refused(format!(
                "commit {idx} beyond the last tx {}",
                e.frontier.len()
            )));
        }
        let r = commit_locked(e, idx - committed);
        if let Err(err) = &r {
            e.failed = Some(err.to_string());
        }
        r
    }

    /// The tx at `idx` and its leaf, read from disk for committed txs (None if not held).
    pub fn tx(&self, idx: u64) -> Result<Option<TxKind>, LedgerError> {
        let mut found = None;
        self.for_each(idx, idx, |_, tx| found = Some(tx.clone()))?;
        Ok(found)
    }

    /// Visits txs `from ..= to` in order (disk, then the uncommitted tail). Returns how many
    /// were visited; fewer than asked when the ledger does not hold them all.
    pub fn for_each(
        &self,
        from: u64,
        to: u64,
        mut f: impl FnMut(u64, &TxKind),
    ) -> Result<u64, LedgerError> {
        let (dir, sealed, open_start, written_len, tail) = {
            let e = self.inner.lock();
            let tail: Vec<TxKind> = e.tail.iter().map(|t| t.0.clone()).collect();
            (
                Arc::clone(&e.dir),
                e.sealed.clone(),
                e.open.as_ref().map(|o| o.start),
                e.written.len(),
                tail,
            )
        };
        let mut seen = 0u64;
        // (file, whether it is the open chunk, the last entry this read needs from it)
        let mut files: Vec<(String, bool, u64)> = sealed
            .iter()
            .filter(|(s, e)| *e >= from && *s <= to)
            .map(|&(s, e)| {
                (
                    ChunkName::Committed { start: s, end: e }.file_name(),
                    false,
                    e,
                )
            })
            .collect();
        if let Some(s) = open_start {
            if written_len >= from && s <= to {
                files.push((ChunkName::Open { start: s }.file_name(), true, written_len));
            }
        }
        for (name, open, end) in files {
            let bytes = read_chunk_file(&*dir, &name).map_err(io_err(&*dir, &name, "reading"))?;
            let header = decode_header(&bytes).map_err(|source| LedgerError::Chunk {
                path: dir.path().join(&name),
                source,
            })?;
            let mut last = None;
            let (_, err) = walk_entries(&bytes, &header, |idx, tx, _| {
                last = Some(idx);
                if (from..=to).contains(&idx) && idx <= written_len {
                    f(idx, &tx);
                    seen += 1;
                }
            });
            // The open chunk is read without the lock while commits append to it: a torn
            // entry after every entry this read needs (up to `end`, what was written when it
            // started) is an append in progress, not damage.
            let complete = open && last.is_some_and(|l| l >= end.min(to));
            if let Some(source) = err.filter(|_| !complete) {
                return Err(LedgerError::Chunk {
                    path: dir.path().join(&name),
                    source,
                });
            }
        }
        for (i, tx) in tail.iter().enumerate() {
            let idx = written_len + 1 + i as u64;
            if (from..=to).contains(&idx) {
                f(idx, tx);
                seen += 1;
            }
        }
        Ok(seen)
    }

    /// The proof source for signatures of this ledger.
    pub fn proofs(&self) -> Arc<dyn ProofSource> {
        Arc::new(DiskProofs {
            ledger: self.clone(),
        })
    }

    /// Leaves from the frontier at the start of the chunk holding `idx` up to `size`, with
    /// that frontier.
    fn proof_material(&self, idx: u64, size: u64) -> Result<(Frontier, Vec<Hash>), String> {
        let e = self.inner.lock();
        let mem_start = e.open_start.len() + 1;
        let mut leaves = Vec::new();
        let at = if idx >= mem_start {
            e.open_start.clone()
        } else {
            // An older chunk: its header's frontier, then every leaf from disk up to the open
            // chunk (bounded by how far back the evidence is, a few chunks at most).
            let Some(pos) = e.sealed.iter().position(|&(s, end)| s <= idx && idx <= end) else {
                return Err(format!("tx {idx} is not in the ledger"));
            };
            let mut at = None;
            for &(s, end) in &e.sealed[pos..] {
                if s > size {
                    break;
                }
                let name = ChunkName::Committed { start: s, end }.file_name();
                let bytes =
                    read_chunk_file(&*e.dir, &name).map_err(|err| format!("{name}: {err}"))?;
                let header = decode_header(&bytes).map_err(|err| format!("{name}: {err}"))?;
                if at.is_none() {
                    at = Some(header.frontier.clone());
                }
                let (_, err) =
                    walk_entries(&bytes, &header, |i, tx, _| leaves.push(leaf_of(i, &tx)));
                if let Some(err) = err {
                    return Err(format!("{name}: {err}"));
                }
            }
            at.ok_or_else(|| format!("tx {idx} is not in the ledger"))?
        };
        if let Some(o) = &e.open {
            leaves.extend_from_slice(&o.leaves);
        }
        leaves.extend(e.tail.iter().map(|t| t.1));
        Ok((at, leaves))
    }

    fn tx_digest(&self, idx: u64) -> Result<Hash, String> {
        {
            let e = self.inner.lock();
            let w = e.written.len();
            if idx > w {
                let i = usize::try_from(idx - w - 1).map_err(|e| e.to_string())?;
                return e
                    .tail
                    .get(i)
                    .map(|t| t.2)
                    .ok_or_else(|| format!("tx {idx} is not in the ledger"));
            }
        }
        match self.tx(idx).map_err(|e| e.to_string())? {
            Some(tx) => Ok(tx.digest(idx)),
            None => Err(format!("tx {idx} is not in the ledger")),
        }
    }
}

/// Writes the first `n` tail entries to the open chunk, fsyncs, seals if due.
fn commit_locked(e: &mut Inner, n: u64) -> Result<(), LedgerError> {
    let n = usize::try_from(n).unwrap_or(usize::MAX).min(e.tail.len());
    let mut buf = Vec::new();
    let first = e.written.len() + 1;
    let dir = Arc::clone(&e.dir);
    if e.open.is_none() {
        let start = first;
        let name = ChunkName::Open { start }.file_name();
        let mut file = dir.create_new(&name, 0o600).map_err(io_err(
            &*dir,
            &name,
            "creating the open chunk (O_EXCL)",
        ))?;
        write_all(&mut *file, &encode_header(start, &e.written)).map_err(io_err(
            &*dir,
            &name,
            "writing the header",
        ))?;
        dir.sync()
            .map_err(io_err(&*dir, "", "fsync of the directory"))?;
        e.open_start = e.written.clone();
        e.open = Some(OpenChunk {
            start,
            file,
            bytes: 0,
            leaves: Vec::new(),
            last_is_signature: false,
        });
    }
    let Some(open) = e.open.as_mut() else {
        return Err(LedgerError::Refused("internal: no open chunk".into()));
    };
    let name = ChunkName::Open { start: open.start }.file_name();
    for (i, (tx, leaf, _)) in e.tail.drain(..n).enumerate() {
        encode_entry(first + i as u64, &tx, &mut buf);
        open.leaves.push(leaf);
        e.written.push(leaf);
        open.last_is_signature = matches!(tx, TxKind::Signature(_));
    }
    write_all(&mut *open.file, &buf).map_err(io_err(&*dir, &name, "appending"))?;
    open.bytes += buf.len() as u64;
    open.file.sync().map_err(io_err(&*dir, &name, "fsync"))?;
    if open.bytes >= e.chunk_bytes && open.last_is_signature {
        let Some(open) = e.open.take() else {
            return Ok(());
        };
        let end = e.written.len();
        open.file.close().map_err(io_err(&*dir, &name, "close"))?;
        let sealed = ChunkName::Committed {
            start: open.start,
            end,
        }
        .file_name();
        dir.rename_noreplace(&name, &sealed).map_err(io_err(
            &*dir,
            &sealed,
            "rename (no replace)",
        ))?;
        dir.sync()
            .map_err(io_err(&*dir, "", "fsync of the directory"))?;
        e.sealed.push((open.start, end));
        e.open_start = e.written.clone();
    }
    Ok(())
}

/// Seals a crashed run's open chunk `start` up to its last signature tx; returns its end, or
/// None if it held no complete signature interval.
fn seal_crashed(dir: &dyn DirHandle, start: u64) -> Result<Option<u64>, LedgerError> {
    let name = ChunkName::Open { start }.file_name();
    let bytes = read_chunk_file(dir, &name).map_err(io_err(dir, &name, "reading"))?;
    let Ok(header) = decode_header(&bytes) else {
        // Torn before its header was durable: it holds nothing.
        return Ok(None);
    };
    if header.start != start {
        return Err(LedgerError::Chunk {
            path: dir.path().join(&name),
            source: ChunkError::End(format!("header says start {}", header.start)),
        });
    }
    let mut last_sig = None;
    let _ = walk_entries(&bytes, &header, |idx, tx, off| {
        if matches!(tx, TxKind::Signature(_)) {
            last_sig = Some((idx, off));
        }
    });
    let Some((end, off)) = last_sig else {
        return Ok(None);
    };
    tracing::info!(chunk = %name, end, "sealing the open chunk left by a crash");
    write_sealed(dir, start, end, &mut &bytes[..off])?;
    Ok(Some(end))
}

/// Inclusion proofs computed from the frontier and the leaves after it.
struct DiskProofs {
    ledger: DiskLedger,
}

impl ProofSource for DiskProofs {
    fn inclusion_proof(&self, evidence_idx: u64, sig_idx: u64) -> Result<InclusionProof, String> {
        let (Some(index), Some(size)) = (evidence_idx.checked_sub(1), sig_idx.checked_sub(1))
        else {
            return Err(format!(
                "index 0 has no proof (evidence {evidence_idx}, signature {sig_idx})"
            ));
        };
        let (at, leaves) = self.ledger.proof_material(evidence_idx, size)?;
        let path = proof_from(&at, &leaves, index, size)
            .ok_or_else(|| format!("no proof of tx {evidence_idx} in a tree of {size}"))?;
        let tx_digest = self.ledger.tx_digest(evidence_idx)?;
        Ok(InclusionProof { tx_digest, path })
    }
}

impl DiskLedger {
    /// Seals the open chunk now if its last entry is a signature tx (a clean stop), so every
    /// committed entry is in a sealed chunk an export can take.
    pub fn seal(&self) -> Result<(), LedgerError> {
        let mut guard = self.inner.lock();
        let e = &mut *guard;
        if e.open.as_ref().is_some_and(|o| o.last_is_signature) {
            let saved = e.chunk_bytes;
            e.chunk_bytes = 0;
            let r = commit_locked(e, 0);
            e.chunk_bytes = saved;
            if let Err(err) = &r {
                e.failed = Some(err.to_string());
            }
            return r;
        }
        Ok(())
    }
}

/// Replays the writes of txs `from ..= to` from the sealed chunks of `ledger` onto `state`
/// (a KV map from a snapshot at `from - 1`); returns how many txs were applied. Stops with an
/// error at a missing chunk.
pub fn replay_writes(
    ledger: &LedgerDir,
    from: u64,
    to: u64,
    state: &mut std::collections::BTreeMap<u64, Vec<u8>>,
) -> Result<u64, String> {
    use snapseal_archive::ArtifactSource;
    let chunks = ledger
        .covering(from, to)
        .map_err(|e| e.to_string())?
        .map_err(|(a, b)| format!("ledger entries {a}..={b} are missing"))?;
    let mut applied = 0;
    for c in chunks {
        let name = c.file_name();
        let bytes = read_chunk_file(&*ledger.dir, &name).map_err(|e| format!("{name}: {e}"))?;
        let header = decode_header(&bytes).map_err(|e| format!("{name}: {e}"))?;
        let (_, err) = walk_entries(&bytes, &header, |idx, tx, _| {
            if (from..=to).contains(&idx) {
                if let TxKind::Write { key, value } = tx {
                    state.insert(key, value.to_vec());
                }
                applied += 1;
            }
        });
        if let Some(e) = err {
            return Err(format!("{name}: {e}"));
        }
    }
    Ok(applied)
}

/// The state hash of a KV map: BLAKE3 over its entries in key order.
pub fn state_hash<V: AsRef<[u8]>>(state: &std::collections::BTreeMap<u64, V>) -> Hash {
    let mut h = blake3::Hasher::new_derive_key("snapseal sim kv state v1");
    for (k, v) in state {
        let v = v.as_ref();
        h.update(&k.to_le_bytes());
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(v);
    }
    *h.finalize().as_bytes()
}
