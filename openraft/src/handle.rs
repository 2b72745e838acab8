//! [`StateHandle`]: the application's view of the running state, shared with the state machine
//! that openraft owns.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use parking_lot::RwLock;

/// The live state of a [`SealedStateMachine`](crate::SealedStateMachine), readable by the
/// application while openraft owns the machine.
///
/// Take it with [`state_handle`](crate::SealedStateMachine::state_handle) before handing the
/// machine to `Raft::new`; clones share the same state. It follows everything the machine does
/// to the state: entries applied, a snapshot installed (the restored state replaces the
/// contents in place, so the handle stays valid), the state recovered at open. A key-value
/// service answers a GET from it.
///
/// [`read`](Self::read) gives the state as the machine last left it: the entries of an
/// `apply` call become visible together, and a snapshot install all at once. It says nothing
/// of Raft's read consistency: for a linearizable read, have the leader confirm it still
/// leads (openraft's `Raft::ensure_linearizable`) and wait until the applied index reached
/// the index it returns before reading.
///
/// ```
/// # use std::io::{Read, Write};
/// # use openraft::storage::RaftStateMachine;
/// # use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
/// # use snapseal_openraft::{SealOptions, SealedData, SealedState, SealedStateMachine};
/// # use snapseal_persist::SigningKey;
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
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let key = SigningKey::from_bytes(&[7; 32]);
/// # let opts = SealOptions::new(key.clone(), vec![key.verifying_key()]);
/// let mut sm: SealedStateMachine<Config, Sum> = SealedStateMachine::open(dir.path(), opts)?;
/// let sum = sm.state_handle(); // kept by the application; `sm` goes to `Raft::new`
/// # let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// # rt.block_on(async {
/// # let entry = |index, n| Entry::<Config> {
/// #     log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
/// #     payload: EntryPayload::Normal(n),
/// # };
/// sm.apply([entry(1, 5), entry(2, 7)]).await?; // what openraft does as entries commit
/// # Ok::<_, openraft::StorageError<u64>>(())
/// # })?;
/// assert_eq!(sum.read().0, 12);
/// # Ok(()) }
/// ```
pub struct StateHandle<S> {
    state: Arc<RwLock<S>>,
}

impl<S> StateHandle<S> {
    pub(crate) fn new(state: S) -> Self {
        StateHandle {
            state: Arc::new(RwLock::new(state)),
        }
    }

    /// The state, locked for reading: applying entries and installing a snapshot wait until
    /// the returned guard is dropped, so keep it briefly and never across an `.await`.
    pub fn read(&self) -> impl Deref<Target = S> + '_ {
        self.state.read()
    }

    /// Runs `f` on the state locked for writing (applying a batch of entries).
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut self.state.write())
    }

    /// Puts `state` in place of the current one and returns the one it replaced. The lock is
    /// held only for the swap: `state` was built beforehand, off the lock.
    pub(crate) fn replace(&self, state: S) -> S {
        std::mem::replace(&mut *self.state.write(), state)
    }
}

impl<S> Clone for StateHandle<S> {
    fn clone(&self) -> Self {
        StateHandle {
            state: Arc::clone(&self.state),
        }
    }
}

impl<S> fmt::Debug for StateHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateHandle").finish_non_exhaustive()
    }
}
