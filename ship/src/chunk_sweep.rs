//! Remote gc of a node's chunk objects: those no snapshot object of the node still on the
//! remote names are deleted, under the sweep records of `chunk_gc.rs` so that the node's
//! shipper, running meanwhile, never indexes a snapshot whose chunk a sweep deleted.

use std::collections::HashSet;
use std::time::Instant;

use object_store::{ObjectStoreExt, PutPayload};
use snapseal_persist::internals::Escaped;
use snapseal_persist::{Hash, SnapshotName};
use tracing::{info, warn};

use crate::chunk_gc::{now_unix, SWEEP_BUDGET};
use crate::error::ShipError;
use crate::layout::{CHUNKS, GC};
use crate::remote::Remote;
use crate::remote_chunks::{read_header, read_list};

/// What a chunk sweep of one node did (or, dry, would do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Swept {
    /// Chunk objects deleted.
    pub chunks: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Sweeps `node`'s chunk objects. A first look, without a record, finds the chunk objects
/// no snapshot object names; when there are none (most runs), nothing is written, so a
/// shipping node is not sent back to list again for nothing. Otherwise: writes the sweep
/// record `chunks_<n>`, looks again (the decision is made on what is listed after the
/// record, see `chunk_gc.rs`), deletes the chunk objects none names (stopping at
/// [`SWEEP_BUDGET`]), then writes `chunks_<n>.done` and removes older records. A list that
/// cannot be read stops the sweep before it deletes anything (the record still ends). Dry:
/// only the first look, counted, with the snapshot objects of `going` (those the dry gc
/// would have deleted first) taken as gone, so it counts what the real gc would delete.
pub(crate) async fn sweep_chunks(
    remote: &Remote,
    node: &str,
    dry_run: bool,
    going: &HashSet<SnapshotName>,
) -> Result<Swept, ShipError> {
    let present = remote.node_part(node, CHUNKS).await?.chunks;
    if present.is_empty() {
        return Ok(Swept::default());
    }
    let none = HashSet::new();
    let first_look = dead_chunks(remote, node, if dry_run { going } else { &none }).await?;
    if dry_run || first_look.is_empty() {
        return Ok(Swept {
            chunks: first_look.len(),
            bytes: first_look.iter().map(|(_, size)| size).sum(),
        });
    }
    let records = remote.node_part(node, GC).await?.chunk_sweeps;
    let n = records
        .keys()
        .next_back()
        .map_or(1, |n| n.saturating_add(1));
    let began = Instant::now();
    let key = remote.chunk_sweep_key(node, n, false);
    let record = format!(
        "{{\"format\": 1, \"node\": \"{node}\", \"began_unix\": {}}}\n",
        now_unix()
    );
    remote
        .store
        .put(&key, PutPayload::from(record.into_bytes()))
        .await
        .map_err(|e| ShipError::remote("put", key.as_ref(), e))?;
    // Decided on a listing made after the record: see chunk_gc.rs for why that order matters.
    let swept = match dead_chunks(remote, node, &none).await {
        Ok(dead) => delete(remote, node, &dead, began).await,
        Err(e) => Err(e),
    };
    let key = remote.chunk_sweep_key(node, n, true);
    remote
        .store
        .put(&key, PutPayload::from(b"{\"format\": 1}\n".to_vec()))
        .await
        .map_err(|e| ShipError::remote("put", key.as_ref(), e))?;
    for (older, mark) in records.range(..n) {
        if mark.began_unix != 0 {
            remote
                .delete(&remote.chunk_sweep_key(node, *older, false))
                .await?;
        }
        if mark.done {
            remote
                .delete(&remote.chunk_sweep_key(node, *older, true))
                .await?;
        }
    }
    swept
}

/// The chunk objects of `node` that no snapshot object of it but those of `going` names,
/// with their sizes: one listing of the node, then the chunk list of each of its snapshot
/// objects.
async fn dead_chunks(
    remote: &Remote,
    node: &str,
    going: &HashSet<SnapshotName>,
) -> Result<Vec<(Hash, u64)>, ShipError> {
    let listing = remote.listing(Some(node)).await?;
    let Some(objects) = listing.nodes.get(node) else {
        return Ok(Vec::new());
    };
    let mut live = HashSet::new();
    for name in objects.snapshots.keys().filter(|n| !going.contains(n)) {
        let key = remote.key(node, &name.file_name());
        let header = match read_header(remote, &key).await {
            Ok(h) => h,
            // Not a snapshot file: it names no chunk.
            Err(ShipError::Refused { .. }) => continue,
            Err(ShipError::Remote {
                source: object_store::Error::NotFound { .. },
                ..
            }) => continue,
            Err(e) => return Err(e),
        };
        if let Some(list) = read_list(remote, &key, &header).await? {
            live.extend(list.into_iter().map(|(_, h)| h));
        }
    }
    Ok(objects
        .chunks
        .iter()
        .filter(|(h, _)| !live.contains(*h))
        .map(|(h, size)| (*h, *size))
        .collect())
}

/// Deletes the `dead` chunk objects of `node`, until [`SWEEP_BUDGET`] has passed since
/// `began`.
async fn delete(
    remote: &Remote,
    node: &str,
    dead: &[(Hash, u64)],
    began: Instant,
) -> Result<Swept, ShipError> {
    let mut swept = Swept::default();
    for (hash, size) in dead {
        if began.elapsed() >= SWEEP_BUDGET {
            warn!(node = %Escaped::str(node), "remote gc: chunk sweep out of time; the rest waits for the next gc");
            break;
        }
        let key = remote.chunk_key(node, hash);
        remote.delete(&key).await?;
        info!(object = %Escaped::str(key.as_ref()), "remote gc: deleted a chunk no snapshot names");
        swept.chunks += 1;
        swept.bytes += size;
    }
    Ok(swept)
}
