//! Pack files: many chunks in one file, so a snapshot's new chunks cost one `fsync` per pack,
//! not one per chunk (docs/FORMAT.md §10.2).
//!
//! ```text
//! "SSCHPACK" (8) || chunk bytes, in index order || index: n × (len u32 LE || BLAKE3 (32))
//!   || n (u64 LE) || index checksum (32) || "SSPKEND1" (8)
//! index checksum = BLAKE3-derive_key("snapseal 2026 chunk pack index v1",
//!                                    "SSCHPACK" || index || n (u64 LE))
//! ```
//!
//! Chunk `i` starts at `8 + len_0 + … + len_{i-1}`. The checksum catches a damaged or torn
//! index; a chunk's bytes are checked against their BLAKE3 on every read, never trusted.

use std::io;

use crate::fs::untrusted::Expect;
use crate::fs::{DirHandle, Untrusted, UntrustedError};
use crate::names::parse_u64;
use crate::Hash;

use super::list::{Entry, ENTRY_LEN};
use super::MAX_CHUNK;

/// First eight bytes of a pack.
pub(crate) const PACK_MAGIC: [u8; 8] = *b"SSCHPACK";
/// Last eight bytes of a pack.
pub(crate) const PACK_END: [u8; 8] = *b"SSPKEND1";
/// BLAKE3 `derive_key` context of the index checksum.
pub(crate) const PACK_CONTEXT: &str = "snapseal 2026 chunk pack index v1";
/// Trailer after the index: count, checksum, end magic.
pub(crate) const TRAILER_LEN: usize = 8 + 32 + 8;
/// A writer seals a pack before its chunk bytes would pass this.
pub(crate) const PACK_DATA_TARGET: u64 = 32 << 20;
/// Most chunks a pack may index.
pub(crate) const MAX_PACK_CHUNKS: u64 = 1 << 16;
/// Largest pack a reader opens.
pub(crate) const MAX_PACK_BYTES: u64 = 8
    + PACK_DATA_TARGET
    + MAX_CHUNK as u64
    + MAX_PACK_CHUNKS * ENTRY_LEN as u64
    + TRAILER_LEN as u64;

const PACK_PREFIX: &str = "chunks_";
const PACK_SUFFIX: &str = ".pack";
const PENDING_SUFFIX: &str = ".pack.pending";

/// `chunks_<n>.pack`.
pub(crate) fn pack_name(n: u64) -> String {
    format!("{PACK_PREFIX}{n}{PACK_SUFFIX}")
}

/// `chunks_<n>.pack.pending`: a pack being written.
pub(crate) fn pending_name(n: u64) -> String {
    format!("{PACK_PREFIX}{n}{PENDING_SUFFIX}")
}

/// What a directory entry's name says: a pack, a pending pack, or neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PackFile {
    Sealed(u64),
    Pending(u64),
}

/// Parses a pack or pending pack name (numbers as in every snapseal name: no leading zero).
pub(crate) fn parse_name(name: &str) -> Option<PackFile> {
    let rest = name.strip_prefix(PACK_PREFIX)?;
    if let Some(n) = rest.strip_suffix(PENDING_SUFFIX) {
        return parse_u64(n).map(PackFile::Pending);
    }
    rest.strip_suffix(PACK_SUFFIX)
        .and_then(parse_u64)
        .map(PackFile::Sealed)
}

/// True for the name of a pack or of a pack being written (`chunks_<n>.pack[.pending]`):
/// a chunked store's own files, for tools that list a snapshot directory.
pub fn is_pack_name(name: &str) -> bool {
    parse_name(name).is_some()
}

/// The index checksum over `index` (the entries' bytes) and the count.
pub(crate) fn index_checksum(index: &[u8], count: u64) -> Hash {
    let mut h = blake3::Hasher::new_derive_key(PACK_CONTEXT);
    h.update(&PACK_MAGIC);
    h.update(index);
    h.update(&count.to_le_bytes());
    *h.finalize().as_bytes()
}

