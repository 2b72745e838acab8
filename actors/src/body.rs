//! Pending snapshot bodies: what the serialise action produces and the persist action writes.
//!
//! The serialise action streams a [`StateView`](crate::StateView) through a [`BodyBuilder`]:
//! optional zstd compression, then BLAKE3 over the stored bytes, into a [`PendingBody`]. The
//! stored bytes exist once, in one of two places:
//!
//! - **in memory**, while the Snapshotter's in-memory budget
//!   ([`SnapshotterConfig::spill_threshold`](crate::SnapshotterConfig::spill_threshold)) allows;
//!   the writer later writes straight from that buffer;
//! - **spilled**: as soon as a body would take the budget's total above its limit, what was
//!   buffered goes into a pending file in the snapshot directory
//!   ([`SpillFile`]) and the rest of the body streams straight after it: small writes of the
//!   state view are gathered in a [`SPILL_BUFFER`], writes of 1 MiB or more go from the
//!   view's own buffer to the file. The persist action then completes that same file:
//!   nothing is copied again.
//!
//! So the memory a snapshot needs beyond the node's own state is bounded by the budget plus
//! [`SPILL_BUFFER`], whatever the state's size. Hashing runs on snapseal's low-priority hashing pool (see [`crate::HashingConfig`]) over
//! large batches, on the bytes where they already are (the body buffer, the spill buffer or
//! the view's buffer).

use parking_lot::Mutex;
use std::io::{self, Write};
use std::sync::Arc;

use snapseal_persist::format::{Claims, Flags, PARALLEL_HASH_THRESHOLD};
use snapseal_persist::Hash;
use snapseal_persist::SnapshotStore;
use snapseal_persist::SpillFile;
use snapseal_persist::{Committed, GatheredRequest, PersistError, SpillCommit};

use crate::hashing::{hash, hash_behind, hash_while, HashJob};
use crate::node::FrozenChunk;

/// Bytes gathered before a spilled body is hashed and written: large enough that the write
/// syscalls and the thread hand-off of parallel hashing vanish, small enough to be no memory
/// concern.
pub const SPILL_BUFFER: usize = 4 << 20;

/// A write at least this large goes from the state view's buffer straight to the hasher and
/// the pending file, without a copy into the spill buffer: it is already big enough for a
/// parallel hash and a cheap syscall.
const DIRECT_WRITE: usize = PARALLEL_HASH_THRESHOLD;

/// Size of the chunks an in-memory body is kept in: each is hashed as it fills, and whole
/// ones are reused by later bodies (see [`MemoryBudget`]).
pub const MEMORY_CHUNK: usize = 4 << 20;

/// The in-memory allowance shared by all pending bodies of one Snapshotter. Cloning shares it.
///
/// It also keeps the buffers of finished in-memory bodies for the next ones (a *spare*
/// pool): their pages are already faulted in, so filling them again costs a copy, not a page
/// fault per 4 KiB. Spare buffers count against the limit like live ones (`used + spare <=
/// limit` always holds), and are freed as soon as a body needs the room for fresh memory.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    limit: u64,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    used: u64,
    /// Whole [`MEMORY_CHUNK`] buffers, cleared, kept for reuse.
    spare: Vec<Vec<u8>>,
}

impl BudgetState {
    fn spare_bytes(&self) -> u64 {
        self.spare.len() as u64 * MEMORY_CHUNK as u64
    }
}

