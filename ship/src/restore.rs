//! Restore: the newest remote snapshot that verifies, brought into a local store through the
//! store's ingest (pending file, fsync, close, full verification, non-replacing rename).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path;
use snapseal_persist::format::{Header, HEADER_LEN};
use snapseal_persist::{to_hex, Ingested, SnapshotName, SnapshotStore};
use tracing::{info, warn};

use crate::error::{chain, ErrorClass, ShipError};
use crate::index::{EntryClaims, IndexEntry};
use crate::remote::{Remote, READ_IN_FLIGHT, READ_PIECE};

/// Hears a restore's progress: the candidate, bytes fetched so far, its size.
pub type RestoreProgress = Arc<dyn Fn(&SnapshotName, u64, u64) + Send + Sync>;

/// How a restore chooses and fetches.
#[derive(Clone)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Only this node's snapshots; `None`: any node's (all are checked against the same
    /// trusted keys).
    pub node: Option<String>,
    /// The largest file accepted (the header gives the size; a larger one is refused after
    /// its first 160 bytes).
    pub max_file_bytes: u64,
    /// Attempts per candidate on transient errors before falling back to an older one.
    pub attempts: u32,
    /// Called after each piece fetched (every 8 MiB), for a progress bar.
    pub progress: Option<RestoreProgress>,
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("node", &self.node)
            .field("max_file_bytes", &self.max_file_bytes)
            .field("attempts", &self.attempts)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            node: None,
            max_file_bytes: 64 << 30,
            attempts: 3,
            progress: None,
        }
    }
}

/// What a restore brought in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restored {
    /// The snapshot now committed locally.
    pub name: SnapshotName,
    /// The node that shipped it.
    pub node: String,
    /// False when the store already had it (nothing was written).
    pub written: bool,
    /// Newer candidates passed over, with the reason (`node/file: reason`).
    pub passed_over: Vec<String>,
    /// Whether the candidates came from a listing because the index was missing or unusable.
    pub listed: bool,
}

/// One remote snapshot to try.
struct Candidate {
    node: String,
    name: SnapshotName,
    /// What the index says the object is, when it came from the index.
    entry: Option<IndexEntry>,
}

/// Brings the newest remote snapshot that verifies into `store`.
///
/// Candidates come from the index (newest first); only when the index is missing or does not
/// decode does it list the bucket instead. Each candidate is streamed into the store's
/// ingest: its header must carry the indices its object name gives (and, from the index, the
/// claims the index recorded), the bytes must have the size and BLAKE3 the index recorded,
/// and the store verifies the whole file against its trusted keys before it gets a committed
/// name. A candidate that fails any of that is passed over for the next older one; a
/// terminal remote error (authentication, missing bucket) ends the restore. A store that
/// already has newer snapshots keeps them: an older one brought in does not change what
/// `latest` returns.
pub fn restore(
    remote: &Remote,
    store: &SnapshotStore,
    opts: &RestoreOptions,
) -> Result<Restored, ShipError> {
    remote.block_on(restore_async(remote, store, opts))
}

async fn restore_async(
    remote: &Remote,
    store: &SnapshotStore,
    opts: &RestoreOptions,
) -> Result<Restored, ShipError> {
    let (candidates, listed) = candidates(remote, opts).await?;
    let mut passed_over = Vec::new();
    for c in candidates {
        let key = remote.key(&c.node, &c.name.file_name());
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            match fetch_one(remote, store, &key, &c, opts).await {
                Err(e) if e.class() == ErrorClass::Transient && attempt < opts.attempts.max(1) => {
                    let delay = Duration::from_millis(200 << attempt.min(6));
                    warn!(object = %key, attempt, error = %chain(&e), "restore: transient error, retrying");
                    tokio::time::sleep(delay).await;
                }
                other => break other,
            }
        };
        match result {
            Ok(written) => {
                info!(object = %key, written, "restored");
                return Ok(Restored {
                    name: c.name,
                    node: c.node,
                    written,
                    passed_over,
                    listed,
                });
            }
            Err(e)
                if e.class() == ErrorClass::Terminal && matches!(e, ShipError::Remote { .. }) =>
            {
                return Err(e)
            }
            Err(e) => {
                let reason = chain(&e);
                warn!(object = %key, reason = %reason, "restore: passing over");
                passed_over.push(format!("{}/{}: {reason}", c.node, c.name.file_name()));
            }
        }
    }
    Err(ShipError::NothingRestored {
        url: remote.url().to_string(),
        passed_over,
    })
}

