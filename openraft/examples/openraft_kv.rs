//! A key-value service on a 3-node openraft cluster whose snapshots are snapseal files, in one
//! process: PUTs go through Raft, GETs are answered from each node's live state (a
//! `StateHandle` the service keeps while openraft owns the state machine). openraft snapshots
//! and purges its log; a 4th node joins as a learner, catches up by installing the leader's
//! snapseal snapshot, and answers GETs from the same handle it had before; then every node
//! stops, and its directory alone gives back the state of its newest snapshot that verifies.
//!
//! The log store and the network are `snapseal_openraft::testing`'s in-memory ones (a real
//! node brings its own); everything else is here.
//!
//! `cargo run --example openraft_kv` (from the repository root). The adapter's tests run it
//! (`cargo test -p snapseal-openraft --test adapter example`), so it cannot rot.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use openraft::{BasicNode, Config, LogId, Raft, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use snapseal_openraft::testing::{MemLog, Router};
use snapseal_openraft::{
    Released, SealOptions, SealedData, SealedState, SealedStateMachine, StateHandle,
};
use snapseal_persist::SigningKey;

/// The one command: set `key` to `value`. The response is the value it replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Put {
    /// The key.
    pub(crate) key: String,
    /// Its new value.
    pub(crate) value: String,
}

openraft::declare_raft_types!(
    /// The service's Raft types: its snapshots are snapseal files (`SealedData`).
    pub(crate) Cfg: D = Put, R = Option<String>, SnapshotData = SealedData,
);

/// Nodes are numbered.
pub(crate) type NodeId = u64;

/// The service's state: a sorted map, serialised as JSON lines of (key, value).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Kv(pub(crate) BTreeMap<String, String>);

impl SealedState<Cfg> for Kv {
    fn apply(&mut self, _: &LogId<NodeId>, put: &Put) -> Option<String> {
        self.0.insert(put.key.clone(), put.value.clone())
    }

    fn no_data_response(&self, _: &LogId<NodeId>) -> Option<String> {
        None
    }

    fn serialise(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut out = io::BufWriter::with_capacity(1 << 20, out);
        for (k, v) in &self.0 {
            serde_json::to_writer(&mut out, &(k, v))?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    fn restore(input: &mut dyn Read) -> io::Result<Self> {
        let mut map = BTreeMap::new();
        for line in io::BufReader::new(input).lines() {
            let (k, v): (String, String) = serde_json::from_str(&line?)?;
            map.insert(k, v);
        }
        Ok(Kv(map))
    }
}

/// Node `id`'s signing key (a real node loads its own; these are fixed for the demo).
pub(crate) fn key(id: NodeId) -> SigningKey {
    SigningKey::from_bytes(&[id as u8 + 1; 32])
}

/// Node `id`'s options: its key signs its snapshots, and it trusts the snapshots of every
/// node in `0..=max` (the cluster's members).
pub(crate) fn options(id: NodeId, max: NodeId) -> SealOptions {
    SealOptions::new(key(id), (0..=max).map(|i| key(i).verifying_key()).collect())
}

/// One node of the service: Raft for writes, the live state for reads.
pub(crate) struct KvNode {
    /// The node's id.
    pub(crate) id: NodeId,
    /// Its Raft instance.
    pub(crate) raft: Raft<Cfg>,
    kv: StateHandle<Kv>,
    released: Released,
}

impl KvNode {
    /// Opens node `id`'s snapshot directory (recovering its newest snapshot that verifies)
    /// and starts Raft on it.
    pub(crate) async fn start(
        id: NodeId,
        dir: &Path,
        max: NodeId,
        config: Arc<Config>,
        router: &Router<Cfg>,
        log: MemLog<Cfg>,
    ) -> anyhow::Result<KvNode> {
        let sm: SealedStateMachine<Cfg, Kv> = SealedStateMachine::open(dir, options(id, max))?;
        // Both before `Raft::new` takes the machine: the live state, and the signal that the
        // directory is free again after shutdown.
        let (kv, released) = (sm.state_handle(), sm.released());
        let raft = Raft::new(id, config, router.clone(), log, sm).await?;
        router.serve(id, raft.clone());
        Ok(KvNode {
            id,
            raft,
            kv,
            released,
        })
    }

    /// PUT through Raft (on the leader): returns once applied here, with the value replaced
    /// and the log index it was applied at (what a follower waits for: the leader's metrics
    /// may not show it yet).
    pub(crate) async fn put(
        &self,
        key: &str,
        value: &str,
    ) -> anyhow::Result<(Option<String>, u64)> {
        let put = Put {
            key: key.into(),
            value: value.into(),
        };
        let written = self.raft.client_write(put).await?;
        Ok((written.data, written.log_id.index))
    }

    /// A linearizable GET (on the leader): confirms it still leads and has applied everything
    /// committed before the read, then reads the live state.
    pub(crate) async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        self.raft.ensure_linearizable().await?;
        Ok(self.local_get(key))
    }

    /// A GET from this node's applied state as it is (any node; may lag the leader).
    pub(crate) fn local_get(&self, key: &str) -> Option<String> {
        self.kv.read().0.get(key).cloned()
    }

    /// Keys in this node's applied state.
    pub(crate) fn len(&self) -> usize {
        self.kv.read().0.len()
    }

    /// Waits until this node applied the log up to `index`.
    pub(crate) async fn applied(&self, index: u64) -> anyhow::Result<()> {
        self.raft
            .wait(Some(Duration::from_secs(30)))
            .metrics(
                |m| m.last_applied.is_some_and(|l| l.index >= index),
                "applied",
            )
            .await?;
        Ok(())
    }

    /// Stops the node; returns once its snapshot directory is free to open again.
    pub(crate) async fn stop(self, router: &Router<Cfg>) -> anyhow::Result<()> {
        router.remove(self.id);
        snapseal_openraft::shutdown(&self.raft, self.released).await?;
        Ok(())
    }
}

/// The demo, in directory `root`. Checks what it shows: an error if any step does not hold.
pub(crate) async fn run(root: &Path) -> anyhow::Result<()> {
    let config = Arc::new(
        Config {
            heartbeat_interval: 50,
            election_timeout_min: 300,
            election_timeout_max: 600,
            // Snapshot every 50 entries and purge the log up to it: a node that joins later
            // can only catch up through a snapshot.
            snapshot_policy: SnapshotPolicy::LogsSinceLast(50),
            max_in_snapshot_log_to_keep: 0,
            ..Default::default()
        }
        .validate()?,
    );
    let router = Router::default();
    let dir = |id: NodeId| root.join(format!("node{id}"));
    let mut nodes = BTreeMap::new();
    for id in 1..=4 {
        let log = MemLog::default();
        let node = KvNode::start(id, &dir(id), 4, config.clone(), &router, log).await?;
        nodes.insert(id, node);
    }
    let voters: BTreeMap<NodeId, BasicNode> = (1..=3).map(|i| (i, BasicNode::default())).collect();
    let leader = &nodes[&1];
    leader.raft.initialize(voters).await?;
    leader
        .raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.current_leader == Some(1), "leader elected")
        .await?;

