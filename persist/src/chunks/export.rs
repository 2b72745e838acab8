//! Reading a committed chunked snapshot's parts out of its store, for a copy elsewhere (a
//! shipment to object storage, an export): [`chunk_list`], the verified list of a file the
//! store opened, [`verify_file_but_chunks`], a file checked down to its list without reading
//! its chunks (a shipper that sends only some of them), and [`read_chunk`], one chunk by its
//! hash, checked against it.

use crate::error::VerifyError;
use crate::format::{body_digest, Flags};
use crate::fs::Untrusted;
use crate::names::SnapshotName;
use crate::reader::stream::{verify_with, Chunks, VerifiedFile};
use crate::reader::SnapshotFile;
use crate::receipt::ReceiptVerifier;
use crate::store::SnapshotStore;
use crate::Hash;

use super::list::decode_list;
use super::transfer_error::ChunkError;

/// The chunk list of `file` — `(length, BLAKE3)` per chunk, in body order — or `None` when it
/// is not chunked (flag bit 1 clear). The list is read again from the open file and must hash
/// to the body digest the file verified with (so to the claims digest its receipt proves),
/// then decode and add up to the header's `raw_len`: every entry can be trusted as the
/// snapshot's own. The chunks themselves are not read here ([`read_chunk`] does).
///
/// Memory: 36 bytes read and 36 kept per chunk (a list is at most 151 MiB, docs/FORMAT.md
/// §2.2).
pub fn chunk_list(file: &SnapshotFile) -> Result<Option<Vec<(u32, Hash)>>, ChunkError> {
    let header = file.header();
    if !header.flags.contains(Flags::CHUNKED) {
        return Ok(None);
    }
    let path = file.path().to_path_buf();
    let list = file.read_body().map_err(|source| ChunkError::ReadList {
        file: path.clone(),
        source,
    })?;
    if body_digest(&list) != header.body_digest {
        return Err(ChunkError::ListChanged { file: path });
    }
    decode_list(&list, header.raw_len)
        .map(Some)
        .map_err(|source| ChunkError::List { file: path, source })
}

/// [`verify_file`](crate::internals::verify_file) of a file that may be chunked, without
/// reading its chunks: header, receipt (under `verifier`), the body digest (so the chunk list
/// is the one the receipt proves), and the list's structure (every length in range, the sum
/// equal to `raw_len`); `each` sees every byte of the file, in order, as for `verify_file`.
/// The chunks are left to the caller, which checks each one it reads against its hash
/// ([`read_chunk`] does): what a shipper uses, so a snapshot whose chunks mostly are on the
/// remote already costs the list and the new chunks to ship, not the whole state. A plain or
/// zstd file is verified fully, as by `verify_file`.
pub fn verify_file_but_chunks(
    file: &Untrusted,
    name: Option<&SnapshotName>,
    verifier: &dyn ReceiptVerifier,
    each: &mut dyn FnMut(&[u8]),
) -> Result<VerifiedFile, VerifyError> {
    verify_with(file, name, verifier, Some(each), Chunks::ListOnly)
}

/// Chunk `hash` from `store`'s packs, its bytes checked against the hash before they are
/// returned; `None` when no durable pack holds it. A copy that does not match is
/// [`ChunkError::Damaged`] (never returned), a failed read [`ChunkError::Read`].
///
/// The store keeps a chunk as long as a retained snapshot names it: read the chunks of a
/// snapshot while holding its [`SnapshotFile`] (the file's hold keeps retention off it).
pub fn read_chunk(store: &SnapshotStore, hash: &Hash) -> Result<Option<Vec<u8>>, ChunkError> {
    let chunks = store.chunk_store();
    let Some(entry) = chunks.entry_of(hash) else {
        return Ok(None);
    };
    super::read_in::checked_read(&**chunks, chunks.dir.path(), &entry)
}
