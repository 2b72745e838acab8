//! The crate's error types: what failed, on which file, at which step.
//!
//! - [`PersistError`]: writing one snapshot (the writer's steps, [`Step`]);
//! - [`VerifyError`]: reading or checking one committed file (the failed [`Check`]);
//! - [`StoreError`]: everything the store does around them ([`StoreStep`]).
//!
//! Every variant carries the path of the file (or directory) concerned, so a log line alone
//! tells an operator where to look.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::format::FormatError;
use crate::names::SnapshotName;
use crate::receipt::ReceiptError;

/// A step of the write sequence (SPEC §5), in the order the writer takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Checking the request (header fields consistent) before touching the disk.
    Validate,
    /// Listing the directory to refuse up front a committed name that already exists.
    CheckExisting,
    /// `openat(O_CREAT|O_EXCL)` of the uncommitted name.
    Create,
    /// Removing a stale uncommitted file left by an earlier crash, before the one retry.
    UnlinkStale,
    /// Writing header, body and receipt (for a spilled body: the placeholder header, the
    /// body while streaming, the receipt at commit).
    Write,
    /// Writing the header over a spilled body's placeholder (`pwrite` at offset 0).
    WriteHeader,
    /// Starting the writeback of what was written so far (`sync_file_range`), while
    /// streaming a large file.
    Writeback,
    /// `fsync` of the file.
    Fsync,
    /// `close` of the file.
    Close,
    /// `renameat2(RENAME_NOREPLACE)` to the committed name.
    Rename,
    /// `linkat` to the committed name (fallback when the rename flag is unsupported).
    Link,
    /// Removing the uncommitted name: cleanup after a failure, or the second half of the
    /// link fallback.
    UnlinkUncommitted,
    /// `fsync` of the directory, which makes the committed name durable.
    DirSync,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Validate => "validate request",
            Step::CheckExisting => "check for an existing committed file",
            Step::Create => "create",
            Step::UnlinkStale => "unlink stale uncommitted file",
            Step::Write => "write",
            Step::WriteHeader => "write header in place",
            Step::Writeback => "start writeback",
            Step::Fsync => "fsync",
            Step::Close => "close",
            Step::Rename => "rename to committed name",
            Step::Link => "link to committed name",
            Step::UnlinkUncommitted => "unlink uncommitted name",
            Step::DirSync => "fsync directory",
        })
    }
}

/// Why a snapshot was not committed.
///
/// After any of these (without a crash) the directory holds neither the uncommitted nor the
/// committed file of this attempt, except where a variant says otherwise, or where removing
/// the uncommitted file failed too (logged; the next persist of that name or the next store
/// open removes it). What a *crash* may leave is documented on
/// [`PendingBody::commit`](crate::PendingBody::commit).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PersistError {
    /// A system call failed at `step`.
    #[error("{step} {}", crate::escape::Escaped::path(path))]
    Io {
        /// The file the step concerned.
        path: PathBuf,
        /// The step that failed.
        step: Step,
        /// The error the system call returned.
        #[source]
        source: io::Error,
    },
    /// The committed name is already taken. A committed file is never overwritten; nothing
    /// was changed.
    #[error(
        "{} already exists; a committed snapshot is never overwritten ({step})",
        crate::escape::Escaped::path(path)
    )]
    AlreadyCommitted {
        /// The committed name that exists.
        path: PathBuf,
        /// Where it was noticed: [`Step::CheckExisting`], [`Step::Rename`] or [`Step::Link`].
        step: Step,
    },
    /// The request cannot be encoded as a valid header (e.g. `raw_len != body.len()` for an
    /// uncompressed body). Nothing was written.
    #[error("{}: invalid persist request", crate::escape::Escaped::path(path))]
    InvalidRequest {
        /// The file that would have been written.
        path: PathBuf,
        /// What is inconsistent.
        #[source]
        source: FormatError,
    },
    /// The file was written, fsynced and renamed, but the directory fsync failed, so the
    /// committed name may not survive a crash. The snapshot is not reported committed; the
    /// writer then tried to remove the committed name again (`removed` says whether that
    /// worked). After a crash either the complete, verifiable file is there under its
    /// committed name, or it is not; never a partial one.
    #[error(
        "fsync of the directory after committing {} failed ({})",
        path.display(),
        if *.removed { "committed name removed again" } else { "committed name is still there" }
    )]
    DirSyncFailed {
        /// The committed file.
        path: PathBuf,
        /// True when the committed name was removed again after the failure.
        removed: bool,
        /// The error of the directory fsync.
        #[source]
        source: io::Error,
    },
    /// The store refuses to write: an earlier `fsync` of its directory failed, and a later
    /// `fsync` of the same directory that succeeds would prove nothing. Nothing was written;
    /// reopen the store.
    #[error(
        "snapshot store {} is failed: an earlier fsync of the directory failed ({earlier}); \
         nothing written, reopen the store",
        dir.display()
    )]
    StoreFailed {
        /// The store's directory.
        dir: PathBuf,
        /// The earlier directory fsync failure, in words.
        earlier: String,
    },
}

