//! The faults, one at a time, each chosen and timed from the seed: a fault is injected, held
//! while the clients run, then healed (with the recovery measured where a node comes back).
//! One node at a time is hurt, so a majority stays up and the cluster makes progress.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::sys::signal::Signal;
use serde_json::json;

use crate::nodes;
use crate::proxy::Mode;
use crate::world::{Recovery, World};

/// Every kind, with its weight in the draw.
const KINDS: [(&str, u64); 10] = [
    ("kill9_restart", 4),
    ("pause", 2),
    ("isolate", 2),
    ("one_way", 1),
    ("partition_leader", 2),
    ("delay", 2),
    ("disk_full", 1),
    ("rejoin_from_remote", 1),
    ("add_member", 1),
    ("remove_member", 1),
];

/// How long a recovering node may take to catch up before it is reported as not recovered.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

impl World {
    /// Draws a fault kind and injects it; `Ok(false)` when the kind does not apply now.
    pub(crate) async fn inject_one(&mut self) -> Result<bool> {
        let total: u64 = KINDS.iter().map(|k| k.1).sum();
        let mut roll = self.below(total);
        let mut kind = KINDS[0].0;
        for (k, w) in KINDS {
            if roll < w {
                kind = k;
                break;
            }
            roll -= w;
        }
        let applied = match kind {
            "kill9_restart" => self.kill9_restart().await?,
            "pause" => self.pause().await,
            "isolate" => self.isolate().await,
            "one_way" => self.one_way().await,
            "partition_leader" => self.partition_leader().await,
            "delay" => self.delay().await,
            "disk_full" => self.disk_full().await?,
            "rejoin_from_remote" => self.rejoin_from_remote().await?,
            "add_member" => self.add_member().await?,
            _ => self.remove_member().await?,
        };
        if applied {
            self.count(kind);
        }
        Ok(applied)
    }

    async fn kill9_restart(&mut self) -> Result<bool> {
        let running = self.running();
        let Some(id) = self.pick(&running) else {
            return Ok(false);
        };
        eprintln!("chaos: kill -9 node {id}");
        if let Some(n) = self.nodes.get_mut(&id) {
            nodes::kill9(n).await;
        }
        let down = self.millis(200, 2500);
        tokio::time::sleep(down).await;
        let target = self.leader_applied().await;
        let since = Instant::now();
        self.start(id, false, None)?;
        let ms = self.caught_up(id, target, since, RECOVERY_BOUND).await;
        self.recoveries.push(Recovery {
            kind: "kill9_restart",
            node: id,
            ms,
        });
        Ok(true)
    }

    async fn pause(&mut self) -> bool {
        let running = self.running();
        let Some(id) = self.pick(&running) else {
            return false;
        };
        eprintln!("chaos: SIGSTOP node {id}");
        if let Some(n) = self.nodes.get_mut(&id) {
            nodes::signal(n, Signal::SIGSTOP);
            n.paused = true;
        }
        let hold = self.millis(300, 4000);
        tokio::time::sleep(hold).await;
        let target = self.leader_applied().await;
        if let Some(n) = self.nodes.get_mut(&id) {
            nodes::signal(n, Signal::SIGCONT);
            n.paused = false;
        }
        let since = Instant::now();
        let ms = self.caught_up(id, target, since, RECOVERY_BOUND).await;
        self.recoveries.push(Recovery {
            kind: "pause",
            node: id,
            ms,
        });
        true
    }

    async fn isolate(&mut self) -> bool {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        let Some(id) = self.pick(&ids) else {
            return false;
        };
        let mode = if self.below(2) == 0 {
            Mode::Stall
        } else {
            Mode::Refuse
        };
        eprintln!("chaos: isolate node {id} ({mode:?})");
        self.mesh.isolate(id, mode);
        let hold = self.millis(1000, 5000);
        tokio::time::sleep(hold).await;
        self.mesh.heal();
        true
    }

