//! Remote retention: keep the newest N per node, a TTL for older ones, holds that gc never
//! deletes; the index is written before anything it stops naming is deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use snapseal_persist::internals::Escaped;
use snapseal_persist::SnapshotName;
use tracing::info;

use crate::error::ShipError;
use crate::index::Index;
use crate::remote::Remote;
use crate::shipper::{check_node, valid_node_name};
use crate::staging;
pub use crate::staging::StaleUpload;

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
    /// Named by the index.
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
}

/// Every snapshot object on the remote (a listing: for operators, never for readers), oldest
/// first per node. Objects whose names are not snapseal's are left out.
///
/// Blocks the calling thread: [`list_async`] run to completion on the remote's private runtime.
/// From a tokio task it does not panic (it runs on a helper thread) but holds the task's
/// worker thread meanwhile: there, `.await` [`list_async`].
pub fn list(remote: &Remote) -> Result<(Index, Vec<RemoteObject>), ShipError> {
    remote.block_on(list_async(remote))
}

/// [`list`] on the caller's tokio runtime.
pub async fn list_async(remote: &Remote) -> Result<(Index, Vec<RemoteObject>), ShipError> {
    let (index, _) = remote.read_index().await?;
    Ok((index.clone(), objects(remote, &index).await?))
}

async fn objects(remote: &Remote, index: &Index) -> Result<Vec<RemoteObject>, ShipError> {
    let mut out = Vec::new();
    for meta in remote.list_all().await? {
        let parts: Vec<_> = meta.location.parts().collect();
        let [.., node, file] = parts.as_slice() else {
            continue;
        };
        let (node, file) = (node.as_ref(), file.as_ref());
        if remote.key(node, file) != meta.location || !valid_node_name(node) {
            continue;
        }
        let Some(name) = SnapshotName::parse(file).filter(|n| n.file_name() == file) else {
            continue;
        };
        let n = index.nodes.get(node);
        out.push(RemoteObject {
            node: node.to_string(),
            name,
            size: meta.size,
            modified_unix: meta.last_modified.timestamp(),
            indexed: n.is_some_and(|n| n.snapshots.iter().any(|e| e.name == file)),
            held: n.is_some_and(|n| n.holds.contains(file)),
        });
    }
    out.sort_by(|a, b| {
        (&a.node, a.name.idx, a.name.evidence_idx).cmp(&(&b.node, b.name.idx, b.name.evidence_idx))
    });
    Ok(out)
}

/// Applies `policy`: per node, the newest `keep_last` snapshot objects, those younger than
/// the TTL and those held are kept; the rest are deleted. The index without them is written
/// first, so a crash in between leaves only objects no index names, which the next gc
/// removes. Objects whose names are not snapseal's are never touched.
///
/// Blocks the calling thread: [`gc_async`] run to completion on the remote's private runtime.
/// From a tokio task it does not panic (it runs on a helper thread) but holds the task's
/// worker thread meanwhile: there, `.await` [`gc_async`].
pub fn gc(remote: &Remote, policy: &GcPolicy) -> Result<GcReport, ShipError> {
    remote.block_on(gc_async(remote, policy))
}

/// [`gc`] on the caller's tokio runtime. On a `file://` remote, the sweep of staging files
/// (a walk of directory fds) runs on the polling task.
pub async fn gc_async(remote: &Remote, policy: &GcPolicy) -> Result<GcReport, ShipError> {
    let (index, _) = remote.read_index().await?;
    let all = objects(remote, &index).await?;
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
        return Ok(report);
    }
    let doomed: BTreeSet<(String, String)> = report
        .deleted
        .iter()
        .map(|o| (o.node.clone(), o.name.file_name()))
        .collect();
    remote
        .update_index(|index| {
            for (node, n) in index.nodes.iter_mut() {
                n.snapshots
                    .retain(|e| !doomed.contains(&(node.clone(), e.name.clone())));
            }
        })
        .await?;
    for o in &report.deleted {
        let key = remote.key(&o.node, &o.name.file_name());
        remote.delete(&key).await?;
        info!(object = %Escaped::str(key.as_ref()), "remote gc: deleted");
    }
    Ok(report)
}

/// Puts a remote hold on `node`'s snapshot `name` (the object must exist): gc never deletes
/// it until [`release`].
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
    let file = name.file_name();
    let key = remote.key(node, &file);
    if remote.head(&key).await?.is_none() {
        return Err(ShipError::NoSuchObject {
            object: key.to_string(),
        });
    }
    remote
        .update_index(|index| {
            index
                .nodes
                .entry(node.to_string())
                .or_default()
                .holds
                .insert(file.clone());
        })
        .await
        .map(drop)
}

/// Removes a remote hold; returns whether there was one.
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
    let file = name.file_name();
    // No hold, nothing to write (and a remote that does not exist yet stays so).
    let (index, _) = remote.read_index().await?;
    if !index
        .nodes
        .get(node)
        .is_some_and(|n| n.holds.contains(&file))
    {
        return Ok(false);
    }
    let mut had = false;
    remote
        .update_index(|index| {
            had = index
                .nodes
                .get_mut(node)
                .is_some_and(|n| n.holds.remove(&file));
        })
        .await?;
    Ok(had)
}