impl PersistError {
    internals_pub! {
        /// The step that failed.
        fn step(&self) -> Step {
            match self {
                PersistError::Io { step, .. }
                | PersistError::AlreadyCommitted { step, .. } => *step,
                PersistError::InvalidRequest { .. } => Step::Validate,
                PersistError::DirSyncFailed { .. }
                | PersistError::StoreFailed { .. } => Step::DirSync,
            }
        }
    }

    internals_pub! {
        /// The file the error concerns.
        fn path(&self) -> &Path {
            match self {
                PersistError::Io { path, .. }
                | PersistError::AlreadyCommitted { path, .. }
                | PersistError::InvalidRequest { path, .. }
                | PersistError::DirSyncFailed { path, .. }
                | PersistError::StoreFailed { dir: path, .. } => path,
            }
        }
    }
}

/// Why a snapshot file brought in from outside the store (see
/// [`SnapshotStore::ingest`](crate::SnapshotStore::ingest)) was not committed. After any of
/// these the directory holds no file of this ingest, except where removing it failed too
/// (logged; the store removes it at its next open).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The first bytes are not a snapshot header (magic, version, checksum or lengths).
    #[error("ingest: the stream does not start with a valid snapshot header")]
    Header {
        /// What the header check found.
        #[source]
        source: FormatError,
    },
    /// The header gives a file longer than the caller's limit; nothing was written.
    #[error("ingest of {name}: the header gives {len} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The name the header gives.
        name: SnapshotName,
        /// File length from the header.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The stream ended before the length the header gives.
    #[error(
        "ingest of {}: the stream ended after {received} of {expected} bytes",
        name.map_or_else(|| "<header>".to_string(), |n| n.to_string())
    )]
    Truncated {
        /// The name, once the header decoded.
        name: Option<SnapshotName>,
        /// Bytes the header (or the header alone) promised.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
    /// The stream goes on past the length the header gives.
    #[error("ingest of {name}: more than the {expected} bytes the header gives")]
    TrailingBytes {
        /// The name the header gives.
        name: SnapshotName,
        /// File length from the header.
        expected: u64,
    },
    /// The complete file did not verify (receipt, claims, body digest or encoding); it was
    /// removed and never had a committed name.
    #[error("ingest of {name}: the file does not verify")]
    Refused {
        /// The name the header gives.
        name: SnapshotName,
        /// The first failing check.
        #[source]
        source: Box<VerifyError>,
    },
    /// Reading the source stream failed.
    #[error("ingest: reading the source failed after {received} bytes")]
    Read {
        /// Bytes received before the failure.
        received: u64,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// A step of the crash-safe sequence failed (create, write, fsync, close, rename,
    /// directory fsync), or the store is failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
}

/// A check a committed file must pass, in the order the reader makes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// Header: magic, version, header length, checksum, flags, reserved, length fields.
    Header,
    /// The name's `idx` and `evidence_idx` equal the header's.
    Name,
    /// The file is exactly as long as the header says.
    Length,
    /// BLAKE3 of the receipt bytes equals the header's receipt digest.
    ReceiptDigest,
    /// The receipt proves the evidence under a trusted signature.
    Receipt,
    /// BLAKE3 of the body equals the header's body digest.
    BodyDigest,
    /// A zstd body (flag bit 0) is one frame that decodes to exactly `raw_len` bytes.
    BodyEncoding,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Check::Header => "header",
            Check::Name => "name/header agreement",
            Check::Length => "file length",
            Check::ReceiptDigest => "receipt digest",
            Check::Receipt => "receipt",
            Check::BodyDigest => "body digest",
            Check::BodyEncoding => "body encoding",
        })
    }
}

