//! What a node under a [`CrashTest`](super::CrashTest) provides: its own state type, how a
//! committed write changes it, the `StateSource` snapseal captures from, and its restore.

use std::error::Error;
use std::fmt::Debug;
use std::io::Read;
use std::sync::Arc;

use snapseal_actors::StateSource;

/// A node's state machine as the crash driver drives it: the embedder implements this for the
/// type its own node keeps (not the simulator's key-value state).
///
/// The driver plays a Raft-like log in front of it: writes are appended, committed and applied
/// in log order, and only committed writes are ever [`apply`](Self::apply)ed. It commits
/// snapshot points one by one, so when snapseal first calls
/// [`StateSource::capture(idx)`](StateSource::capture) the live state is exactly the state at
/// `idx`. A rollback of an uncommitted tail can make snapseal capture the same `idx` again
/// later, when the live state has moved on: the `StateSource` must then hand out the version it
/// kept for `idx` (until [`StateSource::release`]), or the recovered snapshot will not match the
/// state the node had at that index, and the driver says so.
///
/// Equality (`PartialEq`) is the node's own notion of "the same state": after a crash the driver
/// compares the restored node with a node rebuilt from the log.
pub trait CrashNode: Default + PartialEq + Debug {
    /// Applies the committed write at log index `idx`. `write` is a number the driver drew from
    /// the seed; the node turns it into one of its own operations (a key and a value, a
    /// transfer, …), the same one every time it sees the same number.
    fn apply(&mut self, idx: u64, write: u64);

    /// The state source the Snapshotter captures from (asked once per incarnation, and again
    /// after each recovery, of the restored node).
    fn state_source(&self) -> Arc<dyn StateSource>;

    /// A node rebuilt from a snapshot body: the bytes its
    /// [`StateView::write_to`](snapseal_actors::StateView::write_to) wrote. An error fails the
    /// run (a body snapseal verified must decode).
    fn restore(body: &mut dyn Read) -> Result<Self, Box<dyn Error + Send + Sync>>;
}
