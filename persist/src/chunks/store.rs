//! [`ChunkStore`]: the chunks of one snapshot directory, in pack files beside the snapshots
//! (docs/FORMAT.md §10).
//!
//! In memory it keeps which durable pack holds each chunk (rebuilt from the packs' trailers
//! when the store opens) and which chunks in-flight persists have *claimed*: a generation
//! claims every chunk its list names, before it relies on a stored copy or writes a new one,
//! and keeps the claim until its snapshot is committed or dropped. The sweep never removes a
//! claimed chunk, so a chunk cannot vanish between a generation finding it stored and its
//! snapshot being committed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::{info, warn};

use crate::error::{BodyError, PersistError, Step, StoreError, StoreStep};
use crate::fs::{write_all, DirHandle, Untrusted, WritableFile};
use crate::writer::{start_writeback, Attempt};
use crate::Hash;

use super::list::Entry;
use super::pack::{
    self, open_pack, pack_name, pending_name, read_index, trailer, PackError, PackFile, PackIndex,
    MAX_PACK_CHUNKS, PACK_DATA_TARGET, PACK_MAGIC,
};

/// Where a durable chunk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) pack: u64,
    pub(crate) offset: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Every chunk of a durable pack in the index, and one pack holding it.
    pub(crate) chunks: HashMap<Hash, Loc>,
    /// The durable packs in the index and their chunks.
    pub(crate) packs: BTreeMap<u64, PackIndex>,
    /// Chunks claimed by in-flight persists, with how many claim each.
    pub(crate) claims: HashMap<Hash, u32>,
    /// While a sweep runs: every chunk claimed since it started (see
    /// [`ChunkStore::begin_sweep`]).
    pub(crate) touched: Option<HashSet<Hash>>,
}

impl Index {
    /// Records a durable pack; its chunks are found there from now on.
    fn register(&mut self, n: u64, index: PackIndex) {
        for (offset, e) in &index {
            self.chunks.insert(
                e.hash,
                Loc {
                    pack: n,
                    offset: *offset,
                },
            );
        }
        self.packs.insert(n, index);
    }

    /// The entry (length and hash) of chunk `hash` if a pack in the index holds it.
    fn entry_of(&self, hash: &Hash) -> Option<Entry> {
        let loc = self.chunks.get(hash)?;
        let pack = self.packs.get(&loc.pack)?;
        let at = pack.binary_search_by_key(&loc.offset, |(at, _)| *at).ok()?;
        pack.get(at).map(|(_, e)| *e)
    }
}

/// Counts of the chunk store's writes.
#[derive(Debug, Default)]
pub(crate) struct ChunkCounters {
    /// Bytes of new chunks bodies wrote into packs (a sweep's copies are not counted).
    pub(crate) bytes_written: AtomicU64,
}

/// The chunk store of one snapshot directory.
#[derive(Debug)]
pub(crate) struct ChunkStore {
    pub(crate) dir: Arc<dyn DirHandle>,
    pub(crate) index: Mutex<Index>,
    next_pack: AtomicU64,
    pub(crate) counters: ChunkCounters,
    /// The cuts of the newest frozen body's chunks (`body::frozen_cuts`).
    pub(crate) frozen: crate::body::frozen_cuts::FrozenCuts,
}

/// What [`scan`] found.
struct Scanned {
    index: Index,
    /// One above the highest pack number present.
    next: u64,
    removed: u64,
}

/// Reads the packs of `dir` into an index: every sealed pack's trailer (10.2), a damaged one
/// skipped (logged, never trusted), an I/O error returned. With `remove_pending` (a store
/// holding the lock, so nothing is being written), pending packs are unlinked first and the
/// directory fsynced if any was.
fn scan(dir: &dyn DirHandle, remove_pending: bool) -> Result<Scanned, StoreError> {
    let entries = dir.list().map_err(|source| StoreError::Io {
        path: dir.path().to_path_buf(),
        step: StoreStep::List,
        source,
    })?;
    scan_entries(dir, &entries, remove_pending)
}

