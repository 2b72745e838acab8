//! One openraft snapshot build of a state of `size` bytes through the adapter
//! (`snapseal_openraft::SealedStateMachine`: the view taken, metadata record, hash, sign,
//! write, fsync, rename, directory fsync, and the verified read-back openraft is handed)
//! against openraft's in-memory way (the state cloned and serialised into a `Vec` kept as a
//! `Cursor`: no durability), for two kinds of state:
//!
//! - **copied**: 1 MiB pages owned outright: the adapter clones them once and serialises the
//!   copy through the body builder (spilled past the default budget);
//! - **frozen**: the same pages behind `Arc`s, handed to the adapter as frozen chunks: nothing
//!   is cloned or copied. openraft's way still serialises them into a `Vec`.
//!
//! And one install of that snapshot on a follower: the adapter receives the file's bytes
//! (`begin_receiving_snapshot`, written in 1 MiB pieces), then `install_snapshot` verifies,
//! commits and restores the state from it; openraft's in-memory way receives the bytes into a
//! `Cursor<Vec<u8>>` and restores the state from that.
//!
//! Each build or install runs in a fresh child process (the peak-RSS probe program with [`MODE`]): the
//! state is made first, then the peak is reset and the build timed; "peak above" is `VmHWM`
//! after the build minus `VmRSS` before it. The goals are issue 23's for the build, applied to
//! the install too: time ≤ 1.5× and peak within +64 MiB of openraft's in-memory way. The same measurement, with more output, is
//! `cargo bench -p snapseal-openraft --bench build`.

use std::io::{self, Cursor, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use snapseal_openraft::{FrozenChunk, SealOptions, SealedData, SealedState, SealedStateMachine};
use snapseal_persist::SigningKey;

use super::fixture::{median, WorkDir};
use super::rss::{finish_probe, run_probe, status_kib, PROBE_ARG};
use super::table::{BenchRow, Figures, Target, Verdict};
use super::BenchError;
use crate::units::bytes;

openraft::declare_raft_types!(
    /// The bench's type configuration: an entry asks for that many more pages.
    Cfg: D = u64, R = (), SnapshotData = SealedData,
);

/// The probe's mode argument: `[PROBE_ARG, MODE, <case>, <pages>, <dir>]`.
pub(crate) const MODE: &str = "openraft";

const PAGE: usize = 1 << 20;

/// Goals (issue 23): the adapter's build time over openraft's in-memory build, and the
/// adapter's peak above openraft's.
const TIME_BOUND: f64 = 1.5;
const PEAK_BOUND_MIB: f64 = 64.0;

/// The bytes of page `i`: distinct, so nothing is shared or a zero page.
fn page(i: u64) -> Vec<u8> {
    let mut p = vec![0u8; PAGE];
    for (j, w) in p.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&(i << 32 | j as u64).to_le_bytes());
    }
    p
}

fn read_pages(input: &mut dyn Read) -> io::Result<Vec<Vec<u8>>> {
    let mut pages = Vec::new();
    loop {
        let mut p = Vec::with_capacity(PAGE);
        let n = input.take(PAGE as u64).read_to_end(&mut p)?;
        if n == 0 {
            return Ok(pages);
        }
        pages.push(p);
    }
}

/// Pages owned outright: a clone copies them.
#[derive(Clone, Default)]
struct Copied(Vec<Vec<u8>>);

impl SealedState<Cfg> for Copied {
    fn apply(&mut self, _: &LogId<u64>, pages: &u64) {
        let start = self.0.len() as u64;
        self.0.extend((start..start + pages).map(page));
    }
    fn no_data_response(&self, _: &LogId<u64>) {}
    fn serialise(&self, out: &mut dyn Write) -> io::Result<()> {
        self.0.iter().try_for_each(|p| out.write_all(p))
    }
    fn restore(input: &mut dyn Read) -> io::Result<Self> {
        read_pages(input).map(Copied)
    }
}

