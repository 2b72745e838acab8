//! The chunk store's invariant after a recovery: every retained committed snapshot reads back
//! whole, so no snapshot the store keeps names a chunk it lost (a pack a sweep deleted, or one
//! a crash left unsealed under a committed snapshot).

use std::io;

use snapseal_persist::{ErrorChain, FileState, SnapshotStore};

/// Reads every committed snapshot in `store` through [`SnapshotStore::read`] and its whole body
/// through `body_reader`, which verifies each chunk of a chunked body against the hash its list
/// gives as it reads it. Returns how many snapshots were read, or what failed, naming the
/// snapshot and the chunk (the persist error says which).
///
/// Called before `latest()`: `latest` quarantines a newest file that fails, which would hide a
/// missing chunk from this check.
pub(super) fn check_retained(store: &SnapshotStore) -> Result<u64, String> {
    let entries = store
        .list()
        .map_err(|e| format!("listing the store: {}", ErrorChain(&e)))?;
    let mut read = 0;
    for entry in entries
        .iter()
        .filter(|e| e.name.state == FileState::Committed)
    {
        let idx = entry.name.idx;
        let file = store.read(&entry.name).map_err(|e| {
            format!(
                "the retained committed snapshot at {idx} does not verify: {}",
                ErrorChain(&e)
            )
        })?;
        let copied = file
            .body_reader()
            .and_then(|mut body| io::copy(&mut body, &mut io::sink()));
        if let Err(e) = copied {
            return Err(format!(
                "the body of the retained committed snapshot at {idx} does not read back: {}",
                ErrorChain(&e)
            ));
        }
        read += 1;
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;
    use std::sync::Arc;

    use snapseal_persist::fs::{FileSystem, SimFs};
    use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
    use snapseal_persist::{
        BodyBuilder, MemoryBudget, SigningKey, SnapshotStore, SpillTarget, StoreOptions,
    };

    use super::check_retained;

    fn chunked_store(sim: &SimFs, key: &SigningKey) -> Arc<SnapshotStore> {
        let trusted =
            Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
        let opts = StoreOptions {
            chunked: true,
            ..StoreOptions::new(Arc::new(trusted))
        };
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        Arc::new(SnapshotStore::open(fs, Path::new("/node/snapshots"), opts).unwrap())
    }

    /// A body of pseudo-random bytes (so FastCDC cuts it into several chunks).
    fn body(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn commit(store: &Arc<SnapshotStore>, key: &SigningKey, idx: u64, state: &[u8]) {
        let target = SpillTarget {
            store: Arc::clone(store),
            idx,
            generation: idx,
            budget: MemoryBudget::new(u64::MAX),
        };
        let mut builder = BodyBuilder::with_spill(None, target).unwrap();
        builder.write_all(state).unwrap();
        let built = builder.finish().unwrap();
        let receipt = statement_receipt(key, &built.claims(idx), idx + 1, None).unwrap();
        built.commit(store, idx, idx + 1, &receipt).unwrap();
    }

    #[test]
    fn the_check_names_the_chunk_a_deleted_pack_held() {
        let sim = SimFs::new(7);
        let key = SigningKey::from_bytes(&[3; 32]);
        let store = chunked_store(&sim, &key);
        commit(&store, &key, 10, &body(600 << 10, 1));
        assert_eq!(check_retained(&store), Ok(1), "an intact store passes");

        let dir = Path::new("/node/snapshots");
        let packs: Vec<String> = sim
            .names(dir)
            .into_iter()
            .filter(|n| n.starts_with("chunks_") && n.ends_with(".pack"))
            .collect();
        assert!(!packs.is_empty(), "the chunked commit wrote a pack");
        drop(store);
        let handle = sim.open_dir(dir, false).unwrap();
        for pack in &packs {
            handle.unlink(pack).unwrap();
        }

        let store = chunked_store(&sim, &key);
        let err = check_retained(&store).expect_err("a snapshot whose chunks are gone fails");
        assert!(err.contains("snapshot at 10"), "{err}");
        assert!(err.contains("missing from the chunk store"), "{err}");
    }
}
