//! A 3-node openraft key-value cluster in one process whose snapshots are snapseal files:
//! write keys, let openraft snapshot and purge its log, add a learner that catches up
//! through a snapseal snapshot, then recover a node's state from its directory alone.
//!
//! `cargo run --example openraft_kv` (from the repository root), or
//! `cargo run -p snapseal-openraft --example openraft_kv`

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use snapseal_openraft::SealedStateMachine;
use support::{Cfg, Kv, MemLog, NodeId, Put, Router};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let config = Arc::new(
        Config {
            heartbeat_interval: 50,
            election_timeout_min: 300,
            election_timeout_max: 600,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(50),
            max_in_snapshot_log_to_keep: 0,
            ..Default::default()
        }
        .validate()?,
    );
    let router = Router::default();
    let mut nodes = BTreeMap::new();
    for id in 1..=4u64 {
        let dir = root.path().join(format!("node{id}"));
        let sm: SealedStateMachine<Cfg, Kv> =
            SealedStateMachine::open(&dir, support::options(id, 4))?;
        let raft = Raft::new(id, config.clone(), router.clone(), MemLog::default(), sm).await?;
        router.serve(id, raft.clone());
        nodes.insert(id, (raft, dir));
    }
    let voters: BTreeMap<NodeId, BasicNode> = (1..=3).map(|i| (i, BasicNode::default())).collect();
    let leader = nodes[&1].0.clone();
    leader.initialize(voters).await?;
    leader
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.current_leader == Some(1), "leader elected")
        .await?;

    for i in 0..200 {
        leader
            .client_write(Put {
                key: format!("key{i}"),
                value: format!("value{i}"),
            })
            .await?;
    }
    let m = leader.metrics().borrow().clone();
    println!(
        "leader: last log {:?}, snapshot {:?}, log purged up to {:?}",
        m.last_log_index, m.snapshot, m.purged
    );

    leader.add_learner(4, BasicNode::default(), true).await?;
    let last = leader.metrics().borrow().last_applied;
    nodes[&4]
        .0
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.last_applied >= last, "learner caught up")
        .await?;
    let m4 = nodes[&4].0.metrics().borrow().clone();
    println!(
        "learner 4 caught up to {:?} via snapshot {:?}",
        m4.last_applied, m4.snapshot
    );

    for (id, (raft, dir)) in nodes {
        raft.shutdown().await?;
        router.remove(id);
        let files: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".committed"))
            .collect();
        let sm = support::reopen(&dir, id, 4).await;
        println!(
            "node {id}: {} snapshot file(s) {:?}; recovered {} keys from its newest snapshot that verifies (later entries are in the Raft log)",
            files.len(),
            files,
            sm.state().0.len()
        );
    }
    Ok(())
}
