//! The crash-safe writer: one snapshot file, written with the exact sequence of SPEC §5.
//!
//! 1. refuse if the committed name exists; `openat(O_CREAT|O_EXCL|..)` the uncommitted name
//!    (a stale one from an earlier crash is unlinked and the create retried once);
//! 2. write header, body and receipt fully (short writes looped, `EINTR` retried);
//! 3. `fsync` the file (never retried), then `close` it (a close error is a failure);
//! 4. `renameat2(RENAME_NOREPLACE)` to the committed name (or `linkat` + `unlinkat` where that
//!    flag is refused; never an overwriting rename);
//! 5. `fsync` the directory. Only then is the snapshot reported committed.
//!
//! A body too large to hold in memory takes a second entry point ([`SpillFile`]): it is
//! streamed into a *pending* file (`snapshot_<idx>.g<generation>.pending`, placeholder header)
//! while serialising, and [`SnapshotWriter::commit_spill`] later completes that same file:
//! check the committed name is free, append the receipt, `pwrite` the header at offset 0, then
//! steps 3–5 above from the pending name. The body is never copied again, the committed file
//! is byte-identical to one written by [`SnapshotWriter::persist`], and the guarantees (and
//! typed errors) are the same.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{debug, warn};

use crate::error::{PersistError, Step};
use crate::format::{Flags, Header, HEADER_LEN};
pub(crate) use crate::fs::write_all;
use crate::fs::{is_noreplace_unsupported, write_all_at, DirHandle, WritableFile};
use crate::names::{FileState, PendingName, SnapshotName};
use crate::Hash;

pub(crate) mod ingest;
pub(crate) mod spill;

pub(crate) use ingest::{IngestFile, Ingested, VerifiedIngest};
pub(crate) use spill::SpillFile;

/// File mode of a snapshot: snapshots may hold sensitive state.
pub(crate) const FILE_MODE: u32 = 0o600;

/// One snapshot to write.
#[derive(Clone, Copy, Debug)]
pub struct PersistRequest<'a> {
    /// Ledger index the snapshot captures.
    pub idx: u64,
    /// Ledger index of the evidence transaction recording the snapshot's claims digest
    /// (`format::Claims`: idx, flags, lengths, body digest). Must be greater than `idx`; the
    /// writer refuses the request otherwise.
    pub evidence_idx: u64,
    /// Header flags (compression).
    pub flags: Flags,
    /// Uncompressed body length; must equal `body.len()` when the body is not compressed.
    pub raw_len: u64,
    /// BLAKE3 of `body`, as computed while serialising. Trusted, not recomputed: hashing twice
    /// would double the cost, and a wrong digest only yields a file that fails verification.
    pub body_digest: Hash,
    /// The stored body bytes, written straight from this slice.
    pub body: &'a [u8],
    /// The encoded receipt.
    pub receipt: &'a [u8],
}

/// One snapshot to write whose body is several consecutive slices (frozen chunks of the
/// node's state, say): everything a [`PersistRequest`] holds, with the body gathered. Each
/// slice is written straight from where it is; nothing is copied or joined.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GatheredRequest<'a> {
    /// Ledger index the snapshot captures.
    pub(crate) idx: u64,
    /// Ledger index of the evidence transaction; must be greater than `idx`.
    pub(crate) evidence_idx: u64,
    /// Header flags (compression).
    pub(crate) flags: Flags,
    /// Uncompressed body length; must equal the body's total length when not compressed.
    pub(crate) raw_len: u64,
    /// BLAKE3 of the body (all slices in order), as computed while serialising (trusted, as
    /// in [`PersistRequest::body_digest`]).
    pub(crate) body_digest: Hash,
    /// The stored body: these slices, in order.
    pub(crate) body: &'a [&'a [u8]],
    /// The encoded receipt.
    pub(crate) receipt: &'a [u8],
}

impl GatheredRequest<'_> {
    /// Total body length.
    pub(crate) fn body_len(&self) -> u64 {
        self.body.iter().map(|b| b.len() as u64).sum()
    }
}

impl<'a> PersistRequest<'a> {
    /// The same request with its body given as `body` (one slice: `[self.body]`).
    pub(crate) fn gathered(&self, body: &'a [&'a [u8]]) -> GatheredRequest<'a> {
        GatheredRequest {
            idx: self.idx,
            evidence_idx: self.evidence_idx,
            flags: self.flags,
            raw_len: self.raw_len,
            body_digest: self.body_digest,
            body,
            receipt: self.receipt,
        }
    }
}