/// [`scan`] over a listing the caller made.
fn scan_entries(
    dir: &dyn DirHandle,
    entries: &[crate::fs::DirEntry],
    remove_pending: bool,
) -> Result<Scanned, StoreError> {
    let io_err = |path: PathBuf, step| move |source| StoreError::Io { path, step, source };
    let mut index = Index::default();
    let mut next = 0u64;
    let mut removed = 0;
    let mut sealed = Vec::new();
    for entry in entries {
        let Some(found) = entry.name.to_str().and_then(pack::parse_name) else {
            continue;
        };
        if entry.kind != crate::fs::EntryKind::File {
            continue;
        }
        match found {
            PackFile::Pending(n) => {
                next = next.max(n.saturating_add(1));
                if !remove_pending {
                    continue;
                }
                let name = pending_name(n);
                match dir.unlink(&name) {
                    Ok(()) => {
                        info!(name = %name, "removed half-written chunk pack");
                        removed += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(io_err(dir.path().join(&name), StoreStep::UnlinkStale)(e))
                    }
                }
            }
            PackFile::Sealed(n) => {
                next = next.max(n.saturating_add(1));
                sealed.push(n);
            }
        }
    }
    if removed > 0 {
        dir.sync()
            .map_err(io_err(dir.path().to_path_buf(), StoreStep::DirSync))?;
    }
    for n in sealed {
        let path = dir.path().join(pack_name(n));
        let file = match open_pack(dir, n) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) if e.is_not_found() => continue,
            Err(e @ crate::fs::UntrustedError::Io { .. }) => {
                return Err(io_err(path, StoreStep::ReadPack)(pack::into_io(e)))
            }
            Err(e) => {
                warn!(pack = %crate::escape::Escaped::path(&path), error = %crate::ErrorChain(&e), "skipping a file that is not a chunk pack");
                continue;
            }
        };
        match read_index(&file) {
            Ok(idx) => index.register(n, idx),
            Err(PackError::Open(e)) => {
                return Err(io_err(path, StoreStep::ReadPack)(pack::into_io(e)))
            }
            Err(e @ PackError::Damaged(_)) => {
                warn!(pack = %crate::escape::Escaped::path(&path), error = %e, "skipping a damaged chunk pack; its chunks are not trusted");
            }
        }
    }
    Ok(Scanned {
        index,
        next,
        removed,
    })
}

/// Where a reader finds the chunks a list names: a store's [`ChunkStore`], or the packs of a
/// directory scanned for one read-only check ([`ScannedChunks`]).
pub(crate) trait ChunkSource: Send + Sync {
    /// Reads chunk `index` of a list, `entry`, from the pack holding it and checks its hash.
    /// Missing or damaged: an `InvalidData` error carrying a [`BodyError`]; a failed read:
    /// that I/O error.
    fn read(&self, index: u64, entry: &Entry, cache: &mut OpenPack) -> io::Result<Vec<u8>>;

    /// Checks chunk `index`, `entry`, without handing its bytes out: by default read and
    /// hashed as [`read`](Self::read) does; errors as there.
    fn check(&self, index: u64, entry: &Entry, cache: &mut OpenPack) -> io::Result<()> {
        self.read(index, entry, cache).map(drop)
    }
}

/// The packs of a directory read without its store (the read-only tools): the index of
/// their trailers as they are now, pending packs left alone.
pub(crate) struct ScannedChunks<'a> {
    dir: &'a dyn DirHandle,
    index: Mutex<Index>,
}

