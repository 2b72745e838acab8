//! [`BenchTable`]: the side-by-side results, one row per comparison, printable as a table.

use std::fmt;

use super::fixture::Runs;
use crate::units::secs;

/// Which way a ratio must go to pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// `ratio <= bound` (times: ours over the floor).
    AtMost(f64),
    /// `ratio >= bound` (throughputs: ours over the peer's).
    AtLeast(f64),
    /// An absolute bound on `ours` (in the row's unit), no peer.
    Absolute(f64),
    /// Informational: no target.
    None,
}

/// The outcome of one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The target is met.
    Pass,
    /// The target is missed.
    Fail,
    /// Not measured (a peer is missing, or the row was left out); see the row's note.
    Skipped,
    /// No target: the figure is for information.
    Info,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Skipped => "skipped",
            Verdict::Info => "info",
        })
    }
}

/// Our figure and the floor's or peer's as numbers, in one unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Ours.
    pub ours: f64,
    /// The floor's or peer's (`None` when the row has none).
    pub peer: Option<f64>,
    /// Their unit: `s`, `B/s`, `items/s`, `MiB`, `B`.
    pub unit: &'static str,
}

/// What a throughput counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    /// Bytes per second, shown as MiB/s.
    Bytes,
    /// Items (actions, jobs) per second, shown as millions per second.
    Items,
}

impl Rate {
    fn unit(self) -> &'static str {
        match self {
            Rate::Bytes => "B/s",
            Rate::Items => "items/s",
        }
    }

    fn show(self, per_sec: f64) -> String {
        match self {
            Rate::Bytes => mib_per_sec(per_sec),
            Rate::Items => mitems_per_sec(per_sec),
        }
    }
}

/// One comparison: our figure, the floor or peer's, their ratio, the target and the verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRow {
    /// What is compared, e.g. `persist 256 MiB vs bare write+fsync+rename`.
    pub what: String,
    /// Our figure, rendered with its unit.
    pub ours: String,
    /// The floor's or peer's figure, rendered with its unit (`-` when there is none).
    pub peer: String,
    /// The same figures as numbers (`None` when not measured).
    pub figures: Option<Figures>,
    /// The ratio the target is about (`None` when there is no peer).
    pub ratio: Option<f64>,
    /// Each repetition's value of the judged figure (the ratio, or ours for a row without a
    /// peer), in the same sense: the run-to-run noise `snapseal bench --compare` weighs a
    /// change against. One value for a row measured once; empty when not measured.
    pub samples: Vec<f64>,
    /// The target.
    pub target: Target,
    /// Pass, fail, skipped or info.
    pub verdict: Verdict,
    /// Why a row was skipped, or what to know when reading it.
    pub note: String,
}

impl BenchRow {
    /// A row comparing two times (seconds, from the bench fixture's `alternate`):
    /// ratio `ours / floor` of the medians, passing at or below `bound`.
    pub fn times(what: impl Into<String>, runs: &Runs, bound: f64) -> Self {
        let (ours, floor) = runs.medians();
        let ratio = ours / floor;
        BenchRow {
            what: what.into(),
            ours: secs(ours),
            peer: secs(floor),
            figures: Some(Figures {
                ours,
                peer: Some(floor),
                unit: "s",
            }),
            ratio: Some(ratio),
            samples: runs.time_ratios(),
            target: Target::AtMost(bound),
            verdict: verdict(ratio <= bound),
            note: String::new(),
        }
    }

    /// A row comparing two throughputs of the same `work` (bytes or items, both sides, each
    /// repetition): ratio `ours / peer` of the medians, passing at or above `bound`.
    pub fn throughputs(
        what: impl Into<String>,
        work: f64,
        runs: &Runs,
        bound: f64,
        rate: Rate,
    ) -> Self {
        let (t_ours, t_peer) = runs.medians();
        let (ours, peer) = (work / t_ours, work / t_peer);
        let ratio = ours / peer;
        BenchRow {
            what: what.into(),
            ours: rate.show(ours),
            peer: rate.show(peer),
            figures: Some(Figures {
                ours,
                peer: Some(peer),
                unit: rate.unit(),
            }),
            ratio: Some(ratio),
            samples: runs.rate_ratios(),
            target: Target::AtLeast(bound),
            verdict: verdict(ratio >= bound),
            note: String::new(),
        }
    }

    /// A row comparing two amounts of bytes (written, shipped; both sides, each repetition,
    /// in `runs`' two columns): ratio `ours / peer` of the medians, passing at or below
    /// `bound`.
    pub fn byte_counts(what: impl Into<String>, runs: &Runs, bound: f64) -> Self {
        let (ours, peer) = runs.medians();
        let ratio = ours / peer;
        let show = |b: f64| crate::units::bytes(b as u64);
        BenchRow {
            what: what.into(),
            ours: show(ours),
            peer: show(peer),
            figures: Some(Figures {
                ours,
                peer: Some(peer),
                unit: "B",
            }),
            ratio: Some(ratio),
            samples: runs.time_ratios(),
            target: Target::AtMost(bound),
            verdict: verdict(ratio <= bound),
            note: String::new(),
        }
    }

