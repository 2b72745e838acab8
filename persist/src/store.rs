//! [`SnapshotStore`]: owns one snapshot directory. Recovery at open, `latest()` with
//! quarantine, holds, retention, and the writer behind `persist`.
//!
//! The store holds an exclusive `flock` on the directory's `.lock` for its whole life, so no
//! other store (in this process or another) changes the directory under it. Within the
//! process, a `SnapshotStore` is `Send + Sync` and meant to be shared with `Arc`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::{debug, error, info, warn};

use crate::error::{PersistError, StoreError, StoreStep, VerifyError};
use crate::fs::{DirHandle, DirLock, FileSystem};
use crate::hold::{Hold, HoldTable};
use crate::names::{FileState, SnapshotName, LOCK_FILE};
use crate::options::StoreOptions;
use crate::quarantine::{self, Quarantined};
use crate::reader::{open_snapshot, SnapshotFile};
use crate::receipt::ReceiptError;
use crate::retention::{self, RetentionPlan, RetentionReport};
use crate::scan::{in_state, our_files, pending_files, PendingEntry, SnapshotEntry};
use crate::writer::{Committed, PersistRequest, SnapshotWriter, SpillCommit, SpillFile};

/// Counts of what the store did since it was opened (see [`SnapshotStore::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Stale uncommitted and pending (spilled body) files removed at open.
    pub stale_removed: u64,
    /// Snapshots committed by `persist`.
    pub persisted: u64,
    /// `persist` calls that failed.
    pub persist_failures: u64,
    /// Snapshots deleted by retention.
    pub retention_deleted: u64,
    /// Retention passes after a commit that failed (logged; the commit still succeeded).
    pub retention_failures: u64,
    /// Files moved to quarantine.
    pub quarantined: u64,
    /// Failing files that could not be quarantined (logged; never returned by `latest`).
    pub quarantine_failures: u64,
    /// Snapshots `latest` passed over because no trusted key signed them (left in place).
    pub untrusted_skipped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    stale_removed: AtomicU64,
    persisted: AtomicU64,
    persist_failures: AtomicU64,
    retention_deleted: AtomicU64,
    retention_failures: AtomicU64,
    quarantined: AtomicU64,
    quarantine_failures: AtomicU64,
    untrusted_skipped: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The owner of one snapshot directory.
#[derive(Debug)]
pub struct SnapshotStore {
    path: PathBuf,
    dir: Arc<dyn DirHandle>,
    writer: SnapshotWriter,
    opts: StoreOptions,
    holds: Arc<HoldTable>,
    /// One persist at a time: two writes of the same name at once would each take the other's
    /// half-written file for a stale one and remove it.
    persist_lock: Mutex<()>,
    /// One directory clean-up (retention, quarantine) at a time, so two of them never plan
    /// over the same listing.
    maintenance: Mutex<()>,
    counters: Counters,
    /// Declared last: released only after everything else is dropped.
    _lock: Box<dyn DirLock>,
}

