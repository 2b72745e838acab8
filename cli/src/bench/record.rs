//! [`Record`]: one bench run as a versioned JSON document, to keep (`snapseal bench --save`)
//! and to compare a later run with (`--compare`, [`compare()`](super::compare::compare)).
//!
//! A saved result is a file a user points at, so reading one is reading hostile input: it is
//! opened through persist's one hardened path ([`Untrusted::open_path`]: the last component is
//! never a link, regular files only, at most [`MAX_BYTES`]), its format name and version are
//! checked before anything else, the rest is parsed strictly (an unknown field is an error,
//! not ignored) and every number is checked before it is used. Saving is crash-safe and never
//! replaces a file: a pending file, fsync, close, rename without replacing, directory fsync.
//!
//! Version 1:
//!
//! ```json
//! { "format": "snapseal-bench", "version": 1,
//!   "machine": { "hostname": "...", "cpus": 2, "kernel": "Linux 6.1.0", "arch": "x86_64",
//!                "snapseal": "0.1.0", "debug_build": false, "commit": "<40 hex>",
//!                "commit_from": "build" | "source tree at run time", "dirty": false },
//!   "command": ["snapseal", "bench", "--save", "bench/host.json"],
//!   "unix_time": 1700000000, "quick": false,
//!   "context": ["snapseal bench: dir /tmp, ..."],
//!   "rows": [ { "what": "persist 4 KiB (body in memory) vs ...",
//!               "ours": "612.00 µs", "peer": "589.00 µs",
//!               "ours_value": 0.000612, "peer_value": 0.000589, "unit": "s",
//!               "ratio": 1.04, "goal": { "kind": "at_most", "bound": 1.25 },
//!               "verdict": "pass", "samples": [1.01, 1.04, 1.10], "note": "" } ],
//!   "all_passed": true }
//! ```
//!
//! `samples` are each repetition's value of the judged figure (the ratio; `ours_value` for a
//! row without a peer); `goal.kind` is `at_most`, `at_least`, `absolute` (a bound on
//! `ours_value`) or `none` (no `bound`). A document printed by `snapseal bench --json
//! --compare` also has a `comparison` member; it is accepted and ignored when read back.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::internals::fs::{
    publish, write_pending, DirHandle, DurableError, Expect, Untrusted, UntrustedError,
};
use snapseal_persist::internals::Escaped;

use super::machine::Machine;
use super::table::{BenchTable, Target, Verdict};

/// The `format` of every bench result.
pub const FORMAT: &str = "snapseal-bench";
/// The one format version this snapseal writes and reads.
pub const VERSION: u64 = 1;
/// The largest result file read: a full run is about 20 KiB.
pub const MAX_BYTES: u64 = 1 << 20;

/// One run: where and what it ran, and every row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u64,
    /// The machine and build.
    pub machine: Machine,
    /// The command line of the run.
    pub command: Vec<String>,
    /// When the run finished, in seconds since the Unix epoch.
    pub unix_time: u64,
    /// Quick mode (small sizes): its rows are other rows than a full run's.
    pub quick: bool,
    /// The table's context lines.
    pub context: Vec<String>,
    /// The rows, in the table's order.
    pub rows: Vec<RecordRow>,
    /// No row failed its goal.
    pub all_passed: bool,
    /// What `--json --compare` printed beside the run: never read back.
    #[serde(rename = "comparison", default, skip_serializing)]
    printed_comparison: Option<serde::de::IgnoredAny>,
}

/// One row of a [`Record`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRow {
    /// What is compared; unique in a record.
    pub what: String,
    /// Our figure as shown.
    pub ours: String,
    /// The floor's or peer's figure as shown (`-` when none).
    pub peer: String,
    /// Our figure in [`unit`](Self::unit).
    pub ours_value: Option<f64>,
    /// The floor's or peer's figure in [`unit`](Self::unit).
    pub peer_value: Option<f64>,
    /// The unit of the two values: `s`, `B/s`, `items/s`, `MiB`.
    pub unit: Option<String>,
    /// Ours over the floor or peer (medians); `None` when not measured or without a peer.
    pub ratio: Option<f64>,
    /// The goal.
    pub goal: Goal,
    /// The verdict against the goal.
    pub verdict: Verdict,
    /// Each repetition's value of the judged figure.
    pub samples: Vec<f64>,
    /// What to know when reading the row.
    pub note: String,
}

/// A row's goal: which figure must stay on which side of `bound`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goal {
    /// Which way.
    pub kind: GoalKind,
    /// The bound (`None` exactly when the kind is `none`).
    pub bound: Option<f64>,
}

