//! The ledger directory as the archive crate sees it: an
//! [`ArtifactSource`](snapseal_archive::ArtifactSource) of sealed chunks and a
//! [`ChunkVerifier`](snapseal_archive::ChunkVerifier) over trusted keys.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use snapseal_persist::fs::{DirHandle, EntryKind, FileSystem};
use snapseal_persist::Hash;

use super::{read_chunk_file, verify_chunk, ChunkName};
use crate::frontier::Frontier;

/// A ledger directory read as an [`ArtifactSource`](snapseal_archive::ArtifactSource):
/// its sealed chunks (the open chunk of a running or crashed node is not offered).
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
}

impl snapseal_archive::ArtifactSource for LedgerDir {
    fn chunks(&self) -> Result<Vec<snapseal_archive::ChunkRef>, snapseal_archive::SourceError> {
        let listed = self
            .dir
            .list()
            .map_err(|source| snapseal_archive::SourceError {
                what: self.dir.path().display().to_string(),
                source,
            })?;
        let mut out: Vec<snapseal_archive::ChunkRef> = listed
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .filter_map(|e| match e.name.to_str().and_then(ChunkName::parse) {
                Some(ChunkName::Committed { start, end }) => Some(snapseal_archive::ChunkRef {
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

    fn other_files(&self) -> Result<Vec<(String, u64)>, snapseal_archive::SourceError> {
        let listed = self
            .dir
            .list()
            .map_err(|source| snapseal_archive::SourceError {
                what: self.dir.path().display().to_string(),
                source,
            })?;
        let mut out: Vec<(String, u64)> = listed
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

    fn open_other(&self, name: &str) -> Result<Box<dyn Read + '_>, snapseal_archive::SourceError> {
        let bytes =
            read_chunk_file(&*self.dir, name).map_err(|source| snapseal_archive::SourceError {
                what: self.dir.path().join(name).display().to_string(),
                source,
            })?;
        Ok(Box::new(io::Cursor::new(bytes)))
    }

    fn open_chunk(
        &self,
        chunk: &snapseal_archive::ChunkRef,
    ) -> Result<Box<dyn Read + '_>, snapseal_archive::SourceError> {
        let name = chunk.file_name();
        let bytes =
            read_chunk_file(&*self.dir, &name).map_err(|source| snapseal_archive::SourceError {
                what: self.dir.path().join(&name).display().to_string(),
                source,
            })?;
        Ok(Box::new(io::Cursor::new(bytes)))
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
        bytes: &[u8],
        start: u64,
        end: u64,
    ) -> Result<snapseal_archive::ChunkLinks, String> {
        let v = verify_chunk(bytes, &self.0, Some((start, end))).map_err(|e| e.to_string())?;
        Ok(snapseal_archive::ChunkLinks {
            start: frontier_digest(&v.start_frontier),
            end: frontier_digest(&v.end_frontier),
        })
    }
}