/// What completes a [`SpillFile`] into a committed snapshot: everything a [`PersistRequest`]
/// holds except the body (already in the file) and the index (in the pending name).
#[derive(Clone, Copy, Debug)]
pub struct SpillCommit<'a> {
    /// Ledger index of the evidence transaction recording the snapshot's claims digest; must
    /// be greater than the spilled body's `idx`.
    pub evidence_idx: u64,
    /// Header flags (compression).
    pub flags: Flags,
    /// Uncompressed body length; must equal the spilled body length when not compressed.
    pub raw_len: u64,
    /// BLAKE3 of the spilled body, as computed while streaming it (trusted, as in
    /// [`PersistRequest::body_digest`]).
    pub body_digest: Hash,
    /// The encoded receipt.
    pub receipt: &'a [u8],
}

/// A snapshot that is committed: written, fsynced, renamed, and the rename made durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Its committed name.
    pub name: SnapshotName,
    /// Directory path joined with the committed name.
    pub path: PathBuf,
    /// Total file length: header, body and receipt.
    pub file_len: u64,
    /// BLAKE3 of the body, as written into the header.
    pub body_digest: Hash,
}

/// Writes snapshot files into one directory.
///
/// The writer assumes the caller owns the directory (the store holds its lock) and never
/// writes the same name twice at once: a stale uncommitted file is removed on sight.
///
/// # After a crash
///
/// A crash at any point leaves, for this snapshot, one of: nothing; a stale uncommitted file
/// (complete or partial, removed when the store next opens); or the committed file, complete
/// and verifiable (its data was fsynced before the rename), possibly alongside a stale
/// uncommitted name for the same data after the link fallback. Never a partial committed
/// file. This holds for every error too, [`PersistError::DirSyncFailed`] included: the caller
/// was told "not committed", yet after a crash the (complete) file may be there. When
/// `persist` returned `Ok`, the committed file survives any crash.
#[derive(Clone, Debug)]
pub struct SnapshotWriter {
    dir: Arc<dyn DirHandle>,
}

impl SnapshotWriter {
    /// A writer into `dir`.
    pub fn new(dir: Arc<dyn DirHandle>) -> Self {
        Self { dir }
    }

    /// Writes and commits one snapshot (see the module doc for the sequence). On any failure
    /// before the rename the uncommitted file is removed (best effort; a removal failure is
    /// logged and the original error returned).
    pub fn persist(&self, req: &PersistRequest<'_>) -> Result<Committed, PersistError> {
        self.persist_gathered(&req.gathered(&[req.body]))
    }

    /// [`persist`](Self::persist) with the body given as consecutive slices, each written
    /// straight from where it is.
    pub(crate) fn persist_gathered(
        &self,
        req: &GatheredRequest<'_>,
    ) -> Result<Committed, PersistError> {
        let name = SnapshotName {
            idx: req.idx,
            evidence_idx: req.evidence_idx,
            state: FileState::Uncommitted,
        };
        let committed = name.with_state(FileState::Committed);
        let attempt = Attempt {
            dir: &*self.dir,
            uncommitted: name.file_name(),
            committed: committed.file_name(),
        };
        let header = Header {
            idx: req.idx,
            evidence_idx: req.evidence_idx,
            flags: req.flags,
            body_len: req.body_len(),
            receipt_len: req.receipt.len() as u64,
            raw_len: req.raw_len,
            body_digest: req.body_digest,
            receipt_digest: *blake3::hash(req.receipt).as_bytes(),
        };
        let span = tracing::debug_span!(
            "persist",
            idx = req.idx,
            evidence_idx = req.evidence_idx,
            bytes = header.body_len
        );
        let _entered = span.enter();
        let file_len = header
            .validate()
            .and_then(|()| header.file_len())
            .map_err(|source| PersistError::InvalidRequest {
                path: attempt.path(&attempt.committed),
                source,
            })?;
        attempt.refuse_existing()?;
        let file = attempt.create()?;
        attempt.write_and_close(file, &header.encode(), req.body, req.receipt)?;
        attempt.commit()?;
        attempt.sync_dir()?;
        debug!(file_len, "committed");
        Ok(Committed {
            name: committed,
            path: attempt.path(&attempt.committed),
            file_len,
            body_digest: req.body_digest,
        })
    }
}

