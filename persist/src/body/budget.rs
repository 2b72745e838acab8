//! [`MemoryBudget`]: the in-memory allowance pending bodies share, with its pool of spare
//! chunks, and [`SpillTarget`]: where a body goes once the allowance is used up.

use std::sync::Arc;

use parking_lot::Mutex;

use super::{huge_pages, MEMORY_CHUNK};
use crate::SnapshotStore;

/// The in-memory allowance shared by pending bodies (a Snapshotter's, or a node's own
/// builders'). Cloning shares it.
///
/// It also keeps the buffers of finished in-memory bodies for the next ones (a *spare*
/// pool): their pages are already faulted in, so filling them again costs a copy, not a page
/// fault per 4 KiB. Spare buffers count against the limit like live ones (`used + spare <=
/// limit` always holds), and are freed as soon as a body needs the room for fresh memory.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    limit: u64,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    used: u64,
    /// Whole [`MEMORY_CHUNK`] buffers, cleared, kept for reuse.
    spare: Vec<Vec<u8>>,
}

impl BudgetState {
    fn spare_bytes(&self) -> u64 {
        self.spare.len() as u64 * MEMORY_CHUNK as u64
    }
}

impl MemoryBudget {
    /// A budget of `limit` bytes, none used.
    pub fn new(limit: u64) -> Self {
        Self {
            inner: Arc::new(BudgetInner {
                limit,
                state: Mutex::new(BudgetState::default()),
            }),
        }
    }

    internals_pub! {
        /// The limit in bytes.
        fn limit(&self) -> u64 {
            self.inner.limit
        }
    }

    internals_pub! {
        /// Bytes currently held by in-memory bodies (and builders) under this budget.
        fn used(&self) -> u64 {
            self.inner.state.lock().used
        }
    }

    internals_pub! {
        /// Bytes held by spare buffers kept for reuse (also within the limit).
        fn spare(&self) -> u64 {
            self.inner.state.lock().spare_bytes()
        }
    }

    /// Takes `n` more bytes of fresh memory if that keeps live and spare bytes within the
    /// limit, freeing spare buffers to make room.
    fn try_take(&self, n: u64) -> bool {
        let mut st = self.inner.state.lock();
        loop {
            let total = st.used.saturating_add(st.spare_bytes()).saturating_add(n);
            if total <= self.inner.limit {
                st.used += n;
                return true;
            }
            if st.spare.pop().is_none() {
                return false;
            }
        }
    }

    /// A spare buffer (cleared, capacity [`MEMORY_CHUNK`]), its bytes moved from spare to used.
    fn take_spare(&self) -> Option<Vec<u8>> {
        let mut st = self.inner.state.lock();
        let buf = st.spare.pop()?;
        st.used += MEMORY_CHUNK as u64;
        Some(buf)
    }

    /// Keeps `buf` for reuse when it is a whole chunk, moving its bytes from used to spare;
    /// returns whether it was kept (else the caller drops it).
    fn park(&self, mut buf: Vec<u8>) -> bool {
        if buf.capacity() != MEMORY_CHUNK {
            return false;
        }
        buf.clear();
        let mut st = self.inner.state.lock();
        st.used = st.used.saturating_sub(MEMORY_CHUNK as u64);
        st.spare.push(buf);
        true
    }

    fn give_back(&self, n: u64) {
        let mut st = self.inner.state.lock();
        st.used = st.used.saturating_sub(n);
    }
}

/// Where a builder may spill: the store owning the snapshot directory, the names of the
/// pending file, and the budget that decides when.
#[derive(Clone, Debug)]
pub struct SpillTarget {
    /// The store whose directory receives the pending file.
    pub store: Arc<SnapshotStore>,
    /// Snapshot index (part of the pending name).
    pub idx: u64,
    /// Generation number (part of the pending name).
    pub generation: u64,
    /// The shared in-memory allowance.
    pub budget: MemoryBudget,
}

/// Bytes taken from a [`MemoryBudget`], given back on drop.
#[derive(Debug)]
pub(super) struct Reservation {
    budget: Option<MemoryBudget>,
    bytes: u64,
}

impl Reservation {
    pub(super) fn none(budget: Option<MemoryBudget>) -> Self {
        Self { budget, bytes: 0 }
    }

    /// Grows the reservation by `n`; false (and unchanged) when the budget refuses. Without
    /// a budget everything is allowed.
    pub(super) fn grow(&mut self, n: u64) -> bool {
        match &self.budget {
            None => true,
            Some(b) if b.try_take(n) => {
                self.bytes += n;
                true
            }
            Some(_) => false,
        }
    }

    /// A whole chunk for the body: a spare one (pages already faulted in) when the budget has
    /// one, else fresh memory if the budget allows; `None` when it refuses. Without a budget,
    /// always fresh memory.
    pub(super) fn chunk(&mut self) -> Option<Vec<u8>> {
        if let Some(buf) = self.spare_chunk() {
            return Some(buf);
        }
        self.grow(MEMORY_CHUNK as u64).then(|| {
            let mut chunk = Vec::with_capacity(MEMORY_CHUNK);
            huge_pages::advise(&mut chunk);
            chunk
        })
    }

    /// A spare whole chunk from the budget, counted by this reservation; `None` when there
    /// is none.
    pub(super) fn spare_chunk(&mut self) -> Option<Vec<u8>> {
        let buf = self.budget.as_ref()?.take_spare()?;
        self.bytes += MEMORY_CHUNK as u64;
        Some(buf)
    }

    /// Hands `buf` back: kept as a spare when it is a whole chunk counted by this
    /// reservation, else freed with the reservation.
    pub(super) fn release(&mut self, buf: Vec<u8>) {
        let Some(b) = &self.budget else { return };
        if self.bytes >= MEMORY_CHUNK as u64 && b.park(buf) {
            self.bytes -= MEMORY_CHUNK as u64;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.bytes);
        }
    }
}
