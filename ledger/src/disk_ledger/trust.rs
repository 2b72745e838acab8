//! What the ledger accepts from its directory (docs/LEDGER.md, "Trust rules").
//!
//! Every chunk file is opened through [`Untrusted`]: relative to the ledger directory's fd,
//! no symbolic link, regular files only, at most [`MAX_CHUNK_FILE`] bytes, and (for a sealed
//! or live chunk) its magic checked before anything else is read; reads are buffered `pread`s,
//! never a map. Its bytes are then believed only once verified:
//! - a sealed chunk ([`read_sealed`]) in full: check bytes, consecutive indices, every
//!   signature tx signing the recomputed root with a trusted key, its last entry a signature,
//!   its range the one its name gives, and its links (the frontier digests before its first
//!   and after its last entry) the ones its neighbours or the ledger's records give. A chunk
//!   the ledger already verified (or wrote) is read again against its recorded end link
//!   instead of every signature: the recomputed frontier commits to every entry. Nothing
//!   read from it reaches the caller before all of that passed;
//! - the live open chunk ([`read_open`]): its header is the one the ledger wrote, and every
//!   entry read has the leaf the ledger wrote;
//! - the open chunk a crash left ([`recover_open`]): its header is the one its start and the
//!   chunk before it give, its signatures verify, and whatever follows its last complete,
//!   verified signature interval is what a torn write leaves (a cut-short entry, or an entry
//!   failing its check followed only by zeros) and nothing else.

use std::io::{self, BufReader};
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use snapseal_persist::internals::fs::{DirHandle, Expect, Untrusted, UntrustedError};
use snapseal_persist::internals::Escaped;
use snapseal_persist::Hash;

use super::chunk::{
    encode_header, verify_stream, ChunkError, ChunkName, ChunkReader, ReadError, SignedRun,
    VerifiedChunk, MAGIC,
};
use super::{frontier_digest, LedgerError};
use crate::frontier::Frontier;
use crate::ledger::TxKind;

/// Largest chunk file the ledger opens; a larger one is refused after one `fstat`, before a
/// byte is read. A sealed chunk holds at most the seal threshold ([`MAX_CHUNK_BYTES`] at most)
/// plus one signature interval of entries, and the ledger refuses to append past this size, so
/// every chunk it writes fits.
pub const MAX_CHUNK_FILE: u64 = 256 << 20;

/// Largest seal threshold (`chunk_bytes`) the ledger accepts: half the file cap, leaving the
/// other half for the signature interval that ends the chunk.
pub const MAX_CHUNK_BYTES: u64 = MAX_CHUNK_FILE / 2;

/// A sealed or live chunk: capped, starting with the magic.
const CHUNK: Expect = Expect::new("ledger chunk", MAX_CHUNK_FILE).with_magic(MAGIC);

/// A crashed run's open chunk, whose header may itself be torn: capped only; its header is
/// compared whole with the expected one before anything else is read.
const CRASHED_CHUNK: Expect = Expect::new("ledger chunk", MAX_CHUNK_FILE);

/// Read buffer when streaming a chunk.
const READ_BUF: usize = 256 << 10;

/// Opens chunk file `name` of `dir` through [`Untrusted`]: a regular file (no link followed)
/// of at most [`MAX_CHUNK_FILE`] bytes starting with the chunk magic. `Ok(None)` if missing.
pub fn open_chunk(dir: &dyn DirHandle, name: &str) -> Result<Option<Untrusted>, UntrustedError> {
    Untrusted::open_in(dir, name, CHUNK)
}

/// Reads a whole chunk file of the ledger directory (for tools and tests): through
/// [`Untrusted`] with the chunk cap, and for a sealed chunk's name its magic (an open or
/// pending chunk may be torn, so other names are only capped). What the bytes say is
/// verified by whoever uses them ([`verify_chunk`](super::verify_chunk)).
pub fn read_chunk_file(dir: &dyn DirHandle, name: &str) -> io::Result<Vec<u8>> {
    let sealed = matches!(ChunkName::parse(name), Some(ChunkName::Committed { .. }));
    let expect = if sealed { CHUNK } else { CRASHED_CHUNK };
    match Untrusted::open_in(dir, name, expect) {
        Ok(Some(file)) => file.read_all().map_err(io::Error::other),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no such file", Escaped::path(&dir.path().join(name))),
        )),
        Err(e) => Err(io::Error::other(e)),
    }
}

/// The ledger error for bytes read from `path` that failed.
pub(crate) fn read_failed(path: &Path, e: ReadError) -> LedgerError {
    match e {
        ReadError::Bad(reason) => LedgerError::Chunk {
            path: path.to_path_buf(),
            reason,
        },
        // An `Untrusted` reader's failures carry the `UntrustedError` (truncated meanwhile,
        // a failed pread), which already names the file.
        ReadError::Io(e) => match e.get_ref().map(|inner| inner.is::<UntrustedError>()) {
            Some(true) => match e
                .into_inner()
                .map(|inner| inner.downcast::<UntrustedError>())
            {
                Some(Ok(u)) => LedgerError::Open(*u),
                _ => LedgerError::Refused(format!("{}: a read failed", Escaped::path(path))),
            },
            _ => LedgerError::Io {
                path: path.to_path_buf(),
                step: "reading",
                cause: e,
            },
        },
    }
}

