//! The chunk file: names, byte layout, parsing and verification against the signed roots
//! (docs/LEDGER.md describes the format and the trust rules for an independent reader).
//!
//! ```text
//! header: "SSLEDGR1" | start u64 | frontier_len u64 | blocks (32 each, one per set bit of
//!         frontier_len, which is start - 1) | check (8: BLAKE3 of what precedes, truncated)
//! entry:  payload_len u32 | payload | check (8: BLAKE3 of payload, truncated)
//! payload: idx u64 | tag u8 | fields (little-endian; tag 0 write: key u64, len u64, value;
//!          1 evidence: snapshot_idx u64, digest 32; 2 signature: sig_idx u64, root 32,
//!          key_id 8, signature 64)
//! ```
//!
//! The check bytes only catch accidents (a torn write, bit rot): anyone can recompute them.
//! What makes a chunk trustworthy is its signature txs: the header carries the Merkle frontier
//! at the chunk's start, so the root each signature tx signs is recomputed from that frontier
//! and the entries before it, and must carry a trusted key's signature. A sealed chunk ends
//! with a signature tx, so every entry in it is covered.
//!
//! Parsing is streamed (`ChunkReader`): one entry in memory at a time, whatever the chunk's
//! size, from any [`Read`] whose length is known up front (a byte slice, or a file opened
//! through `snapseal_persist::internals::fs::Untrusted`).

use std::io::{self, Read};
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use snapseal_persist::internals::receipt::{key_id, verify_signed_root};
use snapseal_persist::receipt::SignedRoot;
use snapseal_persist::Hash;

use crate::frontier::Frontier;
use crate::ledger::TxKind;

/// The first 8 bytes of every chunk file.
pub const MAGIC: &[u8; 8] = b"SSLEDGR1";
/// Largest entry payload (a 1 MiB value plus its fields).
pub(crate) const MAX_PAYLOAD: usize = (1 << 20) + 64;
const CHECK_LEN: usize = 8;
/// Header bytes before the frontier blocks: magic, start, frontier size.
const HEADER_FIXED: usize = 24;

/// A chunk file name: `ledger_<start>` while open, `ledger_<start>-<end>.committed` once
/// sealed, `ledger_<start>-<end>.pending` while being written whole (import, recovery).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChunkName {
    /// Being appended to; holds only committed entries, possibly with a torn tail.
    Open {
        /// First index.
        start: u64,
    },
    /// Sealed: complete, fsynced, every entry committed, ends with a signature.
    Committed {
        /// First index.
        start: u64,
        /// Last index.
        end: u64,
    },
    /// A whole chunk being written; stale after a crash.
    Pending {
        /// First index.
        start: u64,
        /// Last index.
        end: u64,
    },
}

impl ChunkName {
    /// Parses a file name; `None` if it is not a chunk name.
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("ledger_")?;
        let num = |s: &str| -> Option<u64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0') {
                return None;
            }
            s.parse().ok()
        };
        let range = |s: &str| -> Option<(u64, u64)> {
            let (a, b) = s.split_once('-')?;
            let (a, b) = (num(a)?, num(b)?);
            (a <= b).then_some((a, b))
        };
        if let Some(r) = rest.strip_suffix(".committed") {
            let (start, end) = range(r)?;
            Some(ChunkName::Committed { start, end })
        } else if let Some(r) = rest.strip_suffix(".pending") {
            let (start, end) = range(r)?;
            Some(ChunkName::Pending { start, end })
        } else {
            Some(ChunkName::Open { start: num(rest)? })
        }
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        match self {
            ChunkName::Open { start } => format!("ledger_{start}"),
            ChunkName::Committed { start, end } => format!("ledger_{start}-{end}.committed"),
            ChunkName::Pending { start, end } => format!("ledger_{start}-{end}.pending"),
        }
    }
}

