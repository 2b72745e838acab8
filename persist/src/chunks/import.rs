//! Bringing a chunked snapshot into a store whose chunks arrive separately from its file (a
//! restore from object storage, an import, a peer sending only what a learner lacks).
//!
//! [`ChunkImport`] claims the chunks a list names ([`missing`](ChunkImport::missing) says
//! which no durable pack holds), takes the missing ones as they arrive
//! ([`add`](ChunkImport::add): each checked against its hash, written into packs with the
//! writer's crash-safe sealing), and commits the snapshot file through the store's ingest
//! ([`finish_ingest`](ChunkImport::finish_ingest)), which verifies it against the store's
//! packs (the chunks this import hashed and sealed by their presence, the others by reading
//! and hashing them) and claims every chunk it names until the file has its committed name.
//! A caller that checked a chunk's bytes against its hash already (to choose among sources)
//! hands them over as a [`CheckedChunk`], which is not hashed again. The claims
//! keep a concurrent retention sweep off the chunks from the first `missing` to the commit,
//! after which the committed file names them.
//!
//! Resuming: a sealed pack is durable, so after an interruption (or a crash: pending packs
//! are removed when the store next opens) `missing` no longer lists the chunks of packs
//! sealed before it. [`seal`](ChunkImport::seal) makes what was added so far durable.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::IngestError;
use crate::store::SnapshotStore;
use crate::writer::ingest::{IngestFile, Ingested};
use crate::Hash;

use super::list::Entry;
use super::sink::ChunkClaim;
use super::store::{ChunkSource, ChunkStore, OpenPack, PackWriter};
use super::transfer_error::ChunkError;
use super::MAX_CHUNK;
use crate::error::BodyError;

/// Chunks arriving for a chunked snapshot (see the module docs). Dropping it releases its
/// claims and removes a pack it had not sealed.
#[derive(Debug)]
pub struct ChunkImport {
    claim: ChunkClaim,
    /// The pack being filled, not durable yet.
    pack: Option<PackWriter>,
    /// The chunks in `pack`.
    in_pack: HashSet<Hash>,
    /// The chunks this import hashed and sealed into durable packs: the ingest checks them
    /// by their presence instead of reading them back (32 bytes and a set slot each).
    sealed: HashSet<Hash>,
    /// Bytes of chunks added (not counting those the store had).
    added: u64,
}

impl ChunkImport {
    /// An import into `store`'s chunk packs.
    pub fn new(store: &SnapshotStore) -> ChunkImport {
        ChunkImport {
            claim: ChunkClaim::new(Arc::clone(store.chunk_store())),
            pack: None,
            in_pack: HashSet::new(),
            sealed: HashSet::new(),
            added: 0,
        }
    }

