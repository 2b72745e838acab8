//! [`BodyBuilder`]: the `io::Write` a state streams into, and the sink behind it that hashes
//! the stored bytes and keeps them in memory or, past the budget, in a pending file.

use std::io::{self, Write};

use super::budget::{Reservation, SpillTarget};
use super::hashing::{hash, hash_behind, hash_while, HashJob};
use super::pending::{MemoryBody, PendingBody, Stored};
use super::{DIRECT_WRITE, MEMORY_CHUNK, SPILL_BUFFER};
use crate::chunks::sink::ChunkingSink;
use crate::format::Flags;
use crate::writer::SpillFile;
use crate::Hash;

/// Hashes the stored bytes and keeps them: in memory, or (once spilled) in the pending file.
/// A chunked body's list goes through one too (docs/FORMAT.md §2.2: the list is the stored
/// body), so the memory budget and spilling hold for it as for any body.
pub(crate) struct HashingSink {
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
    pub(crate) fn new(spill: Option<SpillTarget>) -> Self {
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

    pub(crate) fn finish(mut self) -> io::Result<(Stored, u64, Hash)> {
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
    Chunked(ChunkingSink),
}

/// The `io::Write` a snapshot body streams into: optional zstd compression, BLAKE3 over the
/// stored bytes on the hashing pool, and the bytes kept in memory or — past the
/// [`MemoryBudget`](crate::MemoryBudget) of a [`SpillTarget`] — in a pending file of the
/// store. [`finish`](Self::finish) gives the [`PendingBody`], which is committed once the
/// ledger has proved its claims.
///
/// ```
/// use std::io::{Read, Write};
/// use std::sync::Arc;
/// use snapseal_persist::fs::RealFs;
/// use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
/// use snapseal_persist::{
///     BodyBuilder, MemoryBudget, SigningKey, SnapshotStore, SpillTarget, StoreOptions,
/// };
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let key = SigningKey::from_bytes(&[7; 32]);
/// let verifier = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
/// let opts = StoreOptions::new(Arc::new(verifier));
/// let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?);
///
/// // The state at index 41, streamed: past 1 KiB of memory it goes to a pending file.
/// let budget = MemoryBudget::new(1024);
/// let target = SpillTarget { store: Arc::clone(&store), idx: 41, generation: 1, budget };
/// let mut builder = BodyBuilder::with_spill(None, target)?;
/// let state: Vec<u8> = (0..1000u32).flat_map(u32::to_le_bytes).collect();
/// for piece in state.chunks(100) {
///     builder.write_all(piece)?;
/// }
/// let body = builder.finish()?;
/// assert!(body.is_spilled());
/// assert_eq!(body.digest(), *blake3::hash(&state).as_bytes());
///
/// // The ledger committed it at index 42: the node signs that, and the file is committed.
/// let receipt = statement_receipt(&key, &body.claims(41), 42, None)?;
/// let committed = body.commit(&store, 41, 42, &receipt)?;
///
/// // After a restart, `latest` finds it, verified, and reads the state back.
/// let latest = store.latest()?.expect("the snapshot just committed");
/// assert_eq!(*latest.name(), committed.name);
/// let mut read = Vec::new();
/// latest.body_reader()?.read_to_end(&mut read)?;
/// assert_eq!(read, state);
/// # Ok(()) }
/// ```
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
    ///
    /// For a store opened with [`StoreOptions::chunked`](crate::StoreOptions::chunked) the
    /// body is chunked instead (docs/FORMAT.md §2.2): cut into content-defined chunks as it
    /// streams, each new chunk written into the store's packs (made durable by
    /// [`finish`](Self::finish)); the stored body is the chunk list (36 bytes a chunk), kept
    /// in memory within `target.budget` or spilled like any body.
    /// `compression` must then be `None` (refused with [`io::ErrorKind::InvalidInput`]).
    pub fn with_spill(compression: Option<i32>, target: SpillTarget) -> io::Result<Self> {
        Self::build(compression, Some(target))
    }

    fn build(compression: Option<i32>, spill: Option<SpillTarget>) -> io::Result<Self> {
        if let Some(target) = spill.as_ref().filter(|t| t.store.options().chunked) {
            if compression.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a chunked snapshot is not compressed (docs/FORMAT.md §2.2): build it without compression",
                ));
            }
            let store = std::sync::Arc::clone(target.store.chunk_store());
            let sink = ChunkingSink::new(store, HashingSink::new(spill));
            return Ok(BodyBuilder {
                stage: Stage::Chunked(sink),
                raw_len: 0,
            });
        }
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
            Stage::Chunked(sink) => return Ok(PendingBody::chunked(sink.finish()?)),
        };
        let (stored, len, digest) = sink.finish()?;
        Ok(PendingBody {
            stored,
            len,
            digest,
            raw_len: self.raw_len,
            flags,
            chunks: None,
            new_chunk_bytes: 0,
        })
    }
}

impl Write for BodyBuilder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.stage {
            Stage::Plain(sink) => sink.write(buf)?,
            Stage::Zstd(enc) => enc.write(buf)?,
            Stage::Chunked(sink) => sink.write(buf)?,
        };
        self.raw_len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stage {
            Stage::Plain(sink) => sink.flush(),
            Stage::Zstd(enc) => enc.flush(),
            Stage::Chunked(sink) => sink.flush(),
        }
    }
}
