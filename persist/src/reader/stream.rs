//! [`verify_file`]: every check of [`verify_bytes`](super::verify_bytes), on a file read with
//! `pread` through [`Untrusted`] in bounded memory instead of mapped or held whole.
//!
//! For readers without the store's lock — operator commands, the shipper, export — next to
//! a process that may truncate the file: a truncation is a read error ([`VerifyError::Read`]),
//! never a `SIGBUS`, and a 64 GiB snapshot costs a few MiB of buffers, not 64 GiB of memory.

use std::io;
use std::path::Path;

use crate::error::{Check, VerifyError};
use crate::format::{FormatError, Header, HEADER_LEN};
use crate::fs::{Untrusted, UntrustedError};
use crate::names::SnapshotName;
use crate::receipt::{Expected, ReceiptVerifier, VerifiedReceipt};

use super::body::{as_body_error, check_chunked, decode_all, Source, ZstdBody};
use super::hash::body_digest;
use super::range::{as_read_failure, FileRange};
use crate::chunks::store::{ChunkSource, ScannedChunks};
use crate::fs::DirHandle;

/// Bytes per `pread` of the whole-file pass: large enough for BLAKE3's parallel hashing to pay
/// off, small enough to be the pass's only buffer.
const PIECE: usize = 8 << 20;

/// What sees every piece of a whole-file pass, in order.
type Each<'a> = dyn FnMut(&[u8]) + 'a;

/// What [`verify_file`] established.
#[derive(Clone, Debug)]
pub struct VerifiedFile {
    /// The decoded header.
    pub header: Header,
    /// The receipt bytes.
    pub receipt: Vec<u8>,
    /// What the receipt proved.
    pub verified: VerifiedReceipt,
}

/// Checks the committed file `file` as [`verify_bytes`](super::verify_bytes) checks bytes in
/// memory, in the same order (docs/FORMAT.md §7) and with the same errors, reading it with
/// `pread` in pieces of a few MiB:
///
/// 1. the 160-byte header, its agreement with `name` (when given) and with the file's size;
/// 2. the receipt (read on its own) against its digest and then `verifier`, for the claims
///    digest recomputed from the header — so a forged or foreign file costs two small reads;
/// 3. one pass over the whole file, in order, handing every piece to `each` (for a digest of
///    the whole file, or a copy) and the body to the body-digest check;
/// 4. for a zstd body, a second pass decoding it (in bounded memory) — only once its digest
///    was proved, so the decoder never sees bytes the ledger did not vouch for.
///
/// A read that fails or comes up short (the file was truncated meanwhile) is
/// [`VerifyError::Read`], which says nothing about the contents; every other error means
/// the contents are bad. `each` may have seen some pieces when an error is returned.
pub fn verify_file(
    file: &Untrusted,
    name: Option<&SnapshotName>,
    verifier: &dyn ReceiptVerifier,
    each: &mut dyn FnMut(&[u8]),
) -> Result<VerifiedFile, VerifyError> {
    verify_with(file, name, verifier, Some(each), Chunks::None)
}

/// [`verify_file`] for a file of the snapshot directory `dir`: a chunked body's chunks
/// (docs/FORMAT.md §2.2) are checked against `dir`'s packs, whose trailers are read for the
/// call only when the file is chunked. What `snapseal verify` and the demo's final check use.
pub fn verify_file_in(
    dir: &dyn DirHandle,
    file: &Untrusted,
    name: Option<&SnapshotName>,
    verifier: &dyn ReceiptVerifier,
    each: &mut dyn FnMut(&[u8]),
) -> Result<VerifiedFile, VerifyError> {
    verify_with(file, name, verifier, Some(each), Chunks::ScanDir(dir))
}

