//! The directories export and import work in, opened once by path.

use std::io;
use std::path::Path;
use std::sync::Arc;

use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::internals::fs::DirHandle;
use snapseal_persist::SnapshotStore;

/// An open directory that export reads from, or import and [`PendingFile`](crate::PendingFile)
/// write to.
///
/// It is opened once, when made: every file the archive code then opens, lists, creates,
/// renames or removes in it goes through that open directory's fd with a single file name
/// (`openat` with `O_NOFOLLOW`, never a path), so swapping the directory's path or planting a
/// symbolic link afterwards cannot redirect anything, and a file named by the archive or the
/// ledger never leaves it. Files are read with `pread`, never mapped: one another process
/// truncates is an error naming it, not a `SIGBUS`. The path itself may go through
/// symbolic links (it is the operator's configuration); subdirectories are opened with
/// [`open_subdir`](Dir::open_subdir), relative to this one and refusing a link.
///
/// A chunked snapshot's chunks are read from the directory's sealed packs: through the store
/// open on it when there is one ([`with_store`](Dir::with_store)), else scanned without a
/// store (no lock: a node may be running there).
#[derive(Clone, Debug)]
pub struct Dir {
    fd: Arc<dyn DirHandle>,
    store: Option<Arc<SnapshotStore>>,
}

impl Dir {
    /// Opens the existing directory `path` on the real filesystem.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let tmp = tempfile::tempdir()?;
    /// let dir = snapseal_archive::Dir::open(tmp.path())?;
    /// assert_eq!(dir.path(), tmp.path());
    /// # Ok(()) }
    /// ```
    pub fn open(path: &Path) -> io::Result<Dir> {
        Ok(Dir::from_fd(RealFs.open_dir(path, false)?))
    }

    /// Opens `path` on `fs` (the filesystem a [`SnapshotStore`](snapseal_persist::SnapshotStore)
    /// runs on; e.g. a simulated one in tests), creating it and its missing parents (durably)
    /// with `create`.
    pub fn open_on(fs: &dyn FileSystem, path: &Path, create: bool) -> io::Result<Dir> {
        Ok(Dir::from_fd(fs.open_dir(path, create)?))
    }

    /// Opens the subdirectory `name` (a single file name) relative to this directory, creating
    /// it with `create`: a symbolic link there is refused (`ELOOP`), as is anything else not
    /// a directory (`ENOTDIR`). E.g. a node's `ledger/` inside its snapshot directory.
    pub fn open_subdir(&self, name: &str, create: bool) -> io::Result<Dir> {
        Ok(Dir::from_fd(self.fd.open_subdir(name, create)?))
    }

    /// The path it was opened by (for messages: what is in it is reached by its fd).
    pub fn path(&self) -> &Path {
        self.fd.path()
    }

    /// An already open directory, for snapseal's own crates (e.g. the CLI, which reads the
    /// ledger by the same fd); not a promised API.
    #[cfg(feature = "internals")]
    pub fn from_handle(handle: Arc<dyn DirHandle>) -> Dir {
        Dir::from_fd(handle)
    }

    /// This snapshot directory with `store`, the store this process has open on it: export
    /// reads a chunked snapshot's chunks through its index (each checked against its hash),
    /// and holds the snapshot against its retention meanwhile. Without it they are read from
    /// the packs as they are found, unheld: a running node's retention sweeping one before it
    /// is copied fails the export as changed.
    pub fn with_store(mut self, store: Arc<SnapshotStore>) -> Dir {
        self.store = Some(store);
        self
    }

    fn from_fd(fd: Arc<dyn DirHandle>) -> Dir {
        Dir { fd, store: None }
    }

    pub(crate) fn fd(&self) -> &dyn DirHandle {
        &*self.fd
    }

    pub(crate) fn store(&self) -> Option<&Arc<SnapshotStore>> {
        self.store.as_ref()
    }
}
