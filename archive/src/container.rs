//! The tar container: entries written with fixed metadata, and read strictly: a regular file
//! per entry, its data read to exactly the size its header gives, an archive that ends early
//! reported as truncated (not as a digest mismatch of whatever entry it cut), only zero
//! blocks after the end.

use std::cell::Cell;
use std::io::{self, Read, Write};

use snapseal_persist::internals::Escaped;

/// Copy buffer: the only per-file memory export and import use for streamed entries.
pub(crate) const BUF: usize = 1 << 16;

/// Most zero bytes accepted after the end-of-archive block (tar tools pad to a record of up
/// to 10 KiB).
const MAX_TRAILER: u64 = 64 << 10;

/// Why reading the archive stream failed.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The stream ended before the archive did, at this byte.
    Truncated(u64),
    /// The bytes are not an archive of ours (message printable).
    Malformed(String),
    /// Reading the source failed.
    Io(io::Error),
}

/// Where the source stream is: bytes read, whether it ended, whether a read failed.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    pos: Cell<u64>,
    eof: Cell<bool>,
    failed: Cell<bool>,
}

impl Tracker {
    /// Bytes read from the source so far.
    pub(crate) fn pos(&self) -> u64 {
        self.pos.get()
    }

    /// Classifies an error met while reading the archive: the stream ended early, the source
    /// failed, or the bytes are wrong (the error's text escaped: the tar parser quotes entry
    /// names in it).
    pub(crate) fn failure(&self, e: io::Error) -> ReadFailure {
        if self.eof.get() {
            ReadFailure::Truncated(self.pos.get())
        } else if self.failed.get() {
            ReadFailure::Io(e)
        } else {
            ReadFailure::Malformed(Escaped::str(&e.to_string()).to_string())
        }
    }
}

/// The source stream as the tar parser reads it, reporting to a [`Tracker`].
pub(crate) struct Tracked<'a> {
    pub(crate) inner: &'a mut dyn Read,
    pub(crate) tracker: &'a Tracker,
}

impl Read for Tracked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.tracker.eof.set(true);
                Ok(0)
            }
            Ok(n) => {
                self.tracker.pos.set(self.tracker.pos.get() + n as u64);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.tracker.failed.set(true);
                Err(e)
            }
        }
    }
}

/// One entry's data, read to exactly its size: ending early is an `UnexpectedEof` error
/// (the caller asks the [`Tracker`] what it means), never a short read that looks complete.
pub(crate) struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Exact<R> {
    /// The next `len` bytes of `inner`.
    pub(crate) fn new(inner: R, len: u64) -> Self {
        Exact { inner, left: len }
    }

    /// True once every byte has been read.
    pub(crate) fn is_done(&self) -> bool {
        self.left == 0
    }

    /// Fills `buf` (which must fit in what is left).
    pub(crate) fn fill(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.read(&mut buf[done..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Everything left, into a buffer reserved up front (the caller capped the size).
    pub(crate) fn read_rest(&mut self, into: &mut Vec<u8>) -> io::Result<()> {
        let left =
            usize::try_from(self.left).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        into.try_reserve_exact(left)
            .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let start = into.len();
        into.resize(start + left, 0);
        self.fill(&mut into[start..])
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the entry ends before its size",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The path of an entry, which must be a regular file.
pub(crate) fn entry_path<R: Read>(e: &tar::Entry<'_, R>) -> Result<Vec<u8>, String> {
    let t = e.header().entry_type();
    if !t.is_file() {
        return Err(format!(
            "{}: an entry of tar type {:?}; an archive holds regular files only",
            Escaped::bytes(&e.path_bytes()),
            t.as_byte() as char
        ));
    }
    Ok(e.path_bytes().into_owned())
}

/// After the end-of-archive block: the rest of the stream may only be zero bytes (at least
/// the second end block, at most [`MAX_TRAILER`]).
pub(crate) fn check_trailer(rest: &mut dyn Read, tracker: &Tracker) -> Result<(), ReadFailure> {
    let mut buf = [0u8; 4096];
    let mut seen = 0u64;
    loop {
        let n = match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(tracker.failure(e)),
        };
        seen += n as u64;
        if buf[..n].iter().any(|&b| b != 0) || seen > MAX_TRAILER {
            return Err(ReadFailure::Malformed(
                "data after the end of the archive".into(),
            ));
        }
    }
    if seen < 512 {
        return Err(ReadFailure::Truncated(tracker.pos()));
    }
    Ok(())
}

/// Hashes everything that passes through.
pub(crate) struct Hashing<R> {
    pub(crate) inner: R,
    pub(crate) hasher: blake3::Hasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// BLAKE3 and length of everything `src` yields.
pub(crate) fn hash_stream(src: &mut dyn Read) -> io::Result<(blake3::Hash, u64)> {
    let mut h = Hashing {
        inner: src,
        hasher: blake3::Hasher::new(),
    };
    let n = io::copy(&mut h, &mut io::sink())?;
    Ok((h.hasher.finalize(), n))
}

/// Appends one regular-file entry with fixed metadata (mode 0644, mtime 0, uid and gid 0,
/// no owner names): the archive's determinism. `src` must yield exactly `len` bytes; one
/// that yields fewer is an `UnexpectedEof` error (a file that changed while exported).
pub(crate) fn append(
    tar: &mut tar::Builder<&mut dyn Write>,
    path: &str,
    len: u64,
    src: &mut dyn Read,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(len);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    tar.append_data(&mut h, path, &mut Exact::new(src, len))
}