fn link_error(path: &Path, what: &str) -> LedgerError {
    LedgerError::Chunk {
        path: path.to_path_buf(),
        reason: ChunkError::Link(what.to_string()),
    }
}

/// Opens `name` as `expect` says; a missing file is an error (the ledger listed it).
fn must_open(dir: &dyn DirHandle, name: &str, expect: Expect) -> Result<Untrusted, LedgerError> {
    Untrusted::open_in(dir, name, expect)?.ok_or_else(|| LedgerError::Io {
        path: dir.path().join(name),
        step: "opening",
        cause: io::ErrorKind::NotFound.into(),
    })
}

/// What a reader expects of sealed chunk `start ..= end` before reading it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Want<'a> {
    /// First index (from its name).
    pub(crate) start: u64,
    /// Last index (from its name).
    pub(crate) end: u64,
    /// Digest of the frontier it must start from: where the chunk before it ends.
    pub(crate) after: Option<Hash>,
    /// What vouches for its entries.
    pub(crate) trust: Trust<'a>,
}

/// What vouches for a sealed chunk's entries.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Trust<'a> {
    /// Its signatures, each checked against these keys.
    Keys(&'a [VerifyingKey]),
    /// The digest of the frontier it ends with, recorded when the ledger verified it with its
    /// keys or wrote it: the recomputed frontier must match it, which binds every entry to
    /// what was verified then, without checking each signature again.
    Recorded(Hash),
}

/// Reads sealed chunk `want.start ..= want.end` of `dir` and verifies it in full (see the
/// module docs). `keep` picks what to return from each entry (index, tx, leaf); it is only
/// returned once the whole chunk verified.
pub(crate) fn read_sealed<T>(
    dir: &dyn DirHandle,
    want: &Want<'_>,
    mut keep: impl FnMut(u64, TxKind, &Hash) -> Option<T>,
) -> Result<(VerifiedChunk, Vec<T>), LedgerError> {
    let name = ChunkName::Committed {
        start: want.start,
        end: want.end,
    }
    .file_name();
    let path = dir.path().join(&name);
    let file = must_open(dir, &name, CHUNK)?;
    let mut kept = Vec::new();
    let src = BufReader::with_capacity(READ_BUF, file.reader());
    let range = Some((want.start, want.end));
    let keys = match want.trust {
        Trust::Keys(keys) => Some(keys),
        Trust::Recorded(_) => None,
    };
    let v = verify_stream(src, file.len(), keys, range, |idx, tx, leaf| {
        if let Some(t) = keep(idx, tx, leaf) {
            kept.push(t);
        }
    })
    .map_err(|e| read_failed(&path, e))?;
    if want
        .after
        .is_some_and(|a| a != frontier_digest(&v.start_frontier))
    {
        return Err(link_error(
            &path,
            "does not start where the chunk before it ends: it belongs to another history",
        ));
    }
    if matches!(want.trust, Trust::Recorded(e) if e != frontier_digest(&v.end_frontier)) {
        return Err(link_error(
            &path,
            "does not end where it did when the ledger verified it: the file was replaced",
        ));
    }
    Ok((v, kept))
}

/// The live open chunk as a reader needs it: entries `first ..= first + leaves.len() - 1`,
/// whose leaves the ledger wrote.
#[derive(Clone, Debug)]
pub(crate) struct OpenRead {
    /// The chunk's start.
    pub(crate) start: u64,
    /// Digest of the frontier at its start (its header's).
    pub(crate) after: Hash,
    /// First entry wanted.
    pub(crate) first: u64,
    /// The leaves the ledger wrote for the wanted entries.
    pub(crate) leaves: Vec<Hash>,
}