impl<'a> ScannedChunks<'a> {
    pub(crate) fn scan(dir: &'a dyn DirHandle) -> Result<ScannedChunks<'a>, StoreError> {
        Ok(ScannedChunks {
            dir,
            index: Mutex::new(scan(dir, false)?.index),
        })
    }

    /// The entry (length and hash) of chunk `hash` if a scanned pack holds it.
    pub(crate) fn entry_of(&self, hash: &Hash) -> Option<Entry> {
        self.index.lock().entry_of(hash)
    }
}

impl ChunkSource for ScannedChunks<'_> {
    fn read(&self, index: u64, entry: &Entry, cache: &mut OpenPack) -> io::Result<Vec<u8>> {
        read_from(self.dir, &self.index, index, entry, cache)
    }
}

impl ChunkSource for ChunkStore {
    fn read(&self, index: u64, entry: &Entry, cache: &mut OpenPack) -> io::Result<Vec<u8>> {
        read_from(&*self.dir, &self.index, index, entry, cache)
    }
}

/// What [`ChunkStore::open`] found.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) store: ChunkStore,
    /// Half-written (pending) packs removed.
    pub(crate) removed: u64,
}

impl ChunkStore {
    /// Recovery at open (the caller holds the directory lock, so no pack is being written):
    /// removes pending packs (a crash cut them short; nothing names their chunks, since a
    /// snapshot commits only after its packs are durable) and fsyncs the directory if it
    /// removed any, then rebuilds the index from the packs' trailers. A pack whose trailer
    /// or index does not check out is skipped (logged) and never trusted: the snapshots
    /// needing its chunks fail verification. An I/O error reading a pack fails the open
    /// (it says nothing about the pack, and skipping it would quarantine good snapshots).
    pub(crate) fn open(
        dir: Arc<dyn DirHandle>,
        entries: &[crate::fs::DirEntry],
    ) -> Result<Opened, StoreError> {
        let scanned = scan_entries(&*dir, entries, true)?;
        Ok(Opened {
            store: ChunkStore {
                dir,
                index: Mutex::new(scanned.index),
                next_pack: AtomicU64::new(scanned.next),
                counters: ChunkCounters::default(),
                frozen: Default::default(),
            },
            removed: scanned.removed,
        })
    }

    /// Claims `hash` for an in-flight persist; true when a durable pack holds it already (no
    /// need to write it). The claim lasts until [`release`](Self::release).
    pub(crate) fn claim(&self, hash: Hash) -> bool {
        let mut index = self.index.lock();
        *index.claims.entry(hash).or_insert(0) += 1;
        if let Some(touched) = &mut index.touched {
            touched.insert(hash);
        }
        index.chunks.contains_key(&hash)
    }

    /// Gives back claims taken with [`claim`](Self::claim).
    pub(crate) fn release<'a>(&self, hashes: impl IntoIterator<Item = &'a Hash>) {
        let mut index = self.index.lock();
        for h in hashes {
            if let Some(n) = index.claims.get_mut(h) {
                *n -= 1;
                if *n == 0 {
                    index.claims.remove(h);
                }
            }
        }
    }

    /// The entry (length and hash) of chunk `hash` if a durable pack holds it.
    pub(crate) fn entry_of(&self, hash: &Hash) -> Option<Entry> {
        self.index.lock().entry_of(hash)
    }

    /// True when a durable pack holds chunk `hash`.
    pub(crate) fn holds(&self, hash: &Hash) -> bool {
        self.index.lock().chunks.contains_key(hash)
    }

    /// True when there is no durable pack (a store that never wrote a chunked snapshot).
    pub(crate) fn is_empty(&self) -> bool {
        self.index.lock().packs.is_empty()
    }

    /// Starts a pack for new chunks (pending name, `O_EXCL`).
    pub(crate) fn new_pack(self: &Arc<Self>) -> Result<PackWriter, PersistError> {
        let n = self.next_pack.fetch_add(1, Ordering::Relaxed);
        let file = attempt(&*self.dir, n).create()?;
        let mut buf = Vec::with_capacity(WRITE_BUF);
        buf.extend_from_slice(&PACK_MAGIC);
        Ok(PackWriter {
            store: Arc::clone(self),
            n,
            file: Some(file),
            buf,
            index: Vec::new(),
            at: PACK_MAGIC.len() as u64,
            written: 0,
            written_back: Some(0),
            sealed: false,
        })
    }
}

