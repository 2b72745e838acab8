//! [`LogStore`]: openraft's `RaftLogStorage` over the [`super::Journal`], with the
//! log also held in memory for reads (it is bounded: openraft purges it after each snapshot).

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState as RaftLogState, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use parking_lot::Mutex;
use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::internals::fs::DirLock;

use super::{Journal, LogState, Record};
use crate::kv::{Cfg, NodeId};

/// The durable log of one node; clones share it (the clone is the log reader).
#[derive(Clone)]
pub(crate) struct LogStore {
    log: Arc<Mutex<LogState>>,
    journal: Arc<Mutex<Journal>>,
    /// Held while the node runs: one process per log directory.
    _lock: Arc<dyn DirLock>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

fn io_err(e: io::Error) -> AnyError {
    AnyError::new(&e)
}

impl LogStore {
    /// Opens (creating) the log directory `dir`, locks it and replays it. Blocking.
    pub(crate) fn open(dir: &Path) -> io::Result<LogStore> {
        let handle = RealFs.open_dir(dir, true)?;
        let lock = handle.lock_exclusive("lock").map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("raft log directory {} is in use (lock): {e}", dir.display()),
            )
        })?;
        let (journal, state) = Journal::open(handle)?;
        Ok(LogStore {
            log: Arc::new(Mutex::new(state)),
            journal: Arc::new(Mutex::new(journal)),
            _lock: Arc::from(lock),
        })
    }

    /// True when the log holds nothing: no vote, no entry, no purge point (a new node).
    pub(crate) fn is_empty(&self) -> bool {
        let log = self.log.lock();
        log.vote.is_none() && log.purged.is_none() && log.entries.is_empty()
    }

    /// The log's purge point: everything up to it is covered by a snapshot.
    pub(crate) fn purged(&self) -> Option<LogId<NodeId>> {
        self.log.lock().purged
    }

    /// Writes `record` durably (fsynced) on a blocking thread, then applies `after` to the
    /// journal (e.g. compaction).
    async fn write(
        &self,
        record: Record,
        after: Option<fn(&mut Journal, &LogState) -> io::Result<()>>,
    ) -> io::Result<()> {
        let journal = Arc::clone(&self.journal);
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || {
            let mut journal = journal.lock();
            journal.write(&record, true)?;
            if let Some(after) = after {
                let state = log.lock();
                after(&mut journal, &state)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| io::Error::other(format!("raft log writer task: {e}")))?
    }
}

