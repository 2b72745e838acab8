//! Real `snapseal-cluster node` processes on loopback, and an HTTP client for them.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The longest any wait in these tests lasts before it fails the test.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// A free loopback port (bound and released; nothing else on this machine races for it in
/// practice).
fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// One node: its address, directory, extra flags, and its process while it runs.
pub(crate) struct Node {
    pub(crate) addr: String,
    pub(crate) dir: PathBuf,
    pub(crate) flags: Vec<String>,
    child: Option<Child>,
}

/// A cluster of node processes in a temporary directory with a `file://` remote.
pub(crate) struct Cluster {
    pub(crate) root: tempfile::TempDir,
    pub(crate) remote: String,
    pub(crate) nodes: BTreeMap<u64, Node>,
    client: reqwest::Client,
}

impl Cluster {
    /// Nodes `1..=n` with `flags`, node 1 bootstrapping all of them as voters.
    pub(crate) fn start(n: u64, flags: &[&str]) -> Cluster {
        let mut cluster = Cluster::configure(n, flags);
        cluster.launch();
        cluster
    }

    /// Nodes `1..=n` with `flags`, not started yet ([`launch`](Self::launch) starts them).
    pub(crate) fn configure(n: u64, flags: &[&str]) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let remote = format!("file://{}", root.path().join("remote").display());
        let mut cluster = Cluster {
            remote,
            nodes: BTreeMap::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            root,
        };
        for id in 1..=n {
            cluster.add(id, flags);
        }
        cluster
    }

    /// Starts every configured node, the first one bootstrapping all of them as voters.
    pub(crate) fn launch(&mut self) {
        let voters: Vec<String> = self
            .nodes
            .iter()
            .map(|(id, n)| format!("{id}={}", n.addr))
            .collect();
        let bootstrap = format!("--bootstrap={}", voters.join(","));
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for (i, id) in ids.into_iter().enumerate() {
            let extra = if i == 0 {
                vec![bootstrap.as_str()]
            } else {
                vec![]
            };
            self.spawn(id, &extra);
        }
    }

    /// Registers node `id` (not started) with a new address and directory.
    pub(crate) fn add(&mut self, id: u64, flags: &[&str]) {
        let node = Node {
            addr: free_addr(),
            dir: self.root.path().join(format!("n{id}")),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            child: None,
        };
        self.nodes.insert(id, node);
    }

    /// Starts node `id`'s process, with `extra` flags this time only.
    pub(crate) fn spawn(&mut self, id: u64, extra: &[&str]) {
        let remote = self.remote.clone();
        let log = self.root.path().join(format!("n{id}.log"));
        let node = self.nodes.get_mut(&id).unwrap();
        assert!(node.child.is_none(), "node {id} is running already");
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_snapseal-cluster"))
            .arg("node")
            .args([
                "--id",
                &id.to_string(),
                "--listen",
                &node.addr,
                "--remote",
                &remote,
            ])
            .arg("--dir")
            .arg(&node.dir)
            .args(&node.flags)
            .args(extra)
            .env("RUST_LOG", "info,openraft=warn")
            // Held open in the `Child` until `close_stdin` (a node started with
            // --stop-with-stdin stops then).
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    /// Waits (bounded) for node `id` to exit by itself; its exit status.
    pub(crate) async fn exited(&mut self, id: u64) -> std::process::ExitStatus {
        let child = self.nodes.get_mut(&id).unwrap().child.as_mut().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.nodes.get_mut(&id).unwrap().child = None;
                return status;
            }
            assert!(start.elapsed() < DEADLINE, "node {id} did not exit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Closes node `id`'s standard input, as the death of the process that started it would.
    pub(crate) fn close_stdin(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).unwrap();
        drop(node.child.as_mut().unwrap().stdin.take());
    }

    /// SIGKILLs node `id` and reaps it.
    pub(crate) fn kill9(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).unwrap();
        if let Some(mut child) = node.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERMs node `id` and waits (bounded) for its exit status.
    pub(crate) async fn stop(&mut self, id: u64) -> std::process::ExitStatus {
        let mut child = self.nodes.get_mut(&id).unwrap().child.take().unwrap();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > DEADLINE {
                child.kill().unwrap();
                panic!("node {id} did not stop on SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The address of node `id`.
    pub(crate) fn addr(&self, id: u64) -> String {
        self.nodes[&id].addr.clone()
    }

    /// POSTs `body` to node `id`'s `path`: the HTTP status and JSON answer, or `None` when
    /// the node does not answer.
    pub(crate) async fn post(&self, id: u64, path: &str, body: Value) -> Option<(u16, Value)> {
        let url = format!("http://{}{path}", self.addr(id));
        let resp = self.client.post(url).json(&body).send().await.ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.json().await.ok()?))
    }

    /// GETs node `id`'s `path` (`/status`, `/state`); `None` when it does not answer.
    pub(crate) async fn get(&self, id: u64, path: &str) -> Option<Value> {
        let url = format!("http://{}{path}", self.addr(id));
        let resp = self.client.get(url).send().await.ok()?;
        resp.json().await.ok()
    }

    /// Every node's status and the last lines of its log (Raft's replication chatter left
    /// out), for a failure message.
    pub(crate) async fn diagnostics(&self) -> String {
        let mut out = String::new();
        for id in self.nodes.keys() {
            let status = self.get(*id, "/status").await;
            out += &format!("--- node {id}: {status:?}\n");
            let log = self.log(*id);
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| {
                    !l.contains("openraft::replication") && !l.contains("replication_handler")
                })
                .collect();
            out += &lines[lines.len().saturating_sub(15)..].join("\n");
            out += "\n";
        }
        out
    }

    /// Waits until `f` gives `Some`, polling; panics with `what` (and every node's status and
    /// last log lines) after [`DEADLINE`].
    pub(crate) async fn wait<T, F, Fut>(&self, what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if start.elapsed() >= DEADLINE {
                panic!("timed out waiting for {what}\n{}", self.diagnostics().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The leader among `ids`, as one of them reports itself.
    pub(crate) async fn leader_among(&self, ids: &[u64]) -> u64 {
        self.wait("a leader", || async {
            // A node that does not answer (stopped, or slow) is passed over.
            for id in ids {
                let s = self.get(*id, "/status").await;
                if s.is_some_and(|s| s["state"] == "Leader") {
                    return Some(*id);
                }
            }
            None
        })
        .await
    }

    /// Puts `key`=`value` through the leader among `ids`, retrying a redirect or an
    /// unavailable answer until one is acknowledged.
    pub(crate) async fn put(&self, ids: &[u64], key: &str, value: &str) {
        self.wait("an acknowledged put", || async {
            let leader = self.leader_among(ids).await;
            let (code, body) = self
                .post(leader, "/kv/put", json!({"key": key, "value": value}))
                .await?;
            (code == 200 && body == json!({"ok": true})).then_some(())
        })
        .await
    }

    /// Waits until every node in `ids` reports the same `/state` with `last_applied` at
    /// least `index`; returns it.
    pub(crate) async fn converged(&self, ids: &[u64], index: u64) -> Value {
        self.wait("the nodes to converge", || async {
            let mut states = Vec::new();
            for id in ids {
                states.push(self.get(*id, "/state").await?);
            }
            let first = &states[0];
            let same = states
                .iter()
                .all(|s| s["digest"] == first["digest"] && s["len"] == first["len"]);
            let caught_up = states
                .iter()
                .all(|s| s["last_applied"].as_u64().is_some_and(|a| a >= index));
            (same && caught_up).then(|| first.clone())
        })
        .await
    }

    /// The contents of node `id`'s log file (stderr), for a failure message.
    pub(crate) fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.root.path().join(format!("n{id}.log"))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.kill9(id);
        }
    }
}
