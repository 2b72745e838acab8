//! Receiving a leader's snapshot in chunks (`/raft/snapshot`).
//!
//! openraft's own receiver (`Raft::install_snapshot`) keeps one stream per snapshot id and
//! *seeks* when a chunk's offset is not where the stream is. The leader re-sends a snapshot
//! from offset 0, under the same id, after a chunk timed out (a paused or slow follower); but
//! the adapter's receiving `SealedData` is written in order only and refuses to seek back, so
//! openraft's receiver would fail every re-send of that snapshot (as a fatal error, to the
//! leader) until the leader builds a newer one. This receiver does what openraft's does, except
//! that offset 0 always starts the stream afresh (dropping the partial pending file), and any
//! other offset that is not where the stream is gets a `SnapshotMismatch`, on which the
//! leader starts again from 0.

use std::sync::Arc;

use openraft::error::{InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{InstallSnapshotRequest, InstallSnapshotResponse};
use openraft::storage::Snapshot;
use openraft::{ErrorSubject, ErrorVerb, Raft, SnapshotId, SnapshotSegmentId, StorageError};
use snapseal_openraft::SealedData;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::kv::{Cfg, NodeId};

/// A snapshot being received: its id, the bytes so far, where they go.
struct Stream {
    id: SnapshotId,
    offset: u64,
    data: Box<SealedData>,
}

/// The node's one snapshot stream in progress, if any.
#[derive(Clone, Default)]
pub(crate) struct Inbox {
    stream: Arc<Mutex<Option<Stream>>>,
}

type Answer = Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;

fn storage(
    req: &InstallSnapshotRequest<Cfg>,
    verb: ErrorVerb,
    e: std::io::Error,
) -> RaftError<NodeId, InstallSnapshotError> {
    let e =
        StorageError::from_io_error(ErrorSubject::Snapshot(Some(req.meta.signature())), verb, e);
    RaftError::Fatal(e.into())
}

impl Inbox {
    /// Takes one chunk; installs the snapshot with the last one.
    pub(crate) async fn receive(
        &self,
        raft: &Raft<Cfg>,
        req: InstallSnapshotRequest<Cfg>,
    ) -> Answer {
        let my_vote = raft.with_raft_state(|s| *s.vote_ref()).await?;
        if req.vote < my_vote {
            // A stale leader: the answer carries the newer vote, which makes it step down.
            return Ok(InstallSnapshotResponse { vote: my_vote });
        }
        let mut slot = self.stream.lock().await;
        if req.offset == 0 {
            let data = raft
                .begin_receiving_snapshot()
                .await
                .map_err(|e| match e.into_fatal() {
                    Some(f) => RaftError::Fatal(f),
                    None => RaftError::Fatal(openraft::error::Fatal::Stopped),
                })?;
            // Replacing an unfinished stream drops its pending file.
            *slot = Some(Stream {
                id: req.meta.snapshot_id.clone(),
                offset: 0,
                data,
            });
        }
        let stream = match slot.as_mut() {
            Some(s) if s.id == req.meta.snapshot_id && s.offset == req.offset => s,
            other => {
                let expect = SnapshotSegmentId {
                    id: req.meta.snapshot_id.clone(),
                    offset: other
                        .as_ref()
                        .filter(|s| s.id == req.meta.snapshot_id)
                        .map_or(0, |s| s.offset),
                };
                let got = SnapshotSegmentId {
                    id: req.meta.snapshot_id.clone(),
                    offset: req.offset,
                };
                return Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(
                    SnapshotMismatch { expect, got },
                )));
            }
        };
        if let Err(e) = stream.data.write_all(&req.data).await {
            *slot = None;
            return Err(storage(&req, ErrorVerb::Write, e));
        }
        stream.offset += req.data.len() as u64;
        if !req.done {
            return Ok(InstallSnapshotResponse { vote: my_vote });
        }
        let Some(mut done) = slot.take() else {
            return Ok(InstallSnapshotResponse { vote: my_vote });
        };
        drop(slot);
        done.data
            .shutdown()
            .await
            .map_err(|e| storage(&req, ErrorVerb::Write, e))?;
        let snapshot = Snapshot {
            meta: req.meta.clone(),
            snapshot: done.data,
        };
        let resp = raft.install_full_snapshot(req.vote, snapshot).await?;
        Ok(resp.into())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::storage::RaftStateMachine;
    use openraft::{
        CommittedLeaderId, Config, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Vote,
    };
    use snapseal_openraft::testing::{MemLog, Router};
    use snapseal_openraft::{SealOptions, SealedStateMachine};
    use snapseal_persist::SigningKey;
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::kv::{Cmd, Kv};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_resent_first_chunk_starts_the_stream_afresh_and_the_snapshot_installs() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let opts = SealOptions::new(key.clone(), vec![key.verifying_key()]);
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

        // The leader's snapshot of {k: v} at log index 1, as bytes.
        let mut a: SealedStateMachine<Cfg, Kv> =
            SealedStateMachine::open(a_dir.path(), opts.clone()).unwrap();
        let put = Cmd::Put {
            key: "k".into(),
            value: "v".into(),
        };
        let leader = CommittedLeaderId::new(1, 1);
        a.apply([Entry::<Cfg> {
            log_id: LogId::new(leader, 1),
            payload: EntryPayload::Normal(put),
        }])
        .await
        .unwrap();
        let mut built = a
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let mut bytes = Vec::new();
        built.snapshot.read_to_end(&mut bytes).await.unwrap();
        let half = bytes.len() / 2;

        // The follower, a fresh node.
        let b: SealedStateMachine<Cfg, Kv> = SealedStateMachine::open(b_dir.path(), opts).unwrap();
        let state = b.state_handle();
        let config = Arc::new(Config::default().validate().unwrap());
        let raft = Raft::new(2, config, Router::default(), MemLog::default(), b)
            .await
            .unwrap();
        let chunk = |offset: usize, end: usize| InstallSnapshotRequest::<Cfg> {
            vote: Vote::new_committed(1, 1),
            meta: built.meta.clone(),
            offset: offset as u64,
            data: bytes[offset..end].to_vec(),
            done: end == bytes.len(),
        };
        let inbox = Inbox::default();
        inbox.receive(&raft, chunk(0, half)).await.unwrap();
        // The leader timed out on that chunk and sends the snapshot again from the start.
        inbox.receive(&raft, chunk(0, half)).await.unwrap();
        // A chunk not where the stream is: a mismatch, never a write at the wrong place.
        let skipped = inbox.receive(&raft, chunk(half + 1, bytes.len())).await;
        assert!(matches!(
            skipped,
            Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(
                _
            )))
        ));
        inbox
            .receive(&raft, chunk(half, bytes.len()))
            .await
            .unwrap();
        let want: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        assert_eq!(state.read().0, want);
        raft.shutdown().await.unwrap();
    }
}
