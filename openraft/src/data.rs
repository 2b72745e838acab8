//! [`SealedData`]: openraft's `SnapshotData` for this adapter — a committed snapseal file to
//! read from, or a pending file a received snapshot streams into.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll};

use parking_lot::Mutex;
use snapseal_persist::{IngestFile, SnapshotFile, SnapshotStore};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use crate::chunked::{Bundle, Incoming};
use crate::Error;

/// The bytes of one snapshot as openraft moves them: exactly the bytes of a `.committed`
/// snapseal file (header, body, receipt), so a follower can verify what it received before
/// committing it. For a chunked snapshot ([`SealOptions::chunked`](crate::SealOptions)) the
/// file (whose body is the chunk list) is followed by every distinct chunk it names, raw, in
/// the order the list first names them: openraft 0.9's transport is one-way, so the stream
/// must be self-contained, and a follower writes only the chunks it lacks (see the crate
/// docs).
///
/// Two kinds, fixed when it is made:
/// - **reading**: a committed file that verified (from `get_current_snapshot`), kept open
///   (read with `pread`, never mapped: no resident pages beyond the reader's buffer) and held
///   against retention; readable and seekable anywhere, not writable. The snapshot
///   `build_snapshot` returns is one too, but its file is opened and verified on first use
///   (a read, a seek, [`file`](Self::file), an install), blocking while it hashes the file:
///   openraft only takes its metadata and sends followers the one `get_current_snapshot`
///   opens, so a running node never pays for reading back what it just wrote;
/// - **receiving**: from `begin_receiving_snapshot`, a pending file in the snapshot directory
///   (bounded memory for any size); writable in order only: a seek must name the current end,
///   or the start. openraft's chunk receiver seeks to each chunk's offset, and its sender
///   re-sends a snapshot from offset 0 under the same id after a chunk timed out: a seek to 0
///   starts the pending file over (the old one is removed), so that re-send is received.
///   Any other seek is refused. Dropped without being installed, it removes its pending file.
///
/// A follower that is too far behind receives the leader's snapshot as these bytes, and
/// installs it only once it verified. (openraft's transport does the copying; `Config` and
/// the `Sum` state are those of the crate example.)
///
/// ```
/// use openraft::storage::RaftStateMachine;
/// use openraft::RaftSnapshotBuilder;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use std::io::{Read, Write};
/// # use snapseal_openraft::{SealOptions, SealedData, SealedState, SealedStateMachine};
/// # use snapseal_persist::SigningKey;
/// # use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
/// # openraft::declare_raft_types!(pub Config: D = u64, R = u64, SnapshotData = SealedData);
/// # #[derive(Clone, Default)]
/// # struct Sum(u64);
/// # impl SealedState<Config> for Sum {
/// #     fn apply(&mut self, _: &LogId<u64>, data: &u64) -> u64 {
/// #         self.0 += *data;
/// #         self.0
/// #     }
/// #     fn no_data_response(&self, _: &LogId<u64>) -> u64 {
/// #         self.0
/// #     }
/// #     fn serialise(&self, out: &mut dyn Write) -> std::io::Result<()> {
/// #         out.write_all(&self.0.to_le_bytes())
/// #     }
/// #     fn restore(input: &mut dyn Read) -> std::io::Result<Self> {
/// #         let mut b = [0u8; 8];
/// #         input.read_exact(&mut b)?;
/// #         Ok(Sum(u64::from_le_bytes(b)))
/// #     }
/// # }
/// # let entry = |index, n| Entry::<Config> {
/// #     log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
/// #     payload: EntryPayload::Normal(n),
/// # };
/// let leader_key = SigningKey::from_bytes(&[1; 32]);
/// let follower_key = SigningKey::from_bytes(&[2; 32]);
/// let members = vec![leader_key.verifying_key(), follower_key.verifying_key()];
/// let (leader_dir, follower_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
/// let mut leader: SealedStateMachine<Config, Sum> = SealedStateMachine::open(
///     leader_dir.path(), SealOptions::new(leader_key, members.clone()))?;
/// let mut follower: SealedStateMachine<Config, Sum> = SealedStateMachine::open(
///     follower_dir.path(), SealOptions::new(follower_key, members))?;
/// # let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// # rt.block_on(async {
/// leader.apply([entry(1, 5), entry(2, 7), entry(3, 30)]).await?;
/// let mut sent = leader.get_snapshot_builder().await.build_snapshot().await?;
///
/// // The follower receives the file's bytes (in chunks, over the network) ...
/// let mut received = follower.begin_receiving_snapshot().await?;
/// tokio::io::copy(&mut *sent.snapshot, &mut *received).await?;
/// assert_eq!(received.len(), sent.snapshot.len());
/// // ... and installs them: verified, committed, then the state is replaced.
/// follower.install_snapshot(&sent.meta, received).await?;
/// assert_eq!(follower.state_handle().read().0, 42);
/// let current = follower.get_current_snapshot().await?.expect("the installed snapshot");
/// assert_eq!(current.meta.last_log_id.map(|l| l.index), Some(3));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok(()) }
/// ```
pub struct SealedData {
    inner: Inner,
}