/// The same pages, frozen behind `Arc`s.
#[derive(Clone, Default)]
struct Frozen(Vec<Arc<Vec<u8>>>);

impl SealedState<Cfg> for Frozen {
    fn apply(&mut self, _: &LogId<u64>, pages: &u64) {
        let start = self.0.len() as u64;
        self.0
            .extend((start..start + pages).map(|i| Arc::new(page(i))));
    }
    fn no_data_response(&self, _: &LogId<u64>) {}
    fn serialise(&self, out: &mut dyn Write) -> io::Result<()> {
        self.0.iter().try_for_each(|p| out.write_all(p))
    }
    fn restore(input: &mut dyn Read) -> io::Result<Self> {
        Ok(Frozen(
            read_pages(input)?.into_iter().map(Arc::new).collect(),
        ))
    }
    fn frozen(&self) -> Option<Vec<FrozenChunk>> {
        Some(
            self.0
                .iter()
                .map(|p| Arc::clone(p) as FrozenChunk)
                .collect(),
        )
    }
}

/// Resets the peak to the current resident set and returns that (KiB).
fn reset_peak() -> Result<u64, BenchError> {
    // "5" resets VmHWM to VmRSS (Linux >= 4.0).
    std::fs::write("/proc/self/clear_refs", "5")
        .map_err(|e| BenchError::io(Path::new("/proc/self/clear_refs"), "write", e))?;
    Ok(status_kib()?.0)
}

fn sealed<S: SealedState<Cfg>>(dir: &Path, pages: u64) -> Result<(Duration, u64), BenchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .map_err(|e| BenchError::Setup(format!("runtime: {e}")))?;
    let entry = Entry::<Cfg> {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), 0),
        payload: EntryPayload::Normal(pages),
    };
    let mut sm: SealedStateMachine<Cfg, S> = SealedStateMachine::open(dir, seal_options())
        .map_err(|e| BenchError::Setup(format!("open the state machine: {e}")))?;
    rt.block_on(sm.apply([entry]))
        .map_err(|e| BenchError::Run(format!("apply: {e}")))?;
    let before = reset_peak()?;
    let start = Instant::now();
    let snapshot = rt.block_on(async {
        let mut builder = sm.get_snapshot_builder().await;
        builder.build_snapshot().await
    });
    let elapsed = start.elapsed();
    let snapshot = snapshot.map_err(|e| BenchError::Run(format!("build: {e}")))?;
    std::hint::black_box(&snapshot);
    Ok((elapsed, before))
}

/// Builds a snapshot of `pages` pages in a state machine at `dir/source` and returns its
/// metadata and the file's bytes (what a leader sends), the state machine dropped.
fn built_bytes<S: SealedState<Cfg>>(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    pages: u64,
) -> Result<(openraft::SnapshotMeta<u64, openraft::BasicNode>, Vec<u8>), BenchError> {
    use tokio::io::AsyncReadExt;
    let source = dir.join("source");
    std::fs::create_dir_all(&source).map_err(|e| BenchError::io(&source, "mkdir", e))?;
    let mut sm: SealedStateMachine<Cfg, S> = SealedStateMachine::open(&source, seal_options())
        .map_err(|e| BenchError::Setup(format!("open the state machine: {e}")))?;
    let entry = Entry::<Cfg> {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), 0),
        payload: EntryPayload::Normal(pages),
    };
    rt.block_on(async {
        sm.apply([entry]).await?;
        let mut builder = sm.get_snapshot_builder().await;
        let mut snapshot = builder.build_snapshot().await?;
        let mut bytes = Vec::new();
        snapshot
            .snapshot
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| openraft::StorageIOError::read_snapshot(None, &e))?;
        Ok::<_, openraft::StorageError<u64>>((snapshot.meta, bytes))
    })
    .map_err(|e| BenchError::Run(format!("build for install: {e}")))
}

