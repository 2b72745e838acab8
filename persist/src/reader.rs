//! The reader: checks a committed file's bytes, cheapest checks first, and hands out the body
//! without copying it.
//!
//! Order (docs/FORMAT.md §7): header (160 bytes: magic, version, checksum, flags, lengths,
//! `idx < evidence_idx`) → name/header agreement → exact file length and receipt digest →
//! receipt against the trusted keys, for the claims digest recomputed from the header → body
//! digest → body encoding (a zstd body decodes as one frame of exactly `raw_len` bytes). Only
//! the last two are proportional to the file size, so a damaged, forged or foreign file is
//! usually refused before the body is read.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub(crate) mod body;
pub(crate) mod stream;

pub(crate) use body::{check_body_encoding, BodyReader};

use crate::error::{Check, VerifyError};
use crate::format::{self, FormatError, Header, HEADER_LEN};
use crate::fs::{DirHandle, FileBytes, NotRegular};
use crate::hold::Hold;
use crate::names::SnapshotName;
use crate::receipt::{Expected, ReceiptVerifier, VerifiedReceipt};

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
        BodyReader::new(&self.header, self.body)
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
    Ok(VerifiedSnapshot {
        header,
        body,
        receipt,
        verified,
    })
}

/// A committed file that was read and verified. The body stays in the memory map (zero
/// copy); a file returned by the store also carries a [`Hold`] that keeps retention off it.
#[derive(Debug)]
pub struct SnapshotFile {
    name: SnapshotName,
    path: PathBuf,
    bytes: FileBytes,
    header: Header,
    body: Range<usize>,
    receipt: Range<usize>,
    verified: VerifiedReceipt,
    hold: Option<Hold>,
}

impl SnapshotFile {
    /// The file's name.
    pub fn name(&self) -> &SnapshotName {
        &self.name
    }

