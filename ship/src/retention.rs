//! Remote retention: keep the newest N per node, a TTL for older ones, holds that gc never
//! deletes (one hold object each, see `holds.rs`). gc never writes a node's index (its
//! shipper is its one writer): before it deletes anything of a node it records its floor,
//! `<node>/gc/<newest deleted>`, so that the node's shipper and the readers know that what
//! is gone at or below it went by gc, not lost.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use object_store::{ObjectStoreExt, PutPayload};
use snapseal_persist::internals::Escaped;
use snapseal_persist::SnapshotName;
use tracing::info;

use crate::chunk_sweep::sweep_chunks;
use crate::error::ShipError;
use crate::holds::{delete_hold, put_hold};
use crate::layout::order;
use crate::remote::Remote;
use crate::shipper::check_node;
use crate::staging;
pub use crate::staging::StaleUpload;
use crate::view::{read_views, Legacy, Views};

/// What remote gc keeps.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GcPolicy {
    /// Snapshot objects kept per node, newest first (at least 1).
    pub keep_last: usize,
    /// Older ones are kept while younger than this (by the object's last-modified time);
    /// `None`: deleted as soon as they fall out of the newest `keep_last`.
    pub ttl: Option<Duration>,
    /// Report only; change nothing.
    pub dry_run: bool,
    /// On a `file://` remote, staging files of interrupted uploads not written for this long
    /// are removed (younger ones may belong to an upload still running).
    pub stale_upload_age: Duration,
}

impl GcPolicy {
    /// Keep the newest `keep_last` per node, no TTL, not dry; staging files of interrupted
    /// uploads removed after an hour.
    pub fn new(keep_last: usize) -> Self {
        GcPolicy {
            keep_last,
            ttl: None,
            dry_run: false,
            stale_upload_age: Duration::from_secs(3600),
        }
    }
}

/// Chained setters, one per field beyond `keep_last` (the struct is `#[non_exhaustive]`, so
/// it is built from [`GcPolicy::new`], never by a literal; assigning a field works as well).
///
/// ```
/// use std::time::Duration;
/// use snapseal_ship::retention::GcPolicy;
///
/// // Keep the newest 3 per node, and anything younger than a day; only report.
/// let policy = GcPolicy::new(3)
///     .with_ttl(Duration::from_secs(86_400))
///     .with_dry_run(true)
///     .with_stale_upload_age(Duration::from_secs(600));
/// assert_eq!((policy.keep_last, policy.ttl), (3, Some(Duration::from_secs(86_400))));
/// assert!(policy.dry_run);
/// assert_eq!(policy.stale_upload_age, Duration::from_secs(600));
/// ```
impl GcPolicy {
    /// Sets [`ttl`](Self::ttl): older objects are kept while younger than `ttl`.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets [`dry_run`](Self::dry_run).
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Sets [`stale_upload_age`](Self::stale_upload_age).
    pub fn with_stale_upload_age(mut self, age: Duration) -> Self {
        self.stale_upload_age = age;
        self
    }
}

/// One snapshot object on the remote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteObject {
    /// The node that shipped it.
    pub node: String,
    /// Its committed name.
    pub name: SnapshotName,
    /// Size in bytes.
    pub size: u64,
    /// Last modified, seconds since the Unix epoch.
    pub modified_unix: i64,
    /// Named by its node's index (with the listed size).
    pub indexed: bool,
    /// Under a remote hold.
    pub held: bool,
}

/// What a gc did (or, dry, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Objects kept.
    pub kept: Vec<RemoteObject>,
    /// Objects deleted (or to delete).
    pub deleted: Vec<RemoteObject>,
    /// On a `file://` remote: staging files of interrupted uploads removed (or to remove).
    pub stale_uploads: Vec<StaleUpload>,
    /// Chunk objects deleted (or, dry, to delete) because no snapshot object of their node
    /// on the remote names them.
    pub chunks_deleted: usize,
    /// Their bytes.
    pub chunk_bytes_deleted: u64,
}

