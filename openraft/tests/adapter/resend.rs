//! A snapshot re-sent from offset 0 under the same id is received. openraft 0.9's chunk
//! receiver seeks to each chunk's offset in the data `begin_receiving_snapshot` gave it, and
//! its sender starts a snapshot over from offset 0 after a chunk timed out (a slow or
//! partitioned follower). A receiving `SealedData` used to refuse any seek but to its end, so
//! that follower could never take the snapshot (found by snapseal-cluster's nodes).

use std::sync::Arc;

use openraft::raft::InstallSnapshotRequest;
use openraft::storage::RaftStateMachine;
use openraft::{
    CommittedLeaderId, Config, Entry, EntryPayload, LogId, Raft, RaftSnapshotBuilder, Vote,
};
use snapseal_openraft::testing::{MemLog, Router};
use snapseal_openraft::SealedStateMachine;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::example::{self, Cfg, Kv, Put};

fn put(index: u64, key: &str, value: &str) -> Entry<Cfg> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Put {
            key: key.into(),
            value: value.into(),
        }),
    }
}

/// Node 1's snapshot of a few keys: its metadata and its bytes.
async fn leader_snapshot(
    dir: &std::path::Path,
) -> (openraft::SnapshotMeta<u64, openraft::BasicNode>, Vec<u8>) {
    let mut a: SealedStateMachine<Cfg, Kv> =
        SealedStateMachine::open(dir, example::options(1, 3)).unwrap();
    a.apply((1..=50).map(|i| put(i, &format!("k{i}"), &"v".repeat(100))))
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
    (built.meta, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_receives_a_snapshot_resent_from_offset_0_under_the_same_id() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (meta, bytes) = leader_snapshot(a_dir.path()).await;
    assert!(bytes.len() > 1000);

    let b: SealedStateMachine<Cfg, Kv> =
        SealedStateMachine::open(b_dir.path(), example::options(2, 3)).unwrap();
    let kv = b.state_handle();
    let config = Arc::new(Config::default().validate().unwrap());
    let raft = Raft::new(2, config, Router::default(), MemLog::default(), b)
        .await
        .unwrap();
    let chunk = |offset: usize, end: usize, done: bool| InstallSnapshotRequest::<Cfg> {
        vote: Vote::new_committed(1, 1),
        meta: meta.clone(),
        offset: offset as u64,
        data: bytes[offset..end].to_vec(),
        done,
    };
    let half = bytes.len() / 2;
    raft.install_snapshot(chunk(0, half, false)).await.unwrap();
    // The sender timed out on the next chunk and starts over, as openraft 0.9's does.
    let resent = raft.install_snapshot(chunk(0, half, false)).await;
    assert!(resent.is_ok(), "{resent:?}");
    raft.install_snapshot(chunk(half, bytes.len(), true))
        .await
        .unwrap();
    raft.shutdown().await.unwrap();
    assert_eq!(kv.read().0.len(), 50);
    assert_eq!(kv.read().0.get("k7").map(String::len), Some(100));
}

#[tokio::test]
async fn a_receiving_snapshot_refuses_a_seek_into_its_middle() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm: SealedStateMachine<Cfg, Kv> =
        SealedStateMachine::open(dir.path(), example::options(2, 3)).unwrap();
    let mut data = sm.begin_receiving_snapshot().await.unwrap();
    data.write_all(&[0u8; 100]).await.unwrap();
    // Back into what was received: not a restart, and the bytes after it are gone.
    let err = data.seek(std::io::SeekFrom::Start(40)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    assert_eq!(data.len(), 100);
    // Forward past the end: a gap.
    assert!(data.seek(std::io::SeekFrom::Start(200)).await.is_err());
    // To the start: a restart, the pending file begun again.
    assert_eq!(data.seek(std::io::SeekFrom::Start(0)).await.unwrap(), 0);
    assert_eq!(data.len(), 0);
}