impl SnapshotWriter {
    /// Creates the pending file for the body of the snapshot at `idx` streamed by
    /// `generation`, ready for the body to be written into it. An existing pending file of
    /// that name is an error ([`Step::Create`], `EEXIST`), never removed.
    pub fn create_spill(&self, idx: u64, generation: u64) -> Result<SpillFile, PersistError> {
        SpillFile::create(Arc::clone(&self.dir), PendingName { idx, generation })
    }

    /// Completes a spilled body into the committed snapshot `snapshot_<idx>_<evidence_idx>`:
    /// refuse an existing committed name, append the receipt, `pwrite` the header at offset 0,
    /// `fsync`, `close` (an error is a failure), non-replacing rename (or link + unlink) from
    /// the pending name, directory `fsync`. Same guarantees as [`persist`](Self::persist),
    /// with the pending name in the uncommitted name's role: on any failure before the rename
    /// the pending file is removed (best effort, logged), and a crash leaves either no
    /// committed file or a complete, verifiable one. The file is committed in the directory it
    /// was created in.
    pub fn commit_spill(
        &self,
        mut spill: SpillFile,
        req: &SpillCommit<'_>,
    ) -> Result<Committed, PersistError> {
        let idx = spill.name.idx;
        let committed = SnapshotName {
            idx,
            evidence_idx: req.evidence_idx,
            state: FileState::Committed,
        };
        let header = Header {
            idx,
            evidence_idx: req.evidence_idx,
            flags: req.flags,
            body_len: spill.body_len,
            receipt_len: req.receipt.len() as u64,
            raw_len: req.raw_len,
            body_digest: req.body_digest,
            receipt_digest: *blake3::hash(req.receipt).as_bytes(),
        };
        let span = tracing::debug_span!(
            "commit_spill",
            idx,
            evidence_idx = req.evidence_idx,
            bytes = header.body_len
        );
        let _entered = span.enter();
        let dir = Arc::clone(&spill.dir);
        let attempt = Attempt {
            dir: &*dir,
            uncommitted: spill.name.file_name(),
            committed: committed.file_name(),
        };
        // Until the file is handed over below, dropping `spill` on an early return closes and
        // removes it.
        if spill.is_failed() {
            // A body write failed earlier (that error was reported then); its file is closed.
            return Err(attempt.io(&attempt.uncommitted, Step::Write)(
                io::Error::other("the pending file's body was not written completely"),
            ));
        }
        let file_len = header
            .validate()
            .and_then(|()| header.file_len())
            .map_err(|source| PersistError::InvalidRequest {
                path: attempt.path(&attempt.committed),
                source,
            })?;
        attempt.refuse_existing()?;
        let Some(file) = spill.hand_over() else {
            // Unreachable: checked above and nothing runs in between; still no panic.
            attempt.remove_uncommitted();
            return Err(attempt.io(&attempt.uncommitted, Step::Write)(
                io::Error::other("the pending file is no longer open"),
            ));
        };
        attempt.complete_and_close(file, &header.encode(), req.receipt)?;
        attempt.commit()?;
        attempt.sync_dir()?;
        debug!(file_len, "committed spilled body");
        Ok(Committed {
            name: committed,
            path: attempt.path(&attempt.committed),
            file_len,
            body_digest: req.body_digest,
        })
    }
}

/// One persist call's names and directory; each method is one step of the sequence. Chunk
/// packs take the same steps (`uncommitted` their pending name, `committed` their sealed one).
pub(crate) struct Attempt<'a> {
    pub(crate) dir: &'a dyn DirHandle,
    pub(crate) uncommitted: String,
    pub(crate) committed: String,
}

