//! Restoring a chunked snapshot: its chunk list (read from the object, checked against the
//! body digest its verified receipt proves), then the chunks the local store lacks, fetched
//! in parallel (at most [`FETCH_IN_FLIGHT`]) from the sources in turn — the remote the object
//! is on, then the extra ones ([`RestoreOptions::with_chunk_source`]) — each checked against
//! its hash and added through persist's `ChunkImport` (claimed against the store's sweep,
//! sealed into packs as they fill). A restore interrupted after a pack was sealed does not
//! fetch that pack's chunks again.
//!
//! [`RestoreOptions::with_chunk_source`]: crate::RestoreOptions::with_chunk_source

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use snapseal_persist::internals::chunks::{CheckedChunk, ChunkImport};
use snapseal_persist::internals::format::Header;
use snapseal_persist::{to_hex, Hash, SnapshotStore};
use tracing::debug;

use crate::error::{ErrorClass, ShipError};
use crate::remote::Remote;
use crate::remote_chunks::read_list;
use crate::restore::off_the_workers;

/// Chunk fetches in flight per snapshot.
pub(crate) const FETCH_IN_FLIGHT: usize = 8;

/// Brings every chunk of the snapshot object at `key` (of `node`, header `header`, its
/// receipt already verified) that `store` lacks into `store`'s packs; returns the import that
/// holds their claims, to commit the file through.
pub(crate) async fn fetch_chunks(
    primary: &Remote,
    extra: &[Arc<Remote>],
    node: &str,
    key: &Path,
    header: &Header,
    store: &SnapshotStore,
) -> Result<ChunkImport, ShipError> {
    let list = read_list(primary, key, header)
        .await?
        .ok_or_else(|| ShipError::Refused {
            object: key.to_string(),
            reason: "not a chunked snapshot".into(),
        })?;
    let mut import = ChunkImport::new(store);
    let missing = import.missing(list.iter().map(|(_, h)| h));
    debug!(object = %key, chunks = list.len(), missing = missing.len(), "restore: fetching the chunks the store lacks");
    let lens: HashMap<Hash, u32> = list.iter().map(|(len, h)| (*h, *len)).collect();
    let sources: Vec<&Remote> = std::iter::once(primary)
        .chain(extra.iter().map(|r| &**r))
        .collect();
    let mut fetches = futures::stream::iter(missing)
        .map(|hash| {
            let len = lens.get(&hash).copied().unwrap_or(0);
            fetch_chunk(&sources, node, key, hash, len)
        })
        .buffer_unordered(FETCH_IN_FLIGHT);
    let local = |source| ShipError::LocalChunk {
        dir: store.dir().to_path_buf(),
        source,
    };
    while let Some(fetched) = fetches.next().await {
        let added = match fetched {
            Ok(chunk) => off_the_workers(|| import.add_checked(&chunk)).map_err(local),
            Err(e) => Err(e),
        };
        if let Err(e) = added {
            // What arrived so far stays: the next attempt does not fetch it again.
            drop(fetches);
            if let Err(sealing) = off_the_workers(|| import.seal()) {
                debug!(error = %sealing, "restore: could not keep the chunks fetched so far");
            }
            return Err(e);
        }
    }
    Ok(import)
}

/// Chunk `hash` (`len` bytes) from the first source that has it with the right bytes
/// (checked against the hash once, here); one missing or damaged on every source refuses the
/// snapshot object `snapshot`, naming it.
pub(crate) async fn fetch_chunk(
    sources: &[&Remote],
    node: &str,
    snapshot: &Path,
    hash: Hash,
    len: u32,
) -> Result<CheckedChunk<Bytes>, ShipError> {
    let mut reasons = Vec::new();
    let mut transient = None;
    for remote in sources {
        let key = remote.chunk_key(node, &hash);
        let got = get_exactly(remote, &key, len)
            .await
            .map(|bytes| bytes.and_then(|b| CheckedChunk::new(hash, b).ok()));
        match got {
            Ok(Some(chunk)) => return Ok(chunk),
            Ok(None) => reasons.push(format!(
                "{}: damaged (not the {len} bytes its name hashes)",
                remote.url()
            )),
            Err(object_store::Error::NotFound { .. }) => {
                reasons.push(format!("{}: missing", remote.url()))
            }
            Err(e) => {
                let e = ShipError::remote("get", key.as_ref(), e);
                reasons.push(format!("{}: {}", remote.url(), crate::error::describe(&e)));
                if e.class() == ErrorClass::Transient {
                    transient = Some(e);
                }
            }
        }
    }
    // A source that may yet answer: worth another attempt (sealed chunks are kept).
    if let Some(e) = transient {
        return Err(e);
    }
    Err(ShipError::Refused {
        object: snapshot.to_string(),
        reason: format!("chunk {}: {}", to_hex(&hash), reasons.join("; ")),
    })
}

/// The object at `key` if it is `len` bytes long (its size checked before its bytes are
/// read, so a hostile giant costs nothing), `None` if it has another size.
async fn get_exactly(
    remote: &Remote,
    key: &Path,
    len: u32,
) -> Result<Option<Bytes>, object_store::Error> {
    let got = remote.store.get(key).await?;
    if got.meta.size != u64::from(len) {
        return Ok(None);
    }
    let bytes = got.bytes().await?;
    Ok((bytes.len() == len as usize).then_some(bytes))
}
