//! [`IngestFile`]: a complete snapshot file arriving from outside the store (a restore from
//! object storage, an import, a Raft follower receiving its leader's snapshot), brought in
//! with the same crash-safe sequence as a snapshot written here — and never trusted before it
//! verifies.
//!
//! The bytes are exactly those of a `.committed` file (header, body, receipt). The first
//! [`HEADER_LEN`] bytes are held back until the header decodes (magic, version, checksum,
//! lengths), which names the snapshot and fixes the file's length before anything is created.
//! The rest streams into a pending file (`O_EXCL`, never a committed name), so memory stays
//! bounded for any size. The commit then `fsync`s and `close`s it, verifies the whole file
//! with the store's verifier (receipt, claims, body digest, zstd frame), and only then gives it
//! its committed name with a non-replacing rename and a directory `fsync`. A file that fails
//! any step is removed; a crash at any instant leaves at most a stale pending file, which the
//! store removes when it next opens.
//!
//! A file already at the pending name (a leftover, or something planted: the name is
//! predictable) is removed and the create retried once, as for a snapshot written here, so it
//! cannot turn an ingest into a failure. A file already at the committed name makes the
//! ingest [`Ingested::AlreadyPresent`] only if it verifies; anything else there (a link, junk,
//! a forgery) fails the ingest with [`Step::CheckExisting`], since a committed name is never
//! overwritten.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{debug, warn};

use super::{start_writeback, write_all, Attempt, Committed, WRITEBACK_STEP};
use crate::chunks::import::ClaimingSource;
use crate::chunks::sink::ChunkClaim;
use crate::chunks::store::ChunkStore;
use crate::error::{IngestError, PersistError, Step, VerifyError};
use crate::format::{Header, HEADER_LEN};
use crate::fs::{DirHandle, WritableFile};
use crate::names::{FileState, PendingName, SnapshotName};
use crate::reader::verify_in;
use crate::receipt::ReceiptVerifier;

/// What became of an ingested file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ingested {
    /// It verified and is now committed under its name.
    Committed(Committed),
    /// The store already has a committed file of that name, and it verifies; nothing was
    /// written (a committed file is never overwritten).
    AlreadyPresent(SnapshotName),
}

impl Ingested {
    /// The snapshot's committed name, in either case.
    pub fn name(&self) -> SnapshotName {
        match self {
            Ingested::Committed(c) => c.name,
            Ingested::AlreadyPresent(name) => *name,
        }
    }
}

/// A snapshot file being received: write its bytes through [`io::Write`], then hand it to
/// [`SnapshotStore::finish_ingest`](crate::SnapshotStore::finish_ingest). Dropping it instead
/// removes whatever was written. Created by
/// [`SnapshotStore::begin_ingest`](crate::SnapshotStore::begin_ingest).
///
/// A write fails (`InvalidData`) as soon as the bytes cannot be a snapshot file: a header
/// that does not decode, a file longer than the limit, or bytes past the length the header
/// gives. The error that [`finish_ingest`](crate::SnapshotStore::finish_ingest) then returns
/// says which.
pub struct IngestFile {
    dir: Arc<dyn DirHandle>,
    limit: u64,
    /// Unique among this store's ingests, so two at once never share a pending name.
    generation: u64,
    state: State,
}

enum State {
    /// Collecting the header.
    Head(Vec<u8>),
    /// Header decoded; the rest streams into the pending file.
    Body(Body),
    /// Header decoded, but that committed name exists: the bytes are counted, not written.
    Present {
        name: SnapshotName,
        expected: u64,
        received: u64,
    },
    /// Nothing more can come of it; the pending file (if any) is closed and removed.
    Failed(IngestError),
}

struct Body {
    header: Header,
    pending: PendingName,
    /// `None` only transiently while handing over.
    file: Option<Box<dyn WritableFile>>,
    expected: u64,
    received: u64,
    /// Bytes whose writeback was started; `None` once the filesystem said it cannot.
    written_back: Option<u64>,
}

impl IngestFile {
    pub(crate) fn new(dir: Arc<dyn DirHandle>, limit: u64, generation: u64) -> Self {
        IngestFile {
            dir,
            limit,
            generation,
            state: State::Head(Vec::with_capacity(HEADER_LEN)),
        }
    }

    /// Bytes accepted so far.
    pub fn received(&self) -> u64 {
        match &self.state {
            State::Head(head) => head.len() as u64,
            State::Body(b) => b.received,
            State::Present { received, .. } => *received,
            State::Failed(_) => 0,
        }
    }

