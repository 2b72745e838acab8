//! The store's blocking calls an async node needs at start-up: opening it and finding the
//! newest snapshot that verifies.

use std::path::PathBuf;
use std::sync::Arc;

use snapseal_persist::fs::FileSystem;
use snapseal_persist::{SnapshotFile, SnapshotStore, StoreOptions};

use crate::{blocking, Error};

/// [`SnapshotStore::open`] on a blocking thread: creates `dir` if needed, takes its lock,
/// removes what a crash left (pending and stale files) and checks the options. Resolves once
/// the store is open.
pub async fn open_store(
    fs: Arc<dyn FileSystem>,
    dir: impl Into<PathBuf>,
    opts: StoreOptions,
) -> Result<Arc<SnapshotStore>, Error> {
    let dir = dir.into();
    let store = blocking::run("opening the snapshot store", move || {
        SnapshotStore::open(fs, &dir, opts)
    })
    .await??;
    Ok(Arc::new(store))
}

/// [`SnapshotStore::latest`] on a blocking thread: the newest snapshot that verifies (files
/// that do not are passed over, and quarantined as the store's options say), or `None`. It
/// reads and hashes whole files, so it may take a while for a large snapshot; the runtime's
/// workers stay free meanwhile.
pub async fn latest(store: &Arc<SnapshotStore>) -> Result<Option<SnapshotFile>, Error> {
    let store = Arc::clone(store);
    Ok(blocking::run("finding the newest snapshot", move || store.latest()).await??)
}
