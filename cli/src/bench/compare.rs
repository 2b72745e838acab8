//! [`compare`]: a bench run against a saved one, row by row, each change weighed against the
//! run-to-run noise the two runs measured.
//!
//! Every row's figure is a ratio taken within one run (ours over a floor measured alternately
//! with it), so a machine that is slower today slows both sides and the ratio stays; that is
//! what makes two runs on a noisy machine comparable at all. What is left is noise in the
//! ratio itself, and each run measured it: one sample of the ratio per repetition.
//!
//! **The rule.** Let `spread` of a run be `ln(max/min)` of its samples of the row's figure
//! (the range of the ratio over its repetitions, on a log scale so 0.5× and 2× are as far
//! from 1×), after setting aside the lowest and the highest eighth of the samples (rounded
//! down: none of 7, one at each end of 8 to 15), so that one stray repetition among many does
//! not set the noise alone. The noise of a comparison is the larger of the two runs' spreads, and never less
//! than [`MIN_NOISE`]. The change is `ln(new/saved)` of the rows' figures. A change worse than
//! the noise in the direction of the row's goal (up for an "at most" goal, down for an "at
//! least" one) is a **regression**, better by more than the noise is **improved**, anything
//! else is **within noise**. If nothing changed, both medians fall inside both runs' ranges,
//! so a flag needs the new figure beyond where either run ever saw it. A row measured once in
//! either run has no spread and is not judged, nor is a row without a goal, a row not
//! measured in one of the runs, or a row whose goal changed from a ratio to an absolute bound.

use std::fmt;

use serde::Serialize;
use snapseal_persist::internals::Escaped;

use super::record::{GoalKind, Record, RecordRow};
use super::table::columns;
use crate::units::secs;

/// The smallest change ever flagged, relative (1 %): below what the timers and the page cache
/// resolve, whatever the samples say.
pub const MIN_NOISE: f64 = 0.01;

/// What one row's change amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Worse than the saved run by more than the noise.
    Regression,
    /// Better than the saved run by more than the noise.
    Improved,
    /// No further from the saved run than the noise.
    WithinNoise,
    /// No goal, so no direction to call worse.
    NoGoal,
    /// Measured once in one of the runs: no spread to weigh the change against.
    MeasuredOnce,
    /// Not measured (skipped) in one of the runs.
    NotMeasured,
    /// The goal judges another figure than in the saved run (a ratio, or an absolute value).
    GoalChanged,
    /// In the saved run only.
    OnlySaved,
    /// In this run only.
    OnlyNew,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Regression => "REGRESSION",
            Change::Improved => "improved",
            Change::WithinNoise => "within noise",
            Change::NoGoal => "no goal",
            Change::MeasuredOnce => "measured once",
            Change::NotMeasured => "not measured",
            Change::GoalChanged => "goal changed",
            Change::OnlySaved => "only in the saved run",
            Change::OnlyNew => "only in this run",
        })
    }
}

/// One row of a [`Comparison`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RowChange {
    /// The row's name, escaped (it may come from a file).
    pub what: String,
    /// The saved run's figure, shown with its unit (`-` when none).
    pub saved: String,
    /// This run's figure, shown with its unit (`-` when none).
    pub now: String,
    /// `now / saved - 1` (`0.1`: 10 % higher), when both have the figure.
    pub change: Option<f64>,
    /// The relative change the rule tolerates upwards (`exp(noise) - 1`), when both were
    /// measured more than once. The rule is symmetric in ratio, not in percent: downwards
    /// it tolerates `1 / (1 + noise) - 1` (a noise of 0.25 allows +25 % and −20 %).
    pub noise: Option<f64>,
    /// The verdict.
    pub verdict: Change,
}

/// A run against a saved one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// What differs between the runs besides the code (machine, mode, commit), escaped.
    pub notes: Vec<String>,
    /// This run's rows in order, then the saved run's rows this run does not have.
    pub rows: Vec<RowChange>,
    /// How many rows regressed.
    pub regressions: usize,
    /// How many rows improved.
    pub improvements: usize,
}

