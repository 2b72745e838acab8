//! Step 6 of an import (docs/ARCHIVE.md): snapshots, then chunks, get their committed names;
//! a chunk that cannot be published takes back the chunks this run published.

use snapseal_persist::Ingested;

use super::stage::{pending_failed, ChunkFate, Stage};
use super::{ImportError, ImportReport};
use crate::pending::PendingError;
use crate::source::ChunkRef;

/// Step 6: snapshots, then chunks. Every snapshot was verified whole when staged, so only an
/// I/O failure (a rename, a directory fsync) can stop this step. A chunk step that fails takes
/// back the chunks this run published; committed snapshots cannot be taken back and are
/// reported in [`ImportError::Partial`].
pub(super) fn publish_all(
    mut stage: Stage<'_>,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let store = stage.target.store;
    let mut kept: Vec<String> = Vec::new();
    let partial = |kept: &[String], cause: ImportError| {
        if kept.is_empty() {
            cause
        } else {
            ImportError::Partial {
                kept: kept.to_vec(),
                cause: Box::new(cause),
            }
        }
    };
    for s in &mut stage.snapshots {
        let Some(file) = s.ingest.take() else {
            report.snapshots_present.push(s.path.clone());
            continue;
        };
        match store.commit_ingest(file) {
            Ok(Ingested::Committed(_)) => {
                kept.push(s.path.clone());
                report.snapshots_committed.push(s.path.clone());
            }
            Ok(_) => report.snapshots_present.push(s.path.clone()),
            Err(source) => {
                let cause = ImportError::Ingest {
                    path: s.path.clone(),
                    source,
                };
                return Err(partial(&kept, cause));
            }
        }
    }
    let ledger = stage.target.ledger.fd();
    let mut published: Vec<String> = Vec::new();
    let mut failure = None;
    for c in &mut stage.chunks {
        match std::mem::replace(&mut c.fate, ChunkFate::Published) {
            ChunkFate::Present => report.chunks_present.push(c.path.clone()),
            ChunkFate::Skipped => report.chunks_skipped.push(c.path.clone()),
            ChunkFate::Published => {}
            ChunkFate::New(sealed) => {
                let name = ChunkRef {
                    start: c.range.0,
                    end: c.range.1,
                    len: 0,
                }
                .file_name();
                match sealed.publish(&name) {
                    Ok(()) => {
                        published.push(name);
                        report.chunks_committed.push(c.path.clone());
                    }
                    Err(e) => {
                        // A failed directory fsync took the name back itself.
                        let dir_fsync = matches!(e, PendingError::DirSync { .. });
                        failure = Some((dir_fsync, pending_failed(e)));
                        break;
                    }
                }
            }
        }
    }
    let Some((dir_fsync_failed, cause)) = failure else {
        return Ok(());
    };
    // Take back what this run published, newest first. After a failed directory fsync the
    // directory's durable state is unknown and fsyncing again proves nothing, so it is not
    // retried; a crash may then still leave some of these names, each a whole verified chunk.
    for name in published.iter().rev() {
        if ledger.unlink(name).is_err() {
            kept.push(format!("ledger/{name}"));
        }
    }
    if !dir_fsync_failed && ledger.sync().is_err() {
        kept.extend(published.iter().map(|n| format!("ledger/{n}")));
    }
    Err(partial(&kept, cause))
}