impl RaftLogReader<Cfg> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<Cfg>>, StorageError<NodeId>> {
        let log = self.log.lock();
        Ok(log.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<Cfg> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<RaftLogState<Cfg>, StorageError<NodeId>> {
        let log = self.log.lock();
        Ok(RaftLogState {
            last_purged_log_id: log.purged,
            last_log_id: log.last(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        // Durable before it counts: only then is it in memory (and returned by read_vote).
        self.write(Record::Vote(*vote), None)
            .await
            .map_err(|e| StorageIOError::write_vote(io_err(e)))?;
        self.log.lock().apply(&Record::Vote(*vote));
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.log.lock().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<Cfg>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<Cfg>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let record = Record::Entries(entries.into_iter().collect());
        // Readable at once (openraft's replication may read them before they are flushed);
        // acknowledged only through the callback, after the fsync.
        self.log.lock().apply(&record);
        match self.write(record, None).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let text = e.to_string();
                callback.log_io_completed(Err(e));
                Err(StorageIOError::write_logs(AnyError::error(text)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let record = Record::Truncate(log_id.index);
        self.log.lock().apply(&record);
        self.write(record, None)
            .await
            .map_err(|e| StorageIOError::write_logs(io_err(e)).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let record = Record::Purge(log_id);
        self.log.lock().apply(&record);
        self.write(record, Some(Journal::compact))
            .await
            .map_err(|e| StorageIOError::write_logs(io_err(e)).into())
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::entry;
    use super::*;

    #[test]
    fn vote_entries_truncate_and_purge_survive_a_reopen_and_old_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(dir.path()).unwrap();
            assert!(store.is_empty());
            assert!(
                LogStore::open(dir.path()).is_err(),
                "one process per log directory"
            );
            let mut j = store.journal.lock();
            let mut log = store.log.lock();
            for r in [
                Record::Vote(Vote::new(3, 2)),
                Record::Entries((1..=10).map(|i| entry(1, i)).collect()),
                Record::Truncate(8),
                Record::Entries(vec![entry(3, 8)]),
            ] {
                j.write(&r, true).unwrap();
                log.apply(&r);
            }
            // A new segment; the first one goes once everything it ever held is purged,
            // including the truncated entries 9 and 10 (their numbers count).
            j.rotate(&log).unwrap();
            for r in [
                Record::Purge(entry(3, 8).log_id),
                Record::Entries(vec![entry(3, 9), entry(3, 10)]),
            ] {
                j.write(&r, true).unwrap();
                log.apply(&r);
                j.compact(&log).unwrap();
                assert_eq!(j.segments.len(), 2, "not yet: the first segment reached 10");
            }
            let p = Record::Purge(entry(3, 10).log_id);
            j.write(&p, true).unwrap();
            log.apply(&p);
            j.compact(&log).unwrap();
            assert_eq!(
                j.segments.len(),
                1,
                "the first segment held only purged entries"
            );
        }
        let store = LogStore::open(dir.path()).unwrap();
        let log = store.log.lock();
        assert_eq!(log.vote, Some(Vote::new(3, 2)));
        assert_eq!(log.purged, Some(entry(3, 10).log_id));
        assert_eq!(log.last(), Some(entry(3, 10).log_id));
        assert!(log.entries.is_empty());
    }

    #[test]
    fn a_torn_tail_in_the_last_segment_is_cut_at_recovery() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(dir.path()).unwrap();
            let mut j = store.journal.lock();
            j.write(&Record::Entries(vec![entry(1, 1), entry(1, 2)]), true)
                .unwrap();
        }
        // A crash in the middle of the next write: half a frame at the end.
        let seg = dir.path().join(super::super::segment_name(1));
        let mut bytes = std::fs::read(&seg).unwrap();
        let frame = super::super::record::encode(&Record::Entries(vec![entry(1, 3)])).unwrap();
        bytes.extend_from_slice(&frame[..frame.len() / 2]);
        std::fs::write(&seg, bytes).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.log.lock().last(), Some(entry(1, 2).log_id));
    }

    #[test]
    fn a_segment_cut_at_any_byte_recovers_exactly_the_records_written_whole_before_the_cut() {
        let records = vec![
            Record::Vote(Vote::new(1, 1)),
            Record::Entries((1..=3).map(|i| entry(1, i)).collect()),
            Record::Vote(Vote::new_committed(2, 2)),
            Record::Truncate(3),
            Record::Entries(vec![entry(2, 3), entry(2, 4)]),
            Record::Purge(entry(1, 2).log_id),
            Record::Entries(vec![entry(2, 5)]),
        ];
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(dir.path()).unwrap();
            let mut j = store.journal.lock();
            for r in &records {
                j.write(r, true).unwrap();
            }
        }
        let seg = super::super::segment_name(1);
        let whole = std::fs::read(dir.path().join(&seg)).unwrap();
        // Where each record's frame ends (the base record comes first).
        let base = super::super::record::encode(&Record::Base {
            vote: None,
            purged: None,
        })
        .unwrap();
        let mut ends = vec![];
        let mut at = super::super::record::MAGIC.len() + base.len();
        for r in &records {
            at += super::super::record::encode(r).unwrap().len();
            ends.push(at);
        }
        assert_eq!(at, whole.len());
        for cut in 0..=whole.len() {
            let copy = tempfile::tempdir().unwrap();
            std::fs::write(copy.path().join(&seg), &whole[..cut]).unwrap();
            let recovered = LogStore::open(copy.path()).unwrap();
            let got = recovered.log.lock();
            let mut want = LogState::default();
            for (r, end) in records.iter().zip(&ends) {
                if *end <= cut {
                    want.apply(r);
                }
            }
            assert_eq!(got.vote, want.vote, "cut at {cut}");
            assert_eq!(got.purged, want.purged, "cut at {cut}");
            assert_eq!(got.last(), want.last(), "cut at {cut}");
            let ids = |l: &LogState| l.entries.values().map(|e| e.log_id).collect::<Vec<_>>();
            assert_eq!(ids(&got), ids(&want), "cut at {cut}");
        }
    }
}