    internals_pub! {
        /// The snapshot's name, once the header has arrived and decoded.
        fn name(&self) -> Option<SnapshotName> {
            match &self.state {
                State::Body(b) => Some(committed_name(&b.header)),
                State::Present { name, .. } => Some(*name),
                State::Head(_) | State::Failed(_) => None,
            }
        }
    }

    fn path(&self, file_name: &str) -> PathBuf {
        self.dir.path().join(file_name)
    }

    /// Moves to `Failed(err)`, closing and removing a pending file; returns the `io::Error`
    /// the failing write reports.
    fn fail(&mut self, err: IngestError) -> io::Error {
        let message = err.to_string();
        let old = std::mem::replace(&mut self.state, State::Failed(err));
        if let State::Body(body) = old {
            discard(&*self.dir, body);
        }
        io::Error::new(io::ErrorKind::InvalidData, message)
    }

    /// The header is complete: decode it, check the limit, and create the pending file (or
    /// note that the committed name is taken).
    fn start(&mut self, head: &[u8]) -> Result<(), io::Error> {
        let header = match Header::decode(head).and_then(|h| h.file_len().map(|len| (h, len))) {
            Ok(decoded) => decoded,
            Err(source) => return Err(self.fail(IngestError::Header { source })),
        };
        let (header, expected) = header;
        let name = committed_name(&header);
        if expected > self.limit {
            return Err(self.fail(IngestError::TooLarge {
                name,
                len: expected,
                limit: self.limit,
            }));
        }
        let exists = match self.dir.list() {
            Ok(entries) => entries.iter().any(|e| e.name == *name.file_name()),
            Err(source) => {
                let path = self.path(&name.file_name());
                return Err(self.fail(IngestError::Persist(PersistError::Io {
                    path,
                    step: Step::CheckExisting,
                    source,
                })));
            }
        };
        if exists {
            debug!(%name, "ingest: committed name exists; counting, not writing");
            self.state = State::Present {
                name,
                expected,
                received: head.len() as u64,
            };
            return Ok(());
        }
        let pending = PendingName {
            idx: header.idx,
            generation: self.generation,
        };
        let file_name = pending.file_name();
        let created = Attempt {
            dir: &*self.dir,
            uncommitted: file_name.clone(),
            committed: name.file_name(),
        }
        .create();
        let mut file = match created {
            Ok(f) => f,
            Err(e) => return Err(self.fail(IngestError::Persist(e))),
        };
        let written = write_all(&mut *file, head);
        self.state = State::Body(Body {
            header,
            pending,
            file: Some(file),
            expected,
            received: head.len() as u64,
            written_back: Some(0),
        });
        if let Err(source) = written {
            let path = self.path(&file_name);
            return Err(self.fail(IngestError::Persist(PersistError::Io {
                path,
                step: Step::Write,
                source,
            })));
        }
        debug!(%name, pending = %file_name, bytes = expected, "ingest: receiving");
        Ok(())
    }