    /// Claims every chunk of `hashes` (until this import is dropped) and returns those the
    /// store lacks: in no durable pack and not added to this import, in the order given,
    /// each once. A chunk the store has stays there: the claim keeps a sweep off it.
    pub fn missing<'a>(&mut self, hashes: impl IntoIterator<Item = &'a Hash>) -> Vec<Hash> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for hash in hashes {
            let durable = match self.claim.take(*hash) {
                Some(durable) => durable,
                None => self.claim.store().holds(hash),
            };
            if !durable && !self.in_pack.contains(hash) && seen.insert(*hash) {
                out.push(*hash);
            }
        }
        out
    }

    /// Adds chunk `hash` with its `bytes`, after checking that they hash to it and are
    /// `1..=256 KiB` long. A chunk the store or this import has already is not written again.
    /// The bytes go into a pack that is sealed (durable) when full, by [`seal`](Self::seal),
    /// or by [`finish_ingest`](Self::finish_ingest); before that a crash loses them (and
    /// nothing names them). A failed write abandons that pack: its chunks must be added again.
    pub fn add(&mut self, hash: &Hash, bytes: &[u8]) -> Result<(), ChunkError> {
        self.add_checked(&CheckedChunk::new(*hash, bytes)?)
    }

    /// [`add`](Self::add) for bytes already checked against their hash (by
    /// [`CheckedChunk::new`]), which are not hashed again.
    pub fn add_checked<B: AsRef<[u8]>>(
        &mut self,
        chunk: &CheckedChunk<B>,
    ) -> Result<(), ChunkError> {
        let (hash, bytes) = (&chunk.hash, chunk.bytes.as_ref());
        let durable = match self.claim.take(*hash) {
            Some(durable) => durable,
            None => self.claim.store().holds(hash),
        };
        if durable || self.in_pack.contains(hash) {
            return Ok(());
        }
        if self
            .pack
            .as_ref()
            .is_some_and(|p| p.is_full_for(bytes.len()))
        {
            self.seal()?;
        }
        let pack = match &mut self.pack {
            Some(p) => p,
            None => self
                .pack
                .insert(self.claim.store().new_pack().map_err(ChunkError::Write)?),
        };
        if let Err(e) = pack.add(bytes, *hash) {
            // The writer abandoned the pack (and removed its file): its chunks are gone.
            self.pack = None;
            self.in_pack.clear();
            return Err(ChunkError::Write(e));
        }
        self.in_pack.insert(*hash);
        self.added += bytes.len() as u64;
        Ok(())
    }

    /// Seals the pack being filled, if any: the chunks added so far are durable (and found by
    /// the store's readers and by [`missing`](Self::missing)) once this returns. On failure
    /// the pack is gone and its chunks must be added again.
    pub fn seal(&mut self) -> Result<(), ChunkError> {
        let in_pack = std::mem::take(&mut self.in_pack);
        match self.pack.take() {
            Some(pack) if !pack.is_empty() => {
                pack.seal().map_err(ChunkError::Write)?;
                self.sealed.extend(in_pack);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Bytes of chunks this import added (chunks the store had are not counted).
    pub fn bytes_added(&self) -> u64 {
        self.added
    }

    /// Seals what was added, then completes `file` as
    /// [`SnapshotStore::finish_ingest`] does, verifying a chunked file against the store's
    /// packs (failing with the first chunk it names that no durable pack holds) while this
    /// import still holds its claims. The chunks this import added were hashed as they came
    /// and are durable: they are checked by their presence (hash and length in a sealed
    /// pack's index), not read back and hashed a second time; the chunks the store had
    /// already are read and checked against their hashes.
    pub fn finish_ingest(
        mut self,
        store: &SnapshotStore,
        file: IngestFile,
    ) -> Result<Ingested, ChunkImportError> {
        self.seal().map_err(ChunkImportError::Chunks)?;
        let sealed = std::mem::take(&mut self.sealed);
        let ingested = store
            .finish_ingest_trusting(file, sealed)
            .map_err(ChunkImportError::Ingest)?;
        drop(self);
        Ok(ingested)
    }
}

/// A chunk whose bytes were checked against its hash and the length bounds: what
/// [`ChunkImport::add_checked`] takes, so a caller that hashes the bytes anyway (to pick the
/// source that sent the right ones) does not hash them twice. Only [`new`](Self::new) makes
/// one.
#[derive(Clone, Debug)]
pub struct CheckedChunk<B> {
    hash: Hash,
    bytes: B,
}

impl<B: AsRef<[u8]>> CheckedChunk<B> {
    /// Checks that `bytes` are `1..=256 KiB` long and hash to `hash`.
    pub fn new(hash: Hash, bytes: B) -> Result<CheckedChunk<B>, ChunkError> {
        let len = bytes.as_ref().len();
        if len == 0 || len > MAX_CHUNK {
            return Err(ChunkError::Length {
                hash,
                len,
                max: MAX_CHUNK,
            });
        }
        let actual = *blake3::hash(bytes.as_ref()).as_bytes();
        if actual != hash {
            return Err(ChunkError::Mismatch { hash, actual, len });
        }
        Ok(CheckedChunk { hash, bytes })
    }

    /// The chunk's hash: its name.
    pub fn hash(&self) -> &Hash {
        &self.hash
    }
}

/// Why [`ChunkImport::finish_ingest`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkImportError {
    /// Sealing the last pack of chunks failed.
    #[error("making the imported chunks durable")]
    Chunks(#[source] ChunkError),
    /// The snapshot file's ingest failed.
    #[error("ingesting the snapshot file")]
    Ingest(#[source] IngestError),
}

/// The chunk source of an ingest's verification: each chunk the file names is claimed before
/// it is looked up, and the claim is kept until the ingest is committed or dropped, so no
/// sweep can delete a chunk between its check and the commit.
#[derive(Debug)]
pub(crate) struct ClaimingSource {
    claim: Mutex<ChunkClaim>,
    /// Chunks hashed and sealed by the import bringing the file in: checked by presence.
    sealed: HashSet<Hash>,
}

impl ClaimingSource {
    /// A source over `store`; the chunks of `sealed` are checked by their presence alone.
    pub(crate) fn new(store: Arc<ChunkStore>, sealed: HashSet<Hash>) -> ClaimingSource {
        ClaimingSource {
            claim: Mutex::new(ChunkClaim::new(store)),
            sealed,
        }
    }

    /// Claims `hash` and returns the store.
    fn claimed(&self, hash: Hash) -> Arc<ChunkStore> {
        let mut claim = self.claim.lock();
        claim.take(hash);
        Arc::clone(claim.store())
    }

    /// The claims taken, to be kept until the commit.
    pub(crate) fn into_claim(self) -> ChunkClaim {
        self.claim.into_inner()
    }
}

impl ChunkSource for ClaimingSource {
    fn read(&self, index: u64, entry: &Entry, cache: &mut OpenPack) -> io::Result<Vec<u8>> {
        self.claimed(entry.hash).read(index, entry, cache)
    }

    fn check(&self, index: u64, entry: &Entry, cache: &mut OpenPack) -> io::Result<()> {
        let store = self.claimed(entry.hash);
        if !self.sealed.contains(&entry.hash) {
            return store.read(index, entry, cache).map(drop);
        }
        // Hashed when it arrived and sealed since: present in a durable pack with this
        // length is all that is left to show (the claim keeps a sweep off it).
        match store.entry_of(&entry.hash) {
            Some(found) if found == *entry => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                BodyError::ChunkMissing {
                    index,
                    hash: entry.hash,
                },
            )),
        }
    }
}