/// Every snapshot object on the remote (a listing: for operators), oldest first per node,
/// with whether its node's index names it and whether it is held. Objects whose names are
/// not snapseal's are left out.
///
/// Blocks the calling thread: [`list_async`] run to completion on the remote's private runtime.
/// From a tokio task it does not panic (it runs on a helper thread) but holds the task's
/// worker thread meanwhile: there, `.await` [`list_async`].
pub fn list(remote: &Remote) -> Result<Vec<RemoteObject>, ShipError> {
    remote.block_on(list_async(remote))
}

/// [`list`] on the caller's tokio runtime.
pub async fn list_async(remote: &Remote) -> Result<Vec<RemoteObject>, ShipError> {
    Ok(objects(&read_views(remote, None).await?))
}

/// The snapshot objects of every view, oldest first per node.
fn objects(views: &Views) -> Vec<RemoteObject> {
    views
        .nodes
        .iter()
        .flat_map(|v| {
            v.offered.iter().map(move |o| RemoteObject {
                node: v.node.clone(),
                name: o.name,
                size: o.listed.size,
                modified_unix: o.listed.modified_unix,
                indexed: o.entry.is_some(),
                held: v.holds.contains(&o.name),
            })
        })
        .collect()
}

/// Applies `policy`: per node, the newest `keep_last` snapshot objects, those younger than
/// the TTL and those held are kept; the rest are deleted. Before deleting a node's objects
/// it records the node's gc floor (the newest it deletes), so a crash in between leaves
/// objects the next gc removes, and nothing a shipper would take for lost. Objects whose
/// names are not snapseal's are never touched. A remote whose legacy index is unusable while
/// a node has no index of its own is refused: that node's holds may be in it.
///
/// Blocks the calling thread: [`gc_async`] run to completion on the remote's private runtime.
/// From a tokio task it does not panic (it runs on a helper thread) but holds the task's
/// worker thread meanwhile: there, `.await` [`gc_async`].
///
/// ```
/// use std::sync::Arc;
/// use snapseal_persist::fs::RealFs;
/// use snapseal_persist::receipt::Ed25519Verifier;
/// use snapseal_persist::{SigningKey, SnapshotStore, StoreOptions};
/// use snapseal_persist::SnapshotName;
/// use snapseal_ship::retention::{self, GcPolicy};
/// use snapseal_ship::{Remote, RemoteOptions, ShipConfig, Shipper};
/// # use std::io::Write;
/// # use snapseal_persist::receipt::statement_receipt;
/// # use snapseal_persist::BodyBuilder;
/// # type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
/// # // A snapshot of `state` committed at `idx` and proven at `idx + 1` by a statement `key`
/// # // signs: what the node's Snapshotter does (see snapseal_persist's crate example).
/// # fn commit(store: &SnapshotStore, key: &SigningKey, idx: u64, state: &[u8]) -> Result<()> {
/// #     let mut body = BodyBuilder::new(None)?;
/// #     body.write_all(state)?;
/// #     let body = body.finish()?;
/// #     let receipt = statement_receipt(key, &body.claims(idx), idx + 1, None)?;
/// #     body.commit(store, idx, idx + 1, &receipt)?;
/// #     Ok(())
/// # }
/// # // Stores trusting statements by `key`.
/// # fn trusting(key: &SigningKey) -> StoreOptions {
/// #     let verifier = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
/// #     StoreOptions::new(Arc::new(verifier))
/// # }
///
/// # fn main() -> Result<()> {
/// let key = SigningKey::from_bytes(&[7; 32]);
/// let (node_dir, backups) = (tempfile::tempdir()?, tempfile::tempdir()?);
/// let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), node_dir.path(), trusting(&key))?);
/// for idx in [10, 20, 30] {
///     commit(&store, &key, idx, format!("state at {idx}").as_bytes())?;
/// }
/// let url = format!("file://{}", backups.path().display());
/// let remote = Arc::new(Remote::open(&url, &RemoteOptions::default())?);
/// Shipper::new(Arc::clone(&remote), store, ShipConfig::new("node-1"))?.ship_pending()?;
///
/// // Keep the newest per node, and the oldest because it is held (e.g. an audit point).
/// let audit = SnapshotName::parse("snapshot_10_11.committed").expect("a committed name");
/// retention::hold(&remote, "node-1", &audit)?;
/// let report = retention::gc(&remote, &GcPolicy::new(1))?;
/// let deleted: Vec<u64> = report.deleted.iter().map(|o| o.name.idx).collect();
/// assert_eq!(deleted, [20]);
/// let mut kept: Vec<u64> = report.kept.iter().map(|o| o.name.idx).collect();
/// kept.sort();
/// assert_eq!(kept, [10, 30]);
/// # Ok(()) }
/// ```
pub fn gc(remote: &Remote, policy: &GcPolicy) -> Result<GcReport, ShipError> {
    remote.block_on(gc_async(remote, policy))
}

