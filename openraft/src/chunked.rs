//! A chunked snapshot as openraft moves it: one self-contained byte stream, the committed
//! file (whose body is the chunk list, docs/FORMAT.md §2.2) followed by every distinct chunk
//! it names, raw, in the order the list first names them.
//!
//! openraft 0.9's snapshot transport is one-way (the leader streams `SnapshotData`, the
//! follower cannot say which chunks it holds), so the stream carries them all: the network
//! cost is the whole state. The receiver writes only the chunks its store lacks, so its disk
//! cost is the change. No framing is added: the file's header gives the file's length, and
//! the list (in the file) gives each chunk's length and hash. Every chunk the receiver stores
//! is checked against its hash as it arrives, and the file is verified — list digest, claims,
//! receipt, every chunk against the store's packs — before it gets its committed name, so
//! a damaged or foreign chunk is refused and nothing of it is committed.
//!
//! [`Bundle`] is the sending side (reads at any offset, so openraft may seek); [`Incoming`]
//! the receiving side (in order only).

use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::Arc;

use parking_lot::Mutex;
use snapseal_persist::internals::chunks::{chunk_list, decode_list, read_chunk, ChunkImport};
use snapseal_persist::internals::format::{Flags, Header, HEADER_LEN};
use snapseal_persist::{to_hex, Hash, IngestFile, Ingested, SnapshotFile, SnapshotStore};

use crate::Error;

/// Bytes of one chunk list entry (length u32 LE, BLAKE3).
const ENTRY_LEN: u64 = 36;
/// Largest chunk list the receiver buffers: FORMAT.md §2.2's most entries (2^22), 151 MiB.
/// The list is held whole to decode it; a header announcing more is refused before any of it
/// is read.
const MAX_LIST: u64 = ENTRY_LEN << 22;

/// One distinct chunk in a stream: where it starts (past the file), its length and hash.
#[derive(Clone, Copy, Debug)]
struct Part {
    at: u64,
    len: u32,
    hash: Hash,
}

/// The distinct chunks of `list` in the order it first names them, placed after `file_len`
/// bytes of file; and the stream's total length.
fn parts(list: &[(u32, Hash)], file_len: u64) -> (Vec<Part>, u64) {
    let mut seen = HashSet::new();
    let mut at = file_len;
    let mut out = Vec::new();
    for &(len, hash) in list {
        if seen.insert(hash) {
            out.push(Part { at, len, hash });
            at += u64::from(len);
        }
    }
    (out, at)
}

/// The sending side: a committed chunked file and its store's chunks, read at any offset.
pub(crate) struct Bundle {
    store: Arc<SnapshotStore>,
    file_len: u64,
    parts: Vec<Part>,
    total: u64,
    /// The chunk read last (openraft reads a stream in pieces smaller than a chunk).
    cache: Mutex<Option<(usize, Arc<Vec<u8>>)>>,
}

impl Bundle {
    /// The stream of `file` (of `store`) when it is chunked; `None` for a plain file, whose
    /// stream is the file alone.
    pub(crate) fn of(
        file: &SnapshotFile,
        file_len: u64,
        store: &Arc<SnapshotStore>,
    ) -> Result<Option<Bundle>, Error> {
        let Some(list) = chunk_list(file).map_err(|e| Error::Chunks {
            file: file.path().to_path_buf(),
            source: Box::new(e),
        })?
        else {
            return Ok(None);
        };
        let (parts, total) = parts(&list, file_len);
        Ok(Some(Bundle {
            store: Arc::clone(store),
            file_len,
            parts,
            total,
            cache: Mutex::new(None),
        }))
    }

    /// Bytes of the whole stream: the file and every distinct chunk.
    pub(crate) fn len(&self) -> u64 {
        self.total
    }

    /// Reads the chunk bytes at stream offset `pos` (at or past the file's end) into `buf`;
    /// 0 at or past the end. The chunk is read from the store's packs and checked against its
    /// hash (the file's hold keeps retention off its chunks).
    pub(crate) fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        if pos >= self.total || pos < self.file_len {
            return Ok(0);
        }
        // The last part starting at or before `pos`; one exists, as the first starts at
        // `file_len`.
        let i = self
            .parts
            .partition_point(|p| p.at <= pos)
            .saturating_sub(1);
        let part = self.parts[i];
        let bytes = {
            let mut cache = self.cache.lock();
            match &*cache {
                Some((at, bytes)) if *at == i => Arc::clone(bytes),
                _ => {
                    let read = read_chunk(&self.store, &part.hash)
                        .map_err(io::Error::other)?
                        .ok_or_else(|| {
                            io::Error::other(format!(
                                "chunk {} is no longer in the chunk store",
                                to_hex(&part.hash)
                            ))
                        })?;
                    let read = Arc::new(read);
                    *cache = Some((i, Arc::clone(&read)));
                    read
                }
            }
        };
        let from = usize::try_from(pos - part.at).unwrap_or(usize::MAX);
        let rest = bytes.get(from..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }
}

/// The receiving side: the file's bytes go to the store's ingest; once the file is whole and
/// its header says chunked, the chunks that follow are cut by its list and the ones the store
/// lacks are added (each checked against its hash) through a [`ChunkImport`], which claims
/// the ones it has against a retention sweep until the file is committed.
pub(crate) struct Incoming {
    file: IngestFile,
    /// Most bytes of state a chunked snapshot may hold (`SealOptions::max_snapshot_bytes`):
    /// the chunks it names add up to its `raw_len`, so this bounds what the chunks write
    /// before the file is verified, as the ingest's limit bounds a plain file.
    limit: u64,
    /// Bytes taken, file and chunks.
    received: u64,
    head: Vec<u8>,
    phase: Phase,
}

