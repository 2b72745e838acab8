//! One run: set up, inject faults for the duration, heal, check, report.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand_core::SeedableRng;
use rand_xoshiro::SplitMix64;
use serde_json::{json, Value};
use snapseal_ship::{Remote, RemoteOptions};

use crate::check::{self, Call, Op, Outcome};
use crate::nodes::{self, Launcher};
use crate::proxy::Mesh;
use crate::report::{percentile, Ops, Report, Snapshots, Violation};
use crate::workload::{self, Shared};
use crate::world::{self, World};
use crate::{http, verify, Args};

/// The full-disk node's tmpfs.
const TMPFS_BYTES: u64 = 64 << 20;
/// How long the healed cluster may take to agree.
const CONVERGE_BOUND: Duration = Duration::from_secs(60);

pub(crate) async fn run(args: Args) -> Result<Report> {
    let key_seed = parse_key_seed(&args.key_seed)?;
    let root = match &args.out {
        Some(p) => p.clone(),
        None => std::env::temp_dir().join(format!(
            "snapseal-chaos-{}-{}",
            args.seed,
            std::process::id()
        )),
    };
    std::fs::create_dir_all(root.join("nodes"))
        .with_context(|| format!("creating {}", root.display()))?;
    std::fs::create_dir_all(root.join("logs")).context("creating the log directory")?;
    let remote_url = match &args.remote {
        Some(r) => r.clone(),
        None => {
            let dir = root.join("remote");
            std::fs::create_dir_all(&dir).context("creating the file:// remote")?;
            format!("file://{}", dir.display())
        }
    };
    let bin = node_bin(&args)?;
    println!(
        "snapseal-chaos: seed {}, {} nodes, {:?}, remote {remote_url}, run dir {}",
        args.seed,
        args.nodes,
        args.duration,
        root.display()
    );

    let shared = Arc::new(Shared::new(args.keys.max(1)));
    let http = http::client();
    let mut world = World {
        launcher: Launcher {
            bin,
            remote: remote_url.clone(),
            remote_opts: args.remote_opt.clone(),
            snapshot_every: args.snapshot_every,
            keep_logs: args.keep_logs,
            key_seed_hex: args.key_seed.clone(),
            logs: root.join("logs"),
        },
        mesh: Mesh::new(&root),
        nodes: BTreeMap::new(),
        departed: Vec::new(),
        voters: BTreeSet::new(),
        shared: Arc::clone(&shared),
        http: http.clone(),
        rng: SplitMix64::seed_from_u64(args.seed),
        next_id: 1,
        root: root.clone(),
        faults: BTreeMap::new(),
        recoveries: Vec::new(),
        notes: Vec::new(),
        tallies: Arc::new(Mutex::new(HashMap::new())),
        disk_node: Err(String::new()),
        base_nodes: usize::try_from(args.nodes).unwrap_or(3),
    };
    let result = tokio::select! {
        r = drive(&args, &mut world, &key_seed, &remote_url) => r,
        sig = interrupted() => Err(anyhow::anyhow!("interrupted by {sig}: the run is abandoned")),
    };
    // Whatever happened: no node process outlives the run, no tmpfs stays mounted.
    for node in world.nodes.values_mut() {
        nodes::stop(node).await;
    }
    if let Ok(id) = world.disk_node {
        if let Some(n) = world
            .nodes
            .get(&id)
            .or_else(|| world.departed.iter().find(|n| n.id == id))
        {
            nodes::unmount(&n.dir);
        }
    }
    let report = result?;
    let json = serde_json::to_vec_pretty(&report).context("the report as JSON")?;
    std::fs::write(root.join("report.json"), json).context("writing report.json")?;
    report.print();
    println!("report: {}", root.join("report.json").display());
    Ok(report)
}

