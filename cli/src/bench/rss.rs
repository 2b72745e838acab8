//! Peak memory while snapshotting a state of size S: a whole generation (serialise, evidence,
//! signature, persist) of a state that exists nowhere (its bytes are generated as they are
//! streamed, so the node's own state costs nothing): every byte of peak RSS above the
//! starting point is snapseal's.
//!
//! Measured in a fresh child process (its `VmHWM` is its own peak), started by the caller with
//! a command that ends up in [`probe_main`]; or, without one, in this process after resetting
//! the peak with `/proc/self/clear_refs` (less clean: this process may hold other memory).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use snapseal_actors::SnapshotEvent;

use super::fixture::{GeneratedState, WorkDir};
use super::rig::Rig;
use super::table::{BenchRow, Figures, Target, Verdict};
use super::BenchError;
use crate::units::bytes;

/// The argument that makes a program run [`probe_main`] (see [`probe_requested`]).
pub const PROBE_ARG: &str = "--snapseal-rss-probe";

/// What one probe measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RssReport {
    /// Snapshot body size.
    pub size: u64,
    /// Resident set before the snapshot started (engine, store and ledger set up).
    pub baseline_kib: u64,
    /// Peak resident set during the whole generation.
    pub peak_kib: u64,
    /// From the commit that scheduled the generation to its evidence request (serialise).
    pub serialise: Duration,
    /// From the commit that passed the gate to the committed event (persist).
    pub persist: Duration,
    /// Whether the body was spilled to a pending file.
    pub spilled: bool,
}

impl RssReport {
    /// Peak memory above the starting point, in MiB.
    pub fn above_mib(&self) -> f64 {
        self.peak_kib.saturating_sub(self.baseline_kib) as f64 / 1024.0
    }

    fn to_line(self) -> String {
        format!(
            "snapseal-rss-probe size={} baseline_kib={} peak_kib={} serialise_ns={} persist_ns={} spilled={}",
            self.size,
            self.baseline_kib,
            self.peak_kib,
            self.serialise.as_nanos(),
            self.persist.as_nanos(),
            self.spilled
        )
    }

    fn from_line(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("snapseal-rss-probe ")?;
        let field = |key: &str| -> Option<&str> {
            rest.split(' ')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        };
        let num = |key: &str| field(key)?.parse::<u64>().ok();
        Some(RssReport {
            size: num("size")?,
            baseline_kib: num("baseline_kib")?,
            peak_kib: num("peak_kib")?,
            serialise: Duration::from_nanos(num("serialise_ns")?),
            persist: Duration::from_nanos(num("persist_ns")?),
            spilled: field("spilled")? == "true",
        })
    }
}

/// True when this process was started as a probe: `args` (without the program name) are
/// `[PROBE_ARG, <dir>, <size>, <spill threshold or "none">]`.
pub fn probe_requested(args: &[String]) -> bool {
    args.first().map(String::as_str) == Some(PROBE_ARG)
}

/// The probe child's whole job: parse `args` (see [`probe_requested`]), run one generation,
/// print the report line on stdout. Returns the process exit code. With `restart` or
/// `openraft` as the first argument after [`PROBE_ARG`], the restart row's probe (a store
/// directory follows: open it, `latest()`, read the body) or one openraft snapshot build.
pub fn probe_main(args: &[String]) -> i32 {
    match args.get(1).map(String::as_str) {
        Some(super::restart::MODE) => return super::restart::probe_main(args),
        Some(super::openraft::MODE) => return super::openraft::probe_main(args),
        _ => {}
    }
    let parsed = (|| {
        let dir = args.get(1)?;
        let size = args.get(2)?.parse::<u64>().ok()?;
        let spill = match args.get(3)?.as_str() {
            "none" => None,
            n => Some(n.parse::<u64>().ok()?),
        };
        Some((Path::new(dir).to_path_buf(), size, spill))
    })();
    let Some((dir, size, spill)) = parsed else {
        eprintln!("usage: {PROBE_ARG} <dir> <size> <spill threshold|none>");
        return 2;
    };
    finish_probe("rss probe", measure(&dir, size, spill).map(|r| r.to_line()))
}

