//! [`FileBytes`]: the read-only contents of a whole file.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

internals_pub! {
    /// Read-only bytes of a whole file, as returned by
    /// [`DirHandle::open_read`](super::DirHandle::open_read).
    ///
    /// Backed by a memory map for the real filesystem (large bodies are not copied into the heap)
    /// or by shared heap memory for the simulation. Cheap to pass between threads.
    ///
    /// A memory map reflects the file as it is on disk: if another process truncated the file
    /// while it is mapped, touching the lost pages would fault (SIGBUS). The store prevents that by
    /// holding the directory lock and never modifying a committed file in place; a reader without
    /// the lock can open the directory with
    /// [`RealFs::open_dir_unmapped`](super::RealFs::open_dir_unmapped) to get copied bytes instead.
    struct FileBytes {
        inner: Inner,
    }
}

enum Inner {
    Empty,
    Mapped(memmap2::Mmap),
    Shared(Arc<[u8]>),
}

impl FileBytes {
    internals_pub! {
        /// Zero bytes (what an empty file reads as; `mmap` cannot map zero bytes).
        fn empty() -> Self {
            Self {
                inner: Inner::Empty,
            }
        }
    }

    /// Wraps a read-only memory map (the real filesystem's reads; the map's type stays
    /// this crate's business).
    pub(crate) fn from_mmap(map: memmap2::Mmap) -> Self {
        Self {
            inner: Inner::Mapped(map),
        }
    }

    internals_pub! {
        /// Wraps shared heap bytes.
        fn from_shared(bytes: Arc<[u8]>) -> Self {
            Self {
                inner: Inner::Shared(bytes),
            }
        }
    }

    internals_pub! {
        /// True when the bytes come from a memory map.
        fn is_mapped(&self) -> bool {
            matches!(self.inner, Inner::Mapped(_))
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
        match &self.inner {
            Inner::Empty => &[],
            Inner::Mapped(map) => map,
            Inner::Shared(bytes) => bytes,
        }
    }
}

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for FileBytes {
    // The contents can be gigabytes; show only what they are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match self.inner {
            Inner::Empty => "empty",
            Inner::Mapped(_) => "mmap",
            Inner::Shared(_) => "heap",
        };
        f.debug_struct("FileBytes")
            .field("len", &self.len())
            .field("source", &source)
            .finish()
    }
}