    /// A row judging a time itself (seconds, one sample per repetition) against an absolute
    /// bound: the median, passing at or below `bound`; no peer, no ratio.
    pub fn absolute_time(what: impl Into<String>, samples: Vec<f64>, bound: f64) -> Self {
        let ours = super::fixture::median(&mut samples.clone());
        BenchRow {
            what: what.into(),
            ours: secs(ours),
            peer: "-".into(),
            figures: Some(Figures {
                ours,
                peer: None,
                unit: "s",
            }),
            ratio: None,
            samples,
            target: Target::Absolute(bound),
            verdict: verdict(ours <= bound),
            note: String::new(),
        }
    }

    /// A row that could not be measured.
    pub fn skipped(what: impl Into<String>, target: Target, note: impl Into<String>) -> Self {
        BenchRow {
            what: what.into(),
            ours: "-".into(),
            peer: "-".into(),
            figures: None,
            ratio: None,
            samples: Vec::new(),
            target,
            verdict: Verdict::Skipped,
            note: note.into(),
        }
    }

    /// The same figures with no goal: a row kept for information (its ratio is set by
    /// something other than snapseal, and another row holds the goal).
    pub fn for_information(mut self) -> Self {
        self.target = Target::None;
        if self.verdict != Verdict::Skipped {
            self.verdict = Verdict::Info;
        }
        self
    }

    /// Appends `more` to the note.
    pub fn with_note_suffix(mut self, more: &str) -> Self {
        self.note.push_str(more);
        self
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

fn verdict(pass: bool) -> Verdict {
    if pass {
        Verdict::Pass
    } else {
        Verdict::Fail
    }
}

/// Bytes per second as MiB/s.
fn mib_per_sec(bps: f64) -> String {
    format!("{:.0} MiB/s", bps / f64::from(1u32 << 20))
}

/// Items per second as millions per second.
fn mitems_per_sec(ips: f64) -> String {
    format!("{:.2} M/s", ips / 1e6)
}

/// Every comparison of one `run`, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BenchTable {
    /// The rows.
    pub rows: Vec<BenchRow>,
    /// Where and how it ran (directory, filesystem, threads), printed above the table.
    pub context: Vec<String>,
}

impl BenchTable {
    /// True when no row failed (skipped rows do not fail the table).
    pub fn all_passed(&self) -> bool {
        self.rows.iter().all(|r| r.verdict != Verdict::Fail)
    }
}

impl fmt::Display for BenchTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.context {
            writeln!(f, "{line}")?;
        }
        let target = |r: &BenchRow| match r.target {
            Target::AtMost(b) => format!("<= {b:.2}x"),
            Target::AtLeast(b) => format!(">= {b:.2}x"),
            // A bound in seconds reads as the figures beside it do.
            Target::Absolute(b) if r.figures.is_some_and(|f| f.unit == "s") => {
                format!("<= {}", secs(b))
            }
            Target::Absolute(b) => format!("<= {b}"),
            Target::None => "-".into(),
        };
        let cells: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.what.clone(),
                    r.ours.clone(),
                    r.peer.clone(),
                    r.ratio.map_or_else(|| "-".into(), |x| format!("{x:.2}x")),
                    target(r),
                    r.verdict.to_string(),
                ]
            })
            .collect();
        let header = ["what", "ours", "floor/peer", "ratio", "target", "result"];
        columns(f, header, &cells, |i| {
            self.rows
                .get(i)
                .map(|r| r.note.as_str())
                .filter(|n| !n.is_empty())
        })
    }
}