/// The index and trailer that end a pack holding `entries`.
pub(crate) fn trailer(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN + TRAILER_LEN);
    for e in entries {
        out.extend_from_slice(&e.encode());
    }
    let count = entries.len() as u64;
    let checksum = index_checksum(&out, count);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&checksum);
    out.extend_from_slice(&PACK_END);
    out
}

/// Why a pack's index cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PackError {
    /// The file could not be opened or read, or is not a pack.
    #[error("reading the pack")]
    Open(#[source] UntrustedError),
    /// The trailer or index does not hold together.
    #[error("damaged pack index: {0}")]
    Damaged(&'static str),
}

/// A pack's chunks: `(offset, entry)`, in file order.
pub(crate) type PackIndex = Vec<(u64, Entry)>;

/// Opens a pack through [`Untrusted`] (relative to `dir`, no link followed, a regular file,
/// at most [`MAX_PACK_BYTES`], the magic first).
pub(crate) fn open_pack(dir: &dyn DirHandle, n: u64) -> Result<Option<Untrusted>, UntrustedError> {
    let expect = Expect::new("chunk pack", MAX_PACK_BYTES).with_magic(&PACK_MAGIC);
    Untrusted::open_in(dir, &pack_name(n), expect)
}

/// Reads and checks a pack's trailer and index: end magic, count within bounds, index
/// checksum, every length `1 ..= MAX_CHUNK`, and the lengths filling the space between the
/// magic and the index exactly.
pub(crate) fn read_index(file: &Untrusted) -> Result<PackIndex, PackError> {
    let len = file.len();
    if len < (PACK_MAGIC.len() + TRAILER_LEN) as u64 {
        return Err(PackError::Damaged("shorter than magic and trailer"));
    }
    let tail = file
        .read_range(len - TRAILER_LEN as u64, TRAILER_LEN)
        .map_err(PackError::Open)?;
    if tail[40..] != PACK_END {
        return Err(PackError::Damaged("no end magic (torn or not a pack)"));
    }
    let mut count = [0u8; 8];
    count.copy_from_slice(&tail[..8]);
    let count = u64::from_le_bytes(count);
    if count > MAX_PACK_CHUNKS {
        return Err(PackError::Damaged("more chunks than a pack may hold"));
    }
    let index_len = count * ENTRY_LEN as u64;
    let index_at = (len - TRAILER_LEN as u64)
        .checked_sub(index_len)
        .filter(|at| *at >= PACK_MAGIC.len() as u64)
        .ok_or(PackError::Damaged("index longer than the file"))?;
    // At most MAX_PACK_CHUNKS entries: a few MiB.
    let index = file
        .read_range(index_at, index_len as usize)
        .map_err(PackError::Open)?;
    if index_checksum(&index, count).as_slice() != &tail[8..40] {
        return Err(PackError::Damaged("index checksum mismatch"));
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut at = PACK_MAGIC.len() as u64;
    for (i, raw) in index.chunks_exact(ENTRY_LEN).enumerate() {
        let mut bytes = [0u8; ENTRY_LEN];
        bytes.copy_from_slice(raw);
        let entry = Entry::decode(&bytes, i as u64)
            .map_err(|_| PackError::Damaged("a chunk length out of range"))?;
        out.push((at, entry));
        at += u64::from(entry.len);
    }
    if at != index_at {
        return Err(PackError::Damaged("chunk lengths do not fill the pack"));
    }
    Ok(out)
}

/// Reads the chunk at `offset` of `file` and checks it against `entry`'s hash: the bytes,
/// or `None` when they do not match. A failed read is an error.
pub(crate) fn read_chunk(
    file: &Untrusted,
    offset: u64,
    entry: &Entry,
) -> Result<Option<Vec<u8>>, UntrustedError> {
    let bytes = file.read_range(offset, entry.len as usize)?;
    Ok((*blake3::hash(&bytes).as_bytes() == entry.hash).then_some(bytes))
}

/// Turns a failure to open or read a pack into the `io::Error` the reader reports.
pub(crate) fn into_io(e: UntrustedError) -> io::Error {
    match e {
        UntrustedError::Io { source, .. } => source,
        e => io::Error::new(io::ErrorKind::UnexpectedEof, e),
    }
}
