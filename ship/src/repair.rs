//! `remote repair`: rewrites node indexes from what can be proved.
//!
//! For each node (or one), every snapshot object a listing shows is read whole and verified —
//! its header (it decodes, names the object's indices, gives the object's size), its receipt
//! (the header's digest, and a proof of the header's claims under a trusted key), its body
//! (the header's body digest), and for a chunked snapshot every chunk object its list names
//! (fetched and checked against its hash) — and the BLAKE3 of the whole object is computed on the way. The
//! node's index is then rewritten to name exactly the objects that verified; each one that did
//! not is reported with the reason and left where it is. Holds are never lost: hold objects
//! are not touched, and holds found only in the legacy index are written as hold objects
//! first. Once every node is migrated, the legacy index is deleted.
//!
//! Repair is the one writer of a node's index besides its shipper, so it must not run while
//! that node's shipper runs: it writes its own writer id (`repair-…`), and a shipper that
//! finds it stops with [`ShipError::NodeInUse`] rather than write over it (restarted, the
//! shipper takes the node over from the repaired index).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures::StreamExt;
use object_store::path::Path;
use snapseal_persist::internals::format::HEADER_LEN;
use snapseal_persist::receipt::ReceiptVerifier;
use snapseal_persist::{to_hex, Hash, SnapshotName};
use tracing::{info, warn};

use crate::error::{describe, ShipError};
use crate::holds::migrate_legacy_holds;
use crate::identity::repair_writer_id;
use crate::index::{EntryClaims, IndexEntry, LegacyIndex, NodeIndex};
use crate::layout::{order, Listed};
use crate::local_file::ChunkList;
use crate::remote::{Remote, READ_IN_FLIGHT, READ_PIECE};
use crate::remote_chunks::read_list;
use crate::restore::{about_object, check_name, check_receipt, MAX_RECEIPT_BYTES};
use crate::restore_chunks::{fetch_chunk, FETCH_IN_FLIGHT};
use crate::shipper::check_node;
use crate::upload::hash_piece;

/// What a repair covers.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RepairOptions {
    /// Only this node; `None`: every node, then the legacy index is deleted.
    pub node: Option<String>,
    /// The largest object verified; a larger one is dropped by its size.
    pub max_file_bytes: u64,
    /// Delete a legacy index that is unusable (its holds cannot be read) instead of keeping
    /// it and saying so.
    pub discard_unusable_legacy: bool,
}

impl Default for RepairOptions {
    fn default() -> Self {
        RepairOptions {
            node: None,
            max_file_bytes: 64 << 30,
            discard_unusable_legacy: false,
        }
    }
}

/// Chained setters, one per field (the struct is `#[non_exhaustive]`, so it is built from
/// [`RepairOptions::default`], never by a literal; assigning a field works as well).
///
/// ```
/// use snapseal_ship::repair::RepairOptions;
///
/// let options = RepairOptions::default()
///     .with_node("node-1")
///     .with_max_file_bytes(1 << 30)
///     .with_discard_unusable_legacy(true);
/// assert_eq!(options.node.as_deref(), Some("node-1"));
/// assert_eq!(options.max_file_bytes, 1 << 30);
/// assert!(options.discard_unusable_legacy);
/// ```
impl RepairOptions {
    /// Sets [`node`](Self::node): only this node.
    pub fn with_node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Sets [`max_file_bytes`](Self::max_file_bytes).
    pub fn with_max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes;
        self
    }

    /// Sets [`discard_unusable_legacy`](Self::discard_unusable_legacy).
    pub fn with_discard_unusable_legacy(mut self, discard: bool) -> Self {
        self.discard_unusable_legacy = discard;
        self
    }
}

/// A snapshot object that did not verify: not named by the rewritten index.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dropped {
    /// Its name.
    pub name: SnapshotName,
    /// Why it did not verify.
    pub reason: String,
}

/// What repair did to one node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeRepair {
    /// The node.
    pub node: String,
    /// What the index it replaced was: `missing`, `unusable: …`, or `written by <id>`.
    pub previous: String,
    /// Objects that verified, oldest first: the rewritten index names exactly these.
    pub kept: Vec<SnapshotName>,
    /// Objects that did not verify.
    pub dropped: Vec<Dropped>,
    /// The node's holds (hold objects, after the migration).
    pub holds: Vec<SnapshotName>,
    /// Of those, the ones written now from the legacy index.
    pub holds_migrated: Vec<SnapshotName>,
}

/// What became of the legacy shared index.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegacyRepair {
    /// There was none.
    Absent,
    /// Migrated and deleted.
    Deleted,
    /// Kept: a repair of one node leaves it for the others.
    KeptForOtherNodes,
    /// Unusable (the reason): its holds could not be read. Deleted only when asked.
    Unusable {
        /// What is wrong with it.
        reason: String,
        /// Whether it was deleted.
        deleted: bool,
    },
}

/// What a repair did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// Per node, by name.
    pub nodes: Vec<NodeRepair>,
    /// The legacy index.
    pub legacy: LegacyRepair,
}

