//! snapseal-chaos: runs snapseal-cluster nodes as real processes under faults — kill -9,
//! SIGSTOP, partitions and delays through loopback proxies, a full disk, a node wiped and
//! rejoined from object storage, members added and removed — while clients put, get and cas;
//! then heals, checks the clients' history for linearizability, checks that the nodes
//! converged, and verifies every snapshot file and shipped object. See docs/TESTING.md, "A
//! cluster under faults".

mod check;
mod faults;
mod http;
mod nodes;
mod proxy;
mod report;
mod run;
mod verify;
mod workload;
mod world;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Runs a local snapseal-cluster under seeded faults and checks what its clients saw.
#[derive(Parser, Debug, Clone)]
#[command(name = "snapseal-chaos")]
pub(crate) struct Args {
    /// Seed of the fault schedule and the clients' choices.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// How long faults are injected (e.g. 60s, 10m, 90).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Voters at the start (3 to 5).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=5))]
    pub(crate) nodes: u64,
    /// Object storage the nodes ship to (file:// or s3://); default a directory in --out.
    #[arg(long)]
    pub(crate) remote: Option<String>,
    /// Remote options (k=v), passed to every node and used to verify the shipped objects.
    #[arg(long = "remote-opt")]
    pub(crate) remote_opt: Vec<String>,
    /// The node binary; default snapseal-cluster beside this one.
    #[arg(long)]
    pub(crate) node_bin: Option<PathBuf>,
    /// Where node directories, logs, the history and report.json go; default a new directory
    /// under the system temp dir.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    pub(crate) clients: u32,
    /// Keys the clients use.
    #[arg(long, default_value_t = 5)]
    pub(crate) keys: usize,
    /// The nodes' --snapshot-every (small, so snapshots happen many times).
    #[arg(long, default_value_t = 30)]
    pub(crate) snapshot_every: u64,
    /// The nodes' --keep-logs (small, so logs are purged).
    #[arg(long, default_value_t = 10)]
    pub(crate) keep_logs: u64,
    /// The cluster's key seed (64 hex digits): passed to every node, and what snapshots are
    /// verified against. A fixed test key by default, as in the nodes.
    #[arg(
        long,
        default_value = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"
    )]
    pub(crate) key_seed: String,
    /// Inject no faults: a baseline of the clients' latency (with snapshots as configured;
    /// a huge --snapshot-every gives one without snapshotting).
    #[arg(long)]
    pub(crate) no_faults: bool,
    /// Self-test of the checking: adds to the history a read of a value no client wrote, so
    /// the run must fail (tests that a violation is caught, reported and exits 1).
    #[arg(long, hide = true)]
    pub(crate) inject_bad_read: bool,
    /// States the checker may explore per key before it reports "undecided".
    #[arg(long, default_value_t = 2_000_000)]
    pub(crate) max_states: usize,
}

impl Args {
    /// The one-line command that reruns this run.
    pub(crate) fn reproduction(&self) -> String {
        let mut line = format!(
            "snapseal-chaos --seed {} --duration {}s --nodes {} --clients {} --keys {} --snapshot-every {} --keep-logs {}",
            self.seed,
            self.duration.as_secs(),
            self.nodes,
            self.clients,
            self.keys,
            self.snapshot_every,
            self.keep_logs
        );
        if let Some(r) = &self.remote {
            line.push_str(&format!(" --remote {r}"));
        }
        if self.inject_bad_read {
            line.push_str(" --inject-bad-read");
        }
        if self.no_faults {
            line.push_str(" --no-faults");
        }
        for o in &self.remote_opt {
            line.push_str(&format!(" --remote-opt {o}"));
        }
        line
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("unknown unit in {s:?} (s, m or h)")),
    };
    Ok(Duration::from_secs(secs))
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Before the runtime's threads exist: unshare needs a single-threaded process.
    nodes::private_mounts();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("snapseal-chaos: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run::run(args.clone()));
    // Node processes are killed on drop; give the runtime a moment to do it.
    runtime.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(report) if report.passed() => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("FAILED: seed {}", args.seed);
            eprintln!("reproduce: {}", args.reproduction());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("snapseal-chaos: {e:#}");
            eprintln!("FAILED: seed {}", args.seed);
            eprintln!("reproduce: {}", args.reproduction());
            ExitCode::FAILURE
        }
    }
}
