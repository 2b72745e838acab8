//! An in-process openraft cluster (network over tokio channels) whose snapshots are snapseal
//! files: build and purge, a learner catching up through install_snapshot (and answering
//! reads from the state it installed), restart recovery, fallback past a damaged newest
//! snapshot, and a receive cut off midway.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::example::{self, Cfg, Kv, KvNode, NodeId, Put};
use openraft::storage::RaftStateMachine;
use openraft::{BasicNode, Config, LogId, Raft, SnapshotPolicy};
use snapseal_openraft::testing::{MemLog, Router};
use snapseal_openraft::SealedStateMachine;
use tokio::io::AsyncWriteExt;

const MAX_NODE: NodeId = 4;

fn config(keep_logs: u64, snapshot_every: u64) -> Arc<Config> {
    let c = Config {
        cluster_name: "snapseal".into(),
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every),
        max_in_snapshot_log_to_keep: keep_logs,
        purge_batch_size: 1,
        // Small chunks, so a snapshot takes several install_snapshot requests.
        snapshot_max_chunk_size: 4096,
        ..Default::default()
    };
    Arc::new(c.validate().unwrap())
}

fn open(dir: &Path, id: NodeId) -> SealedStateMachine<Cfg, Kv> {
    SealedStateMachine::open(dir, example::options(id, MAX_NODE)).unwrap()
}

async fn start(
    router: &Router<Cfg>,
    id: NodeId,
    dir: &Path,
    cfg: Arc<Config>,
    log: MemLog<Cfg>,
) -> KvNode {
    KvNode::start(id, dir, MAX_NODE, cfg, router, log)
        .await
        .unwrap()
}

fn committed_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".committed"))
        .collect()
}

fn expected(n: usize) -> BTreeMap<String, String> {
    (0..n)
        .map(|i| (format!("k{i:04}"), format!("v{i}")))
        .collect()
}

async fn write_keys(leader: &Raft<Cfg>, range: std::ops::Range<usize>) {
    for i in range {
        leader
            .client_write(Put {
                key: format!("k{i:04}"),
                value: format!("v{i}"),
            })
            .await
            .unwrap();
    }
}

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