/// Rewrites node indexes from a listing and a full verification of every snapshot object
/// with `verifier`, keeping every hold; see the module docs. Must not run while a shipper of
/// a node it repairs runs (that shipper stops when it sees the repair's writer id).
///
/// Blocks the calling thread: [`repair_async`] run to completion on the remote's private
/// runtime.
pub fn repair(
    remote: &Remote,
    verifier: &dyn ReceiptVerifier,
    opts: &RepairOptions,
) -> Result<RepairReport, ShipError> {
    remote.block_on(repair_async(remote, verifier, opts))
}

/// [`repair`] on the caller's tokio runtime.
pub async fn repair_async(
    remote: &Remote,
    verifier: &dyn ReceiptVerifier,
    opts: &RepairOptions,
) -> Result<RepairReport, ShipError> {
    if let Some(node) = &opts.node {
        check_node(remote.url(), node)?;
    }
    let listing = remote.listing(None).await?;
    let (legacy, legacy_unusable) = match remote.read_legacy_index().await {
        Ok(legacy) => (legacy, None),
        Err(ShipError::Index { reason, .. }) => (None, Some(reason)),
        Err(e) => return Err(e),
    };
    let mut nodes: BTreeSet<String> = listing.nodes.keys().cloned().collect();
    nodes.extend(legacy.iter().flat_map(|l| l.nodes.keys().cloned()));
    nodes.retain(|n| opts.node.as_deref().is_none_or(|only| only == n));
    let writer = repair_writer_id();
    let mut report = RepairReport {
        nodes: Vec::new(),
        legacy: LegacyRepair::Absent,
    };
    let empty = Default::default();
    for node in nodes {
        // A legacy index may name nodes no shipper could have written: not ours.
        if check_node(remote.url(), &node).is_err() {
            continue;
        }
        let objects = listing.nodes.get(&node).unwrap_or(&empty);
        let repaired = repair_node(
            remote,
            verifier,
            opts,
            &node,
            &objects.snapshots,
            &objects.holds,
            legacy.as_ref(),
            &writer,
        )
        .await?;
        report.nodes.push(repaired);
    }
    report.legacy = match (legacy_unusable, listing.legacy_index || legacy.is_some()) {
        (Some(reason), _) => {
            let deleted = opts.discard_unusable_legacy;
            if deleted {
                remote.delete(&remote.index_key()).await?;
            }
            warn!(remote = %remote.url(), reason = %reason, deleted, "remote repair: the legacy index is unusable: its holds could not be read");
            LegacyRepair::Unusable { reason, deleted }
        }
        (None, false) => LegacyRepair::Absent,
        (None, true) if opts.node.is_some() => LegacyRepair::KeptForOtherNodes,
        (None, true) => {
            remote.delete(&remote.index_key()).await?;
            info!(remote = %remote.url(), "remote repair: every node migrated: deleted the legacy index");
            LegacyRepair::Deleted
        }
    };
    Ok(report)
}

/// Repairs one node: its legacy holds become hold objects, every snapshot object is verified,
/// and its index is rewritten to name those that verified.
#[allow(clippy::too_many_arguments)]
async fn repair_node(
    remote: &Remote,
    verifier: &dyn ReceiptVerifier,
    opts: &RepairOptions,
    node: &str,
    snapshots: &BTreeMap<SnapshotName, Listed>,
    holds: &BTreeSet<SnapshotName>,
    legacy: Option<&LegacyIndex>,
    writer: &str,
) -> Result<NodeRepair, ShipError> {
    let legacy_part = legacy.and_then(|l| l.nodes.get(node));
    let holds_migrated = match legacy_part {
        Some(part) => migrate_legacy_holds(remote, node, &part.holds).await?,
        None => Vec::new(),
    };
    let (previous, old_entries) = match remote.read_node_index(node).await {
        Ok(Some(index)) => (format!("written by {}", index.writer), index.snapshots),
        Ok(None) => (
            "missing".to_string(),
            legacy_part.map(|p| p.snapshots.clone()).unwrap_or_default(),
        ),
        Err(e @ ShipError::Index { .. }) => (format!("unusable: {}", describe(&e)), Vec::new()),
        Err(e) => return Err(e),
    };
    // When each was shipped is kept from the entry that named it, where there was one.
    let shipped: BTreeMap<&str, u64> = old_entries
        .iter()
        .map(|e| (e.name.as_str(), e.shipped_unix))
        .collect();
    let mut index = NodeIndex::new(node, writer);
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (name, listed) in snapshots {
        let key = remote.key(node, &name.file_name());
        match verify_object(
            remote,
            verifier,
            (node, &key),
            name,
            listed.size,
            opts.max_file_bytes,
        )
        .await
        {
            Ok(mut entry) => {
                entry.shipped_unix = shipped
                    .get(entry.name.as_str())
                    .copied()
                    .unwrap_or(u64::try_from(listed.modified_unix).unwrap_or(0));
                index.add(entry, usize::MAX);
                kept.push(*name);
            }
            Err(ShipError::Refused { reason, .. }) => {
                warn!(object = %key, reason = %reason, "remote repair: does not verify: not indexed");
                dropped.push(Dropped {
                    name: *name,
                    reason,
                });
            }
            Err(e) => return Err(e),
        }
    }
    kept.sort_by_key(order);
    remote.write_node_index(&index).await?;
    info!(remote = %remote.url(), node, kept = kept.len(), dropped = dropped.len(), "remote repair: rewrote the node's index");
    let mut all_holds: BTreeSet<SnapshotName> = holds.clone();
    all_holds.extend(holds_migrated.iter().copied());
    let mut holds: Vec<SnapshotName> = all_holds.into_iter().collect();
    holds.sort_by_key(order);
    Ok(NodeRepair {
        node: node.to_string(),
        previous,
        kept,
        dropped,
        holds,
        holds_migrated,
    })
}

