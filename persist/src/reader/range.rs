//! [`FileRange`]: a byte range of an opened file, read in order with `pread` — the one way the
//! reader hands out a verified file's bytes, so none of them is ever mapped.

use std::io::{self, Read, Seek, SeekFrom};

use crate::fs::{Untrusted, UntrustedError};

/// The bytes `start..end` of `file` as an [`io::Read`] + [`io::Seek`] (positions count from
/// `start`). Each read is one `pread` of at most what the caller asked for, so memory is the
/// caller's buffer; a file that another process truncated meanwhile fails the read with an
/// error carrying [`UntrustedError::Truncated`] instead of the `SIGBUS` a mapping would give.
#[derive(Debug)]
pub(crate) struct FileRange<'a> {
    file: &'a Untrusted,
    start: u64,
    at: u64,
    end: u64,
}

impl<'a> FileRange<'a> {
    /// `start..end` of `file`; `end` is at most the file's size when it was opened (reads
    /// beyond that size are refused by [`Untrusted`] anyway).
    pub(crate) fn new(file: &'a Untrusted, start: u64, end: u64) -> FileRange<'a> {
        FileRange {
            file,
            start,
            at: start,
            end,
        }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> u64 {
        self.end.saturating_sub(self.at)
    }
}

/// A failed read as an [`io::Error`] that keeps the [`UntrustedError`] (which names the file)
/// as its inner error, with a kind that says what happened: `UnexpectedEof` for a truncation.
pub(crate) fn read_error(e: UntrustedError) -> io::Error {
    let kind = match &e {
        UntrustedError::Io { source, .. } => source.kind(),
        UntrustedError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

/// The [`UntrustedError`] inside an error of a [`FileRange`] read, if it is one (a read
/// failure, as opposed to an error of whatever consumed the bytes).
pub(crate) fn as_read_failure(e: io::Error) -> Result<UntrustedError, io::Error> {
    if !e
        .get_ref()
        .is_some_and(|inner| inner.is::<UntrustedError>())
    {
        return Err(e);
    }
    let kind = e.kind();
    match e
        .into_inner()
        .map(|inner| inner.downcast::<UntrustedError>())
    {
        Some(Ok(u)) => Ok(*u),
        // Unreachable (checked just above), but nothing here may panic.
        Some(Err(other)) => Err(io::Error::new(kind, other)),
        None => Err(io::Error::from(kind)),
    }
}

impl Read for FileRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = usize::try_from(self.remaining()).map_or(buf.len(), |left| left.min(buf.len()));
        if n == 0 {
            return Ok(0);
        }
        self.file
            .read_exact_at(self.at, &mut buf[..n])
            .map_err(read_error)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl Seek for FileRange<'_> {
    /// Like a slice's cursor: a position past the end reads as the end.
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let len = self.end.saturating_sub(self.start);
        let here = self.at - self.start;
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => len.checked_add_signed(d),
            SeekFrom::Current(d) => here.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start (or past 2^64)",
            )
        })?;
        self.at = self.start.saturating_add(target);
        Ok(target)
    }
}