/// Compares `now` with `saved`; see the module docs for the rule.
pub fn compare(saved: &Record, now: &Record) -> Comparison {
    let mut rows: Vec<RowChange> = now
        .rows
        .iter()
        .map(|row| match saved.rows.iter().find(|s| s.what == row.what) {
            Some(old) => judge(old, row),
            None => alone(row, Change::OnlyNew),
        })
        .collect();
    rows.extend(
        saved
            .rows
            .iter()
            .filter(|s| !now.rows.iter().any(|r| r.what == s.what))
            .map(|s| alone(s, Change::OnlySaved)),
    );
    let count = |c: Change| rows.iter().filter(|r| r.verdict == c).count();
    Comparison {
        notes: notes(saved, now),
        regressions: count(Change::Regression),
        improvements: count(Change::Improved),
        rows,
    }
}

/// A row present in one run only.
fn alone(row: &RecordRow, verdict: Change) -> RowChange {
    let shown = figure(row);
    let (saved, now) = match verdict {
        Change::OnlySaved => (shown, "-".to_owned()),
        _ => ("-".to_owned(), shown),
    };
    RowChange {
        what: Escaped::str(&row.what).to_string(),
        saved,
        now,
        change: None,
        noise: None,
        verdict,
    }
}

/// The row's judged figure with its unit.
fn figure(row: &RecordRow) -> String {
    match row.judged() {
        None => "-".to_owned(),
        Some((x, _)) if row.goal.kind != GoalKind::Absolute => format!("{x:.2}x"),
        Some((x, _)) => match row.unit.as_deref() {
            Some("s") => secs(x),
            Some(unit) => format!("{x:.1} {}", Escaped::str(unit)),
            None => format!("{x:.1}"),
        },
    }
}

/// `ln(max/min)` of positive samples, the lowest and highest eighth (rounded down) set
/// aside; `None` for fewer than two.
fn spread(samples: &[f64]) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let trim = sorted.len() / 8;
    let kept = sorted.get(trim..sorted.len() - trim)?;
    Some((kept.last()? / kept.first()?).ln())
}

fn judge(saved: &RecordRow, now: &RecordRow) -> RowChange {
    let mut out = RowChange {
        what: Escaped::str(&now.what).to_string(),
        saved: figure(saved),
        now: figure(now),
        change: None,
        noise: None,
        verdict: Change::NotMeasured,
    };
    let absolute = |r: &RecordRow| r.goal.kind == GoalKind::Absolute;
    if absolute(saved) != absolute(now) {
        out.verdict = Change::GoalChanged;
        return out;
    }
    let (Some((old, old_samples)), Some((new, new_samples))) = (saved.judged(), now.judged())
    else {
        return out;
    };
    out.change = Some(new / old - 1.0);
    let lower_is_better = match now.goal.kind {
        GoalKind::AtMost | GoalKind::Absolute => true,
        GoalKind::AtLeast => false,
        GoalKind::None => {
            out.verdict = Change::NoGoal;
            return out;
        }
    };
    let (Some(a), Some(b)) = (spread(old_samples), spread(new_samples)) else {
        out.verdict = Change::MeasuredOnce;
        return out;
    };
    let noise = a.max(b).max(MIN_NOISE.ln_1p());
    out.noise = Some(noise.exp_m1());
    let worse = if lower_is_better {
        (new / old).ln()
    } else {
        (old / new).ln()
    };
    out.verdict = if worse > noise {
        Change::Regression
    } else if -worse > noise {
        Change::Improved
    } else {
        Change::WithinNoise
    };
    out
}