/// Why chunk bytes were refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkError {
    /// The header is short, has the wrong magic, or fails its check.
    #[error("bad chunk header: {0}")]
    Header(&'static str),
    /// The file ends inside the entry at this byte offset (what a torn append leaves).
    #[error("the entry at byte {offset} is cut short by the end of the file")]
    Torn {
        /// Byte offset of the entry.
        offset: u64,
    },
    /// The entry at this byte offset fails its check bytes or does not parse.
    #[error("bad entry at byte {offset}: {why}")]
    Entry {
        /// Byte offset of the entry.
        offset: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// Entries are not numbered consecutively from the header's start.
    #[error("entry at byte {offset} has index {found}, expected {expected}")]
    Sequence {
        /// Byte offset of the entry.
        offset: u64,
        /// Index found.
        found: u64,
        /// Index expected.
        expected: u64,
    },
    /// A signature tx does not sign the root recomputed from the chunk.
    #[error("signature tx {idx}: {why}")]
    Signature {
        /// Index of the signature tx.
        idx: u64,
        /// What is wrong.
        why: String,
    },
    /// The chunk does not end where its name says, or not with a signature tx.
    #[error("chunk end: {0}")]
    End(String),
    /// The chunk does not continue the one before it (or does not end where the ledger
    /// recorded it ending): it belongs to another history, or was replaced.
    #[error("{0}")]
    Link(String),
}

fn check8(bytes: &[u8]) -> [u8; CHECK_LEN] {
    let mut c = [0u8; CHECK_LEN];
    c.copy_from_slice(&blake3::hash(bytes).as_bytes()[..CHECK_LEN]);
    c
}

/// The header bytes of a chunk starting at `start` whose tree before it is `frontier`.
pub(crate) fn encode_header(start: u64, frontier: &Frontier) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_FIXED + CHECK_LEN + 32 * frontier.blocks().len());
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&start.to_le_bytes());
    h.extend_from_slice(&frontier.len().to_le_bytes());
    for b in frontier.blocks() {
        h.extend_from_slice(b);
    }
    let c = check8(&h);
    h.extend_from_slice(&c);
    h
}

/// Appends the encoding of tx `idx` to `out`.
pub(crate) fn encode_entry(idx: u64, tx: &TxKind, out: &mut Vec<u8>) {
    let mut p = Vec::with_capacity(96);
    p.extend_from_slice(&idx.to_le_bytes());
    match tx {
        TxKind::Write { key, value } => {
            p.push(0);
            p.extend_from_slice(&key.to_le_bytes());
            p.extend_from_slice(&(value.len() as u64).to_le_bytes());
            p.extend_from_slice(value);
        }
        TxKind::Evidence {
            snapshot_idx,
            digest,
        } => {
            p.push(1);
            p.extend_from_slice(&snapshot_idx.to_le_bytes());
            p.extend_from_slice(digest);
        }
        TxKind::Signature(s) => {
            p.push(2);
            p.extend_from_slice(&s.sig_idx.to_le_bytes());
            p.extend_from_slice(&s.root);
            p.extend_from_slice(&s.key_id);
            p.extend_from_slice(&s.signature);
        }
    }
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&p);
    out.extend_from_slice(&check8(&p));
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Some(head)
}

fn take_u64(b: &mut &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(take(b, 8)?.try_into().ok()?))
}

fn take_hash(b: &mut &[u8]) -> Option<Hash> {
    take(b, 32)?.try_into().ok()
}

fn decode_payload(p: &[u8]) -> Option<(u64, TxKind)> {
    let mut b = p;
    let idx = take_u64(&mut b)?;
    let tag = *take(&mut b, 1)?.first()?;
    let tx = match tag {
        0 => {
            let key = take_u64(&mut b)?;
            let len = usize::try_from(take_u64(&mut b)?).ok()?;
            TxKind::Write {
                key,
                value: Arc::from(take(&mut b, len)?),
            }
        }
        1 => TxKind::Evidence {
            snapshot_idx: take_u64(&mut b)?,
            digest: take_hash(&mut b)?,
        },
        2 => TxKind::Signature(SignedRoot {
            sig_idx: take_u64(&mut b)?,
            root: take_hash(&mut b)?,
            key_id: take(&mut b, 8)?.try_into().ok()?,
            signature: take(&mut b, 64)?.try_into().ok()?,
        }),
        _ => return None,
    };
    b.is_empty().then_some((idx, tx))
}

/// A parsed chunk header.
#[derive(Clone, Debug)]
pub(crate) struct Header {
    pub(crate) start: u64,
    pub(crate) frontier: Frontier,
    /// Its length in bytes (where the first entry starts).
    pub(crate) len: u64,
}

