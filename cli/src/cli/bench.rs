//! `snapseal bench`: snapseal against its floor and peers, side by side in one process, as a table.
//!
//! Every row is a ratio measured in this one run against a floor or peer on the same machine
//! (bare write + fsync + rename + dir fsync; `b3sum` when installed; a crossbeam pool), so it
//! stays meaningful on a noisy box where absolute times are not. Peak RSS is measured in a
//! child process of this same binary (see [`snapseal_cli::bench::rss`]).
//!
//! A run can be saved (`--save`) and a later one compared with it (`--compare`): see
//! [`snapseal_cli::bench::record`] for the file and [`snapseal_cli::bench::compare`] for the
//! rule that calls a change a regression.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use snapseal::persist::internals::Escaped;
use snapseal_cli::bench::{self, BenchOptions, Comparison, Machine, Record, Verdict};

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
    /// Only the rows whose names start with PREFIX (e.g. `engine`, `persist 4 KiB`); only
    /// the comparisons that make such rows run.
    #[arg(long, value_name = "PREFIX")]
    pub only: Option<String>,
    /// Save this run (machine, commit, every row with its goal and each repetition's ratio)
    /// as JSON in FILE, a new file: an existing one is never replaced. Keep one per machine,
    /// e.g. bench/$(hostname).json.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Compare this run with the one saved in FILE: each row's ratio then and now, the
    /// change, and REGRESSION when it is worse by more than the larger of both runs' range
    /// over their repetitions (the extreme eighths set aside; at least 1%). Exit 4 when a row
    /// regressed.
    #[arg(long, value_name = "FILE")]
    pub compare: Option<PathBuf>,
    /// With --compare: take the run saved in FILE as this run and compare it with the one
    /// --compare names, instead of running the benchmark (nothing is measured). The exit
    /// status is the one that run would have had: 4 on a regression, else 1 when one of its
    /// rows missed its goal.
    #[arg(
        long,
        value_name = "FILE",
        requires = "compare",
        conflicts_with_all = ["save", "quick", "dir", "s3_endpoint", "only"]
    )]
    pub against: Option<PathBuf>,
}

/// Runs the comparisons and prints the table (and the comparison with a saved run). Exit 4
/// when `--compare` found a regression, else 1 when a goal was missed.
pub(super) fn run(args: &BenchArgs, out: &Out) -> anyhow::Result<Status> {
    // A saved run that cannot be read is refused before minutes of measuring.
    let saved = args.compare.as_deref().map(Record::load).transpose()?;
    if let (Some(saved), Some(against)) = (&saved, &args.against) {
        let now = Record::load(against)?;
        // The status is the one that run would have had: a goal it missed is still missed.
        let missed_goal = now.rows.iter().any(|r| r.verdict == Verdict::Fail);
        return report(out, &now, saved, args.compare.as_deref(), missed_goal);
    }
    if let Some(path) = &args.save {
        // Checked again by the rename that publishes it; this only spares a wasted run.
        anyhow::ensure!(
            std::fs::symlink_metadata(path).is_err(),
            "bench result {}: already exists; a saved run is never replaced (remove it, or save under another name)",
            Escaped::path(path)
        );
    }
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    let mut opts = if args.quick {
        BenchOptions::quick(&dir)
    } else {
        BenchOptions::new(&dir)
    };
    opts.s3_endpoint = args.s3_endpoint.clone();
    opts.only = args.only.clone();
    let me = std::env::current_exe().context("finding this executable for the RSS probe")?;
    opts.rss_probe = Some(vec![me.display().to_string()]);
    out.info(format_args!(
        "benchmarking in {} (this takes a while; ratios, not times, are the result)",
        dir.display()
    ))?;
    let table = bench::run(&opts).context("running the benchmark")?;
    if let Some(only) = &args.only {
        // An empty table would read as "nothing regressed, every goal met".
        anyhow::ensure!(
            !table.rows.is_empty(),
            "no row's name starts with {only:?} (the rows start with persist, serialise, latest() verify, peak RSS, consensus, ship, restore, chunked, engine)"
        );
    }
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let command = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let record = Record::of(&table, Machine::here(), command, args.quick, unix_time);
    out.text(format_args!("{table}"))?;
    if let Some(path) = &args.save {
        record.save(path)?;
        out.info(format_args!("saved this run as {}", Escaped::path(path)))?;
    }
    match &saved {
        Some(saved) => report(
            out,
            &record,
            saved,
            args.compare.as_deref(),
            !table.all_passed(),
        ),
        None => {
            out.json(&record)?;
            Ok(Status::failed_if(!table.all_passed()))
        }
    }
}

/// Prints `now` against `saved` (text: the comparison; JSON: `now` with a `comparison`
/// member) and returns the status: regressed, else failed when `missed_goal`.
fn report(
    out: &Out,
    now: &Record,
    saved: &Record,
    saved_path: Option<&Path>,
    missed_goal: bool,
) -> anyhow::Result<Status> {
    let comparison = bench::compare(saved, now);
    let mut doc = serde_json::to_value(now)?;
    if let Some(map) = doc.as_object_mut() {
        map.insert("comparison".into(), serde_json::to_value(&comparison)?);
    }
    out.json(&doc)?;
    out.text(format_args!(
        "\ncompared with the run saved in {} ({}):",
        saved_path.map_or_else(|| "-".to_owned(), |p| Escaped::path(p).to_string()),
        age(saved.unix_time, now.unix_time)
    ))?;
    out.text(format_args!("{comparison}"))?;
    Ok(status(&comparison, missed_goal))
}

fn status(comparison: &Comparison, missed_goal: bool) -> Status {
    if comparison.regressions > 0 {
        Status::Regressed
    } else {
        Status::failed_if(missed_goal)
    }
}

/// How long before `now` a run at `then` finished, for people.
fn age(then: u64, now: u64) -> String {
    let Some(secs) = now.checked_sub(then) else {
        return "later than this one, by its clock".into();
    };
    match secs {
        0..=119 => format!("{secs} s before"),
        120..=7199 => format!("{} minutes before", secs / 60),
        7200..=172_799 => format!("{} hours before", secs / 3600),
        _ => format!("{} days before", secs / 86_400),
    }
}