/// A probe child's end: its report line on stdout (exit code 0), or the error on stderr (1);
/// 2 when the line cannot be written. Every probe (this one, the restart and openraft rows')
/// ends here.
pub(crate) fn finish_probe(probe: &str, report: Result<String, BenchError>) -> i32 {
    match report {
        Ok(line) => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            // The parent reads this line; failing to write it fails the probe (println!
            // would panic instead).
            match writeln!(out, "{line}").and_then(|()| out.flush()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("{probe}: writing the report: {e}");
                    2
                }
            }
        }
        Err(e) => {
            eprintln!("{probe}: {e}");
            1
        }
    }
}

/// Runs `command` (program and leading arguments) with [`PROBE_ARG`] and `args` as a probe
/// child, and returns the first line of its stdout that `parse` accepts. `step` names the
/// start in an error; `probe` names the probe when it printed no report.
pub(crate) fn run_probe<T>(
    command: &[String],
    args: &[&std::ffi::OsStr],
    step: &'static str,
    probe: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, BenchError> {
    let (program, pre) = command
        .split_first()
        .ok_or_else(|| BenchError::Setup(format!("empty {probe} command")))?;
    let out = Command::new(program)
        .args(pre)
        .arg(PROBE_ARG)
        .args(args)
        .output()
        .map_err(|e| BenchError::io(Path::new(program), step, e))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(parse)
        .ok_or_else(|| {
            BenchError::Run(format!(
                "{probe} printed no report (status {}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        })
}

/// `(VmRSS, VmHWM)` of this process, in KiB.
pub(crate) fn status_kib() -> Result<(u64, u64), BenchError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| BenchError::io(Path::new("/proc/self/status"), "read", e))?;
    let get = |key: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    match (get("VmRSS:"), get("VmHWM:")) {
        (Some(rss), Some(hwm)) => Ok((rss, hwm)),
        _ => Err(BenchError::Setup(
            "no VmRSS/VmHWM in /proc/self/status".into(),
        )),
    }
}

/// Runs one generation of a `size`-byte generated state in this process and reports the peak.
pub fn measure(dir: &Path, size: u64, spill: Option<u64>) -> Result<RssReport, BenchError> {
    let work = WorkDir::new(dir, "rss")?;
    let mut rig = Rig::new(
        work.path(),
        Arc::new(GeneratedState { len: size }),
        1,
        spill,
    )?;
    // Warm up what a running node has anyway (threads started, rayon pool, allocator).
    rig.tx();
    rig.tx();
    // Start the peak afresh here ("5": reset VmHWM to VmRSS; Linux >= 4.0). Best effort: in
    // a fresh child the peak so far is the set-up's, which is below the baseline anyway.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (baseline_kib, _) = status_kib()?;

    let start = Instant::now();
    let guard = Duration::from_secs(1800);
    rig.snap.trigger_snapshot();
    rig.tx(); // the forced point
    let scheduled_at = Instant::now();
    rig.tx(); // commits it: the generation starts
    let mut serialise = None;
    let mut persist_from = None;
    let mut persist = None;
    let mut spilled = false;
    while persist.is_none() {
        if start.elapsed() > guard {
            rig.shutdown();
            return Err(BenchError::Run(format!(
                "a {} generation did not finish",
                bytes(size)
            )));
        }
        if serialise.is_none() {
            if let Some(p) = rig
                .snap
                .store()
                .list_pending()
                .ok()
                .filter(|p| !p.is_empty())
            {
                spilled |= !p.is_empty();
            }
            if rig.take_evidence() > 0 {
                serialise = Some(scheduled_at.elapsed());
                // Evidence, then a signature after it, then its commit: the gate opens.
                rig.tx();
                persist_from = Some(Instant::now());
                rig.tx();
            }
        }
        for event in rig.events.try_iter() {
            match event {
                SnapshotEvent::Committed(_) => {
                    persist = persist_from.map(|t| t.elapsed());
                }
                SnapshotEvent::Failed { error, .. } => {
                    rig.shutdown();
                    return Err(BenchError::Run(format!("generation failed: {error}")));
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (_, peak_kib) = status_kib()?;
    rig.shutdown();
    Ok(RssReport {
        size,
        baseline_kib,
        peak_kib,
        serialise: serialise.unwrap_or_default(),
        persist: persist.unwrap_or_default(),
        spilled,
    })
}

/// Runs the probe in a child: `command` plus `[PROBE_ARG, dir, size, spill]`.
pub fn measure_in_child(
    command: &[String],
    dir: &Path,
    size: u64,
    spill: Option<u64>,
) -> Result<RssReport, BenchError> {
    let (size, spill) = (
        size.to_string(),
        spill.map_or_else(|| "none".into(), |s| s.to_string()),
    );
    run_probe(
        command,
        &[dir.as_os_str(), size.as_ref(), spill.as_ref()],
        "start rss probe",
        "rss probe",
        RssReport::from_line,
    )
}

/// The table row: peak RSS above the starting point at `size` with the default spill
/// threshold, against the 64 MiB bound.
pub(crate) fn row(
    dir: &Path,
    size: u64,
    command: Option<&[String]>,
) -> Result<BenchRow, BenchError> {
    let spill = Some(snapseal_actors::DEFAULT_SPILL_THRESHOLD);
    let (report, how) = match command {
        Some(cmd) => (measure_in_child(cmd, dir, size, spill)?, "child process"),
        None => (
            measure(dir, size, spill)?,
            "in process, peak reset via clear_refs",
        ),
    };
    let above = report.above_mib();
    Ok(BenchRow {
        what: format!(
            "peak RSS above the node's state, snapshotting {}",
            bytes(size)
        ),
        ours: format!("{above:.1} MiB"),
        peer: "-".into(),
        figures: Some(Figures {
            ours: above,
            peer: None,
            unit: "MiB",
        }),
        ratio: None,
        // Measured once: no run-to-run noise to weigh a change against.
        samples: vec![above],
        target: Target::Absolute(64.0),
        verdict: if above <= 64.0 {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
        note: format!(
            "{how}; baseline {} MiB, peak {} MiB; spilled {}; serialise {:.2} s, persist {:.2} s",
            report.baseline_kib / 1024,
            report.peak_kib / 1024,
            report.spilled,
            report.serialise.as_secs_f64(),
            report.persist.as_secs_f64()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_its_line_and_junk_is_no_report() {
        let r = RssReport {
            size: 2 << 30,
            baseline_kib: 3000,
            peak_kib: 36_000,
            serialise: Duration::from_millis(2940),
            persist: Duration::from_nanos(638_440_123),
            spilled: true,
        };
        assert_eq!(RssReport::from_line(&r.to_line()), Some(r));
        assert!((r.above_mib() - 33_000.0 / 1024.0).abs() < 1e-9);
        for junk in [
            "",
            "snapseal-rss-probe size=1",
            "other size=1 baseline_kib=2",
        ] {
            assert_eq!(RssReport::from_line(junk), None, "{junk}");
        }
    }

    #[test]
    fn only_the_probe_argument_requests_the_probe_and_bad_arguments_are_refused() {
        assert!(probe_requested(&[PROBE_ARG.into(), "/tmp".into()]));
        assert!(!probe_requested(&["--quick".into()]));
        assert!(!probe_requested(&[]));
        assert_eq!(
            probe_main(&[PROBE_ARG.into(), "/tmp".into(), "nan".into()]),
            2
        );
    }
}