/// Why reading a chunk stopped: its bytes are refused, or reading them failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The bytes are refused.
    Bad(ChunkError),
    /// The read failed (for a file: an I/O error, or the file shrank while being read).
    Io(io::Error),
}

impl From<ChunkError> for ReadError {
    fn from(e: ChunkError) -> Self {
        ReadError::Bad(e)
    }
}

/// One entry as read.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) idx: u64,
    pub(crate) tx: TxKind,
    /// Byte offset just after it.
    pub(crate) end: u64,
}

/// Reads a chunk from `src`, whose length `len` is known up front: the header when created,
/// then one entry per [`next_entry`](Self::next_entry), checking lengths against `len` before
/// reading (a torn entry is recognised without reading past the end), check bytes, and that
/// indices run consecutively from the header's start. After an error it is done: every later
/// call returns `Ok(None)`.
pub(crate) struct ChunkReader<R> {
    src: R,
    len: u64,
    off: u64,
    next_idx: u64,
    header: Header,
    buf: Vec<u8>,
    /// For an entry refused because its bytes fail their check or its length is over the cap
    /// (what a torn write can leave): where it claims to end.
    unchecked_end: Option<u64>,
}

impl<R: Read> ChunkReader<R> {
    /// Reads and checks the header.
    pub(crate) fn new(mut src: R, len: u64) -> Result<Self, ReadError> {
        let header = read_header(&mut src, len)?;
        Ok(ChunkReader {
            src,
            len,
            off: header.len,
            next_idx: header.start,
            header,
            buf: Vec::new(),
            unchecked_end: None,
        })
    }

    /// The header.
    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    /// See the field of the same name.
    pub(crate) fn unchecked_end(&self) -> Option<u64> {
        self.unchecked_end
    }

    /// The next entry; `None` at the end of the chunk.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, ReadError> {
        if self.off >= self.len {
            return Ok(None);
        }
        let r = self.read_entry();
        // Done after an error: the source's position no longer matches `off`.
        self.off = match &r {
            Ok(e) => e.end,
            Err(_) => self.len,
        };
        r.map(Some)
    }

    fn read_entry(&mut self) -> Result<Entry, ReadError> {
        let offset = self.off;
        let bad = |why| ReadError::Bad(ChunkError::Entry { offset, why });
        if self.len - offset < 4 {
            return Err(ChunkError::Torn { offset }.into());
        }
        let mut len_bytes = [0u8; 4];
        self.src.read_exact(&mut len_bytes).map_err(ReadError::Io)?;
        let plen = u32::from_le_bytes(len_bytes) as usize;
        let end = offset + 4 + plen as u64 + CHECK_LEN as u64;
        if plen > MAX_PAYLOAD {
            self.unchecked_end = Some(end);
            return Err(bad("length beyond the cap"));
        }
        if end > self.len {
            return Err(ChunkError::Torn { offset }.into());
        }
        self.buf.resize(plen + CHECK_LEN, 0);
        self.src.read_exact(&mut self.buf).map_err(ReadError::Io)?;
        let (payload, check) = self.buf.split_at(plen);
        if check != check8(payload) {
            self.unchecked_end = Some(end);
            return Err(bad("check mismatch"));
        }
        let Some((idx, tx)) = decode_payload(payload) else {
            return Err(bad("malformed payload"));
        };
        if idx != self.next_idx {
            return Err(ChunkError::Sequence {
                offset,
                found: idx,
                expected: self.next_idx,
            }
            .into());
        }
        self.next_idx += 1;
        Ok(Entry { idx, tx, end })
    }
}