/// Where [`verify_with`] finds a chunked body's chunks.
#[derive(Clone, Copy)]
pub(crate) enum Chunks<'a> {
    /// Nowhere: a chunked file fails with [`BodyError::NoChunkStore`](crate::BodyError).
    None,
    /// A store's chunk index.
    Source(&'a dyn ChunkSource),
    /// The packs of this directory, scanned only if the file is chunked.
    ScanDir(&'a dyn DirHandle),
    /// Not read: the list is decoded and its lengths summed, its chunks are left to a caller
    /// that checks each against its hash as it reads it (`chunks::export`).
    ListOnly,
}

/// [`verify_file`]; without `each`, step 3 reads and hashes only the body, on every thread of
/// the pool at once ([`body_digest`]), which is what the store's own reads use.
pub(crate) fn verify_with(
    file: &Untrusted,
    name: Option<&SnapshotName>,
    verifier: &dyn ReceiptVerifier,
    each: Option<&mut Each<'_>>,
    chunks: Chunks<'_>,
) -> Result<VerifiedFile, VerifyError> {
    let path = file.path();
    let read_err = |e: UntrustedError| VerifyError::Read {
        file: path.to_path_buf(),
        source: into_io(e),
    };
    let format_err = |check, source| VerifyError::Format {
        file: path.to_path_buf(),
        check,
        source,
    };
    let head_len = HEADER_LEN.min(usize::try_from(file.len()).unwrap_or(HEADER_LEN));
    let head = file.read_range(0, head_len).map_err(read_err)?;
    let header = Header::decode(&head).map_err(|e| format_err(Check::Header, e))?;
    super::check_name_agrees(name, &header, path)?;
    let expected_len = header
        .file_len()
        .map_err(|e| format_err(Check::Length, e))?;
    if expected_len != file.len() {
        return Err(format_err(
            Check::Length,
            FormatError::LengthMismatch {
                what: "file",
                expected: expected_len,
                actual: file.len(),
            },
        ));
    }
    // Both fit: their sum with the header is the file's length, which the caller capped.
    let body_start = HEADER_LEN as u64;
    let receipt_start = body_start + header.body_len;
    let receipt_len = usize::try_from(header.receipt_len).map_err(|_| {
        format_err(
            Check::Length,
            FormatError::LengthOverflow {
                body_len: header.body_len,
                receipt_len: header.receipt_len,
            },
        )
    })?;
    let receipt = file
        .read_range(receipt_start, receipt_len)
        .map_err(read_err)?;
    let actual = *blake3::hash(&receipt).as_bytes();
    if actual != header.receipt_digest {
        return Err(format_err(
            Check::ReceiptDigest,
            FormatError::ReceiptDigest {
                expected: header.receipt_digest,
                actual,
            },
        ));
    }
    let expected = Expected::of(&header);
    let verified = verifier
        .verify(&receipt, &expected)
        .map_err(|source| VerifyError::Receipt {
            file: path.to_path_buf(),
            source,
        })?;

    let actual = match each {
        Some(each) => whole_file_pass(file, &header, each).map_err(read_err)?,
        None => *body_digest(file, body_start, header.body_len)
            .map_err(read_err)?
            .as_bytes(),
    };
    if actual != header.body_digest {
        return Err(format_err(
            Check::BodyDigest,
            FormatError::BodyDigest {
                expected: header.body_digest,
                actual,
            },
        ));
    }

    if header.flags.contains(crate::format::Flags::ZSTD) {
        check_stream_encoding(file, &header, path)?;
    }
    if header.flags.contains(crate::format::Flags::CHUNKED) {
        check_chunks(file, &header, path, chunks)?;
    }
    Ok(VerifiedFile {
        header,
        receipt,
        verified,
    })
}

/// One pass over the whole file, in order: `each` sees every byte, the body hasher the body.
/// Returns the body's digest.
fn whole_file_pass(
    file: &Untrusted,
    header: &Header,
    each: &mut dyn FnMut(&[u8]),
) -> Result<[u8; 32], UntrustedError> {
    let body_start = HEADER_LEN as u64;
    let receipt_start = body_start + header.body_len;
    let mut body_hash = blake3::Hasher::new();
    let mut buf = vec![0u8; PIECE.min(usize::try_from(file.len()).unwrap_or(PIECE))];
    let mut at = 0u64;
    while at < file.len() {
        let n = usize::try_from(file.len() - at).map_or(buf.len(), |left| left.min(buf.len()));
        let piece = &mut buf[..n];
        file.read_exact_at(at, piece)?;
        each(piece);
        let (lo, hi) = (at.max(body_start), (at + n as u64).min(receipt_start));
        if lo < hi {
            // Offsets within this piece; both fit in usize (at most PIECE).
            let from = (lo - at) as usize;
            let to = (hi - at) as usize;
            crate::body::hashing::hash(&mut body_hash, &piece[from..to]);
        }
        at += n as u64;
    }
    Ok(*body_hash.finalize().as_bytes())
}

/// The body-encoding check over the body read with `pread`; a failed read is reported as
/// such, not as a bad encoding.
fn check_stream_encoding(
    file: &Untrusted,
    header: &Header,
    path: &Path,
) -> Result<(), VerifyError> {
    let body_start = HEADER_LEN as u64;
    let stored = Source::file(FileRange::new(
        file,
        body_start,
        body_start + header.body_len,
    ));
    ZstdBody::new(stored, header.raw_len)
        .and_then(decode_all)
        .map_err(|e| match as_read_failure(e) {
            Ok(failed) => VerifyError::Read {
                file: path.to_path_buf(),
                source: into_io(failed),
            },
            Err(e) => VerifyError::Body {
                file: path.to_path_buf(),
                source: as_body_error(e),
            },
        })
}

/// The chunks of a chunked body (docs/FORMAT.md §7 step 8): the list read entry by entry
/// (its digest was proved in step 7), every chunk checked by the source (read from its pack
/// and checked against its hash; an ingest's source takes the chunks its import hashed and
/// sealed by their presence), and the lengths adding up to `raw_len`. A chunk missing or damaged fails the
/// snapshot; a failed read is reported as such.
fn check_chunks(
    file: &Untrusted,
    header: &Header,
    path: &Path,
    chunks: Chunks<'_>,
) -> Result<(), VerifyError> {
    let scanned;
    let source: Option<&dyn ChunkSource> = match chunks {
        Chunks::ListOnly => return check_list(file, header, path),
        Chunks::None => None,
        Chunks::Source(s) => Some(s),
        Chunks::ScanDir(dir) => {
            scanned = ScannedChunks::scan(dir).map_err(|e| VerifyError::Read {
                file: path.to_path_buf(),
                source: io::Error::other(e),
            })?;
            Some(&scanned)
        }
    };
    let body_start = HEADER_LEN as u64;
    let stored = Source::file(FileRange::new(
        file,
        body_start,
        body_start + header.body_len,
    ));
    check_chunked(header, stored, source).map_err(|e| chunk_failure(e, path))
}

/// The chunk list's structure alone: read whole (at most 151 MiB, docs/FORMAT.md §2.2),
/// decoded, its lengths summed against `raw_len`.
fn check_list(file: &Untrusted, header: &Header, path: &Path) -> Result<(), VerifyError> {
    let len = usize::try_from(header.body_len).map_err(|_| VerifyError::Body {
        file: path.to_path_buf(),
        source: crate::error::BodyError::ChunkListLength {
            len: header.body_len,
        },
    })?;
    let list = file
        .read_range(HEADER_LEN as u64, len)
        .map_err(|e| VerifyError::Read {
            file: path.to_path_buf(),
            source: into_io(e),
        })?;
    crate::chunks::list::decode_list(&list, header.raw_len)
        .map(drop)
        .map_err(|source| VerifyError::Body {
            file: path.to_path_buf(),
            source,
        })
}

fn chunk_failure(e: io::Error, path: &Path) -> VerifyError {
    if e.get_ref()
        .is_some_and(|inner| inner.is::<crate::error::BodyError>())
    {
        VerifyError::Body {
            file: path.to_path_buf(),
            source: as_body_error(e),
        }
    } else {
        VerifyError::Read {
            file: path.to_path_buf(),
            source: match as_read_failure(e) {
                Ok(failed) => into_io(failed),
                Err(e) => e,
            },
        }
    }
}

fn into_io(e: UntrustedError) -> io::Error {
    match e {
        UntrustedError::Io { source, .. } => source,
        e => io::Error::new(io::ErrorKind::UnexpectedEof, e),
    }
}
