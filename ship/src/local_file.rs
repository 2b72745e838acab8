//! One committed file being shipped: opened as hostile input, verified whole with its BLAKE3
//! on a blocking thread beside the upload, and read again a range at a time for the upload
//! and the read-back — always with `pread`, never mapped and never held whole in memory, so a
//! file of any size ships in a few parts' worth of memory and a file truncated under the
//! shipper is an error, not a `SIGBUS`.

use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{BoxFuture, Shared};
use futures::FutureExt;
use snapseal_persist::internals::chunks::{decode_list, verify_file_but_chunks};
use snapseal_persist::internals::format::{Header, HEADER_LEN};
use snapseal_persist::internals::fs::{Untrusted, UntrustedError};
use snapseal_persist::internals::{verify_file, Escaped};
use snapseal_persist::receipt::ReceiptVerifier;
use snapseal_persist::{Hash, SnapshotName, VerifyError};

/// A chunk list: `(length, BLAKE3)` per chunk, in body order.
pub(crate) type ChunkList = Vec<(u32, Hash)>;

use crate::error::{describe, ShipError};
#[cfg(feature = "test-hooks")]
use crate::shipper::FileHook;
use crate::upload::{hash_piece, Source};

/// An open committed file, its full verification running on a blocking thread.
pub(crate) struct LocalFile {
    file: Arc<Untrusted>,
    /// Resolves once, when the verification ends; awaited before the object is made visible.
    checked: Shared<BoxFuture<'static, Checked>>,
}

/// What the full verification of a local file found.
#[derive(Clone)]
pub(crate) enum Checked {
    /// It verifies: its header, the BLAKE3 of the whole file as it was read, and for a
    /// chunked snapshot its chunk list (verified with it).
    Good {
        header: Header,
        hash: blake3::Hash,
        chunks: Option<Arc<ChunkList>>,
    },
    /// It does not (or it was truncated while it was read): never shipped.
    Bad(String),
    /// A read failed (an I/O error, which says nothing about the contents).
    Unreadable(Arc<io::Error>),
}

impl LocalFile {
    /// Starts verifying `file` (committed as `name`) with `verifier` — header, receipt, body,
    /// and the BLAKE3 of the whole file, in one pass of `pread`s of a few MiB
    /// ([`verify_file`]) — on a blocking thread. `after_verify` (tests) runs on that thread
    /// once the file verified.
    ///
    /// A `chunked` file is verified down to its chunk list, whose entries come with it
    /// ([`verify_file_but_chunks`]); its chunks are checked one by one as the shipper reads
    /// those the remote lacks, so shipping it costs the list and the new chunks, not the state.
    pub(crate) fn verify(
        file: Untrusted,
        name: SnapshotName,
        verifier: Arc<dyn ReceiptVerifier>,
        chunked: bool,
        #[cfg(feature = "test-hooks")] after_verify: Option<FileHook>,
    ) -> LocalFile {
        let file = Arc::new(file);
        let reading = Arc::clone(&file);
        let task = tokio::task::spawn_blocking(move || {
            let mut whole = blake3::Hasher::new();
            let mut each = |piece: &[u8]| hash_piece(&mut whole, piece);
            let verified = if chunked {
                verify_file_but_chunks(&reading, Some(&name), &*verifier, &mut each)
            } else {
                verify_file(&reading, Some(&name), &*verifier, &mut each)
            };
            match verified {
                Ok(v) => {
                    #[cfg(feature = "test-hooks")]
                    if let Some(hook) = &after_verify {
                        (hook.0)(reading.path());
                    }
                    let chunks = if chunked {
                        match list_of(&reading, &v.header) {
                            Ok(list) => Some(Arc::new(list)),
                            Err(failed) => return Checked::from(failed),
                        }
                    } else {
                        None
                    };
                    Checked::Good {
                        header: v.header,
                        hash: whole.finalize(),
                        chunks,
                    }
                }
                Err(VerifyError::Read { source, .. }) if changed_under_us(&source).is_none() => {
                    Checked::Unreadable(Arc::new(source))
                }
                Err(e) => Checked::Bad(describe(&e)),
            }
        });
        LocalFile::checking(file, task)
    }

