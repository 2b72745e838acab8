//! Chunked stores and their snapshots for the shipping tests (docs/FORMAT.md §2.2).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use snapseal_persist::fs::RealFs;
use snapseal_persist::{BodyBuilder, MemoryBudget, SnapshotName, SnapshotStore, SpillTarget};

use super::{key, options, receipt};

/// A store writing chunked snapshots.
pub(crate) fn chunked_store(dir: &Path) -> Arc<SnapshotStore> {
    let mut o = options();
    o.chunked = true;
    Arc::new(SnapshotStore::open(Arc::new(RealFs::new()), dir, o).unwrap())
}

/// Deterministic incompressible bytes.
pub(crate) fn state(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `base` with `n` bytes at `at` changed.
pub(crate) fn edited(base: &[u8], at: usize, n: usize) -> Vec<u8> {
    let mut out = base.to_vec();
    for b in &mut out[at..at + n] {
        *b = b.wrapping_add(1);
    }
    out
}

/// Commits `state` as chunked snapshot `idx`, proven at `idx + 1` by the trusted key.
pub(crate) fn persist_chunked(store: &Arc<SnapshotStore>, idx: u64, state: &[u8]) -> SnapshotName {
    let target = SpillTarget {
        store: Arc::clone(store),
        idx,
        generation: idx,
        budget: MemoryBudget::new(1 << 20),
    };
    let mut builder = BodyBuilder::with_spill(None, target).unwrap();
    builder.write_all(state).unwrap();
    let body = builder.finish().unwrap();
    let claims = body.claims(idx).digest();
    let receipt = receipt(idx + 1, claims, &key());
    body.commit(store, idx, idx + 1, &receipt).unwrap().name
}

/// The state snapshot `name` of `store` holds.
pub(crate) fn read_state(store: &SnapshotStore, name: &SnapshotName) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .read(name)
        .unwrap()
        .body_reader()
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The chunk objects of `node` on the `file://` remote at `remote_dir`, sorted.
pub(crate) fn chunk_objects(remote_dir: &Path, node: &str) -> Vec<PathBuf> {
    let dir = remote_dir.join(node).join("chunks");
    let mut out: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().contains('#'))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Bytes of the chunk packs in snapshot directory `dir`.
pub(crate) fn pack_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// The hex names of the chunks snapshot `name` of `store` lists.
pub(crate) fn chunk_names(store: &SnapshotStore, name: &SnapshotName) -> Vec<String> {
    let file = store.read(name).unwrap();
    snapseal_persist::internals::chunks::chunk_list(&file)
        .unwrap()
        .unwrap()
        .iter()
        .map(|(_, h)| snapseal_persist::to_hex(h))
        .collect()
}