impl MemoryBudget {
    /// A budget of `limit` bytes, none used.
    pub fn new(limit: u64) -> Self {
        Self {
            inner: Arc::new(BudgetInner {
                limit,
                state: Mutex::new(BudgetState::default()),
            }),
        }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Bytes currently held by in-memory bodies (and builders) under this budget.
    pub fn used(&self) -> u64 {
        self.inner.state.lock().used
    }

    /// Bytes held by spare buffers kept for reuse (also within the limit).
    pub fn spare(&self) -> u64 {
        self.inner.state.lock().spare_bytes()
    }

    /// Takes `n` more bytes of fresh memory if that keeps live and spare bytes within the
    /// limit, freeing spare buffers to make room.
    fn try_take(&self, n: u64) -> bool {
        let mut st = self.inner.state.lock();
        loop {
            let total = st.used.saturating_add(st.spare_bytes()).saturating_add(n);
            if total <= self.inner.limit {
                st.used += n;
                return true;
            }
            if st.spare.pop().is_none() {
                return false;
            }
        }
    }

    /// A spare buffer (cleared, capacity [`MEMORY_CHUNK`]), its bytes moved from spare to used.
    fn take_spare(&self) -> Option<Vec<u8>> {
        let mut st = self.inner.state.lock();
        let buf = st.spare.pop()?;
        st.used += MEMORY_CHUNK as u64;
        Some(buf)
    }

    /// Keeps `buf` for reuse when it is a whole chunk, moving its bytes from used to spare;
    /// returns whether it was kept (else the caller drops it).
    fn park(&self, mut buf: Vec<u8>) -> bool {
        if buf.capacity() != MEMORY_CHUNK {
            return false;
        }
        buf.clear();
        let mut st = self.inner.state.lock();
        st.used = st.used.saturating_sub(MEMORY_CHUNK as u64);
        st.spare.push(buf);
        true
    }

    fn give_back(&self, n: u64) {
        let mut st = self.inner.state.lock();
        st.used = st.used.saturating_sub(n);
    }
}

/// Where a builder may spill: the store owning the snapshot directory, the names of the
/// pending file, and the budget that decides when.
#[derive(Clone, Debug)]
pub struct SpillTarget {
    /// The store whose directory receives the pending file.
    pub store: Arc<SnapshotStore>,
    /// Snapshot index (part of the pending name).
    pub idx: u64,
    /// Generation number (part of the pending name).
    pub generation: u64,
    /// The shared in-memory allowance.
    pub budget: MemoryBudget,
}

/// Bytes taken from a [`MemoryBudget`], given back on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Option<MemoryBudget>,
    bytes: u64,
}

impl Reservation {
    fn none(budget: Option<MemoryBudget>) -> Self {
        Self { budget, bytes: 0 }
    }

    /// Grows the reservation by `n`; false (and unchanged) when the budget refuses. Without
    /// a budget everything is allowed.
    fn grow(&mut self, n: u64) -> bool {
        match &self.budget {
            None => true,
            Some(b) if b.try_take(n) => {
                self.bytes += n;
                true
            }
            Some(_) => false,
        }
    }

    /// A whole chunk for the body: a spare one (pages already faulted in) when the budget has
    /// one, else fresh memory if the budget allows; `None` when it refuses. Without a budget,
    /// always fresh memory.
    fn chunk(&mut self) -> Option<Vec<u8>> {
        if let Some(buf) = self.spare_chunk() {
            return Some(buf);
        }
        self.grow(MEMORY_CHUNK as u64).then(|| {
            let mut chunk = Vec::with_capacity(MEMORY_CHUNK);
            crate::huge_pages::advise(&mut chunk);
            chunk
        })
    }

    /// A spare whole chunk from the budget, counted by this reservation; `None` when there
    /// is none.
    fn spare_chunk(&mut self) -> Option<Vec<u8>> {
        let buf = self.budget.as_ref()?.take_spare()?;
        self.bytes += MEMORY_CHUNK as u64;
        Some(buf)
    }

    /// Hands `buf` back: kept as a spare when it is a whole chunk counted by this
    /// reservation, else freed with the reservation.
    fn release(&mut self, buf: Vec<u8>) {
        let Some(b) = &self.budget else { return };
        if self.bytes >= MEMORY_CHUNK as u64 && b.park(buf) {
            self.bytes -= MEMORY_CHUNK as u64;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.bytes);
        }
    }
}

/// Where a pending body's stored bytes are.
pub(crate) enum Stored {
    /// In memory, counted against the budget until dropped.
    Memory(MemoryBody),
    /// In a pending file, complete up to the header and receipt.
    Spilled(SpillFile),
    /// The node's own frozen chunks, written from where they are.
    Frozen(Vec<FrozenChunk>),
}

/// An in-memory body: consecutive chunks, every one but the last full ([`MEMORY_CHUNK`]), so
/// growing it never moves (copies) what is already there. Dropping it hands whole chunks back
/// to the budget's spare pool.
pub(crate) struct MemoryBody {
    chunks: Vec<Vec<u8>>,
    reservation: Reservation,
    /// The first chunk is fresh memory counted by length (not a whole spare chunk).
    first_by_len: bool,
}

impl MemoryBody {
    /// The body's bytes, chunk by chunk, in order.
    pub(crate) fn parts(&self) -> Vec<&[u8]> {
        self.chunks.iter().map(|c| c.as_slice()).collect()
    }
}

impl Drop for MemoryBody {
    fn drop(&mut self) {
        for chunk in self.chunks.drain(..) {
            self.reservation.release(chunk);
        }
    }
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stored::Memory(body) => f
                .debug_struct("Memory")
                .field("chunks", &body.chunks.len())
                .finish(),
            Stored::Spilled(file) => f.debug_tuple("Spilled").field(file).finish(),
            Stored::Frozen(chunks) => f
                .debug_struct("Frozen")
                .field("chunks", &chunks.len())
                .finish(),
        }
    }
}