    /// A file whose verification `task` runs.
    fn checking(file: Arc<Untrusted>, task: tokio::task::JoinHandle<Checked>) -> LocalFile {
        let checked = task
            .map(|joined| {
                joined.unwrap_or_else(|e| Checked::Bad(format!("verification failed: {e}")))
            })
            .boxed()
            .shared();
        LocalFile { file, checked }
    }

    /// The verification's result, once it is there.
    pub(crate) fn checked(&self) -> Shared<BoxFuture<'static, Checked>> {
        self.checked.clone()
    }

    /// The file's path, for messages.
    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }

    /// The error a failed read of the verification is reported as: a local I/O failure.
    pub(crate) fn unreadable(&self, e: &Arc<io::Error>) -> ShipError {
        ShipError::LocalIo {
            dir: self.path().to_path_buf(),
            step: "verifying",
            source: io::Error::new(e.kind(), Arc::clone(e)),
        }
    }

    /// Why a file that verified is not shipped when the bytes read again are not those.
    pub(crate) fn changed_after_verified(&self) -> String {
        format!(
            "{}: changed after it was verified (the bytes read again are not the ones that verified)",
            Escaped::path(self.path())
        )
    }
}

impl Source for LocalFile {
    fn len(&self) -> u64 {
        self.file.len()
    }

    /// A `pread` on a blocking thread. A file that ends early (truncated under us) is a
    /// [`ShipError::LocalIo`] whose source [`changed_under_us`] recognizes; any other
    /// failure is one whose source is the system call's error.
    fn read(&self, offset: u64, len: usize) -> BoxFuture<'_, Result<Bytes, ShipError>> {
        let file = Arc::clone(&self.file);
        let failed = |source| ShipError::LocalIo {
            dir: self.path().to_path_buf(),
            step: "read",
            source,
        };
        async move {
            match tokio::task::spawn_blocking(move || file.read_range(offset, len)).await {
                Ok(Ok(bytes)) => Ok(Bytes::from(bytes)),
                Ok(Err(UntrustedError::Io { source, .. })) => Err(failed(source)),
                Ok(Err(changed)) => Err(failed(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    changed,
                ))),
                Err(joined) => Err(failed(io::Error::other(joined))),
            }
        }
        .boxed()
    }
}

/// The refusal inside a failed read of a local file when the file changed under us (it ends
/// before the size it had when opened), as [`LocalFile`]'s reads and [`verify_file`] report
/// it; `None` when the read itself failed (`EIO`).
/// Why the chunk list of a file that verified cannot be shipped.
enum ListFailure {
    /// Changed or unusable: the file is not shipped.
    Bad(String),
    /// A read failed.
    Unreadable(io::Error),
}

impl From<ListFailure> for Checked {
    fn from(f: ListFailure) -> Checked {
        match f {
            ListFailure::Bad(reason) => Checked::Bad(reason),
            ListFailure::Unreadable(e) => Checked::Unreadable(Arc::new(e)),
        }
    }
}

/// The chunk list of `file`, which verified with `header`: read again and held to the body
/// digest it verified with (a file rewritten in between is not shipped), then decoded.
fn list_of(file: &Untrusted, header: &Header) -> Result<ChunkList, ListFailure> {
    let shown = || Escaped::path(file.path()).to_string();
    let len = usize::try_from(header.body_len)
        .map_err(|_| ListFailure::Bad(format!("{}: a chunk list too long to read", shown())))?;
    let list = match file.read_range(HEADER_LEN as u64, len) {
        Ok(list) => list,
        Err(UntrustedError::Io { source, .. }) => return Err(ListFailure::Unreadable(source)),
        Err(e) => return Err(ListFailure::Bad(describe(&e))),
    };
    if *blake3::hash(&list).as_bytes() != header.body_digest {
        return Err(ListFailure::Bad(format!(
            "{}: its chunk list changed after it was verified",
            shown()
        )));
    }
    decode_list(&list, header.raw_len).map_err(|e| ListFailure::Bad(describe(&e)))
}

pub(crate) fn changed_under_us(e: &io::Error) -> Option<&UntrustedError> {
    e.get_ref()?.downcast_ref::<UntrustedError>()
}