async fn wait_applied(raft: &Raft<Cfg>, index: u64, msg: &str) {
    raft.wait(WAIT)
        .metrics(|m| m.last_applied.is_some_and(|l| l.index >= index), msg)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_snapshots_learner_restart_and_fallback() {
    let dirs: Vec<tempfile::TempDir> = (0..=MAX_NODE)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let logs: Vec<MemLog<Cfg>> = (0..=MAX_NODE).map(|_| MemLog::default()).collect();
    let router = Router::default();
    // Node 3 keeps its log after snapshots, so it can replay past a fallback snapshot.
    let cfg_for = |id: NodeId| {
        if id == 3 {
            config(1000, 20)
        } else {
            config(0, 20)
        }
    };

    let dir = |id: NodeId| dirs[id as usize].path();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        let node = start(&router, id, dir(id), cfg_for(id), logs[id as usize].clone()).await;
        nodes.insert(id, node);
    }
    let raft = |nodes: &BTreeMap<NodeId, KvNode>, id: NodeId| nodes[&id].raft.clone();
    let members: BTreeMap<NodeId, BasicNode> =
        (1..=3).map(|id| (id, BasicNode::default())).collect();
    raft(&nodes, 1).initialize(members).await.unwrap();
    raft(&nodes, 1)
        .wait(WAIT)
        .metrics(|m| m.current_leader == Some(1), "node 1 leads")
        .await
        .unwrap();

    // --- 3 nodes write keys; snapshots are built (every 20 entries) and the log purged.
    write_keys(&raft(&nodes, 1), 0..100).await;
    let last = raft(&nodes, 1).metrics().borrow().last_log_index.unwrap();
    for id in 1..=3 {
        wait_applied(&raft(&nodes, id), last, "applied everything").await;
        snapshot_at(&raft(&nodes, id), last).await;
        assert!(
            committed_files(dirs[id as usize].path()).len() >= 2,
            "node {id}: several snapshots committed"
        );
    }
    for id in [1, 2] {
        raft(&nodes, id)
            .wait(WAIT)
            .metrics(|m| m.purged.is_some_and(|p| p.index == last), "log purged")
            .await
            .unwrap();
    }
    let leader_snapshot = raft(&nodes, 1).metrics().borrow().snapshot.unwrap();

    // --- A 4th node joins as a learner: the leader's log is purged, so it catches up through
    // install_snapshot of a snapseal snapshot. It never builds one itself (policy too high).
    // The handle it read from before it joined answers with the installed state.
    let node4 = start(&router, 4, dir(4), config(0, 1_000_000), logs[4].clone()).await;
    assert_eq!(node4.len(), 0);
    raft(&nodes, 1)
        .add_learner(4, BasicNode::default(), true)
        .await
        .unwrap();
    wait_applied(&node4.raft, last, "learner caught up").await;
    let m4 = node4.raft.metrics().borrow().clone();
    assert_eq!(
        m4.snapshot,
        Some(leader_snapshot),
        "learner installed the leader's snapshot"
    );
    assert_eq!(
        node4.len(),
        100,
        "the learner's handle sees the installed state"
    );
    assert_eq!(node4.local_get("k0042").as_deref(), Some("v42"));
    let installed = format!("snapshot_{}_{}.committed", last + 1, last + 2);
    assert!(committed_files(dir(4)).contains(&installed));
    node4.stop(&router).await.unwrap();
    // The learner's directory alone (its log was empty) gives the whole state.
    assert_eq!(open(dir(4), 4).state_handle().read().0, expected(100));

    // --- Node 2 restarts from its directory (its log survives, as a disk log would).
    nodes.remove(&2).unwrap().stop(&router).await.unwrap();
    let mut sm2 = open(dir(2), 2);
    let (applied, _) = sm2.applied_state().await.unwrap();
    assert_eq!(
        applied.map(|l: LogId<NodeId>| l.index),
        Some(last),
        "recovered from the newest snapshot"
    );
    assert_eq!(sm2.state_handle().read().0, expected(100));
    drop(sm2);
    let node2 = start(&router, 2, dir(2), cfg_for(2), logs[2].clone()).await;
    nodes.insert(2, node2);

    // --- Node 3's newest snapshot is damaged while it is down: it falls back to the one
    // before (quarantining the damaged one) and replays its log from there. First it builds
    // one more of its own past `last`, so the one before its newest is at `last` or later:
    // on a loaded machine node 3 can fall behind above and be sent the leader's snapshot
    // (the leader keeps no log), which purges node 3's log up to it, and a fallback older
    // than the log cannot be replayed (openraft refuses to start; see
    // `SealedStateMachine::open`).
    write_keys(&raft(&nodes, 1), 100..105).await;
    let before_damage = raft(&nodes, 1).metrics().borrow().last_log_index.unwrap();
    wait_applied(&raft(&nodes, 3), before_damage, "node 3 applied 100..105").await;
    snapshot_at(&raft(&nodes, 3), before_damage).await;
    nodes.remove(&3).unwrap().stop(&router).await.unwrap();
    let files = committed_files(dir(3));
    let newest = files
        .iter()
        .max_by_key(|n| snapshot_idx(n))
        .unwrap()
        .clone();
    let second = files
        .iter()
        .filter(|n| **n != newest)
        .max_by_key(|n| snapshot_idx(n))
        .unwrap()
        .clone();
    flip_body_byte(&dir(3).join(&newest));
    let mut sm3 = open(dir(3), 3);
    let (applied, _) = sm3.applied_state().await.unwrap();
    assert_eq!(
        applied.map(|l| l.index + 1),
        Some(snapshot_idx(&second)),
        "fell back one snapshot"
    );
    assert!(
        dir(3).join(format!("{newest}.corrupt")).exists(),
        "damaged file quarantined"
    );
    assert!(
        sm3.state_handle().read().0.len() < 105,
        "an older state than the damaged snapshot's"
    );
    drop(sm3);
    let node3 = start(&router, 3, dir(3), cfg_for(3), logs[3].clone()).await;
    nodes.insert(3, node3);

    // Both restarted nodes follow new writes; node 3 replays its log to the full state.
    write_keys(&raft(&nodes, 1), 100..120).await;
    let last = raft(&nodes, 1).metrics().borrow().last_log_index.unwrap();
    for id in 1..=3 {
        wait_applied(&raft(&nodes, id), last, "caught up after restart").await;
        snapshot_at(&raft(&nodes, id), last).await;
    }
    for (id, node) in nodes {
        assert_eq!(node.len(), 120, "node {id} serves every key");
        node.stop(&router).await.unwrap();
        let sm = open(dir(id), id);
        assert_eq!(sm.state_handle().read().0, expected(120), "node {id}");
    }
}

