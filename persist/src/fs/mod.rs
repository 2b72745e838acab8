//! The filesystem a [`SnapshotStore`](crate::SnapshotStore) runs on: what
//! [`SnapshotStore::open`](crate::SnapshotStore::open) takes.
//!
//! - [`RealFs`]: the real thing, over `openat`/`renameat2`/`linkat`/`unlinkat`/`fsync`, every
//!   call relative to the open snapshot directory (so it cannot be swapped out between calls)
//!   and `O_NOFOLLOW` on every file open;
//! - `SimFs` (feature `sim`): an in-memory model with a power-loss crash model and fault
//!   injection, for tests. Not compiled into production builds.
//!
//! Behind [`FileSystem`] is the seam itself, `internals::fs` with the `internals` feature: a
//! directory handle does everything relative to one open directory (so it cannot be swapped
//! out between calls), with every name a single file name. Its errors are plain `io::Error`s
//! carrying the raw OS error code, so callers match on errno the same way for both
//! implementations; a name that is not a single file name is `io::ErrorKind::InvalidInput`
//! without an OS code, because no system call was made.

pub(crate) mod bytes;
pub(crate) mod durable;
mod name_check;
mod real;
pub(crate) mod seam;
#[cfg(feature = "sim")]
mod sim;
pub(crate) mod untrusted;

pub(crate) use bytes::FileBytes;
pub(crate) use durable::{write_all, write_all_at};
pub use real::RealFs;
pub use seam::FileSystem;
pub(crate) use seam::{
    is_noreplace_unsupported, DirEntry, DirHandle, DirLock, EntryKind, NotRegular, ReadableFile,
    WritableFile,
};
#[cfg(feature = "sim")]
pub use sim::{Fault, FaultKind, Op, OpRecord, Outcome, SimFs, Trigger};
pub(crate) use untrusted::{Untrusted, UntrustedError};
