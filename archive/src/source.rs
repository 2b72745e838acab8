//! The ledger seam: where chunks come from and how one is checked.

use std::io::{self, Read};

use snapseal_persist::internals::Escaped;
use snapseal_persist::Hash;

/// One sealed ledger chunk: txs `start ..= end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkRef {
    /// First index.
    pub start: u64,
    /// Last index.
    pub end: u64,
    /// Size in bytes.
    pub len: u64,
}

impl ChunkRef {
    /// The sealed chunk's file name: `ledger_<start>-<end>.committed`.
    pub fn file_name(&self) -> String {
        format!("ledger_{}-{}.committed", self.start, self.end)
    }

    /// Parses a sealed chunk's file name into `(start, end)`: decimal without leading zeros,
    /// `1 <= start <= end`.
    pub fn parse_name(name: &str) -> Option<(u64, u64)> {
        let r = name.strip_prefix("ledger_")?.strip_suffix(".committed")?;
        let (a, b) = r.split_once('-')?;
        let num = |s: &str| {
            (!s.is_empty() && !s.starts_with('0') && s.bytes().all(|c| c.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let (a, b) = (num(a)?, num(b)?);
        (a <= b).then_some((a, b))
    }
}

/// A source failure: what was being read, and why it failed.
#[derive(Debug, thiserror::Error)]
#[error("{}", Escaped::str(.what))]
pub struct SourceError {
    /// What was being read.
    pub what: String,
    /// The error (for a file refused or cut short: one naming it).
    #[source]
    pub source: io::Error,
}

/// One of a source's [other files](ArtifactSource::other_files), open for reading: a fixed
/// size read by offset (`pread`, never a map), so a file cut short by another process
/// meanwhile is an error naming it, not a `SIGBUS`.
pub trait OtherFile {
    /// Its size when opened: exactly what is read.
    fn size(&self) -> u64;

    /// Fills `buf` with the bytes at `offset`; an error (naming the file) when they are not
    /// all there any more.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// Gives ledger entries with their proof material: sealed chunks (each carries the Merkle
/// frontier at its start and ends with a signature tx, so it verifies on its own).
///
/// An implementation over files opens each as hostile input (no link followed, regular files
/// only, size capped) and reads it with `pread` (never a map): a file truncated by another
/// process is then an error naming it, not a `SIGBUS`.
pub trait ArtifactSource {
    /// The sealed chunks, sorted by start.
    fn chunks(&self) -> Result<Vec<ChunkRef>, SourceError>;

    /// The whole chunk; refused (before anything is read) when it is larger than `max_len`.
    fn read_chunk(&self, chunk: &ChunkRef, max_len: u64) -> Result<Vec<u8>, SourceError>;

    /// Every other regular file the source holds (open chunk, pending chunks, anything
    /// else), as `(name, len)` sorted by name: what the debug level adds. Default: none.
    fn other_files(&self) -> Result<Vec<(String, u64)>, SourceError> {
        Ok(Vec::new())
    }

    /// Opens one of [`other_files`](Self::other_files) (a regular file, no link followed,
    /// at most `max_len` bytes).
    fn open_other(&self, name: &str, max_len: u64) -> Result<Box<dyn OtherFile>, SourceError> {
        let _ = max_len;
        Err(SourceError {
            what: name.to_string(),
            source: io::Error::new(io::ErrorKind::NotFound, "no such file"),
        })
    }

    /// The highest index the source holds sealed (0 when it holds none).
    fn commit_idx(&self) -> Result<u64, SourceError> {
        Ok(self.chunks()?.last().map_or(0, |c| c.end))
    }

    /// The chunks covering entries `a ..= b` (`a > b`: none), contiguous; the first range
    /// not covered otherwise, as `(from, to)`.
    fn covering(&self, a: u64, b: u64) -> Result<Result<Vec<ChunkRef>, (u64, u64)>, SourceError> {
        Ok(cover(&self.chunks()?, a, b))
    }
}

/// The chunks of `chunks` (sorted) covering `a ..= b`, or the first missing range.
pub(crate) fn cover(chunks: &[ChunkRef], a: u64, b: u64) -> Result<Vec<ChunkRef>, (u64, u64)> {
    let mut out = Vec::new();
    // The first index still to cover; `None` once past `u64::MAX`.
    let mut next = Some(a);
    for c in chunks {
        let Some(n) = next.filter(|&n| n <= b) else {
            break;
        };
        if c.end < n {
            continue;
        }
        if c.start > n {
            return Err((n, (c.start - 1).min(b)));
        }
        out.push(*c);
        next = c.end.checked_add(1);
    }
    match next {
        Some(n) if n <= b => Err((n, b)),
        _ => Ok(out),
    }
}

/// What a verified chunk links to: digests of the Merkle frontier before its first and after
/// its last entry. Consecutive chunks of one ledger link up (`end` of one is `start` of the
/// next).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLinks {
    /// Frontier digest before the first entry.
    pub start: Hash,
    /// Frontier digest after the last entry.
    pub end: Hash,
}

/// What verifying a chunk established: its links, and what each of its signature txs signs
/// (which ties it to a snapshot's receipt: that proves the root its ledger signed at one
/// index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedChunk {
    /// The chunk's links.
    pub links: ChunkLinks,
    /// `(index, root)` of each signature tx: the Merkle root over entries `1 ..= index - 1`
    /// it signs (verified: recomputed from the chunk).
    pub signed: Vec<(u64, Hash)>,
}

/// Why a chunk was not verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkCheckError {
    /// The bytes are not a valid chunk of that range signed by a trusted key.
    #[error("{0}")]
    Invalid(String),
    /// Reading them failed.
    #[error("reading the chunk failed")]
    Read(#[source] io::Error),
}

/// Checks chunks against the trusted keys.
pub trait ChunkVerifier {
    /// Verifies the chunk named `start ..= end`, reading exactly `len` bytes from `src` as a
    /// stream, in bounded memory: its header (magic first) before anything else, so junk is
    /// refused after a few bytes; then every entry; every signature tx must sign the root
    /// recomputed from the chunk, with a trusted key; the chunk must span exactly the range.
    fn verify_chunk(
        &self,
        src: &mut dyn Read,
        len: u64,
        start: u64,
        end: u64,
    ) -> Result<CheckedChunk, ChunkCheckError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_finds_the_chunks_or_names_the_first_gap() {
        let c = |start, end| ChunkRef { start, end, len: 0 };
        let chunks = [c(1, 10), c(11, 20), c(31, 40)];
        assert_eq!(cover(&chunks, 5, 20), Ok(vec![c(1, 10), c(11, 20)]));
        assert_eq!(cover(&chunks, 5, 35), Err((21, 30)));
        assert_eq!(cover(&chunks, 21, 25), Err((21, 25)));
        assert_eq!(cover(&chunks, 35, 50), Err((41, 50)));
        assert_eq!(cover(&chunks, 41, 40), Ok(vec![]));
        assert_eq!(
            cover(&[c(1, u64::MAX)], 5, u64::MAX),
            Ok(vec![c(1, u64::MAX)])
        );
        assert_eq!(ChunkRef::parse_name(&c(3, 9).file_name()), Some((3, 9)));
        assert_eq!(ChunkRef::parse_name("ledger_03-9.committed"), None);
    }
}