/// A serialised snapshot body waiting for its proof: in memory, or spilled to a pending file.
/// Dropping it releases its memory or removes its pending file.
#[derive(Debug)]
pub struct PendingBody {
    stored: Stored,
    len: u64,
    digest: Hash,
    raw_len: u64,
    flags: Flags,
}

impl PendingBody {
    /// The stored body bytes (compressed when [`flags`](Self::flags) say so) when the body is
    /// in memory in one piece (at most 4 MiB); `None` when it was spilled to a pending file,
    /// is frozen chunks, or is held in several chunks (see [`memory_parts`](Self::memory_parts)).
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.stored {
            Stored::Memory(body) => match body.chunks.as_slice() {
                [] => Some(&[]),
                [one] => Some(one),
                _ => None,
            },
            Stored::Spilled(_) | Stored::Frozen(_) => None,
        }
    }
    /// The in-memory body's bytes as its consecutive chunks; `None` when it is not in memory.
    pub fn memory_parts(&self) -> Option<Vec<&[u8]>> {
        match &self.stored {
            Stored::Memory(body) => Some(body.parts()),
            Stored::Spilled(_) | Stored::Frozen(_) => None,
        }
    }
    /// The body as the node's frozen chunks, when it came from
    /// [`StateView::frozen_chunks`](crate::StateView::frozen_chunks) (never copied).
    pub fn frozen_chunks(&self) -> Option<&[FrozenChunk]> {
        match &self.stored {
            Stored::Frozen(chunks) => Some(chunks),
            Stored::Memory(_) | Stored::Spilled(_) => None,
        }
    }
    /// The body from frozen chunks: hashed where they are (a large chunk on all cores), not
    /// copied, stored uncompressed.
    pub fn from_frozen(chunks: Vec<FrozenChunk>) -> Self {
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        for chunk in &chunks {
            let bytes = (**chunk).as_ref();
            hash(&mut hasher, bytes);
            len += bytes.len() as u64;
        }
        PendingBody {
            stored: Stored::Frozen(chunks),
            len,
            digest: *hasher.finalize().as_bytes(),
            raw_len: len,
            flags: Flags::NONE,
        }
    }
    /// The pending file holding the body, when it was spilled.
    pub fn spill_file(&self) -> Option<&SpillFile> {
        match &self.stored {
            Stored::Memory(_) | Stored::Frozen(_) => None,
            Stored::Spilled(file) => Some(file),
        }
    }
    /// True when the body was spilled to a pending file.
    pub fn is_spilled(&self) -> bool {
        matches!(self.stored, Stored::Spilled(_))
    }
    /// BLAKE3 of the stored bytes (the header's body digest).
    pub fn digest(&self) -> Hash {
        self.digest
    }
    /// The claims digest of this body as the snapshot at `idx` (docs/FORMAT.md §3): the digest
    /// the ledger's evidence tx carries and the receipt proves. It covers `idx`, the flags, both
    /// lengths and the body digest, so none of them can be changed in the file afterwards.
    pub fn claims_digest(&self, idx: u64) -> Hash {
        Claims {
            idx,
            flags: self.flags,
            body_len: self.len,
            raw_len: self.raw_len,
            body_digest: self.digest,
        }
        .digest()
    }
    /// Length of the serialised state before compression.
    pub fn raw_len(&self) -> u64 {
        self.raw_len
    }
    /// Header flags describing the body encoding.
    pub fn flags(&self) -> Flags {
        self.flags
    }
    /// Stored length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// True for an empty body (an empty state, uncompressed).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Commits this body as the snapshot `idx` proven by `receipt` at `evidence_idx`, for an
    /// embedding that makes its own receipt (a Raft node's signed statement): a body in
    /// memory or in frozen chunks is written from where it is by
    /// [`SnapshotStore::persist_gathered`], a spilled one has its pending file completed by
    /// [`SnapshotStore::commit_spill`] (not copied again). Same write sequence
    /// and crash guarantees as the Snapshotter's own persist step.
    pub fn commit(
        self,
        store: &SnapshotStore,
        idx: u64,
        evidence_idx: u64,
        receipt: &[u8],
    ) -> Result<Committed, PersistError> {
        let (flags, raw_len, body_digest) = (self.flags, self.raw_len, self.digest);
        let gathered = |parts: &[&[u8]]| {
            store.persist_gathered(&GatheredRequest {
                idx,
                evidence_idx,
                flags,
                raw_len,
                body_digest,
                body: parts,
                receipt,
            })
        };
        match self.stored {
            Stored::Memory(body) => gathered(&body.parts()),
            Stored::Frozen(chunks) => {
                let parts: Vec<&[u8]> = chunks.iter().map(|c| (**c).as_ref()).collect();
                gathered(&parts)
            }
            // The body is already in its file: add receipt and header, fsync, rename.
            Stored::Spilled(file) => store.commit_spill(
                file,
                &SpillCommit {
                    evidence_idx,
                    flags,
                    raw_len,
                    body_digest,
                    receipt,
                },
            ),
        }
    }
}