/// Why a committed file could not be read or did not verify.
///
/// [`VerifyError::Read`] (and [`VerifyError::NotRegularFile`]) is an I/O failure: it says nothing about the file's contents, so the
/// store never quarantines on it. Every other variant is a verification failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Opening or reading the file failed.
    #[error("reading {}", crate::escape::Escaped::path(file))]
    Read {
        /// The file.
        file: PathBuf,
        /// The error the system call returned.
        #[source]
        source: io::Error,
    },
    /// The bytes are not a well-formed committed file (header, length, digests).
    #[error("{}: {check} check failed", crate::escape::Escaped::path(file))]
    Format {
        /// The file.
        file: PathBuf,
        /// The check that failed.
        check: Check,
        /// What exactly is wrong.
        #[source]
        source: FormatError,
    },
    /// The name is not a regular file (a fifo, socket, device or directory): never a
    /// snapshot, and never opened in a way that could block.
    #[error("not a regular file: {} ({what})", crate::escape::Escaped::path(file))]
    NotRegularFile {
        /// The file.
        file: PathBuf,
        /// What it is instead (`fifo`, `socket`, `character device`, ...).
        what: &'static str,
    },
    /// The file name and the header disagree on an index: the file was renamed or forged.
    #[error("{}: {check} check failed: name has {field} {from_name}, header has {from_header}", crate::escape::Escaped::path(file), check = Check::Name)]
    NameMismatch {
        /// The file.
        file: PathBuf,
        /// Which index: `"idx"` or `"evidence_idx"`.
        field: &'static str,
        /// The value in the name.
        from_name: u64,
        /// The value in the header.
        from_header: u64,
    },
    /// The receipt does not prove the file's claims.
    #[error("{}: {check} check failed", crate::escape::Escaped::path(file), check = Check::Receipt)]
    Receipt {
        /// The file.
        file: PathBuf,
        /// Why the verifier refused it.
        #[source]
        source: ReceiptError,
    },
    /// The body is not what the flags and `raw_len` say (a zstd body that is not exactly one
    /// frame of `raw_len` bytes).
    #[error("{}: {check} check failed", crate::escape::Escaped::path(file), check = Check::BodyEncoding)]
    Body {
        /// The file.
        file: PathBuf,
        /// What is wrong with the body.
        #[source]
        source: BodyError,
    },
}

impl VerifyError {
    internals_pub! {
        /// The file concerned.
        fn file(&self) -> &Path {
            match self {
                VerifyError::Read { file, .. }
                | VerifyError::NotRegularFile { file, .. }
                | VerifyError::Format { file, .. }
                | VerifyError::NameMismatch { file, .. }
                | VerifyError::Receipt { file, .. }
                | VerifyError::Body { file, .. } => file,
            }
        }
    }

    internals_pub! {
        /// The check that failed; `None` for an I/O failure.
        fn check(&self) -> Option<Check> {
            match self {
                VerifyError::Read { .. } | VerifyError::NotRegularFile { .. } => None,
                VerifyError::Format { check, .. } => Some(*check),
                VerifyError::NameMismatch { .. } => Some(Check::Name),
                VerifyError::Receipt { .. } => Some(Check::Receipt),
                VerifyError::Body { .. } => Some(Check::BodyEncoding),
            }
        }
    }

    internals_pub! {
        /// True for an I/O failure (nothing learnt about the contents; this includes a name that
        /// is not a regular file), false for a file that was read and failed a check.
        fn is_io(&self) -> bool {
            matches!(
                self,
                VerifyError::Read { .. } | VerifyError::NotRegularFile { .. }
            )
        }
    }
}