enum Phase {
    /// Before the whole header arrived, or a plain file (or one whose header does not
    /// decode: the ingest's verification refuses it at the install).
    File,
    /// A chunked file: its list gathered as its body passes.
    List {
        file_len: u64,
        body_end: u64,
        raw_len: u64,
        list: Vec<u8>,
    },
    /// The file is whole; the chunks arrive.
    Chunks(Box<ChunkPhase>),
}

struct ChunkPhase {
    parts: Vec<Part>,
    /// The part being received.
    next: usize,
    buf: Vec<u8>,
    /// The chunks the store lacked when the file was whole.
    missing: HashSet<Hash>,
    import: ChunkImport,
    /// Chunks the store had already (received, not written).
    skipped: u64,
}

impl Incoming {
    /// Receives into `file`, a pending ingest (its store is given to each
    /// [`take`](Self::take)), refusing a chunked snapshot of more than `limit` bytes of state.
    pub(crate) fn new(file: IngestFile, limit: u64) -> Incoming {
        Incoming {
            file,
            limit,
            received: 0,
            head: Vec::with_capacity(HEADER_LEN),
            phase: Phase::File,
        }
    }

    /// The limit it was made with.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Takes the next bytes of the stream; `store` is the store the ingest writes into.
    pub(crate) fn take(&mut self, store: &SnapshotStore, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = match &mut self.phase {
                Phase::File => {
                    let n = if self.head.len() < HEADER_LEN {
                        buf.len().min(HEADER_LEN - self.head.len())
                    } else {
                        buf.len()
                    };
                    self.file.write_all(&buf[..n])?;
                    if self.head.len() < HEADER_LEN {
                        self.head.extend_from_slice(&buf[..n]);
                        if self.head.len() == HEADER_LEN {
                            self.phase = chunked_phase(&self.head, self.limit)?;
                        }
                    }
                    n
                }
                Phase::List {
                    file_len,
                    body_end,
                    list,
                    ..
                } => {
                    let left = *file_len - self.received;
                    let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    self.file.write_all(&buf[..n])?;
                    if self.received < *body_end {
                        let in_body =
                            usize::try_from(*body_end - self.received).map_or(n, |b| b.min(n));
                        list.extend_from_slice(&buf[..in_body]);
                    }
                    n
                }
                Phase::Chunks(c) => c.take(buf)?,
            };
            buf = &buf[n..];
            self.received += n as u64;
            if let Phase::List {
                file_len,
                raw_len,
                list,
                ..
            } = &self.phase
            {
                if self.received == *file_len {
                    let decoded = decode_list(list, *raw_len)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    let (parts, _) = parts(&decoded, *file_len);
                    let mut import = ChunkImport::new(store);
                    let missing = import
                        .missing(parts.iter().map(|p| &p.hash))
                        .into_iter()
                        .collect();
                    self.phase = Phase::Chunks(Box::new(ChunkPhase {
                        parts,
                        next: 0,
                        buf: Vec::new(),
                        missing,
                        import,
                        skipped: 0,
                    }));
                }
            }
        }
        Ok(())
    }

    /// The stream is complete: commits the file through the store's ingest (after the chunks,
    /// for a chunked file), which verifies it first.
    pub(crate) fn finish(self, store: &SnapshotStore) -> Result<Ingested, Error> {
        match self.phase {
            Phase::File => Ok(store.finish_ingest(self.file)?),
            Phase::List { file_len, .. } => Err(Error::Incomplete(format!(
                "the stream ended after {} of the file's {file_len} bytes",
                self.received
            ))),
            Phase::Chunks(c) => {
                if let Some(part) = c.parts.get(c.next) {
                    return Err(Error::Incomplete(format!(
                        "the stream ended before chunk {} ({} of {} distinct chunks received)",
                        to_hex(&part.hash),
                        c.next,
                        c.parts.len()
                    )));
                }
                tracing::info!(
                    chunks = c.parts.len(),
                    written = c.parts.len() as u64 - c.skipped,
                    bytes_written = c.import.bytes_added(),
                    "received chunked snapshot"
                );
                c.import
                    .finish_ingest(store, self.file)
                    .map_err(|e| Error::ChunkImport(Box::new(e)))
            }
        }
    }
}

/// What follows a whole header: the list phase for a chunked file, else the file as it is.
fn chunked_phase(head: &[u8], limit: u64) -> io::Result<Phase> {
    let Ok(header) = Header::decode(head) else {
        return Ok(Phase::File);
    };
    let Ok(file_len) = header.file_len() else {
        return Ok(Phase::File);
    };
    if !header.flags.contains(Flags::CHUNKED) {
        return Ok(Phase::File);
    }
    if header.raw_len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a chunked snapshot of {} bytes, more than the {limit} accepted",
                header.raw_len
            ),
        ));
    }
    if header.body_len > MAX_LIST {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a chunk list of {} bytes, more than any list ({MAX_LIST})",
                header.body_len
            ),
        ));
    }
    Ok(Phase::List {
        file_len,
        body_end: HEADER_LEN as u64 + header.body_len,
        raw_len: header.raw_len,
        list: Vec::new(),
    })
}

impl ChunkPhase {
    /// Takes bytes of the current chunk; returns how many.
    fn take(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(part) = self.parts.get(self.next).copied() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bytes past the last chunk of the snapshot",
            ));
        };
        let want = part.len as usize - self.buf.len();
        let n = want.min(buf.len());
        self.buf.extend_from_slice(&buf[..n]);
        if self.buf.len() == part.len as usize {
            if self.missing.contains(&part.hash) {
                self.import
                    .add(&part.hash, &self.buf)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            } else {
                self.skipped += 1;
            }
            self.buf.clear();
            self.next += 1;
        }
        Ok(n)
    }
}
