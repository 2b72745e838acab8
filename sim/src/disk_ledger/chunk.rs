//! The chunk file: names, byte layout, parsing and verification against the signed roots.
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
//! The header carries the Merkle frontier at the chunk's start, so a chunk is verifiable on
//! its own: the roots its signature txs sign are recomputed from that frontier and its
//! entries, and every committed chunk ends with a signature tx.

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use snapseal_persist::receipt::{key_id, leaf_hash, verify_signed_root, SignedRoot};
use snapseal_persist::Hash;

use crate::frontier::Frontier;
use crate::ledger::TxKind;

const MAGIC: &[u8; 8] = b"SSLEDGR1";
/// Largest entry payload (a 1 MiB value plus its fields).
pub(crate) const MAX_PAYLOAD: usize = (1 << 20) + 64;
const CHECK_LEN: usize = 8;

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
    /// An entry at this byte offset is torn or corrupt.
    #[error("bad entry at byte {offset}: {why}")]
    Entry {
        /// Byte offset of the entry.
        offset: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// Entries are not numbered consecutively from the header's start.
    #[error("entry at byte {offset} has index {found}, expected {expected}")]
    Sequence {
        /// Byte offset of the entry.
        offset: usize,
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
}

fn check8(bytes: &[u8]) -> [u8; CHECK_LEN] {
    let mut c = [0u8; CHECK_LEN];
    c.copy_from_slice(&blake3::hash(bytes).as_bytes()[..CHECK_LEN]);
    c
}

/// The header bytes of a chunk starting at `start` whose tree before it is `frontier`.
pub(crate) fn encode_header(start: u64, frontier: &Frontier) -> Vec<u8> {
    let mut h = Vec::with_capacity(32 + 32 * frontier.blocks().len());
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
    pub(crate) len: usize,
}

pub(crate) fn decode_header(bytes: &[u8]) -> Result<Header, ChunkError> {
    let mut b = bytes;
    if take(&mut b, 8) != Some(&MAGIC[..]) {
        return Err(ChunkError::Header("missing magic"));
    }
    let start = take_u64(&mut b).ok_or(ChunkError::Header("short"))?;
    let flen = take_u64(&mut b).ok_or(ChunkError::Header("short"))?;
    if start == 0 || flen != start - 1 {
        return Err(ChunkError::Header("frontier size is not start - 1"));
    }
    let mut blocks = Vec::new();
    for _ in 0..flen.count_ones() {
        blocks.push(take_hash(&mut b).ok_or(ChunkError::Header("short"))?);
    }
    let len = bytes.len() - b.len();
    let check = take(&mut b, CHECK_LEN).ok_or(ChunkError::Header("short"))?;
    if check != check8(&bytes[..len]) {
        return Err(ChunkError::Header("check mismatch"));
    }
    let frontier = Frontier::from_parts(flen, blocks).ok_or(ChunkError::Header("frontier"))?;
    Ok(Header {
        start,
        frontier,
        len: len + CHECK_LEN,
    })
}

/// Walks the entries after the header, calling `f(idx, tx, end_offset)` for each valid one.
/// Returns the offset where the valid entries end and the first error (a torn or corrupt
/// entry, or an index out of sequence), if any.
pub(crate) fn walk_entries(
    bytes: &[u8],
    header: &Header,
    mut f: impl FnMut(u64, TxKind, usize),
) -> (usize, Option<ChunkError>) {
    let mut off = header.len;
    let mut expected = header.start;
    while off < bytes.len() {
        let err = |why| ChunkError::Entry { offset: off, why };
        let Some(len_bytes) = bytes.get(off..off + 4) else {
            return (off, Some(err("torn length")));
        };
        let len =
            u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        if len > MAX_PAYLOAD {
            return (off, Some(err("length beyond the cap")));
        }
        let p_end = off + 4 + len;
        let (Some(payload), Some(check)) = (
            bytes.get(off + 4..p_end),
            bytes.get(p_end..p_end + CHECK_LEN),
        ) else {
            return (off, Some(err("torn entry")));
        };
        if check != check8(payload) {
            return (off, Some(err("check mismatch")));
        }
        let Some((idx, tx)) = decode_payload(payload) else {
            return (off, Some(err("malformed payload")));
        };
        if idx != expected {
            return (
                off,
                Some(ChunkError::Sequence {
                    offset: off,
                    found: idx,
                    expected,
                }),
            );
        }
        off = p_end + CHECK_LEN;
        f(idx, tx, off);
        expected += 1;
    }
    (off, None)
}

/// The leaf hash of tx `idx`.
pub(crate) fn leaf_of(idx: u64, tx: &TxKind) -> Hash {
    leaf_hash(&tx.digest(idx), &tx.claims_digest())
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

/// Verifies the bytes of a sealed chunk: header, every entry, indices consecutive, every
/// signature tx signs (with one of `keys`) the root recomputed from the header's frontier and
/// the entries before it, and the last entry is a signature tx. With `range`, the chunk must
/// span exactly that range.
pub fn verify_chunk(
    bytes: &[u8],
    keys: &[VerifyingKey],
    range: Option<(u64, u64)>,
) -> Result<VerifiedChunk, ChunkError> {
    let header = decode_header(bytes)?;
    let mut frontier = header.frontier.clone();
    let mut signatures = Vec::new();
    let mut last: Option<(u64, bool)> = None;
    let mut bad: Option<ChunkError> = None;
    let (_, err) = walk_entries(bytes, &header, |idx, tx, _| {
        if bad.is_some() {
            return;
        }
        if let TxKind::Signature(s) = &tx {
            let why = if s.sig_idx != idx {
                Some(format!("names sig_idx {}", s.sig_idx))
            } else if s.root != frontier.root() {
                Some("signs a root other than the tree before it".to_string())
            } else {
                match keys.iter().find(|k| key_id(k) == s.key_id) {
                    None => Some("signed by a key that is not trusted".to_string()),
                    Some(k) => verify_signed_root(k, s).err().map(|e| e.to_string()),
                }
            };
            if let Some(why) = why {
                bad = Some(ChunkError::Signature { idx, why });
                return;
            }
            signatures.push(idx);
        }
        frontier.push(leaf_of(idx, &tx));
        last = Some((idx, matches!(tx, TxKind::Signature(_))));
    });
    if let Some(e) = err.or(bad) {
        return Err(e);
    }
    let Some((end, true)) = last else {
        return Err(ChunkError::End("does not end with a signature tx".into()));
    };
    if let Some((s, e)) = range {
        if (s, e) != (header.start, end) {
            return Err(ChunkError::End(format!(
                "holds {}..={end}, its name says {s}..={e}",
                header.start
            )));
        }
    }
    Ok(VerifiedChunk {
        start: header.start,
        end,
        start_frontier: header.frontier,
        end_frontier: frontier,
        signatures,
    })
}