fn read_header(src: &mut impl Read, len: u64) -> Result<Header, ReadError> {
    let bad = |why| ReadError::Bad(ChunkError::Header(why));
    let mut fixed = [0u8; HEADER_FIXED];
    if len < MAGIC.len() as u64 {
        return Err(bad("missing magic"));
    }
    src.read_exact(&mut fixed[..MAGIC.len()])
        .map_err(ReadError::Io)?;
    if fixed[..MAGIC.len()] != MAGIC[..] {
        return Err(bad("missing magic"));
    }
    if len < HEADER_FIXED as u64 {
        return Err(bad("short"));
    }
    src.read_exact(&mut fixed[MAGIC.len()..])
        .map_err(ReadError::Io)?;
    let mut b = &fixed[MAGIC.len()..];
    let (Some(start), Some(flen)) = (take_u64(&mut b), take_u64(&mut b)) else {
        return Err(bad("short"));
    };
    if start == 0 || flen != start - 1 {
        return Err(bad("frontier size is not start - 1"));
    }
    let blocks_len = 32 * flen.count_ones() as usize;
    let header_len = (HEADER_FIXED + blocks_len + CHECK_LEN) as u64;
    if len < header_len {
        return Err(bad("short"));
    }
    let mut rest = vec![0u8; blocks_len + CHECK_LEN];
    src.read_exact(&mut rest).map_err(ReadError::Io)?;
    let (blocks_bytes, check) = rest.split_at(blocks_len);
    let mut h = blake3::Hasher::new();
    h.update(&fixed).update(blocks_bytes);
    if check != &h.finalize().as_bytes()[..CHECK_LEN] {
        return Err(bad("check mismatch"));
    }
    let mut blocks = Vec::with_capacity(blocks_len / 32);
    let mut b = blocks_bytes;
    while let Some(block) = take_hash(&mut b) {
        blocks.push(block);
    }
    let frontier = Frontier::from_parts(flen, blocks).ok_or_else(|| bad("frontier"))?;
    Ok(Header {
        start,
        frontier,
        len: header_len,
    })
}

/// Follows a chunk's entries from the frontier in its header: each signature tx must name its
/// own index and sign the root of the tree before it, with one of the trusted keys. Without
/// keys (`None`) the signatures themselves are not checked: only for a chunk whose end
/// frontier the caller compares with one recorded when the chunk was verified with keys (or
/// written by the ledger itself), which binds every entry to what was verified then.
#[derive(Debug)]
pub(crate) struct SignedRun<'k> {
    frontier: Frontier,
    keys: Option<&'k [VerifyingKey]>,
    last_is_signature: bool,
    signatures: Vec<u64>,
}

impl<'k> SignedRun<'k> {
    /// A run starting from `frontier`.
    pub(crate) fn new(frontier: Frontier, keys: Option<&'k [VerifyingKey]>) -> Self {
        SignedRun {
            frontier,
            keys,
            last_is_signature: false,
            signatures: Vec::new(),
        }
    }

    /// Checks tx `idx` (the next one) and adds its leaf, which it returns.
    pub(crate) fn push(&mut self, idx: u64, tx: &TxKind) -> Result<Hash, ChunkError> {
        if let TxKind::Signature(s) = tx {
            let why = if s.sig_idx != idx {
                Some(format!("names sig_idx {}", s.sig_idx))
            } else if s.root != self.frontier.root() {
                Some("signs a root other than the tree before it".to_string())
            } else if let Some(keys) = self.keys {
                match keys.iter().find(|k| key_id(k) == s.key_id) {
                    None => Some("signed by a key that is not trusted".to_string()),
                    Some(k) => verify_signed_root(k, s).err().map(|e| e.to_string()),
                }
            } else {
                None
            };
            if let Some(why) = why {
                return Err(ChunkError::Signature { idx, why });
            }
            self.signatures.push(idx);
        }
        let leaf = tx.leaf(idx);
        self.frontier.push(leaf);
        self.last_is_signature = matches!(tx, TxKind::Signature(_));
        Ok(leaf)
    }

    /// The frontier after the last entry pushed.
    pub(crate) fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// True when the last entry pushed is a signature tx.
    pub(crate) fn ends_signed(&self) -> bool {
        self.last_is_signature
    }
}

/// What verifying a sealed chunk established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedChunk {
    /// First index.
    pub start: u64,
    /// Last index (a signature tx).
    pub end: u64,
    /// The frontier at the chunk's start (from its header).
    pub start_frontier: Frontier,
    /// The frontier after its last entry.
    pub end_frontier: Frontier,
    /// The signature txs' indices, in order.
    pub signatures: Vec<u64>,
}