    for i in 0..200 {
        let (replaced, _) = leader.put(&format!("key{i}"), &format!("value{i}")).await?;
        ensure!(replaced.is_none(), "key{i} was new");
    }
    let (replaced, last) = leader.put("key7", "seven").await?;
    ensure!(replaced.as_deref() == Some("value7"));
    ensure!(leader.get("key7").await?.as_deref() == Some("seven"));
    for id in [2, 3] {
        nodes[&id].applied(last).await?;
        ensure!(nodes[&id].local_get("key199").as_deref() == Some("value199"));
    }
    leader
        .raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.purged.is_some(), "log purged after a snapshot")
        .await?;
    let m = leader.raft.metrics().borrow().clone();
    println!(
        "leader: last log {:?}, snapshot {:?}, log purged up to {:?}; GET key7 = {:?}",
        m.last_log_index,
        m.snapshot,
        m.purged,
        leader.get("key7").await?
    );

    // Node 4 joins as a learner: the entries it lacks are purged, so the leader sends its
    // snapshot, which node 4 verifies, commits and installs. Its handle, taken before it had
    // any state, now answers with the installed state.
    let learner = &nodes[&4];
    ensure!(learner.len() == 0, "the learner starts empty");
    leader
        .raft
        .add_learner(4, BasicNode::default(), true)
        .await?;
    learner.applied(last).await?;
    let m4 = learner.raft.metrics().borrow().clone();
    ensure!(
        m4.snapshot.is_some(),
        "the learner caught up through a snapshot"
    );
    ensure!(learner.local_get("key0").as_deref() == Some("value0"));
    ensure!(learner.local_get("key7").as_deref() == Some("seven"));
    println!(
        "learner 4 caught up to {:?} via snapshot {:?}; GET key0 there = {:?}",
        m4.last_applied,
        m4.snapshot,
        learner.local_get("key0")
    );
    // And it follows new writes through its log, on top of the installed state.
    let (_, last) = leader.put("after", "join").await?;
    learner.applied(last).await?;
    ensure!(learner.local_get("after").as_deref() == Some("join"));

    for (id, node) in nodes {
        node.stop(&router).await?;
        let files: Vec<String> = std::fs::read_dir(dir(id))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".committed"))
            .collect();
        // Stopped means the directory is free: it opens at once.
        let sm: SealedStateMachine<Cfg, Kv> = SealedStateMachine::open(&dir(id), options(id, 4))?;
        let recovered = sm.state_handle().read().0.len();
        ensure!(recovered > 0, "node {id} recovered its snapshot");
        println!(
            "node {id}: {} snapshot file(s) {files:?}; recovered {recovered} keys from its newest snapshot that verifies (later entries are in the Raft log)",
            files.len(),
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    run(root.path()).await
}
