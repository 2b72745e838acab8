//! What a reader (restore, `remote list`, remote gc) makes of the remote: per node, its index
//! cross-checked against a listing of the node's objects.
//!
//! An index that agrees with the listing is used as it is. One that is missing, torn (does
//! not parse), stale (objects listed that it does not name, newer than the oldest it names) or
//! disagreeing (it names an object that is gone — and gc did not delete — or of another size)
//! is not trusted for what it gets wrong: the view is rebuilt from the listing, each object it
//! does not vouch for offered without an index entry, so that restore verifies it (header and
//! receipt, two ranged reads) before it fetches it, and a warning says what was wrong. Readers
//! never write: `remote repair` or the node's shipper fixes the index.

use std::collections::BTreeSet;

use snapseal_persist::internals::Escaped;
use snapseal_persist::SnapshotName;
use tracing::warn;

use crate::error::{describe, ShipError};
use crate::index::{IndexEntry, LegacyIndex};
use crate::layout::{order, Listed, NodeObjects};
use crate::remote::Remote;

/// One snapshot object a reader may use.
#[derive(Clone, Debug)]
pub(crate) struct Offered {
    /// Its name.
    pub name: SnapshotName,
    /// What the listing says of it.
    pub listed: Listed,
    /// The index's entry, when the index names it with the listed size.
    pub entry: Option<IndexEntry>,
}

/// A reader's view of one node.
#[derive(Clone, Debug)]
pub(crate) struct NodeView {
    /// The node.
    pub node: String,
    /// Its snapshot objects, oldest first.
    pub offered: Vec<Offered>,
    /// Its held snapshots.
    pub holds: BTreeSet<SnapshotName>,
    /// Its gc floor records.
    pub gc_marks: BTreeSet<SnapshotName>,
    /// What was wrong with its index (empty: it agrees with the listing).
    pub problems: Vec<String>,
}

/// The legacy shared index, as a reader found it.
#[derive(Debug)]
pub(crate) enum Legacy {
    /// Not there.
    Absent,
    /// Read.
    Read(LegacyIndex),
    /// There, but not usable: its holds cannot be known.
    Unusable(ShipError),
}

/// Every node's view (or `only`'s).
#[derive(Debug)]
pub(crate) struct Views {
    /// Per node, by name.
    pub nodes: Vec<NodeView>,
    /// The legacy index.
    pub legacy: Legacy,
    /// Nodes without an index of their own (their holds may be in the legacy index).
    pub unmigrated: Vec<String>,
}

/// Reads the views: one listing, each node's index, the legacy index if it is there.
pub(crate) async fn read_views(remote: &Remote, only: Option<&str>) -> Result<Views, ShipError> {
    let listing = remote.listing(None).await?;
    let legacy = if listing.legacy_index {
        match remote.read_legacy_index().await {
            Ok(Some(index)) => Legacy::Read(index),
            Ok(None) => Legacy::Absent,
            Err(e @ ShipError::Index { .. }) => {
                warn!(remote = %remote.url(), error = %describe(&e), "the legacy index is unusable: ignoring it");
                Legacy::Unusable(e)
            }
            Err(e) => return Err(e),
        }
    } else {
        Legacy::Absent
    };
    let mut views = Views {
        nodes: Vec::new(),
        legacy,
        unmigrated: Vec::new(),
    };
    for (node, objects) in &listing.nodes {
        if only.is_some_and(|n| n != node) {
            continue;
        }
        if !objects.has_index {
            views.unmigrated.push(node.clone());
        }
        let view = node_view(remote, node, objects, &views.legacy).await?;
        if !view.problems.is_empty() {
            warn!(
                remote = %remote.url(),
                node = %node,
                problems = %Escaped::str(&view.problems.join("; ")),
                "the node's index does not agree with a listing: using the listing (objects it does not vouch for are verified before use)"
            );
        }
        views.nodes.push(view);
    }
    Ok(views)
}

/// One node's view: its index (or the legacy index's part, for a node not migrated yet)
/// checked against its listing.
async fn node_view(
    remote: &Remote,
    node: &str,
    objects: &NodeObjects,
    legacy: &Legacy,
) -> Result<NodeView, ShipError> {
    let mut problems = Vec::new();
    let mut holds = objects.holds.clone();
    let entries: Option<Vec<IndexEntry>> = if objects.has_index {
        match remote.read_node_index(node).await {
            Ok(Some(index)) => Some(index.snapshots),
            Ok(None) => {
                problems.push("its index is gone".into());
                None
            }
            Err(e @ ShipError::Index { .. }) => {
                problems.push(format!("unusable index: {}", describe(&e)));
                None
            }
            Err(e) => return Err(e),
        }
    } else if let Legacy::Read(index) = legacy {
        let part = index.nodes.get(node);
        holds.extend(
            part.into_iter()
                .flat_map(|n| n.holds.iter())
                .filter_map(|h| crate::layout::committed(h)),
        );
        if part.is_none() && !objects.snapshots.is_empty() {
            problems.push("no index".into());
        }
        part.map(|n| n.snapshots.clone())
    } else {
        if !objects.snapshots.is_empty() {
            problems.push("no index".into());
        }
        None
    };
    let entries = entries.unwrap_or_default();
    let named: BTreeSet<SnapshotName> = entries.iter().filter_map(|e| e.snapshot()).collect();
    let oldest_named = named.iter().map(order).min();
    let mut offered = Vec::new();
    for e in &entries {
        let Some(name) = e.snapshot() else {
            problems.push(format!("it names \"{}\", not a snapshot", e.name));
            continue;
        };
        match objects.snapshots.get(&name) {
            Some(listed) if listed.size == e.size => offered.push(Offered {
                name,
                listed: listed.clone(),
                entry: Some(e.clone()),
            }),
            Some(listed) => problems.push(format!(
                "it gives {} {} bytes, the object has {}",
                e.name, e.size, listed.size
            )),
            None if objects.deleted_by_gc(&name) => {}
            None => problems.push(format!("it names {}, which is gone", e.name)),
        }
    }
    let vouched: BTreeSet<SnapshotName> = offered.iter().map(|o| o.name).collect();
    for (name, listed) in &objects.snapshots {
        if vouched.contains(name) {
            continue;
        }
        // Older than everything the index names: beyond the newest `index_keep` it keeps,
        // not lost. Newer, or of another size: the index missed or misstates it.
        if !named.contains(name) && oldest_named.is_some_and(|o| order(name) > o) {
            problems.push(format!("it does not name {}", name.file_name()));
        }
        offered.push(Offered {
            name: *name,
            listed: listed.clone(),
            entry: None,
        });
    }
    offered.sort_by_key(|o| order(&o.name));
    Ok(NodeView {
        node: node.to_string(),
        offered,
        holds,
        gc_marks: objects.gc_marks.clone(),
        problems,
    })
}
