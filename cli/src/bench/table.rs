//! [`BenchTable`]: the side-by-side results, one row per comparison, printable as a table.

use std::fmt;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// One comparison: our figure, the floor or peer's, their ratio, the target and the verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRow {
    /// What is compared, e.g. `persist 256 MiB vs bare write+fsync+rename`.
    pub what: String,
    /// Our figure, rendered with its unit.
    pub ours: String,
    /// The floor's or peer's figure, rendered with its unit (`-` when there is none).
    pub peer: String,
    /// The ratio the target is about (`None` when there is no peer).
    pub ratio: Option<f64>,
    /// The target.
    pub target: Target,
    /// Pass, fail, skipped or info.
    pub verdict: Verdict,
    /// Why a row was skipped, or what to know when reading it.
    pub note: String,
}

impl BenchRow {
    /// A row comparing two times (seconds): ratio `ours / floor`, passing at or below `bound`.
    pub fn times(what: impl Into<String>, ours: f64, floor: f64, bound: f64) -> Self {
        let ratio = ours / floor;
        BenchRow {
            what: what.into(),
            ours: secs(ours),
            peer: secs(floor),
            ratio: Some(ratio),
            target: Target::AtMost(bound),
            verdict: verdict(ratio <= bound),
            note: String::new(),
        }
    }

    /// A row comparing two throughputs (per second, rendered by `unit`): ratio
    /// `ours / peer`, passing at or above `bound`.
    pub fn throughputs(
        what: impl Into<String>,
        ours: f64,
        peer: f64,
        bound: f64,
        unit: fn(f64) -> String,
    ) -> Self {
        let ratio = ours / peer;
        BenchRow {
            what: what.into(),
            ours: unit(ours),
            peer: unit(peer),
            ratio: Some(ratio),
            target: Target::AtLeast(bound),
            verdict: verdict(ratio >= bound),
            note: String::new(),
        }
    }

    /// A row that could not be measured.
    pub fn skipped(what: impl Into<String>, target: Target, note: impl Into<String>) -> Self {
        BenchRow {
            what: what.into(),
            ours: "-".into(),
            peer: "-".into(),
            ratio: None,
            target,
            verdict: Verdict::Skipped,
            note: note.into(),
        }
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
pub(super) fn mib_per_sec(bps: f64) -> String {
    format!("{:.0} MiB/s", bps / f64::from(1u32 << 20))
}

/// Items per second as millions per second.
pub(super) fn mitems_per_sec(ips: f64) -> String {
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

impl Target {
    /// `{"kind": "at_most" | "at_least" | "absolute" | "none", "bound": x}` (no bound for
    /// `none`).
    fn to_json(self) -> serde_json::Value {
        let (kind, bound) = match self {
            Target::AtMost(b) => ("at_most", Some(b)),
            Target::AtLeast(b) => ("at_least", Some(b)),
            Target::Absolute(b) => ("absolute", Some(b)),
            Target::None => ("none", None),
        };
        serde_json::json!({ "kind": kind, "bound": bound })
    }
}

impl BenchTable {
    /// The table as one JSON document: `context` lines and one object per row with `what`,
    /// `ours`, `peer` (floor or peer, rendered with units), `ratio` (null without a peer),
    /// `target`, `verdict` (`pass`, `fail`, `skipped`, `info`) and `note`; `all_passed` on top.
    pub fn to_json(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "what": r.what,
                    "ours": r.ours,
                    "peer": r.peer,
                    "ratio": r.ratio,
                    "target": r.target.to_json(),
                    "verdict": r.verdict.to_string().to_lowercase(),
                    "note": r.note,
                })
            })
            .collect();
        serde_json::json!({
            "context": self.context,
            "rows": rows,
            "all_passed": self.all_passed(),
        })
    }
}

impl fmt::Display for BenchTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.context {
            writeln!(f, "{line}")?;
        }
        let target = |t: &Target| match *t {
            Target::AtMost(b) => format!("<= {b:.2}x"),
            Target::AtLeast(b) => format!(">= {b:.2}x"),
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
                    target(&r.target),
                    r.verdict.to_string(),
                ]
            })
            .collect();
        let header = ["what", "ours", "floor/peer", "ratio", "target", "result"];
        let mut width = header.map(|h| h.chars().count());
        for row in &cells {
            for (w, c) in width.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, row: &[String; 6]| -> fmt::Result {
            for (i, (c, w)) in row.iter().zip(width).enumerate() {
                let pad = w - c.chars().count();
                // Text left, figures right.
                if i == 0 {
                    write!(f, "{c}{}", " ".repeat(pad))?;
                } else {
                    write!(f, "  {}{c}", " ".repeat(pad))?;
                }
            }
            writeln!(f)
        };
        line(f, &header.map(String::from))?;
        for (row, r) in cells.iter().zip(&self.rows) {
            line(f, row)?;
            if !r.note.is_empty() {
                writeln!(f, "    note: {}", r.note)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_targets_direction() {
        assert_eq!(BenchRow::times("t", 1.05, 1.0, 1.10).verdict, Verdict::Pass);
        assert_eq!(BenchRow::times("t", 1.2, 1.0, 1.10).verdict, Verdict::Fail);
        let mib = |x| mib_per_sec(x);
        assert_eq!(
            BenchRow::throughputs("h", 95.0, 100.0, 0.9, mib).verdict,
            Verdict::Pass
        );
        assert_eq!(
            BenchRow::throughputs("h", 80.0, 100.0, 0.9, mib).verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn a_table_with_a_failing_row_has_not_all_passed_but_skipped_rows_do_not_fail_it() {
        let mut table = BenchTable {
            rows: vec![BenchRow::skipped("s", Target::AtLeast(0.9), "no peer")],
            context: vec!["ctx".into()],
        };
        assert!(table.all_passed());
        table.rows.push(BenchRow::times("slow", 2.0, 1.0, 1.1));
        assert!(!table.all_passed());
    }

    #[test]
    fn the_display_has_one_aligned_line_per_row_and_the_notes() {
        let table = BenchTable {
            rows: vec![
                BenchRow::times("persist 4 KiB", 0.002, 0.001, 1.25).with_note("fsync bound"),
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

    #[test]
    fn the_json_document_has_every_column_of_every_row() {
        let table = BenchTable {
            rows: vec![
                BenchRow::times("persist 4 KiB", 0.002, 0.001, 1.25).with_note("fsync bound"),
                BenchRow::skipped("verify", Target::AtLeast(0.9), "b3sum not found"),
            ],
            context: vec!["dir /tmp".into()],
        };
        let doc = table.to_json();
        assert_eq!(doc["context"][0], "dir /tmp");
        assert_eq!(doc["all_passed"], false);
        let row = &doc["rows"][0];
        assert_eq!(row["what"], "persist 4 KiB");
        assert_eq!(row["ours"], "2.00 ms");
        assert_eq!(row["peer"], "1.00 ms");
        assert_eq!(row["ratio"], 2.0);
        assert_eq!(row["target"]["kind"], "at_most");
        assert_eq!(row["target"]["bound"], 1.25);
        assert_eq!(row["verdict"], "fail");
        assert_eq!(row["note"], "fsync bound");
        let skipped = &doc["rows"][1];
        assert!(skipped["ratio"].is_null());
        assert_eq!(skipped["target"]["kind"], "at_least");
        assert_eq!(skipped["verdict"], "skipped");
        assert_eq!(doc["rows"].as_array().map(Vec::len), Some(2));
    }
}