async fn drive(
    args: &Args,
    world: &mut World,
    key_seed: &[u8; 32],
    remote_url: &str,
) -> Result<Report> {
    // The voters; the second one's directory is a small tmpfs when that is possible.
    for _ in 0..args.nodes {
        world.new_node().await?;
    }
    world.disk_node = match world.nodes.get(&2) {
        Some(n) => nodes::mount_tmpfs(&n.dir, TMPFS_BYTES).map(|()| 2),
        None => Err("no node 2".into()),
    };
    if let Err(why) = &world.disk_node {
        world.note(format!("full-disk fault skipped: {why}"));
    }
    let bootstrap = nodes::bootstrap_arg(&world.nodes);
    let ids: Vec<u64> = world.nodes.keys().copied().collect();
    for id in &ids {
        let boot = (*id == 1).then_some(bootstrap.as_str());
        world.start(*id, false, boot)?;
    }
    world.voters = ids.iter().copied().collect();
    if world.await_leader(Duration::from_secs(60)).await.is_none() {
        bail!(
            "no leader within 60 s of starting the cluster (see the node logs in {})",
            world.root.join("logs").display()
        );
    }

    let polling = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(world::poll_status(
        Arc::clone(&world.shared),
        world.http.clone(),
        Arc::clone(&world.tallies),
        Arc::clone(&polling),
    ));
    let clients: Vec<_> = (0..args.clients)
        .map(|c| {
            tokio::spawn(workload::client(
                c,
                args.seed,
                Arc::clone(&world.shared),
                world.http.clone(),
            ))
        })
        .collect();

    let started = Instant::now();
    while started.elapsed() < args.duration {
        let gap = world.millis(200, 1000);
        tokio::time::sleep(gap).await;
        if !args.no_faults {
            world.inject_one().await?;
        }
        restart_crashed(world).await?;
    }
    println!("snapseal-chaos: faults done; healing");
    world.heal_all().await?;
    // Let the clients see the healed cluster for a moment, then stop them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    world.shared.stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = tokio::time::timeout(Duration::from_secs(10), c).await;
    }

    let heal_started = Instant::now();
    let converged = converge(world).await;
    let convergence_ms =
        converged.then(|| u64::try_from(heal_started.elapsed().as_millis()).unwrap_or(u64::MAX));
    if !converged {
        world.note(format!(
            "the members did not converge within {CONVERGE_BOUND:?}"
        ));
    }
    final_reads(world).await;
    if args.inject_bad_read {
        let at = world.shared.now_ns();
        world.shared.record(Op {
            client: u32::MAX - 1,
            key: world.shared.keys[0].clone(),
            call: Call::Get,
            outcome: Outcome::Read {
                value: Some("never-written-by-any-client".into()),
            },
            invoke_ns: at,
            complete_ns: Some(at + 1),
        });
    }
    // One more status round so the counters include the end.
    tokio::time::sleep(Duration::from_secs(1)).await;
    polling.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(10), poller).await;
    let (counters, restored) = world.totals();

    // Stop the nodes before reading their directories.
    for node in world.nodes.values_mut() {
        if let Some(code) = nodes::stop(node).await {
            if code != 0 {
                let line = format!("node {} exited with {code} on SIGTERM", node.id);
                world.notes.push(line);
            }
        }
    }

    let history: Vec<Op> = world
        .shared
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let max_states = args.max_states;
    let checked = {
        let h = history.clone();
        tokio::task::spawn_blocking(move || check::check(&h, max_states))
            .await
            .context("the checker's thread")?
    };
    let history_json = serde_json::to_vec(&history).context("the history as JSON")?;
    std::fs::write(world.root.join("history.json"), history_json)
        .context("writing history.json")?;

    let verifier = verify::verifier(key_seed);
    let mut verified = verify::Verified::default();
    for node in world.nodes.values().chain(world.departed.iter()) {
        verify::local(
            &node.dir.join("snapshots"),
            &format!("node {}", node.id),
            verifier.as_ref(),
            &mut verified,
        );
    }
    let mut opts = RemoteOptions::default();
    for kv in &args.remote_opt {
        match kv.split_once('=') {
            Some((k, v)) => opts = opts.with_option(k, v),
            None => bail!("--remote-opt {kv:?} is not k=v"),
        }
    }
    match Remote::open(remote_url, &opts) {
        Ok(remote) => verify::remote(&remote, verifier.as_ref(), &mut verified).await,
        Err(e) => verified.failures.push(format!(
            "opening the remote {remote_url}: {}",
            snapseal_persist::ErrorChain(&e)
        )),
    }

    let mut latencies = world
        .shared
        .latencies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    latencies.sort_unstable();
    let mut recoveries: Vec<u64> = world.recoveries.iter().filter_map(|r| r.ms).collect();
    recoveries.sort_unstable();
    let ops = Ops {
        total: history.len(),
        ok: history
            .iter()
            .filter(|o| !matches!(o.outcome, Outcome::Failed | Outcome::Unknown))
            .count(),
        failed: history
            .iter()
            .filter(|o| o.outcome == Outcome::Failed)
            .count(),
        unknown: history
            .iter()
            .filter(|o| o.outcome == Outcome::Unknown)
            .count(),
        checked: checked.keys.iter().map(|k| k.ops_checked).sum(),
    };
    Ok(Report {
        seed: args.seed,
        duration_s: args.duration.as_secs(),
        nodes: args.nodes,
        remote: remote_url.to_string(),
        faults: world
            .faults
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        faults_total: world.faults.values().sum(),
        ops,
        snapshots: Snapshots {
            built: counters.built,
            installed: counters.installed,
            shipped: counters.shipped,
            restored,
        },
        violations: checked
            .violations()
            .map(|k| Violation {
                key: k.key.clone(),
                witness: k.witness.clone(),
            })
            .collect(),
        undecided_keys: checked.undecided().map(|k| k.key.clone()).collect(),
        converged,
        convergence_ms,
        recovery_samples: world.recoveries.len(),
        recovery_p50_ms: percentile(&recoveries, 50),
        recovery_max_ms: recoveries.last().copied(),
        not_recovered: world.recoveries.iter().filter(|r| r.ms.is_none()).count(),
        recoveries: world.recoveries.clone(),
        latency_p50_ms: percentile(&latencies, 50).map(|ns| ns as f64 / 1e6),
        latency_p99_ms: percentile(&latencies, 99).map(|ns| ns as f64 / 1e6),
        verified_local_files: verified.local_files,
        verified_remote_objects: verified.remote_objects,
        verify_failures: verified.failures,
        notes: world.notes.clone(),
        reproduction: args.reproduction(),
    })
}

