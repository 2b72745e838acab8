//! [`read_chunk_in`]: one chunk of a snapshot directory read without its store — for the
//! read-only tools (`snapseal export`), which must not take the lock of a directory a running
//! node holds.

use std::io;
use std::path::Path;

use crate::error::BodyError;
use crate::fs::DirHandle;
use crate::Hash;

use super::store::{ChunkSource, OpenPack, ScannedChunks};
use super::transfer_error::ChunkError;

/// Chunk `hash` from the sealed packs of the snapshot directory `dir`, its bytes checked
/// against the hash before they are returned; `None` when no sealed pack holds it (now).
///
/// The packs are scanned as [`verify_file_in`](crate::internals::verify_file_in) scans them
/// (every sealed pack's trailer read through the hardened open; a damaged pack is skipped and
/// its chunks not trusted; pending packs are left alone), once per call: a tool reading many
/// chunks pays a directory listing and the packs' indexes for each. Nothing holds the chunk
/// against a running node's retention: one swept meanwhile is `None`. A copy that does not
/// match is [`ChunkError::Damaged`] (never returned), a failed read [`ChunkError::Read`].
pub fn read_chunk_in(dir: &dyn DirHandle, hash: &Hash) -> Result<Option<Vec<u8>>, ChunkError> {
    let scanned = ScannedChunks::scan(dir).map_err(|e| ChunkError::Read {
        dir: dir.path().to_path_buf(),
        hash: *hash,
        source: io::Error::other(e),
    })?;
    let Some(entry) = scanned.entry_of(hash) else {
        return Ok(None);
    };
    checked_read(&scanned, dir.path(), &entry)
}

/// Reads `entry` from `source` (checked against its hash there), telling a chunk swept since
/// its lookup (`None`) and a damaged copy apart from a failed read. Shared with
/// [`read_chunk`](super::export::read_chunk).
pub(crate) fn checked_read(
    source: &dyn ChunkSource,
    dir: &Path,
    entry: &super::list::Entry,
) -> Result<Option<Vec<u8>>, ChunkError> {
    match source.read(0, entry, &mut OpenPack::default()) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) => match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<BodyError>())
        {
            // Swept (or its pack skipped) since the lookup: not here any more.
            Some(BodyError::ChunkMissing { .. }) => Ok(None),
            Some(BodyError::ChunkDamaged { hash, pack, .. }) => Err(ChunkError::Damaged {
                hash: *hash,
                pack: pack.clone(),
            }),
            _ => Err(ChunkError::Read {
                dir: dir.to_path_buf(),
                hash: entry.hash,
                source: e,
            }),
        },
    }
}
