//! snapseal-ship: committed snapshots to object storage, and back.
//!
//! Built on [`object_store`], so the same code serves a local directory (`file:///…`, the
//! embedded default: no server needed; our own [`LocalStore`], which never leaves its
//! directory), S3 and S3-compatible servers (`s3://bucket/prefix`).
//!
//! - [`Shipper`] runs beside a node's Snapshotter and shares its
//!   [`SnapshotStore`](snapseal_persist::SnapshotStore): committed snapshots that verify go
//!   out oldest first, each uploaded once, visible on the remote only complete (a conditional
//!   create, or a multipart upload that shows nothing until it completes), confirmed by reading
//!   back their size and BLAKE3, and only then named in the remote [`index`]. Transient errors
//!   are retried with capped exponential backoff and jitter, terminal ones stop it; unshipped
//!   snapshots are held against local retention up to a bound.
//! - [`restore()`] brings the newest remote snapshot that verifies against the trusted keys into
//!   a local store through its ingest, falling back to older ones.
//! - [`retention`]: remote gc (keep last N per node, TTL), holds and listing.
//!
//! - [`repair`]: rewrites node indexes from what verifies, keeping every hold.
//!
//! Layout on the remote: `<prefix>/<node>/<committed file name>`, each node's own
//! `<prefix>/<node>/index.json` (one writer: that node's shipper), one object per hold under
//! `<prefix>/<node>/holds/`. See docs/SHIPPING.md for the model and the failure behaviour.
//!
//! ```no_run
//! use std::sync::Arc;
//! use snapseal_persist::{fs::RealFs, receipt::Schemes, SnapshotStore, StoreOptions};
//! use snapseal_ship::{Remote, RemoteOptions, ShipConfig, Shipper};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(SnapshotStore::open(
//!     Arc::new(RealFs),
//!     std::path::Path::new("/var/lib/node/snapshots"),
//!     StoreOptions::new(Arc::new(Schemes::new())),
//! )?);
//! let remote = Arc::new(Remote::open("file:///var/backups/snapseal", &RemoteOptions::default())?);
//! let shipper = Shipper::new(remote, store, ShipConfig::new("node-1"))?;
//! let report = shipper.ship_pending()?;
//! println!("shipped {} snapshots", report.shipped.len());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

#[cfg(feature = "s3")]
mod checksum_probe;
mod confirm;
mod error;
mod holds;
mod identity;
pub mod index;
mod layout;
mod local_error;
mod local_file;
mod local_store;
mod node_index;
mod orphans;
mod own_index;
mod remote;
mod remote_index;
pub mod repair;
mod restore;
pub mod retention;
mod runtime;
#[cfg(feature = "s3")]
mod s3;
mod shipper;
mod staging;
mod upload;
mod view;

pub use confirm::Confirm;
pub use error::{classify, describe, ErrorClass, ShipError};
pub use local_error::LocalError;
pub use local_store::{LocalStore, MAX_DEPTH};
pub use remote::{Remote, RemoteOptions, INDEX_OBJECT};
pub use restore::{
    restore, restore_async, RestoreOptions, RestoreProgress, Restored, MAX_RECEIPT_BYTES,
};
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub use shipper::FileHook;
pub use shipper::{
    valid_node_name, EventSink, ShipConfig, ShipEvent, ShipReport, ShipStats, Shipper,
};
