//! The durable Raft log: vote and entries in DIR/raft/, as append-only segment files.
//!
//! Every change is a [`Record`] appended to the active segment; a vote, an append, a
//! truncate and a purge return only after the segment's `fsync` (an append's callback is
//! called only then, so openraft acknowledges nothing that is not on disk). A new segment is
//! created exclusively, starts with a `Base` record carrying the vote and the purge point, and
//! the directory is fsynced before anything in it counts. At startup every segment is
//! replayed in order, each up to its first damaged frame (a torn tail), and writing goes on in
//! a new segment: an existing file is never written again. Segments that hold only purged
//! entries are deleted oldest first.
//!
//! After a failed write or fsync the journal refuses every further write (a failed fsync is
//! never retried: the kernel may have dropped the dirty pages), and the node stops.

mod record;
mod store;

use std::io;
use std::sync::Arc;

use snapseal_persist::internals::fs::{
    write_all, DirHandle, Expect, Untrusted, UntrustedError, WritableFile,
};
use snapseal_persist::internals::Escaped;
use snapseal_persist::ErrorChain;
use tracing::{info, warn};

pub(crate) use record::{LogState, Record};
pub(crate) use store::LogStore;

/// Start a new segment once the active one is this large.
const SEGMENT_BYTES: u64 = 1 << 20;

/// Largest segment file read back (a segment holds about `SEGMENT_BYTES` plus one batch).
const MAX_SEGMENT_FILE: u64 = 1 << 30;

/// A segment's file name.
fn segment_name(seq: u64) -> String {
    format!("seg-{seq:020}")
}

/// The sequence number of a segment's file name.
fn parse_segment(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// A closed or active segment, as far as deleting it goes.
#[derive(Debug)]
struct Segment {
    seq: u64,
    /// The highest entry index it holds (0 without entries).
    max_index: u64,
}

/// The write side: the directory, the active segment, the segments on disk.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: Arc<dyn DirHandle>,
    active: Option<Box<dyn WritableFile>>,
    active_bytes: u64,
    /// In order; the last one is the active one.
    segments: Vec<Segment>,
    /// Why writing stopped, once it has.
    failed: Option<String>,
}

fn step_error(step: &str, name: &str, e: &io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("raft log {step} of {}: {e}", Escaped::str(name)),
    )
}

impl Journal {
    /// Replays DIR/raft's segments and starts a new one. Blocking.
    pub(crate) fn open(dir: Arc<dyn DirHandle>) -> io::Result<(Journal, LogState)> {
        let mut seqs: Vec<u64> = dir
            .list()?
            .iter()
            .filter_map(|e| parse_segment(e.name.to_str()?))
            .collect();
        seqs.sort_unstable();
        let mut state = LogState::default();
        let mut segments = Vec::new();
        for (i, seq) in seqs.iter().enumerate() {
            let name = segment_name(*seq);
            let expect =
                Expect::new("raft log segment", MAX_SEGMENT_FILE).with_magic(record::MAGIC);
            let opened = Untrusted::open_in(&*dir, &name, expect).and_then(|f| match f {
                Some(file) => file.read_all().map(Some),
                None => Ok(None),
            });
            let bytes = match opened {
                Ok(Some(bytes)) => bytes,
                Ok(None) => continue,
                // The newest segment, created but without its magic yet (a crash right after
                // the create): it holds nothing.
                Err(UntrustedError::BadMagic { .. }) if i + 1 == seqs.len() => {
                    warn!(segment = %Escaped::str(&name), "raft log: empty newest segment skipped");
                    segments.push(Segment {
                        seq: *seq,
                        max_index: 0,
                    });
                    continue;
                }
                Err(e) => return Err(io::Error::other(ErrorChain(&e).to_string())),
            };
            let (records, torn) =
                record::decode_all(bytes.get(record::MAGIC.len()..).unwrap_or(&[]));
            if torn {
                warn!(segment = %Escaped::str(&name), records = records.len(), "raft log: torn tail cut (an unacknowledged write)");
            }
            let mut max_index = 0;
            for r in &records {
                if let Record::Entries(es) = r {
                    max_index = es.iter().map(|e| e.log_id.index).fold(max_index, u64::max);
                }
                state.apply(r);
            }
            segments.push(Segment {
                seq: *seq,
                max_index,
            });
        }
        state.check_contiguous().map_err(io::Error::other)?;
        info!(
            segments = segments.len(),
            vote = ?state.vote,
            purged = ?state.purged,
            last = ?state.last(),
            "raft log recovered"
        );
        let mut journal = Journal {
            dir,
            active: None,
            active_bytes: 0,
            segments,
            failed: None,
        };
        journal.rotate(&state)?;
        Ok((journal, state))
    }

