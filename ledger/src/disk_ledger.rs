//! The reference ledger on disk: append-only chunk files and a compact Merkle frontier.
//!
//! docs/LEDGER.md describes the chunk format and the trust rules for an independent reader.
//!
//! Layout of the ledger directory (see [`ChunkName`] and the [`chunk`] byte layout):
//! - `ledger_<start>`: the open chunk, appended to at every commit and fsynced;
//! - `ledger_<start>-<end>.committed`: a sealed chunk: once the open chunk reaches the size
//!   threshold at a committed signature tx it is fsynced, closed, given its committed name
//!   (a hard link, never replacing; directory fsynced) and its open name removed (directory
//!   fsynced), so a crash never leaves it without a durable name;
//! - `ledger_<start>-<end>.pending`: a whole chunk being written (recovery, import); removed
//!   when found at open.
//!
//! Entries past the commit index stay in memory until committed (their number is bounded by
//! the replication lag): every byte on disk is committed, and a rollback, which never goes
//! below the commit index, truncates memory only. An entry becomes part of the ledger (its
//! commit index, frontier, proofs and reads) only once its write *and* the fsync after it
//! succeeded. A failed write, fsync or close fails the ledger for good: the open chunk is
//! never fsynced again, never sealed, and no write is accepted; the next open recovers it.
//!
//! In memory the ledger holds the frontier at the open chunk's start, the leaf hashes of the
//! open chunk and of the uncommitted tail, and per sealed chunk its range and links (digests
//! of the frontiers before and after it): bounded by the chunk size, not the ledger's length.
//!
//! Every chunk file is hostile input (the `trust` module): opening verifies every sealed chunk in full
//! (signatures against the ledger's own key, links to the chunk before) and recovers the open
//! chunk a crash left up to its last complete, verified signature interval (written whole as a
//! sealed chunk: pending, fsync, close, rename, directory fsync; then the open file removed).
//! Every later read checks the chunk again (check bytes, sequence, the frontier it ends with
//! against the one recorded when it was verified or written).

mod artifacts;
pub mod chunk;
mod trust;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::{SigningKey, VerifyingKey};
use parking_lot::Mutex;
use snapseal_actors::{InclusionProof, ProofSource};
use snapseal_archive::ChunkLinks;
use snapseal_persist::fs::FileSystem;
use snapseal_persist::internals::fs::{
    publish, write_all, write_pending, DirHandle, DurableError, EntryKind, UntrustedError,
    WritableFile,
};
use snapseal_persist::internals::receipt::leaf_position;
use snapseal_persist::internals::Escaped;
use snapseal_persist::receipt::{sign_root, SignedRoot};
use snapseal_persist::Hash;

pub use artifacts::{frontier_digest, ChunkKeys, LedgerDir};
pub use chunk::{verify_chunk, ChunkError, ChunkName, ChunkParts, VerifiedChunk};
pub use trust::{open_chunk, read_chunk_file, MAX_CHUNK_BYTES, MAX_CHUNK_FILE};

use crate::frontier::{proof_from, Frontier};
use crate::ledger::TxKind;
use chunk::{encode_entry, encode_header};
use trust::{read_open, read_sealed, recover_open, OpenRead, Trust, Want};

/// Default size at which the open chunk is sealed (at the next committed signature).
pub const DEFAULT_CHUNK_BYTES: u64 = 8 << 20;

/// A disk ledger failure, naming the file (escaped) and the step; each cause is in the
/// message once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// A filesystem call failed.
    #[error("ledger {}: {step}: {cause}", Escaped::path(.path))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The error, with its errno.
        cause: io::Error,
    },
    /// A chunk file was refused before its contents were looked at (a link, not a regular
    /// file, over [`MAX_CHUNK_FILE`], no magic) or could not be read (truncated meanwhile, a
    /// failed read).
    #[error(transparent)]
    Open(#[from] UntrustedError),
    /// A chunk file's contents are refused.
    #[error("ledger chunk {}: {reason}", Escaped::path(.path))]
    Chunk {
        /// The chunk file.
        path: PathBuf,
        /// What is wrong.
        reason: ChunkError,
    },
    /// The chunks leave a gap or overlap.
    #[error("ledger {}: chunks are not contiguous: {what}", Escaped::path(.dir))]
    Gap {
        /// The ledger directory.
        dir: PathBuf,
        /// The missing or overlapping range.
        what: String,
    },
    /// The call is not allowed in the ledger's state.
    #[error("ledger: {0}")]
    Refused(String),
    /// An earlier write, fsync or close failed; the ledger accepts no more writes.
    #[error("ledger failed earlier ({0}); it accepts no more writes")]
    Failed(String),
}