/// [`gc`] on the caller's tokio runtime. On a `file://` remote, the sweep of staging files
/// (a walk of directory fds) runs on the polling task.
pub async fn gc_async(remote: &Remote, policy: &GcPolicy) -> Result<GcReport, ShipError> {
    let views = read_views(remote, None).await?;
    if let Legacy::Unusable(e) = &views.legacy {
        if !views.unmigrated.is_empty() {
            return Err(ShipError::Index {
                object: remote.index_key().to_string(),
                reason: format!(
                    "the legacy index is unusable ({}), and nodes {} have no index of their own: their holds may be in it (`snapseal remote repair` migrates them)",
                    crate::error::describe(e),
                    views.unmigrated.join(", ")
                ),
            });
        }
    }
    let all = objects(&views);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut by_node: BTreeMap<&str, Vec<&RemoteObject>> = BTreeMap::new();
    for o in &all {
        by_node.entry(&o.node).or_default().push(o);
    }
    let mut report = GcReport::default();
    for objects in by_node.values() {
        for (rank, o) in objects.iter().rev().enumerate() {
            // In u64: a TTL of 2^63 seconds or more is "forever", not negative. A time in
            // the future is age 0.
            let age = u64::try_from(now.saturating_sub(o.modified_unix)).unwrap_or(0);
            let young = policy.ttl.is_some_and(|ttl| age < ttl.as_secs());
            if rank < policy.keep_last.max(1) || young || o.held {
                report.kept.push((*o).clone());
            } else {
                report.deleted.push((*o).clone());
            }
        }
    }
    if let Some(root) = remote.local_root() {
        report.stale_uploads = staging::sweep(root, policy.stale_upload_age, !policy.dry_run)
            .map_err(|source| ShipError::LocalIo {
                dir: root.to_path_buf(),
                step: "sweeping staging files",
                source,
            })?;
        if !policy.dry_run {
            for s in &report.stale_uploads {
                info!(file = %Escaped::path(&s.path), bytes = s.size, "remote gc: removed an interrupted upload's staging file");
            }
        }
    }
    if policy.dry_run || report.deleted.is_empty() {
        sweep_all_chunks(remote, &views, policy.dry_run, &mut report).await?;
        return Ok(report);
    }
    let mut floors: BTreeMap<&str, SnapshotName> = BTreeMap::new();
    for o in &report.deleted {
        let floor = floors.entry(&o.node).or_insert(o.name);
        if order(&o.name) > order(floor) {
            *floor = o.name;
        }
    }
    for (node, floor) in &floors {
        let key = remote.gc_mark_key(node, &floor.file_name());
        let record = format!(
            "{{\"format\": 1, \"node\": \"{node}\", \"floor\": \"{}\", \"gc_unix\": {now}}}\n",
            floor.file_name()
        );
        remote
            .store
            .put(&key, PutPayload::from(record.into_bytes()))
            .await
            .map_err(|e| ShipError::remote("put", key.as_ref(), e))?;
    }
    for o in &report.deleted {
        let key = remote.key(&o.node, &o.name.file_name());
        remote.delete(&key).await?;
        info!(object = %Escaped::str(key.as_ref()), "remote gc: deleted");
    }
    // Older floor records say nothing the newest does not.
    for view in &views.nodes {
        let Some(floor) = floors.get(view.node.as_str()) else {
            continue;
        };
        for mark in &view.gc_marks {
            if order(mark) < order(floor) {
                remote
                    .delete(&remote.gc_mark_key(&view.node, &mark.file_name()))
                    .await?;
            }
        }
    }
    sweep_all_chunks(remote, &views, false, &mut report).await?;
    Ok(report)
}

