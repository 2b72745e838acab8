//! The remote layout: which key holds what, and a listing sorted into it.
//!
//! ```text
//! <prefix>/index.json                      the legacy shared index (format 1): read, never written
//! <prefix>/<node>/index.json               the node's index (format 2): one writer, its shipper
//! <prefix>/<node>/<committed file name>    a snapshot object
//! <prefix>/<node>/holds/<committed name>   a hold: remote gc never deletes that snapshot
//! <prefix>/<node>/gc/<committed name>      gc's floor: it deleted snapshots up to this one
//! ```
//!
//! Every kind sits at its own depth below the prefix or under its own fixed name, so no key of
//! one kind can be read as another whatever a node is called (a node may be named `holds`:
//! its snapshots are `<prefix>/holds/<name>`, two levels down, a hold is three).

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use object_store::path::Path;
use object_store::ObjectMeta;
use snapseal_persist::internals::Escaped;
use snapseal_persist::{FileState, SnapshotName};
use tracing::warn;

use crate::error::ShipError;
use crate::remote::{Remote, INDEX_OBJECT};
use crate::shipper::valid_node_name;

/// The directory of a node's holds.
pub(crate) const HOLDS: &str = "holds";

/// The directory of a node's gc floor records.
pub(crate) const GC: &str = "gc";

/// `file` as a committed snapshot name, when it spells one exactly (no other spelling of the
/// same numbers is ours).
pub(crate) fn committed(file: &str) -> Option<SnapshotName> {
    SnapshotName::parse(file).filter(|n| n.state == FileState::Committed && n.file_name() == file)
}

/// The order snapshots are shipped, kept and restored in.
pub(crate) fn order(name: &SnapshotName) -> (u64, u64) {
    (name.idx, name.evidence_idx)
}

/// A snapshot object as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Its size.
    pub size: u64,
    /// Last modified, seconds since the Unix epoch.
    pub modified_unix: i64,
}

/// What a listing shows of one node.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeObjects {
    /// Snapshot objects.
    pub snapshots: BTreeMap<SnapshotName, Listed>,
    /// Whether `<node>/index.json` is there.
    pub has_index: bool,
    /// Held snapshots (a hold object each).
    pub holds: BTreeSet<SnapshotName>,
    /// gc floor records.
    pub gc_marks: BTreeSet<SnapshotName>,
}

impl NodeObjects {
    /// The newest snapshot remote gc recorded deleting up to: a snapshot at or below it that
    /// is gone was deleted by gc, not lost.
    pub(crate) fn gc_floor(&self) -> Option<SnapshotName> {
        self.gc_marks.iter().copied().max_by_key(order)
    }

    /// Whether a snapshot missing from the remote went by gc.
    pub(crate) fn deleted_by_gc(&self, name: &SnapshotName) -> bool {
        self.gc_floor().is_some_and(|f| order(name) <= order(&f))
    }
}

/// A listing of the remote (or of one node), sorted into the layout.
#[derive(Clone, Debug, Default)]
pub(crate) struct Listing {
    /// Per node, by name (only valid node names).
    pub nodes: BTreeMap<String, NodeObjects>,
    /// Whether the legacy shared index is there.
    pub legacy_index: bool,
}

impl Remote {
    /// The key of `node`'s index.
    pub(crate) fn node_index_key(&self, node: &str) -> Path {
        self.node_prefix(node).join(INDEX_OBJECT)
    }

    /// The key of the hold on `node`'s `file`.
    pub(crate) fn hold_key(&self, node: &str, file: &str) -> Path {
        self.node_prefix(node).join(HOLDS).join(file)
    }

    /// The key of a gc floor record of `node` at `file`.
    pub(crate) fn gc_mark_key(&self, node: &str, file: &str) -> Path {
        self.node_prefix(node).join(GC).join(file)
    }

