//! `snapseal bench`: snapseal against its floor and peers, side by side in one process, as a table.
//!
//! Every row is a ratio measured in this one run against a floor or peer on the same machine
//! (bare write + fsync + rename + dir fsync; `b3sum` when installed; a crossbeam pool), so it
//! stays meaningful on a noisy box where absolute times are not. Peak RSS is measured in a
//! child process of this same binary (see [`snapseal_cli::bench::rss`]).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use snapseal_cli::bench::{self, BenchOptions};

use crate::cli::exit::Status;
use crate::cli::output::Out;

/// Arguments of `snapseal bench`.
#[derive(Debug, Args)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub(crate) struct BenchArgs {
    /// Directory for the benchmark's files (on the filesystem you want measured) [default:
    /// the system temp dir]. Needs a few GiB free for the full run.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Small sizes only (a smoke run in seconds; the ratios are less telling).
    #[arg(long)]
    pub quick: bool,
    /// Also run the ship and restore rows against this S3-compatible test server
    /// (http://host:port, e.g. moto or s3rver), in a bucket the bench creates with a plain PUT.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
}

/// Runs the comparisons and prints the table. Exit 1 when a target was missed.
pub(super) fn run(args: &BenchArgs, out: &Out) -> anyhow::Result<Status> {
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    let mut opts = if args.quick {
        BenchOptions::quick(&dir)
    } else {
        BenchOptions::new(&dir)
    };
    opts.s3_endpoint = args.s3_endpoint.clone();
    let me = std::env::current_exe().context("finding this executable for the RSS probe")?;
    opts.rss_probe = Some(vec![me.display().to_string()]);
    out.info(format_args!(
        "benchmarking in {} (this takes a while; ratios, not times, are the result)",
        dir.display()
    ))?;
    let table = bench::run(&opts).context("running the benchmark")?;
    out.text(format_args!("{table}"))?;
    out.json(&table.to_json())?;
    Ok(Status::failed_if(!table.all_passed()))
}
