//! The cluster as the driver sees it: node processes, the proxy mesh, which ids are voters, and
//! the admin steps every fault is made of (find the leader, change membership, start a node).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand_core::RngCore;
use rand_xoshiro::SplitMix64;
use serde_json::{json, Value};

use crate::http;
use crate::nodes::{self, Launcher, Node};
use crate::proxy::Mesh;
use crate::workload::Shared;

/// Counters a node's `/status` reports, summed over its restarts (see [`Tally::observe`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) built: u64,
    pub(crate) installed: u64,
    pub(crate) shipped: u64,
}

/// One node id's counters: those of its ended processes plus its current one.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    ended: Counters,
    current: Counters,
    pub(crate) restored: bool,
}

impl Tally {
    /// A fresh `/status` reading: a counter that went down means a new process.
    pub(crate) fn observe(&mut self, now: Counters) {
        let c = self.current;
        if now.built < c.built || now.installed < c.installed || now.shipped < c.shipped {
            self.ended.built += c.built;
            self.ended.installed += c.installed;
            self.ended.shipped += c.shipped;
        }
        self.current = now;
    }

    pub(crate) fn total(&self) -> Counters {
        Counters {
            built: self.ended.built + self.current.built,
            installed: self.ended.installed + self.current.installed,
            shipped: self.ended.shipped + self.current.shipped,
        }
    }
}

/// A recovery measured: from a restart (or resume, or rejoin start) until the node applied
/// what the leader had applied when it came back.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Recovery {
    pub(crate) kind: &'static str,
    pub(crate) node: u64,
    /// `None`: not caught up within the bound.
    pub(crate) ms: Option<u64>,
}

pub(crate) struct World {
    pub(crate) launcher: Launcher,
    pub(crate) mesh: Mesh,
    pub(crate) nodes: BTreeMap<u64, Node>,
    /// Nodes that left the cluster (their directories are still verified).
    pub(crate) departed: Vec<Node>,
    pub(crate) voters: BTreeSet<u64>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) http: reqwest::Client,
    pub(crate) rng: SplitMix64,
    pub(crate) next_id: u64,
    pub(crate) root: PathBuf,
    pub(crate) faults: BTreeMap<&'static str, u64>,
    pub(crate) recoveries: Vec<Recovery>,
    pub(crate) notes: Vec<String>,
    pub(crate) tallies: Arc<Mutex<HashMap<u64, Tally>>>,
    /// The node whose directory is a small tmpfs, or why there is none.
    pub(crate) disk_node: Result<u64, String>,
    pub(crate) base_nodes: usize,
}