/// Which way a goal goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalKind {
    /// The ratio at most the bound: lower is better.
    AtMost,
    /// The ratio at least the bound: higher is better.
    AtLeast,
    /// Our figure at most the bound: lower is better.
    Absolute,
    /// No goal: for information.
    None,
}

impl From<Target> for Goal {
    fn from(t: Target) -> Goal {
        let (kind, bound) = match t {
            Target::AtMost(b) => (GoalKind::AtMost, Some(b)),
            Target::AtLeast(b) => (GoalKind::AtLeast, Some(b)),
            Target::Absolute(b) => (GoalKind::Absolute, Some(b)),
            Target::None => (GoalKind::None, None),
        };
        Goal { kind, bound }
    }
}

impl RecordRow {
    /// The figure the goal judges (the ratio, or ours for an absolute goal) and its samples;
    /// `None` when the row has no such figure (not measured) or it is not above zero (no
    /// change of it can be told as a proportion).
    pub fn judged(&self) -> Option<(f64, &[f64])> {
        let figure = match self.goal.kind {
            GoalKind::Absolute => self.ours_value,
            _ => self.ratio,
        }
        .filter(|x| *x > 0.0)?;
        Some((figure, &self.samples))
    }
}

/// Why a saved result could not be read or a result not saved.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Refused or unreadable (the error names the file).
    #[error(transparent)]
    Open(#[from] UntrustedError),
    /// Read, but not a bench result this snapseal understands.
    #[error("bench result {}", Escaped::path(.path))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        why: Invalid,
    },
    /// The file to save to exists: a saved run is never replaced.
    #[error(
        "bench result {}: already exists; a saved run is never replaced (remove it, or save under another name)",
        Escaped::path(.path)
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The path to save to does not end in a file name.
    #[error("bench result {}: not a file name", Escaped::path(.path))]
    NotAFileName {
        /// The path.
        path: PathBuf,
    },
    /// The directory to save into could not be opened.
    #[error("opening directory {}", Escaped::path(.path))]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The record could not be encoded (nothing was written).
    #[error("encoding bench result {}", Escaped::path(.path))]
    Encode {
        /// The file it was for.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// A step of the crash-safe write failed; no file of that name is left by this save.
    #[error("saving bench result {}", Escaped::path(.path))]
    Save {
        /// The file.
        path: PathBuf,
        /// The step and its error.
        #[source]
        source: DurableError,
    },
}

/// What is wrong with a document that is not a bench result of [`VERSION`].
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    /// Not JSON at all.
    #[error("not a JSON document")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but not a bench result.
    #[error("not a snapseal bench result (no \"format\": \"{FORMAT}\")")]
    NotABenchResult,
    /// A bench result of a version this snapseal does not read.
    #[error("format version {0}, but this snapseal reads version {VERSION} only")]
    UnknownVersion(String),
    /// Version 1, but its fields are not version 1's.
    #[error("not a valid version {VERSION} bench result")]
    Shape(#[source] serde_json::Error),
    /// A value that cannot be what it claims (a non-positive ratio, a repeated row, ...).
    #[error("{0}")]
    Value(String),
}

impl Record {
    /// The record of `table`, run on `machine` by `command` at `unix_time`. Figures that are
    /// not finite numbers (a floor measured as zero time) are left out rather than written as
    /// values no reader accepts.
    pub fn of(
        table: &BenchTable,
        machine: Machine,
        command: Vec<String>,
        quick: bool,
        unix_time: u64,
    ) -> Record {
        let finite = |x: Option<f64>| x.filter(|v| v.is_finite());
        let rows = table
            .rows
            .iter()
            .map(|r| {
                let ratio = finite(r.ratio).filter(|v| *v > 0.0);
                RecordRow {
                    what: r.what.clone(),
                    ours: r.ours.clone(),
                    peer: r.peer.clone(),
                    ours_value: finite(r.figures.map(|f| f.ours)),
                    peer_value: finite(r.figures.and_then(|f| f.peer)),
                    unit: r.figures.map(|f| f.unit.to_owned()),
                    ratio,
                    goal: r.target.into(),
                    verdict: r.verdict,
                    samples: r
                        .samples
                        .iter()
                        .copied()
                        .filter(|v| v.is_finite() && *v > 0.0)
                        .collect(),
                    note: r.note.clone(),
                }
            })
            .collect();
        Record {
            format: FORMAT.to_owned(),
            version: VERSION,
            machine,
            command,
            unix_time,
            quick,
            context: table.context.clone(),
            rows,
            all_passed: table.all_passed(),
            printed_comparison: None,
        }
    }