/// Reads chunk `index` of a list, `entry`, from the pack of `dir` that `chunks` says holds
/// it, and checks its hash (see [`ChunkSource::read`]).
fn read_from(
    dir: &dyn DirHandle,
    chunks: &Mutex<Index>,
    index: u64,
    entry: &Entry,
    cache: &mut OpenPack,
) -> io::Result<Vec<u8>> {
    // A sweep may move the chunk to a new pack and delete the old one between the lookup
    // and the open: the index is updated before the delete, so look again once.
    for _ in 0..2 {
        let Some(loc) = chunks.lock().chunks.get(&entry.hash).copied() else {
            break;
        };
        let file = match cache.get(dir, loc.pack) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) => return Err(pack::into_io(e)),
        };
        return match pack::read_chunk(file, loc.offset, entry).map_err(pack::into_io)? {
            Some(bytes) => Ok(bytes),
            None => Err(invalid(BodyError::ChunkDamaged {
                index,
                hash: entry.hash,
                pack: file.path().to_path_buf(),
            })),
        };
    }
    Err(invalid(BodyError::ChunkMissing {
        index,
        hash: entry.hash,
    }))
}

/// Pack `n`'s steps: the snapshot writer's sequence (SPEC §5), from the pending name to the
/// sealed one.
fn attempt(dir: &dyn DirHandle, n: u64) -> Attempt<'_> {
    Attempt {
        dir,
        uncommitted: pending_name(n),
        committed: pack_name(n),
    }
}

