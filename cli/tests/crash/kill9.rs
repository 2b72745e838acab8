//! kill -9 torture: the demo runs as a child process against one real
//! directory and is SIGKILLed at random instants, round after round; every round resumes
//! where the last one died (`demo --resume`). After each kill the directory must keep the
//! crash contract (see `support`): every committed file verifies, no acknowledged
//! commit (a `committed.log` line) is lost unless retention could have deleted it, no
//! quarantined or foreign file appears, no snapshot name ever comes back with other contents,
//! and once the next run got past its recovery, the stale files of the kill before are gone.
//!
//! `SNAPSEAL_KILL_ROUNDS` sets the rounds (default 8, a few seconds), `SNAPSEAL_KILL_SEED`
//! repeats a run's random choices (the seed is printed first), `SNAPSEAL_CRASH_SPILL=1` uses
//! a state big enough that bodies are spilled to pending files (`support::Shape`). Each round
//! picks one of two ways to choose the instant:
//! - *anywhere*: uniformly over the time one uninterrupted run takes on this machine
//!   (measured first), so kills land in start-up, recovery, snapshotting and the final flush;
//! - *mid-write*: the test watches the directory and, once a snapshot write is in progress
//!   (an uncommitted or pending file appears), waits a random 0..=5 ms and kills. A write
//!   (create, write, fsync, rename, directory fsync) takes a few ms of a second-long run, so
//!   uniform kills alone would rarely land inside one.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{alone, env_u64, inspect, keep_for_debugging, say, seed_from_env};
use crate::support::{wait_for_write, Demo, Figures, History, Rng, Shape};

/// A stuck run is a failure, not a test that never ends.
const RUN_LIMIT: Duration = Duration::from_secs(300);

#[test]
fn sigkill_at_random_instants_never_breaks_a_committed_file_or_loses_an_acknowledgement() {
    let _alone = alone();
    let seed = seed_from_env("SNAPSEAL_KILL_SEED");
    let rounds = env_u64("SNAPSEAL_KILL_ROUNDS", 8);
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let shape = Shape::from_env();
    let demo = Demo::new(
        tmp.path(),
        tmp.path().join("snap"),
        rng.between(1, 1_000),
        3,
        shape,
    );

    // How long one run takes here (debug or release, slow or fast machine).
    let calibration = Demo {
        dir: tmp.path().join("calibration"),
        ..demo.clone()
    };
    let started = Instant::now();
    let ended = calibration.spawn(demo.txs).wait(RUN_LIMIT);
    let full_run = started.elapsed();
    assert!(
        ended.status.success(),
        "calibration run:\n{}",
        ended.output()
    );
    let max_ms = (full_run.as_millis() as u64).max(50);
    say(&format!(
        "kill9: seed {seed} (demo seed {}, {shape:?} state), {rounds} rounds, kills uniform in 0..={max_ms} ms \
         (one run takes {full_run:.2?}); repeat: SNAPSEAL_KILL_SEED={seed} \
         SNAPSEAL_KILL_ROUNDS={rounds} cargo test --test crash kill9",
        demo.seed
    ));

    let mut history = History::default();
    let mut figures = Figures::default();
    let (mut mid_write_rounds, mut mid_write_hits) = (0u64, 0u64);
    for round in 1..=rounds {
        let mid_write = rng.next() % 2 == 1;
        let delay = Duration::from_millis(rng.between(0, max_ms));
        let lag = Duration::from_micros(rng.between(0, 5_000));
        let before = figures.mid_persist;
        let child = demo.spawn(demo.txs);
        let how = if mid_write {
            mid_write_rounds += 1;
            // Give up watching after twice a whole run's time: the child may have finished.
            let seen = wait_for_write(&demo.dir, &history.stale, full_run * 2, lag);
            format!("mid-write (seen {seen}, then {lag:?})")
        } else {
            std::thread::sleep(delay);
            format!("after {delay:?}")
        };
        let ended = child.kill();
        let state = inspect(&demo);
        let violations = history.round(&state, &ended, false, &mut figures);
        if mid_write && figures.mid_persist > before {
            mid_write_hits += 1;
        }
        if !violations.is_empty() {
            let kept = keep_for_debugging(&demo.dir, "kill9");
            panic!(
                "round {round} (seed {seed}, kill {how}): {} violation(s):\n  {}\n\
                 directory copied to {}\nchild stderr:\n{}",
                violations.len(),
                violations.join("\n  "),
                kept.display(),
                ended.output()
            );
        }
    }

    let killed = figures.clone();
    // One more run, left to finish: after every kill above, a restart still recovers,
    // snapshots, verifies everything and exits 0, leaving no stale file.
    let ended = demo.spawn(demo.short_run()).wait(RUN_LIMIT);
    let state = inspect(&demo);
    let violations = history.round(&state, &ended, false, &mut figures);
    assert!(
        ended.status.success() && ended.recovered() && violations.is_empty(),
        "final run: {:?}, violations {violations:?}\n{}",
        ended.status,
        ended.output()
    );
    assert!(
        state.stale.is_empty(),
        "a finished run leaves no stale file: {:?}",
        state.stale
    );
    assert!(!state.log.lines.is_empty(), "something was acknowledged");

    say(&format!(
        "kill9: seed {seed}: {rounds} kill rounds, then 1 run to completion (exit 0, {} \
         acknowledged commits in all). Kill rounds: {} killed, {} finished before the kill; {} \
         kill(s) left a write in progress (a new stale uncommitted/pending file; {} with a spilled \
         body), {mid_write_hits} of them in the {mid_write_rounds} mid-write rounds; {} restarts got past recovery, \
         removing {} stale file(s); {} committed files never acknowledged (killed between \
         commit and log line); newest acknowledged file gone {} time(s) (retention kept {} newer, \
         unacknowledged ones instead); {} violation(s)",
        figures.acknowledged,
        killed.kills,
        killed.finished_first,
        killed.mid_persist,
        killed.mid_spill,
        killed.recovered,
        killed.stale_cleaned,
        killed.committed_unacknowledged,
        killed.newest_acked_missing,
        demo.keep_last,
        figures.violations.len()
    ));
}

