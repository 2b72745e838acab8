//! `snapseal-cluster up`: a local cluster of `node` child processes, in the foreground until
//! Ctrl-C (or SIGTERM, SIGHUP), which stops them; each node logs to `DIR/n<id>.log`.

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The `up` command's flags.
#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Directory of the nodes' directories, logs and (by default) the remote (default: the
    /// system's temporary directory / snapseal-cluster; a second `up` on it restarts the same
    /// cluster).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Object storage for snapshots (default: file://DIR/remote).
    #[arg(long)]
    remote: Option<String>,
    /// Node i listens on 127.0.0.1:(base-port + i - 1).
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// Snapshot after this many log entries (passed to every node).
    #[arg(long, default_value_t = 100)]
    snapshot_every: u64,
}

/// How long the children get to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The running children; dropped, they are stopped.
struct Children(Vec<(u64, Child)>);

impl Children {
    fn stop(&mut self) {
        for (_, child) in &self.0 {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for (id, child) in &mut self.0 {
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        println!("node {id} stopped ({status})");
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        println!("node {id} killed");
                        break;
                    }
                }
            }
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs the cluster until Ctrl-C.
pub(crate) async fn run(args: UpArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 9 {
        bail!("--nodes: 1 to 9");
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("snapseal-cluster"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let remote = match &args.remote {
        Some(r) => r.clone(),
        None => format!("file://{}", dir.join("remote").display()),
    };
    let exe = std::env::current_exe().context("finding this program")?;
    let addr = |i: u64| format!("127.0.0.1:{}", u64::from(args.base_port) + i - 1);
    let bootstrap: Vec<String> = (1..=args.nodes)
        .map(|i| format!("{i}={}", addr(i)))
        .collect();
    let mut children = Children(Vec::new());
    for i in 1..=args.nodes {
        let log_path = dir.join(format!("n{i}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            // A link or FIFO planted in the run directory is refused, never followed or
            // blocked on: the name is ours to append to, nothing else.
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("node")
            .args(["--id", &i.to_string(), "--listen", &addr(i)])
            .arg("--dir")
            .arg(dir.join(format!("n{i}")))
            .args(["--remote", &remote])
            .args(["--snapshot-every", &args.snapshot_every.to_string()])
            // The pipe's other end is this process's: if it dies, even by SIGKILL, the
            // nodes see their stdin end and stop.
            .arg("--stop-with-stdin")
            .stdin(Stdio::piped())
            .stderr(log);
        if i == 1 {
            cmd.args(["--bootstrap", &bootstrap.join(",")]);
        }
        let child = cmd.spawn().with_context(|| format!("starting node {i}"))?;
        children.0.push((i, child));
    }
    println!(
        "snapseal-cluster: {} nodes, data in {}, snapshots shipped to {remote}",
        args.nodes,
        dir.display()
    );
    for i in 1..=args.nodes {
        println!(
            "  node {i}: http://{}  (log: {})",
            addr(i),
            dir.join(format!("n{i}.log")).display()
        );
    }
    let leader = wait_for_leader(&addr(1)).await;
    match leader {
        Some(l) => println!("leader: node {l}"),
        None => println!("no leader yet (see the node logs)"),
    }
    let a = addr(leader.unwrap_or(1));
    println!("\ntry (on the leader; a follower answers 409 with the leader's address):");
    println!("  curl -s -XPOST http://{a}/kv/put -d '{{\"key\":\"k\",\"value\":\"v\"}}' -H 'content-type: application/json'");
    println!("  curl -s -XPOST http://{a}/kv/get -d '{{\"key\":\"k\"}}' -H 'content-type: application/json'");
    println!("  curl -s -XPOST http://{a}/kv/cas -d '{{\"key\":\"k\",\"from\":\"v\",\"to\":\"w\"}}' -H 'content-type: application/json'");
    println!("  curl -s http://{a}/status");
    println!("  curl -s http://{a}/state");
    println!("\nCtrl-C stops the cluster.");

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => break,
            _ = poll.tick() => {
                let exited = children.0.iter_mut().find_map(|(id, child)| {
                    child.try_wait().ok().flatten().map(|status| (*id, status))
                });
                if let Some((id, status)) = exited {
                    println!("node {id} exited ({status}); stopping the cluster");
                    children.stop();
                    bail!("node {id} exited");
                }
            }
        }
    }
    println!("stopping");
    children.stop();
    Ok(())
}

/// The leader node 1 reports within 30 seconds, if any.
async fn wait_for_leader(addr: &str) -> Option<u64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("http://{addr}/status")).send().await {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if let Some(l) = v.get("leader").and_then(|l| l.as_u64()) {
                    return Some(l);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}
