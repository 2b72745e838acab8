//! Running simulations from seeds: one seed stands for a configuration and an operation list,
//! so a failure replays from a one-line command.

use super::{Harness, HarnessConfig, HarnessStats, Op, Violation};

/// Environment variable naming the one seed the `replay` test runs.
pub const SEED_ENV: &str = "SNAPSEAL_SEED";
/// Environment variable raising the number of seeds a sweep runs.
pub const SEEDS_ENV: &str = "SNAPSEAL_SEEDS";
/// Environment variable setting the number of operations per seed.
pub const OPS_ENV: &str = "SNAPSEAL_OPS";
/// Operations per seed unless [`OPS_ENV`] says otherwise.
pub const DEFAULT_OPS: usize = 200;

/// The number in environment variable `var`, or `default` when it is unset or not a number.
pub fn env_count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The one-line command that replays seed `seed` with `ops` operations.
pub fn repro_command(seed: u64, ops: usize) -> String {
    let ops_var = if ops == DEFAULT_OPS {
        String::new()
    } else {
        format!("{OPS_ENV}={ops} ")
    };
    format!(
        "{SEED_ENV}={seed} {ops_var}cargo test --test simulation -- \
         --exact harness_seeds::replay --nocapture"
    )
}

/// Runs the simulation seed `seed` stands for: [`HarnessConfig::from_seed`], then
/// [`Op::random_list`] of `ops` operations, then [`Harness::settle`].
pub fn run_seed(seed: u64, ops: usize) -> Result<HarnessStats, Violation> {
    let repro = repro_command(seed, ops);
    let mut h = Harness::new(seed, HarnessConfig::from_seed(seed)).map_err(|v| Violation {
        repro: repro.clone(),
        ..v
    })?;
    h.set_repro(repro);
    h.run(&Op::random_list(seed, ops))
}

/// What a sweep over many seeds found.
#[derive(Clone, Debug, Default)]
pub struct SweepReport {
    /// Totals over every seed that passed.
    pub stats: HarnessStats,
    /// Seeds run.
    pub seeds: u64,
    /// Every violation found (one per failing seed).
    pub violations: Vec<Violation>,
}

/// Runs seeds `first .. first + count`, `ops` operations each, and collects the results.
pub fn sweep(first: u64, count: u64, ops: usize) -> SweepReport {
    let mut report = SweepReport::default();
    for seed in first..first.saturating_add(count) {
        report.seeds += 1;
        match run_seed(seed, ops) {
            Ok(stats) => report.stats += stats,
            Err(v) => report.violations.push(v),
        }
    }
    report
}