fn invalid(e: BodyError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The pack a reader read last, kept open for the next chunk (consecutive chunks of a list
/// are mostly in one pack).
#[derive(Debug, Default)]
pub(crate) struct OpenPack {
    open: Option<(u64, Untrusted)>,
}

impl OpenPack {
    /// Pack `n`, opened through [`Untrusted`] unless it is the one open already; `None`
    /// when it is not there (any more).
    fn get(
        &mut self,
        dir: &dyn DirHandle,
        n: u64,
    ) -> Result<Option<&Untrusted>, crate::fs::UntrustedError> {
        if self.open.as_ref().is_none_or(|(m, _)| *m != n) {
            self.open = None;
            match open_pack(dir, n) {
                Ok(Some(f)) => self.open = Some((n, f)),
                Ok(None) => return Ok(None),
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(self.open.as_ref().map(|(_, f)| f))
    }
}

/// Bytes of small chunks gathered before a write to a pack.
const WRITE_BUF: usize = 1 << 20;

/// The writeback of a pack is started every this many bytes (a quarter of a pack), so its
/// seal's `fsync` waits for little and the device works while chunks are cut and hashed.
const WRITEBACK_STEP: u64 = 8 << 20;

/// Chunks at least this long are written to the pack straight from the caller's memory
/// (after the small ones gathered before them): copying them into the buffer first would
/// cost a pass over every byte of a first snapshot for a saving of a few system calls.
const WRITE_THROUGH: usize = 32 << 10;

/// A pack being written: chunks are appended (gathered into 1 MiB writes, no `fsync`), then
/// [`seal`](Self::seal) writes the index and trailer and makes it durable. Dropped unsealed,
/// its pending file is removed.
#[derive(Debug)]
pub(crate) struct PackWriter {
    store: Arc<ChunkStore>,
    n: u64,
    file: Option<Box<dyn WritableFile>>,
    buf: Vec<u8>,
    index: PackIndex,
    at: u64,
    /// Bytes written to the file so far.
    written: u64,
    /// Bytes of the file whose writeback was started (`None`: the filesystem cannot).
    written_back: Option<u64>,
    /// Renamed to its sealed name: nothing for `Drop` to remove.
    sealed: bool,
}

impl PackWriter {
    /// True when `len` more bytes (or one more chunk) would take the pack past its target.
    pub(crate) fn is_full_for(&self, len: usize) -> bool {
        self.at - PACK_MAGIC.len() as u64 + len as u64 > PACK_DATA_TARGET
            || self.index.len() as u64 >= MAX_PACK_CHUNKS
    }

    /// True when no chunk was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Appends one chunk (`hash` is the BLAKE3 of `bytes`).
    pub(crate) fn add(&mut self, bytes: &[u8], hash: Hash) -> Result<(), PersistError> {
        // Lengths are at most MAX_CHUNK (the cutter's bound), so they fit a u32.
        let len = bytes.len() as u32;
        self.index.push((self.at, Entry { len, hash }));
        self.at += u64::from(len);
        if bytes.len() >= WRITE_THROUGH {
            self.flush()?;
            return self.write_out(bytes);
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= WRITE_BUF {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes out the gathered bytes, if any.
    fn flush(&mut self) -> Result<(), PersistError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let written = self.write_out(&buf);
        self.buf = buf;
        self.buf.clear();
        written
    }

    /// Appends `bytes` to the file and starts the writeback of what was written since the
    /// last start. On failure the file is closed and unlinked (the writer's `abandon`):
    /// nothing of a pack a write failed on is ever sealed.
    fn write_out(&mut self, bytes: &[u8]) -> Result<(), PersistError> {
        let Some(mut file) = self.file.take() else {
            let e = io::Error::other("the pack was abandoned after an earlier failure");
            return Err(PersistError::Io {
                path: self.store.dir.path().join(pending_name(self.n)),
                step: Step::Write,
                source: e,
            });
        };
        if let Err(e) = write_all(&mut *file, bytes) {
            return Err(attempt(&*self.store.dir, self.n).abandon(file, Step::Write, e));
        }
        self.written += bytes.len() as u64;
        if let Err(e) = start_writeback(
            &mut *file,
            self.written,
            &mut self.written_back,
            WRITEBACK_STEP,
        ) {
            return Err(attempt(&*self.store.dir, self.n).abandon(file, Step::Write, e));
        }
        self.file = Some(file);
        Ok(())
    }

    /// Makes the pack durable with the snapshot writer's steps: index and trailer written,
    /// `fsync` (never retried), `close`, rename without replacing (link and unlink where the
    /// flag is unsupported) from the pending name to `chunks_<n>.pack`, directory `fsync`;
    /// then its chunks are in the index. A failure removes what it can (the pending file, or
    /// the sealed name after a failed directory `fsync`).
    pub(crate) fn seal(mut self) -> Result<(), PersistError> {
        let entries: Vec<Entry> = self.index.iter().map(|(_, e)| *e).collect();
        self.buf.extend_from_slice(&trailer(&entries));
        self.flush()?;
        let steps = attempt(&*self.store.dir, self.n);
        let Some(file) = self.file.take() else {
            return Err(PersistError::Io {
                path: steps.dir.path().join(&steps.uncommitted),
                step: Step::Close,
                source: io::Error::other("the pack was abandoned after an earlier failure"),
            });
        };
        steps.sync_and_close(file)?;
        steps.commit()?;
        self.sealed = true;
        steps.sync_dir()?;
        let index = std::mem::take(&mut self.index);
        self.store.index.lock().register(self.n, index);
        Ok(())
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        if self.sealed {
            return;
        }
        // Abandoned unsealed (a failure, or the generation dropped mid-body): close and remove
        // it, best effort; a leftover pending pack is removed when the store next opens.
        if let Some(file) = self.file.take() {
            drop(file.close());
            drop(self.store.dir.unlink(&pending_name(self.n)));
        }
    }
}
