//! Retention of chunks (docs/FORMAT.md §10.4, SPEC §5): after the store's snapshot retention,
//! a chunk is *live* when a committed (or uncommitted) snapshot file still in the directory
//! names it, *protected* when live, claimed by an in-flight persist, or claimed at any moment
//! since the sweep began. A pack none of whose indexed chunks is protected is deleted; a pack
//! whose protected chunks are less than half its bytes is rewritten: the protected chunks are
//! copied (each checked against its hash) into a new pack, which is made durable and takes
//! their index entries *before* the old pack is deleted. So a crash anywhere in a sweep
//! leaves every chunk a retained snapshot names in a durable pack.

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::Arc;

use tracing::{debug, warn};

use crate::error::{StoreError, StoreStep};
use crate::format::{Flags, Header, HEADER_LEN};
use crate::fs::DirHandle;
use crate::names::{FileState, SnapshotName};
use crate::reader::open_for_verify;
use crate::scan::our_files;
use crate::Hash;

use super::list::{Entry, ENTRY_LEN};
use super::pack::{open_pack, pack_name, read_chunk};
use super::store::ChunkStore;
use crate::reader::FileRange;

/// Ends a sweep's record of claims when dropped.
pub(crate) struct Sweeping<'a> {
    store: &'a ChunkStore,
}

impl Drop for Sweeping<'_> {
    fn drop(&mut self) {
        self.store.index.lock().touched = None;
    }
}

/// What a sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SweepReport {
    /// Packs deleted whole.
    pub(crate) deleted: Vec<u64>,
    /// Packs rewritten (their old numbers; the copies went into new packs).
    pub(crate) rewritten: Vec<u64>,
}

impl ChunkStore {
    /// Starts a sweep: from now until the returned guard is dropped, every chunk claimed
    /// (now, or later) is protected. Call it before listing the snapshots whose lists make
    /// the live set: a persist that commits after the listing still holds its claim then,
    /// or took it after this call.
    pub(crate) fn begin_sweep(&self) -> Sweeping<'_> {
        let mut index = self.index.lock();
        let claimed: HashSet<Hash> = index.claims.keys().copied().collect();
        index.touched = Some(claimed);
        Sweeping { store: self }
    }

    /// Deletes and rewrites packs given the `live` chunks (see the module docs). The caller
    /// began the sweep with [`begin_sweep`](Self::begin_sweep) and holds the store's
    /// maintenance lock (one sweep at a time).
    pub(crate) fn sweep(
        self: &Arc<Self>,
        live: &HashSet<Hash>,
        _sweeping: &Sweeping<'_>,
    ) -> Result<SweepReport, StoreError> {
        let dir_path = self.dir.path().to_path_buf();
        let mut report = SweepReport::default();
        // Decide under the lock, so no claim can slip in between the check and the removal
        // from the index; from then on a persist that needs one of these chunks writes it anew.
        let (doomed, rewrites) = {
            let mut index = self.index.lock();
            let index = &mut *index;
            let protected = |h: &Hash| {
                live.contains(h)
                    || index.claims.contains_key(h)
                    || index.touched.as_ref().is_some_and(|t| t.contains(h))
            };
            let mut doomed = Vec::new();
            let mut rewrites = Vec::new();
            for (n, chunks) in &index.packs {
                let here = |h: &Hash| index.chunks.get(h).is_some_and(|l| l.pack == *n);
                let needed: Vec<(u64, Entry)> = chunks
                    .iter()
                    .filter(|(_, e)| here(&e.hash) && protected(&e.hash))
                    .copied()
                    .collect();
                let total: u64 = chunks.iter().map(|(_, e)| u64::from(e.len)).sum();
                let kept: u64 = needed.iter().map(|(_, e)| u64::from(e.len)).sum();
                if needed.is_empty() {
                    doomed.push(*n);
                } else if kept * 2 < total {
                    rewrites.push((*n, needed));
                }
            }
            for n in &doomed {
                if let Some(chunks) = index.packs.remove(n) {
                    for (_, e) in chunks {
                        if index.chunks.get(&e.hash).is_some_and(|l| l.pack == *n) {
                            index.chunks.remove(&e.hash);
                        }
                    }
                }
            }
            for (n, needed) in &rewrites {
                let keep: HashSet<Hash> = needed.iter().map(|(_, e)| e.hash).collect();
                if let Some(chunks) = index.packs.get(n) {
                    for (_, e) in chunks {
                        if !keep.contains(&e.hash)
                            && index.chunks.get(&e.hash).is_some_and(|l| l.pack == *n)
                        {
                            index.chunks.remove(&e.hash);
                        }
                    }
                }
            }
            (doomed, rewrites)
        };
        let mut unlinked = false;
        for (n, needed) in rewrites {
            self.rewrite(n, &needed)?;
            self.unlink_pack(n)?;
            unlinked = true;
            report.rewritten.push(n);
        }
        for n in doomed {
            self.unlink_pack(n)?;
            unlinked = true;
            report.deleted.push(n);
        }
        if unlinked {
            self.dir.sync().map_err(|source| StoreError::Io {
                path: dir_path,
                step: StoreStep::DirSync,
                source,
            })?;
        }
        if report != SweepReport::default() {
            debug!(
                deleted = report.deleted.len(),
                rewritten = report.rewritten.len(),
                "chunk sweep"
            );
        }
        Ok(report)
    }

    /// Copies `needed` chunks of pack `n` into a new durable pack (which takes their index
    /// entries), then takes `n` out of the index. A chunk whose bytes do not match its hash is
    /// not copied (its snapshots fail verification, as they would have reading it from `n`).
    fn rewrite(self: &Arc<Self>, n: u64, needed: &[(u64, Entry)]) -> Result<(), StoreError> {
        let path = self.dir.path().join(pack_name(n));
        let read_err = |source: io::Error| StoreError::Io {
            path: path.clone(),
            step: StoreStep::ReadPack,
            source,
        };
        let old = open_pack(&*self.dir, n)
            .map_err(|e| read_err(super::pack::into_io(e)))?
            .ok_or_else(|| read_err(io::Error::from(io::ErrorKind::NotFound)))?;
        let write_err = |e: crate::PersistError| StoreError::Io {
            path: path.clone(),
            step: StoreStep::RewritePack,
            source: io::Error::other(e),
        };
        let mut writer = self.new_pack().map_err(write_err)?;
        for (offset, entry) in needed {
            match read_chunk(&old, *offset, entry).map_err(|e| read_err(super::pack::into_io(e)))? {
                Some(bytes) => writer.add(&bytes, entry.hash).map_err(write_err)?,
                None => {
                    warn!(pack = %crate::escape::Escaped::path(&path), "a chunk does not match its hash; not copied")
                }
            }
        }
        if !writer.is_empty() {
            writer.seal().map_err(write_err)?;
        }
        let mut index = self.index.lock();
        if let Some(chunks) = index.packs.remove(&n) {
            for (_, e) in chunks {
                if index.chunks.get(&e.hash).is_some_and(|l| l.pack == n) {
                    index.chunks.remove(&e.hash);
                }
            }
        }
        Ok(())
    }

    fn unlink_pack(&self, n: u64) -> Result<(), StoreError> {
        let name = pack_name(n);
        match self.dir.unlink(&name) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                path: self.dir.path().join(&name),
                step: StoreStep::UnlinkPack,
                source,
            }),
        }
    }
}

