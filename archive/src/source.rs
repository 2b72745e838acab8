//! The ledger seam: where chunks come from and how one is checked.

use std::io::Read;

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

    /// Parses a sealed chunk's file name into `(start, end)`.
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

/// A source failure, in the source's words.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct SourceError {
    /// What was being read.
    pub what: String,
    /// The error.
    #[source]
    pub source: std::io::Error,
}

/// Gives ledger entries with their proof material: sealed chunks (each carries the Merkle
/// frontier at its start and ends with a signature tx, so it verifies on its own).
pub trait ArtifactSource {
    /// The sealed chunks, sorted by start.
    fn chunks(&self) -> Result<Vec<ChunkRef>, SourceError>;

    /// Opens a chunk for reading (streamed; never more than a buffer in memory).
    fn open_chunk(&self, chunk: &ChunkRef) -> Result<Box<dyn Read + '_>, SourceError>;

    /// Every other regular file the source holds (open chunk, pending chunks, anything
    /// else), as `(name, len)` sorted by name: what the debug level adds. Default: none.
    fn other_files(&self) -> Result<Vec<(String, u64)>, SourceError> {
        Ok(Vec::new())
    }

    /// Opens one of [`other_files`](Self::other_files) (a regular file, no link followed).
    fn open_other(&self, name: &str) -> Result<Box<dyn Read + '_>, SourceError> {
        Err(SourceError {
            what: name.to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
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
    let mut next = a;
    for c in chunks {
        if next > b {
            break;
        }
        if c.end < next {
            continue;
        }
        if c.start > next {
            return Err((next, (c.start - 1).min(b)));
        }
        out.push(*c);
        next = c.end + 1;
    }
    if next <= b {
        return Err((next, b));
    }
    Ok(out)
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

/// Checks one chunk's bytes against the trusted keys: every signature tx signs the root
/// recomputed from the chunk, and the chunk spans exactly `start ..= end`.
pub trait ChunkVerifier {
    /// Verifies `bytes` as the sealed chunk `start ..= end`.
    fn verify_chunk(&self, bytes: &[u8], start: u64, end: u64) -> Result<ChunkLinks, String>;
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
        assert_eq!(ChunkRef::parse_name(&c(3, 9).file_name()), Some((3, 9)));
        assert_eq!(ChunkRef::parse_name("ledger_03-9.committed"), None);
    }
}