impl Attempt<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn io(&self, name: &str, step: Step) -> impl FnOnce(io::Error) -> PersistError {
        let path = self.path(name);
        move |source| PersistError::Io { path, step, source }
    }

    /// Step 0: a committed file is never overwritten, and writing gigabytes only to have the
    /// rename refused would be waste, so look first. (The non-replacing rename still guards.)
    fn refuse_existing(&self) -> Result<(), PersistError> {
        let entries = self
            .dir
            .list()
            .map_err(self.io(&self.committed, Step::CheckExisting))?;
        if entries.iter().any(|e| e.name == *self.committed) {
            debug!(name = %self.committed, "committed name exists");
            return Err(self.already_committed(Step::CheckExisting));
        }
        Ok(())
    }

    fn already_committed(&self, step: Step) -> PersistError {
        PersistError::AlreadyCommitted {
            path: self.path(&self.committed),
            step,
        }
    }

    /// Step 1: the exclusive create, with one retry after removing a stale file.
    pub(crate) fn create(&self) -> Result<Box<dyn WritableFile>, PersistError> {
        match self.dir.create_new(&self.uncommitted, FILE_MODE) {
            Ok(file) => {
                debug!(name = %self.uncommitted, "created");
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(self.io(&self.uncommitted, Step::Create)(e)),
        }
        // We hold the directory, so this is a leftover of an earlier crash (unlinkat removes
        // a symlink itself, never its target).
        warn!(name = %self.uncommitted, "removing stale uncommitted file");
        match self.dir.unlink(&self.uncommitted) {
            Ok(()) => {}
            // Gone meanwhile: nothing to remove.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io(&self.uncommitted, Step::UnlinkStale)(e)),
        }
        let file = self
            .dir
            .create_new(&self.uncommitted, FILE_MODE)
            .map_err(self.io(&self.uncommitted, Step::Create))?;
        debug!(name = %self.uncommitted, "created after removing stale file");
        Ok(file)
    }

    /// Steps 2 and 3: write everything, fsync, close. On failure the file is closed (if not
    /// yet) and unlinked.
    fn write_and_close(
        &self,
        mut file: Box<dyn WritableFile>,
        header: &[u8; HEADER_LEN],
        body: &[&[u8]],
        receipt: &[u8],
    ) -> Result<(), PersistError> {
        // In pieces of at most WRITEBACK_STEP, starting the writeback of each once written:
        // the device writes while the rest is copied into the page cache, and the fsync
        // waits for little. A body under one step is one write per part, as before.
        let mut received = 0u64;
        let mut written_back = Some(0);
        let written = std::iter::once(&header[..])
            .chain(body.iter().copied())
            .chain(std::iter::once(receipt))
            .flat_map(|part| part.chunks(WRITEBACK_STEP as usize))
            .try_for_each(|piece| {
                write_all(&mut *file, piece).map_err(|e| (Step::Write, e))?;
                received += piece.len() as u64;
                start_writeback(&mut *file, received, &mut written_back, WRITEBACK_STEP)
                    .map_err(|e| (Step::Writeback, e))
            });
        if let Err((step, e)) = written {
            return Err(self.abandon(file, step, e));
        }
        debug!("written");
        self.sync_and_close(file)
    }

    /// Step 3: fsync (never retried), then close (an error is a failure). On failure the file
    /// is closed (if not yet) and unlinked.
    pub(crate) fn sync_and_close(
        &self,
        mut file: Box<dyn WritableFile>,
    ) -> Result<(), PersistError> {
        if let Err(e) = file.sync() {
            // Never retried: after a failed fsync the kernel may have dropped the dirty pages,
            // and a later "successful" fsync would prove nothing.
            return Err(self.abandon(file, Step::Fsync, e));
        }
        debug!("fsynced");
        if let Err(e) = file.close() {
            // The fd is gone either way; the data may not be what we think it is.
            self.remove_uncommitted();
            return Err(self.io(&self.uncommitted, Step::Close)(e));
        }
        debug!("closed");
        Ok(())
    }

    /// Steps 2 and 3 for a spilled body: append the receipt, write the header over the
    /// placeholder, fsync, close. On failure the file is closed (if not yet) and unlinked.
    fn complete_and_close(
        &self,
        mut file: Box<dyn WritableFile>,
        header: &[u8; HEADER_LEN],
        receipt: &[u8],
    ) -> Result<(), PersistError> {
        if let Err(e) = write_all(&mut *file, receipt) {
            return Err(self.abandon(file, Step::Write, e));
        }
        if let Err(e) = write_all_at(&mut *file, header, 0) {
            return Err(self.abandon(file, Step::WriteHeader, e));
        }
        debug!("receipt and header written");
        self.sync_and_close(file)
    }

    /// Closes (error only logged: the first error is the one that matters) and unlinks the
    /// file after `step` failed with `err`.
    pub(crate) fn abandon(
        &self,
        file: Box<dyn WritableFile>,
        step: Step,
        err: io::Error,
    ) -> PersistError {
        if let Err(e) = file.close() {
            warn!(name = %self.uncommitted, error = %e, "close of abandoned file failed");
        }
        self.remove_uncommitted();
        self.io(&self.uncommitted, step)(err)
    }

    /// Best-effort removal of the uncommitted file after a failure. A leftover is harmless:
    /// the next persist of this name or the next store open removes it.
    fn remove_uncommitted(&self) {
        match self.dir.unlink(&self.uncommitted) {
            Ok(()) => debug!(name = %self.uncommitted, "removed uncommitted file"),
            Err(e) => warn!(
                name = %self.uncommitted,
                step = %Step::UnlinkUncommitted,
                error = %e,
                "could not remove uncommitted file; it is removed at the next open"
            ),
        }
    }

    /// Step 4: give the file its committed name, never replacing an existing one.
    pub(crate) fn commit(&self) -> Result<(), PersistError> {
        let err = match self
            .dir
            .rename_noreplace(&self.uncommitted, &self.committed)
        {
            Ok(()) => {
                debug!(name = %self.committed, "renamed");
                return Ok(());
            }
            Err(e) => e,
        };
        if err.kind() == io::ErrorKind::AlreadyExists {
            self.remove_uncommitted();
            return Err(self.already_committed(Step::Rename));
        }
        if !is_noreplace_unsupported(&err) {
            self.remove_uncommitted();
            return Err(self.io(&self.committed, Step::Rename)(err));
        }
        debug!(error = %err, "RENAME_NOREPLACE unsupported; linking instead");
        if let Err(e) = self.dir.hard_link(&self.uncommitted, &self.committed) {
            self.remove_uncommitted();
            if e.kind() == io::ErrorKind::AlreadyExists {
                return Err(self.already_committed(Step::Link));
            }
            return Err(self.io(&self.committed, Step::Link)(e));
        }
        debug!(name = %self.committed, "linked");
        if let Err(e) = self.dir.unlink(&self.uncommitted) {
            // The committed name is in place and its data is durable; the extra name is a
            // stale uncommitted file that the next open (or persist of this name) removes.
            warn!(
                name = %self.uncommitted,
                step = %Step::UnlinkUncommitted,
                error = %e,
                "could not remove the uncommitted name after linking"
            );
        }
        Ok(())
    }

    /// Step 5: make the committed name durable. On failure the committed name is removed
    /// again (best effort), so that without a crash a failed persist leaves no committed file.
    pub(crate) fn sync_dir(&self) -> Result<(), PersistError> {
        let source = match self.dir.sync() {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let removed = match self.dir.unlink(&self.committed) {
            Ok(()) => true,
            Err(e) => {
                warn!(name = %self.committed, error = %e, "could not remove committed name after failed directory fsync");
                false
            }
        };
        Err(PersistError::DirSyncFailed {
            path: self.path(&self.committed),
            removed,
            source,
        })
    }
}

/// Writeback of a file being written (a persist, a pending body) is started every this many
/// bytes (see [`start_writeback`]).
pub(crate) const WRITEBACK_STEP: u64 = 16 << 20;

/// Starts the writeback of the bytes written since the last start, once they reach `step`,
/// so the device writes while the rest of the file arrives and its `fsync` waits for little.
/// A filesystem that cannot (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`) is not asked again; any other
/// error is an I/O error of the file and fails it.
pub(crate) fn start_writeback(
    file: &mut dyn WritableFile,
    received: u64,
    written_back: &mut Option<u64>,
    step: u64,
) -> io::Result<()> {
    let Some(from) = *written_back else {
        return Ok(());
    };
    if received - from < step {
        return Ok(());
    }
    match file.start_writeback(from, received - from) {
        Ok(()) => *written_back = Some(received),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(nix::libc::EINVAL | nix::libc::ENOSYS | nix::libc::EOPNOTSUPP)
            ) =>
        {
            debug!(error = %e, "writeback hints unsupported here");
            *written_back = None;
        }
        Err(e) => return Err(e),
    }
    Ok(())
}