/// Hashes gathered before they are checked against the index under one lock.
const LIVE_BATCH: usize = 4096;

impl ChunkStore {
    /// The chunks of this store's packs named by every committed or uncommitted snapshot
    /// file of its directory whose header says it is chunked (see [`live_chunks_in`]).
    pub(crate) fn live_chunks(&self) -> Result<HashSet<Hash>, StoreError> {
        live_chunks_in(&*self.dir, &mut |batch: &mut Vec<Hash>| {
            let index = self.index.lock();
            batch.retain(|h| index.chunks.contains_key(h));
        })
    }
}

/// The chunks named by every committed or uncommitted snapshot file in `dir` whose header
/// says it is chunked, as far as `known` keeps them (it drops from each batch the hashes no
/// pack holds, so a hostile list naming millions of chunks costs no more memory than the
/// index). Header and list are read through [`open_for_verify`] but not verified: a list
/// that names more only keeps more. A file that vanished is skipped; any other read failure
/// stops the sweep (nothing is deleted on a partial view).
fn live_chunks_in(
    dir: &dyn DirHandle,
    known: &mut dyn FnMut(&mut Vec<Hash>),
) -> Result<HashSet<Hash>, StoreError> {
    let entries = dir.list().map_err(|source| StoreError::Io {
        path: dir.path().to_path_buf(),
        step: StoreStep::List,
        source,
    })?;
    let mut live = HashSet::new();
    for entry in our_files(&entries) {
        if entry.name.state == FileState::Corrupt {
            continue;
        }
        add_list(dir, &entry.name, &mut live, known)?;
    }
    Ok(live)
}

fn add_list(
    dir: &dyn DirHandle,
    name: &SnapshotName,
    live: &mut HashSet<Hash>,
    known: &mut dyn FnMut(&mut Vec<Hash>),
) -> Result<(), StoreError> {
    let file_name = name.file_name();
    let read_err = |source: io::Error| StoreError::Io {
        path: dir.path().join(&file_name),
        step: StoreStep::Read,
        source,
    };
    let file = match open_for_verify(dir, &file_name) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(()),
        Err(crate::VerifyError::Read { source, .. })
            if source.kind() == io::ErrorKind::NotFound =>
        {
            return Ok(())
        }
        Err(crate::VerifyError::Read { source, .. }) => return Err(read_err(source)),
        // Not a regular file any more: names nothing.
        Err(_) => return Ok(()),
    };
    let head = match file.read_range(0, HEADER_LEN.min(file.len() as usize)) {
        Ok(h) => h,
        Err(e) => return Err(read_err(super::pack::into_io(e))),
    };
    let Ok(header) = Header::decode(&head) else {
        return Ok(());
    };
    if !header.flags.contains(Flags::CHUNKED) || header.file_len().ok() != Some(file.len()) {
        return Ok(());
    }
    let start = HEADER_LEN as u64;
    let mut list = std::io::BufReader::with_capacity(
        1 << 20,
        FileRange::new(&file, start, start + header.body_len),
    );
    let mut entry = [0u8; ENTRY_LEN];
    // Exactly the entries the header gives (a whole number: the header checked it); a file
    // cut short meanwhile is a read error, never a shorter list.
    let mut batch = Vec::with_capacity(LIVE_BATCH);
    for _ in 0..header.body_len / ENTRY_LEN as u64 {
        list.read_exact(&mut entry).map_err(read_err)?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&entry[4..]);
        batch.push(hash);
        if batch.len() == LIVE_BATCH {
            known(&mut batch);
            live.extend(batch.drain(..));
        }
    }
    known(&mut batch);
    live.extend(batch);
    Ok(())
}