impl LedgerError {
    /// True for a file that is not there (a chunk a concurrent commit just sealed).
    fn is_not_found(&self) -> bool {
        matches!(self, LedgerError::Io { cause, .. } if cause.kind() == io::ErrorKind::NotFound)
    }
}

/// A sealed chunk: its range and links (digests of the frontiers before and after it).
#[derive(Clone, Copy, Debug)]
struct Sealed {
    start: u64,
    end: u64,
    links: ChunkLinks,
}

impl Sealed {
    /// Reading it again: it must still link where it did when verified or written.
    fn want(&self) -> Want<'static> {
        Want {
            start: self.start,
            end: self.end,
            after: Some(self.links.start),
            trust: Trust::Recorded(self.links.end),
        }
    }
}

/// The open chunk.
#[derive(Debug)]
struct OpenChunk {
    start: u64,
    /// `None` once closed (sealing began); a failure there leaves the chunk open on disk.
    file: Option<Box<dyn WritableFile>>,
    /// Bytes of the header.
    header_len: u64,
    /// Bytes of the entries written and fsynced.
    bytes: u64,
    /// Leaves of the entries written and fsynced.
    leaves: Vec<Hash>,
    last_is_signature: bool,
}

#[derive(Debug)]
struct Inner {
    dir: Arc<dyn DirHandle>,
    chunk_bytes: u64,
    /// Sealed chunks, in order.
    sealed: Vec<Sealed>,
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
///
/// ```
/// use std::sync::Arc;
/// use snapseal_ledger::disk_ledger::DiskLedger;
/// use snapseal_ledger::ledger::TxKind;
/// use snapseal_persist::fs::RealFs;
/// use snapseal_persist::SigningKey;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let key = SigningKey::from_bytes(&[5; 32]);
/// let ledger = DiskLedger::open(&RealFs, dir.path(), key.clone(), 1 << 20)?;
/// for k in 1..=3 {
///     ledger.append(TxKind::Write { key: k, value: Arc::from(&b"v"[..]) });
/// }
/// let signed = ledger.append_signature(); // tx 4 signs the root over txs 1 to 3
/// assert_eq!(signed.sig_idx, 4);
/// ledger.commit(4)?; // written and fsynced: durable from here
/// ledger.append(TxKind::Write { key: 9, value: Arc::from(&b"w"[..]) }); // tx 5, uncommitted
///
/// // Only committed txs are on disk, and a rollback never goes below them.
/// assert!(ledger.truncate(3).is_err());
/// ledger.truncate(4)?;
/// ledger.seal()?; // a clean stop: the open chunk becomes a sealed, signed chunk
/// assert_eq!(ledger.sealed(), [(1, 4)]);
/// drop(ledger);
///
/// // Reopening verifies every chunk against the key and restores the commit index.
/// let ledger = DiskLedger::open(&RealFs, dir.path(), key, 1 << 20)?;
/// assert_eq!((ledger.commit_idx(), ledger.last_idx()), (4, 4));
/// assert!(matches!(ledger.tx(2)?, Some(TxKind::Write { key: 2, .. })));
/// # Ok(()) }
/// ```
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
    move |cause| LedgerError::Io { path, step, cause }
}

/// Writes `src` as the sealed chunk `start..=end` through the crash-safe sequence: a
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
            cause: e.source,
        }
    };
    write_pending(dir, &pending, src, MAX_CHUNK_FILE, &mut |_| {}).map_err(failed(&pending))?;
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
                Escaped::path(&dir.path().join(&e.name))
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

/// Checks sealed chunks are contiguous.
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

