//! Decoding a stored body: [`BodyReader`] over bytes in memory or a verified file read with
//! `pread`, and the body-encoding check (docs/FORMAT.md §2.1, §7 step 8) over either source, so
//! a file is checked and read in bounded memory, never mapped.

use std::io::{self, BufRead, BufReader, Read};

use crate::chunks::list::{Entry, RawSum, ENTRY_LEN};
use crate::chunks::store::{ChunkSource, OpenPack};
use crate::error::BodyError;
use crate::format::{Flags, Header};

use super::range::FileRange;

/// The first four bytes of every RFC 8878 zstd frame (`0xFD2FB528`, little-endian).
const ZSTD_FRAME_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Output buffer of the encoding check.
const DECODE_BUF: usize = 64 * 1024;

/// Buffer of a body read from a file: one `pread` per MiB, the reader's only allocation
/// besides the zstd decoder's window.
const FILE_BUF: usize = 1 << 20;

fn invalid(e: BodyError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// A buffered source of stored body bytes that knows how many it has not handed out yet, so
/// the bytes after the zstd frame can be counted.
pub(crate) trait StoredBody: BufRead {
    /// Bytes not yet consumed (buffered ones included).
    fn remaining(&self) -> u64;
}

impl StoredBody for &[u8] {
    fn remaining(&self) -> u64 {
        self.len() as u64
    }
}

/// Where a stored body comes from: bytes in memory, or a verified file's body range behind a
/// buffer of [`FILE_BUF`] bytes.
pub(crate) enum Source<'a> {
    /// Bytes in memory.
    Bytes(&'a [u8]),
    /// A range of an open file.
    File(BufReader<FileRange<'a>>),
}

impl<'a> Source<'a> {
    /// The body range of a file, buffered.
    pub(crate) fn file(range: FileRange<'a>) -> Source<'a> {
        Source::File(BufReader::with_capacity(FILE_BUF, range))
    }
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Bytes(rest) => rest.read(buf),
            Source::File(f) => f.read(buf),
        }
    }
}

impl BufRead for Source<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Source::Bytes(rest) => rest.fill_buf(),
            Source::File(f) => f.fill_buf(),
        }
    }

    fn consume(&mut self, amt: usize) {
        match self {
            Source::Bytes(rest) => rest.consume(amt),
            Source::File(f) => f.consume(amt),
        }
    }
}

impl StoredBody for Source<'_> {
    fn remaining(&self) -> u64 {
        match self {
            Source::Bytes(rest) => rest.remaining(),
            Source::File(f) => f.buffer().len() as u64 + f.get_ref().remaining(),
        }
    }
}

/// One zstd frame decoding to exactly `expected` bytes with nothing after it.
pub(crate) struct ZstdBody<'a, B: StoredBody> {
    decoder: zstd::stream::read::Decoder<'a, B>,
    expected: u64,
    produced: u64,
    finished: bool,
}

impl<'a, B: StoredBody> ZstdBody<'a, B> {
    /// Only an RFC 8878 frame is decoded — a skippable frame would stand in for the body, and
    /// the legacy pre-1.0 decoders are code no writer of ours needs hostile bytes to reach — so
    /// the first four bytes are looked at (without consuming them) before the decoder is set
    /// up. Fails if reading them fails.
    pub(crate) fn new(mut stored: B, expected: u64) -> io::Result<ZstdBody<'a, B>> {
        // A buffered source hands out at least four bytes at once unless the body is shorter.
        if !stored.fill_buf()?.starts_with(&ZSTD_FRAME_MAGIC) {
            return Err(invalid(BodyError::NotAFrame));
        }
        // single_frame: the decoder stops at the end of the first frame, so whatever follows
        // it stays in the input and is reported, not silently decoded.
        let decoder = zstd::stream::read::Decoder::with_buffer(stored)?.single_frame();
        Ok(ZstdBody {
            decoder,
            expected,
            produced: 0,
            finished: false,
        })
    }
}