fn seal_options() -> SealOptions {
    let key = SigningKey::from_bytes(&[1; 32]);
    SealOptions::new(key.clone(), vec![key.verifying_key()])
}

/// The adapter on a follower: the bytes received into `begin_receiving_snapshot`'s data in
/// 1 MiB writes, then `install_snapshot`.
fn sealed_install<S: SealedState<Cfg>>(
    dir: &Path,
    pages: u64,
) -> Result<(Duration, u64), BenchError> {
    use tokio::io::AsyncWriteExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .map_err(|e| BenchError::Setup(format!("runtime: {e}")))?;
    let (meta, bytes) = built_bytes::<S>(&rt, dir, pages)?;
    let installed = dir.join("installed");
    std::fs::create_dir_all(&installed).map_err(|e| BenchError::io(&installed, "mkdir", e))?;
    let mut sm: SealedStateMachine<Cfg, S> =
        SealedStateMachine::open(&installed, seal_options())
            .map_err(|e| BenchError::Setup(format!("open the state machine: {e}")))?;
    let before = reset_peak()?;
    let start = Instant::now();
    rt.block_on(async {
        let mut data = sm.begin_receiving_snapshot().await?;
        for piece in bytes.chunks(PAGE) {
            data.write_all(piece)
                .await
                .map_err(|e| openraft::StorageIOError::write_snapshot(None, &e))?;
        }
        data.flush()
            .await
            .map_err(|e| openraft::StorageIOError::write_snapshot(None, &e))?;
        sm.install_snapshot(&meta, data).await
    })
    .map_err(|e| BenchError::Run(format!("install: {e}")))?;
    let elapsed = start.elapsed();
    std::hint::black_box(&sm);
    Ok((elapsed, before))
}

/// openraft's in-memory install: the bytes received into a `Cursor<Vec<u8>>`, the state
/// restored from it.
fn in_memory_install<S: SealedState<Cfg> + Clone + Default>(
    pages: u64,
) -> Result<(Duration, u64), BenchError> {
    let mut state = S::default();
    state.apply(&LogId::new(CommittedLeaderId::new(1, 1), 0), &pages);
    let mut bytes = Vec::new();
    state
        .serialise(&mut bytes)
        .map_err(|e| BenchError::Run(format!("serialise: {e}")))?;
    drop(state);
    let before = reset_peak()?;
    let start = Instant::now();
    let mut received = Cursor::new(Vec::new());
    for piece in bytes.chunks(PAGE) {
        received
            .write_all(piece)
            .map_err(|e| BenchError::Run(format!("receive: {e}")))?;
    }
    received.set_position(0);
    let restored =
        S::restore(&mut received).map_err(|e| BenchError::Run(format!("restore: {e}")))?;
    let elapsed = start.elapsed();
    std::hint::black_box(&restored);
    Ok((elapsed, before))
}

/// openraft's in-memory store: a copy of the state serialised into a buffer that stays in
/// memory as the snapshot.
fn in_memory<S: SealedState<Cfg> + Clone + Default>(
    pages: u64,
) -> Result<(Duration, u64), BenchError> {
    let mut state = S::default();
    state.apply(&LogId::new(CommittedLeaderId::new(1, 1), 0), &pages);
    let before = reset_peak()?;
    let start = Instant::now();
    let mut buf = Vec::new();
    state
        .clone()
        .serialise(&mut buf)
        .map_err(|e| BenchError::Run(format!("serialise: {e}")))?;
    let snapshot = Cursor::new(buf);
    let elapsed = start.elapsed();
    std::hint::black_box(&snapshot);
    Ok((elapsed, before))
}

