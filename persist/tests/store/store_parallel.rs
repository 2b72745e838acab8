//! Persists of different snapshots overlap (no store-wide lock around write and fsync), and
//! two writes of the same name never do.
//!
//! The proof is a rendezvous, not a clock: every file `fsync` waits (up to a generous
//! deadlock guard) until another persist is inside an `fsync` too. With one persist at a time
//! the first `fsync` would wait alone until the guard gives up, and the test fails.

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::fixture::*;
use parking_lot::{Condvar, Mutex};
use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::internals::fs::{DirEntry, DirHandle, DirLock, FileBytes, WritableFile};
use snapseal_persist::{FileState, PersistError, SnapshotStore};

/// Only a deadlock guard: far longer than any fsync here takes.
const GUARD: Duration = Duration::from_secs(20);

#[derive(Debug)]
struct Rendezvous {
    state: Mutex<(usize, usize)>, // (inside fsync now, most seen inside at once)
    changed: Condvar,
    /// How long an fsync waits for company.
    patience: Duration,
}

impl Rendezvous {
    /// Enters, waits until another thread is inside too (or the guard passes), runs `f`.
    fn meet<R>(&self, f: impl FnOnce() -> R) -> R {
        {
            let mut s = self.state.lock();
            s.0 += 1;
            s.1 = s.1.max(s.0);
            self.changed.notify_all();
            let mut left = self.patience;
            while s.1 < 2 && !left.is_zero() {
                let t = std::time::Instant::now();
                self.changed.wait_for(&mut s, left);
                left = left.saturating_sub(t.elapsed());
            }
        }
        let r = f();
        self.state.lock().0 -= 1;
        r
    }

    fn most_at_once(&self) -> usize {
        self.state.lock().1
    }
}

#[derive(Debug)]
struct MeetingFs {
    inner: RealFs,
    meet: Arc<Rendezvous>,
}

impl FileSystem for MeetingFs {
    fn open_dir(&self, path: &Path, create: bool) -> std::io::Result<Arc<dyn DirHandle>> {
        Ok(Arc::new(MeetingDir {
            inner: self.inner.open_dir(path, create)?,
            meet: Arc::clone(&self.meet),
        }))
    }
}

#[derive(Debug)]
struct MeetingDir {
    inner: Arc<dyn DirHandle>,
    meet: Arc<Rendezvous>,
}

impl DirHandle for MeetingDir {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn create_new(&self, name: &str, mode: u32) -> std::io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(MeetingFile {
            inner: self.inner.create_new(name, mode)?,
            meet: Arc::clone(&self.meet),
        }))
    }
    fn rename_noreplace(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.inner.rename_noreplace(from, to)
    }
    fn hard_link(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.inner.hard_link(from, to)
    }
    fn unlink(&self, name: &str) -> std::io::Result<()> {
        self.inner.unlink(name)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.inner.sync()
    }
    fn list(&self) -> std::io::Result<Vec<DirEntry>> {
        self.inner.list()
    }
    fn open_read(&self, name: &str) -> std::io::Result<FileBytes> {
        self.inner.open_read(name)
    }
    fn lock_exclusive(&self, name: &str) -> std::io::Result<Box<dyn DirLock>> {
        self.inner.lock_exclusive(name)
    }
}

#[derive(Debug)]
struct MeetingFile {
    inner: Box<dyn WritableFile>,
    meet: Arc<Rendezvous>,
}

impl WritableFile for MeetingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<usize> {
        self.inner.write_at(buf, offset)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        let meet = Arc::clone(&self.meet);
        meet.meet(|| self.inner.sync())
    }
    fn close(self: Box<Self>) -> std::io::Result<()> {
        self.inner.close()
    }
}

fn meeting_store(dir: &Path, patience: Duration) -> (Arc<SnapshotStore>, Arc<Rendezvous>) {
    let meet = Arc::new(Rendezvous {
        state: Mutex::default(),
        changed: Condvar::new(),
        patience,
    });
    let fs = MeetingFs {
        inner: RealFs::new(),
        meet: Arc::clone(&meet),
    };
    let store = SnapshotStore::open(Arc::new(fs), dir, opts()).unwrap();
    (Arc::new(store), meet)
}

#[test]
fn persists_of_different_snapshots_are_inside_fsync_at_the_same_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, meet) = meeting_store(tmp.path(), GUARD);
    let snaps: Vec<Snap> = (1..=2).map(|i| Snap::new(i * 10, 100_000)).collect();
    thread::scope(|s| {
        for snap in &snaps {
            let store = Arc::clone(&store);
            s.spawn(move || store.persist(&snap.request()).unwrap());
        }
    });
    assert_eq!(
        meet.most_at_once(),
        2,
        "the two persists never overlapped in fsync: they are serialised"
    );
    for snap in &snaps {
        let bytes = std::fs::read(tmp.path().join(snap.file_name(FileState::Committed))).unwrap();
        assert_eq!(bytes, snap.file_bytes());
    }
}

#[test]
fn two_writes_of_the_same_name_never_overlap_and_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // Here company is not expected: a short wait keeps the test quick, and an overlap
    // would meet at once anyway.
    let (store, meet) = meeting_store(tmp.path(), Duration::from_millis(300));
    let a = Snap::from_body(10, 11, vec![1u8; 50_000]);
    let b = Snap::from_body(10, 11, vec![2u8; 50_000]);
    let results: Vec<Result<_, PersistError>> = thread::scope(|s| {
        let handles: Vec<_> = [&a, &b]
            .into_iter()
            .map(|snap| {
                let store = Arc::clone(&store);
                s.spawn(move || store.persist(&snap.request()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The fsync waited alone: the second write only began after the first had finished.
    assert_eq!(meet.most_at_once(), 1, "same-name writes overlapped");
    let ok: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(PersistError::AlreadyCommitted { .. }))));
    let on_disk = std::fs::read(tmp.path().join(a.file_name(FileState::Committed))).unwrap();
    assert!(on_disk == a.file_bytes() || on_disk == b.file_bytes());
    assert!(store.latest().unwrap().is_some());
}