impl<B: StoredBody> Read for ZstdBody<'_, B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.finished || buf.is_empty() {
            return Ok(0);
        }
        let n = self.decoder.read(buf).map_err(|source| {
            // A finding of ours, or a failed read of the file (the decoder passes its
            // source's errors on as they are): neither is the decoder's verdict on the bytes.
            if source
                .get_ref()
                .is_some_and(|e| e.is::<BodyError>() || e.is::<crate::fs::UntrustedError>())
            {
                source
            } else {
                invalid(BodyError::Decode { source })
            }
        })?;
        self.produced += n as u64;
        if self.produced > self.expected {
            return Err(invalid(BodyError::Long {
                expected: self.expected,
            }));
        }
        if n == 0 {
            if self.produced < self.expected {
                return Err(invalid(BodyError::Short {
                    expected: self.expected,
                    actual: self.produced,
                }));
            }
            let trailing = self.decoder.get_ref().remaining();
            if trailing > 0 {
                return Err(invalid(BodyError::TrailingData { trailing }));
            }
            self.finished = true;
        }
        Ok(n)
    }
}

/// The decoded body of a committed file, as an [`io::Read`] (from
/// [`SnapshotFile::body_reader`](crate::SnapshotFile::body_reader)).
///
/// A file's body is read with `pread` in pieces of a MiB, never mapped: memory stays a few
/// MiB whatever the snapshot's size, and a file that another process truncated meanwhile fails
/// the read that finds it (kind [`io::ErrorKind::UnexpectedEof`], saying where the file
/// ended) instead of killing the process with `SIGBUS`.
///
/// A zstd body must be exactly one RFC 8878 frame (magic `28 b5 2f fd`: no skippable or legacy
/// frame) that decodes to exactly `raw_len` bytes; anything else fails the read that finds it
/// (at the latest the one that reaches the end) with an [`io::ErrorKind::InvalidData`] error
/// carrying a [`BodyError`].
pub struct BodyReader<'a> {
    inner: Inner<'a>,
}

enum Inner<'a> {
    Plain(Source<'a>),
    Zstd(ZstdBody<'a, Source<'a>>),
    Chunked(Box<ChunkedRead<'a>>),
}

/// The bytes of a chunked body (docs/FORMAT.md §2.2): its list read entry by entry, each
/// chunk read from its pack and checked against its hash before any of it is handed out.
struct ChunkedRead<'a> {
    list: Source<'a>,
    store: &'a dyn ChunkSource,
    cache: OpenPack,
    chunk: Vec<u8>,
    pos: usize,
    next: u64,
    entries: u64,
    sum: RawSum,
}

impl Read for ChunkedRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.next == self.entries {
                self.sum.finish().map_err(invalid)?;
                return Ok(0);
            }
            let mut raw = [0u8; ENTRY_LEN];
            self.list.read_exact(&mut raw)?;
            let entry = Entry::decode(&raw, self.next).map_err(invalid)?;
            self.sum.add(entry.len).map_err(invalid)?;
            self.chunk = self.store.read(self.next, &entry, &mut self.cache)?;
            self.pos = 0;
            self.next += 1;
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl std::fmt::Debug for BodyReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Plain(rest) => f
                .debug_struct("BodyReader")
                .field("remaining", &rest.remaining())
                .finish(),
            Inner::Zstd(z) => f
                .debug_struct("BodyReader")
                .field("raw_len", &z.expected)
                .field("decoded", &z.produced)
                .finish(),
            Inner::Chunked(c) => f
                .debug_struct("BodyReader")
                .field("chunks", &c.entries)
                .field("read", &c.next)
                .finish(),
        }
    }
}

impl<'a> BodyReader<'a> {
    /// The decoded body of `header`'s file, its stored bytes coming from `stored`. For a zstd
    /// body, reads the first bytes to check the frame's magic; a chunked body's chunks come
    /// from `chunks` (without it, [`BodyError::NoChunkStore`]).
    pub(crate) fn new(
        header: &Header,
        stored: Source<'a>,
        chunks: Option<&'a dyn ChunkSource>,
    ) -> io::Result<BodyReader<'a>> {
        let inner = if header.flags.contains(Flags::ZSTD) {
            Inner::Zstd(ZstdBody::new(stored, header.raw_len)?)
        } else if header.flags.contains(Flags::CHUNKED) {
            let store = chunks.ok_or_else(|| invalid(BodyError::NoChunkStore))?;
            Inner::Chunked(Box::new(ChunkedRead {
                list: stored,
                store,
                cache: OpenPack::default(),
                chunk: Vec::new(),
                pos: 0,
                next: 0,
                entries: header.body_len / ENTRY_LEN as u64,
                sum: RawSum::new(header.raw_len),
            }))
        } else {
            Inner::Plain(stored)
        };
        Ok(BodyReader { inner })
    }
}