/// One case in this (child) process: `(build time, peak above the start in KiB)`.
fn run_case(case: &str, pages: u64, dir: &Path) -> Result<(Duration, u64), BenchError> {
    let (elapsed, before) = match case {
        "in-memory-copied" => in_memory::<Copied>(pages)?,
        "in-memory-frozen" => in_memory::<Frozen>(pages)?,
        "sealed-copied" => sealed::<Copied>(dir, pages)?,
        "sealed-frozen" => sealed::<Frozen>(dir, pages)?,
        "in-memory-install-copied" => in_memory_install::<Copied>(pages)?,
        "in-memory-install-frozen" => in_memory_install::<Frozen>(pages)?,
        "sealed-install-copied" => sealed_install::<Copied>(dir, pages)?,
        "sealed-install-frozen" => sealed_install::<Frozen>(dir, pages)?,
        other => return Err(BenchError::Setup(format!("no openraft case {other}"))),
    };
    let (_, hwm) = status_kib()?;
    Ok((elapsed, hwm.saturating_sub(before)))
}

/// The probe child's job for `[PROBE_ARG, MODE, <case>, <pages>, <dir>]`: one build, its
/// report line on stdout. Returns the exit code.
pub(crate) fn probe_main(args: &[String]) -> i32 {
    let parsed = (|| {
        let case = args.get(2)?;
        let pages = args.get(3)?.parse::<u64>().ok()?;
        let dir = args.get(4)?;
        Some((case, pages, Path::new(dir)))
    })();
    let Some((case, pages, dir)) = parsed else {
        eprintln!("usage: {PROBE_ARG} {MODE} <case> <pages> <dir>");
        return 2;
    };
    let line = run_case(case, pages, dir).map(|(elapsed, above_kib)| {
        format!(
            "snapseal-openraft-probe ns={} above_kib={above_kib}",
            elapsed.as_nanos()
        )
    });
    finish_probe("openraft probe", line)
}

