//! [`FileBytes`]: the read-only contents of a whole file.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

internals_pub! {
    /// Read-only bytes of a whole file, as returned by
    /// [`DirHandle::open_read`](super::DirHandle::open_read): a copy in shared heap memory,
    /// never a mapping of the file (one another process truncates cannot fault the reader).
    /// Cheap to pass between threads.
    struct FileBytes {
        bytes: Arc<[u8]>,
    }
}

impl FileBytes {
    internals_pub! {
        /// Zero bytes (what an empty file reads as).
        fn empty() -> Self {
            Self::from_shared(Arc::from(&[][..]))
        }
    }

    internals_pub! {
        /// Wraps shared heap bytes.
        fn from_shared(bytes: Arc<[u8]>) -> Self {
            Self { bytes }
        }
    }
}

impl From<Vec<u8>> for FileBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::from_shared(bytes.into())
    }
}

impl Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for FileBytes {
    // The contents can be gigabytes; show only how many.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBytes")
            .field("len", &self.len())
            .finish()
    }
}