/// Checks every chunk of a chunked body without handing its bytes out (verification):
/// the list, from `list`, read entry by entry, each chunk checked by `chunks`
/// ([`ChunkSource::check`]), the lengths adding up to `raw_len`. Without `chunks`,
/// [`BodyError::NoChunkStore`]. Errors as [`BodyReader`]'s.
pub(crate) fn check_chunked(
    header: &Header,
    mut list: Source<'_>,
    chunks: Option<&dyn ChunkSource>,
) -> io::Result<()> {
    let store = chunks.ok_or_else(|| invalid(BodyError::NoChunkStore))?;
    let mut sum = RawSum::new(header.raw_len);
    let mut cache = OpenPack::default();
    for index in 0..header.body_len / ENTRY_LEN as u64 {
        let mut raw = [0u8; ENTRY_LEN];
        list.read_exact(&mut raw)?;
        let entry = Entry::decode(&raw, index).map_err(invalid)?;
        sum.add(entry.len).map_err(invalid)?;
        store.check(index, &entry, &mut cache)?;
    }
    sum.finish().map_err(invalid)
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(rest) => rest.read(buf),
            Inner::Zstd(z) => z.read(buf),
            Inner::Chunked(c) => c.read(buf),
        }
    }
}

/// The body-encoding step of verification (docs/FORMAT.md §7 step 8), on its own: with flag
/// bit 0, decodes the whole stored `body` in bounded memory (a fixed buffer; the zstd frame
/// streams through the decoder) and discards it, requiring one frame of exactly `raw_len`
/// bytes with nothing after it. An uncompressed body has nothing to decode (`raw_len ==
/// body_len` is a header check). A chunk list (flag bit 1) is decoded and its lengths summed
/// against `raw_len`; its chunks are not looked at here. [`verify_bytes`](super::verify_bytes) runs it; tools that
/// inspect a file step by step can call it directly.
pub fn check_body_encoding(header: &Header, body: &[u8]) -> Result<(), BodyError> {
    if header.flags.contains(Flags::CHUNKED) {
        // The list's structure; the chunks themselves are the store's to check.
        return crate::chunks::list::decode_list(body, header.raw_len).map(|_| ());
    }
    if !header.flags.contains(Flags::ZSTD) {
        return Ok(());
    }
    ZstdBody::new(body, header.raw_len)
        .and_then(decode_all)
        .map_err(as_body_error)
}

/// Reads a [`ZstdBody`] to its end, discarding the output. An error is the body's finding (an
/// [`io::Error`] carrying a [`BodyError`]), the decoder's, or a failed read of the source.
pub(crate) fn decode_all<B: StoredBody>(mut body: ZstdBody<'_, B>) -> io::Result<()> {
    let mut buf = vec![0u8; DECODE_BUF];
    loop {
        match body.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// [`ZstdBody`] reports its findings as an `io::Error` carrying a [`BodyError`]; unwraps it
/// again (any other error is the decoder's or the source's, as `Decode`).
pub(crate) fn as_body_error(e: io::Error) -> BodyError {
    if !e.get_ref().is_some_and(|inner| inner.is::<BodyError>()) {
        return BodyError::Decode { source: e };
    }
    match e.into_inner().map(|inner| inner.downcast::<BodyError>()) {
        Some(Ok(b)) => *b,
        // Unreachable (checked just above), but no input may panic here.
        Some(Err(other)) => BodyError::Decode {
            source: io::Error::new(io::ErrorKind::InvalidData, other),
        },
        None => BodyError::Decode {
            source: io::Error::from(io::ErrorKind::InvalidData),
        },
    }
}
