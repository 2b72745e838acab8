//! [`ChunkError`]: why reading a chunked snapshot's list or chunks out of a store, or adding
//! chunks that arrived from elsewhere, failed.

use std::io;
use std::path::PathBuf;

use crate::error::{BodyError, PersistError, StoreError};
use crate::escape::Escaped;
use crate::hex::to_hex;
use crate::Hash;

/// Why a chunk transfer step failed (see [`internals::chunks`](crate::internals::chunks)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The stored body (the chunk list) of a snapshot file could not be read.
    #[error("reading the chunk list of {}", Escaped::path(.file))]
    ReadList {
        /// The snapshot file.
        file: PathBuf,
        /// The failed read.
        #[source]
        source: io::Error,
    },
    /// The list read now is not the one the file verified with (rewritten in place).
    #[error("the chunk list of {} no longer matches the digest it verified with", Escaped::path(.file))]
    ListChanged {
        /// The snapshot file.
        file: PathBuf,
    },
    /// The list does not decode (it verified, so the writer stored a bad list).
    #[error("decoding the chunk list of {}", Escaped::path(.file))]
    List {
        /// The snapshot file.
        file: PathBuf,
        /// What is wrong with it.
        #[source]
        source: BodyError,
    },
    /// Scanning a directory's chunk packs failed (listing it, or reading a pack's trailer).
    #[error("scanning the chunk packs of {}", Escaped::path(.dir))]
    Scan {
        /// The snapshot directory.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: StoreError,
    },
    /// Reading a chunk out of the store's packs failed (the pack's I/O error).
    #[error("reading chunk {} from the chunk packs of {}", to_hex(.hash), Escaped::path(.dir))]
    Read {
        /// The snapshot directory.
        dir: PathBuf,
        /// The chunk.
        hash: Hash,
        /// The failed read.
        #[source]
        source: io::Error,
    },
    /// A pack's copy of the chunk does not hash to its name.
    #[error("chunk {} in {} does not match its hash", to_hex(.hash), Escaped::path(.pack))]
    Damaged {
        /// The chunk.
        hash: Hash,
        /// The pack holding the damaged copy.
        pack: PathBuf,
    },
    /// Bytes offered as a chunk do not hash to the name they were offered under.
    #[error("{len} bytes offered as chunk {} hash to {}", to_hex(.hash), to_hex(.actual))]
    Mismatch {
        /// The name they were offered under.
        hash: Hash,
        /// Their BLAKE3.
        actual: Hash,
        /// Their length.
        len: usize,
    },
    /// Bytes offered as a chunk are empty or longer than the largest chunk.
    #[error("chunk {}: {len} bytes is not in 1..={max}", to_hex(.hash))]
    Length {
        /// The chunk.
        hash: Hash,
        /// The length offered.
        len: usize,
        /// The largest chunk.
        max: usize,
    },
    /// Writing or sealing a pack failed (the error names the pack and the step).
    #[error("storing imported chunks")]
    Write(#[source] PersistError),
}