/// The candidates, newest first, and whether they came from a listing.
async fn candidates(
    remote: &Remote,
    opts: &RestoreOptions,
) -> Result<(Vec<Candidate>, bool), ShipError> {
    let wanted = |node: &str| opts.node.as_deref().is_none_or(|n| n == node);
    match remote.read_index().await {
        Ok((index, Some(_))) => {
            let list = index
                .newest_first()
                .into_iter()
                .filter(|(node, _)| wanted(node))
                .filter_map(|(node, e)| {
                    let name = SnapshotName::parse(&e.name)?;
                    Some(Candidate {
                        node: node.to_string(),
                        name,
                        entry: Some(e.clone()),
                    })
                })
                .collect();
            return Ok((list, false));
        }
        Ok((_, None)) => warn!(remote = %remote.url(), "no index: listing the remote"),
        Err(e @ ShipError::Index { .. }) => {
            warn!(remote = %remote.url(), error = %chain(&e), "unusable index: listing the remote")
        }
        Err(e) => return Err(e),
    }
    let mut list = Vec::new();
    for meta in remote.list_all().await? {
        let parts: Vec<_> = meta.location.parts().collect();
        let [.., node, file] = parts.as_slice() else {
            continue;
        };
        let (node, file) = (node.as_ref(), file.as_ref());
        if !wanted(node) || remote.key(node, file) != meta.location {
            continue;
        }
        if let Some(name) = SnapshotName::parse(file).filter(|n| n.file_name() == file) {
            list.push(Candidate {
                node: node.to_string(),
                name,
                entry: None,
            });
        }
    }
    list.sort_by_key(|c| std::cmp::Reverse((c.name.idx, c.name.evidence_idx)));
    Ok((list, true))
}

/// Streams one object into the store. `Ok(false)`: the store already had it.
async fn fetch_one(
    remote: &Remote,
    store: &SnapshotStore,
    key: &Path,
    c: &Candidate,
    opts: &RestoreOptions,
) -> Result<bool, ShipError> {
    let limit = opts.max_file_bytes;
    let refuse = |reason: String| ShipError::Refused {
        object: key.to_string(),
        reason,
    };
    if let Some(e) = &c.entry {
        if e.size > limit {
            return Err(refuse(format!(
                "{} bytes, more than the limit {limit}",
                e.size
            )));
        }
    }
    let Some(meta) = remote.head(key).await? else {
        return Err(refuse("gone (listed or indexed, but not there)".into()));
    };
    if meta.size > limit {
        return Err(refuse(format!(
            "{} bytes, more than the limit {limit}",
            meta.size
        )));
    }
    let mut stream = std::pin::pin!(remote.pieces(key, meta.size, READ_PIECE, READ_IN_FLIGHT));
    let mut file = store.begin_ingest(limit);
    let mut hasher = blake3::Hasher::new();
    let mut head: Vec<u8> = Vec::with_capacity(HEADER_LEN);
    let mut len = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if head.len() < HEADER_LEN {
            let take = (HEADER_LEN - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
            if head.len() == HEADER_LEN {
                check_label(&head, c).map_err(refuse)?;
            }
        }
        len += chunk.len() as u64;
        if chunk.len() >= 1 << 20 {
            hasher.update_rayon(&chunk);
        } else {
            hasher.update(&chunk);
        }
        if file.write_all(&chunk).is_err() {
            // The file recorded why; finishing reports it.
            break;
        }
        if let Some(progress) = &opts.progress {
            progress(&c.name, len, meta.size);
        }
    }
    if let Some(e) = &c.entry {
        let hash = to_hex(hasher.finalize().as_bytes());
        if len != e.size || hash != e.blake3 {
            return Err(refuse(format!(
                "{len} bytes with BLAKE3 {hash}, the index says {} bytes with BLAKE3 {}",
                e.size, e.blake3
            )));
        }
    }
    match store.finish_ingest(file) {
        Ok(Ingested::Committed(committed)) if committed.name == c.name => Ok(true),
        Ok(Ingested::AlreadyPresent(name)) if name == c.name => Ok(false),
        Ok(other) => Err(refuse(format!(
            "the store committed {} for an object named {}",
            other.name(),
            c.name
        ))),
        Err(source) => Err(ShipError::Ingest {
            object: key.to_string(),
            source,
        }),
    }
}

/// The header must name what the object's key names, and claim what the index recorded:
/// a genuine snapshot under another snapshot's name (relabelled) is refused here.
fn check_label(head: &[u8], c: &Candidate) -> Result<(), String> {
    let header = Header::decode(head).map_err(|e| format!("header: {e}"))?;
    if (header.idx, header.evidence_idx) != (c.name.idx, c.name.evidence_idx) {
        return Err(format!(
            "relabelled: the header is snapshot {}/{}, the object is named {}",
            header.idx, header.evidence_idx, c.name
        ));
    }
    if let Some(e) = &c.entry {
        if EntryClaims::of(&header) != e.claims {
            return Err("the header's claims differ from the index's".into());
        }
    }
    Ok(())
}
