//! The live state handle: the application reads what the machine applied, and a snapshot
//! install shows through a handle taken before it (the handle stays valid; a refused install
//! leaves it as it was).

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use snapseal_openraft::SealedStateMachine;
use tokio::io::AsyncWriteExt;

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

fn open(dir: &std::path::Path, id: u64) -> SealedStateMachine<Cfg, Kv> {
    SealedStateMachine::open(dir, example::options(id, 3)).unwrap()
}

#[tokio::test]
async fn the_handle_reads_what_apply_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path(), 1);
    let kv = sm.state_handle();
    assert!(kv.read().0.is_empty());
    sm.apply([put(0, "a", "1"), put(1, "b", "2")])
        .await
        .unwrap();
    assert_eq!(kv.read().0.get("a").map(String::as_str), Some("1"));
    sm.apply([put(2, "a", "3")]).await.unwrap();
    assert_eq!(kv.read().0.get("a").map(String::as_str), Some("3"));
    assert_eq!(kv.read().0.len(), 2);
}

#[tokio::test]
async fn a_snapshot_install_shows_through_a_handle_taken_before_it() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(leader_dir.path(), 1);
    leader
        .apply((0..20).map(|i| put(i, &format!("k{i}"), "leader")))
        .await
        .unwrap();
    let sent = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut sent.snapshot.file().unwrap().file_reader(), &mut bytes)
        .unwrap();

    let mut follower = open(follower_dir.path(), 2);
    follower.apply([put(0, "own", "x")]).await.unwrap();
    let kv = follower.state_handle();
    let before = kv.read().clone();

    // A damaged copy is refused: the handle still shows the follower's own state.
    let mut damaged = bytes.clone();
    damaged[300] ^= 1;
    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    data.write_all(&damaged).await.unwrap();
    assert!(follower.install_snapshot(&sent.meta, data).await.is_err());
    assert_eq!(*kv.read(), before);

    // The genuine one installs, and the same handle now reads the leader's state.
    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    data.write_all(&bytes).await.unwrap();
    follower.install_snapshot(&sent.meta, data).await.unwrap();
    assert_eq!(*kv.read(), *leader.state_handle().read());
    assert_eq!(kv.read().0.get("own"), None);

    // And it goes on following what is applied after the install.
    follower.apply([put(20, "later", "y")]).await.unwrap();
    assert_eq!(kv.read().0.get("later").map(String::as_str), Some("y"));
}