    async fn one_way(&mut self) -> bool {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        let (Some(a), Some(b)) = (self.pick(&ids), self.pick(&ids)) else {
            return false;
        };
        if a == b {
            return false;
        }
        eprintln!("chaos: link {a}->{b} stalls");
        self.mesh.set(a, b, Mode::Stall);
        let hold = self.millis(1000, 5000);
        tokio::time::sleep(hold).await;
        self.mesh.heal();
        true
    }

    /// The leader and a random minority on one side, the rest on the other.
    async fn partition_leader(&mut self) -> bool {
        let Some((leader, _, _)) = self.leader().await else {
            return false;
        };
        let mut others: Vec<u64> = self
            .nodes
            .keys()
            .copied()
            .filter(|&i| i != leader)
            .collect();
        // The leader's side is a strict minority, so the rest can elect and go on.
        let minority_extra = (self.nodes.len().saturating_sub(1) / 2).saturating_sub(1);
        let extra = usize::try_from(self.below(minority_extra as u64 + 1)).unwrap_or(0);
        let mut side = vec![leader];
        for _ in 0..extra.min(minority_extra) {
            if let Some(i) = self.pick(&others) {
                others.retain(|&o| o != i);
                side.push(i);
            }
        }
        eprintln!("chaos: partition {side:?} | {others:?}");
        self.mesh.split(&side, &others, Mode::Stall);
        let hold = self.millis(1000, 6000);
        tokio::time::sleep(hold).await;
        self.mesh.heal();
        true
    }

    async fn delay(&mut self) -> bool {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        let Some(id) = self.pick(&ids) else {
            return false;
        };
        let ms = 20 + self.below(280);
        eprintln!("chaos: delay {ms} ms on node {id}'s links");
        self.mesh.isolate(id, Mode::Delay(ms));
        let hold = self.millis(1000, 4000);
        tokio::time::sleep(hold).await;
        self.mesh.heal();
        true
    }