    /// Completes the file: length check, fsync, close, full verification, non-replacing
    /// rename, directory fsync. Called by the store with its persist lock held.
    /// Everything but the committed name: the length, `fsync`, `close`, and full
    /// verification of the file on disk. See [`VerifiedIngest`].
    ///
    /// A chunked file's chunks are read from `chunks`' durable packs, each claimed before it
    /// is looked up; the claims stay with the [`VerifiedIngest`] until it is committed or
    /// dropped, so a sweep cannot delete a chunk between its check and the commit.
    ///
    /// The chunks of `sealed` (hashed and sealed by the `ChunkImport` bringing the file in)
    /// are checked by their presence in a durable pack, not read back.
    pub(crate) fn verify(
        mut self,
        verifier: &dyn ReceiptVerifier,
        chunks: &Arc<ChunkStore>,
        sealed: HashSet<crate::Hash>,
    ) -> Result<VerifiedIngest, IngestError> {
        let state = std::mem::replace(&mut self.state, State::Head(Vec::new()));
        let mut body = match state {
            State::Failed(e) => return Err(e),
            State::Head(head) => {
                return Err(IngestError::Truncated {
                    name: None,
                    expected: HEADER_LEN as u64,
                    received: head.len() as u64,
                })
            }
            State::Present {
                name,
                expected,
                received,
            } => {
                if received != expected {
                    return Err(IngestError::Truncated {
                        name: Some(name),
                        expected,
                        received,
                    });
                }
                present(&*self.dir, name, verifier)?;
                return Ok(VerifiedIngest {
                    dir: Arc::clone(&self.dir),
                    name,
                    pending: None,
                    _claim: None,
                });
            }
            State::Body(body) => body,
        };
        let name = committed_name(&body.header);
        if body.received != body.expected {
            let err = IngestError::Truncated {
                name: Some(name),
                expected: body.expected,
                received: body.received,
            };
            discard(&*self.dir, body);
            return Err(err);
        }
        let Some(file) = body.file.take() else {
            discard(&*self.dir, body);
            return Err(IngestError::Persist(PersistError::Io {
                path: self.path(&name.file_name()),
                step: Step::Write,
                source: io::Error::other("the pending file is no longer open"),
            }));
        };
        let span = tracing::debug_span!("ingest", %name, bytes = body.expected);
        let _entered = span.enter();
        let attempt = Attempt {
            dir: &*self.dir,
            uncommitted: body.pending.file_name(),
            committed: name.file_name(),
        };
        // fsync + close (an error of either removes the file); the data is durable before it
        // can gain a committed name.
        attempt.sync_and_close(file)?;
        // Verified from the file on disk, not from the bytes as they passed: what gets the
        // committed name is exactly what was checked.
        // A chunked file's chunks do not travel with it: they must be in this store's durable
        // packs already (put there by a ChunkImport), and are claimed as they are checked.
        let source = ClaimingSource::new(Arc::clone(chunks), sealed);
        let verified = verify_in(
            &*self.dir,
            &attempt.uncommitted,
            Some(&name),
            verifier,
            crate::reader::stream::Chunks::Source(&source),
        )
        .map(|_| ());
        if let Err(source) = verified {
            warn!(error = %source, "ingested file does not verify; removed");
            attempt.remove_uncommitted();
            return Err(IngestError::Refused {
                name,
                source: Box::new(source),
            });
        }
        Ok(VerifiedIngest {
            dir: Arc::clone(&self.dir),
            name,
            pending: Some(Verified {
                file_name: attempt.uncommitted,
                file_len: body.expected,
                body_digest: body.header.body_digest,
            }),
            _claim: Some(source.into_claim()),
        })
    }
}

/// An ingested snapshot that is durable under its pending name and verified, and has no
/// committed name yet: what [`SnapshotStore::verify_ingest`](crate::SnapshotStore::verify_ingest)
/// returns. [`SnapshotStore::commit_ingest`](crate::SnapshotStore::commit_ingest) gives it
/// its committed name; dropping it instead removes the pending file.
///
/// The two steps let a caller bringing in several files (an import) verify all of them before
/// committing any, so a set that fails anywhere commits nothing.
#[must_use = "dropping a verified ingest removes its file; commit it with commit_ingest"]
pub struct VerifiedIngest {
    dir: Arc<dyn DirHandle>,
    name: SnapshotName,
    /// `None`: a committed file of that name was already there and verifies.
    pending: Option<Verified>,
    /// The chunks a chunked file names, claimed until it is committed or dropped.
    _claim: Option<ChunkClaim>,
}

struct Verified {
    file_name: String,
    file_len: u64,
    body_digest: crate::Hash,
}

impl fmt::Debug for VerifiedIngest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedIngest")
            .field("name", &self.name)
            .field("already_present", &self.pending.is_none())
            .finish()
    }
}

impl VerifiedIngest {
    /// The snapshot's committed name (to be, or already there).
    pub fn name(&self) -> SnapshotName {
        self.name
    }

    /// Non-replacing rename to the committed name, then a directory `fsync`.
    pub(crate) fn commit(
        mut self,
        verifier: &dyn ReceiptVerifier,
    ) -> Result<Ingested, IngestError> {
        let Some(verified) = self.pending.take() else {
            return Ok(Ingested::AlreadyPresent(self.name));
        };
        let attempt = Attempt {
            dir: &*self.dir,
            uncommitted: verified.file_name,
            committed: self.name.file_name(),
        };
        match attempt.commit() {
            Ok(()) => {}
            // The rename refused and removed the pending file.
            Err(PersistError::AlreadyCommitted { .. }) => {
                return present(&*self.dir, self.name, verifier)
            }
            Err(e) => return Err(e.into()),
        }
        attempt.sync_dir()?;
        debug!(name = %self.name, "ingested and committed");
        Ok(Ingested::Committed(Committed {
            path: attempt.path(&attempt.committed),
            name: self.name,
            file_len: verified.file_len,
            body_digest: verified.body_digest,
        }))
    }
}