/// Hashes the stored bytes and keeps them: in memory, or (once spilled) in the pending file.
struct HashingSink {
    hasher: blake3::Hasher,
    spill: Option<SpillTarget>,
    state: SinkState,
    len: u64,
    /// A full in-memory chunk (at this index) hashing on the pool while the next one fills;
    /// the hasher and the chunk are away until [`join_hash`](Self::join_hash).
    in_flight: Option<(usize, HashJob)>,
}

enum SinkState {
    /// In memory; the first `hashed` chunks are already hashed (each is hashed as it fills).
    Memory { body: MemoryBody, hashed: usize },
    /// Spilled; `buf` is hashed and written out whenever it fills.
    Spilled { file: SpillFile, buf: Vec<u8> },
}

impl HashingSink {
    fn new(spill: Option<SpillTarget>) -> Self {
        let budget = spill.as_ref().map(|s| s.budget.clone());
        HashingSink {
            hasher: blake3::Hasher::new(),
            spill,
            state: SinkState::Memory {
                body: MemoryBody {
                    chunks: Vec::new(),
                    reservation: Reservation::none(budget),
                    first_by_len: true,
                },
                hashed: 0,
            },
            len: 0,
            in_flight: None,
        }
    }

    /// Moves what is buffered in memory into a new pending file and frees the buffer.
    fn spill_now(&mut self) -> io::Result<()> {
        self.join_hash()?;
        let Some(target) = &self.spill else {
            return Err(io::Error::other("spilling without a spill target"));
        };
        let mut file = target
            .store
            .create_spill(target.idx, target.generation)
            .map_err(io::Error::other)?;
        if let SinkState::Memory { body, hashed } = &mut self.state {
            for (i, chunk) in body.chunks.iter().enumerate() {
                let unhashed: &[u8] = if i < *hashed { &[] } else { chunk };
                hash_while(&mut self.hasher, unhashed, || file.write_body(chunk))
                    .map_err(io::Error::other)?;
            }
        }
        tracing::debug!(path = %file.path().display(), bytes = self.len, "body spilled to disk");
        // Replacing the state drops the in-memory buffer and gives its reservation back.
        self.state = SinkState::Spilled {
            file,
            buf: Vec::with_capacity(SPILL_BUFFER),
        };
        Ok(())
    }

    /// Hashes and writes out the spill buffer.
    fn drain_spill_buffer(
        hasher: &mut blake3::Hasher,
        file: &mut SpillFile,
        buf: &mut Vec<u8>,
    ) -> io::Result<()> {
        // The write (a copy into the page cache) overlaps with hashing the same bytes.
        hash_while(hasher, buf, || file.write_body(buf)).map_err(io::Error::other)?;
        buf.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<(Stored, u64, Hash)> {
        self.join_hash()?;
        let stored = match self.state {
            SinkState::Memory { body, hashed } => {
                for chunk in body.chunks.iter().skip(hashed) {
                    hash(&mut self.hasher, chunk);
                }
                Stored::Memory(body)
            }
            SinkState::Spilled { mut file, mut buf } => {
                Self::drain_spill_buffer(&mut self.hasher, &mut file, &mut buf)?;
                Stored::Spilled(file)
            }
        };
        Ok((stored, self.len, *self.hasher.finalize().as_bytes()))
    }
}

impl HashingSink {
    /// Appends as much of `buf` to the in-memory body as the budget allows; returns how many
    /// bytes it took (fewer than `buf.len()` only when the budget refused more).
    /// Waits for the chunk hashing in the background, if any, and puts the hasher and the
    /// chunk back.
    fn join_hash(&mut self) -> io::Result<()> {
        let Some((index, job)) = self.in_flight.take() else {
            return Ok(());
        };
        let (hasher, chunk) = job
            .recv()
            .map_err(|_| io::Error::other("hashing a body chunk failed (the hash panicked)"))?;
        self.hasher = hasher;
        if let SinkState::Memory { body, .. } = &mut self.state {
            if let Some(slot) = body.chunks.get_mut(index) {
                *slot = chunk;
            }
        }
        Ok(())
    }