/// A member that exited on its own (not by a fault) is noted and started again.
async fn restart_crashed(world: &mut World) -> Result<()> {
    let ids: Vec<u64> = world.nodes.keys().copied().collect();
    for id in ids {
        let down = world.nodes.get_mut(&id).is_some_and(|n| !n.running());
        if down {
            world.note(format!(
                "node {id} exited on its own during the run (restarted; see logs/node-{id}.log)"
            ));
            world.start(id, false, None)?;
        }
    }
    Ok(())
}

/// Waits until every member's /state is the same (same applied index and digest).
async fn converge(world: &World) -> bool {
    let deadline = Instant::now() + CONVERGE_BOUND;
    while Instant::now() < deadline {
        let mut states = BTreeSet::new();
        let mut all = true;
        for node in world.nodes.values() {
            match http::get(&world.http, node.addr, "/state", Duration::from_secs(2)).await {
                Ok(r) if r.status == 200 => {
                    let applied = r.body.get("last_applied").cloned().unwrap_or(Value::Null);
                    let digest = r
                        .body
                        .get("digest")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    states.insert((applied.to_string(), digest));
                }
                _ => all = false,
            }
        }
        if all && states.len() == 1 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// One read of every key through the leader after the cluster healed, into the history: a
/// lost acknowledged write shows here at the latest.
async fn final_reads(world: &mut World) {
    let keys = world.shared.keys.clone();
    for key in keys {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let Some((_, addr, _)) = world.leader().await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let invoke_ns = world.shared.now_ns();
            let reply = http::post(
                &world.http,
                addr,
                "/kv/get",
                &json!({ "key": key }),
                Duration::from_secs(3),
            )
            .await;
            let complete_ns = world.shared.now_ns();
            if let Ok(r) = reply {
                if r.status == 200 {
                    let outcome = workload::outcome_of(&Call::Get, &r.body);
                    if let Outcome::Read { .. } = outcome {
                        world.shared.record(Op {
                            client: u32::MAX,
                            key: key.clone(),
                            call: Call::Get,
                            outcome,
                            invoke_ns,
                            complete_ns: Some(complete_ns),
                        });
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Resolves on SIGINT or SIGTERM (so the cleanup after the run still happens), naming it.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        // Without handlers the default action (exit) applies; nothing to wait for here.
        _ => std::future::pending().await,
    }
}

fn parse_key_seed(hex: &str) -> Result<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        bail!("--key-seed must be 64 hex digits");
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).context("--key-seed is not hex")?;
        out[i] = u8::from_str_radix(s, 16).context("--key-seed is not hex")?;
    }
    Ok(out)
}

/// `--node-bin`, or snapseal-cluster beside this binary.
fn node_bin(args: &Args) -> Result<PathBuf> {
    let path = match &args.node_bin {
        Some(p) => p.clone(),
        None => {
            let me = std::env::current_exe().context("locating this binary")?;
            let dir = me.parent().map(Path::to_path_buf).unwrap_or_default();
            dir.join("snapseal-cluster")
        }
    };
    if !path.is_file() {
        bail!("node binary {} not found (build it: cargo build -p snapseal-cluster, or pass --node-bin)", path.display());
    }
    Ok(path)
}