/// The resume path on its own, without randomness: a directory as a kill mid-write leaves it
/// (a stale uncommitted file, an unfinished log line) is refused under another seed without
/// a change, then resumed: the stale file is removed, the unfinished line cut, the earlier
/// lines kept, the ledger on disk reopened at its commit index (which covers every earlier
/// commit; the stale name past it is ignored) and every new snapshot is named above it, so
/// no committed name is reused.
#[test]
fn a_resumed_demo_recovers_a_killed_ones_directory_and_never_reuses_its_indices() {
    let tmp = tempfile::tempdir().unwrap();
    let mut demo = Demo::new(tmp.path(), tmp.path().join("snap"), 3, 3, Shape::Small);
    demo.txs = demo.short_run();
    let ended = demo.spawn(demo.txs).wait(RUN_LIMIT);
    assert!(ended.status.success(), "{}", ended.output());
    let first = crate::support::read_log(&demo.dir).unwrap();
    assert!(!first.lines.is_empty());

    // What a kill in the middle of the next write would leave.
    let stale = "snapshot_900000_900007";
    std::fs::write(demo.dir.join(stale), b"half a snapshot").unwrap();
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(demo.dir.join("committed.log"))
        .unwrap();
    std::io::Write::write_all(&mut log, b"900000 900007 snapshot_9").unwrap();
    let listing = |d: &Path| {
        let mut names: Vec<(String, u64)> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| {
                let len = e.metadata().unwrap().len();
                (e.file_name().to_string_lossy().into_owned(), len)
            })
            .collect();
        names.sort();
        names
    };

    let before = listing(&demo.dir);
    let other_seed = Demo {
        seed: demo.seed + 1,
        ..demo.clone()
    };
    let refused = other_seed.spawn(demo.txs).wait(RUN_LIMIT);
    assert_eq!(refused.status.code(), Some(2), "{}", refused.output());
    assert!(refused.output().contains("--seed"), "{}", refused.output());
    assert_eq!(
        listing(&demo.dir),
        before,
        "a refused resume changes nothing"
    );

    let ended = demo.spawn(demo.txs).wait(RUN_LIMIT);
    assert!(ended.status.success(), "{}", ended.output());
    let base = ended.resumed_after().expect("a resumed run");
    let first_max = first
        .lines
        .iter()
        .map(|l| l.name.idx.max(l.name.evidence_idx))
        .max()
        .unwrap();
    assert!(
        (first_max..900_000).contains(&base),
        "the reopened ledger's commit index {base} covers every earlier commit (up to \
         {first_max}) and ignores the stale name: {}",
        ended.output()
    );
    assert!(
        !demo.dir.join(stale).exists(),
        "recovery removed the stale file"
    );
    let state = inspect(&demo);
    assert!(state.violations.is_empty(), "{:?}", state.violations);
    assert_eq!(state.log.partial, 0, "the unfinished line was cut");
    let texts: Vec<&str> = state.log.lines.iter().map(|l| l.text.as_str()).collect();
    let earlier: Vec<&str> = first.lines.iter().map(|l| l.text.as_str()).collect();
    assert!(texts.starts_with(&earlier), "earlier acknowledgements kept");
    let new = &state.log.lines[earlier.len()..];
    assert!(!new.is_empty(), "the resumed run committed snapshots");
    assert!(
        new.iter().all(|l| l.name.idx > base),
        "new names lie above the reopened ledger's commit index: {texts:?}"
    );
}
