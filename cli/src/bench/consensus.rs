//! The consensus thread's cost while large generations are in flight, against the same calls
//! with none, paced identically (a short sleep between signatures in both phases, so both see
//! the same cache and CPU-idle effects and only the generations differ).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fixture::{GeneratedState, WorkDir};
use super::rig::Rig;
use super::table::{BenchRow, Figures, Target, Verdict};
use super::BenchError;
use crate::units::percentile;
use crate::units::{bytes, secs};

/// Pause between two signatures: lets the workers progress, as a real node's tx rate would.
const PACE: Duration = Duration::from_micros(50);

/// Give up on generations that do not finish in this long.
const HANG_GUARD: Duration = Duration::from_secs(600);

/// Latency percentiles of one phase.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    /// Number of signatures timed.
    pub calls: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

/// Times the calls while `generations` snapshots of `body` bytes each are forced and run to
/// completion (at least `min_calls` signatures; with 0 generations exactly `min_calls`).
pub fn measure(
    dir: &Path,
    generations: u64,
    body: u64,
    min_calls: usize,
) -> Result<Latency, BenchError> {
    let work = WorkDir::new(dir, "consensus")?;
    let mut rig = Rig::new(
        work.path(),
        Arc::new(GeneratedState { len: body }),
        generations.max(1) as usize,
        Some(snapseal_actors::DEFAULT_SPILL_THRESHOLD),
    )?;
    let mut times = Vec::new();
    let mut forced = 0;
    let start = Instant::now();
    loop {
        let busy = rig.snap.counters().scheduled < generations || !rig.snap.pending().is_empty();
        if !busy && times.len() >= min_calls {
            break;
        }
        if forced < generations {
            rig.snap.trigger_snapshot(); // the next signature becomes a snapshot point
            forced += 1;
        }
        times.push(rig.tx());
        std::thread::sleep(PACE);
        if start.elapsed() > HANG_GUARD {
            rig.shutdown();
            return Err(BenchError::Run(format!(
                "{generations} generations of {} did not finish in {HANG_GUARD:?}",
                bytes(body)
            )));
        }
    }
    let c = rig.snap.counters();
    rig.shutdown();
    if c.persisted < generations {
        return Err(BenchError::Run(format!(
            "only {} of {generations} generations persisted ({} failed)",
            c.persisted, c.failed
        )));
    }
    times.sort();
    Ok(Latency {
        calls: times.len(),
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        max: times.last().copied().unwrap_or_default(),
    })
}

/// The table row: p99 with `generations` × `body` in flight against p99 with none, the idle
/// phase timing as many signatures as the busy one took; `rounds` pairs, the median ratio
/// reported (one pair is at the mercy of whatever else the machine does meanwhile).
pub(crate) fn row(
    dir: &Path,
    generations: u64,
    body: u64,
    rounds: usize,
) -> Result<BenchRow, BenchError> {
    let mut pairs = Vec::new();
    for _ in 0..rounds.max(1) {
        let busy = measure(dir, generations, body, 2_000)?;
        let idle = measure(dir, 0, body, busy.calls)?;
        let ratio = busy.p99.as_secs_f64() / idle.p99.as_secs_f64();
        pairs.push((ratio, busy, idle));
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let all: Vec<String> = pairs.iter().map(|p| format!("{:.2}x", p.0)).collect();
    let (ratio, busy, idle) = pairs[pairs.len() / 2];
    Ok(BenchRow {
        what: format!(
            "consensus-thread p99 with {generations} x {} in flight vs none",
            bytes(body)
        ),
        ours: secs(busy.p99.as_secs_f64()),
        peer: secs(idle.p99.as_secs_f64()),
        figures: Some(Figures {
            ours: busy.p99.as_secs_f64(),
            peer: Some(idle.p99.as_secs_f64()),
            unit: "s",
        }),
        ratio: Some(ratio),
        samples: pairs.iter().map(|p| p.0).collect(),
        target: Target::AtMost(1.5),
        verdict: if ratio <= 1.5 {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
        note: format!(
            "median of {} rounds ({}); p50 {} vs {}; {} signatures each; one signature = \
             record_committable + record_signature + record_tree + commit; engine workers at \
             nice 10, hashing pool {}",
            pairs.len(),
            all.join(", "),
            secs(busy.p50.as_secs_f64()),
            secs(idle.p50.as_secs_f64()),
            busy.calls,
            snapseal_persist::hashing_config().map_or_else(
                || "not started".to_string(),
                |c| format!("{} threads at nice {}", c.threads, c.nice)
            )
        ),
    })
}