    /// Lists the remote, or only `node`'s objects, sorted into the layout. Names that are not
    /// ours are left out (a node name no shipper writes is logged, escaped).
    pub(crate) async fn listing(&self, node: Option<&str>) -> Result<Listing, ShipError> {
        // The prefix's parts: the legacy index's key less its last part.
        let base = self.index_key().parts().count().saturating_sub(1);
        let under = match node {
            Some(node) => self.node_prefix(node),
            None => self.index_key().parts().take(base).collect(),
        };
        let listed_under = (!under.as_ref().is_empty()).then_some(&under);
        let mut stream = self.store.list(listed_under);
        let mut listing = Listing::default();
        let mut skipped = BTreeSet::new();
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| ShipError::remote("list", under.as_ref(), e))?;
            let parts: Vec<String> = meta
                .location
                .parts()
                .skip(base)
                .map(|p| p.as_ref().to_string())
                .collect();
            sort_into(&mut listing, &parts, &meta, &mut skipped);
        }
        for node in skipped {
            warn!(node = %Escaped::str(&node), "skipping a node name no shipper writes");
        }
        Ok(listing)
    }
}

/// Files one listed object into `listing` by its parts below the prefix.
fn sort_into(
    listing: &mut Listing,
    parts: &[String],
    meta: &ObjectMeta,
    skipped: &mut BTreeSet<String>,
) {
    let node = match parts {
        [index] if index == INDEX_OBJECT => {
            listing.legacy_index = true;
            return;
        }
        [node, ..] if parts.len() <= 3 => node,
        _ => return,
    };
    if !valid_node_name(node) {
        skipped.insert(node.clone());
        return;
    }
    let objects = || NodeObjects::default();
    match &parts[1..] {
        [file] if file == INDEX_OBJECT => {
            listing
                .nodes
                .entry(node.clone())
                .or_insert_with(objects)
                .has_index = true
        }
        [file] => {
            if let Some(name) = committed(file) {
                listing
                    .nodes
                    .entry(node.clone())
                    .or_insert_with(objects)
                    .snapshots
                    .insert(
                        name,
                        Listed {
                            size: meta.size,
                            modified_unix: meta.last_modified.timestamp(),
                        },
                    );
            }
        }
        [dir, file] => {
            let Some(name) = committed(file) else { return };
            let n = listing.nodes.entry(node.clone()).or_insert_with(objects);
            if dir == HOLDS {
                n.holds.insert(name);
            } else if dir == GC {
                n.gc_marks.insert(name);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(size: u64) -> ObjectMeta {
        ObjectMeta {
            location: Path::from("x"),
            last_modified: chrono::DateTime::from_timestamp(7, 0).unwrap_or_default(),
            size,
            e_tag: None,
            version: None,
        }
    }

    fn sorted(keys: &[&str]) -> Listing {
        let mut listing = Listing::default();
        let mut skipped = BTreeSet::new();
        for k in keys {
            let parts: Vec<String> = k.split('/').map(str::to_string).collect();
            sort_into(&mut listing, &parts, &meta(3), &mut skipped);
        }
        listing
    }

    #[test]
    fn each_kind_of_key_is_told_apart_even_for_a_node_named_holds() {
        let l = sorted(&[
            "index.json",
            "holds/snapshot_1_2.committed",
            "holds/index.json",
            "n1/holds/snapshot_1_2.committed",
            "n1/gc/snapshot_3_4.committed",
            "n1/snapshot_5_6.committed",
            "n1/snapshot_05_6.committed",
            "n1/snapshot_5_6.pending",
            "n1/other/snapshot_5_6.committed",
            ".hidden/snapshot_5_6.committed",
            "n1/a/b/snapshot_5_6.committed",
        ]);
        assert!(l.legacy_index);
        let holds = &l.nodes["holds"];
        assert!(holds.has_index && holds.holds.is_empty());
        assert_eq!(holds.snapshots.len(), 1);
        let n1 = &l.nodes["n1"];
        assert!(!n1.has_index);
        let names =
            |s: &BTreeSet<SnapshotName>| s.iter().map(|n| n.file_name()).collect::<Vec<_>>();
        assert_eq!(names(&n1.holds), ["snapshot_1_2.committed"]);
        assert_eq!(names(&n1.gc_marks), ["snapshot_3_4.committed"]);
        let snaps: Vec<String> = n1.snapshots.keys().map(|n| n.file_name()).collect();
        assert_eq!(snaps, ["snapshot_5_6.committed"]);
        assert_eq!(l.nodes.len(), 2);
    }
}