/// Reads the wanted entries of the live open chunk, checking its header and each entry's
/// leaf against what the ledger wrote before visiting it. Entries after the last wanted one
/// are not read (a concurrent append may be half-way through one). A missing file is an
/// [`LedgerError::Io`] of kind `NotFound` (a concurrent commit sealed it).
pub(crate) fn read_open(
    dir: &dyn DirHandle,
    want: &OpenRead,
    mut visit: impl FnMut(u64, &TxKind),
) -> Result<(), LedgerError> {
    let name = ChunkName::Open { start: want.start }.file_name();
    let path = dir.path().join(&name);
    let file = must_open(dir, &name, CHUNK)?;
    let src = BufReader::with_capacity(READ_BUF, file.reader());
    let mut reader = ChunkReader::new(src, file.len()).map_err(|e| read_failed(&path, e))?;
    let header = reader.header();
    if header.start != want.start || frontier_digest(&header.frontier) != want.after {
        return Err(link_error(
            &path,
            "its header is not the one the ledger wrote: the file was replaced",
        ));
    }
    let mut expected = want.leaves.iter().peekable();
    while expected.peek().is_some() {
        let Some(e) = reader.next_entry().map_err(|e| read_failed(&path, e))? else {
            break;
        };
        if e.idx < want.first {
            continue;
        }
        if expected.next() != Some(&e.tx.leaf(e.idx)) {
            return Err(link_error(
                &path,
                &format!("entry {} is not the one the ledger wrote", e.idx),
            ));
        }
        visit(e.idx, &e.tx);
    }
    match expected.len() {
        0 => Ok(()),
        left => Err(LedgerError::Chunk {
            path,
            reason: ChunkError::End(format!(
                "ends before entry {}, which the ledger wrote",
                want.first + (want.leaves.len() - left) as u64
            )),
        }),
    }
}

/// What [`recover_open`] kept of a crashed run's open chunk.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The last signature tx kept.
    pub(crate) end: u64,
    /// Bytes of the file up to and including that entry.
    pub(crate) len: u64,
    /// The frontier after it.
    pub(crate) end_frontier: Frontier,
    /// The file, open: the kept bytes are copied from it.
    pub(crate) file: Untrusted,
}

/// Reads the open chunk `start` a crash (or a failed write) left in `dir`, whose header must
/// be the one `start` and the frontier `before` (where the chunk before it ends) give, and
/// returns what it holds up to its last complete, verified signature interval; `None` when
/// that is nothing (or the file is gone). Refused: a header from another history, a signature
/// that does not verify, an entry out of sequence or malformed behind valid check bytes, and
/// damage followed by more data (see the module docs): the entries after it were committed,
/// and cutting them off would lose them silently.
pub(crate) fn recover_open(
    dir: &dyn DirHandle,
    start: u64,
    before: &Frontier,
    keys: &[VerifyingKey],
) -> Result<Option<Recovered>, LedgerError> {
    let name = ChunkName::Open { start }.file_name();
    let path = dir.path().join(&name);
    let Some(file) = Untrusted::open_in(dir, &name, CRASHED_CHUNK)? else {
        return Ok(None);
    };
    let expected = encode_header(start, before);
    let head_len = usize::try_from(file.len()).map_or(expected.len(), |l| l.min(expected.len()));
    let head = file.read_range(0, head_len)?;
    if head != expected[..head_len] || head_len < expected.len() {
        let first_diff = head
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(head_len);
        if zero_from(&file, first_diff as u64)? {
            // Torn before its header was whole: no entry of it was ever durable.
            return Ok(None);
        }
        return Err(link_error(
            &path,
            "its header is not the one its start and the chunk before it give: it belongs to \
             another history, or is damaged",
        ));
    }
    let src = BufReader::with_capacity(READ_BUF, file.reader());
    let mut reader = ChunkReader::new(src, file.len()).map_err(|e| read_failed(&path, e))?;
    let mut run = SignedRun::new(before.clone(), Some(keys));
    let mut kept: Option<(u64, u64, Frontier)> = None;
    loop {
        match reader.next_entry() {
            Ok(None) | Err(ReadError::Bad(ChunkError::Torn { .. })) => break,
            Ok(Some(e)) => {
                run.push(e.idx, &e.tx)
                    .map_err(|reason| LedgerError::Chunk {
                        path: path.clone(),
                        reason,
                    })?;
                if run.ends_signed() {
                    kept = Some((e.idx, e.end, run.frontier().clone()));
                }
            }
            Err(ReadError::Bad(ChunkError::Entry { offset, .. }))
                if reader.unchecked_end().is_some() =>
            {
                let end = reader.unchecked_end().unwrap_or(u64::MAX);
                if end >= file.len() || zero_from(&file, end)? {
                    break;
                }
                return Err(LedgerError::Chunk {
                    path,
                    reason: ChunkError::Entry {
                        offset,
                        why: "fails its check bytes and data follows it: damage, not a torn \
                              write",
                    },
                });
            }
            Err(e) => return Err(read_failed(&path, e)),
        }
    }
    Ok(kept.map(|(end, len, end_frontier)| Recovered {
        end,
        len,
        end_frontier,
        file,
    }))
}

/// True when every byte of `file` from `from` on is zero (or there is none): what a crash
/// leaves when a file's size reached the disk and its data did not.
fn zero_from(file: &Untrusted, from: u64) -> Result<bool, UntrustedError> {
    let mut buf = vec![0u8; 64 << 10];
    let mut at = from;
    while at < file.len() {
        let n = usize::try_from(file.len() - at).map_or(buf.len(), |n| n.min(buf.len()));
        file.read_exact_at(at, &mut buf[..n])?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}
