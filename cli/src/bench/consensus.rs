//! The consensus thread's cost while large generations are in flight, against the same calls
//! while a peer does the same background work without snapseal (the floor:
//! [`background`](super::background)) and with nothing in the background (for information),
//! paced identically (a short sleep between signatures in every phase, so all see the same
//! cache and CPU-idle effects and only the background differs).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::background;
use super::fixture::{GeneratedState, WorkDir};
use super::rig::{Rig, WORKER_NICE};
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
    Ok(latency(times))
}

/// Times the same calls (no generation of snapseal's) while [`background::run`] does the work
/// of `generations` snapshots of `body` bytes on other threads: at least `min_calls`
/// signatures, and until the background is done.
pub(crate) fn measure_beside_peer(
    dir: &Path,
    generations: u64,
    body: u64,
    min_calls: usize,
) -> Result<Latency, BenchError> {
    let work = WorkDir::new(dir, "consensus-peer")?;
    let rig_dir = work.path().join("store");
    let peer_dir = work.path().join("peer");
    for d in [&rig_dir, &peer_dir] {
        std::fs::create_dir_all(d).map_err(|e| BenchError::io(d, "mkdir", e))?;
    }
    let mut rig = Rig::new(
        &rig_dir,
        Arc::new(GeneratedState { len: body }),
        1,
        Some(snapseal_actors::DEFAULT_SPILL_THRESHOLD),
    )?;
    let done = std::sync::atomic::AtomicBool::new(false);
    let start = Instant::now();
    let (times, peer) = std::thread::scope(|s| {
        let peer = s.spawn(|| {
            let r = background::run(&peer_dir, generations, body);
            done.store(true, std::sync::atomic::Ordering::Release);
            r
        });
        let mut times = Vec::new();
        while !done.load(std::sync::atomic::Ordering::Acquire) || times.len() < min_calls {
            times.push(rig.tx());
            std::thread::sleep(PACE);
            if start.elapsed() > HANG_GUARD {
                break;
            }
        }
        let peer = peer
            .join()
            .unwrap_or_else(|_| Err(BenchError::Run("background peer panicked".into())));
        (times, peer)
    });
    rig.shutdown();
    peer?;
    if start.elapsed() > HANG_GUARD {
        return Err(BenchError::Run(format!(
            "the background peer's {generations} generations of {} did not finish in {HANG_GUARD:?}",
            bytes(body)
        )));
    }
    Ok(latency(times))
}

fn latency(mut times: Vec<Duration>) -> Latency {
    times.sort();
    Latency {
        calls: times.len(),
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        max: times.last().copied().unwrap_or_default(),
    }
}

/// The absolute bound on the consensus thread's p99 with generations in flight, in seconds.
const P99_BOUND: f64 = 5e-6;

/// One round: the consensus thread's latency with snapseal's generations in flight, beside the
/// peer doing the same work, and with nothing in the background.
struct Round {
    busy: Latency,
    peer: Latency,
    idle: Latency,
}

