//! What the async edge can fail with: the blocking call's own error, or the runtime refusing
//! to run it.

use snapseal_actors::ConfigError;
use snapseal_persist::StoreError;

/// Why an async call of this crate did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store could not be opened or read; the error names the directory or file and the
    /// step.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The [`SnapshotterConfig`](snapseal_actors::SnapshotterConfig) has a field out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The runtime shut down before the blocking thread that was to run `step` ran it: the
    /// step was not done (for a close: the Snapshotter was dropped instead, which closes it
    /// with `Cancel` on whatever thread dropped it).
    #[error("{step}: the tokio runtime shut down before the blocking thread ran it")]
    RuntimeShutDown {
        /// What was to run: "opening the snapshot store", "closing the snapshotter", …
        step: &'static str,
    },
}