impl World {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.rng.next_u64() % n
        }
    }

    pub(crate) fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi.saturating_sub(lo).max(1)))
    }

    /// A random element of `ids`.
    pub(crate) fn pick(&mut self, ids: &[u64]) -> Option<u64> {
        let i = usize::try_from(self.below(ids.len() as u64)).ok()?;
        ids.get(i).copied()
    }

    /// Ids of member processes that run.
    pub(crate) fn running(&mut self) -> Vec<u64> {
        self.nodes
            .iter_mut()
            .filter_map(|(&id, n)| n.running().then_some(id))
            .collect()
    }

    pub(crate) fn status_of(
        &self,
        addr: SocketAddr,
    ) -> impl std::future::Future<Output = Option<Value>> + 'static {
        let http = self.http.clone();
        async move {
            let r = http::get(&http, addr, "/status", Duration::from_secs(1))
                .await
                .ok()?;
            (r.status == 200).then_some(r.body)
        }
    }

    /// The leader with the highest term among the nodes that answer, if any claims to lead.
    pub(crate) async fn leader(&self) -> Option<(u64, SocketAddr, Value)> {
        let mut best: Option<(u64, u64, SocketAddr, Value)> = None;
        for (&id, node) in &self.nodes {
            if node.child.is_none() || node.paused {
                continue;
            }
            let Some(status) = self.status_of(node.addr).await else {
                continue;
            };
            if status.get("state").and_then(Value::as_str) != Some("Leader") {
                continue;
            }
            let term = status.get("term").and_then(Value::as_u64).unwrap_or(0);
            if best.as_ref().is_none_or(|b| term > b.0) {
                best = Some((term, id, node.addr, status));
            }
        }
        best.map(|(_, id, addr, s)| (id, addr, s))
    }

    /// The leader, waiting up to `bound` for one.
    pub(crate) async fn await_leader(&self, bound: Duration) -> Option<(u64, SocketAddr, Value)> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(l) = self.leader().await {
                return Some(l);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// POSTs an admin request to the leader until it answers 200 (bounded).
    pub(crate) async fn admin(&self, path: &str, body: Value, bound: Duration) -> Result<()> {
        let deadline = Instant::now() + bound;
        let mut last = String::from("no leader");
        while Instant::now() < deadline {
            if let Some((_, addr, _)) = self.leader().await {
                let left = deadline.saturating_duration_since(Instant::now());
                match http::post(
                    &self.http,
                    addr,
                    path,
                    &body,
                    left.max(Duration::from_secs(1)),
                )
                .await
                {
                    Ok(r) if r.status == 200 => return Ok(()),
                    Ok(r) => last = format!("{} {}", r.status, truncate(&r.body.to_string())),
                    Err(e) => last = e,
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        bail!("{path} {body}: {last}")
    }

    /// `changes` voters: the new set.
    pub(crate) async fn set_voters(&mut self, voters: BTreeSet<u64>) -> Result<()> {
        let list: Vec<u64> = voters.iter().copied().collect();
        self.admin(
            "/admin/change-membership",
            json!({ "voters": list }),
            Duration::from_secs(30),
        )
        .await?;
        self.voters = voters;
        Ok(())
    }

    /// Makes a node with a new id (not started), with its proxies.
    pub(crate) async fn new_node(&mut self) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let addr = nodes::free_addr()?;
        let dir = self.root.join("nodes").join(format!("n{id}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        self.mesh.add(id, addr).await?;
        let node = Node {
            id,
            addr,
            dir,
            routes: self.mesh.routes_file(id),
            child: None,
            paused: false,
        };
        self.nodes.insert(id, node);
        Ok(id)
    }

    pub(crate) fn start(&mut self, id: u64, restore: bool, bootstrap: Option<&str>) -> Result<()> {
        let Some(node) = self.nodes.get_mut(&id) else {
            bail!("no node {id}");
        };
        self.launcher.start(node, restore, bootstrap)?;
        self.shared.set_node(id, Some(node.addr));
        Ok(())
    }

    /// Waits until node `id` answers `/status`; its reply.
    pub(crate) async fn await_up(&self, id: u64, bound: Duration) -> Option<Value> {
        let addr = self.nodes.get(&id)?.addr;
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Some(s) = self.status_of(addr).await {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// What the leader has applied now (the index a recovering node must reach).
    pub(crate) async fn leader_applied(&self) -> Option<u64> {
        let (_, _, s) = self.await_leader(Duration::from_secs(10)).await?;
        s.get("last_applied").and_then(Value::as_u64)
    }

    /// Time until node `id` applied `target` (from `since`), or `None` past `bound`.
    pub(crate) async fn caught_up(
        &self,
        id: u64,
        target: Option<u64>,
        since: Instant,
        bound: Duration,
    ) -> Option<u64> {
        let addr = self.nodes.get(&id)?.addr;
        let target = target.unwrap_or(0);
        while since.elapsed() < bound {
            if let Some(s) = self.status_of(addr).await {
                if s.get("last_applied").and_then(Value::as_u64).unwrap_or(0) >= target {
                    return u64::try_from(since.elapsed().as_millis()).ok();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub(crate) fn count(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    pub(crate) fn note(&mut self, line: String) {
        eprintln!("chaos: {line}");
        self.notes.push(line);
    }

    /// Every counter summed over every node id.
    pub(crate) fn totals(&self) -> (Counters, u64) {
        let tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let mut sum = Counters::default();
        let mut restored = 0;
        for t in tallies.values() {
            let c = t.total();
            sum.built += c.built;
            sum.installed += c.installed;
            sum.shipped += c.shipped;
            restored += u64::from(t.restored);
        }
        (sum, restored)
    }
}

/// Polls every known node's `/status` every half second into `tallies` until `shared.stop`.
pub(crate) async fn poll_status(
    shared: Arc<Shared>,
    http: reqwest::Client,
    tallies: Arc<Mutex<HashMap<u64, Tally>>>,
    until: Arc<std::sync::atomic::AtomicBool>,
) {
    while !until.load(std::sync::atomic::Ordering::Relaxed) {
        let nodes: Vec<(u64, SocketAddr)> = shared
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(&id, &a)| (id, a))
            .collect();
        for (id, addr) in nodes {
            let Ok(r) = http::get(&http, addr, "/status", Duration::from_millis(500)).await else {
                continue;
            };
            if r.status != 200 {
                continue;
            }
            let n = |k: &str| r.body.get(k).and_then(Value::as_u64).unwrap_or(0);
            let now = Counters {
                built: n("snapshots_built"),
                installed: n("snapshots_installed"),
                shipped: n("shipped"),
            };
            let restored = r.body.get("restored_index").is_some_and(|v| !v.is_null());
            let mut t = tallies.lock().unwrap_or_else(|e| e.into_inner());
            let tally = t.entry(id).or_default();
            tally.observe(now);
            tally.restored |= restored;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// At most 200 characters of something a node said.
pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}