/// What a reader should know before trusting the changes: the runs differ in more than code.
fn notes(saved: &Record, now: &Record) -> Vec<String> {
    let (s, n) = (&saved.machine, &now.machine);
    let shown = |x: &Option<String>| {
        x.as_deref()
            .map_or_else(|| "unknown".to_owned(), |v| Escaped::str(v).to_string())
    };
    let mut out = Vec::new();
    if s.hostname != n.hostname || s.cpus != n.cpus || s.arch != n.arch {
        out.push(format!(
            "saved on {} ({} CPUs, {}), this run on {} ({} CPUs, {}): a baseline is for the machine it was measured on",
            shown(&s.hostname),
            s.cpus,
            Escaped::str(&s.arch),
            shown(&n.hostname),
            n.cpus,
            Escaped::str(&n.arch)
        ));
    }
    if s.kernel != n.kernel {
        out.push(format!(
            "kernel {} then, {} now",
            shown(&s.kernel),
            shown(&n.kernel)
        ));
    }
    if s.debug_build || n.debug_build {
        out.push("a debug build took part: its figures say little about a release build".into());
    }
    if saved.quick != now.quick {
        out.push("one run is quick, the other full: most rows are different rows".into());
    }
    if s.commit != n.commit || s.dirty == Some(true) || n.dirty == Some(true) {
        let commit = |c: &Option<String>, dirty: Option<bool>| {
            let short = c
                .as_deref()
                .map_or_else(|| "unknown".to_owned(), |c| Escaped::str(c).to_string());
            let short: String = short.chars().take(12).collect();
            if dirty == Some(true) {
                format!("{short} with uncommitted changes")
            } else {
                short
            }
        };
        out.push(format!(
            "commit {} then, {} now",
            commit(&s.commit, s.dirty),
            commit(&n.commit, n.dirty)
        ));
    }
    out
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        // The band of `change` the rule calls noise, both ends: it is symmetric in ratio, so
        // a "±" of the upper end would print a fall inside it that the rule flags.
        let band = |x: Option<f64>| {
            x.map_or_else(
                || "-".to_owned(),
                |up| format!("-{:.1}/+{:.1}%", up / (1.0 + up) * 100.0, up * 100.0),
            )
        };
        let cells: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.what.clone(),
                    r.saved.clone(),
                    r.now.clone(),
                    r.change
                        .map_or_else(|| "-".to_owned(), |c| format!("{:+.1}%", c * 100.0)),
                    band(r.noise),
                    r.verdict.to_string(),
                ]
            })
            .collect();
        columns(
            f,
            ["what", "saved", "now", "change", "noise", "verdict"],
            &cells,
            |_| None,
        )?;
        let judged = self
            .rows
            .iter()
            .filter(|r| r.verdict == Change::WithinNoise)
            .count();
        writeln!(
            f,
            "{} regressed, {} improved, {} within noise (noise: the larger of both runs' range of the row's ratio over its repetitions, the extreme eighths set aside, at least {:.0}%)",
            self.regressions,
            self.improvements,
            judged,
            MIN_NOISE * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::machine::Machine;
    use super::super::record::Goal;
    use super::super::table::Verdict;
    use super::*;

    fn row(what: &str, kind: GoalKind, ratio: f64, samples: &[f64]) -> RecordRow {
        RecordRow {
            what: what.into(),
            ours: String::new(),
            peer: String::new(),
            ours_value: Some(ratio),
            peer_value: None,
            unit: Some("MiB".into()),
            ratio: (kind != GoalKind::Absolute).then_some(ratio),
            goal: Goal {
                kind,
                bound: (kind != GoalKind::None).then_some(1.0),
            },
            verdict: Verdict::Pass,
            samples: samples.to_vec(),
            note: String::new(),
        }
    }

    fn record(rows: Vec<RecordRow>) -> Record {
        let mut r = Record::of(
            &Default::default(),
            Machine::default(),
            Vec::new(),
            false,
            0,
        );
        r.rows = rows;
        r
    }

    fn verdict(saved: RecordRow, now: RecordRow) -> Change {
        let c = compare(&record(vec![saved]), &record(vec![now]));
        c.rows[0].verdict
    }

    #[test]
    fn a_change_beyond_both_runs_ranges_is_flagged_in_the_goals_direction() {
        use GoalKind::*;
        let s = [0.95, 1.0, 1.05];
        // Times (at most): up is worse.
        assert_eq!(
            verdict(row("t", AtMost, 1.0, &s), row("t", AtMost, 1.2, &s)),
            Change::Regression
        );
        assert_eq!(
            verdict(row("t", AtMost, 1.2, &s), row("t", AtMost, 1.0, &s)),
            Change::Improved
        );
        // Throughputs (at least): down is worse.
        assert_eq!(
            verdict(row("t", AtLeast, 1.0, &s), row("t", AtLeast, 0.8, &s)),
            Change::Regression
        );
        // Absolute bounds judge ours: up is worse.
        assert_eq!(
            verdict(row("t", Absolute, 30.0, &s), row("t", Absolute, 40.0, &s)),
            Change::Regression
        );
    }

    #[test]
    fn a_change_inside_the_larger_range_is_within_noise() {
        use GoalKind::*;
        let narrow = [0.99, 1.0, 1.01];
        let wide = [0.8, 1.0, 1.25];
        // ln(1.2) < ln(1.25 / 0.8): the new run's range covers it.
        assert_eq!(
            verdict(row("t", AtMost, 1.0, &narrow), row("t", AtMost, 1.2, &wide)),
            Change::WithinNoise
        );
        // Identical samples: the 1 % floor still applies.
        assert_eq!(
            verdict(
                row("t", AtMost, 1.0, &[1.0, 1.0]),
                row("t", AtMost, 1.005, &[1.0, 1.0])
            ),
            Change::WithinNoise
        );
    }

    #[test]
    fn the_noise_band_printed_is_the_one_the_rule_applies_at_both_ends() {
        use GoalKind::*;
        // A spread of 1.25x (0.9 .. 1.125) in both runs: the rule tolerates ratios from 0.8x
        // to 1.25x of the saved one, a change of -20 % to +25 %.
        let wide = [0.9, 1.0, 1.125];
        for (now, expected) in [
            (0.79, Change::Regression),
            (0.81, Change::WithinNoise),
            (1.24, Change::WithinNoise),
            (1.26, Change::Improved),
        ] {
            let c = compare(
                &record(vec![row("t", AtLeast, 1.0, &wide)]),
                &record(vec![row("t", AtLeast, now, &wide)]),
            );
            assert_eq!(c.rows[0].verdict, expected, "now {now}");
            let shown = c.to_string();
            assert!(shown.contains("-20.0/+25.0%"), "{shown}");
        }
    }

    #[test]
    fn one_stray_repetition_among_eight_does_not_set_the_noise_alone() {
        // Eight: one set aside at each end.
        let eight = [1.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 1.0];
        assert_eq!(spread(&eight), Some(0.0));
        // Seven: nothing set aside.
        assert_eq!(spread(&eight[1..]), Some(3f64.ln()));
        assert_eq!(spread(&[2.0]), None);
    }

    #[test]
    fn rows_without_a_spread_a_goal_or_a_figure_are_not_judged() {
        use GoalKind::*;
        let s = [0.9, 1.0, 1.1];
        assert_eq!(
            verdict(row("t", AtMost, 1.0, &[1.0]), row("t", AtMost, 9.0, &s)),
            Change::MeasuredOnce
        );
        assert_eq!(
            verdict(row("t", None, 1.0, &s), row("t", None, 9.0, &s)),
            Change::NoGoal
        );
        let mut skipped = row("t", AtMost, 1.0, &[]);
        skipped.ratio = Option::None;
        assert_eq!(
            verdict(row("t", AtMost, 1.0, &s), skipped),
            Change::NotMeasured
        );
        assert_eq!(
            verdict(row("t", AtMost, 1.0, &s), row("t", Absolute, 1.0, &s)),
            Change::GoalChanged
        );
    }

    #[test]
    fn rows_of_one_run_only_are_listed_as_such_and_regressions_counted() {
        let s = [0.95, 1.0, 1.05];
        let saved = record(vec![
            row("kept", GoalKind::AtMost, 1.0, &s),
            row("gone", GoalKind::AtMost, 1.0, &s),
        ]);
        let now = record(vec![
            row("new", GoalKind::AtMost, 1.0, &s),
            row("kept", GoalKind::AtMost, 2.0, &s),
        ]);
        let c = compare(&saved, &now);
        let verdicts: Vec<_> = c
            .rows
            .iter()
            .map(|r| (r.what.as_str(), r.verdict))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("new", Change::OnlyNew),
                ("kept", Change::Regression),
                ("gone", Change::OnlySaved)
            ]
        );
        assert_eq!((c.regressions, c.improvements), (1, 0));
        let shown = c.to_string();
        assert!(shown.contains("1.00x") && shown.contains("2.00x") && shown.contains("+100.0%"));
        assert!(
            shown.contains("1 regressed, 0 improved, 0 within noise"),
            "{shown}"
        );
    }
}