/// The chunk sweep of every node (`chunk_sweep.rs`), after its snapshot objects were
/// deleted: a chunk object goes only when no snapshot object of its node still on the
/// remote — held, retained, or shipped and not yet indexed — names it.
async fn sweep_all_chunks(
    remote: &Remote,
    views: &Views,
    dry_run: bool,
    report: &mut GcReport,
) -> Result<(), ShipError> {
    for view in &views.nodes {
        // A dry run deleted nothing: the snapshot objects it would have are counted as gone.
        let going: HashSet<SnapshotName> = report
            .deleted
            .iter()
            .filter(|o| o.node == view.node)
            .map(|o| o.name)
            .collect();
        let swept = sweep_chunks(remote, &view.node, dry_run, &going).await?;
        report.chunks_deleted += swept.chunks;
        report.chunk_bytes_deleted += swept.bytes;
    }
    Ok(())
}

/// Puts a remote hold on `node`'s snapshot `name` (the object must exist): gc never deletes
/// it until [`release`]. The hold is an object of its own (`<node>/holds/<name>`).
///
/// Blocks the calling thread: [`hold_async`] run to completion on the remote's private runtime.
/// From a tokio task it does not panic (it runs on a helper thread) but holds the task's
/// worker thread meanwhile: there, `.await` [`hold_async`].
pub fn hold(remote: &Remote, node: &str, name: &SnapshotName) -> Result<(), ShipError> {
    remote.block_on(hold_async(remote, node, name))
}

/// [`hold`] on the caller's tokio runtime.
pub async fn hold_async(remote: &Remote, node: &str, name: &SnapshotName) -> Result<(), ShipError> {
    check_node(remote.url(), node)?;
    let key = remote.key(node, &name.file_name());
    if remote.head(&key).await?.is_none() {
        return Err(ShipError::NoSuchObject {
            object: key.to_string(),
        });
    }
    put_hold(remote, node, name, false).await.map(drop)
}

/// Removes a remote hold; returns whether there was one. A hold that is only in the legacy
/// index (a node not migrated yet) is refused: this version never writes that index, and
/// `remote repair` migrates it to a hold object first.
///
/// Blocks the calling thread: [`release_async`] run to completion on the remote's private runtime.
/// From a tokio task it does not panic (it runs on a helper thread) but holds the task's
/// worker thread meanwhile: there, `.await` [`release_async`].
pub fn release(remote: &Remote, node: &str, name: &SnapshotName) -> Result<bool, ShipError> {
    remote.block_on(release_async(remote, node, name))
}

/// [`release`] on the caller's tokio runtime.
pub async fn release_async(
    remote: &Remote,
    node: &str,
    name: &SnapshotName,
) -> Result<bool, ShipError> {
    check_node(remote.url(), node)?;
    if delete_hold(remote, node, name).await? {
        return Ok(true);
    }
    let file = name.file_name();
    let legacy = match remote.read_legacy_index().await {
        Ok(legacy) => legacy,
        // An unusable legacy index holds nothing a release could remove.
        Err(ShipError::Index { .. }) => None,
        Err(e) => return Err(e),
    };
    let in_legacy =
        legacy.is_some_and(|l| l.nodes.get(node).is_some_and(|n| n.holds.contains(&file)));
    if in_legacy && remote.read_node_index(node).await.ok().flatten().is_none() {
        return Err(ShipError::Index {
            object: remote.index_key().to_string(),
            reason: format!(
                "the hold on {node}/{file} is in the legacy index, which this version never writes: `snapseal remote repair` makes it a hold object, which release then removes"
            ),
        });
    }
    Ok(false)
}
