//! Plumbing for snapseal's own crates, behind the `internals` feature: the file format's byte
//! layout, the read-only directory and verification tools, the hardened file access, the
//! crash-safe writes of other files, and the writer's bare entry points.
//!
//! The CLI, the archive and ship crates, the simulator, the tests, benchmarks and fuzzers use
//! these; an embedding node does not need them, and **none of it is part of the API this
//! crate promises**: any release may change it. The same feature makes a few methods of
//! public types public too (marked "internals" in their docs), e.g.
//! [`SnapshotStore::persist`](crate::SnapshotStore::persist) and
//! [`SnapshotFile::header`](crate::SnapshotFile::header).

pub use crate::body::hashing::on_hashing_thread;
pub use crate::body::SPILL_BUFFER;
pub use crate::error::Error;
pub use crate::escape::Escaped;
pub use crate::hex::{hash_from_hex, HexError};
pub use crate::names::{OurFile, PendingName, LOCK_FILE};
pub use crate::reader::body::check_body_encoding;
pub use crate::reader::stream::{verify_file, verify_file_in, VerifiedFile};
pub use crate::reader::{open_for_verify, open_snapshot, verify_bytes, VerifiedSnapshot};
pub use crate::retention::{plan_retention, RetentionPlan, Standing};
pub use crate::scan::{classify_dir, EntryClass, ListedEntry, PendingEntry};
pub use crate::store::{plan_latest, LatestPlan, PassOverReason, PassedOver};
pub use crate::writer::ingest::VerifiedIngest;
pub use crate::writer::spill::SpillFile;
pub use crate::writer::{PersistRequest, SnapshotWriter, SpillCommit};

/// The committed file's byte layout (`docs/FORMAT.md`): header, flags, digests, and the pure
/// functions that split and check a file held in memory.
pub mod format {
    pub use crate::format::{
        body_digest, header_checksum, split, verify_body, Claims, Flags, FormatError, Header,
        CLAIMS_CONTEXT, CLAIMS_MATERIAL_LEN, FORMAT_VERSION, HEADER_CHECKSUM_CONTEXT, HEADER_LEN,
        MAGIC, PARALLEL_HASH_THRESHOLD,
    };
}

/// Chunked snapshots (docs/FORMAT.md §2.2, §10): the chunk list decoder (what the
/// `chunk_list` fuzzer drives), and moving a chunked snapshot between stores whose chunks
/// travel separately from the file (ship, archive): [`chunk_list`](chunks::chunk_list) and
/// [`read_chunk`](chunks::read_chunk) read a committed snapshot's parts out of a store;
/// [`ChunkImport`](chunks::ChunkImport) brings chunks into one (claimed against its sweep,
/// sealed into packs) and ingests the file once they are there.
pub mod chunks {
    pub use crate::chunks::export::{chunk_list, read_chunk, verify_file_but_chunks};
    pub use crate::chunks::import::{CheckedChunk, ChunkImport, ChunkImportError};
    pub use crate::chunks::list::decode_list;
    pub use crate::chunks::pack::is_pack_name;
    pub use crate::chunks::read_in::DirChunks;
    pub use crate::chunks::transfer_error::ChunkError;
    pub use crate::chunks::MAX_CHUNK;
}

/// The receipts themselves (the Merkle [`Receipt`](receipt::Receipt) and the
/// [`SignedStatement`](receipt::SignedStatement), to decode and inspect), their COSE labels
/// and limits, and the Merkle functions under the receipt check (the node hash, the proof
/// walk).
pub mod receipt {
    pub use crate::receipt::cose::{
        key_id, verify_signed_root, Receipt, LABEL_CLAIMS_DIGEST, LABEL_EVIDENCE_IDX,
        LABEL_EVIDENCE_TX_DIGEST, LABEL_PROOF_PATH, LABEL_VERSION, MAX_RECEIPT_LEN,
        RECEIPT_VERSION,
    };
    pub use crate::receipt::merkle::{
        empty_root, inclusion_path, leaf_position, node_hash, root_from_proof, tree_root,
        MAX_PROOF_LEN,
    };
    pub use crate::receipt::scheme::{scheme_of, LABEL_SCHEME};
    pub use crate::receipt::statement::{
        SignedStatement, LABEL_STATEMENT_COMMIT_IDX, LABEL_STATEMENT_IDX, LABEL_STATEMENT_TERM,
    };
}

/// The handles behind [`FileSystem`](crate::fs::FileSystem) — every call relative to an open
/// directory, every name a single file name — and what is built on them:
/// [`Untrusted`](fs::Untrusted), the one way snapseal opens a file it did not just write, and
/// the crash-safe write of a file that is not a snapshot ([`write_pending`](fs::write_pending),
/// [`publish`](fs::publish)).
pub mod fs {
    pub use crate::fs::bytes::FileBytes;
    pub use crate::fs::durable::{publish, write_all, write_pending, DurableError};
    pub use crate::fs::seam::{
        is_noreplace_unsupported, DirEntry, DirHandle, DirLock, EntryKind, NotRegular,
        ReadableFile, WritableFile,
    };
    pub use crate::fs::untrusted::{Expect, Untrusted, UntrustedError, UntrustedReader};
}
