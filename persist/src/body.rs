//! Snapshot bodies on their way to the disk: streamed, hashed, compressed, and kept in
//! bounded memory until the ledger has proved them.
//!
//! A [`BodyBuilder`] is the `io::Write` a node's state streams into: optional zstd
//! compression, then BLAKE3 over the stored bytes, into a [`PendingBody`]. The stored bytes
//! exist once, in one of two places:
//!
//! - **in memory**, while the shared [`MemoryBudget`] allows; the writer later writes
//!   straight from that buffer;
//! - **spilled**: as soon as a body would take the budget's total above its limit, what was
//!   buffered goes into a pending file in the snapshot directory
//!   (`snapshot_<idx>.g<generation>.pending`) and the rest of the body streams straight after
//!   it: small writes are gathered in a 4 MiB buffer, writes of 1 MiB or more go from the
//!   caller's own buffer to the file. [`PendingBody::commit`] then completes that same file:
//!   nothing is copied again.
//!
//! So the memory a snapshot needs beyond the node's own state is bounded by the budget plus
//! one 4 MiB buffer, whatever the state's size. Hashing runs on snapseal's low-priority
//! hashing pool ([`configure_hashing`]) over large batches, on the bytes where they already
//! are (the body buffer, the spill buffer or the caller's buffer).

// The crate root re-exports each piece from where it is defined.
pub(crate) mod budget;
pub(crate) mod builder;
pub(crate) mod frozen_cuts;
pub(crate) mod hashing;
mod huge_pages;
pub(crate) mod pending;
#[cfg(all(test, feature = "sim"))]
mod tests;

use crate::format::PARALLEL_HASH_THRESHOLD;

/// Bytes gathered before a spilled body is hashed and written: large enough that the write
/// syscalls and the thread hand-off of parallel hashing vanish, small enough to be no memory
/// concern.
pub const SPILL_BUFFER: usize = 4 << 20;

/// A write at least this large goes from the caller's buffer straight to the hasher and the
/// pending file, without a copy into the spill buffer: it is already big enough for a
/// parallel hash and a cheap syscall.
const DIRECT_WRITE: usize = PARALLEL_HASH_THRESHOLD;

/// Size of the chunks an in-memory body is kept in: each is hashed as it fills, and whole
/// ones are reused by later bodies (see [`MemoryBudget`]).
const MEMORY_CHUNK: usize = 4 << 20;