    /// Starts a new segment carrying `state`'s vote and purge point, durable (file and
    /// directory fsynced) before it returns. The old active segment is closed.
    fn rotate(&mut self, state: &LogState) -> io::Result<()> {
        self.check()?;
        let seq = self.segments.last().map_or(1, |s| s.seq + 1);
        let name = segment_name(seq);
        let result = (|| {
            if let Some(old) = self.active.take() {
                old.close()
                    .map_err(|e| step_error("close", "the previous segment", &e))?;
            }
            let mut file = self
                .dir
                .create_new(&name, 0o600)
                .map_err(|e| step_error("create", &name, &e))?;
            let base = record::encode(&Record::Base {
                vote: state.vote,
                purged: state.purged,
            })?;
            let mut bytes = record::MAGIC.to_vec();
            bytes.extend_from_slice(&base);
            write_all(&mut *file, &bytes).map_err(|e| step_error("write", &name, &e))?;
            file.sync().map_err(|e| step_error("fsync", &name, &e))?;
            self.dir
                .sync()
                .map_err(|e| step_error("directory fsync", &name, &e))?;
            self.active_bytes = bytes.len() as u64;
            self.active = Some(file);
            Ok(())
        })();
        self.segments.push(Segment { seq, max_index: 0 });
        self.fail_on(result)
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some(why) => Err(io::Error::other(format!(
                "raft log refuses writes after an earlier failure: {why}"
            ))),
            None => Ok(()),
        }
    }

    fn fail_on<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    /// Appends `record` to the active segment; with `sync`, fsyncs it before returning.
    pub(crate) fn write(&mut self, record: &Record, sync: bool) -> io::Result<()> {
        self.check()?;
        let frame = record::encode(record)?;
        let seq = self.segments.last().map_or(0, |s| s.seq);
        let name = segment_name(seq);
        let result = match self.active.as_mut() {
            None => Err(io::Error::other("raft log: no active segment")),
            Some(file) => write_all(&mut **file, &frame)
                .map_err(|e| step_error("write", &name, &e))
                .and_then(|()| {
                    if sync {
                        file.sync().map_err(|e| step_error("fsync", &name, &e))
                    } else {
                        Ok(())
                    }
                }),
        };
        self.fail_on(result)?;
        self.active_bytes += frame.len() as u64;
        if let (Record::Entries(es), Some(seg)) = (record, self.segments.last_mut()) {
            seg.max_index = es
                .iter()
                .map(|e| e.log_id.index)
                .fold(seg.max_index, u64::max);
        }
        Ok(())
    }

    /// After a purge: a new segment if the active one is large, then the oldest segments
    /// that hold only purged entries deleted (a prefix, so a later truncate record never
    /// outlives the entries it removed).
    pub(crate) fn compact(&mut self, state: &LogState) -> io::Result<()> {
        if self.active_bytes >= SEGMENT_BYTES {
            self.rotate(state)?;
        }
        let purged = state.purged.map_or(0, |p| p.index);
        let closed = self.segments.len().saturating_sub(1);
        let deletable = self.segments[..closed]
            .iter()
            .take_while(|s| s.max_index <= purged)
            .count();
        if deletable == 0 {
            return Ok(());
        }
        for s in self.segments.drain(..deletable) {
            let name = segment_name(s.seq);
            match self.dir.unlink(&name) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Left for the next compaction; it only holds purged entries.
                Err(e) => warn!(segment = %name, error = %e, "raft log: old segment not deleted"),
            }
        }
        // Not needed for correctness (a resurrected segment holds only purged entries), only
        // so the space is reclaimed for sure.
        if let Err(e) = self.dir.sync() {
            warn!(error = %e, "raft log: directory fsync after deleting segments failed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_nothing_else_parses() {
        assert_eq!(parse_segment(&segment_name(42)), Some(42));
        assert_eq!(parse_segment("seg-42"), None);
        assert_eq!(parse_segment("seg-0000000000000000004x"), None);
        assert_eq!(parse_segment("lock"), None);
    }
}
