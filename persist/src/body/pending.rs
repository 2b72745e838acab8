//! [`PendingBody`]: a serialised body waiting for its proof, and how it is committed.

use std::sync::Arc;

use super::budget::{Reservation, SpillTarget};
use super::hashing::hash;
use crate::chunks::sink::{ChunkClaim, ChunkedBody};
use crate::format::{Claims, Flags};
use crate::writer::{Committed, GatheredRequest, SpillCommit, SpillFile};
use crate::{Hash, PersistError, SnapshotStore};

/// One frozen, reference-counted piece of a serialised state: any byte container the node
/// already has (`Arc<[u8]>`, `Arc<Vec<u8>>`, a `bytes::Bytes` in a newtype, a read-only
/// mapping) behind an `Arc`. See [`PendingBody::from_frozen`].
///
/// Immutable: its bytes (what `as_ref` returns: the same address, length and content) never
/// change while any clone of it lives. A chunked store relies on it: it remembers each
/// frozen chunk's cut by that address and length, holding a clone
/// ([`PendingBody::from_frozen_in`]).
pub type FrozenChunk = Arc<dyn AsRef<[u8]> + Send + Sync>;

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
    pub(super) chunks: Vec<Vec<u8>>,
    pub(super) reservation: Reservation,
    /// The first chunk is fresh memory counted by length (not a whole spare chunk).
    pub(super) first_by_len: bool,
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
    pub(super) stored: Stored,
    pub(super) len: u64,
    pub(super) digest: Hash,
    pub(super) raw_len: u64,
    pub(super) flags: Flags,
    /// A chunked body's claim on the chunks its list names: released when the body is
    /// dropped, after its commit (and that commit's retention pass) or when abandoned.
    pub(super) chunks: Option<ChunkClaim>,
    /// Bytes of chunks this body wrote into packs (0 for a plain body).
    pub(super) new_chunk_bytes: u64,
}

