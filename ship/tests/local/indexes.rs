//! Reading what the shipper wrote on a `file://` remote, for the assertions of the local
//! tests: a node's index, and the names it gives.

use std::path::Path;

use snapseal_ship::index::NodeIndex;
use snapseal_ship::INDEX_OBJECT;

/// `node`'s index on the remote at `remote_dir`; `None` when there is none.
pub(crate) fn node_index(remote_dir: &Path, node: &str) -> Option<NodeIndex> {
    let path = remote_dir.join(node).join(INDEX_OBJECT);
    let bytes = std::fs::read(path).ok()?;
    Some(NodeIndex::decode(&bytes, node).unwrap())
}

/// The names `node`'s index gives, oldest first (none without an index).
pub(crate) fn indexed(remote_dir: &Path, node: &str) -> Vec<String> {
    node_index(remote_dir, node)
        .map(|i| i.snapshots.into_iter().map(|e| e.name).collect())
        .unwrap_or_default()
}