/// Fetches every distinct chunk of a chunked snapshot's `list` from `node`'s chunk objects
/// and checks each against its hash (8 in flight); one missing or damaged refuses the
/// snapshot object at `key`, naming the chunk.
async fn check_chunks(
    remote: &Remote,
    node: &str,
    key: &Path,
    list: &ChunkList,
) -> Result<(), ShipError> {
    let mut seen = HashSet::new();
    let distinct: Vec<(u32, Hash)> = list
        .iter()
        .filter(|(_, h)| seen.insert(*h))
        .copied()
        .collect();
    let sources = [remote];
    let mut fetches = futures::stream::iter(distinct)
        .map(|(len, hash)| fetch_chunk(&sources, node, key, hash, len))
        .buffer_unordered(FETCH_IN_FLIGHT);
    while let Some(fetched) = fetches.next().await {
        fetched?;
    }
    Ok(())
}

/// Reads the object at `key` whole and verifies it: header, receipt, body digest (and for a
/// chunked snapshot, every chunk its list names against its hash); returns its
/// index entry. An object that does not verify is [`ShipError::Refused`] (with the reason);
/// any other error is the remote's.
async fn verify_object(
    remote: &Remote,
    verifier: &dyn ReceiptVerifier,
    (node, key): (&str, &Path),
    name: &SnapshotName,
    size: u64,
    max: u64,
) -> Result<IndexEntry, ShipError> {
    let refuse = |reason: String| ShipError::Refused {
        object: key.to_string(),
        reason,
    };
    if size > max {
        return Err(refuse(format!("{size} bytes, more than the limit {max}")));
    }
    if size < HEADER_LEN as u64 {
        return Err(refuse(format!("{size} bytes: shorter than a header")));
    }
    let head = remote
        .read_range(key, 0..HEADER_LEN as u64)
        .await
        .map_err(about_object)?;
    let header = check_name(&head, name).map_err(refuse)?;
    if header.file_len().ok() != Some(size) {
        return Err(refuse(format!(
            "the header gives {} bytes, the object has {size}",
            header
                .file_len()
                .map_or_else(|e| e.to_string(), |n| n.to_string())
        )));
    }
    if !(1..=MAX_RECEIPT_BYTES).contains(&header.receipt_len) {
        return Err(refuse(format!(
            "a {} byte receipt (1 to {MAX_RECEIPT_BYTES} accepted)",
            header.receipt_len
        )));
    }
    let receipt = remote
        .read_range(key, size - header.receipt_len..size)
        .await
        .map_err(about_object)?;
    check_receipt(&header, &receipt, verifier).map_err(refuse)?;
    // The whole object: its BLAKE3, and the body's against the header's digest.
    let body = HEADER_LEN as u64..HEADER_LEN as u64 + header.body_len;
    let mut whole = blake3::Hasher::new();
    let mut body_hash = blake3::Hasher::new();
    let mut at = 0u64;
    let mut pieces = std::pin::pin!(remote.pieces(key, size, READ_PIECE, READ_IN_FLIGHT));
    while let Some(piece) = pieces.next().await {
        let piece = piece.map_err(about_object)?;
        if at < HEADER_LEN as u64 && !piece.starts_with(&head[at as usize..]) {
            return Err(refuse("its header changed while it was read".into()));
        }
        hash_piece(&mut whole, &piece);
        let end = at + piece.len() as u64;
        let from = body.start.max(at).min(end);
        let to = body.end.min(end).max(from);
        hash_piece(
            &mut body_hash,
            &piece[(from - at) as usize..(to - at) as usize],
        );
        at = end;
    }
    if at != size {
        return Err(refuse(format!("{at} bytes read, the listing says {size}")));
    }
    if body_hash.finalize().as_bytes() != &header.body_digest {
        return Err(refuse(
            "the body does not match the header's body digest".into(),
        ));
    }
    if let Some(list) = read_list(remote, key, &header)
        .await
        .map_err(about_object)?
    {
        check_chunks(remote, node, key, &list).await?;
    }
    Ok(IndexEntry {
        name: name.file_name(),
        size,
        blake3: to_hex(whole.finalize().as_bytes()),
        claims: EntryClaims::of(&header),
        shipped_unix: 0,
    })
}