impl SnapshotStore {
    /// Opens (creating if needed) the snapshot directory `dir`: validates `opts`, takes the
    /// directory lock, removes our stale uncommitted and pending files (and fsyncs the
    /// directory if it removed any). Names that are not ours, and anything but a regular file under our
    /// names, are left alone.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        opts: StoreOptions,
    ) -> Result<SnapshotStore, StoreError> {
        opts.validate()?;
        let handle = fs.open_dir(dir, true).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            step: StoreStep::OpenDir,
            source,
        })?;
        let lock = handle.lock_exclusive(LOCK_FILE).map_err(|source| {
            if source.kind() == io::ErrorKind::WouldBlock {
                StoreError::Locked {
                    dir: dir.to_path_buf(),
                }
            } else {
                StoreError::Io {
                    path: dir.join(LOCK_FILE),
                    step: StoreStep::Lock,
                    source,
                }
            }
        })?;
        let store = SnapshotStore {
            path: dir.to_path_buf(),
            writer: SnapshotWriter::new(Arc::clone(&handle)),
            dir: handle,
            opts,
            holds: Arc::default(),
            persist_lock: Mutex::new(()),
            maintenance: Mutex::new(()),
            counters: Counters::default(),
            _lock: lock,
        };
        store.remove_stale()?;
        info!(dir = %dir.display(), "snapshot store open");
        Ok(store)
    }

    /// The directory path the store was opened with.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// What the store did since it was opened.
    pub fn stats(&self) -> StoreStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreStats {
            stale_removed: get(&c.stale_removed),
            persisted: get(&c.persisted),
            persist_failures: get(&c.persist_failures),
            retention_deleted: get(&c.retention_deleted),
            retention_failures: get(&c.retention_failures),
            quarantined: get(&c.quarantined),
            quarantine_failures: get(&c.quarantine_failures),
            untrusted_skipped: get(&c.untrusted_skipped),
        }
    }

    /// Writes and commits one snapshot (see [`SnapshotWriter`]), then runs retention. A
    /// retention failure is logged and counted, not a persist failure; the snapshot just
    /// committed is spared by that pass even when it is older than the ones retention keeps.
    pub fn persist(&self, req: &PersistRequest<'_>) -> Result<Committed, PersistError> {
        let _one_at_a_time = self.persist_lock.lock();
        let result = self.writer.persist(req);
        self.after_commit(result)
    }

    /// Creates the pending file a generation streams a large body into (see [`SpillFile`]).
    /// No lock is needed: pending names are unique per (idx, generation), and an existing one
    /// is refused, never replaced.
    pub fn create_spill(&self, idx: u64, generation: u64) -> Result<SpillFile, PersistError> {
        self.writer.create_spill(idx, generation)
    }

    /// Completes a spilled body into a committed snapshot
    /// ([`SnapshotWriter::commit_spill`]), then runs retention, exactly as
    /// [`persist`](Self::persist) does for a body in memory (same lock, counters and retention
    /// rule).
    pub fn commit_spill(
        &self,
        spill: SpillFile,
        req: &SpillCommit<'_>,
    ) -> Result<Committed, PersistError> {
        let _one_at_a_time = self.persist_lock.lock();
        let result = self.writer.commit_spill(spill, req);
        self.after_commit(result)
    }

    /// Counts a commit's outcome and, after a success, runs retention sparing the new file.
    fn after_commit(
        &self,
        result: Result<Committed, PersistError>,
    ) -> Result<Committed, PersistError> {
        let committed = match result {
            Ok(c) => c,
            Err(e) => {
                bump(&self.counters.persist_failures, 1);
                return Err(e);
            }
        };
        bump(&self.counters.persisted, 1);
        let _pin = self.holds.acquire(committed.name);
        if let Err(e) = self.apply_retention() {
            bump(&self.counters.retention_failures, 1);
            error!(error = %e, "retention after commit failed");
        }
        Ok(committed)
    }

    /// Our pending (spilled body) files, sorted by (idx, generation): bodies of generations
    /// still waiting for their proof. They are not snapshots ([`list`](Self::list) leaves them
    /// out); after a crash they are stale and [`open`](Self::open) removes them.
    pub fn list_pending(&self) -> Result<Vec<PendingEntry>, StoreError> {
        let entries = self.dir.list().map_err(|source| StoreError::Io {
            path: self.path.clone(),
            step: StoreStep::List,
            source,
        })?;
        Ok(pending_files(&entries))
    }

    /// Every snapshot file of ours (uncommitted, committed, quarantined), sorted by idx, then
    /// evidence_idx, then state. Non-regular entries under our names are left out.
    pub fn list(&self) -> Result<Vec<SnapshotEntry>, StoreError> {
        let entries = self.dir.list().map_err(|source| StoreError::Io {
            path: self.path.clone(),
            step: StoreStep::List,
            source,
        })?;
        Ok(our_files(&entries))
    }

    /// The newest committed snapshot (by idx, then evidence_idx) that verifies, with a
    /// [`Hold`] on it; `None` when there is none.
    ///
    /// Candidates are tried newest first. One that fails verification is quarantined (and
    /// never returned); a quarantine failure is logged and counted and the search goes on.
    /// An I/O error while reading a candidate is returned as is: it says nothing about the
    /// file, so nothing is quarantined for it. Neither is a file whose only fault is a signer
    /// outside the trusted keys: it is skipped and counted (`untrusted_skipped`), so a wrong key
    /// configuration cannot destroy good snapshots.
    pub fn latest(&self) -> Result<Option<SnapshotFile>, StoreError> {
        let committed = in_state(&self.list()?, FileState::Committed);
        for entry in committed.iter().rev() {
            // Pin first: retention cannot delete it while we read.
            let hold = self.holds.acquire(entry.name);
            match open_snapshot(&*self.dir, &entry.name, &*self.opts.verifier) {
                Ok(file) => {
                    debug!(name = %entry.name, "latest snapshot verified");
                    return Ok(Some(file.with_hold(hold)));
                }
                Err(VerifyError::Read { file, source }) => {
                    if source.kind() == io::ErrorKind::NotFound {
                        // Deleted between listing and reading (retention, another caller).
                        debug!(name = %entry.name, "vanished before it could be read");
                        continue;
                    }
                    return Err(StoreError::Io {
                        path: file,
                        step: StoreStep::Read,
                        source,
                    });
                }
                Err(VerifyError::Receipt {
                    source: ReceiptError::UntrustedKey { .. },
                    ..
                }) => {
                    // An intact file signed by a key we were not told to trust is more likely a
                    // misconfigured key set than damage: quarantining (and later trimming)
                    // would destroy good snapshots, so pass it over and leave it in place.
                    bump(&self.counters.untrusted_skipped, 1);
                    warn!(name = %entry.name, "snapshot signed by an untrusted key; skipped, not quarantined (check the trusted keys)");
                }
                Err(reason) => {
                    drop(hold);
                    warn!(name = %entry.name, error = %reason, "snapshot failed verification; quarantining");
                    self.quarantine(entry.name);
                }
            }
        }
        Ok(None)
    }

    /// Moves a failing file to quarantine and trims the quarantine. Failures are logged and
    /// counted: a bad file must not block recovery from an older good one.
    fn quarantine(&self, name: SnapshotName) {
        let _maintenance = self.maintenance.lock();
        match quarantine::quarantine(&*self.dir, name) {
            Ok(Quarantined::Moved) => bump(&self.counters.quarantined, 1),
            Ok(Quarantined::Gone) => return,
            Ok(Quarantined::NameTaken) => {
                bump(&self.counters.quarantine_failures, 1);
                warn!(name = %name, "a quarantined file of that name exists; leaving the failing file in place");
                return;
            }
            Err(e) => {
                bump(&self.counters.quarantine_failures, 1);
                error!(name = %name, error = %e, "quarantine failed");
                return;
            }
        }
        if let Err(e) =
            quarantine::trim(&*self.dir, self.opts.max_quarantined, &*self.opts.verifier)
        {
            bump(&self.counters.quarantine_failures, 1);
            error!(error = %e, "trimming the quarantine failed");
        }
    }

    /// Pins committed snapshot `name` (any state given is taken as the committed one) against
    /// retention until the returned [`Hold`] is dropped. Fails with
    /// [`StoreError::NotFound`] when no such committed file exists.
    pub fn hold(&self, name: &SnapshotName) -> Result<Hold, StoreError> {
        let name = name.with_state(FileState::Committed);
        // Pin, then look: retention checks pins under the same lock it deletes under, so if
        // the file is there now, it stays.
        let hold = self.holds.acquire(name);
        if self.list()?.iter().any(|e| e.name == name) {
            Ok(hold)
        } else {
            Err(StoreError::NotFound {
                path: self.path.join(name.file_name()),
            })
        }
    }

    /// What [`apply_retention`](Self::apply_retention) would delete now (for `gc --dry-run`).
    pub fn retention_plan(&self) -> Result<RetentionPlan, StoreError> {
        let committed = in_state(&self.list()?, FileState::Committed);
        Ok(retention::plan(
            &committed,
            self.opts.keep_last,
            self.opts.max_bytes,
            |name| self.holds.is_held(name),
        ))
    }

    /// Deletes what retention drops (see the [`retention`](mod@crate::retention) rules), sparing
    /// held snapshots, then fsyncs the directory.
    pub fn apply_retention(&self) -> Result<RetentionReport, StoreError> {
        let _maintenance = self.maintenance.lock();
        let plan = self.retention_plan()?;
        let report = retention::apply(&*self.dir, &plan, &self.holds)?;
        bump(
            &self.counters.retention_deleted,
            report.deleted.len() as u64,
        );
        if !report.deleted.is_empty() || !report.spared.is_empty() {
            debug!(
                deleted = report.deleted.len(),
                spared = report.spared.len(),
                freed = report.freed_bytes,
                "retention"
            );
        }
        Ok(report)
    }

    /// Removes our stale uncommitted and pending files (leftovers of a crash mid-write, or of
    /// generations that were pending when the process stopped: their proof never came).
    fn remove_stale(&self) -> Result<(), StoreError> {
        let entries = self.dir.list().map_err(|source| StoreError::Io {
            path: self.path.clone(),
            step: StoreStep::List,
            source,
        })?;
        let uncommitted = in_state(&our_files(&entries), FileState::Uncommitted)
            .into_iter()
            .map(|e| (e.name.file_name(), e.len, "uncommitted"));
        let pending = pending_files(&entries)
            .into_iter()
            .map(|e| (e.name.file_name(), e.len, "pending"));
        let mut removed = 0;
        for (file_name, bytes, kind) in uncommitted.chain(pending) {
            match self.dir.unlink(&file_name) {
                Ok(()) => {
                    info!(name = %file_name, bytes, kind, "removed stale file");
                    removed += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        path: self.path.join(&file_name),
                        step: StoreStep::UnlinkStale,
                        source,
                    })
                }
            }
        }
        if removed > 0 {
            self.dir.sync().map_err(|source| StoreError::Io {
                path: self.path.clone(),
                step: StoreStep::DirSync,
                source,
            })?;
            bump(&self.counters.stale_removed, removed);
        }
        Ok(())
    }
}
