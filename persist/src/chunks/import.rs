//! Bringing a chunked snapshot into a store whose chunks arrive separately from its file (a
//! restore from object storage, an import, a peer sending only what a learner lacks).
//!
//! [`ChunkImport`] claims the chunks a list names ([`missing`](ChunkImport::missing) says
//! which no durable pack holds), takes the missing ones as they arrive
//! ([`add`](ChunkImport::add): each checked against its hash, written into packs with the
//! writer's crash-safe sealing), and commits the snapshot file through the store's ingest
//! ([`finish_ingest`](ChunkImport::finish_ingest)), which verifies it against the store's
//! packs and claims every chunk it names until the file has its committed name. The claims
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

/// Chunks arriving for a chunked snapshot (see the module docs). Dropping it releases its
/// claims and removes a pack it had not sealed.
#[derive(Debug)]
pub struct ChunkImport {
    claim: ChunkClaim,
    /// The pack being filled, not durable yet.
    pack: Option<PackWriter>,
    /// The chunks in `pack`.
    in_pack: HashSet<Hash>,
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
        if bytes.is_empty() || bytes.len() > MAX_CHUNK {
            return Err(ChunkError::Length {
                hash: *hash,
                len: bytes.len(),
                max: MAX_CHUNK,
            });
        }
        let actual = *blake3::hash(bytes).as_bytes();
        if actual != *hash {
            return Err(ChunkError::Mismatch {
                hash: *hash,
                actual,
                len: bytes.len(),
            });
        }
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
        self.in_pack.clear();
        match self.pack.take() {
            Some(pack) if !pack.is_empty() => pack.seal().map_err(ChunkError::Write),
            _ => Ok(()),
        }
    }

    /// Bytes of chunks this import added (chunks the store had are not counted).
    pub fn bytes_added(&self) -> u64 {
        self.added
    }

    /// Seals what was added, then completes `file` with
    /// [`SnapshotStore::finish_ingest`], which verifies a chunked file against the store's
    /// packs (failing with the first chunk it names that no durable pack holds) while this
    /// import still holds its claims.
    pub fn finish_ingest(
        mut self,
        store: &SnapshotStore,
        file: IngestFile,
    ) -> Result<Ingested, ChunkImportError> {
        self.seal().map_err(ChunkImportError::Chunks)?;
        let ingested = store
            .finish_ingest(file)
            .map_err(ChunkImportError::Ingest)?;
        drop(self);
        Ok(ingested)
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
}

impl ClaimingSource {
    pub(crate) fn new(store: Arc<ChunkStore>) -> ClaimingSource {
        ClaimingSource {
            claim: Mutex::new(ChunkClaim::new(store)),
        }
    }

    /// The claims taken, to be kept until the commit.
    pub(crate) fn into_claim(self) -> ChunkClaim {
        self.claim.into_inner()
    }
}

impl ChunkSource for ClaimingSource {
    fn read(&self, index: u64, entry: &Entry, cache: &mut OpenPack) -> io::Result<Vec<u8>> {
        let store = {
            let mut claim = self.claim.lock();
            claim.take(entry.hash);
            Arc::clone(claim.store())
        };
        store.read(index, entry, cache)
    }
}