/// Verifies every sealed chunk of `dir` in order, each linking to the one before; returns
/// them with their links and the frontier after the last.
fn verify_sealed(
    dir: &dyn DirHandle,
    names: &[(u64, u64)],
    keys: &[VerifyingKey],
) -> Result<(Vec<Sealed>, Option<VerifiedChunk>), LedgerError> {
    let mut sealed: Vec<Sealed> = Vec::with_capacity(names.len());
    let mut last = None;
    for &(start, end) in names {
        let want = Want {
            start,
            end,
            after: sealed.last().map(|s| s.links.end),
            trust: Trust::Keys(keys),
        };
        let (v, _) = read_sealed(dir, &want, |_, _, _| None::<()>)?;
        sealed.push(Sealed {
            start,
            end,
            links: ChunkLinks {
                start: frontier_digest(&v.start_frontier),
                end: frontier_digest(&v.end_frontier),
            },
        });
        last = Some(v);
    }
    Ok((sealed, last))
}

/// Recovers the open chunk `start` a crashed or failed run left: what it holds up to its
/// last verified signature becomes a sealed chunk (unless one already holds it: a crash
/// after that step), then the open file is removed and the directory fsynced. Returns the
/// new sealed chunk and the frontier after it, if any.
fn recover(
    dir: &dyn DirHandle,
    start: u64,
    sealed: &[Sealed],
    last: Option<&VerifiedChunk>,
    keys: &[VerifyingKey],
) -> Result<Option<(Sealed, Frontier)>, LedgerError> {
    let name = ChunkName::Open { start }.file_name();
    let gap = |what: String| LedgerError::Gap {
        dir: dir.path().to_path_buf(),
        what,
    };
    let mut new = None;
    match (sealed.last(), last) {
        // A crash after the recovered chunk was sealed, before the open file was removed:
        // the open file may hold nothing the sealed chunk does not.
        (Some(s), Some(v)) if s.start == start => {
            if let Some(r) = recover_open(dir, start, &v.start_frontier, keys)? {
                if r.end > s.end {
                    return Err(gap(format!(
                        "{name} holds signed entries up to {}, past {}",
                        r.end,
                        ChunkName::Committed { start, end: s.end }.file_name()
                    )));
                }
            }
        }
        (Some(s), Some(v)) if s.end + 1 == start => {
            new = recover_sealing(dir, start, &v.end_frontier, keys)?;
        }
        (None, _) if start == 1 => {
            new = recover_sealing(dir, start, &Frontier::new(), keys)?;
        }
        _ => {
            return Err(gap(format!(
                "open chunk {name} does not follow {}",
                sealed.last().map_or_else(
                    || "the start of the ledger".to_string(),
                    |s| ChunkName::Committed {
                        start: s.start,
                        end: s.end
                    }
                    .file_name()
                )
            )))
        }
    }
    dir.unlink(&name)
        .map_err(io_err(dir, &name, "removing the recovered open chunk"))?;
    dir.sync()
        .map_err(io_err(dir, "", "fsync of the directory"))?;
    Ok(new)
}

/// [`recover_open`], then the kept bytes written whole as a sealed chunk.
fn recover_sealing(
    dir: &dyn DirHandle,
    start: u64,
    before: &Frontier,
    keys: &[VerifyingKey],
) -> Result<Option<(Sealed, Frontier)>, LedgerError> {
    let Some(r) = recover_open(dir, start, before, keys)? else {
        return Ok(None);
    };
    tracing::info!(
        chunk = %ChunkName::Open { start }.file_name(),
        end = r.end,
        "sealing the open chunk a crashed or failed run left"
    );
    write_sealed(dir, start, r.end, &mut r.file.reader().take(r.len))?;
    let links = ChunkLinks {
        start: frontier_digest(before),
        end: frontier_digest(&r.end_frontier),
    };
    Ok(Some((
        Sealed {
            start,
            end: r.end,
            links,
        },
        r.end_frontier,
    )))
}

