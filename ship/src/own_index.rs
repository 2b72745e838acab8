//! A shipper's own node index: the claim of its node, the writer-id check before every write,
//! the migration from the legacy index, and what the listing says the index gets wrong.
//!
//! Only this node's shipper writes `<prefix>/<node>/index.json`, with plain overwrites. Before
//! each write it reads the index back: once it has claimed the node, any other writer id there
//! means another shipper with the same node name (or `remote repair`) wrote it, and the
//! shipper stops ([`ShipError::NodeInUse`]) rather than write over it.

use std::collections::BTreeSet;
use std::time::Duration;

use parking_lot::Mutex;
use snapseal_persist::internals::Escaped;
use snapseal_persist::SnapshotName;
use tracing::{info, warn};

use crate::error::ShipError;
use crate::holds::migrate_legacy_holds;
use crate::identity::new_writer_id;
use crate::index::{IndexEntry, NodeIndex};
use crate::layout::NodeObjects;
use crate::remote::Remote;

/// A shipper's hold on its node's index.
pub(crate) struct OwnIndex {
    node: String,
    writer: String,
    keep: usize,
    claim_wait: Duration,
    /// The index as this shipper last wrote it; `None` until the node is claimed.
    last: Mutex<Option<NodeIndex>>,
}

/// What a pass starts from: the index, checked against a listing of the node.
pub(crate) struct Plan {
    /// The index as it is to be (entries whose objects are gone dropped).
    index: NodeIndex,
    /// Whether it differs from the index on the remote.
    changed: bool,
    /// For a node not claimed yet and without an index: its holds in the legacy index.
    legacy_holds: BTreeSet<String>,
    /// What the index names (after dropping what is gone).
    pub named: BTreeSet<SnapshotName>,
    /// Snapshots the index named whose objects are gone, not by gc: to ship again.
    pub missing: Vec<SnapshotName>,
    /// The listing of the node's objects.
    pub objects: NodeObjects,
}

impl OwnIndex {
    /// For `node`, keeping the newest `keep` entries, waiting `claim_wait` after its claim
    /// before it reads the index back.
    pub(crate) fn new(node: &str, keep: usize, claim_wait: Duration) -> OwnIndex {
        OwnIndex {
            node: node.to_string(),
            writer: new_writer_id(),
            keep: keep.max(1),
            claim_wait,
            last: Mutex::new(None),
        }
    }

    /// Reads the index (checking the writer once the node is claimed; before, for a node
    /// without an index, its part of the legacy index) and lists the node: entries whose
    /// objects are gone are dropped — quietly when gc deleted them, as [`Plan::missing`]
    /// otherwise. Writes nothing: [`settle`](Self::settle) does.
    pub(crate) async fn plan(&self, remote: &Remote) -> Result<Plan, ShipError> {
        let claimed = self.last.lock().is_some();
        let (mut index, legacy_holds) = if claimed {
            (self.current(remote).await?, BTreeSet::new())
        } else {
            match self.read(remote).await? {
                Some(found) => (found, BTreeSet::new()),
                None => self.legacy_part(remote).await?,
            }
        };
        let objects = remote
            .listing(Some(&self.node))
            .await?
            .nodes
            .remove(&self.node)
            .unwrap_or_default();
        let mut missing = Vec::new();
        let before = index.snapshots.len();
        index.snapshots.retain(|e| {
            let Some(name) = e.snapshot() else {
                return false;
            };
            if objects.snapshots.contains_key(&name) {
                return true;
            }
            if !objects.deleted_by_gc(&name) {
                missing.push(name);
            }
            false
        });
        Ok(Plan {
            changed: index.snapshots.len() != before,
            named: index
                .snapshots
                .iter()
                .filter_map(|e| e.snapshot())
                .collect(),
            index,
            legacy_holds,
            missing,
            objects,
        })
    }

    /// Makes the remote agree with `plan`: at the first pass, claims the node (writes the
    /// index with this shipper's id, the node's legacy holds as hold objects first, then
    /// reads it back after `claim_wait`); later, writes the index if entries were dropped.
    pub(crate) async fn settle(&self, remote: &Remote, plan: &Plan) -> Result<(), ShipError> {
        if self.last.lock().is_none() {
            return self.claim(remote, plan).await;
        }
        if plan.changed {
            self.current(remote).await?;
            self.write(remote, plan.index.clone()).await?;
        }
        Ok(())
    }

    /// Adds a confirmed snapshot to the index.
    pub(crate) async fn record(&self, remote: &Remote, entry: IndexEntry) -> Result<(), ShipError> {
        let mut index = self.current(remote).await?;
        index.add(entry, self.keep);
        self.write(remote, index).await
    }

