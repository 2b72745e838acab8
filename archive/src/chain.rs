//! What ties artifacts of one ledger together, checked the same way by export and import.
//!
//! - **Chunk to chunk**: each verified chunk has the digest of the Merkle frontier before its
//!   first entry and after its last ([`ChunkLinks`](crate::ChunkLinks)); where one chunk ends at `i` and another
//!   starts at `i + 1`, the second must start from the frontier the first ends with.
//! - **Snapshot to chunks**: a built-in (Merkle) receipt proves the root the ledger signed at
//!   its `sig_idx`. The chunk holding `sig_idx` recomputes that root from its own start
//!   frontier and entries, so it must carry a signature tx at `sig_idx` signing exactly the
//!   receipt's root. Through the frontier links, that binds every chunk contiguous with it,
//!   back to the one holding `snapshot_idx + 1`: a chunk of another ledger cannot reproduce
//!   the root without a hash collision. A signed-statement receipt carries no root; only its
//!   index is checked (the commit index must reach it).

use std::collections::BTreeMap;

use crate::snapshot::SnapshotProof;
use crate::source::{CheckedChunk, ChunkRef};

/// Where a chunk in a chain check comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The archive being written or read.
    Archive,
    /// The directory an import writes into (already there before it).
    Dir,
}

/// Chunks by `(start, end)`, with their links and origin.
pub(crate) type View = BTreeMap<(u64, u64), (CheckedChunk, Origin)>;

/// A chain check failed at `chunk` (its file name).
#[derive(Debug)]
pub(crate) struct Broken {
    pub(crate) chunk: String,
    pub(crate) why: String,
}

fn name((start, end): (u64, u64)) -> String {
    ChunkRef { start, end, len: 0 }.file_name()
}

/// Chunks do not overlap, and every two adjacent ones of which at least one comes from the
/// archive continue one another's frontier.
pub(crate) fn check_links(view: &View) -> Result<(), Broken> {
    let chunks: Vec<_> = view.iter().collect();
    for w in chunks.windows(2) {
        let ((p, (before, p_origin)), (range, (this, origin))) = (w[0], w[1]);
        if range.0 <= p.1 {
            return Err(Broken {
                chunk: name(*range),
                why: format!("overlaps {}", name(*p)),
            });
        }
        let adjacent = p.1.checked_add(1) == Some(range.0);
        let ours = *p_origin == Origin::Archive || *origin == Origin::Archive;
        if adjacent && ours && before.links.end != this.links.start {
            return Err(Broken {
                chunk: name(*range),
                why: format!(
                    "does not continue {}: it starts from another Merkle frontier than \
                     that one ends with (another ledger's chunk)",
                    name(*p)
                ),
            });
        }
    }
    Ok(())
}

/// The chunk of `view` holding index `idx`.
fn holding(view: &View, idx: u64) -> Option<(&(u64, u64), &CheckedChunk)> {
    view.range(..=(idx, u64::MAX))
        .next_back()
        .filter(|(r, _)| r.0 <= idx && idx <= r.1)
        .map(|(r, (l, _))| (r, l))
}

/// Checks `proof` against the chunk of `view` holding its `sig_idx`. `Ok(false)` when there
/// is nothing to check it against (no root, or no such chunk).
pub(crate) fn check_anchor(view: &View, proof: &SnapshotProof) -> Result<bool, Broken> {
    let Some(root) = proof.root else {
        return Ok(false);
    };
    let Some((range, links)) = holding(view, proof.sig_idx) else {
        return Ok(false);
    };
    match links.signed.iter().find(|(i, _)| *i == proof.sig_idx) {
        Some((_, r)) if *r == root => Ok(true),
        found => Err(Broken {
            chunk: name(*range),
            why: format!(
                "{} at {}, while the receipt of {} proves the ledger signed another root \
                 there: the chunk is not of that snapshot's ledger",
                if found.is_some() {
                    "signs another root"
                } else {
                    "has no signature tx"
                },
                proof.sig_idx,
                proof.name
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapseal_persist::{FileState, SnapshotName};

    fn links(start: u8, end: u8, signed: Vec<(u64, u8)>) -> CheckedChunk {
        CheckedChunk {
            links: crate::ChunkLinks {
                start: [start; 32],
                end: [end; 32],
            },
            signed: signed.into_iter().map(|(i, r)| (i, [r; 32])).collect(),
        }
    }

    fn proof(sig_idx: u64, root: u8) -> SnapshotProof {
        SnapshotProof {
            name: SnapshotName {
                idx: 5,
                evidence_idx: 6,
                state: FileState::Committed,
            },
            sig_idx,
            root: Some([root; 32]),
            chunked: false,
        }
    }

    #[test]
    fn adjacent_chunks_must_share_a_frontier_and_a_receipt_root_must_be_signed_where_it_says() {
        let mut view = View::new();
        view.insert((1, 10), (links(0, 1, vec![(10, 7)]), Origin::Archive));
        view.insert((11, 20), (links(1, 2, vec![(20, 8)]), Origin::Archive));
        view.insert((30, 40), (links(9, 3, vec![]), Origin::Archive));
        assert!(check_links(&view).is_ok(), "a gap links nothing");
        assert_eq!(check_anchor(&view, &proof(10, 7)).ok(), Some(true));
        assert_eq!(check_anchor(&view, &proof(25, 7)).ok(), Some(false));
        assert!(check_anchor(&view, &proof(10, 9)).is_err(), "another root");
        assert!(
            check_anchor(&view, &proof(12, 8)).is_err(),
            "no signature there"
        );
        view.insert((21, 29), (links(5, 9, vec![]), Origin::Archive));
        let e = check_links(&view).unwrap_err();
        assert_eq!(e.chunk, "ledger_21-29.committed");
        view.insert((21, 29), (links(5, 9, vec![]), Origin::Dir));
        view.insert((11, 20), (links(1, 2, vec![]), Origin::Dir));
        assert!(
            check_links(&view).is_ok(),
            "two chunks of the directory are its business"
        );
    }
}
