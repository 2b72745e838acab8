//! The remote index: one small JSON object naming the newest shipped snapshots of each node
//! with their claims, and the remote holds, so that a reader never lists the bucket.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use snapseal_persist::internals::format::Header;
use snapseal_persist::{to_hex, SnapshotName};

/// The index format this version writes and reads.
pub const INDEX_FORMAT: u32 = 1;

/// The largest index object read (a hostile bucket cannot make a reader allocate more).
pub const INDEX_MAX_BYTES: u64 = 16 << 20;

/// The whole index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// [`INDEX_FORMAT`].
    pub format: u32,
    /// Per node, by node name.
    pub nodes: BTreeMap<String, NodeIndex>,
}

/// One node's part of the index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeIndex {
    /// Shipped and confirmed snapshots, oldest first; the newest `index_keep` only.
    pub snapshots: Vec<IndexEntry>,
    /// Committed file names that remote gc never deletes.
    #[serde(default)]
    pub holds: BTreeSet<String>,
}

impl NodeIndex {
    /// The newest shipped snapshot's name.
    pub fn newest(&self) -> Option<SnapshotName> {
        self.snapshots
            .iter()
            .filter_map(|e| SnapshotName::parse(&e.name))
            .max_by_key(|n| (n.idx, n.evidence_idx))
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

impl Index {
    /// Parses an index object; anything but this format is refused.
    pub fn decode(bytes: &[u8]) -> Result<Index, String> {
        let index: Index = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if index.format != INDEX_FORMAT {
            return Err(format!(
                "format {} (this version reads {INDEX_FORMAT})",
                index.format
            ));
        }
        Ok(index)
    }

    /// The object's bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail; an empty object would be
        // refused on read, never silently accepted.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Every entry of every node, newest first (by idx, then evidence_idx), with its node.
    pub fn newest_first(&self) -> Vec<(&str, &IndexEntry)> {
        let mut all: Vec<(&str, &IndexEntry)> = self
            .nodes
            .iter()
            .flat_map(|(node, n)| n.snapshots.iter().map(move |e| (node.as_str(), e)))
            .collect();
        all.sort_by_key(|(_, e)| std::cmp::Reverse((e.claims.idx, e.claims.evidence_idx)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_round_trips_and_a_foreign_format_is_refused() {
        let mut index = Index {
            format: INDEX_FORMAT,
            ..Index::default()
        };
        index
            .nodes
            .entry("a".into())
            .or_default()
            .snapshots
            .push(IndexEntry {
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
            });
        assert_eq!(Index::decode(&index.encode()), Ok(index.clone()));
        index.format = 99;
        assert!(Index::decode(&index.encode()).is_err());
        assert!(Index::decode(b"junk").is_err());
    }
}