/// The table rows, from `rounds` rounds (each: snapseal's `generations` × `body` in flight,
/// then the peer doing the same work, then nothing, each phase timing at least as many
/// signatures as the first took): p99 against the peer's (≤ 1.1×), the p99 itself (< 5 µs),
/// and p99 against idle (information). Each row reports the median round of its own figure
/// (one round is at the mercy of whatever else the machine does meanwhile).
pub(crate) fn rows(
    dir: &Path,
    generations: u64,
    body: u64,
    rounds: usize,
) -> Result<Vec<BenchRow>, BenchError> {
    let mut all = Vec::new();
    for _ in 0..rounds.max(1) {
        let busy = measure(dir, generations, body, 2_000)?;
        let peer = measure_beside_peer(dir, generations, body, busy.calls)?;
        let idle = measure(dir, 0, body, busy.calls)?;
        all.push(Round { busy, peer, idle });
    }
    let p99 = |l: &Latency| l.p99.as_secs_f64();
    let in_flight = format!("{generations} x {}", bytes(body));
    // The figures around the median round of the goal row (ours over the peer's p99).
    let detail = |all: &[Round]| {
        let mut sorted: Vec<&Round> = all.iter().collect();
        sorted.sort_by(|a, b| {
            (p99(&a.busy) / p99(&a.peer)).total_cmp(&(p99(&b.busy) / p99(&b.peer)))
        });
        let Some(r) = sorted.get(sorted.len() / 2) else {
            return String::new();
        };
        format!(
            "p50 {} vs {}; {} signatures; one signature = record_committable + \
             record_signature + record_tree + commit; engine workers at nice {WORKER_NICE}, \
             hashing pool {}",
            secs(r.busy.p50.as_secs_f64()),
            secs(r.peer.p50.as_secs_f64()),
            r.busy.calls,
            snapseal_persist::hashing_config().map_or_else(
                || "not started".to_string(),
                |c| format!("{} threads at nice {}", c.threads, c.nice)
            )
        )
    };
    let vs_peer = ratio_row(
        format!("consensus-thread p99 with {in_flight} in flight vs a peer hashing+writing the same bytes"),
        &all,
        |r| (p99(&r.busy), p99(&r.peer)),
        Target::AtMost(1.1),
    );
    let vs_peer = BenchRow {
        note: format!(
            "the peer: the same bytes generated, BLAKE3-hashed on the hashing pool while written, \
             fsync, rename, dir fsync, from as many threads at the same nice, no snapseal; {}; \
             median round: {}",
            vs_peer.note,
            detail(&all[..])
        ),
        ..vs_peer
    };
    let absolute = BenchRow::absolute_time(
        format!("consensus-thread p99 with {in_flight} in flight"),
        all.iter().map(|r| p99(&r.busy)).collect(),
        P99_BOUND,
    )
    .with_note(format!("median of {} rounds", all.len()));
    let vs_idle = ratio_row(
        format!("consensus-thread p99 with {in_flight} in flight vs none"),
        &all,
        |r| (p99(&r.busy), p99(&r.idle)),
        Target::None,
    );
    let vs_idle = BenchRow {
        note: format!(
            "information: background hashing on the other vCPU costs the consensus core cache and \
             memory bandwidth whoever does it (the peer row is the goal); {}",
            vs_idle.note
        ),
        ..vs_idle
    };
    Ok(vec![vs_peer, absolute, vs_idle])
}

/// A row of `ours / theirs` p99s over the rounds: the median round's figures, every round's
/// ratio as the samples.
fn ratio_row(
    what: String,
    rounds: &[Round],
    pair: impl Fn(&Round) -> (f64, f64),
    target: Target,
) -> BenchRow {
    let mut pairs: Vec<(f64, f64, f64)> = rounds
        .iter()
        .map(|r| {
            let (ours, theirs) = pair(r);
            (ours / theirs, ours, theirs)
        })
        .collect();
    let samples = pairs.iter().map(|p| p.0).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let shown: Vec<String> = pairs.iter().map(|p| format!("{:.2}x", p.0)).collect();
    let (ratio, ours, theirs) =
        pairs
            .get(pairs.len() / 2)
            .copied()
            .unwrap_or((f64::NAN, f64::NAN, f64::NAN));
    let verdict = match target {
        Target::AtMost(b) if ratio <= b => Verdict::Pass,
        Target::AtMost(_) => Verdict::Fail,
        _ => Verdict::Info,
    };
    BenchRow {
        what,
        ours: secs(ours),
        peer: secs(theirs),
        figures: Some(Figures {
            ours,
            peer: Some(theirs),
            unit: "s",
        }),
        ratio: Some(ratio),
        samples,
        target,
        verdict,
        note: format!("median of {} rounds ({})", rounds.len(), shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(p99_us: u64) -> Latency {
        let d = Duration::from_micros(p99_us);
        Latency {
            calls: 10,
            p50: d,
            p99: d,
            max: d,
        }
    }

    #[test]
    fn a_p99_ratio_row_reports_the_median_round_and_every_rounds_ratio() {
        let rounds = [(12, 10), (10, 10), (30, 10)].map(|(busy, peer)| Round {
            busy: lat(busy),
            peer: lat(peer),
            idle: lat(1),
        });
        let ratio = |r: &Round| (r.busy.p99.as_secs_f64(), r.peer.p99.as_secs_f64());
        let row = ratio_row("r".into(), &rounds, ratio, Target::AtMost(1.1));
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(
            close(row.ratio.unwrap_or(0.0), 1.2),
            "median round: {row:?}"
        );
        assert_eq!(row.samples.len(), 3);
        assert!(close(row.samples[2], 3.0), "in round order: {row:?}");
        assert_eq!(row.verdict, Verdict::Fail, "1.2 is above 1.1");
        let info = ratio_row("r".into(), &rounds, ratio, Target::None);
        assert_eq!(info.verdict, Verdict::Info);
    }
}