impl Drop for VerifiedIngest {
    fn drop(&mut self) {
        if let Some(verified) = self.pending.take() {
            let attempt = Attempt {
                dir: &*self.dir,
                uncommitted: verified.file_name,
                committed: self.name.file_name(),
            };
            attempt.remove_uncommitted();
        }
    }
}

impl io::Write for IngestFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match &mut self.state {
            State::Failed(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            State::Head(head) => {
                let take = buf.len().min(HEADER_LEN - head.len());
                head.extend_from_slice(&buf[..take]);
                if head.len() == HEADER_LEN {
                    let head = std::mem::take(head);
                    self.start(&head)?;
                }
                Ok(take)
            }
            State::Present {
                name,
                expected,
                received,
            } => {
                let n = buf.len() as u64;
                if n > *expected - *received {
                    let err = IngestError::TrailingBytes {
                        name: *name,
                        expected: *expected,
                    };
                    return Err(self.fail(err));
                }
                *received += n;
                Ok(buf.len())
            }
            State::Body(body) => {
                let n = buf.len() as u64;
                if n > body.expected - body.received {
                    let err = IngestError::TrailingBytes {
                        name: committed_name(&body.header),
                        expected: body.expected,
                    };
                    return Err(self.fail(err));
                }
                let Some(file) = body.file.as_deref_mut() else {
                    return Err(io::Error::other("the pending file is no longer open"));
                };
                let written = write_all(file, buf)
                    .map_err(|e| (Step::Write, e))
                    .and_then(|()| {
                        body.received += n;
                        start_writeback(file, body.received, &mut body.written_back, WRITEBACK_STEP)
                            .map_err(|e| (Step::Writeback, e))
                    });
                if let Err((step, source)) = written {
                    let file_name = body.pending.file_name();
                    let path = self.path(&file_name);
                    return Err(self.fail(IngestError::Persist(PersistError::Io {
                        path,
                        step,
                        source,
                    })));
                }
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // Durability is the commit's fsync; nothing is buffered here.
        Ok(())
    }
}

impl Drop for IngestFile {
    fn drop(&mut self) {
        if let State::Body(body) = std::mem::replace(&mut self.state, State::Head(Vec::new())) {
            discard(&*self.dir, body);
        }
    }
}

impl fmt::Debug for IngestFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestFile")
            .field("dir", &self.dir.path())
            .field("name", &self.name())
            .field("received", &self.received())
            .finish_non_exhaustive()
    }
}

/// Why a committed file of the ingested snapshot's name does not make it present.
#[derive(Debug, thiserror::Error)]
#[error("a file that does not verify holds the committed name; it is never overwritten")]
struct HeldByUnverified(#[source] VerifyError);

/// [`Ingested::AlreadyPresent`] when the committed file `name` in `dir` verifies; otherwise
/// the ingest fails at [`Step::CheckExisting`], saying why.
fn present(
    dir: &dyn DirHandle,
    name: SnapshotName,
    verifier: &dyn ReceiptVerifier,
) -> Result<Ingested, IngestError> {
    let file_name = name.file_name();
    let verified = verify_in(
        dir,
        &file_name,
        Some(&name),
        verifier,
        crate::reader::stream::Chunks::ScanDir(dir),
    )
    .map(|_| ());
    match verified {
        Ok(()) => Ok(Ingested::AlreadyPresent(name)),
        Err(e) => Err(IngestError::Persist(PersistError::Io {
            path: dir.path().join(&file_name),
            step: Step::CheckExisting,
            source: io::Error::new(io::ErrorKind::AlreadyExists, HeldByUnverified(e)),
        })),
    }
}

fn committed_name(header: &Header) -> SnapshotName {
    SnapshotName {
        idx: header.idx,
        evidence_idx: header.evidence_idx,
        state: FileState::Committed,
    }
}

/// Closes (error logged only: the file is being thrown away) and unlinks a pending file.
fn discard(dir: &dyn DirHandle, mut body: Body) {
    let file_name = body.pending.file_name();
    if let Some(file) = body.file.take() {
        if let Err(e) = file.close() {
            warn!(name = %file_name, error = %e, "close of a discarded ingest file failed");
        }
    }
    match dir.unlink(&file_name) {
        Ok(()) => debug!(name = %file_name, "removed discarded ingest file"),
        Err(e) => warn!(
            name = %file_name,
            error = %e,
            "could not remove a discarded ingest file; it is removed at the next open"
        ),
    }
}