    /// Parses a document: the format name and version first (so a newer file says so rather
    /// than failing on a field), then the whole of it strictly, then its values.
    pub fn parse(bytes: &[u8]) -> Result<Record, Invalid> {
        let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(Invalid::NotJson)?;
        if doc.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(Invalid::NotABenchResult);
        }
        match doc.get("version") {
            Some(v) if v.as_u64() == Some(VERSION) => {}
            Some(v) => {
                // JSON text (quotes and escapes kept), cut short: a name from a file.
                let mut shown = v.to_string();
                if shown.len() > 40 {
                    shown = format!("{}...", shown.chars().take(40).collect::<String>());
                }
                return Err(Invalid::UnknownVersion(shown));
            }
            None => return Err(Invalid::UnknownVersion("(none)".into())),
        }
        let mut record: Record = serde_json::from_value(doc).map_err(Invalid::Shape)?;
        record.printed_comparison = None;
        record.check().map_err(Invalid::Value)?;
        Ok(record)
    }

    /// The values a reader relies on: ratios and samples positive and finite, values finite,
    /// a bound exactly when there is a goal, row names unique.
    fn check(&self) -> Result<(), String> {
        let mut names = HashSet::new();
        for (i, row) in self.rows.iter().enumerate() {
            let at = || format!("row {} ({})", i + 1, Escaped::str(&row.what));
            let positive = |x: f64| x.is_finite() && x > 0.0;
            if !names.insert(row.what.as_str()) {
                return Err(format!("{}: a second row of that name", at()));
            }
            if let Some(r) = row.ratio.filter(|r| !positive(*r)) {
                return Err(format!("{}: ratio {r} is not a positive number", at()));
            }
            if let Some(s) = row.samples.iter().find(|s| !positive(**s)) {
                return Err(format!("{}: sample {s} is not a positive number", at()));
            }
            if [row.ours_value, row.peer_value]
                .into_iter()
                .flatten()
                .any(|v| !v.is_finite())
            {
                return Err(format!("{}: a value is not a finite number", at()));
            }
            match (row.goal.kind, row.goal.bound) {
                (GoalKind::None, None) => {}
                (GoalKind::None, Some(_)) => {
                    return Err(format!("{}: a bound without a goal", at()));
                }
                (_, Some(b)) if b.is_finite() => {}
                (_, _) => return Err(format!("{}: a goal without a finite bound", at())),
            }
        }
        Ok(())
    }

    /// Reads the saved result at `path` (a path a user typed: its last component may not be a
    /// link).
    pub fn load(path: &Path) -> Result<Record, RecordError> {
        let file = Untrusted::open_path(path, Expect::new("bench result", MAX_BYTES))?;
        let bytes = file.read_all()?;
        Record::parse(&bytes).map_err(|why| RecordError::Invalid {
            path: path.to_path_buf(),
            why,
        })
    }

    /// Writes the record to `path`, a new file (an existing one is never replaced), crash-safe:
    /// `<name>.pending` (a stale one removed) created exclusively, written, fsynced and closed,
    /// renamed without replacing to `<name>`, the directory fsynced. After a failure no
    /// `<name>` of this call is left: the pending file is removed, and so is the new name when
    /// the directory fsync after the rename failed (its entry might not survive a crash).
    pub fn save(&self, path: &Path) -> Result<(), RecordError> {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return Err(RecordError::NotAFileName {
                path: path.to_path_buf(),
            });
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = RealFs::new()
            .open_dir(parent, false)
            .map_err(|source| RecordError::Dir {
                path: parent.to_path_buf(),
                source,
            })?;
        let failed = |source: DurableError| RecordError::Save {
            path: path.to_path_buf(),
            source,
        };
        let mut text = serde_json::to_vec_pretty(self).map_err(|source| RecordError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
        text.push(b'\n');
        let pending = format!("{name}.pending");
        if let Err(e) = write_pending(
            &*dir,
            &pending,
            &mut &text[..],
            text.len() as u64,
            &mut |_| {},
        ) {
            remove(&*dir, &pending);
            return Err(failed(e));
        }
        if let Err(e) = publish(&*dir, &pending, name) {
            if e.step == "fsync of the directory" {
                remove(&*dir, name);
            } else {
                remove(&*dir, &pending);
            }
            if e.source.kind() == std::io::ErrorKind::AlreadyExists {
                return Err(RecordError::Exists {
                    path: path.to_path_buf(),
                });
            }
            return Err(failed(e));
        }
        Ok(())
    }
}

