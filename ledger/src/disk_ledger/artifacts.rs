//! The ledger directory as the archive crate sees it: an
//! [`ArtifactSource`](snapseal_archive::ArtifactSource) of sealed chunks and a
//! [`ChunkVerifier`](snapseal_archive::ChunkVerifier) over trusted keys.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use snapseal_archive::{
    CheckedChunk, ChunkCheckError, ChunkLinks, ChunkRef, OtherFile, SourceError,
};
use snapseal_persist::fs::FileSystem;
use snapseal_persist::internals::fs::{DirHandle, EntryKind, Expect, Untrusted, UntrustedError};
use snapseal_persist::Hash;

use super::chunk::{verify_stream, ReadError};
use super::ChunkName;
use crate::frontier::Frontier;
use crate::ledger::TxKind;

/// A ledger directory read as an [`ArtifactSource`](snapseal_archive::ArtifactSource):
/// its sealed chunks (the open chunk of a running or crashed node is not offered). Every
/// file is opened through [`Untrusted`] (no link followed, regular files only, size capped)
/// and read with `pread`, never mapped: one truncated by another process meanwhile is an
/// error naming it, not a `SIGBUS`.
#[derive(Clone, Debug)]
pub struct LedgerDir {
    pub(crate) dir: Arc<dyn DirHandle>,
}

impl LedgerDir {
    /// Opens the ledger directory at `path` read-only.
    pub fn open(fs: &dyn FileSystem, path: &Path) -> io::Result<Self> {
        Ok(LedgerDir {
            dir: fs.open_dir(path, false)?,
        })
    }

    /// The ledger directory open as `dir` (say, a snapshot directory's `ledger/` opened by the
    /// snapshot directory's fd, never through a link).
    pub fn from_dir(dir: Arc<dyn DirHandle>) -> Self {
        LedgerDir { dir }
    }

    fn list(&self) -> Result<Vec<snapseal_persist::internals::fs::DirEntry>, SourceError> {
        self.dir.list().map_err(|source| SourceError {
            what: self.dir.path().display().to_string(),
            source,
        })
    }

    fn open_file(&self, name: &str, expect: Expect) -> Result<Untrusted, SourceError> {
        Untrusted::open_in(&*self.dir, name, expect)
            .map_err(refused)?
            .ok_or_else(|| SourceError {
                what: self.dir.path().join(name).display().to_string(),
                source: io::Error::new(io::ErrorKind::NotFound, "vanished since it was listed"),
            })
    }
}

/// A ledger file refused or cut short (the [`UntrustedError`] names it).
fn refused(e: UntrustedError) -> SourceError {
    SourceError {
        what: "reading the ledger".into(),
        source: io::Error::other(e),
    }
}

/// One of the ledger directory's other files, as the archive reads it: through the
/// [`Untrusted`] it was opened as; a read error carries the [`UntrustedError`] naming it.
struct LedgerFile(Untrusted);

impl OtherFile for LedgerFile {
    fn size(&self) -> u64 {
        self.0.len()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_exact_at(offset, buf).map_err(io::Error::other)
    }
}

impl snapseal_archive::ArtifactSource for LedgerDir {
    fn chunks(&self) -> Result<Vec<ChunkRef>, SourceError> {
        let mut out: Vec<ChunkRef> = self
            .list()?
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .filter_map(|e| match e.name.to_str().and_then(ChunkName::parse) {
                Some(ChunkName::Committed { start, end }) => Some(ChunkRef {
                    start,
                    end,
                    len: e.len,
                }),
                _ => None,
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn read_chunk(&self, chunk: &ChunkRef, max_len: u64) -> Result<Vec<u8>, SourceError> {
        self.open_file(&chunk.file_name(), Expect::new("ledger chunk", max_len))?
            .read_all()
            .map_err(refused)
    }

    fn other_files(&self) -> Result<Vec<(String, u64)>, SourceError> {
        let mut out: Vec<(String, u64)> = self
            .list()?
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .filter_map(|e| {
                let name = e.name.to_str()?;
                let sealed = matches!(ChunkName::parse(name), Some(ChunkName::Committed { .. }));
                (!sealed).then(|| (name.to_string(), e.len))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn open_other(&self, name: &str, max_len: u64) -> Result<Box<dyn OtherFile>, SourceError> {
        let file = self.open_file(name, Expect::new("file", max_len))?;
        Ok(Box::new(LedgerFile(file)))
    }
}

/// Verifies chunks against trusted keys (the [`ChunkVerifier`](snapseal_archive::ChunkVerifier)
/// of the reference ledger).
#[derive(Clone, Debug)]
pub struct ChunkKeys(pub Vec<VerifyingKey>);

/// Digest of a frontier (its size and blocks), what consecutive chunks link by.
pub fn frontier_digest(f: &Frontier) -> Hash {
    let mut h = blake3::Hasher::new_derive_key("snapseal ledger frontier v1");
    h.update(&f.len().to_le_bytes());
    for b in f.blocks() {
        h.update(b);
    }
    *h.finalize().as_bytes()
}

impl snapseal_archive::ChunkVerifier for ChunkKeys {
    fn verify_chunk(
        &self,
        src: &mut dyn Read,
        len: u64,
        start: u64,
        end: u64,
    ) -> Result<CheckedChunk, ChunkCheckError> {
        let mut signed = Vec::new();
        let v = verify_stream(src, len, Some(&self.0), Some((start, end)), |idx, tx, _| {
            // Only kept once the whole chunk verifies: then each of these signs the root
            // recomputed before it.
            if let TxKind::Signature(s) = tx {
                signed.push((idx, s.root));
            }
        })
        .map_err(|e| match e {
            ReadError::Bad(e) => ChunkCheckError::Invalid(e.to_string()),
            ReadError::Io(e) => ChunkCheckError::Read(e),
        })?;
        Ok(CheckedChunk {
            links: ChunkLinks {
                start: frontier_digest(&v.start_frontier),
                end: frontier_digest(&v.end_frontier),
            },
            signed,
        })
    }
}
