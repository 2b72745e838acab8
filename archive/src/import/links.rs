//! Step 5 of an import (docs/ARCHIVE.md): the chain between what was staged, the snapshots'
//! receipts and the chunks the ledger directory already holds ([`crate::chain`]).

use std::collections::BTreeSet;
use std::io;

use snapseal_persist::internals::fs::{DirHandle, Untrusted};
use snapseal_persist::internals::Escaped;

use super::stage::{untrusted_read, ChunkFate, Stage};
use super::{chunk_expect, ImportError, ImportOptions};
use crate::chain::{check_anchor, check_links, Broken, Origin, View};
use crate::container::BUF;
use crate::manifest::{Level, Manifest};
use crate::snapshot::SnapshotProof;
use crate::source::{CheckedChunk, ChunkCheckError, ChunkRef, ChunkVerifier};

/// Reads and verifies a chunk the ledger directory holds.
pub(super) fn dir_chunk(
    ledger: &dyn DirHandle,
    chunks: &dyn ChunkVerifier,
    (start, end): (u64, u64),
) -> Result<Option<CheckedChunk>, ImportError> {
    let name = ChunkRef { start, end, len: 0 }.file_name();
    let Some(file) =
        Untrusted::open_in(ledger, &name, chunk_expect()).map_err(ImportError::file)?
    else {
        return Ok(None);
    };
    let mut src = io::BufReader::with_capacity(BUF, file.reader());
    match chunks.verify_chunk(&mut src, file.len(), start, end) {
        Ok(checked) => Ok(Some(checked)),
        Err(ChunkCheckError::Invalid(why)) => Err(ImportError::Conflict(format!(
            "{}: the directory's own chunk does not verify ({why}); nothing can chain with it",
            Escaped::path(file.path())
        ))),
        Err(ChunkCheckError::Read(e)) => Err(untrusted_read(&file, e)),
    }
}

/// Step 2: the archive's chunks chain with each other, with the snapshots' receipts and with
/// the directory's own chunks around the ones this import adds.
pub(super) fn cross_check(
    stage: &Stage<'_>,
    m: &Manifest,
    chunks: &dyn ChunkVerifier,
    existing: &BTreeSet<(u64, u64)>,
    opts: &ImportOptions,
) -> Result<(), ImportError> {
    let proofs: Vec<&SnapshotProof> = stage.snapshots.iter().map(|s| &s.proof).collect();
    let newest = proofs
        .iter()
        .find(|p| p.name.idx == m.snapshot_idx)
        .ok_or_else(|| ImportError::Malformed("no snapshot at snapshot_idx".into()))?;
    if m.commit_idx < newest.sig_idx {
        return Err(ImportError::Malformed(format!(
            "commit_idx {} is below the index {} the newest snapshot's receipt proves committed",
            m.commit_idx, newest.sig_idx
        )));
    }
    let mut view = View::new();
    for c in &stage.chunks {
        if !matches!(c.fate, ChunkFate::Skipped) {
            view.insert(c.range, (c.checked.clone(), Origin::Archive));
        }
    }
    // The directory's chunks that the added ones touch, and those holding a receipt's index.
    let mut consult = BTreeSet::new();
    for c in stage.chunks.iter().filter(|c| c.fate.is_new()) {
        let (s, e) = c.range;
        consult.extend(existing.iter().filter(|r| r.1.checked_add(1) == Some(s)));
        consult.extend(existing.iter().filter(|r| e.checked_add(1) == Some(r.0)));
    }
    for p in &proofs {
        consult.extend(
            existing
                .iter()
                .filter(|r| r.0 <= p.sig_idx && p.sig_idx <= r.1),
        );
    }
    let wanted: Vec<u64> = proofs
        .iter()
        .filter(|p| p.root.is_some())
        .map(|p| p.sig_idx)
        .collect();
    for range in consult {
        if view.contains_key(&range) {
            continue;
        }
        if let Some(mut checked) = dir_chunk(stage.target.ledger.fd(), chunks, range)? {
            checked.signed.retain(|(i, _)| wanted.contains(i));
            view.insert(range, (checked, Origin::Dir));
        }
    }
    let refused = |b: Broken| ImportError::Refused {
        path: format!("ledger/{}", b.chunk),
        why: b.why,
    };
    check_links(&view).map_err(refused)?;
    for p in &proofs {
        let anchored = check_anchor(&view, p).map_err(refused)?;
        let required = opts.level == Level::Replay && p.name.idx == m.snapshot_idx;
        if required && p.root.is_some() && !anchored {
            return Err(ImportError::Refused {
                path: format!("snapshots/{}", p.name.file_name()),
                why: format!(
                    "no chunk holds the index {} its receipt proves; it cannot be tied to the \
                     archive's ledger",
                    p.sig_idx
                ),
            });
        }
    }
    // A chunk added next to a gap while the directory holds chunks beyond that gap would
    // chain with nothing there: another ledger's chunk could sit in it unnoticed.
    let archived: BTreeSet<(u64, u64)> = stage.chunks.iter().map(|c| c.range).collect();
    let foreign: Vec<&(u64, u64)> = existing.iter().filter(|r| !archived.contains(r)).collect();
    for c in stage.chunks.iter().filter(|c| c.fate.is_new()) {
        let (s, e) = c.range;
        let before = s > 1 && !view.keys().any(|r| r.1.checked_add(1) == Some(s));
        let after = !view.keys().any(|r| e.checked_add(1) == Some(r.0));
        let side = if before && foreign.iter().any(|r| r.1 < s) {
            Some("before")
        } else if after && foreign.iter().any(|r| r.0 > e) {
            Some("after")
        } else {
            None
        };
        if let Some(side) = side {
            return Err(ImportError::Refused {
                path: c.path.clone(),
                why: format!(
                    "the ledger directory holds chunks {side} it but none adjacent: it would \
                     fill part of a gap without chaining with them ({} only fills a gap with \
                     chunks that chain on both sides)",
                    if opts.repopulate {
                        "repopulate"
                    } else {
                        "an import"
                    }
                ),
            });
        }
    }
    Ok(())
}
