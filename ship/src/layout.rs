//! The remote layout: which key holds what, and a listing sorted into it.
//!
//! ```text
//! <prefix>/index.json                      the legacy shared index (format 1): read, never written
//! <prefix>/<node>/index.json               the node's index (format 2): one writer, its shipper
//! <prefix>/<node>/<committed file name>    a snapshot object
//! <prefix>/<node>/holds/<committed name>   a hold: remote gc never deletes that snapshot
//! <prefix>/<node>/gc/<committed name>      gc's floor: it deleted snapshots up to this one
//! <prefix>/<node>/chunks/<BLAKE3 hex>       a chunk of the node's chunked snapshots
//! <prefix>/<node>/gc/chunks_<n>             remote gc's chunk sweep `n` began
//! <prefix>/<node>/gc/chunks_<n>.done        … and ended (see `chunk_gc.rs`)
//! ```
//!
//! Every kind sits at its own depth below the prefix or under its own fixed name, so no key of
//! one kind can be read as another whatever a node is called (a node may be named `holds`:
//! its snapshots are `<prefix>/holds/<name>`, two levels down, a hold is three).

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use object_store::path::Path;
use object_store::ObjectMeta;
use snapseal_persist::internals::{hash_from_hex, Escaped};
use snapseal_persist::{to_hex, FileState, Hash, SnapshotName};
use tracing::warn;

use crate::error::ShipError;
use crate::remote::{Remote, INDEX_OBJECT};
use crate::shipper::valid_node_name;

/// The directory of a node's holds.
pub(crate) const HOLDS: &str = "holds";

/// The directory of a node's gc floor records.
pub(crate) const GC: &str = "gc";

/// The directory of a node's chunk objects.
pub(crate) const CHUNKS: &str = "chunks";

/// `file` as a committed snapshot name, when it spells one exactly (no other spelling of the
/// same numbers is ours).
pub(crate) fn committed(file: &str) -> Option<SnapshotName> {
    SnapshotName::parse(file).filter(|n| n.state == FileState::Committed && n.file_name() == file)
}

/// `file` as a chunk object's name: 64 lower-case hex digits, exactly as [`to_hex`] spells
/// them.
pub(crate) fn chunk_name(file: &str) -> Option<Hash> {
    hash_from_hex(file).ok().filter(|h| to_hex(h) == file)
}

/// `file` as a chunk sweep record: `chunks_<n>` (false) or `chunks_<n>.done` (true), `n` in
/// decimal without leading zeros.
pub(crate) fn sweep_mark(file: &str) -> Option<(u64, bool)> {
    let rest = file.strip_prefix("chunks_")?;
    let (digits, done) = match rest.strip_suffix(".done") {
        Some(d) => (d, true),
        None => (rest, false),
    };
    let n: u64 = digits.parse().ok()?;
    (n.to_string() == digits).then_some((n, done))
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
    /// Chunk objects, by hash, with their listed size.
    pub chunks: BTreeMap<Hash, u64>,
    /// Chunk sweep records: number, and whether it ended.
    pub chunk_sweeps: BTreeMap<u64, SweepMark>,
}

/// A chunk sweep record as a listing shows it (see `chunk_gc.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SweepMark {
    /// `chunks_<n>.done` is there: the sweep deletes nothing more.
    pub done: bool,
    /// When `chunks_<n>` was written, seconds since the Unix epoch (by the remote's clock).
    pub began_unix: i64,
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

    /// The key of `node`'s chunk object `hash`.
    pub(crate) fn chunk_key(&self, node: &str, hash: &Hash) -> Path {
        self.node_prefix(node).join(CHUNKS).join(to_hex(hash))
    }

    /// The key of `node`'s chunk sweep record `n` (`done`: its end).
    pub(crate) fn chunk_sweep_key(&self, node: &str, n: u64, done: bool) -> Path {
        let name = if done {
            format!("chunks_{n}.done")
        } else {
            format!("chunks_{n}")
        };
        self.node_prefix(node).join(GC).join(name)
    }

    /// The key of a gc floor record of `node` at `file`.
    pub(crate) fn gc_mark_key(&self, node: &str, file: &str) -> Path {
        self.node_prefix(node).join(GC).join(file)
    }

    /// Lists the remote, or only `node`'s objects, sorted into the layout. Names that are not
    /// ours are left out (a node name no shipper writes is logged, escaped).
    pub(crate) async fn listing(&self, node: Option<&str>) -> Result<Listing, ShipError> {
        let under = match node {
            Some(node) => self.node_prefix(node),
            None => self.index_key().parts().take(self.base()).collect(),
        };
        self.listing_under(under).await
    }

    /// What a listing of `node`'s directory `dir` (`gc`, `chunks`) shows: its part of the
    /// node's objects, the rest empty. Listing one part at a time orders the reads, as the
    /// chunk sweep protocol needs (`chunk_gc.rs`).
    pub(crate) async fn node_part(&self, node: &str, dir: &str) -> Result<NodeObjects, ShipError> {
        let mut listing = self.listing_under(self.node_prefix(node).join(dir)).await?;
        Ok(listing.nodes.remove(node).unwrap_or_default())
    }

    /// The prefix's parts: the legacy index's key less its last part.
    fn base(&self) -> usize {
        self.index_key().parts().count().saturating_sub(1)
    }

    /// Lists the keys below `under`, sorted into the layout.
    async fn listing_under(&self, under: Path) -> Result<Listing, ShipError> {
        let base = self.base();
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
        [dir, file] if dir == CHUNKS => {
            if let Some(hash) = chunk_name(file) {
                let n = listing.nodes.entry(node.clone()).or_insert_with(objects);
                n.chunks.insert(hash, meta.size);
            }
        }
        [dir, file] if dir == GC && sweep_mark(file).is_some() => {
            if let Some((number, done)) = sweep_mark(file) {
                let n = listing.nodes.entry(node.clone()).or_insert_with(objects);
                let mark = n.chunk_sweeps.entry(number).or_default();
                if done {
                    mark.done = true;
                } else {
                    mark.began_unix = meta.last_modified.timestamp();
                }
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
