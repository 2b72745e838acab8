//! What a restart's read of the newest snapshot adds to the resident set: a store holding one
//! committed snapshot is opened in a fresh child process, `latest()` verifies it, and its body
//! streams through `body_reader()` into a hasher (what a node's recovery does). The peak is
//! reset just before the store is opened, so "peak above" is `VmHWM` after the read minus
//! `VmRSS` before the open: the memory the read costs, not the file's size (the page cache is
//! not part of the resident set; a mapping's pages would be).
//!
//! The child is the same program as the peak-RSS row's ([`rss::PROBE_ARG`](super::rss::PROBE_ARG)
//! followed by [`MODE`]); without a probe command the row is measured in this process.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use snapseal_persist::fs::RealFs;
use snapseal_persist::internals::PersistRequest;
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::{Flags, SnapshotStore, StoreOptions};

use super::fixture::{key, Fixture, WorkDir, EVIDENCE};
use super::rss::{finish_probe, run_probe, status_kib, PROBE_ARG};
use super::table::{BenchRow, Figures, Target, Verdict};
use super::BenchError;
use crate::units::bytes;

/// The probe's mode argument (after [`PROBE_ARG`]): `[PROBE_ARG, MODE, <store dir>]`.
pub(crate) const MODE: &str = "restart";

/// The bound: the read streams in bounded memory, whatever the snapshot's size.
const BOUND_MIB: f64 = 16.0;

/// What one restart read measured.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Report {
    baseline_kib: u64,
    peak_kib: u64,
    latest: Duration,
    read: Duration,
    body_len: u64,
}

impl Report {
    fn to_line(self) -> String {
        format!(
            "snapseal-restart-probe baseline_kib={} peak_kib={} latest_ns={} read_ns={} body_len={}",
            self.baseline_kib,
            self.peak_kib,
            self.latest.as_nanos(),
            self.read.as_nanos(),
            self.body_len
        )
    }

    fn from_line(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("snapseal-restart-probe ")?;
        let num = |key: &str| -> Option<u64> {
            rest.split(' ')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
                .parse()
                .ok()
        };
        Some(Report {
            baseline_kib: num("baseline_kib")?,
            peak_kib: num("peak_kib")?,
            latest: Duration::from_nanos(num("latest_ns")?),
            read: Duration::from_nanos(num("read_ns")?),
            body_len: num("body_len")?,
        })
    }
}

fn open_store(dir: &Path) -> Result<SnapshotStore, BenchError> {
    let verifier = Arc::new(Ed25519Verifier::new(vec![key().verifying_key()]));
    SnapshotStore::open(Arc::new(RealFs::new()), dir, StoreOptions::new(verifier))
        .map_err(|e| BenchError::Setup(format!("open store {}: {e}", dir.display())))
}

/// Opens the store in `dir`, `latest()`, reads its body to the end; the peak above the start.
fn measure(dir: &Path) -> Result<Report, BenchError> {
    // Start the peak afresh here ("5": reset VmHWM to VmRSS; Linux >= 4.0). Best effort: in
    // a fresh child the peak so far is the start-up's, below the baseline anyway.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (baseline_kib, _) = status_kib()?;
    let t = Instant::now();
    let store = open_store(dir)?;
    let latest = store
        .latest()
        .map_err(|e| BenchError::Run(format!("latest(): {e}")))?
        .ok_or_else(|| BenchError::Run("latest() found no snapshot".into()))?;
    let latest_time = t.elapsed();
    let t = Instant::now();
    let mut reader = latest
        .body_reader()
        .map_err(|e| BenchError::Run(format!("body_reader(): {e}")))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut body_len = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| BenchError::Run(format!("reading the body: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        body_len += n as u64;
    }
    std::hint::black_box(hasher.finalize());
    let read = t.elapsed();
    let (_, peak_kib) = status_kib()?;
    Ok(Report {
        baseline_kib,
        peak_kib,
        latest: latest_time,
        read,
        body_len,
    })
}

/// The probe child's job for `[PROBE_ARG, MODE, <dir>]`: measure, print the report line.
/// Returns the exit code.
pub(crate) fn probe_main(args: &[String]) -> i32 {
    let Some(dir) = args.get(2) else {
        eprintln!("usage: {PROBE_ARG} {MODE} <store dir>");
        return 2;
    };
    finish_probe(
        "restart probe",
        measure(Path::new(dir)).map(Report::to_line),
    )
}

/// The row: a store holding one committed snapshot of `size` bytes, read back by a restart.
pub(crate) fn row(
    dir: &Path,
    size: u64,
    command: Option<&[String]>,
) -> Result<BenchRow, BenchError> {
    let work = WorkDir::new(dir, "restart")?;
    {
        let len = usize::try_from(size).map_err(|_| BenchError::Setup("size too large".into()))?;
        let fx = Fixture::new(len)?;
        let store = open_store(work.path())?;
        store
            .persist(&PersistRequest {
                idx: 1,
                evidence_idx: EVIDENCE,
                flags: Flags::NONE,
                raw_len: fx.body.len() as u64,
                body_digest: fx.digest,
                body: &fx.body,
                receipt: &fx.receipt_at(1)?,
            })
            .map_err(|e| BenchError::Run(format!("persist: {e}")))?;
    }
    let (report, how) = match command {
        Some(cmd) => (in_child(cmd, work.path())?, "child process"),
        None => (
            measure(work.path())?,
            "in process, peak reset via clear_refs",
        ),
    };
    if report.body_len != size {
        return Err(BenchError::Run(format!(
            "the restart read {} of a {size}-byte body",
            report.body_len
        )));
    }
    let above = report.peak_kib.saturating_sub(report.baseline_kib) as f64 / 1024.0;
    Ok(BenchRow {
        what: format!(
            "peak RSS of a restart: latest() and the body read of {}",
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
        target: Target::Absolute(BOUND_MIB),
        verdict: if above <= BOUND_MIB {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
        note: format!(
            "{how}; nothing mapped, the body streamed through body_reader(); latest() {:.2} s, body read {:.2} s",
            report.latest.as_secs_f64(),
            report.read.as_secs_f64()
        ),
    })
}

fn in_child(command: &[String], dir: &Path) -> Result<Report, BenchError> {
    run_probe(
        command,
        &[MODE.as_ref(), dir.as_os_str()],
        "start restart probe",
        "restart probe",
        Report::from_line,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_its_line_and_junk_is_no_report() {
        let r = Report {
            baseline_kib: 1000,
            peak_kib: 3400,
            latest: Duration::from_millis(250),
            read: Duration::from_millis(90),
            body_len: 256 << 20,
        };
        assert_eq!(Report::from_line(&r.to_line()), Some(r));
        assert_eq!(Report::from_line("snapseal-restart-probe peak_kib=1"), None);
        assert_eq!(Report::from_line("junk"), None);
    }

    #[test]
    fn the_restart_row_reads_the_committed_body_back_whole() {
        let tmp = tempfile::tempdir().unwrap();
        // The row refuses a read that did not return the whole body; the peak itself is
        // not asserted here (other tests share this process).
        let row = row(tmp.path(), 4 << 20, None).unwrap();
        assert!(
            row.what.contains("4.0 MiB") || row.what.contains("4 MiB"),
            "{}",
            row.what
        );
        assert!(row.figures.is_some_and(|f| f.ours >= 0.0));
    }
}
