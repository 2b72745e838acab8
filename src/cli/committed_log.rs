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

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use snapseal::CommittedSnapshot;

use crate::cli::keys::sync_dir;
use crate::cli::output::hex;

/// File name of the log, next to the snapshots.
pub const COMMITTED_LOG: &str = "committed.log";

/// The open log.
#[derive(Debug)]
pub struct CommittedLog {
    path: PathBuf,
    file: File,
}

impl CommittedLog {
    /// Creates `dir/committed.log` (must not exist) and makes its entry durable.
    pub fn create(dir: &Path) -> anyhow::Result<CommittedLog> {
        let path = dir.join(COMMITTED_LOG);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        sync_dir(dir)?;
        Ok(CommittedLog { path, file })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The line for `c`.
    pub fn line(c: &CommittedSnapshot) -> String {
        let name = c.path.file_name().map_or_else(
            || c.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        format!("{} {} {} {}\n", c.idx, c.evidence_idx, name, hex(&c.digest))
    }

    /// Appends the line for `c` and fsyncs the file.
    pub fn append(&mut self, c: &CommittedSnapshot) -> anyhow::Result<()> {
        self.file
            .write_all(Self::line(c).as_bytes())
            .and_then(|()| self.file.sync_all())
            .with_context(|| format!("appending to {}", self.path.display()))
    }
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
            file_len: 9,
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
            file_len: 1,
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
}
