//! The index formats: a node's own index (format 2, `<prefix>/<node>/index.json`), written
//! only by that node's shipper (or, on its behalf, by `remote repair`), and the legacy shared
//! index (format 1, `<prefix>/index.json`), which this version reads once to migrate from and
//! never writes. Both are hostile input to a reader: at most [`INDEX_MAX_BYTES`], closed JSON
//! objects (an unknown field makes them unusable), their format tag checked.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use snapseal_persist::internals::format::Header;
use snapseal_persist::{to_hex, SnapshotName};

/// The legacy shared index's format tag.
pub const LEGACY_FORMAT: u32 = 1;

/// A node index's format tag.
pub const NODE_INDEX_FORMAT: u32 = 2;

/// The largest index object read (a hostile bucket cannot make a reader allocate more).
pub const INDEX_MAX_BYTES: u64 = 16 << 20;

/// The longest writer id accepted (`repair-` and 32 hex digits is the longest written).
const WRITER_MAX_LEN: usize = 64;

/// One node's index (format 2): the snapshots its shipper confirmed, and who wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeIndex {
    /// [`NODE_INDEX_FORMAT`].
    pub format: u32,
    /// The node it belongs to (must be the directory it is found in).
    pub node: String,
    /// The writer's id: a shipper's instance id (32 hex digits), or `repair-` and 32 hex
    /// digits for `remote repair`. A shipper that finds another id than its own stops.
    pub writer: String,
    /// Confirmed snapshots, oldest first by (idx, evidence_idx); the newest `index_keep`.
    pub snapshots: Vec<IndexEntry>,
}

impl NodeIndex {
    /// An empty index of `node` written by `writer`.
    pub fn new(node: &str, writer: &str) -> Self {
        NodeIndex {
            format: NODE_INDEX_FORMAT,
            node: node.to_string(),
            writer: writer.to_string(),
            snapshots: Vec::new(),
        }
    }

    /// Parses the index object found in `node`'s directory; anything but this format, or an
    /// index of another node, is refused (the reason says which).
    pub fn decode(bytes: &[u8], node: &str) -> Result<NodeIndex, String> {
        let index: NodeIndex = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if index.format != NODE_INDEX_FORMAT {
            return Err(format!(
                "format {} (a node index is format {NODE_INDEX_FORMAT})",
                index.format
            ));
        }
        if index.node != node {
            return Err(format!("it is the index of node \"{}\"", index.node));
        }
        if index.writer.is_empty()
            || index.writer.len() > WRITER_MAX_LEN
            || !index
                .writer
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("its writer id is not one snapseal writes".into());
        }
        Ok(index)
    }

    /// The object's bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data with string keys cannot fail to serialise; an empty object would be
        // refused on read, never silently accepted.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Whether it names `file`.
    pub fn names(&self, file: &str) -> bool {
        self.snapshots.iter().any(|e| e.name == file)
    }

    /// Adds (or replaces) `entry`, keeps the order, and drops the oldest beyond `keep`.
    pub(crate) fn add(&mut self, entry: IndexEntry, keep: usize) {
        self.snapshots.retain(|e| e.name != entry.name);
        self.snapshots.push(entry);
        self.snapshots
            .sort_by_key(|e| (e.claims.idx, e.claims.evidence_idx));
        let excess = self.snapshots.len().saturating_sub(keep.max(1));
        self.snapshots.drain(..excess);
    }
}

/// The legacy shared index (format 1), read to migrate from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyIndex {
    /// [`LEGACY_FORMAT`].
    pub format: u32,
    /// Per node, by node name.
    pub nodes: BTreeMap<String, LegacyNode>,
}

/// One node's part of the legacy index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyNode {
    /// Shipped and confirmed snapshots, oldest first.
    pub snapshots: Vec<IndexEntry>,
    /// Committed file names that remote gc never deletes.
    #[serde(default)]
    pub holds: BTreeSet<String>,
}

