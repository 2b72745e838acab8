//! Consensus-thread cost of the Snapshotter's calls while large generations are in flight
//! (issue 4, item 7), against the same calls with nothing in flight, in one run.
//!
//! `cargo bench --bench consensus_latency` prints a table. Each timed unit is the work a
//! node's consensus thread does per signature (`record_committable`, `record_signature`,
//! `record_tree`, `commit`); the measurement itself is `snapseal_cli::bench::consensus_latency`,
//! the same code `snapseal bench` uses. `SNAPSEAL_BENCH_DIR` picks the filesystem (default:
//! the system temp dir).

use snapseal_cli::bench::{consensus_latency, secs, Latency};

const GENERATIONS: u64 = 5;
const BODY: u64 = 64 << 20;
const CALLS: usize = 20_000;

fn main() {
    let dir = std::env::var_os("SNAPSEAL_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let run = |generations| match consensus_latency(&dir, generations, BODY, CALLS) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("consensus_latency: {generations} generations: {e}");
            std::process::exit(1);
        }
    };
    let idle = run(0);
    let busy = run(GENERATIONS);
    println!("consensus-thread cost per signature (record_committable + record_signature + record_tree + commit)");
    println!(
        "{:<40} {:>8} {:>10} {:>10} {:>10}",
        "case", "calls", "p50", "p99", "max"
    );
    let row = |name: &str, l: &Latency| {
        println!(
            "{:<40} {:>8} {:>10} {:>10} {:>10}",
            name,
            l.calls,
            secs(l.p50.as_secs_f64()),
            secs(l.p99.as_secs_f64()),
            secs(l.max.as_secs_f64())
        );
    };
    row("no generation in flight", &idle);
    row("5 x 64 MiB generations in flight", &busy);
    println!(
        "ratio in flight / idle: p50 {:.2}x, p99 {:.2}x",
        busy.p50.as_secs_f64() / idle.p50.as_secs_f64(),
        busy.p99.as_secs_f64() / idle.p99.as_secs_f64()
    );
}
