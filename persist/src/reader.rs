//! The reader: checks a committed file's bytes, cheapest checks first, and hands out the body
//! as a stream read from the open file.
//!
//! Order (docs/FORMAT.md §7): header (160 bytes: magic, version, checksum, flags, lengths,
//! `idx < evidence_idx`) → name/header agreement → exact file length and receipt digest →
//! receipt against the trusted keys, for the claims digest recomputed from the header → body
//! digest → body encoding (a zstd body decodes as one frame of exactly `raw_len` bytes). Only
//! the last two are proportional to the file size, so a damaged, forged or foreign file is
//! usually refused before the body is read.
//!
//! A file is never mapped: it is verified with `pread` in pieces ([`verify_file`](stream::verify_file)) and its
//! bytes are handed out the same way ([`SnapshotFile::body_reader`],
//! [`SnapshotFile::file_reader`]), so opening the newest of 300 MiB snapshots costs a few MiB
//! of buffers, not 300 MiB of resident pages, and a file truncated under a reader is a read
//! error, never a `SIGBUS`.

use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) mod body;
mod hash;
mod range;
pub(crate) mod stream;

pub(crate) use body::{check_body_encoding, BodyReader};

use crate::chunks::store::{ChunkSource, ChunkStore};
use crate::error::{BodyError, Check, VerifyError};
use crate::format::{self, FormatError, Header, HEADER_LEN};
use crate::fs::untrusted::Expect;
use crate::fs::{DirHandle, Untrusted, UntrustedError};
use crate::hold::Hold;
use crate::names::SnapshotName;
use crate::receipt::{Expected, ReceiptVerifier, VerifiedReceipt};
use body::Source;
pub(crate) use range::FileRange;
use stream::Chunks;
use stream::{verify_with, VerifiedFile};

/// What [`verify_bytes`] established about a file, borrowing its parts.
#[derive(Clone, Debug)]
pub struct VerifiedSnapshot<'a> {
    /// The decoded header.
    pub header: Header,
    /// The stored body (compressed if the header's flags say so).
    pub body: &'a [u8],
    /// The receipt bytes.
    pub receipt: &'a [u8],
    /// What the receipt proved.
    pub verified: VerifiedReceipt,
}

impl<'a> VerifiedSnapshot<'a> {
    /// The decoded body, streamed (see [`SnapshotFile::body_reader`]).
    pub fn body_reader(&self) -> io::Result<BodyReader<'a>> {
        BodyReader::new(&self.header, Source::Bytes(self.body), None)
    }
}

/// Checks a whole committed file held in memory. `name`, when given, must agree with the
/// header's indices; it also labels errors (otherwise they say `<bytes>`). Never panics.
pub fn verify_bytes<'a>(
    bytes: &'a [u8],
    name: Option<&SnapshotName>,
    verifier: &dyn ReceiptVerifier,
) -> Result<VerifiedSnapshot<'a>, VerifyError> {
    let label = name.map_or_else(
        || PathBuf::from("<bytes>"),
        |n| PathBuf::from(n.file_name()),
    );
    verify_labelled(bytes, name, &label, verifier)
}

/// [`verify_bytes`] with the path to name in errors.
fn verify_labelled<'a>(
    bytes: &'a [u8],
    name: Option<&SnapshotName>,
    file: &Path,
    verifier: &dyn ReceiptVerifier,
) -> Result<VerifiedSnapshot<'a>, VerifyError> {
    let format_err = |check| {
        move |source| VerifyError::Format {
            file: file.to_path_buf(),
            check,
            source,
        }
    };
    let header = Header::decode(bytes).map_err(format_err(Check::Header))?;
    check_name_agrees(name, &header, file)?;
    let (header, body, receipt) = format::split(bytes).map_err(|e| {
        let check = match e {
            FormatError::ReceiptDigest { .. } => Check::ReceiptDigest,
            FormatError::LengthMismatch { .. } | FormatError::LengthOverflow { .. } => {
                Check::Length
            }
            _ => Check::Header,
        };
        format_err(check)(e)
    })?;
    // The ledger recorded the claims digest, so recomputing it from the header makes every
    // header field the reader acts on part of what the receipt must prove.
    let expected = Expected::of(&header);
    let verified = verifier
        .verify(receipt, &expected)
        .map_err(|source| VerifyError::Receipt {
            file: file.to_path_buf(),
            source,
        })?;
    format::verify_body(&header, body).map_err(format_err(Check::BodyDigest))?;
    check_body_encoding(&header, body).map_err(|source| VerifyError::Body {
        file: file.to_path_buf(),
        source,
    })?;
    if header.flags.contains(crate::format::Flags::CHUNKED) {
        // Bytes alone cannot prove a chunked snapshot: its chunks are in its store's packs.
        return Err(VerifyError::Body {
            file: file.to_path_buf(),
            source: BodyError::NoChunkStore,
        });
    }
    Ok(VerifiedSnapshot {
        header,
        body,
        receipt,
        verified,
    })
}

