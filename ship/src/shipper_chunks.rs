//! Shipping a chunked snapshot: its chunk objects the remote lacks, then the snapshot object
//! (the list), then — only if no chunk sweep of remote gc began meanwhile — the index entry,
//! so the index names a snapshot only once every chunk it names is confirmed on the remote
//! (the protocol and its argument: `chunk_gc.rs`).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload};
use snapseal_persist::internals::chunks::{read_chunk, ChunkError};
use snapseal_persist::{to_hex, Hash, SnapshotName};
use tracing::debug;

use super::{Outcome, Shipper};
use crate::chunk_gc::{now_unix, sweep_state, SweepState};
use crate::error::{describe, ShipError};
use crate::layout::{CHUNKS, GC};
use crate::local_file::{Checked, ChunkList, LocalFile};
use crate::upload::{Difference, Source};

/// Rounds of chunks-then-file a snapshot gets when chunk sweeps keep beginning under it.
const MAX_ROUNDS: u32 = 8;

/// Chunk uploads in flight per snapshot.
const CHUNKS_IN_FLIGHT: usize = 8;

impl Shipper {
    /// Ships chunked snapshot `name`, verified through the store by `local`.
    pub(super) async fn ship_chunked(
        &self,
        name: SnapshotName,
        local: Arc<LocalFile>,
    ) -> Result<Outcome, ShipError> {
        let list = match local.checked().await {
            Checked::Good {
                chunks: Some(list), ..
            } => list,
            Checked::Good { chunks: None, .. } => {
                return Ok(Outcome::Unverified(format!("{name}: no chunk list")))
            }
            Checked::Bad(reason) => return Ok(Outcome::Unverified(reason)),
            Checked::Unreadable(e) => return Err(local.unreadable(&e)),
        };
        for _ in 0..MAX_ROUNDS {
            let before = match self
                .retrying(Some(name), || self.upload_chunks(&list))
                .await?
            {
                Ok(state) => state,
                Err(outcome) => return Ok(outcome),
            };
            let outcome = self
                .retrying(Some(name), || {
                    self.upload_confirmed(name, Arc::clone(&local))
                })
                .await?;
            if !matches!(outcome, Outcome::Confirmed { .. }) {
                return Ok(outcome);
            }
            let after = self.retrying(Some(name), || self.sweep_records()).await?;
            if after == before {
                return Ok(outcome);
            }
            debug!(file = %name, "a chunk sweep began while shipping: listing the chunks again");
        }
        Err(ShipError::ChunkSweepsKeepBeginning {
            node: self.config.node.clone(),
            rounds: MAX_ROUNDS,
        })
    }

    /// What `<node>/gc/` says of chunk sweeps now; a running one is a transient error.
    async fn sweep_records(&self) -> Result<SweepState, ShipError> {
        let marks = self.remote.node_part(&self.config.node, GC).await?;
        match sweep_state(&marks, now_unix()) {
            SweepState::Running(number) => Err(ShipError::ChunkSweepRunning {
                node: self.config.node.clone(),
                number,
            }),
            quiet => Ok(quiet),
        }
    }

    /// Lists the sweep records (waiting out a running sweep), then the node's chunk objects,
    /// and uploads every chunk of `list` not listed with its length. Returns the records'
    /// state from before the chunk listing, or the outcome of a snapshot whose chunk left the
    /// store (it no longer verifies).
    async fn upload_chunks(
        &self,
        list: &ChunkList,
    ) -> Result<Result<SweepState, Outcome>, ShipError> {
        let state = self.sweep_records().await?;
        let listed = self
            .remote
            .node_part(&self.config.node, CHUNKS)
            .await?
            .chunks;
        let mut seen = HashSet::new();
        let todo: Vec<(u32, Hash)> = list
            .iter()
            .filter(|(len, h)| seen.insert(*h) && listed.get(h) != Some(&u64::from(*len)))
            .copied()
            .collect();
        let mut puts = futures::stream::iter(todo)
            .map(|(_, hash)| self.upload_chunk(hash))
            .buffer_unordered(CHUNKS_IN_FLIGHT);
        while let Some(put) = puts.try_next().await? {
            if let Err(outcome) = put {
                return Ok(Err(outcome));
            }
        }
        Ok(Ok(state))
    }

    /// Reads chunk `hash` from the store (checked against its hash), puts it (a plain put: the
    /// key names the bytes, so a second put writes the same ones), and confirms it as any
    /// upload is confirmed.
    async fn upload_chunk(&self, hash: Hash) -> Result<Result<(), Outcome>, ShipError> {
        let store = Arc::clone(&self.store);
        let read = tokio::task::spawn_blocking(move || read_chunk(&store, &hash))
            .await
            .map_err(|e| ShipError::LocalIo {
                dir: self.store.dir().to_path_buf(),
                step: "reading a chunk",
                source: std::io::Error::other(e),
            })?;
        let bytes = match read {
            Ok(Some(bytes)) => Bytes::from(bytes),
            Ok(None) => {
                return Ok(Err(Outcome::Unverified(format!(
                    "chunk {} is no longer in the local store",
                    to_hex(&hash)
                ))))
            }
            // The snapshot does not verify any more: never shipped.
            Err(damaged @ ChunkError::Damaged { .. }) => {
                return Ok(Err(Outcome::Unverified(describe(&damaged))))
            }
            Err(source) => {
                return Err(ShipError::LocalChunk {
                    dir: self.store.dir().to_path_buf(),
                    source,
                })
            }
        };
        let key = self.remote.chunk_key(&self.config.node, &hash);
        self.remote
            .store
            .put(&key, PutPayload::from(bytes.clone()))
            .await
            .map_err(|e| ShipError::remote("put", key.as_ref(), e))?;
        let len = bytes.len() as u64;
        let source = InMemory(bytes);
        match self
            .remote
            .confirm_upload(&key, &source, &blake3::Hash::from_bytes(hash), true)
            .await?
        {
            None => {}
            Some(Difference::Size(remote_len)) => {
                return Err(ShipError::Differs {
                    object: key.to_string(),
                    remote_len,
                    local_len: len,
                    first_difference: None,
                })
            }
            Some(Difference::Byte(at)) => {
                return Err(ShipError::Differs {
                    object: key.to_string(),
                    remote_len: len,
                    local_len: len,
                    first_difference: Some(at),
                })
            }
            // The bytes were checked against their hash when read: they cannot have changed.
            Some(Difference::LocalChanged) => {}
        }
        let c = &self.counters;
        c.chunks_uploaded.fetch_add(1, Ordering::Relaxed);
        c.chunk_bytes_uploaded.fetch_add(len, Ordering::Relaxed);
        metrics::counter!("snapseal_ship_chunk_bytes_uploaded_total").increment(len);
        Ok(Ok(()))
    }
}

/// A chunk's bytes as the read-back compares them.
struct InMemory(Bytes);

impl Source for InMemory {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read(&self, offset: u64, len: usize) -> BoxFuture<'_, Result<Bytes, ShipError>> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let end = start.saturating_add(len).min(self.0.len());
        let piece = self.0.slice(start..end);
        async move { Ok(piece) }.boxed()
    }
}