    fn write_memory(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let mut taken = 0;
        while !buf.is_empty() {
            let SinkState::Memory { body, .. } = &self.state else {
                return Ok(taken);
            };
            let full = body.chunks.last().is_none_or(|c| c.len() == MEMORY_CHUNK);
            if full {
                // The chunk that just filled hashes on the pool while the next one fills; the
                // one before it must be done first (the hash is one ordered stream).
                self.join_hash()?;
                let SinkState::Memory { body, hashed } = &mut self.state else {
                    return Ok(taken);
                };
                if *hashed < body.chunks.len() {
                    let index = body.chunks.len() - 1;
                    let chunk = std::mem::take(&mut body.chunks[index]);
                    let hasher = std::mem::take(&mut self.hasher);
                    self.in_flight = Some((index, hash_behind(hasher, chunk)));
                    *hashed = body.chunks.len();
                }
                // The first chunk is a spare one if the budget has one; else it grows with
                // the body (a small body stays small). Later ones are whole chunks, spare or
                // fresh.
                let next = if body.chunks.is_empty() {
                    let spare = body.reservation.spare_chunk();
                    body.first_by_len = spare.is_none();
                    Some(spare.unwrap_or_default())
                } else {
                    body.reservation.chunk()
                };
                match next {
                    Some(chunk) => body.chunks.push(chunk),
                    None => return Ok(taken),
                }
            }
            let SinkState::Memory { body, .. } = &mut self.state else {
                return Ok(taken);
            };
            let first = body.chunks.len() == 1 && body.first_by_len;
            let Some(last) = body.chunks.last_mut() else {
                return Ok(taken);
            };
            let n = buf.len().min(MEMORY_CHUNK - last.len());
            if first {
                // Counted by length; capacity grows by doubling up to exactly one chunk, so
                // that a full first chunk can be reused like the others.
                if !body.reservation.grow(n as u64) {
                    return Ok(taken);
                }
                let need = last.len() + n;
                if need > last.capacity() {
                    let target = need.max(last.capacity() * 2).min(MEMORY_CHUNK);
                    last.reserve_exact(target - last.len());
                }
            }
            last.extend_from_slice(&buf[..n]);
            buf = &buf[n..];
            taken += n;
        }
        Ok(taken)
    }
}

impl Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if matches!(self.state, SinkState::Memory { .. }) {
            let taken = self.write_memory(buf)?;
            self.len += taken as u64;
            if taken == buf.len() {
                return Ok(taken);
            }
            // The budget refused the rest: everything so far goes to a pending file.
            self.spill_now()?;
            if taken > 0 {
                return Ok(taken);
            }
        }
        match &mut self.state {
            SinkState::Memory { .. } => {
                return Err(io::Error::other(
                    "the body is still in memory after spilling",
                ))
            }
            SinkState::Spilled { file, buf: pending } => {
                let direct = buf.len() >= DIRECT_WRITE;
                if !pending.is_empty() && (direct || pending.len() + buf.len() > SPILL_BUFFER) {
                    Self::drain_spill_buffer(&mut self.hasher, file, pending)?;
                }
                if direct {
                    // Large enough on its own: hash and write it where it is, no copy, the
                    // two at once.
                    hash_while(&mut self.hasher, buf, || file.write_body(buf))
                        .map_err(io::Error::other)?;
                } else {
                    pending.extend_from_slice(buf);
                }
            }
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// One builder exists per generation: the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Stage {
    Plain(HashingSink),
    Zstd(Box<zstd::stream::write::Encoder<'static, HashingSink>>),
}

/// The `io::Write` a state view streams into.
pub struct BodyBuilder {
    stage: Stage,
    raw_len: u64,
}

impl BodyBuilder {
    /// A builder keeping the body in memory, storing plain bytes (`None`) or zstd at the
    /// given level.
    pub fn new(compression: Option<i32>) -> io::Result<Self> {
        Self::build(compression, None)
    }

    /// Like [`new`](Self::new), but the body goes to a pending file in `target`'s store as
    /// soon as keeping it in memory would exceed `target.budget`.
    pub fn with_spill(compression: Option<i32>, target: SpillTarget) -> io::Result<Self> {
        Self::build(compression, Some(target))
    }

    fn build(compression: Option<i32>, spill: Option<SpillTarget>) -> io::Result<Self> {
        let sink = HashingSink::new(spill);
        let stage = match compression {
            None => Stage::Plain(sink),
            Some(level) => Stage::Zstd(Box::new(zstd::stream::write::Encoder::new(sink, level)?)),
        };
        Ok(BodyBuilder { stage, raw_len: 0 })
    }

    /// Finish the stream: flush the compressor, write out what is buffered and seal the
    /// digest.
    pub fn finish(self) -> io::Result<PendingBody> {
        let (sink, flags) = match self.stage {
            Stage::Plain(sink) => (sink, Flags::NONE),
            Stage::Zstd(enc) => (enc.finish()?, Flags::ZSTD),
        };
        let (stored, len, digest) = sink.finish()?;
        Ok(PendingBody {
            stored,
            len,
            digest,
            raw_len: self.raw_len,
            flags,
        })
    }
}

impl Write for BodyBuilder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.stage {
            Stage::Plain(sink) => sink.write(buf)?,
            Stage::Zstd(enc) => enc.write(buf)?,
        };
        self.raw_len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stage {
            Stage::Plain(sink) => sink.flush(),
            Stage::Zstd(enc) => enc.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use snapseal_persist::fs::SimFs;
    use snapseal_persist::fs::{Fault, FaultKind, Op};
    use snapseal_persist::receipt::Ed25519Verifier;
    use snapseal_persist::StoreOptions;

    use super::*;

    const DIR: &str = "/snapshots";

    fn sim_store(seed: u64) -> (SimFs, Arc<SnapshotStore>) {
        let sim = SimFs::new(seed);
        let opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(Vec::new())));
        let store = SnapshotStore::open(Arc::new(sim.clone()), Path::new(DIR), opts).unwrap();
        (sim, Arc::new(store))
    }