/// A committed file that was opened and verified. It holds the open file (one file
/// descriptor, no mapping) and what verification read from it — header and receipt; the body
/// is read again from the file, with `pread`, when asked for. A file returned by the store
/// also carries a [`Hold`] that keeps retention off it.
///
/// The bytes handed out are the ones verified as long as nobody rewrites the file in place
/// (the store never does, and holds the directory lock). A file truncated by another process
/// meanwhile fails the read that finds it; it never kills this process.
#[derive(Debug)]
pub struct SnapshotFile {
    name: SnapshotName,
    file: Untrusted,
    header: Header,
    receipt: Vec<u8>,
    verified: VerifiedReceipt,
    hold: Option<Hold>,
    /// The chunk store a chunked body is read from.
    chunks: Option<Arc<ChunkStore>>,
}

impl SnapshotFile {
    /// The file's name.
    pub fn name(&self) -> &SnapshotName {
        &self.name
    }

    /// Directory path joined with the file name.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    internals_pub! {
        /// The decoded header.
        fn header(&self) -> &Header {
            &self.header
        }
    }

    internals_pub! {
        /// Reads the stored body, as in the file (zstd-compressed when `header().flags` says
        /// so), whole into memory: for tests and tools. To read the snapshot's contents use
        /// [`body_reader`](Self::body_reader).
        fn read_body(&self) -> io::Result<Vec<u8>> {
            let mut body = Vec::new();
            self.body_range().read_to_end(&mut body)?;
            Ok(body)
        }
    }

    /// The whole committed file as it verified — header, stored body and receipt, exactly the
    /// bytes on disk — read from the open file with `pread` (positions count from the file's
    /// start; nothing is mapped or held): what a peer or another store ingests
    /// ([`SnapshotStore::ingest`](crate::SnapshotStore::ingest)) to have the same snapshot.
    /// A file truncated meanwhile fails a read with [`io::ErrorKind::UnexpectedEof`].
    pub fn file_reader(&self) -> impl Read + Seek + '_ {
        FileRange::new(&self.file, 0, self.file.len())
    }

    /// The snapshot's contents — the bytes the state was serialised to — streamed in bounded
    /// memory (a MiB of buffer, plus the zstd window): decompressed on the fly for a zstd
    /// body, the stored bytes as they are otherwise, read from the open file with `pread`.
    /// Fails to start only if the zstd decoder cannot be set up or the first read fails.
    ///
    /// A chunked snapshot's body is read chunk by chunk from the store's packs, each chunk
    /// checked against its BLAKE3 before any of it is handed out: a chunk missing or damaged
    /// since verification fails the read that reaches it (kind
    /// [`io::ErrorKind::InvalidData`], carrying a [`BodyError`](crate::BodyError)).
    pub fn body_reader(&self) -> io::Result<BodyReader<'_>> {
        BodyReader::new(
            &self.header,
            Source::file(self.body_range()),
            self.chunks.as_deref().map(|c| c as &dyn ChunkSource),
        )
    }

    /// The stored body's bytes of the file.
    fn body_range(&self) -> FileRange<'_> {
        let start = HEADER_LEN as u64;
        FileRange::new(&self.file, start, start + self.header.body_len)
    }

    internals_pub! {
        /// The receipt bytes, as verified.
        fn receipt_bytes(&self) -> &[u8] {
            &self.receipt
        }
    }

    /// What the receipt proved (signature index, signer).
    pub fn receipt(&self) -> &VerifiedReceipt {
        &self.verified
    }

    internals_pub! {
        /// The whole file's length.
        fn file_len(&self) -> u64 {
            self.file.len()
        }
    }

    internals_pub! {
        /// The pin against retention, if this file came from the store.
        fn hold(&self) -> Option<&Hold> {
            self.hold.as_ref()
        }
    }

    /// Attaches a hold (the store does, once the file verified).
    pub(crate) fn with_hold(mut self, hold: Hold) -> Self {
        self.hold = Some(hold);
        self
    }
}