impl PendingBody {
    /// The stored body bytes (compressed when the flags say so) when the body is in memory in
    /// one piece (at most 4 MiB); `None` when it was spilled to a pending file, is frozen
    /// chunks, or is held in several chunks (see [`memory_parts`](Self::memory_parts)).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
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
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn memory_parts(&self) -> Option<Vec<&[u8]>> {
        match &self.stored {
            Stored::Memory(body) => Some(body.parts()),
            Stored::Spilled(_) | Stored::Frozen(_) => None,
        }
    }
    /// The body as the node's frozen chunks, when it came from
    /// [`from_frozen`](Self::from_frozen) (never copied).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn frozen_chunks(&self) -> Option<&[FrozenChunk]> {
        match &self.stored {
            Stored::Frozen(chunks) => Some(chunks),
            Stored::Memory(_) | Stored::Spilled(_) => None,
        }
    }
    /// The body from frozen chunks: hashed where they are (a large chunk on all cores), not
    /// copied, stored uncompressed.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::sync::Arc;
    /// use snapseal_persist::fs::RealFs;
    /// use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
    /// use snapseal_persist::{FrozenChunk, PendingBody, SigningKey, SnapshotStore, StoreOptions};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let key = SigningKey::from_bytes(&[7; 32]);
    /// # let trusted =
    /// #     Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
    /// # let opts = StoreOptions::new(Arc::new(trusted));
    /// # let store = SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?;
    /// // The node's state is already in immutable, shared pieces: hand them over as they are.
    /// let pages: Vec<FrozenChunk> = vec![Arc::new(b"page one ".to_vec()), Arc::new(*b"page two")];
    /// let body = PendingBody::from_frozen(pages);
    /// assert_eq!(body.len(), 17);
    /// assert_eq!(body.digest(), *blake3::hash(b"page one page two").as_bytes());
    ///
    /// let receipt = statement_receipt(&key, &body.claims(5), 6, None)?;
    /// body.commit(&store, 5, 6, &receipt)?;
    /// let mut state = String::new();
    /// store.latest()?.expect("just committed").body_reader()?.read_to_string(&mut state)?;
    /// assert_eq!(state, "page one page two");
    /// # Ok(()) }
    /// ```
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
            chunks: None,
            new_chunk_bytes: 0,
        }
    }
    /// [`from_frozen`](Self::from_frozen) for `target`'s store. For a store opened with
    /// [`StoreOptions::chunked`](crate::StoreOptions::chunked), a chunked body
    /// (docs/FORMAT.md §2.2) cut at the frozen chunks' own boundaries: each frozen chunk is
    /// cut and hashed once, and its cut remembered by the store, with a clone of the chunk,
    /// until the next body built this way — so a chunk handed out again unchanged (the same
    /// `Arc`'s bytes) is looked up, not read again, and only new chunks are written. The
    /// store thus keeps the previous body's frozen chunks alive one generation longer.
    /// Frozen chunks under 16 KiB (but the last) stream through the chunked builder instead.
    /// For any other store, exactly [`from_frozen`](Self::from_frozen) (`target`'s budget is
    /// not used). Errors are those of writing the store's packs (and of a spilled list).
    pub fn from_frozen_in(chunks: Vec<FrozenChunk>, target: SpillTarget) -> std::io::Result<Self> {
        if target.store.is_chunked() {
            super::frozen_cuts::chunked(chunks, target)
        } else {
            Ok(Self::from_frozen(chunks))
        }
    }
    /// A chunked body: the list is the stored body, the chunks' bytes are the decoded one.
    pub(crate) fn chunked(body: ChunkedBody) -> Self {
        PendingBody {
            stored: body.list,
            len: body.list_len,
            digest: body.digest,
            raw_len: body.raw_len,
            flags: Flags::CHUNKED,
            chunks: Some(body.claim),
            new_chunk_bytes: body.new_bytes,
        }
    }
    /// The pending file holding the body, when it was spilled.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn spill_file(&self) -> Option<&SpillFile> {
        match &self.stored {
            Stored::Memory(_) | Stored::Frozen(_) => None,
            Stored::Spilled(file) => Some(file),
        }
    }
    /// True when the body was spilled to a pending file.
    pub fn is_spilled(&self) -> bool {
        matches!(self.stored, Stored::Spilled(_))
    }
    /// For a chunked body, the bytes of the chunks it wrote into the store's packs: those
    /// no durable pack held when it was cut (a chunk it names twice counts once). What the
    /// snapshot cost the disk beyond its file; 0 for a plain body.
    pub fn new_chunk_bytes(&self) -> u64 {
        self.new_chunk_bytes
    }
    /// BLAKE3 of the stored bytes (the header's body digest).
    pub fn digest(&self) -> Hash {
        self.digest
    }
    /// The claims of this body as the snapshot at `idx` (docs/FORMAT.md §3): its index, flags,
    /// stored and decoded lengths and body digest. Their [`digest`](Claims::digest) is what the
    /// ledger's evidence tx carries and the receipt proves, so none of them can be changed in
    /// the file afterwards.
    pub fn claims(&self, idx: u64) -> Claims {
        Claims {
            idx,
            flags: self.flags,
            body_len: self.len,
            raw_len: self.raw_len,
            body_digest: self.digest,
        }
    }
    /// Stored length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// True for an empty body (an empty state, uncompressed).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Commits this body as the snapshot `idx` proven by `receipt` at `evidence_idx`: a body
    /// in memory or in frozen chunks is written from where it is, a spilled one has its
    /// pending file completed (receipt appended, header written in place; the body is not
    /// copied again). Either way the write sequence of SPEC §5 — fsync, close, a rename that
    /// never replaces, directory fsync — and the store's retention afterwards, exactly as for
    /// the Snapshotter's own persist step. The receipt must prove this body's
    /// [`claims`](Self::claims) at `idx`, or the file will not verify.
    ///
    /// Commits of different snapshots run in parallel (their writes and file `fsync`s
    /// overlap); two of the same committed name never do: the second waits for the first,
    /// then finds the name taken ([`PersistError::AlreadyCommitted`]).
    ///
    /// # After a crash
    ///
    /// A crash at any point leaves, for this snapshot, one of: nothing; a stale uncommitted
    /// or pending file (removed when a store next opens the directory); or the committed
    /// file, complete and verifiable, possibly alongside a stale name for the same data.
    /// Never a partial committed file. This holds for every error too,
    /// [`PersistError::DirSyncFailed`] included. When `commit` returned `Ok`, the committed
    /// file survives any crash.
    pub fn commit(
        self,
        store: &SnapshotStore,
        idx: u64,
        evidence_idx: u64,
        receipt: &[u8],
    ) -> Result<Committed, PersistError> {
        let (flags, raw_len, body_digest) = (self.flags, self.raw_len, self.digest);
        // A chunked body's chunks are all durable (sealed when it was finished); its claim
        // lives until this returns, past the commit and its retention pass.
        let PendingBody {
            stored,
            chunks: _claim,
            ..
        } = self;
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
        match stored {
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