    fn target(store: &Arc<SnapshotStore>, generation: u64, budget: &MemoryBudget) -> SpillTarget {
        SpillTarget {
            store: Arc::clone(store),
            idx: 7,
            generation,
            budget: budget.clone(),
        }
    }

    fn pending_names(sim: &SimFs) -> Vec<String> {
        sim.names(Path::new(DIR))
            .into_iter()
            .filter(|n| n.ends_with(".pending"))
            .collect()
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Writes `data` in uneven pieces, so chunk boundaries fall inside writes.
    fn write_uneven(b: &mut BodyBuilder, data: &[u8]) {
        let mut rest = data;
        let mut step = 1usize;
        while !rest.is_empty() {
            let n = rest.len().min(step);
            b.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
            step = step * 3 + 7919;
        }
    }

    #[test]
    fn a_large_in_memory_body_is_whole_chunks_and_hashes_as_one_stream() {
        let data = data(2 * MEMORY_CHUNK + 12345);
        let mut b = BodyBuilder::new(None).unwrap();
        write_uneven(&mut b, &data);
        let body = b.finish().unwrap();
        assert_eq!(body.digest(), *blake3::hash(&data).as_bytes());
        let parts = body.memory_parts().unwrap();
        assert_eq!(parts.len(), 3);
        assert!(parts[..2].iter().all(|p| p.len() == MEMORY_CHUNK));
        assert_eq!(parts.concat(), data);
        assert!(body.bytes().is_none(), "several chunks are not one slice");
    }

    #[test]
    fn finished_bodies_leave_their_chunks_for_the_next_within_the_limit() {
        let (_sim, store) = sim_store(3);
        let limit = 64 << 20;
        let budget = MemoryBudget::new(limit);
        let data = data(3 * MEMORY_CHUNK + 10);
        for generation in 0..3 {
            let mut b = BodyBuilder::with_spill(None, target(&store, generation, &budget)).unwrap();
            write_uneven(&mut b, &data);
            assert!(budget.used() + budget.spare() <= limit);
            let body = b.finish().unwrap();
            assert!(!body.is_spilled());
            assert_eq!(body.digest(), *blake3::hash(&data).as_bytes());
            drop(body);
            assert_eq!(budget.used(), 0, "generation {generation}");
            // Four chunks: the first (grown to exactly one chunk), two whole ones and the
            // last partial one, which still has a whole chunk's capacity.
            assert_eq!(
                budget.spare(),
                4 * MEMORY_CHUNK as u64,
                "generation {generation}"
            );
        }
    }

    #[test]
    fn spare_chunks_give_way_when_a_body_needs_fresh_memory() {
        let (_sim, store) = sim_store(4);
        let limit = 3 * MEMORY_CHUNK as u64;
        let budget = MemoryBudget::new(limit);
        let big = data(2 * MEMORY_CHUNK);
        let mut b = BodyBuilder::with_spill(None, target(&store, 1, &budget)).unwrap();
        b.write_all(&big).unwrap();
        drop(b.finish().unwrap());
        assert_eq!(budget.spare(), 2 * MEMORY_CHUNK as u64);
        // A growing first chunk needs fresh memory: the spares make room rather than spill.
        let mut b = BodyBuilder::with_spill(None, target(&store, 2, &budget)).unwrap();
        b.write_all(&big[..MEMORY_CHUNK + 5]).unwrap();
        assert!(budget.used() + budget.spare() <= limit);
        let body = b.finish().unwrap();
        assert!(
            !body.is_spilled(),
            "the spare chunks were freed to make room"
        );
        assert_eq!(
            body.digest(),
            *blake3::hash(&big[..MEMORY_CHUNK + 5]).as_bytes()
        );
    }

    #[test]
    fn a_body_past_the_budget_spills_mid_chunk_with_every_byte_in_order() {
        let (sim, store) = sim_store(5);
        let budget = MemoryBudget::new(MEMORY_CHUNK as u64 + MEMORY_CHUNK as u64 / 2);
        let data = data(3 * MEMORY_CHUNK + 99);
        let mut b = BodyBuilder::with_spill(None, target(&store, 9, &budget)).unwrap();
        write_uneven(&mut b, &data);
        let body = b.finish().unwrap();
        assert!(body.is_spilled());
        assert_eq!(body.digest(), *blake3::hash(&data).as_bytes());
        let name = pending_names(&sim).pop().unwrap();
        let file = sim.read(Path::new(DIR), &name).unwrap();
        assert_eq!(&file[snapseal_persist::format::HEADER_LEN..], &data[..]);
        assert_eq!(
            budget.used(),
            0,
            "the in-memory part was given back when it spilled"
        );
    }

    #[test]
    fn a_frozen_body_has_the_digest_and_claims_of_the_same_bytes_streamed() {
        // A chunk above the parallel-hash threshold, a small one and an empty one.
        let big = data(3 << 20);
        let small = data(1000);
        let chunks: Vec<FrozenChunk> = vec![
            Arc::new(big.clone()),
            Arc::new(small.clone()),
            Arc::new(Vec::<u8>::new()),
        ];
        let frozen = PendingBody::from_frozen(chunks);
        let mut streamed = BodyBuilder::new(None).unwrap();
        streamed.write_all(&big).unwrap();
        streamed.write_all(&small).unwrap();
        let streamed = streamed.finish().unwrap();
        assert_eq!(frozen.digest(), streamed.digest());
        assert_eq!(frozen.len(), streamed.len());
        assert_eq!(frozen.claims_digest(9), streamed.claims_digest(9));
        assert!(frozen.bytes().is_none() && frozen.frozen_chunks().is_some());
    }

    #[test]
    fn plain_body_digest_is_blake3_of_the_bytes() {
        let mut b = BodyBuilder::new(None).unwrap();
        b.write_all(b"hello ").unwrap();
        b.write_all(b"world").unwrap();
        let body = b.finish().unwrap();
        assert_eq!(body.bytes(), Some(&b"hello world"[..]));
        assert_eq!(body.digest(), *blake3::hash(b"hello world").as_bytes());
        assert_eq!(body.raw_len(), 11);
        assert_eq!(body.flags(), Flags::NONE);
        assert!(!body.is_spilled());
    }

    #[test]
    fn zstd_body_hashes_the_stored_bytes_and_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut b = BodyBuilder::new(Some(3)).unwrap();
        for chunk in data.chunks(4096) {
            b.write_all(chunk).unwrap();
        }
        let body = b.finish().unwrap();
        let bytes = body.bytes().unwrap();
        assert_eq!(body.flags(), Flags::ZSTD);
        assert_eq!(body.raw_len(), data.len() as u64);
        assert!(body.len() < data.len() as u64);
        assert_eq!(body.digest(), *blake3::hash(bytes).as_bytes());
        assert_eq!(zstd::decode_all(bytes).unwrap(), data);
    }