impl LegacyIndex {
    /// Parses a legacy index object; anything but format 1 is refused.
    pub fn decode(bytes: &[u8]) -> Result<LegacyIndex, String> {
        let index: LegacyIndex = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if index.format != LEGACY_FORMAT {
            return Err(format!(
                "format {} (the legacy index is format {LEGACY_FORMAT})",
                index.format
            ));
        }
        Ok(index)
    }

    /// The object's bytes (tests write legacy remotes with it).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// One shipped snapshot: where it is, what the remote holds, and what it claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// The committed file name (also the last part of the object key).
    pub name: String,
    /// Size of the whole file in bytes.
    pub size: u64,
    /// BLAKE3 of the whole file, hex: what the remote was confirmed to hold.
    pub blake3: String,
    /// The header's claims (format v2): what the receipt binds.
    pub claims: EntryClaims,
    /// When it was confirmed, seconds since the Unix epoch.
    pub shipped_unix: u64,
}

impl IndexEntry {
    /// Its committed snapshot name, when it spells one exactly.
    pub(crate) fn snapshot(&self) -> Option<SnapshotName> {
        crate::layout::committed(&self.name)
    }
}

/// The claims of a snapshot's header, as the index records them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryClaims {
    /// Snapshot index.
    pub idx: u64,
    /// Evidence index.
    pub evidence_idx: u64,
    /// Header flags (bits).
    pub flags: u32,
    /// Stored body length.
    pub body_len: u64,
    /// Decoded body length.
    pub raw_len: u64,
    /// BLAKE3 of the stored body, hex.
    pub body_digest: String,
}

impl EntryClaims {
    /// The claims of `header`.
    pub fn of(header: &Header) -> Self {
        EntryClaims {
            idx: header.idx,
            evidence_idx: header.evidence_idx,
            flags: header.flags.bits(),
            body_len: header.body_len,
            raw_len: header.raw_len,
            body_digest: to_hex(&header.body_digest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> IndexEntry {
        IndexEntry {
            name: "snapshot_1_2.committed".into(),
            size: 10,
            blake3: "00".repeat(32),
            claims: EntryClaims {
                idx: 1,
                evidence_idx: 2,
                flags: 0,
                body_len: 1,
                raw_len: 1,
                body_digest: "11".repeat(32),
            },
            shipped_unix: 5,
        }
    }

    #[test]
    fn a_node_index_round_trips_and_a_foreign_format_node_or_writer_is_refused() {
        let mut index = NodeIndex::new("a", "0123456789abcdef0123456789abcdef");
        index.add(entry(), 64);
        assert_eq!(NodeIndex::decode(&index.encode(), "a"), Ok(index.clone()));
        assert!(NodeIndex::decode(&index.encode(), "b").is_err());
        let mut other = index.clone();
        other.writer = "\u{1b}[31m".into();
        assert!(NodeIndex::decode(&other.encode(), "a").is_err());
        index.format = LEGACY_FORMAT;
        assert!(NodeIndex::decode(&index.encode(), "a").is_err());
        assert!(NodeIndex::decode(b"junk", "a").is_err());
    }

    #[test]
    fn a_legacy_index_round_trips_and_a_node_index_is_not_one() {
        let mut legacy = LegacyIndex {
            format: LEGACY_FORMAT,
            ..LegacyIndex::default()
        };
        legacy
            .nodes
            .entry("a".into())
            .or_default()
            .snapshots
            .push(entry());
        assert_eq!(LegacyIndex::decode(&legacy.encode()), Ok(legacy));
        let node = NodeIndex::new("a", "00");
        assert!(LegacyIndex::decode(&node.encode()).is_err());
    }

    #[test]
    fn adding_keeps_the_order_and_the_newest_only() {
        let mut index = NodeIndex::new("a", "00");
        for i in [3u64, 1, 2] {
            let mut e = entry();
            e.name = format!("snapshot_{i}_{}.committed", i + 1);
            e.claims.idx = i;
            e.claims.evidence_idx = i + 1;
            index.add(e, 2);
        }
        let names: Vec<&str> = index.snapshots.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["snapshot_2_3.committed", "snapshot_3_4.committed"]);
    }
}