    /// Writes `index` (the caller read the remote's and found it ours just before).
    async fn write(&self, remote: &Remote, index: NodeIndex) -> Result<(), ShipError> {
        remote.write_node_index(&index).await?;
        *self.last.lock() = Some(index);
        Ok(())
    }

    /// The index, read from the remote, after checking that this shipper wrote it last.
    async fn current(&self, remote: &Remote) -> Result<NodeIndex, ShipError> {
        let found = self.read(remote).await?;
        let Some(ours) = self.last.lock().clone() else {
            return Err(self.in_use(remote, "(not claimed yet)"));
        };
        match found {
            Some(found) if found.writer == self.writer => Ok(found),
            Some(found) => Err(self.in_use(remote, &found.writer)),
            None => {
                warn!(remote = %remote.url(), node = %self.node, "this node's index is gone: writing it again");
                remote.write_node_index(&ours).await?;
                Ok(ours)
            }
        }
    }

    /// Claims the node: the planned index written with this shipper's id; then, after
    /// `claim_wait`, read back: another id there means another shipper claimed the node
    /// meanwhile.
    async fn claim(&self, remote: &Remote, plan: &Plan) -> Result<(), ShipError> {
        let mut index = plan.index.clone();
        if index.writer != self.writer {
            info!(
                remote = %remote.url(),
                node = %self.node,
                previous = %index.writer,
                "claiming the node from its previous writer (a restarted shipper, remote repair, or none)"
            );
        }
        let migrated = migrate_legacy_holds(remote, &self.node, &plan.legacy_holds).await?;
        if !migrated.is_empty() {
            info!(remote = %remote.url(), node = %self.node, holds = migrated.len(), "migrated the node's holds from the legacy index");
        }
        index.writer = self.writer.clone();
        remote.write_node_index(&index).await?;
        tokio::time::sleep(self.claim_wait).await;
        match self.read(remote).await? {
            Some(again) if again.writer == self.writer => {
                *self.last.lock() = Some(again);
                Ok(())
            }
            Some(again) => Err(self.in_use(remote, &again.writer)),
            None => Err(self.in_use(remote, "(deleted right after this shipper wrote it)")),
        }
    }

    /// For a node without an index: an index made from its part of the legacy index, each
    /// entry kept only when its object is there with the size it gives, and its legacy holds.
    /// An unusable legacy index is ignored (it is no one's to write now).
    async fn legacy_part(
        &self,
        remote: &Remote,
    ) -> Result<(NodeIndex, BTreeSet<String>), ShipError> {
        let mut index = NodeIndex::new(&self.node, "none");
        let legacy = match remote.read_legacy_index().await {
            Ok(legacy) => legacy,
            Err(e @ ShipError::Index { .. }) => {
                warn!(remote = %remote.url(), error = %crate::error::describe(&e), "the legacy index is unusable: not migrating from it");
                None
            }
            Err(e) => return Err(e),
        };
        let Some(part) = legacy.and_then(|mut l| l.nodes.remove(&self.node)) else {
            return Ok((index, BTreeSet::new()));
        };
        for e in part.snapshots {
            let Some(name) = e.snapshot() else { continue };
            let key = remote.key(&self.node, &name.file_name());
            match remote.head(&key).await? {
                Some(meta) if meta.size == e.size => index.add(e, usize::MAX),
                _ => {
                    warn!(object = %Escaped::str(key.as_ref()), "the legacy index names it, but it is gone or of another size: not migrated")
                }
            }
        }
        info!(
            remote = %remote.url(),
            node = %self.node,
            entries = index.snapshots.len(),
            holds = part.holds.len(),
            "migrating the node from the legacy index"
        );
        Ok((index, part.holds))
    }

    /// The node's index on the remote; an unusable one stops the shipper (terminal), pointing
    /// at `remote repair`.
    async fn read(&self, remote: &Remote) -> Result<Option<NodeIndex>, ShipError> {
        remote
            .read_node_index(&self.node)
            .await
            .map_err(|e| match e {
                ShipError::Index { object, reason } => ShipError::Index {
                    object,
                    reason: format!("{reason} (`snapseal remote repair` rewrites it)"),
                },
                e => e,
            })
    }

    fn in_use(&self, remote: &Remote, writer: &str) -> ShipError {
        ShipError::NodeInUse {
            node: self.node.clone(),
            url: remote.url().to_string(),
            writer: writer.to_string(),
            ours: self.writer.clone(),
        }
    }
}
