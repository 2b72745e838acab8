//! Chunked snapshots (docs/FORMAT.md §2.2, §10): the body cut into content-defined chunks,
//! each named by its BLAKE3, kept once in pack files beside the snapshots; the snapshot file's
//! body is the ordered chunk list, so the claims digest (and the receipt) covers every byte.
//!
//! - [`list`]: the chunk list's encoding and limits;
//! - [`cutter`]: FastCDC 2020 over a byte stream, the same boundaries however it is written;
//! - [`pack`]: the pack file (magic, chunk bytes, trailer index with a checksum);
//! - [`store`]: the chunk store of one snapshot directory: which chunks are durable where,
//!   claims of in-flight persists, recovery at open, reads verified against their hash;
//! - [`sink`]: the body builder's stage that cuts, hashes and writes new chunks as the body
//!   streams;
//! - [`sweep`]: the retention of chunks (dead packs deleted, mostly dead ones rewritten);
//! - [`export`], [`import`]: a chunked snapshot's list and chunks read out of a store, and
//!   chunks arriving from elsewhere added to one, for shipping and restores.

pub(crate) mod cutter;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod list;
pub(crate) mod pack;
pub(crate) mod read_in;
pub(crate) mod sink;
pub(crate) mod store;
pub(crate) mod sweep;
pub(crate) mod transfer_error;

/// Smallest chunk FastCDC cuts (only the last chunk of a body may be shorter).
pub(crate) const MIN_CHUNK: usize = 16 << 10;
/// The chunk size FastCDC aims at.
pub(crate) const AVG_CHUNK: usize = 64 << 10;
/// Largest chunk: FastCDC cuts here when it found no boundary; a reader refuses longer ones.
pub const MAX_CHUNK: usize = 256 << 10;
