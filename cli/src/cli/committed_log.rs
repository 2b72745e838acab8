//! `committed.log`: the demo's record of acknowledged commits.
//!
//! One line per `Committed` event, appended and fsynced before the demo goes on, so that after
//! a crash (or `kill -9`) at any moment every line in it names a snapshot that was durable when
//! the line was written:
//!
//! ```text
//! <idx> <evidence_idx> <file name> <body digest, 64 hex digits>
//! ```
//!
//! (Retention may have deleted older snapshots since; the line records the acknowledgement.)
//!
//! A resumed demo ([`CommittedLog::resume`]) reads the lines of earlier runs and appends after
//! them. A last line without its newline is a write that was cut short, so its fsync never
//! returned and nothing was acknowledged by it: resuming cuts it off.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use snapseal::persist::Hash;
use snapseal::persist::{FileState, SnapshotName};
use snapseal::CommittedSnapshot;

use crate::cli::output::{hex, Escaped};
use crate::cli::safe_open;

/// File name of the log, next to the snapshots.
pub(super) const COMMITTED_LOG: &str = "committed.log";

/// One line of the log: an acknowledged commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LogLine {
    /// The committed snapshot's name (as on disk).
    pub name: SnapshotName,
    /// Its body digest, as the node was told.
    pub digest: Hash,
}

impl LogLine {
    /// Parses one line (without its newline); the error says what is wrong with it.
    pub(super) fn parse(line: &str) -> anyhow::Result<LogLine> {
        let fields: Vec<&str> = line.split(' ').collect();
        let [idx, evidence_idx, file, digest] = fields.as_slice() else {
            bail!(
                "expected 4 fields `idx evidence_idx file digest`, found {}",
                fields.len()
            );
        };
        let name = SnapshotName::parse(file)
            .filter(|n| n.state == FileState::Committed)
            .with_context(|| {
                format!("`{}` is not a committed snapshot name", Escaped::str(file))
            })?;
        if idx.parse::<u64>().ok() != Some(name.idx)
            || evidence_idx.parse::<u64>().ok() != Some(name.evidence_idx)
        {
            bail!(
                "`{} {}` does not match the file name `{}`",
                Escaped::str(idx),
                Escaped::str(evidence_idx),
                Escaped::str(file)
            );
        }
        let digest = snapseal::persist::internals::hash_from_hex(digest)
            .with_context(|| format!("digest `{}`", Escaped::str(digest)))?;
        Ok(LogLine { name, digest })
    }
}

/// A log's contents: its complete lines, and the length they take up.
#[derive(Debug, Default)]
pub(super) struct LogContents {
    /// Every complete line, in order.
    pub lines: Vec<LogLine>,
    /// Bytes of the complete lines; anything after them is a cut-short last line.
    pub complete_len: u64,
    /// Bytes of a cut-short last line (0 when the log ends with a newline).
    pub partial_len: u64,
}

impl LogContents {
    /// Parses a log's bytes; `path` names it (and the line number) in errors.
    pub(super) fn parse(bytes: &[u8], path: &Path) -> anyhow::Result<LogContents> {
        let complete = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |last| last + 1);
        let (head, tail) = bytes.split_at(complete);
        let text = std::str::from_utf8(head)
            .with_context(|| format!("{} is not text", Escaped::path(path)))?;
        let lines = text
            .lines()
            .enumerate()
            .map(|(n, line)| {
                LogLine::parse(line).with_context(|| format!("{}:{}", Escaped::path(path), n + 1))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(LogContents {
            lines,
            complete_len: complete as u64,
            partial_len: tail.len() as u64,
        })
    }

    /// Reads `dir/committed.log` without changing it; empty contents when it does not exist.
    /// Opened as [`safe_open`] says (no link followed, regular file, at most 64 MiB).
    pub(super) fn read(dir: &Path) -> anyhow::Result<LogContents> {
        let path = dir.join(COMMITTED_LOG);
        match safe_open::read_in_dir(dir, COMMITTED_LOG, safe_open::COMMITTED_LOG)? {
            Some(bytes) => LogContents::parse(&bytes, &path),
            None => Ok(LogContents::default()),
        }
    }
}

/// The open log.
#[derive(Debug)]
pub(super) struct CommittedLog {
    path: PathBuf,
    file: File,
}

impl CommittedLog {
    /// Creates `dir/committed.log` (must not exist) and makes its entry durable.
    pub(super) fn create(dir: &Path) -> anyhow::Result<CommittedLog> {
        let path = dir.join(COMMITTED_LOG);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .with_context(|| format!("creating {}", Escaped::path(&path)))?;
        sync_dir(dir)?;
        Ok(CommittedLog { path, file })
    }

    /// Opens `dir/committed.log` to go on appending after an earlier run (creating it if that
    /// run stopped before it did), and returns what it holds. A cut-short last line is cut
    /// off (and the cut made durable) so the next line starts on a line of its own. The
    /// caller must hold the snapshot store's lock: the demo writing the log holds it. The
    /// log is opened as [`safe_open`] says: a link, FIFO or directory in its place, or a log
    /// over 64 MiB, is refused before anything is read or written.
    pub(super) fn resume(dir: &Path) -> anyhow::Result<(CommittedLog, LogContents)> {
        let path = dir.join(COMMITTED_LOG);
        let (file, bytes) = safe_open::open_append(dir, COMMITTED_LOG, safe_open::COMMITTED_LOG)?;
        let contents = LogContents::parse(&bytes, &path)?;
        if contents.partial_len > 0 {
            file.set_len(contents.complete_len)
                .and_then(|()| file.sync_all())
                .with_context(|| {
                    format!(
                        "cutting the unfinished last line off {}",
                        Escaped::path(&path)
                    )
                })?;
        }
        // The entry itself may be new (the earlier run stopped before creating it).
        sync_dir(dir)?;
        Ok((CommittedLog { path, file }, contents))
    }