/// A step of the store's own work (outside the writer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreStep {
    /// Opening (creating if needed) the snapshot directory.
    OpenDir,
    /// Taking the directory lock.
    Lock,
    /// Listing the directory.
    List,
    /// Removing a stale uncommitted or pending file at open.
    UnlinkStale,
    /// `fsync` of the directory after removals or renames.
    DirSync,
    /// Reading a committed file.
    Read,
    /// Renaming (or linking) a failed file to its `.corrupt` name.
    Quarantine,
    /// Deleting a quarantined file beyond `max_quarantined`.
    UnlinkCorrupt,
    /// Deleting a committed file that retention dropped.
    UnlinkExpired,
    /// Reading a chunk pack (at open, or to copy its live chunks).
    ReadPack,
    /// Writing a pack of the live chunks of a mostly dead one (docs/FORMAT.md §10.4).
    RewritePack,
    /// Deleting a chunk pack none of whose chunks a retained snapshot names.
    UnlinkPack,
}

impl fmt::Display for StoreStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreStep::OpenDir => "open directory",
            StoreStep::Lock => "lock directory",
            StoreStep::List => "list directory",
            StoreStep::UnlinkStale => "unlink stale uncommitted file",
            StoreStep::DirSync => "fsync directory",
            StoreStep::Read => "read",
            StoreStep::Quarantine => "quarantine",
            StoreStep::UnlinkCorrupt => "unlink quarantined file",
            StoreStep::UnlinkExpired => "unlink expired snapshot",
            StoreStep::ReadPack => "read chunk pack",
            StoreStep::RewritePack => "rewrite chunk pack",
            StoreStep::UnlinkPack => "unlink dead chunk pack",
        })
    }
}

/// Why a store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A [`StoreOptions`](crate::StoreOptions) field is out of range.
    #[error("invalid store option `{field}`: {reason}")]
    InvalidOption {
        /// The field's name.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// Another process (or another store in this one) holds the snapshot directory.
    #[error(
        "snapshot directory {} is locked: another process (or store) holds it; \
         only one store may own a snapshot directory at a time",
        dir.display()
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// A system call failed at `step`.
    #[error("{step} {}", crate::escape::Escaped::path(path))]
    Io {
        /// The file or directory the step concerned.
        path: PathBuf,
        /// The step that failed.
        step: StoreStep,
        /// The error the system call returned.
        #[source]
        source: io::Error,
    },
    /// The store refuses to change the directory: an earlier `fsync` of it failed (see
    /// [`PersistError::StoreFailed`]). Reopen the store.
    #[error(
        "snapshot store {} is failed: an earlier fsync of the directory failed ({earlier}); \
         nothing changed, reopen the store",
        dir.display()
    )]
    Failed {
        /// The store's directory.
        dir: PathBuf,
        /// The earlier directory fsync failure, in words.
        earlier: String,
    },
    /// No committed snapshot of that name (e.g. asked to hold one that is gone).
    #[error("no committed snapshot {}", crate::escape::Escaped::path(path))]
    NotFound {
        /// The committed file that is missing.
        path: PathBuf,
    },
}

impl StoreError {
    internals_pub! {
        /// The step that failed, for I/O failures.
        fn step(&self) -> Option<StoreStep> {
            match self {
                StoreError::Io { step, .. } => Some(*step),
                StoreError::Locked { .. } => Some(StoreStep::Lock),
                StoreError::Failed { .. } => Some(StoreStep::DirSync),
                StoreError::InvalidOption { .. } | StoreError::NotFound { .. } => None,
            }
        }
    }
}