/// Best-effort removal after a failed save (the save's error is what is reported).
fn remove(dir: &dyn DirHandle, name: &str) {
    if let Err(e) = dir.unlink(name) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(file = %Escaped::str(name), error = %e, "could not remove after a failed save");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Runs;
    use super::super::table::{BenchRow, Rate};
    use super::*;

    fn table() -> BenchTable {
        let runs = Runs {
            ours: vec![0.002, 0.003, 0.002],
            floor: vec![0.001, 0.002, 0.002],
        };
        BenchTable {
            rows: vec![
                BenchRow::times("persist 4 KiB", &runs, 0.5).with_note("fsync bound"),
                BenchRow::throughputs("ship", 100.0, &runs, 0.9, Rate::Bytes),
                BenchRow::skipped("verify", Target::AtLeast(0.9), "b3sum not found"),
            ],
            context: vec!["dir /tmp".into()],
        }
    }

    fn record() -> Record {
        Record::of(
            &table(),
            Machine::default(),
            vec!["snapseal".into()],
            true,
            7,
        )
    }

    #[test]
    fn a_record_has_every_column_of_every_row_and_reads_back_as_itself() {
        let rec = record();
        let doc = serde_json::to_value(&rec).unwrap();
        assert_eq!(doc["format"], FORMAT);
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["context"][0], "dir /tmp");
        assert_eq!(doc["all_passed"], false);
        let row = &doc["rows"][0];
        assert_eq!(row["what"], "persist 4 KiB");
        assert_eq!(row["ours"], "2.00 ms");
        assert_eq!(row["ours_value"], 0.002);
        assert_eq!(row["unit"], "s");
        assert_eq!(row["ratio"], 1.0);
        assert_eq!(row["samples"], serde_json::json!([2.0, 1.5, 1.0]));
        assert_eq!(row["goal"]["kind"], "at_most");
        assert_eq!(row["goal"]["bound"], 0.5);
        assert_eq!(row["verdict"], "fail");
        assert_eq!(row["note"], "fsync bound");
        let skipped = &doc["rows"][2];
        assert!(skipped["ratio"].is_null());
        assert_eq!(skipped["goal"]["kind"], "at_least");
        assert_eq!(skipped["verdict"], "skipped");
        assert!(doc.get("comparison").is_none());
        let text = serde_json::to_vec(&rec).unwrap();
        assert_eq!(Record::parse(&text).unwrap(), rec);
    }

    /// `edit` applied to a good record's JSON, then parsed.
    fn parse_edited(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Record, Invalid> {
        let mut doc = serde_json::to_value(record()).unwrap();
        edit(&mut doc);
        Record::parse(&serde_json::to_vec(&doc).unwrap())
    }

    #[test]
    fn a_newer_version_is_refused_by_its_number_before_its_fields_are_looked_at() {
        let err = parse_edited(|d| {
            d["version"] = 2.into();
            d["something_new"] = true.into();
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "format version 2, but this snapseal reads version 1 only"
        );
    }

    #[test]
    fn unknown_fields_wrong_types_and_impossible_values_are_refused() {
        type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|d| d["rows"][0]["extra"] = 1.into()),
                "not a valid",
            ),
            (
                Box::new(|d| d["rows"][0]["ratio"] = "1.0".into()),
                "not a valid",
            ),
            (
                Box::new(|d| d["rows"][0]["ratio"] = (-1.0).into()),
                "ratio -1",
            ),
            (
                Box::new(|d| d["rows"][0]["samples"][1] = 0.into()),
                "sample 0",
            ),
            (
                Box::new(|d| d["rows"][1]["what"] = "persist 4 KiB".into()),
                "a second row",
            ),
            (
                Box::new(|d| d["rows"][0]["goal"]["bound"] = serde_json::Value::Null),
                "without a finite bound",
            ),
            (
                Box::new(|d| d["format"] = "other".into()),
                "not a snapseal bench",
            ),
            (
                Box::new(|d| d["version"] = "1".into()),
                "format version \"1\"",
            ),
        ];
        for (edit, want) in cases {
            let err = parse_edited(edit).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should say {want:?}");
        }
        assert!(matches!(
            Record::parse(b"{\"format\": "),
            Err(Invalid::NotJson(_))
        ));
    }

    #[test]
    fn a_printed_comparison_is_accepted_and_not_kept() {
        let rec = parse_edited(|d| d["comparison"] = serde_json::json!({"rows": []})).unwrap();
        assert_eq!(rec, record());
    }

    #[test]
    fn saving_never_replaces_a_file_and_leaves_no_pending_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("host.json");
        record().save(&path).unwrap();
        assert_eq!(Record::load(&path).unwrap(), record());
        let err = record().save(&path).unwrap_err();
        assert!(matches!(err, RecordError::Exists { .. }), "{err}");
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("host.json")]);
    }
}
