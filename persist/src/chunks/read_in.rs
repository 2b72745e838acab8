//! [`DirChunks`]: the chunks of a snapshot directory read without its store — for the
//! read-only tools (`snapseal export`), which must not take the lock of a directory a running
//! node holds.

use std::path::Path;

use crate::error::BodyError;
use crate::fs::DirHandle;
use crate::Hash;

use super::store::{ChunkSource, OpenPack, ScannedChunks};
use super::transfer_error::ChunkError;

/// The sealed packs of a snapshot directory, scanned once, to read chunks from without the
/// store.
///
/// [`scan`](Self::scan) reads the packs as [`verify_file_in`](crate::internals::verify_file_in)
/// does (every sealed pack's trailer through the hardened open; a damaged pack is skipped and
/// its chunks not trusted; pending packs are left alone), so a tool reading many chunks pays
/// for the listing and the indexes once. Nothing holds a chunk against a running node's
/// retention: one swept (or its pack rewritten) since the scan reads as `None`.
pub struct DirChunks<'a> {
    dir: &'a dyn DirHandle,
    scanned: ScannedChunks<'a>,
}

impl<'a> DirChunks<'a> {
    /// Scans the sealed packs of `dir`.
    pub fn scan(dir: &'a dyn DirHandle) -> Result<DirChunks<'a>, ChunkError> {
        let scanned = ScannedChunks::scan(dir).map_err(|source| ChunkError::Scan {
            dir: dir.path().to_path_buf(),
            source,
        })?;
        Ok(DirChunks { dir, scanned })
    }

    /// Chunk `hash`, its bytes checked against the hash before they are returned; `None`
    /// when no pack the scan found holds it (any more). A copy that does not match is
    /// [`ChunkError::Damaged`] (never returned), a failed read [`ChunkError::Read`].
    pub fn read(&self, hash: &Hash) -> Result<Option<Vec<u8>>, ChunkError> {
        let Some(entry) = self.scanned.entry_of(hash) else {
            return Ok(None);
        };
        checked_read(&self.scanned, self.dir.path(), &entry)
    }
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
