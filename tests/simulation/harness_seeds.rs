//! Seed sweeps over the simulation harness: each seed is a configuration plus a random list of
//! operations (ledger traffic, executor steps, faults, crashes, corruption, holds, retention),
//! with every invariant checked after every step and every job.
//!
//! CI runs a bounded sweep; `SNAPSEAL_SEEDS=<n>` (and `SNAPSEAL_FIRST_SEED`, `SNAPSEAL_OPS`)
//! raise it for long runs. A failing seed prints a one-line command for `replay`.

use snapseal_sim::harness::{
    env_count, repro_command, run_seed, sweep, DEFAULT_OPS, KNOWN_BUGS, OPS_ENV, SEEDS_ENV,
    SEED_ENV,
};

fn ops() -> usize {
    usize::try_from(env_count(OPS_ENV, DEFAULT_OPS as u64)).unwrap_or(DEFAULT_OPS)
}

#[test]
fn every_seed_keeps_every_invariant() {
    let seeds = env_count(SEEDS_ENV, 32);
    let first = env_count("SNAPSEAL_FIRST_SEED", 1);
    let report = sweep(first, seeds, ops());
    eprintln!(
        "seeds {first}..{}: {} ops each; {:?}",
        first + seeds,
        ops(),
        report.stats
    );
    let (known, new): (Vec<_>, Vec<_>) = report
        .violations
        .iter()
        .partition(|v| KNOWN_BUGS.contains(&v.invariant));
    for v in &known {
        eprintln!("known bug, not counted: {v}\n");
    }
    for v in &new {
        eprintln!("{v}\n");
    }
    assert!(
        new.is_empty(),
        "{} of {} seeds broke an invariant (first: {})",
        new.len(),
        report.seeds,
        new[0]
    );
    // A sweep that never crashed, persisted or injected anything would prove little.
    let s = report.stats;
    assert_eq!(report.seeds, seeds);
    if seeds >= 32 {
        assert!(s.acked > 0 && s.crashes > 0 && s.crash_points > 0 && s.faults > 0);
        assert!(s.corruptions > 0 && s.retention_deleted > 0 && s.dropped > 0);
    }
}

/// Replays one seed: `SNAPSEAL_SEED=<seed> cargo test --test simulation -- --exact
/// harness_seeds::replay`.
#[test]
fn replay() {
    let seed = env_count(SEED_ENV, 0);
    let ops = ops();
    match run_seed(seed, ops) {
        Ok(stats) => eprintln!("seed {seed}: {stats:?}"),
        Err(v) => panic!("{v}"),
    }
}

#[test]
fn the_reproduction_line_names_the_seed_and_the_test() {
    let line = repro_command(1234, DEFAULT_OPS);
    assert_eq!(
        line,
        "SNAPSEAL_SEED=1234 cargo test --test simulation -- \
         --exact harness_seeds::replay --nocapture"
    );
    assert!(repro_command(5, 17).starts_with("SNAPSEAL_SEED=5 SNAPSEAL_OPS=17 cargo test"));
}

/// The sweeps reach the spill path and size-based retention: over a fixed range of seeds whose
/// configuration spills bodies or sets `max_bytes`, some generations spilled, some spilled
/// generations were committed from their pending file, a power loss left pending files that
/// recovery removed, and retention trimmed by size.
#[test]
fn seeds_reach_spilled_bodies_and_size_retention() {
    use snapseal_sim::harness::HarnessConfig;
    let mut stats = snapseal_sim::harness::HarnessStats::default();
    let mut run = 0;
    for seed in 1..=400u64 {
        let cfg = HarnessConfig::from_seed(seed);
        if cfg.spill_threshold.is_none() && cfg.max_bytes.is_none() {
            continue;
        }
        run += 1;
        match run_seed(seed, DEFAULT_OPS) {
            Ok(s) => stats += s,
            Err(v) => panic!("{v}"),
        }
        if run >= 24 {
            break;
        }
    }
    eprintln!("{run} spill / max_bytes seeds: {stats:?}");
    assert!(stats.spilled > 0, "no generation spilled");
    assert!(
        stats.spilled_acked > 0,
        "no spilled generation was committed"
    );
    assert!(stats.pending_cleaned > 0, "no crash left a pending file");
    assert!(stats.size_trimmed > 0, "max_bytes never trimmed");
}