    async fn disk_full(&mut self) -> Result<bool> {
        let id = match &self.disk_node {
            Ok(id) => *id,
            Err(_) => return Ok(false),
        };
        let Some(dir) = self.nodes.get(&id).map(|n| n.dir.clone()) else {
            return Ok(false);
        };
        eprintln!("chaos: fill node {id}'s disk");
        let written = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || nodes::fill(&dir, 512 << 20)
        })
        .await
        .unwrap_or(0);
        let hold = self.millis(1000, 4000);
        tokio::time::sleep(hold).await;
        nodes::unfill(&dir);
        eprintln!("chaos: freed {written} bytes on node {id}");
        let exited = self.nodes.get_mut(&id).is_some_and(|n| !n.running());
        if exited {
            self.note(format!("node {id} exited on a full disk (restarted)"));
            let target = self.leader_applied().await;
            let since = Instant::now();
            self.start(id, false, None)?;
            let ms = self.caught_up(id, target, since, RECOVERY_BOUND).await;
            self.recoveries.push(Recovery {
                kind: "disk_full",
                node: id,
                ms,
            });
        }
        Ok(true)
    }

    /// A voter that is neither the leader nor the full-disk node (which stays a member).
    async fn expendable_voter(&mut self) -> Option<u64> {
        let (leader, _, _) = self.leader().await?;
        let disk = self.disk_node.as_ref().ok().copied();
        let ids: Vec<u64> = self
            .voters
            .iter()
            .copied()
            .filter(|&v| v != leader && Some(v) != disk)
            .collect();
        self.pick(&ids)
    }

    /// Removes a voter, wipes it, and brings a new node (new id) in from object storage.
    async fn rejoin_from_remote(&mut self) -> Result<bool> {
        if self.totals().0.shipped == 0 {
            return Ok(false);
        }
        let Some(old) = self.expendable_voter().await else {
            return Ok(false);
        };
        let mut voters = self.voters.clone();
        voters.remove(&old);
        eprintln!("chaos: rejoin: remove node {old}, wipe it, restore a new node from the remote");
        if let Err(e) = self.set_voters(voters.clone()).await {
            self.note(format!("rejoin: removing voter {old}: {e:#}"));
            return Ok(false);
        }
        self.retire(old, true).await;
        let new = self.new_node().await?;
        let since = Instant::now();
        self.start(new, true, None)?;
        self.join(new, voters, since, "rejoin_from_remote").await;
        Ok(true)
    }

    /// A new empty node joins (it gets the state by snapshot install from the leader).
    async fn add_member(&mut self) -> Result<bool> {
        if self.voters.len() > self.base_nodes {
            return Ok(false);
        }
        let new = self.new_node().await?;
        eprintln!("chaos: add member {new}");
        let since = Instant::now();
        self.start(new, false, None)?;
        let voters = self.voters.clone();
        self.join(new, voters, since, "add_member").await;
        Ok(true)
    }

    async fn remove_member(&mut self) -> Result<bool> {
        if self.voters.len() <= self.base_nodes {
            return Ok(false);
        }
        let Some(old) = self.expendable_voter().await else {
            return Ok(false);
        };
        let mut voters = self.voters.clone();
        voters.remove(&old);
        eprintln!("chaos: remove member {old}");
        if let Err(e) = self.set_voters(voters).await {
            self.note(format!("remove_member: removing voter {old}: {e:#}"));
            return Ok(false);
        }
        self.retire(old, false).await;
        Ok(true)
    }

    /// Stops a node that is no longer a voter and forgets it (keeping its directory for the
    /// final verification unless `wipe`).
    async fn retire(&mut self, id: u64, wipe: bool) {
        let Some(mut node) = self.nodes.remove(&id) else {
            return;
        };
        self.shared.set_node(id, None);
        nodes::kill9(&mut node).await;
        if let Err(e) = self.mesh.remove(id) {
            self.note(format!("rewriting routes without node {id}: {e:#}"));
        }
        if wipe {
            if let Err(e) = std::fs::remove_dir_all(&node.dir) {
                self.note(format!("wiping {}: {e}", node.dir.display()));
            }
        } else {
            self.departed.push(node);
        }
    }

    /// Adds `new` as a learner (which returns once it caught up), then as a voter beside
    /// `voters`; records the time from `since` to caught up.
    async fn join(
        &mut self,
        new: u64,
        mut voters: BTreeSet<u64>,
        since: Instant,
        kind: &'static str,
    ) {
        let Some(addr) = self.nodes.get(&new).map(|n| n.addr) else {
            return;
        };
        if self.await_up(new, Duration::from_secs(30)).await.is_none() {
            self.note(format!("{kind}: node {new} did not come up within 30 s"));
        }
        let added = self
            .admin(
                "/admin/add-learner",
                json!({ "id": new, "addr": addr.to_string() }),
                Duration::from_secs(60),
            )
            .await;
        let ms = match added {
            Ok(()) => u64::try_from(since.elapsed().as_millis()).ok(),
            Err(e) => {
                self.note(format!("{kind}: add-learner {new}: {e:#}"));
                None
            }
        };
        self.recoveries.push(Recovery {
            kind,
            node: new,
            ms,
        });
        voters.insert(new);
        if let Err(e) = self.set_voters(voters).await {
            self.note(format!("{kind}: promoting {new}: {e:#}"));
        }
    }

    /// Every fault undone: links pass, paused nodes resume, the disk is freed, and every
    /// member that is down is started again.
    pub(crate) async fn heal_all(&mut self) -> Result<()> {
        self.mesh.heal();
        if let Ok(id) = self.disk_node {
            if let Some(n) = self.nodes.get(&id) {
                nodes::unfill(&n.dir);
            }
        }
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            let Some(n) = self.nodes.get_mut(&id) else {
                continue;
            };
            if n.paused {
                nodes::signal(n, Signal::SIGCONT);
                n.paused = false;
            }
            if !n.running() {
                self.note(format!(
                    "node {id} was down at the end of the run: restarted"
                ));
                self.start(id, false, None)?;
            }
        }
        Ok(())
    }
}