/// Writes `cells` under `header` in aligned columns (text left, figures right), each row
/// followed by its note line (`under(i)`) when it has one.
pub(super) fn columns<'a, const N: usize>(
    f: &mut fmt::Formatter<'_>,
    header: [&str; N],
    cells: &[[String; N]],
    under: impl Fn(usize) -> Option<&'a str>,
) -> fmt::Result {
    let mut width = header.map(|h| h.chars().count());
    for row in cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |f: &mut fmt::Formatter<'_>, row: &[String; N]| -> fmt::Result {
        for (i, (c, w)) in row.iter().zip(width).enumerate() {
            let pad = w - c.chars().count();
            if i == 0 {
                write!(f, "{c}{}", " ".repeat(pad))?;
            } else {
                write!(f, "  {}{c}", " ".repeat(pad))?;
            }
        }
        writeln!(f)
    };
    line(f, &header.map(String::from))?;
    for (i, row) in cells.iter().enumerate() {
        line(f, row)?;
        if let Some(note) = under(i) {
            writeln!(f, "    note: {note}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs where every repetition took the same times.
    fn steady(ours: f64, floor: f64) -> Runs {
        Runs {
            ours: vec![ours; 3],
            floor: vec![floor; 3],
        }
    }

    #[test]
    fn verdicts_follow_the_targets_direction() {
        let times = |o, f| BenchRow::times("t", &steady(o, f), 1.10).verdict;
        assert_eq!(times(1.05, 1.0), Verdict::Pass);
        assert_eq!(times(1.2, 1.0), Verdict::Fail);
        // Throughputs of the same work: taking longer is the lower rate.
        let rates = |o, f| BenchRow::throughputs("h", 100.0, &steady(o, f), 0.9, Rate::Bytes);
        assert_eq!(rates(1.0 / 0.95, 1.0).verdict, Verdict::Pass);
        assert_eq!(rates(1.0 / 0.8, 1.0).verdict, Verdict::Fail);
    }

    #[test]
    fn each_repetition_is_one_sample_of_the_ratio_in_the_rows_sense() {
        let runs = Runs {
            ours: vec![2.0, 3.0, 4.0],
            floor: vec![1.0, 2.0, 2.0],
        };
        let row = BenchRow::times("t", &runs, 1.0);
        assert_eq!(row.samples, vec![2.0, 1.5, 2.0]);
        assert_eq!(row.ratio, Some(1.5), "medians 3 / 2");
        let row = BenchRow::throughputs("h", 8.0, &runs, 1.0, Rate::Items);
        assert_eq!(row.samples, vec![0.5, 2.0 / 3.0, 0.5]);
        assert_eq!(row.ratio, Some(2.0 / 3.0));
        assert_eq!(
            row.figures,
            Some(Figures {
                ours: 8.0 / 3.0,
                peer: Some(4.0),
                unit: "items/s"
            })
        );
    }

    #[test]
    fn an_absolute_time_row_judges_the_median_sample_against_the_bound_in_seconds() {
        let row = BenchRow::absolute_time("p99", vec![6e-6, 3e-6, 4e-6], 5e-6);
        assert_eq!(
            row.figures.map(|f| f.ours),
            Some(4e-6),
            "median of the samples"
        );
        assert_eq!(row.verdict, Verdict::Pass);
        assert_eq!(row.ratio, None);
        assert_eq!(row.samples, vec![6e-6, 3e-6, 4e-6], "in repetition order");
        let slow = BenchRow::absolute_time("p99", vec![6e-6, 7e-6, 4e-6], 5e-6);
        assert_eq!(slow.verdict, Verdict::Fail);
        let table = BenchTable {
            rows: vec![row],
            context: Vec::new(),
        };
        assert!(
            table.to_string().contains(&format!("<= {}", secs(5e-6))),
            "the bound shown in the figures' unit: {table}"
        );
    }

    #[test]
    fn a_row_kept_for_information_has_no_goal_and_cannot_fail() {
        let row = BenchRow::times("old", &steady(3.0, 1.0), 0.5).for_information();
        assert_eq!((row.target, row.verdict), (Target::None, Verdict::Info));
        assert_eq!(row.ratio, Some(3.0), "the figures stay");
        let skipped = BenchRow::skipped("s", Target::AtMost(1.0), "no peer").for_information();
        assert_eq!(skipped.verdict, Verdict::Skipped);
    }

    #[test]
    fn a_table_with_a_failing_row_has_not_all_passed_but_skipped_rows_do_not_fail_it() {
        let mut table = BenchTable {
            rows: vec![BenchRow::skipped("s", Target::AtLeast(0.9), "no peer")],
            context: vec!["ctx".into()],
        };
        assert!(table.all_passed());
        table
            .rows
            .push(BenchRow::times("slow", &steady(2.0, 1.0), 1.1));
        assert!(!table.all_passed());
    }

    #[test]
    fn the_display_has_one_aligned_line_per_row_and_the_notes() {
        let table = BenchTable {
            rows: vec![
                BenchRow::times("persist 4 KiB", &steady(0.002, 0.001), 1.25)
                    .with_note("fsync bound"),
                BenchRow::skipped("verify", Target::AtLeast(0.9), "b3sum not found"),
            ],
            context: vec!["dir /tmp".into()],
        };
        let shown = table.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[0], "dir /tmp");
        assert!(lines[1].starts_with("what"), "{shown}");
        assert!(lines[2].contains("2.00x") && lines[2].contains("<= 1.25x"));
        assert!(lines[2].ends_with("FAIL"), "{shown}");
        assert_eq!(lines[3], "    note: fsync bound");
        assert!(lines[4].ends_with("skipped"), "{shown}");
        // Columns line up: every row is as wide as the header.
        let width = lines[1].chars().count();
        assert_eq!(lines[2].chars().count(), width);
        assert_eq!(lines[4].chars().count(), width);
    }
}