impl DiskLedger {
    /// Opens (creating if missing) the ledger in `path`, whose chunks must be signed with
    /// `key`: removes stale pending chunks, verifies every sealed chunk in full and that each
    /// continues the one before (reading each once, streamed), recovers a crashed or failed
    /// run's open chunk up to its last verified signature tx, and restores the frontier. A
    /// chunk that does not verify is refused, naming it and why. `chunk_bytes` (at most
    /// [`MAX_CHUNK_BYTES`]) is the size at which the open chunk is sealed.
    pub fn open(
        fs: &dyn FileSystem,
        path: &Path,
        key: SigningKey,
        chunk_bytes: u64,
    ) -> Result<Self, LedgerError> {
        if chunk_bytes > MAX_CHUNK_BYTES {
            return Err(LedgerError::Refused(format!(
                "a chunk size of {chunk_bytes} bytes is over the limit of {MAX_CHUNK_BYTES}"
            )));
        }
        let dir = fs.open_dir(path, true).map_err(|cause| LedgerError::Io {
            path: path.to_path_buf(),
            step: "opening the ledger directory",
            cause,
        })?;
        // The keys its chunks' signatures must verify with: its own.
        let trusted = [key.verifying_key()];
        let (names, open, pending) = list_chunks(&*dir)?;
        for p in &pending {
            dir.unlink(p)
                .map_err(io_err(&*dir, p, "removing a stale pending chunk"))?;
        }
        if open.len() > 1 {
            return Err(LedgerError::Refused(format!(
                "{}: more than one open chunk",
                Escaped::path(dir.path())
            )));
        }
        check_contiguous(&*dir, &names)?;
        let (mut sealed, last) = verify_sealed(&*dir, &names, &trusted)?;
        let mut written = last.as_ref().map(|v| v.end_frontier.clone());
        if let Some(&start) = open.first() {
            if let Some((s, f)) = recover(&*dir, start, &sealed, last.as_ref(), &trusted)? {
                sealed.push(s);
                written = Some(f);
            }
        }
        let written = written.unwrap_or_default();
        let base = sealed.first().map_or(0, |s| s.start - 1);
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

    /// Index of the last committed (written and fsynced) tx.
    pub fn commit_idx(&self) -> u64 {
        self.inner.lock().written.len()
    }

    /// Index before the first tx held (0 unless the ledger starts after an imported snapshot).
    pub fn base(&self) -> u64 {
        self.inner.lock().base
    }

    /// The sealed chunks, as `(start, end)`.
    pub fn sealed(&self) -> Vec<(u64, u64)> {
        self.inner
            .lock()
            .sealed
            .iter()
            .map(|s| (s.start, s.end))
            .collect()
    }

    /// The earlier failure that stopped the ledger, if any.
    pub fn failure(&self) -> Option<String> {
        self.inner.lock().failed.clone()
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
    /// ends with a signature tx. The txs count as committed only once written and fsynced. A
    /// failed write, fsync or close fails the ledger for good.
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

    /// Seals the open chunk now if its last entry is a signature tx (a clean stop), so every
    /// committed entry is in a sealed chunk an export can take. Refused once the ledger
    /// failed: what a failed write touched is never sealed.
    pub fn seal(&self) -> Result<(), LedgerError> {
        let mut guard = self.inner.lock();
        let e = &mut *guard;
        if let Some(f) = &e.failed {
            return Err(LedgerError::Failed(f.clone()));
        }
        if !e.open.as_ref().is_some_and(|o| o.last_is_signature) {
            return Ok(());
        }
        let r = seal_open(e);
        if let Err(err) = &r {
            e.failed = Some(err.to_string());
        }
        r
    }

    /// The tx at `idx` (None if not held), read from disk for committed txs.
    pub fn tx(&self, idx: u64) -> Result<Option<TxKind>, LedgerError> {
        let mut found = None;
        self.for_each(idx, idx, |_, tx| found = Some(tx.clone()))?;
        Ok(found)
    }

    /// Visits txs `from ..= to` in order (disk, then the uncommitted tail). Returns how many
    /// were visited; fewer than asked when the ledger does not hold them all. Entries of a
    /// sealed chunk are visited only once the whole chunk verified (and still ends where it
    /// did); entries of the open chunk only once each matches the leaf the ledger wrote.
    pub fn for_each(
        &self,
        from: u64,
        to: u64,
        mut f: impl FnMut(u64, &TxKind),
    ) -> Result<u64, LedgerError> {
        let mut seen = 0u64;
        let mut next = from;
        // A commit may seal the open chunk (renaming it) between planning and reading: then
        // plan again, once, from the first tx not yet visited.
        for again in [false, true] {
            let plan = self.plan(next, to);
            let mut visit = |idx: u64, tx: &TxKind| {
                f(idx, tx);
                seen += 1;
                next = idx + 1;
            };
            match self.read_planned(&plan, &mut visit) {
                Err(e) if !again && plan.open.is_some() && e.is_not_found() => continue,
                r => return r.map(|()| seen),
            }
        }
        Ok(seen)
    }

    /// What reading `from ..= to` takes, under the lock: the sealed chunks, the wanted part of
    /// the open chunk with the leaves written to it, the wanted uncommitted txs.
    fn plan(&self, from: u64, to: u64) -> ReadPlan {
        let e = self.inner.lock();
        let written = e.written.len();
        let sealed = e
            .sealed
            .iter()
            .filter(|s| s.end >= from && s.start <= to)
            .copied()
            .collect();
        let open = e.open.as_ref().and_then(|o| {
            let first = from.max(o.start);
            let last = to.min(written);
            let lo = usize::try_from(first - o.start).ok()?;
            let hi = usize::try_from(last.checked_sub(o.start)?).ok()?;
            (first <= last).then(|| OpenRead {
                start: o.start,
                after: frontier_digest(&e.open_start),
                first,
                leaves: o
                    .leaves
                    .get(lo..=hi)
                    .map(<[Hash]>::to_vec)
                    .unwrap_or_default(),
            })
        });
        let tail = e
            .tail
            .iter()
            .enumerate()
            .map(|(i, t)| (written + 1 + i as u64, &t.0))
            .filter(|(idx, _)| (from..=to).contains(idx))
            .map(|(idx, tx)| (idx, tx.clone()))
            .collect();
        ReadPlan {
            dir: Arc::clone(&e.dir),
            from,
            to,
            sealed,
            open,
            tail,
        }
    }

    fn read_planned(
        &self,
        plan: &ReadPlan,
        visit: &mut dyn FnMut(u64, &TxKind),
    ) -> Result<(), LedgerError> {
        let range = plan.from..=plan.to;
        for s in &plan.sealed {
            let want = s.want();
            let (_, txs) = read_sealed(&*plan.dir, &want, |idx, tx, _| {
                range.contains(&idx).then_some((idx, tx))
            })?;
            for (idx, tx) in &txs {
                visit(*idx, tx);
            }
        }
        if let Some(open) = &plan.open {
            read_open(&*plan.dir, open, &mut *visit)?;
        }
        for (idx, tx) in &plan.tail {
            visit(*idx, tx);
        }
        Ok(())
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
        let (dir, chunks, mut memory, all_sealed) = {
            let e = self.inner.lock();
            let mut memory: Vec<Hash> = e.open.as_ref().map_or_else(Vec::new, |o| o.leaves.clone());
            memory.extend(e.tail.iter().map(|t| t.1));
            if idx > e.open_start.len() {
                return Ok((e.open_start.clone(), memory));
            }
            // An older chunk: its header's frontier, then every leaf from disk up to the open
            // chunk (bounded by how far back the evidence is, a few chunks at most).
            let Some(pos) = e.sealed.iter().position(|s| s.start <= idx && idx <= s.end) else {
                return Err(format!("tx {idx} is not in the ledger"));
            };
            let chunks: Vec<Sealed> = e.sealed[pos..]
                .iter()
                .take_while(|s| s.start <= size)
                .copied()
                .collect();
            let all = pos + chunks.len() == e.sealed.len();
            (Arc::clone(&e.dir), chunks, memory, all)
        };
        let mut at = None;
        let mut leaves = Vec::new();
        for s in &chunks {
            let (v, chunk_leaves) = read_sealed(&*dir, &s.want(), |_, _, leaf| Some(*leaf))
                .map_err(|e| e.to_string())?;
            at.get_or_insert(v.start_frontier);
            leaves.extend(chunk_leaves);
        }
        // Leaves past a chunk beyond `size` are not needed (and would leave a gap).
        if all_sealed {
            leaves.append(&mut memory);
        }
        let at = at.ok_or_else(|| format!("tx {idx} is not in the ledger"))?;
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

/// What [`DiskLedger::for_each`] reads, taken under the lock.
struct ReadPlan {
    dir: Arc<dyn DirHandle>,
    from: u64,
    to: u64,
    sealed: Vec<Sealed>,
    open: Option<OpenRead>,
    tail: Vec<(u64, TxKind)>,
}

/// Creates the open chunk for entries from `start` on: created exclusively, its header
/// written, the directory fsynced. A failure leaves at most a torn header, which the next
/// open removes.
fn create_open(e: &mut Inner, start: u64) -> Result<(), LedgerError> {
    let dir = Arc::clone(&e.dir);
    let name = ChunkName::Open { start }.file_name();
    let mut file = dir.create_new(&name, 0o600).map_err(io_err(
        &*dir,
        &name,
        "creating the open chunk (O_EXCL)",
    ))?;
    let header = encode_header(start, &e.written);
    write_all(&mut *file, &header).map_err(io_err(&*dir, &name, "writing the header"))?;
    dir.sync()
        .map_err(io_err(&*dir, "", "fsync of the directory"))?;
    e.open_start = e.written.clone();
    e.open = Some(OpenChunk {
        start,
        file: Some(file),
        header_len: header.len() as u64,
        bytes: 0,
        leaves: Vec::new(),
        last_is_signature: false,
    });
    Ok(())
}

/// Writes the first `n` tail entries to the open chunk and fsyncs it; only then do they leave
/// the tail for the written frontier. Seals if due. Any error fails the ledger (the caller
/// records it): the chunk is then never written, fsynced or sealed again.
fn commit_locked(e: &mut Inner, n: u64) -> Result<(), LedgerError> {
    let n = usize::try_from(n).unwrap_or(usize::MAX).min(e.tail.len());
    if n == 0 {
        return Ok(());
    }
    let first = e.written.len() + 1;
    let mut buf = Vec::new();
    for (i, (tx, _, _)) in e.tail[..n].iter().enumerate() {
        encode_entry(first + i as u64, tx, &mut buf);
    }
    if e.open.is_none() {
        create_open(e, first)?;
    }
    let dir = Arc::clone(&e.dir);
    let Some(open) = e.open.as_mut() else {
        return Err(LedgerError::Refused("internal: no open chunk".into()));
    };
    let name = ChunkName::Open { start: open.start }.file_name();
    let after = open.header_len + open.bytes + buf.len() as u64;
    if after > MAX_CHUNK_FILE {
        return Err(LedgerError::Refused(format!(
            "{}: committing {n} more txs would take it to {after} bytes, over the chunk \
             limit of {MAX_CHUNK_FILE}: sign more often or lower the chunk size",
            Escaped::path(&dir.path().join(&name))
        )));
    }
    let Some(file) = open.file.as_mut() else {
        return Err(LedgerError::Refused(format!(
            "internal: the open chunk {name} is closed"
        )));
    };
    write_all(&mut **file, &buf).map_err(io_err(&*dir, &name, "appending"))?;
    file.sync().map_err(io_err(&*dir, &name, "fsync"))?;
    // Written and durable: only now part of the ledger.
    open.bytes += buf.len() as u64;
    for (tx, leaf, _) in e.tail.drain(..n) {
        open.leaves.push(leaf);
        e.written.push(leaf);
        open.last_is_signature = matches!(tx, TxKind::Signature(_));
    }
    if open.bytes >= e.chunk_bytes && open.last_is_signature {
        seal_open(e)?;
    }
    Ok(())
}

/// Seals the open chunk (fsynced at its last commit): close; a second name, the committed
/// one, linked (never replacing) and the directory fsynced; then the open name removed and
/// the directory fsynced again. At every instant a crash leaves the chunk under at least one
/// durable name (a rename not yet fsynced may come back as neither name); both names left
/// is what [`DiskLedger::open`] cleans up. A failed close leaves the chunk open on disk,
/// closed and never linked.
fn seal_open(e: &mut Inner) -> Result<(), LedgerError> {
    let dir = Arc::clone(&e.dir);
    let Some(open) = e.open.as_mut() else {
        return Ok(());
    };
    let name = ChunkName::Open { start: open.start }.file_name();
    let Some(file) = open.file.take() else {
        return Err(LedgerError::Refused(format!(
            "internal: the open chunk {name} is closed"
        )));
    };
    file.close().map_err(io_err(&*dir, &name, "close"))?;
    let (start, end) = (open.start, e.written.len());
    let sealed = ChunkName::Committed { start, end }.file_name();
    dir.hard_link(&name, &sealed)
        .map_err(io_err(&*dir, &sealed, "link (no replace)"))?;
    dir.sync()
        .map_err(io_err(&*dir, "", "fsync of the directory"))?;
    e.sealed.push(Sealed {
        start,
        end,
        links: ChunkLinks {
            start: frontier_digest(&e.open_start),
            end: frontier_digest(&e.written),
        },
    });
    e.open = None;
    e.open_start = e.written.clone();
    dir.unlink(&name).map_err(io_err(
        &*dir,
        &name,
        "removing the open name of a sealed chunk",
    ))?;
    dir.sync()
        .map_err(io_err(&*dir, "", "fsync of the directory"))
}

/// Inclusion proofs computed from the frontier and the leaves after it.
struct DiskProofs {
    ledger: DiskLedger,
}

impl ProofSource for DiskProofs {
    fn inclusion_proof(&self, evidence_idx: u64, sig_idx: u64) -> Result<InclusionProof, String> {
        let (index, size) = leaf_position(evidence_idx, sig_idx).ok_or_else(|| {
            format!("no proof of tx {evidence_idx} under a signature at {sig_idx}")
        })?;
        let (at, leaves) = self.ledger.proof_material(evidence_idx, size)?;
        let path = proof_from(&at, &leaves, index, size)
            .ok_or_else(|| format!("no proof of tx {evidence_idx} in a tree of {size}"))?;
        let tx_digest = self.ledger.tx_digest(evidence_idx)?;
        Ok(InclusionProof { tx_digest, path })
    }
}

/// Replays the writes of txs `from ..= to` from the sealed chunks of `ledger` onto `state`
/// (a KV map from a snapshot at `from - 1`); returns how many txs were applied. Each chunk is
/// verified in full against `keys` (see [`DiskLedger::open`]) and must continue the one
/// before it before any of its writes is applied; a missing range, a forged or foreign
/// chunk stops the replay with an error naming it.
pub fn replay_writes(
    ledger: &LedgerDir,
    keys: &[VerifyingKey],
    from: u64,
    to: u64,
    state: &mut std::collections::BTreeMap<u64, Vec<u8>>,
) -> Result<u64, LedgerError> {
    use snapseal_archive::ArtifactSource;
    let dir = &*ledger.dir;
    let gap = |what: String| LedgerError::Gap {
        dir: dir.path().to_path_buf(),
        what,
    };
    let chunks = ledger
        .covering(from, to)
        .map_err(|e| LedgerError::Io {
            path: dir.path().to_path_buf(),
            step: "listing",
            cause: e.source,
        })?
        .map_err(|(a, b)| gap(format!("{a}..={b} missing")))?;
    let mut applied = 0;
    let mut prev: Option<(u64, Hash)> = None;
    for c in chunks {
        let after = match prev {
            Some((end, link)) if end + 1 == c.start => Some(link),
            Some((end, _)) => {
                return Err(gap(format!(
                    "{} does not follow entry {end}",
                    c.file_name()
                )))
            }
            None => None,
        };
        let want = Want {
            start: c.start,
            end: c.end,
            after,
            trust: Trust::Keys(keys),
        };
        let (v, txs) = read_sealed(dir, &want, |idx, tx, _| {
            (from..=to).contains(&idx).then_some(tx)
        })?;
        for tx in txs {
            if let TxKind::Write { key, value } = tx {
                state.insert(key, value.to_vec());
            }
            applied += 1;
        }
        prev = Some((c.end, frontier_digest(&v.end_frontier)));
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
