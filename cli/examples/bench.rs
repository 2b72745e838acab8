//! Runs the floor and peer comparisons (`snapseal_cli::bench`) and prints the table; with `--scaling`,
//! prints the scaling tables of docs/PERFORMANCE.md instead.
//!
//! ```text
//! cargo run --release --example bench -- [--quick] [--scaling] [DIR]
//! ```
//!
//! DIR (default: the system temp dir) is where the files go. Peak RSS is measured in child
//! processes of this same binary (`--snapseal-rss-probe ...`).

use std::path::PathBuf;
use std::process::ExitCode;

use snapseal_cli::bench::{self, rss, BenchOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if rss::probe_requested(&args) {
        return ExitCode::from(u8::try_from(rss::probe_main(&args)).unwrap_or(1));
    }
    let quick = args.iter().any(|a| a == "--quick");
    let scaling = args.iter().any(|a| a == "--scaling");
    let dir = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or_else(std::env::temp_dir, PathBuf::from);
    let me = match std::env::current_exe() {
        Ok(p) => p.display().to_string(),
        Err(e) => {
            eprintln!("cannot find this executable for the rss probe: {e}");
            return ExitCode::FAILURE;
        }
    };
    if scaling {
        return scaling_tables(&dir, &me, quick);
    }
    let mut opts = if quick {
        BenchOptions::quick(&dir)
    } else {
        BenchOptions::new(&dir)
    };
    opts.rss_probe = Some(vec![me]);
    match bench::run(&opts) {
        Ok(table) => {
            print!("{table}");
            if table.all_passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Persist time and peak RSS against body size (each size in a fresh child, spill on at the
/// default threshold and off), then consensus-call latency against pending generations.
fn scaling_tables(dir: &std::path::Path, me: &str, quick: bool) -> ExitCode {
    let sizes: &[u64] = if quick {
        &[4 << 10, 1 << 20, 64 << 20]
    } else {
        &[4 << 10, 1 << 20, 64 << 20, 256 << 20, 1 << 30, 2 << 30]
    };
    println!("| body size | spill | serialise | persist | peak RSS above start |");
    println!("|----------:|:------|----------:|--------:|---------------------:|");
    for &size in sizes {
        for spill in [Some(snapseal::actors::DEFAULT_SPILL_THRESHOLD), None] {
            // Without spilling the whole body sits in memory: skip the 2 GiB in-memory run's
            // point (it only shows S of RSS) to spare the machine, keep up to 1 GiB.
            if spill.is_none() && size > 1 << 30 {
                continue;
            }
            match rss::measure_in_child(&[me.to_string()], dir, size, spill) {
                Ok(r) => println!(
                    "| {} | {} | {} | {} | {:.1} MiB |",
                    bench::bytes(size),
                    if spill.is_some() {
                        "32 MiB (default)"
                    } else {
                        "off"
                    },
                    bench::secs(r.serialise.as_secs_f64()),
                    bench::secs(r.persist.as_secs_f64()),
                    r.above_mib()
                ),
                Err(e) => {
                    eprintln!("size {size}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    println!();
    let body = if quick { 16 << 20 } else { 64 << 20 };
    println!(
        "| generations in flight ({} each) | signatures timed | p50 | p99 | max |",
        bench::bytes(body)
    );
    println!("|---:|---:|---:|---:|---:|");
    for generations in 0..=5u64 {
        match bench::consensus_latency(dir, generations, body, 2_000) {
            Ok(l) => println!(
                "| {generations} | {} | {} | {} | {} |",
                l.calls,
                bench::secs(l.p50.as_secs_f64()),
                bench::secs(l.p99.as_secs_f64()),
                bench::secs(l.max.as_secs_f64())
            ),
            Err(e) => {
                eprintln!("{generations} generations: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