/// Streams a whole sealed chunk from `src` (`len` bytes) and verifies it as [`verify_chunk`]
/// says (the signatures only with `keys`, see [`SignedRun`]), handing each entry and its leaf
/// to `each` as it is read: before the chunk as a whole has verified, so a caller that acts
/// on entries keeps them until this returns `Ok`.
pub(crate) fn verify_stream(
    src: impl Read,
    len: u64,
    keys: Option<&[VerifyingKey]>,
    range: Option<(u64, u64)>,
    mut each: impl FnMut(u64, TxKind, &Hash),
) -> Result<VerifiedChunk, ReadError> {
    let mut reader = ChunkReader::new(src, len)?;
    let header = reader.header().clone();
    if let Some((s, _)) = range {
        if s != header.start {
            return Err(
                ChunkError::End(format!("starts at {}, its name says {s}", header.start)).into(),
            );
        }
    }
    let mut run = SignedRun::new(header.frontier.clone(), keys);
    let mut last = None;
    while let Some(e) = reader.next_entry()? {
        let leaf = run.push(e.idx, &e.tx)?;
        last = Some(e.idx);
        each(e.idx, e.tx, &leaf);
    }
    let (Some(end), true) = (last, run.ends_signed()) else {
        return Err(ChunkError::End("does not end with a signature tx".into()).into());
    };
    if let Some((s, e)) = range {
        if (s, e) != (header.start, end) {
            return Err(ChunkError::End(format!(
                "holds {}..={end}, its name says {s}..={e}",
                header.start
            ))
            .into());
        }
    }
    let SignedRun {
        frontier,
        signatures,
        ..
    } = run;
    Ok(VerifiedChunk {
        start: header.start,
        end,
        start_frontier: header.frontier,
        end_frontier: frontier,
        signatures,
    })
}

/// Verifies the bytes of a sealed chunk: header, every entry, indices consecutive, every
/// signature tx signs (with one of `keys`) the root recomputed from the header's frontier and
/// the entries before it, and the last entry is a signature tx. With `range`, the chunk must
/// span exactly that range.
pub fn verify_chunk(
    bytes: &[u8],
    keys: &[VerifyingKey],
    range: Option<(u64, u64)>,
) -> Result<VerifiedChunk, ChunkError> {
    verify_stream(bytes, bytes.len() as u64, Some(keys), range, |_, _, _| {}).map_err(|e| match e {
        ReadError::Bad(e) => e,
        // Lengths are checked before every read, so a slice never runs short.
        ReadError::Io(_) => ChunkError::Header("short"),
    })
}

/// A chunk taken apart: its start, the frontier in its header and its entries, for tools
/// and tests that build or edit chunks. [`encode`](Self::encode) recomputes every check
/// byte, which is exactly why check bytes prove nothing: only [`verify_chunk`] does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkParts {
    /// The header's start index.
    pub start: u64,
    /// The header's frontier (of the tree before `start`).
    pub frontier: Frontier,
    /// The entries, with the index each one is written with.
    pub entries: Vec<(u64, TxKind)>,
}

impl ChunkParts {
    /// Parses chunk bytes: header, check bytes and consecutive indices are checked, the
    /// signatures are not.
    pub fn decode(bytes: &[u8]) -> Result<ChunkParts, ChunkError> {
        let bad = |e| match e {
            ReadError::Bad(e) => e,
            // Lengths are checked before every read, so a slice never runs short.
            ReadError::Io(_) => ChunkError::Header("short"),
        };
        let mut reader = ChunkReader::new(bytes, bytes.len() as u64).map_err(bad)?;
        let header = reader.header().clone();
        let mut entries = Vec::new();
        while let Some(e) = reader.next_entry().map_err(bad)? {
            entries.push((e.idx, e.tx));
        }
        Ok(ChunkParts {
            start: header.start,
            frontier: header.frontier,
            entries,
        })
    }

    /// The chunk's bytes, every check recomputed. Nothing is validated: a header whose
    /// frontier does not cover `start - 1` leaves, or entries out of sequence, are written
    /// as given.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = encode_header(self.start, &self.frontier);
        for (idx, tx) in &self.entries {
            encode_entry(*idx, tx, &mut out);
        }
        out
    }
}