enum Inner {
    Reading {
        file: Committed,
        pos: u64,
    },
    Receiving {
        /// Boxed: the receiving state is larger than the reading one.
        file: Box<Incoming>,
        /// The store `file` ingests into; weak, so data still being received does not keep
        /// the store (and its directory lock) open past the state machine.
        store: Weak<SnapshotStore>,
        /// A fresh pending file in the same store, for a re-send from the start.
        restart: Restart,
    },
}

/// Begins a new pending file of the store a receiving [`SealedData`] writes into; `None` once
/// the state machine is gone.
pub(crate) type Restart = Box<dyn Fn() -> Option<IngestFile> + Send + Sync>;

/// Opens and verifies a committed file.
pub(crate) type Opener = Box<dyn FnOnce() -> Result<SnapshotFile, Error> + Send>;

/// A committed file to read: verified already, or opened and verified on first use.
struct Committed {
    /// Bytes of the stream: the file's, plus the chunks' for a chunked file.
    len: u64,
    /// The chunks sent after a chunked file (its store's, read as they are sent).
    chunks: Option<Arc<Bundle>>,
    opener: Mutex<Option<Opener>>,
    file: OnceLock<Result<Arc<SnapshotFile>, Arc<Error>>>,
}

impl Committed {
    /// The verified file, opening it first if it is not open yet.
    fn get(&self) -> Result<&Arc<SnapshotFile>, &Arc<Error>> {
        self.file
            .get_or_init(|| match self.opener.lock().take() {
                Some(open) => open().map(Arc::new).map_err(Arc::new),
                // Only the first `get` runs this, and the opener is there until then.
                None => Err(Arc::new(Error::Task("snapshot opener already used".into()))),
            })
            .as_ref()
    }

    fn read_error(e: &Arc<Error>) -> io::Error {
        io::Error::other(Arc::clone(e))
    }
}

impl SealedData {
    /// Data reading the verified committed `file`: its bytes alone. (The state machine's own
    /// data for a chunked file also carries the chunks, which it reads from its store.)
    pub fn reading(file: SnapshotFile) -> Self {
        // A seek to the end reads nothing: it is the file's length as verified, and cannot fail.
        let len = file.file_reader().seek(SeekFrom::End(0)).unwrap_or(0);
        SealedData {
            inner: Inner::Reading {
                file: Committed {
                    len,
                    chunks: None,
                    opener: Mutex::new(None),
                    file: OnceLock::from(Ok(Arc::new(file))),
                },
                pos: 0,
            },
        }
    }

    /// Data reading the verified committed `file` of `store`, followed by its chunks when it
    /// is chunked.
    pub(crate) fn reading_in(
        file: SnapshotFile,
        store: &Arc<SnapshotStore>,
    ) -> Result<Self, Error> {
        let mut data = SealedData::reading(file);
        if let Inner::Reading { file, .. } = &mut data.inner {
            let opened = file.get().map_err(|e| Error::Opening(Arc::clone(e)))?;
            if let Some(bundle) = Bundle::of(opened, file.len, store)? {
                file.len = bundle.len();
                file.chunks = Some(Arc::new(bundle));
            }
        }
        Ok(data)
    }

    /// Data reading a plain committed file of `len` bytes that `open` opens and verifies on
    /// first use.
    pub(crate) fn built(len: u64, open: Opener) -> Self {
        SealedData {
            inner: Inner::Reading {
                file: Committed {
                    len,
                    chunks: None,
                    opener: Mutex::new(Some(open)),
                    file: OnceLock::new(),
                },
                pos: 0,
            },
        }
    }

    /// Receiving data writing into `file`, a pending ingest of `store` (a chunked snapshot of
    /// more than `limit` bytes of state refused); `restart` makes a new one for a re-send from
    /// the start.
    pub(crate) fn receiving(
        file: IngestFile,
        limit: u64,
        store: Weak<SnapshotStore>,
        restart: Restart,
    ) -> Self {
        SealedData {
            inner: Inner::Receiving {
                file: Box::new(Incoming::new(file, limit)),
                store,
                restart,
            },
        }
    }

    /// The committed file this data reads, when it is reading data (opened and verified
    /// now if it was not yet; `None` if that fails, as a read would).
    pub fn file(&self) -> Option<&SnapshotFile> {
        match &self.inner {
            Inner::Reading { file, .. } => file.get().ok().map(|f| &**f),
            Inner::Receiving { .. } => None,
        }
    }

    /// Bytes received so far, for receiving data; the file length for reading data.
    pub fn len(&self) -> u64 {
        match &self.inner {
            Inner::Reading { file, .. } => file.len,
            Inner::Receiving { file, .. } => file.received(),
        }
    }

    /// True when there are no bytes (receiving data before the first write).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What an install is given; opening the file first if it was not open yet.
    pub(crate) fn into_kind(self) -> Result<DataKind, Error> {
        match self.inner {
            Inner::Reading { file, .. } => match file.get() {
                Ok(f) => Ok(DataKind::Reading(FileStream {
                    file: Arc::clone(f),
                    chunks: file.chunks.clone(),
                    pos: 0,
                })),
                Err(e) => Err(Error::Opening(Arc::clone(e))),
            },
            Inner::Receiving { file, .. } => Ok(DataKind::Receiving(file)),
        }
    }
}