    #[test]
    fn a_large_body_hashes_the_same_in_batches_on_all_cores() {
        // Above HASH_BATCH and PARALLEL_HASH_THRESHOLD, in uneven writes.
        let data = data(9 << 20 | 12345);
        let mut b = BodyBuilder::new(None).unwrap();
        for chunk in data.chunks(1_000_003) {
            b.write_all(chunk).unwrap();
        }
        let body = b.finish().unwrap();
        assert_eq!(body.digest(), *blake3::hash(&data).as_bytes());
        assert_eq!(body.len(), data.len() as u64);
    }

    #[test]
    fn a_body_within_the_budget_stays_in_memory_and_holds_its_share_until_dropped() {
        let (sim, store) = sim_store(1);
        let budget = MemoryBudget::new(10_000);
        let mut b = BodyBuilder::with_spill(None, target(&store, 0, &budget)).unwrap();
        b.write_all(&data(6000)).unwrap();
        let body = b.finish().unwrap();
        assert!(!body.is_spilled());
        assert_eq!(budget.used(), 6000);
        assert!(pending_names(&sim).is_empty());
        drop(body);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_body_beyond_the_budget_spills_mid_stream_and_frees_its_memory() {
        let (sim, store) = sim_store(2);
        let budget = MemoryBudget::new(10_000);
        let data = data(SPILL_BUFFER + 50_000);
        let mut b = BodyBuilder::with_spill(None, target(&store, 3, &budget)).unwrap();
        // Small writes first (buffered in memory), then past the budget, then a write larger
        // than the spill buffer (written where it is).
        let (small, rest) = data.split_at(9_000);
        for chunk in small.chunks(1000) {
            b.write_all(chunk).unwrap();
        }
        assert_eq!(budget.used(), 9_000);
        let (mid, big) = rest.split_at(41_000);
        b.write_all(mid).unwrap();
        assert_eq!(budget.used(), 0, "spilling gives the memory back");
        b.write_all(big).unwrap();
        let body = b.finish().unwrap();
        assert!(body.is_spilled());
        assert_eq!(body.bytes(), None);
        assert_eq!(body.len(), data.len() as u64);
        assert_eq!(body.digest(), *blake3::hash(&data).as_bytes());
        assert_eq!(
            pending_names(&sim),
            vec!["snapshot_7.g3.pending".to_string()]
        );
        let on_disk = sim.read(Path::new(DIR), "snapshot_7.g3.pending").unwrap();
        assert_eq!(&on_disk[..160], &[0u8; 160][..], "placeholder header");
        assert_eq!(&on_disk[160..], &data[..], "the body, exactly once");
        assert_eq!(
            body.spill_file().map(|f| f.body_len()),
            Some(data.len() as u64)
        );
        drop(body);
        assert!(
            pending_names(&sim).is_empty(),
            "a dropped body removes its file"
        );
    }

    #[test]
    fn the_budget_is_shared_so_a_second_body_spills_while_the_first_holds_it() {
        let (sim, store) = sim_store(3);
        let budget = MemoryBudget::new(10_000);
        let mut first = BodyBuilder::with_spill(None, target(&store, 0, &budget)).unwrap();
        first.write_all(&data(8_000)).unwrap();
        let first = first.finish().unwrap();
        let mut second = BodyBuilder::with_spill(None, target(&store, 1, &budget)).unwrap();
        second.write_all(&data(3_000)).unwrap();
        let second = second.finish().unwrap();
        assert!(!first.is_spilled());
        assert!(second.is_spilled());
        assert_eq!(budget.used(), 8_000);
        assert_eq!(
            pending_names(&sim),
            vec!["snapshot_7.g1.pending".to_string()]
        );
    }

    #[test]
    fn a_zero_budget_spills_compressed_bytes_that_decode_to_the_state() {
        let (sim, store) = sim_store(4);
        let budget = MemoryBudget::new(0);
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        let mut b = BodyBuilder::with_spill(Some(3), target(&store, 5, &budget)).unwrap();
        for chunk in data.chunks(10_000) {
            b.write_all(chunk).unwrap();
        }
        let body = b.finish().unwrap();
        assert!(body.is_spilled());
        assert_eq!(body.flags(), Flags::ZSTD);
        let on_disk = sim.read(Path::new(DIR), "snapshot_7.g5.pending").unwrap();
        let stored = &on_disk[160..];
        assert_eq!(stored.len() as u64, body.len());
        assert_eq!(body.digest(), *blake3::hash(stored).as_bytes());
        assert_eq!(zstd::decode_all(stored).unwrap(), data);
    }

    #[test]
    fn a_failing_spill_write_is_an_error_naming_the_file_and_leaves_no_file() {
        let (sim, store) = sim_store(5);
        let budget = MemoryBudget::new(0);
        let mut b = BodyBuilder::with_spill(None, target(&store, 2, &budget)).unwrap();
        b.write_all(b"first").unwrap();
        sim.inject(Fault::nth(Op::Write, 1, FaultKind::Enospc));
        let big = data(SPILL_BUFFER + 1);
        let err = b.write_all(&big).expect_err("ENOSPC");
        assert!(err.to_string().contains("snapshot_7.g2.pending"), "{err}");
        drop(b);
        assert!(pending_names(&sim).is_empty());
        assert_eq!(sim.open_files(), 0);
    }
}