/// Has `raft` build a snapshot at `index`: a trigger is ignored while another build is
/// running, so it is repeated until the snapshot is there.
async fn snapshot_at(raft: &Raft<Cfg>, index: u64) {
    for _ in 0..100 {
        raft.trigger().snapshot().await.unwrap();
        let done = raft
            .wait(Some(Duration::from_secs(1)))
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= index),
                "snapshot at index",
            )
            .await;
        if done.is_ok() {
            return;
        }
    }
    panic!("no snapshot at {index}");
}

/// The `idx` of a `snapshot_<idx>_<evidence>.committed` name.
fn snapshot_idx(name: &str) -> u64 {
    name.trim_start_matches("snapshot_")
        .split('_')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Flips one byte in the body (past the 160-byte header).
fn flip_body_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[200] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

/// A node that stops while receiving a snapshot (the receiving data dropped, or the process
/// gone with the pending file left behind) never gets a committed file for it, and recovers
/// from the snapshot it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_cut_off_leaves_no_committed_file() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), 1);
    let entries: Vec<_> = (0..50u64)
        .map(|i| openraft::Entry::<Cfg> {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), i),
            payload: openraft::EntryPayload::Normal(Put {
                key: format!("k{i:04}"),
                value: "x".repeat(200),
            }),
        })
        .collect();
    leader.apply(entries[..10].to_vec()).await.unwrap();
    let mut b = leader.get_snapshot_builder().await;
    let first = openraft::RaftSnapshotBuilder::build_snapshot(&mut b)
        .await
        .unwrap();
    leader.apply(entries[10..].to_vec()).await.unwrap();
    let mut b = leader.get_snapshot_builder().await;
    let second = openraft::RaftSnapshotBuilder::build_snapshot(&mut b)
        .await
        .unwrap();
    let bytes = whole(&second.snapshot);

    // The follower installs the first snapshot, then receives half of the second.
    let mut follower = open(follower_dir.path(), 2);
    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    data.write_all(&whole(&first.snapshot)).await.unwrap();
    follower.install_snapshot(&first.meta, data).await.unwrap();
    let before = committed_files(follower_dir.path());
    assert_eq!(before.len(), 1);

    // Dropped while receiving: the pending file goes, nothing is committed.
    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    data.write_all(&bytes[..bytes.len() / 2]).await.unwrap();
    drop(data);
    assert_eq!(committed_files(follower_dir.path()), before);
    assert_eq!(
        std::fs::read_dir(follower_dir.path()).unwrap().count(),
        2,
        "only the snapshot and .lock"
    );

    // The process dies while receiving (the pending file stays behind): reopening removes it
    // and recovers the first snapshot.
    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    data.write_all(&bytes[..bytes.len() - 1]).await.unwrap();
    std::mem::forget(data);
    drop(follower);
    assert_eq!(committed_files(follower_dir.path()), before);
    let mut follower = open(follower_dir.path(), 2);
    assert_eq!(committed_files(follower_dir.path()), before);
    assert_eq!(
        std::fs::read_dir(follower_dir.path()).unwrap().count(),
        2,
        "pending file removed at open"
    );
    assert_eq!(
        follower.applied_state().await.unwrap().0,
        first.meta.last_log_id
    );

    // A complete but altered file is refused before it is committed.
    let mut altered = bytes.clone();
    altered[300] ^= 1;
    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    data.write_all(&altered).await.unwrap();
    assert!(follower.install_snapshot(&second.meta, data).await.is_err());
    assert_eq!(committed_files(follower_dir.path()), before);

    // The genuine one installs.
    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    data.write_all(&bytes).await.unwrap();
    follower.install_snapshot(&second.meta, data).await.unwrap();
    assert_eq!(
        follower.applied_state().await.unwrap().0,
        second.meta.last_log_id
    );
    assert_eq!(follower.state_handle().read().0.len(), 50);
}

/// The whole file behind reading data.
fn whole(data: &snapseal_openraft::SealedData) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut data.file().unwrap().file_reader(), &mut bytes).unwrap();
    bytes
}