fn parse_line(line: &str) -> Option<(Duration, u64)> {
    let rest = line.strip_prefix("snapseal-openraft-probe ")?;
    let num = |key: &str| -> Option<u64> {
        rest.split(' ')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some((Duration::from_nanos(num("ns")?), num("above_kib")?))
}

/// One case in a fresh child process.
fn in_child(
    command: &[String],
    case: &str,
    pages: u64,
    dir: &Path,
) -> Result<(Duration, u64), BenchError> {
    let pages = pages.to_string();
    run_probe(
        command,
        &[
            MODE.as_ref(),
            case.as_ref(),
            pages.as_ref(),
            dir.as_os_str(),
        ],
        "start openraft probe",
        &format!("openraft probe ({case})"),
        parse_line,
    )
}

/// The rows: for each kind of state, build time and peak of the adapter against openraft's
/// in-memory way, `runs` alternating child processes each. Needs the probe command (a build's
/// peak is only its own in a fresh process); without one the rows are skipped.
pub(crate) fn rows(
    dir: &Path,
    size: u64,
    runs: usize,
    command: Option<&[String]>,
) -> Result<Vec<BenchRow>, BenchError> {
    let pages = size.div_ceil(PAGE as u64).max(1);
    let size = bytes(pages * PAGE as u64);
    let name_time = |op: &str, kind: &str| {
        format!("openraft snapshot {op} of {size} ({kind} state) vs openraft's in-memory {op}")
    };
    let name_peak = |op: &str, kind: &str| {
        format!("openraft snapshot {op} of {size} ({kind} state): peak RSS above openraft's in-memory {op}")
    };
    let cases = [
        ("build", "copied"),
        ("build", "frozen"),
        ("install", "copied"),
        ("install", "frozen"),
    ];
    let Some(command) = command else {
        let note = "needs a fresh process per build: run it from `snapseal bench`";
        return Ok(cases
            .iter()
            .flat_map(|(op, kind)| {
                [
                    BenchRow::skipped(name_time(op, kind), Target::AtMost(TIME_BOUND), note),
                    BenchRow::skipped(name_peak(op, kind), Target::Absolute(PEAK_BOUND_MIB), note),
                ]
            })
            .collect());
    };
    let work = WorkDir::new(dir, "openraft")?;
    let mut out = Vec::new();
    for (op, kind) in cases {
        let (ours_case, theirs_case) = match op {
            "build" => (format!("sealed-{kind}"), format!("in-memory-{kind}")),
            _ => (
                format!("sealed-install-{kind}"),
                format!("in-memory-install-{kind}"),
            ),
        };
        let (mut ratios, mut ours_t, mut theirs_t) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ours_p, mut theirs_p) = (Vec::new(), Vec::new());
        for run in 0..runs.max(1) {
            let theirs = in_child(command, &theirs_case, pages, work.path())?;
            let store = work.path().join(format!("{op}-{kind}-{run}"));
            std::fs::create_dir_all(&store).map_err(|e| BenchError::io(&store, "mkdir", e))?;
            let ours = in_child(command, &ours_case, pages, &store)?;
            std::fs::remove_dir_all(&store).map_err(|e| BenchError::io(&store, "remove", e))?;
            ratios.push(ours.0.as_secs_f64() / theirs.0.as_secs_f64().max(1e-9));
            ours_t.push(ours.0.as_secs_f64());
            theirs_t.push(theirs.0.as_secs_f64());
            ours_p.push(ours.1 as f64 / 1024.0);
            theirs_p.push(theirs.1 as f64 / 1024.0);
        }
        let (ot, tt) = (median(&mut ours_t), median(&mut theirs_t));
        let ratio = median(&mut ratios.clone());
        let note = match op {
            "build" => "ours: hash, sign, write, fsync, rename, dir fsync, verified read-back; openraft's: a serialised copy in memory, nothing durable",
            _ => "ours: received into a pending file, verified, fsynced, committed, state restored from it; openraft's: received into a Vec, state restored from it, nothing durable",
        };
        out.push(BenchRow {
            what: name_time(op, kind),
            ours: format!("{:.0} ms", ot * 1e3),
            peer: format!("{:.0} ms", tt * 1e3),
            figures: Some(Figures {
                ours: ot,
                peer: Some(tt),
                unit: "s",
            }),
            ratio: Some(ratio),
            samples: ratios,
            target: Target::AtMost(TIME_BOUND),
            verdict: if ratio <= TIME_BOUND {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            note: note.into(),
        });
        let (op_mib, tp_mib) = (median(&mut ours_p), median(&mut theirs_p));
        let above = op_mib - tp_mib;
        out.push(BenchRow {
            what: name_peak(op, kind),
            ours: format!("{above:+.0} MiB"),
            peer: "-".into(),
            figures: Some(Figures {
                ours: above,
                peer: None,
                unit: "MiB",
            }),
            ratio: None,
            // A difference of two medians: no repetition ratio to weigh a change against.
            samples: vec![above],
            target: Target::Absolute(PEAK_BOUND_MIB),
            verdict: if above <= PEAK_BOUND_MIB {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            note: format!(
                "adapter peak +{op_mib:.0} MiB, openraft's in-memory {op} +{tp_mib:.0} MiB (each above what the process held before)"
            ),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_line_parses_and_junk_does_not() {
        assert_eq!(
            parse_line("snapseal-openraft-probe ns=1500 above_kib=2048"),
            Some((Duration::from_nanos(1500), 2048))
        );
        assert_eq!(parse_line("snapseal-openraft-probe ns=1"), None);
        assert_eq!(parse_line("junk"), None);
    }

    #[test]
    fn a_sealed_build_of_a_small_frozen_state_runs_in_process() {
        let tmp = tempfile::tempdir().unwrap();
        let (t, _) = run_case("sealed-frozen", 2, tmp.path()).unwrap();
        assert!(t > Duration::ZERO);
        let (t, _) = run_case("sealed-install-copied", 2, &tmp.path().join("install")).unwrap();
        assert!(t > Duration::ZERO);
        assert!(run_case("no-such-case", 2, tmp.path()).is_err());
    }
}