/// What an install is given.
pub(crate) enum DataKind {
    /// Data read from a committed file (of this store or another), as a stream.
    Reading(FileStream),
    Receiving(Box<Incoming>),
}

/// Reads the file's bytes at `pos` into `buf` (one `pread`); 0 at or past the end.
fn read_at(file: &SnapshotFile, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut reader = file.file_reader();
    reader.seek(SeekFrom::Start(pos))?;
    reader.read(buf)
}

/// Reads the stream at `pos`: the file's bytes, then (for a chunked file) its chunks'.
fn stream_at(
    file: &SnapshotFile,
    chunks: Option<&Bundle>,
    pos: u64,
    buf: &mut [u8],
) -> io::Result<usize> {
    let n = read_at(file, pos, buf)?;
    match chunks {
        Some(bundle) if n == 0 => bundle.read_at(pos, buf),
        _ => Ok(n),
    }
}

/// A whole committed file's stream (with its chunks, for a chunked file), for ingesting it
/// into another store.
pub(crate) struct FileStream {
    file: Arc<SnapshotFile>,
    chunks: Option<Arc<Bundle>>,
    pos: u64,
}

impl Read for FileStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = stream_at(&self.file, self.chunks.as_deref(), self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a committed snapshot is read-only",
    )
}

impl AsyncRead for SealedData {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Reading { file, pos } => {
                // One `pread` (once open), which blocks no longer than a page fault on a map
                // of the file would: verifying it just read the whole file into the page cache.
                // Past a chunked file, one chunk of at most 256 KiB read from its pack and
                // hashed when the read enters it (verification read it just as recently).
                let chunks = file.chunks.as_deref();
                let opened = match file.get() {
                    Ok(f) => f,
                    Err(e) => return Poll::Ready(Err(Committed::read_error(e))),
                };
                let n = match stream_at(opened, chunks, *pos, buf.initialize_unfilled()) {
                    Ok(n) => n,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                buf.advance(n);
                *pos += n as u64;
                Poll::Ready(Ok(()))
            }
            Inner::Receiving { .. } => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a snapshot being received is write-only",
            ))),
        }
    }
}

impl AsyncWrite for SealedData {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            // One piece into the pending file's page cache (durability is the install's
            // fsync); past a chunked file, into the chunk being gathered, and a whole chunk
            // the store lacks into a pack.
            Inner::Receiving { file, store, .. } => Poll::Ready(match store.upgrade() {
                Some(store) => file.take(&store, buf).map(|()| buf.len()),
                None => Err(io::Error::other(
                    "the state machine receiving this snapshot has shut down",
                )),
            }),
            Inner::Reading { .. } => Poll::Ready(Err(read_only())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Completion (fsync, verify, rename) is the install's, off the runtime's threads.
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for SealedData {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        match &mut self.get_mut().inner {
            Inner::Reading { file, pos, .. } => {
                let len = file.len;
                let target = match position {
                    SeekFrom::Start(n) => Some(n),
                    SeekFrom::End(d) => len.checked_add_signed(d),
                    SeekFrom::Current(d) => pos.checked_add_signed(d),
                };
                match target {
                    Some(t) => {
                        *pos = t;
                        Ok(())
                    }
                    None => Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "seek before the start of the snapshot",
                    )),
                }
            }
            Inner::Receiving { file, restart, .. } => {
                let at = file.received();
                let target = match position {
                    SeekFrom::Start(n) => Some(n),
                    SeekFrom::Current(d) => at.checked_add_signed(d),
                    SeekFrom::End(d) => at.checked_add_signed(d),
                };
                if target == Some(at) {
                    Ok(())
                } else if target == Some(0) {
                    // The sender starts over: so do we. Replacing the file drops the old one,
                    // which removes its pending file; nothing of it was ever committed.
                    match restart() {
                        Some(fresh) => {
                            **file = Incoming::new(fresh, file.limit());
                            Ok(())
                        }
                        None => Err(io::Error::other(
                            "the state machine receiving this snapshot has shut down",
                        )),
                    }
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!(
                            "a snapshot is received in order: seek to {target:?} while at {at}"
                        ),
                    ))
                }
            }
        }
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(match &self.inner {
            Inner::Reading { pos, .. } => *pos,
            Inner::Receiving { file, .. } => file.received(),
        }))
    }
}

impl fmt::Debug for SealedData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Reading { file, pos, .. } => f
                .debug_struct("SealedData::Reading")
                .field(
                    "file",
                    &file.file.get().map(|r| r.as_ref().map(|f| f.path())),
                )
                .field("len", &file.len)
                .field("pos", pos)
                .finish(),
            Inner::Receiving { file, .. } => f
                .debug_struct("SealedData::Receiving")
                .field("received", &file.received())
                .finish(),
        }
    }
}