    /// Directory path joined with the file name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    internals_pub! {
        /// The decoded header.
        fn header(&self) -> &Header {
            &self.header
        }
    }

    internals_pub! {
        /// The stored body, as in the file: zstd-compressed when `header().flags` says so. To
        /// read the snapshot's contents use [`body_reader`](Self::body_reader).
        fn body(&self) -> &[u8] {
            self.bytes.get(self.body.clone()).unwrap_or_default()
        }
    }

    /// The whole committed file as it verified — header, stored body and receipt, exactly the
    /// bytes on disk: what a peer or another store ingests
    /// ([`SnapshotStore::ingest`](crate::SnapshotStore::ingest)) to have the same snapshot.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The snapshot's contents — the bytes the state was serialised to — streamed in bounded
    /// memory: decompressed on the fly for a zstd body, the stored bytes as they are
    /// otherwise. Fails to start only if the zstd decoder cannot be set up.
    pub fn body_reader(&self) -> io::Result<BodyReader<'_>> {
        BodyReader::new(&self.header, self.body())
    }

    internals_pub! {
        /// The receipt bytes, as verified.
        fn receipt_bytes(&self) -> &[u8] {
            self.bytes.get(self.receipt.clone()).unwrap_or_default()
        }
    }

    /// What the receipt proved (signature index, signer).
    pub fn receipt(&self) -> &VerifiedReceipt {
        &self.verified
    }

    internals_pub! {
        /// The whole file's length.
        fn file_len(&self) -> u64 {
            self.bytes.len() as u64
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

/// Reads and verifies the file `name` in `dir`. An I/O failure is [`VerifyError::Read`];
/// anything else means the contents are bad.
///
/// The file is opened relative to the directory (`O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC`), must be
/// a regular file (`fstat`), and its header is read with `pread` and checked (magic, version,
/// checksum, name agreement, and that the header's lengths add up to the file's size) before
/// anything is mapped: a huge junk file under a snapshot name is refused after one 160-byte
/// read. Only then is the file mapped and the rest verified.
///
/// # Mapped files and truncation
///
/// The returned file's bytes are a memory map. If another process truncates the file while
/// it is mapped, touching the lost pages kills this process with `SIGBUS`. The store rules
/// that out for its own directory (it holds the directory lock and never changes a committed
/// file in place); a caller without the lock, next to a process that truncates snapshot
/// files, takes that risk.
pub fn open_snapshot(
    dir: &dyn DirHandle,
    name: &SnapshotName,
    verifier: &dyn ReceiptVerifier,
) -> Result<SnapshotFile, VerifyError> {
    let path = dir.path().join(name.file_name());
    let bytes = read_checked(dir, &name.file_name(), Some(name), verifier)?;
    let v = verify_labelled(&bytes, Some(name), &path, verifier)?;
    // split() checked the file is exactly header + body + receipt, so these fit.
    let body_end = HEADER_LEN + v.body.len();
    let body = HEADER_LEN..body_end;
    let receipt = body_end..body_end + v.receipt.len();
    let (header, verified) = (v.header, v.verified);
    Ok(SnapshotFile {
        name: *name,
        path,
        bytes,
        header,
        body,
        receipt,
        verified,
        hold: None,
    })
}

/// Reads the file `file_name` in `dir` for verification the way [`open_snapshot`] does: the
/// header is read with `pread` and checked (and, with `name`, compared with it), and the
/// header's lengths must add up to the file's size, before the file is mapped. Returns the
/// mapped bytes for [`verify_bytes`]; the error is the one `verify_bytes` would give for the
/// header, name or length, or an I/O failure. For tools that verify without the store.
pub fn read_checked(
    dir: &dyn DirHandle,
    file_name: &str,
    name: Option<&SnapshotName>,
    verifier: &dyn ReceiptVerifier,
) -> Result<FileBytes, VerifyError> {
    let path = dir.path().join(file_name);
    let mut refused = None;
    let mut check = |head: &[u8], size: u64| match precheck(head, size, name, &path, verifier) {
        Ok(()) => Ok(()),
        Err(e) => {
            refused = Some(e);
            Err(io::Error::other("header check failed before mapping"))
        }
    };
    let opened = dir.open_read_checked(file_name, HEADER_LEN, &mut check);
    if let Some(e) = refused {
        return Err(e);
    }
    opened.map_err(|source| {
        // A name listed as a file may have become a link or a directory since (O_NOFOLLOW
        // gives ELOOP, O_RDONLY on a directory EISDIR): like a fifo, not a snapshot to read.
        let what = match source.raw_os_error().map(nix::errno::Errno::from_raw) {
            Some(nix::errno::Errno::ELOOP) => Some("symbolic link"),
            Some(nix::errno::Errno::EISDIR) => Some("directory"),
            _ => source
                .get_ref()
                .and_then(|e| e.downcast_ref::<NotRegular>())
                .map(NotRegular::what),
        };
        match what {
            Some(what) => VerifyError::NotRegularFile {
                file: path.clone(),
                what,
            },
            None => VerifyError::Read {
                file: path.clone(),
                source,
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

/// The checks [`open_snapshot`] makes on the first bytes and the size before mapping: the
/// ones [`verify_bytes`] makes first (header, name agreement) with the same errors, then the
/// file length against the size.
fn precheck(
    head: &[u8],
    size: u64,
    name: Option<&SnapshotName>,
    path: &Path,
    verifier: &dyn ReceiptVerifier,
) -> Result<(), VerifyError> {
    let Ok(header) = Header::decode(head) else {
        // The header check looks at the first HEADER_LEN bytes only, so the head alone gives
        // the same error as the whole file would.
        return verify_labelled(head, name, path, verifier).map(|_| ());
    };
    if name.is_some_and(|n| header.idx != n.idx || header.evidence_idx != n.evidence_idx) {
        return verify_labelled(head, name, path, verifier).map(|_| ());
    }
    let format_err = |check, source| VerifyError::Format {
        file: path.to_path_buf(),
        check,
        source,
    };
    let expected = header
        .file_len()
        .map_err(|e| format_err(Check::Length, e))?;
    if expected != size {
        return Err(format_err(
            Check::Length,
            FormatError::LengthMismatch {
                what: "file",
                expected,
                actual: size,
            },
        ));
    }
    Ok(())
}
