//! [`Error`]: what went wrong in the adapter, naming the snapshot and the step.

use std::io;
use std::path::PathBuf;

use snapseal_persist::receipt::ReceiptError;
use snapseal_persist::{IngestError, PersistError, SnapshotName, StoreError, VerifyError};

/// Why an adapter operation failed. Handed to openraft as the source of a `StorageError`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening, listing or recovering the snapshot directory failed.
    #[error("snapshot store")]
    Store(#[from] StoreError),
    /// Writing the built snapshot failed (the crash-safe write sequence).
    #[error("persisting snapshot at log position {idx}")]
    Persist {
        /// snapseal index of the snapshot (log index + 1).
        idx: u64,
        /// The failing step.
        #[source]
        source: PersistError,
    },
    /// A received snapshot was not brought in (refused, truncated, did not verify, I/O).
    #[error("receiving snapshot")]
    Ingest(#[from] IngestError),
    /// A committed snapshot did not verify when opened.
    #[error("opening snapshot {name}")]
    Verify {
        /// The snapshot.
        name: SnapshotName,
        /// The failing check.
        #[source]
        source: Box<VerifyError>,
    },
    /// Signing the statement that is the snapshot's receipt failed.
    #[error("signing the statement for snapshot at log position {idx}")]
    Sign {
        /// snapseal index of the snapshot.
        idx: u64,
        /// Why.
        #[source]
        source: ReceiptError,
    },
    /// Serialising the user's state, or streaming the body, failed.
    #[error("serialising state for snapshot at log position {idx}")]
    Serialise {
        /// snapseal index of the snapshot.
        idx: u64,
        /// The I/O error from the state or the body builder.
        #[source]
        source: io::Error,
    },
    /// The metadata record at the start of a verified body is malformed, or the user's state
    /// could not be restored from the rest of the body.
    #[error("reading snapshot {file}: {step}")]
    Restore {
        /// The snapshot file.
        file: PathBuf,
        /// What was being read ("metadata record", "state").
        step: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The proven contents disagree with what was expected of them: the metadata record with
    /// the file's name or the statement's term, or a received snapshot with the metadata
    /// openraft sent alongside it.
    #[error("snapshot {file}: {reason}")]
    Mismatch {
        /// The snapshot file.
        file: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// A received snapshot is older than one the store already holds; it is not installed.
    #[error(
        "received snapshot at log position {incoming} is older than the stored one at {stored}"
    )]
    Older {
        /// snapseal index of the received snapshot.
        incoming: u64,
        /// snapseal index of the newest stored snapshot.
        stored: u64,
    },
    /// A log index too large to map to a snapseal index (`u64::MAX - 1` and above).
    #[error("log index {0} is too large for a snapshot position")]
    IndexOverflow(u64),
    /// The snapshot this node built could not be opened (verified) when it was first used.
    #[error("opening the snapshot built here")]
    Opening(#[source] std::sync::Arc<Error>),
    /// A task (a blocking serialise, persist or verify; openraft's core at shutdown)
    /// panicked or was cancelled.
    #[error("blocking snapshot task failed: {0}")]
    Task(String),
    /// Reading a chunked snapshot's chunk list, to send the snapshot with its chunks.
    #[error("reading the chunk list of {file}")]
    Chunks {
        /// The snapshot file.
        file: PathBuf,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A received chunked snapshot's chunks could not be stored, or its file not committed
    /// with them.
    #[error("installing a received chunked snapshot")]
    ChunkImport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A received snapshot's stream ended early (what is missing is said).
    #[error("received snapshot incomplete: {0}")]
    Incomplete(String),
}