    /// The log's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The line for `c`.
    pub(super) fn line(c: &CommittedSnapshot) -> String {
        let name = c.path.file_name().map_or_else(
            || c.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        format!("{} {} {} {}\n", c.idx, c.evidence_idx, name, hex(&c.digest))
    }

    /// Appends the line for `c` and fsyncs the file.
    pub(super) fn append(&mut self, c: &CommittedSnapshot) -> anyhow::Result<()> {
        self.file
            .write_all(Self::line(c).as_bytes())
            .and_then(|()| self.file.sync_all())
            .with_context(|| format!("appending to {}", Escaped::path(&self.path)))
    }
}

/// fsync of a directory, so a new entry in it survives a crash.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync of directory {}", Escaped::path(dir)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_idx_evidence_file_digest() {
        let c = CommittedSnapshot {
            generation: 0,
            idx: 500,
            evidence_idx: 502,
            sig_idx: 550,
            path: PathBuf::from("/d/snapshot_500_502.committed"),
            digest: [0xab; 32],
            claims_digest: [0; 32],
            file_len: 9,
            new_chunk_bytes: 0,
        };
        assert_eq!(
            CommittedLog::line(&c),
            format!("500 502 snapshot_500_502.committed {}\n", "ab".repeat(32))
        );
    }

    #[test]
    fn appends_are_durable_lines_and_create_refuses_an_existing_log() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = CommittedLog::create(tmp.path()).unwrap();
        let mut c = CommittedSnapshot {
            generation: 0,
            idx: 1,
            evidence_idx: 2,
            sig_idx: 3,
            path: tmp.path().join("snapshot_1_2.committed"),
            digest: [0; 32],
            claims_digest: [0; 32],
            file_len: 1,
            new_chunk_bytes: 0,
        };
        log.append(&c).unwrap();
        c.idx = 4;
        log.append(&c).unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with("1 2 snapshot_1_2.committed "));
        assert!(
            CommittedLog::create(tmp.path()).is_err(),
            "never truncates an existing log"
        );
    }

    #[test]
    fn a_line_parses_back_to_what_was_written() {
        let c = CommittedSnapshot {
            generation: 3,
            idx: 500,
            evidence_idx: 502,
            sig_idx: 550,
            path: PathBuf::from("/d/snapshot_500_502.committed"),
            digest: [0x5a; 32],
            claims_digest: [0; 32],
            file_len: 9,
            new_chunk_bytes: 0,
        };
        let line = CommittedLog::line(&c);
        let parsed = LogLine::parse(line.trim_end()).unwrap();
        assert_eq!(
            parsed.name,
            SnapshotName::parse("snapshot_500_502.committed").unwrap()
        );
        assert_eq!(parsed.digest, [0x5a; 32]);
    }

    #[test]
    fn malformed_lines_are_refused_with_the_reason() {
        let digest = "ab".repeat(32);
        for (line, why) in [
            ("1 2 snapshot_1_2.committed".to_string(), "4 fields"),
            (format!("1 2 snapshot_1_2 {digest}"), "not a committed"),
            (
                format!("1 3 snapshot_1_2.committed {digest}"),
                "does not match",
            ),
            (
                format!("1 2 snapshot_1_2.committed {}", "zz".repeat(32)),
                "hex",
            ),
        ] {
            let e = format!("{:#}", LogLine::parse(&line).unwrap_err());
            assert!(e.contains(why), "{line}: {e}");
        }
        let e = format!(
            "{:#}",
            LogContents::parse(b"garbage\n", Path::new("c.log")).unwrap_err()
        );
        assert!(e.contains("c.log:1"), "{e}");
    }

    #[test]
    fn resume_appends_after_the_earlier_lines_and_cuts_an_unfinished_one() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = CommittedSnapshot {
            generation: 0,
            idx: 1,
            evidence_idx: 2,
            sig_idx: 3,
            path: tmp.path().join("snapshot_1_2.committed"),
            digest: [7; 32],
            claims_digest: [0; 32],
            file_len: 1,
            new_chunk_bytes: 0,
        };
        let first = CommittedLog::line(&c);
        let log_path = tmp.path().join(COMMITTED_LOG);
        std::fs::write(&log_path, format!("{first}4 5 snapshot_4_5.comm")).unwrap();

        let read_only = LogContents::read(tmp.path()).unwrap();
        assert_eq!((read_only.lines.len(), read_only.partial_len), (1, 21));
        assert!(
            std::fs::read_to_string(&log_path)
                .unwrap()
                .ends_with(".comm"),
            "reading changes nothing"
        );

        let (mut log, contents) = CommittedLog::resume(tmp.path()).unwrap();
        assert_eq!(contents.lines.len(), 1);
        assert_eq!(contents.complete_len, first.len() as u64);
        c.idx = 6;
        c.evidence_idx = 8;
        c.path = tmp.path().join("snapshot_6_8.committed");
        log.append(&c).unwrap();
        let text = std::fs::read_to_string(&log_path).unwrap();
        assert_eq!(text, format!("{first}{}", CommittedLog::line(&c)));
        assert_eq!(LogContents::read(tmp.path()).unwrap().lines.len(), 2);
    }

    #[test]
    fn resume_creates_a_missing_log() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(LogContents::read(tmp.path()).unwrap().lines.is_empty());
        let (log, contents) = CommittedLog::resume(tmp.path()).unwrap();
        assert!(contents.lines.is_empty());
        assert!(log.path().exists());
    }
}