/// Why a stored body could not be decoded by
/// [`SnapshotFile::body_reader`](crate::SnapshotFile::body_reader). It reaches the caller as
/// the payload of an [`io::Error`] of kind [`io::ErrorKind::InvalidData`] (downcast with
/// [`io::Error::get_ref`]); the body digest was checked already, so any of these means the
/// writer stored a body that does not match its own header.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The zstd decoder refused the stored bytes.
    #[error("zstd decode of the body failed")]
    Decode {
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// The decoded body is shorter than the header's `raw_len`.
    #[error("decoded body is {actual} bytes, header raw_len says {expected}")]
    Short {
        /// The header's `raw_len`.
        expected: u64,
        /// Bytes decoded before the frame ended.
        actual: u64,
    },
    /// The decoded body is longer than the header's `raw_len`.
    #[error("decoded body is longer than header raw_len {expected}")]
    Long {
        /// The header's `raw_len`.
        expected: u64,
    },
    /// The body does not start with the RFC 8878 frame magic `28 b5 2f fd` (a skippable
    /// frame, a legacy pre-1.0 frame, garbage, or nothing at all).
    #[error("the body does not start with a zstd frame (magic 28 b5 2f fd)")]
    NotAFrame,
    /// Bytes follow the body's single zstd frame (a second frame, or garbage).
    #[error("{trailing} byte(s) after the body's zstd frame")]
    TrailingData {
        /// How many stored bytes follow the frame.
        trailing: u64,
    },
    /// A chunk list (flag bit 1) that is not a whole number of 36-byte entries.
    #[error("chunk list of {len} bytes is not a whole number of entries")]
    ChunkListLength {
        /// The list's length.
        len: u64,
    },
    /// A chunk list entry with a length of 0 or above the largest chunk.
    #[error("chunk {index}: length {len} is not in 1..={max}")]
    ChunkLength {
        /// The entry's position in the list (from 0).
        index: u64,
        /// The length it gives.
        len: u32,
        /// The largest chunk.
        max: u32,
    },
    /// A chunk the list names is in no pack of the store.
    #[error("chunk {index} ({}) is missing from the chunk store", crate::hex::to_hex(.hash))]
    ChunkMissing {
        /// The entry's position in the list (from 0).
        index: u64,
        /// The chunk's BLAKE3.
        hash: [u8; 32],
    },
    /// A chunk whose bytes in its pack do not hash to the name the list gives.
    #[error("chunk {index} ({}) in {} does not match its hash", crate::hex::to_hex(.hash), crate::escape::Escaped::path(.pack))]
    ChunkDamaged {
        /// The entry's position in the list (from 0).
        index: u64,
        /// The chunk's BLAKE3, as the list names it.
        hash: [u8; 32],
        /// The pack holding the damaged copy.
        pack: std::path::PathBuf,
    },
    /// A chunked body where its chunks are not available: a reader given the file alone.
    #[error("a chunked body can only be read against the chunk packs of its own directory")]
    NoChunkStore,
}

/// Any error of this crate: one type for callers that do not need to tell the operations
/// apart. Display and [`source`](std::error::Error::source) are the wrapped error's own.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Writing a snapshot.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// Reading or checking a committed file.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The store's own work.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A header or file layout.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A receipt.
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    /// Decoding a stored body.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// See [`IngestError`].
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// An error and its causes on one line: each message once, joined by `": "`, outermost
/// first. A cause whose message is empty or already said is left out — another crate's error
/// that prints its own source, say — so nothing is repeated. For log lines and messages:
/// snapseal's errors keep their cause in [`source`](std::error::Error::source) only, so
/// printing an error alone says what failed but not why.
///
/// ```
/// use std::io;
/// use std::path::PathBuf;
/// use snapseal_persist::{ErrorChain, StoreError, StoreStep};
///
/// let e = StoreError::Io {
///     path: PathBuf::from("/var/lib/node/snapshots"),
///     step: StoreStep::List,
///     source: io::Error::from_raw_os_error(13),
/// };
/// let line = ErrorChain(&e).to_string();
/// assert!(line.starts_with(&format!("{e}: ")), "{line}");
/// assert!(line.ends_with("Permission denied (os error 13)"), "{line}");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl ErrorChain<'_> {
    /// The line, with each link's text chosen by `shown` (`None` leaves the link out): for a
    /// caller that escapes the text of links from outside, or drops a wrapper's words. The
    /// same rule as `Display` otherwise: empty or already-said text is not repeated.
    #[cfg(feature = "internals")]
    pub fn to_string_with(
        &self,
        shown: impl Fn(&(dyn std::error::Error + 'static)) -> Option<String>,
    ) -> String {
        self.join(shown)
    }

    fn join(&self, shown: impl Fn(&(dyn std::error::Error + 'static)) -> Option<String>) -> String {
        let mut line = String::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(self.0);
        while let Some(e) = next {
            if let Some(text) = shown(e) {
                if !text.is_empty() && !line.contains(&text) {
                    if !line.is_empty() {
                        line.push_str(": ");
                    }
                    line.push_str(&text);
                }
            }
            next = e.source();
        }
        line
    }
}

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.join(|e| Some(e.to_string())))
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