/// Opens and verifies the file `name` in `dir`. An I/O failure is [`VerifyError::Read`] (a
/// missing file: kind [`io::ErrorKind::NotFound`]); anything else means the contents are bad.
///
/// The file is opened as [`open_for_verify`] does and verified as [`verify_file`](stream::verify_file) verifies, with
/// `pread` in pieces of a few MiB: its 160-byte header is read and checked (magic, version,
/// checksum, name agreement, and that the header's lengths add up to the file's size) before
/// anything else, so a huge junk file under a snapshot name is refused after one small read.
/// Nothing is mapped, before or after: a file truncated by another process, during
/// verification or while the returned file is read, is a read error, never a `SIGBUS`.
///
/// A chunked snapshot is verified against the packs of `dir` (their trailers read for this
/// call); the returned file's [`body_reader`](SnapshotFile::body_reader) needs the store's
/// chunk index and fails with [`BodyError::NoChunkStore`](crate::BodyError::NoChunkStore)
/// (read it through the store).
pub fn open_snapshot(
    dir: &dyn DirHandle,
    name: &SnapshotName,
    verifier: &dyn ReceiptVerifier,
) -> Result<SnapshotFile, VerifyError> {
    open_snapshot_with(dir, name, verifier, None)
}

/// [`open_snapshot`], reading a chunked body's chunks from `chunks`.
pub(crate) fn open_snapshot_with(
    dir: &dyn DirHandle,
    name: &SnapshotName,
    verifier: &dyn ReceiptVerifier,
    chunks: Option<&Arc<ChunkStore>>,
) -> Result<SnapshotFile, VerifyError> {
    let source = match chunks {
        Some(store) => Chunks::Source(&**store),
        // Without the store: the directory's packs, scanned if the file turns out chunked.
        None => Chunks::ScanDir(dir),
    };
    let (file, v) = verify_in(dir, &name.file_name(), Some(name), verifier, source)?;
    Ok(SnapshotFile {
        name: *name,
        file,
        header: v.header,
        receipt: v.receipt,
        verified: v.verified,
        hold: None,
        chunks: chunks.cloned(),
    })
}

/// Opens and verifies the file `file_name` in `dir` ([`open_for_verify`], then
/// [`verify_file`](stream::verify_file)), returning the open file with what verification established; `name`,
/// when given, must agree with the header. A missing file is [`VerifyError::Read`] with kind
/// [`io::ErrorKind::NotFound`].
pub(crate) fn verify_in(
    dir: &dyn DirHandle,
    file_name: &str,
    name: Option<&SnapshotName>,
    verifier: &dyn ReceiptVerifier,
    chunks: Chunks<'_>,
) -> Result<(Untrusted, VerifiedFile), VerifyError> {
    let file = open_for_verify(dir, file_name)?.ok_or_else(|| VerifyError::Read {
        file: dir.path().join(file_name),
        source: io::Error::from(io::ErrorKind::NotFound),
    })?;
    let verified = verify_with(&file, name, verifier, None, chunks)?;
    Ok((file, verified))
}

/// Opens the file `file_name` in `dir` to verify it as a snapshot file: through [`Untrusted`]
/// (relative to the directory, `O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC`, a regular file by `fstat`),
/// with no size cap, since it is never held in memory. `None` when there is no such file. A
/// link, directory, fifo or device is [`VerifyError::NotRegularFile`] (never opened in a way
/// that could block), any other failure [`VerifyError::Read`].
pub fn open_for_verify(
    dir: &dyn DirHandle,
    file_name: &str,
) -> Result<Option<Untrusted>, VerifyError> {
    let expect = Expect::new("snapshot file", u64::MAX);
    Untrusted::open_in(dir, file_name, expect).map_err(|e| {
        let file = e.path().to_path_buf();
        match e {
            UntrustedError::Symlink { .. } => VerifyError::NotRegularFile {
                file,
                what: "symbolic link",
            },
            UntrustedError::NotRegular { kind, .. } => VerifyError::NotRegularFile {
                file,
                what: kind.trim_start_matches("a "),
            },
            UntrustedError::Io { source, .. } => VerifyError::Read { file, source },
            other => VerifyError::Read {
                file,
                source: io::Error::other(other),
            },
        }
    })
}

/// The name/header agreement step: `name`, when given, must carry the header's indices.
pub(crate) fn check_name_agrees(
    name: Option<&SnapshotName>,
    header: &Header,
    file: &Path,
) -> Result<(), VerifyError> {
    let Some(name) = name else { return Ok(()) };
    for (field, from_name, from_header) in [
        ("idx", name.idx, header.idx),
        ("evidence_idx", name.evidence_idx, header.evidence_idx),
    ] {
        if from_name != from_header {
            return Err(VerifyError::NameMismatch {
                file: file.to_path_buf(),
                field,
                from_name,
                from_header,
            });
        }
    }
    Ok(())
}
