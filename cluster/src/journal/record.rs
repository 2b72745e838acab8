//! One journal record on disk, and what replaying the records rebuilds.
//!
//! A segment file is [`MAGIC`] followed by frames. A frame is `u32 LE payload length`,
//! the first 8 bytes of the BLAKE3 of (length bytes ‖ payload), then the payload: a
//! [`Record`] as JSON. Reading stops at the first frame that is short, too long or whose
//! checksum does not match: that is the torn tail of a write a crash interrupted, and nothing
//! after it in that file was acknowledged (every acknowledgement is an fsync of the whole
//! file, which would have made the earlier bytes durable too).

use std::collections::BTreeMap;
use std::io;

use openraft::{Entry, LogId, Vote};
use serde::{Deserialize, Serialize};

use crate::kv::{Cfg, NodeId};

/// The first bytes of every segment file.
pub(crate) const MAGIC: &[u8; 8] = b"SSRLOG1\n";

/// Largest payload a frame may claim; a longer claim is a torn or damaged frame.
const MAX_PAYLOAD: u32 = 256 << 20;

/// Bytes before a frame's payload.
const FRAME_HEADER: usize = 12;

/// What one frame says.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Record {
    /// The first record of each segment: the vote and purge point when it was started, so
    /// that deleting older segments loses neither.
    Base {
        vote: Option<Vote<NodeId>>,
        purged: Option<LogId<NodeId>>,
    },
    /// A vote saved.
    Vote(Vote<NodeId>),
    /// Entries appended, in index order.
    Entries(Vec<Entry<Cfg>>),
    /// Entries from this index on removed (a conflicting suffix).
    Truncate(u64),
    /// Entries up to and including this log id removed (covered by a snapshot).
    Purge(LogId<NodeId>),
}

/// The frame of `record`.
pub(crate) fn encode(record: &Record) -> io::Result<Vec<u8>> {
    let payload = serde_json::to_vec(record)?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_PAYLOAD)
        .ok_or_else(|| io::Error::other(format!("a journal record of {} bytes", payload.len())))?;
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&checksum(&len.to_le_bytes(), &payload));
    frame.extend_from_slice(&payload);
    Ok(frame)
}

fn checksum(len: &[u8], payload: &[u8]) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(len);
    hasher.update(payload);
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    sum
}

/// The records of one segment's bytes (after the magic), up to the first damaged frame, and
/// whether one stopped the reading (a torn tail).
pub(crate) fn decode_all(mut bytes: &[u8]) -> (Vec<Record>, bool) {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let Some(record) = decode_one(bytes) else {
            return (records, true);
        };
        records.push(record.0);
        bytes = &bytes[record.1..];
    }
    (records, false)
}

/// One record and the bytes its frame took; `None` for a short or damaged frame.
fn decode_one(bytes: &[u8]) -> Option<(Record, usize)> {
    let header = bytes.get(..FRAME_HEADER)?;
    let len_bytes = &header[..4];
    let len = u32::from_le_bytes(len_bytes.try_into().ok()?);
    if len > MAX_PAYLOAD {
        return None;
    }
    let end = FRAME_HEADER + len as usize;
    let payload = bytes.get(FRAME_HEADER..end)?;
    if header[4..] != checksum(len_bytes, payload) {
        return None;
    }
    // A frame whose checksum matches but which does not parse was written by another
    // version: treated as damage too (stop), never guessed at.
    serde_json::from_slice(payload).ok().map(|r| (r, end))
}

/// The log as the records say it is.
#[derive(Debug, Default)]
pub(crate) struct LogState {
    /// The last vote saved.
    pub(crate) vote: Option<Vote<NodeId>>,
    /// Everything up to here is covered by a snapshot and gone from the log.
    pub(crate) purged: Option<LogId<NodeId>>,
    /// The entries after `purged`, by index, without a hole.
    pub(crate) entries: BTreeMap<u64, Entry<Cfg>>,
}

impl LogState {
    /// The effect of one record; the same function serves replay and the live log, so the
    /// two cannot disagree.
    pub(crate) fn apply(&mut self, record: &Record) {
        match record {
            Record::Base { vote, purged } => {
                if vote.is_some() {
                    self.vote = *vote;
                }
                if let Some(p) = purged {
                    self.purge(p);
                }
            }
            Record::Vote(v) => self.vote = Some(*v),
            Record::Entries(entries) => {
                for e in entries {
                    // An entry replaces whatever followed it: the log never keeps a stale
                    // suffix behind a newer entry.
                    drop(self.entries.split_off(&e.log_id.index));
                    self.entries.insert(e.log_id.index, e.clone());
                }
            }
            Record::Truncate(index) => drop(self.entries.split_off(index)),
            Record::Purge(p) => self.purge(p),
        }
    }

    fn purge(&mut self, p: &LogId<NodeId>) {
        if self.purged.is_some_and(|old| old.index >= p.index) {
            return;
        }
        self.purged = Some(*p);
        self.entries = self.entries.split_off(&(p.index + 1));
    }

    /// The last log id: of the last entry, or the purge point when there is none.
    pub(crate) fn last(&self) -> Option<LogId<NodeId>> {
        self.entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(self.purged)
    }

    /// Checks that the entries follow the purge point without a hole.
    pub(crate) fn check_contiguous(&self) -> Result<(), String> {
        let mut expect = self.purged.map_or(0, |p| p.index + 1);
        if self.purged.is_none() {
            // Without a purge the log starts wherever its first entry is (openraft's first
            // entry has index 0).
            if let Some(first) = self.entries.keys().next() {
                expect = *first;
            }
        }
        for index in self.entries.keys() {
            if *index != expect {
                return Err(format!(
                    "the log has a hole: entry {index} where {expect} was due"
                ));
            }
            expect += 1;
        }
        Ok(())
    }
}

/// A blank entry at `index` of `term`, for the journal's tests.
#[cfg(test)]
pub(crate) fn entry(term: u64, index: u64) -> Entry<Cfg> {
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(term, 1), index),
        payload: openraft::EntryPayload::Blank,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_or_damaged_frame_ends_the_replay_and_what_precedes_it_survives() {
        let mut bytes = encode(&Record::Entries(vec![entry(1, 1)])).unwrap();
        let second = encode(&Record::Vote(Vote::new(2, 1))).unwrap();
        bytes.extend_from_slice(&second[..second.len() - 1]);
        let (records, torn) = decode_all(&bytes);
        assert!(torn);
        assert_eq!(records.len(), 1);

        let mut flipped = encode(&Record::Truncate(3)).unwrap();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let (records, torn) = decode_all(&flipped);
        assert!(torn && records.is_empty());
    }

    #[test]
    fn replay_applies_truncate_purge_and_replacement_like_the_live_log() {
        let mut log = LogState::default();
        log.apply(&Record::Entries((1..=5).map(|i| entry(1, i)).collect()));
        log.apply(&Record::Truncate(4));
        log.apply(&Record::Entries(vec![entry(2, 4)]));
        assert_eq!(log.last(), Some(entry(2, 4).log_id));
        log.apply(&Record::Entries(vec![entry(3, 2)]));
        assert_eq!(log.entries.len(), 2, "a new entry 2 drops the stale suffix");
        log.apply(&Record::Purge(entry(3, 2).log_id));
        assert!(log.entries.is_empty());
        assert_eq!(log.last(), Some(entry(3, 2).log_id));
        log.check_contiguous().unwrap();
    }
}
