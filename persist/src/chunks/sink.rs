//! [`ChunkingSink`]: the body builder's stage for a chunked snapshot. The body streams
//! through the [`Cutter`]; each chunk is hashed, named in the list, claimed, and written into
//! a pack unless a durable pack (or this body's own) has it already. [`finish`] seals the
//! last pack, so every chunk the list names is durable before the claims digest exists.
//!
//! Memory: the cutter's batch (8.25 MiB), one pack's write buffer (1 MiB), and the set of
//! claimed hashes (one per distinct chunk). The list (36 bytes per chunk, the stored body) goes
//! through the body builder's hashing sink: in memory within the budget, spilled past it.
//!
//! [`finish`]: ChunkingSink::finish

use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::Arc;

use crate::body::builder::HashingSink;
use crate::body::pending::Stored;
use crate::Hash;

use super::cutter::Cutter;
use super::list::{Entry, MAX_ENTRIES};
use super::store::{ChunkStore, PackWriter};

/// The chunks a pending chunked body claimed; released when dropped (after its commit, or
/// when the generation is dropped).
#[derive(Debug)]
pub(crate) struct ChunkClaim {
    store: Arc<ChunkStore>,
    hashes: HashSet<Hash>,
}

impl ChunkClaim {
    /// An empty claim on chunks of `store`.
    pub(crate) fn new(store: Arc<ChunkStore>) -> ChunkClaim {
        ChunkClaim {
            store,
            hashes: HashSet::new(),
        }
    }

    /// The store the claimed chunks are in.
    pub(crate) fn store(&self) -> &Arc<ChunkStore> {
        &self.store
    }

    /// Claims `hash` unless this claim holds it already: `Some(true)` when a durable pack
    /// holds it, `Some(false)` when none does, `None` when it was claimed here before.
    pub(crate) fn take(&mut self, hash: Hash) -> Option<bool> {
        self.hashes.insert(hash).then(|| self.store.claim(hash))
    }
}

impl Drop for ChunkClaim {
    fn drop(&mut self) {
        self.store.release(&self.hashes);
    }
}

/// A finished chunked body: the stored list (in memory or spilled), its length and digest,
/// the decoded length, and the claim on its chunks.
#[derive(Debug)]
pub(crate) struct ChunkedBody {
    pub(crate) list: Stored,
    pub(crate) list_len: u64,
    pub(crate) digest: Hash,
    pub(crate) raw_len: u64,
    /// Bytes of the chunks this body wrote into packs (those no durable pack held).
    pub(crate) new_bytes: u64,
    pub(crate) claim: ChunkClaim,
}

/// Cuts, hashes and stores a body as it is written.
pub(crate) struct ChunkingSink {
    cutter: Cutter,
    state: State,
}

struct State {
    claim: ChunkClaim,
    pack: Option<PackWriter>,
    list: HashingSink,
    entries: u64,
    raw_len: u64,
    new_bytes: u64,
}

impl State {
    fn chunk(&mut self, bytes: &[u8], hash: Hash) -> io::Result<()> {
        if self.entries >= MAX_ENTRIES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the body needs more than {MAX_ENTRIES} chunks (docs/FORMAT.md §2.2)"),
            ));
        }
        // The cutter's chunks are 1 ..= MAX_CHUNK bytes.
        let entry = Entry {
            len: bytes.len() as u32,
            hash,
        };
        self.list.write_all(&entry.encode())?;
        self.entries += 1;
        self.raw_len += bytes.len() as u64;
        match self.claim.take(hash) {
            // Named before in this body: stored already, or in this body's own pack.
            None | Some(true) => return Ok(()),
            Some(false) => {}
        }
        if self
            .pack
            .as_ref()
            .is_some_and(|p| p.is_full_for(bytes.len()))
        {
            if let Some(full) = self.pack.take() {
                full.seal().map_err(io::Error::other)?;
            }
        }
        let pack = match &mut self.pack {
            Some(p) => p,
            None => self
                .pack
                .insert(self.claim.store.new_pack().map_err(io::Error::other)?),
        };
        pack.add(bytes, hash).map_err(io::Error::other)?;
        self.new_bytes += bytes.len() as u64;
        self.claim
            .store
            .counters
            .bytes_written
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

impl ChunkingSink {
    /// Chunks into `store`'s packs; the list goes into `list`.
    pub(crate) fn new(store: Arc<ChunkStore>, list: HashingSink) -> ChunkingSink {
        ChunkingSink {
            cutter: Cutter::default(),
            state: State {
                claim: ChunkClaim::new(store),
                pack: None,
                list,
                entries: 0,
                raw_len: 0,
                new_bytes: 0,
            },
        }
    }

    /// Adds a chunk its caller cut (a frozen chunk's cut, `body::frozen_cuts`): named in the
    /// list, claimed and stored exactly as one the cutter found. `hash` must be the BLAKE3 of
    /// `bytes`. A body is either written (cut here) or given as chunks, never both: a chunk
    /// added while the cutter holds bytes would land ahead of them in the list.
    pub(crate) fn add_chunk(&mut self, bytes: &[u8], hash: Hash) -> io::Result<()> {
        self.state.chunk(bytes, hash)
    }

    /// The end of the body: the last chunks are cut and stored, the last pack sealed
    /// (durable).
    pub(crate) fn finish(self) -> io::Result<ChunkedBody> {
        let ChunkingSink { cutter, mut state } = self;
        cutter.finish(&mut |c: &[u8], h| state.chunk(c, h))?;
        if let Some(pack) = state.pack.take() {
            if !pack.is_empty() {
                pack.seal().map_err(io::Error::other)?;
            }
        }
        let (list, list_len, digest) = state.list.finish()?;
        Ok(ChunkedBody {
            list,
            list_len,
            digest,
            raw_len: state.raw_len,
            new_bytes: state.new_bytes,
            claim: state.claim,
        })
    }
}

impl Write for ChunkingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let state = &mut self.state;
        self.cutter
            .write(buf, &mut |c: &[u8], h| state.chunk(c, h))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
