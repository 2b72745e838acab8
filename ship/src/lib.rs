//! snapseal-ship: committed snapshots to object storage, and back.
//!
//! Built on [`object_store`], so the same code serves a local directory (`file:///…`, the
//! embedded default: no server needed; our own [`LocalStore`], which never leaves its
//! directory), S3 and S3-compatible servers (`s3://bucket/prefix`).
//!
//! - [`Shipper`] runs beside a node's Snapshotter and shares its
//!   [`SnapshotStore`](snapseal_persist::SnapshotStore): committed snapshots that verify go
//!   out oldest first, each uploaded once (a multipart upload shows nothing until it
//!   completes; an object already at the name is read back, never overwritten), confirmed —
//!   by the store's checksum where it proves the bytes, by reading the object back elsewhere
//!   ([`Confirm`]) — and only then named in the node's own index. Transient errors
//!   are retried with capped exponential backoff and jitter, terminal ones stop it; unshipped
//!   snapshots are held against local retention up to a bound. [`Shipper::ship`] is the async
//!   pass (on the caller's tokio runtime); `ship_pending`, `request` and `follow` block.
//! - [`restore()`] brings the newest remote snapshot that verifies against the trusted keys into
//!   a local store through its ingest, falling back to older ones.
//! - [`retention`]: remote gc (keep last N per node, TTL), holds and listing.
//! - [`repair`]: rewrites node indexes from what verifies, keeping every hold.
//!
//! Layout on the remote: `<prefix>/<node>/<committed file name>`, each node's own
//! `<prefix>/<node>/index.json` (one writer: that node's shipper), one object per hold under
//! `<prefix>/<node>/holds/`, and for chunked snapshots one object per chunk,
//! `<prefix>/<node>/chunks/<BLAKE3>`: only those the remote lacks are uploaded, a restore
//! fetches only those the local store lacks (from several remotes if given), and remote gc
//! deletes those no snapshot object of the node names. See docs/SHIPPING.md for the model
//! and the failure behaviour.
//!
//! ```
//! use std::sync::Arc;
//! use snapseal_persist::fs::RealFs;
//! use snapseal_persist::receipt::Ed25519Verifier;
//! use snapseal_persist::{SigningKey, SnapshotStore, StoreOptions};
//! use snapseal_ship::{restore, Remote, RemoteOptions, RestoreOptions, ShipConfig, Shipper};
//! # use std::io::Write;
//! # use snapseal_persist::receipt::statement_receipt;
//! # use snapseal_persist::BodyBuilder;
//! # type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
//! # // A snapshot of `state` committed at `idx` and proven at `idx + 1` by a statement `key`
//! # // signs: what the node's Snapshotter does (see snapseal_persist's crate example).
//! # fn commit(store: &SnapshotStore, key: &SigningKey, idx: u64, state: &[u8]) -> Result<()> {
//! #     let mut body = BodyBuilder::new(None)?;
//! #     body.write_all(state)?;
//! #     let body = body.finish()?;
//! #     let receipt = statement_receipt(key, &body.claims(idx), idx + 1, None)?;
//! #     body.commit(store, idx, idx + 1, &receipt)?;
//! #     Ok(())
//! # }
//! # // Stores trusting statements by `key`.
//! # fn trusting(key: &SigningKey) -> StoreOptions {
//! #     let verifier = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
//! #     StoreOptions::new(Arc::new(verifier))
//! # }
//!
//! # fn main() -> Result<()> {
//! let key = SigningKey::from_bytes(&[7; 32]);
//! let (node_dir, backups, fresh_dir) = (tempfile::tempdir()?, tempfile::tempdir()?, tempfile::tempdir()?);
//! let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), node_dir.path(), trusting(&key))?);
//! commit(&store, &key, 10, b"state at 10")?;
//!
//! // The node ships to a directory (`file://`; `s3://bucket/prefix` with the `s3` feature).
//! let url = format!("file://{}", backups.path().display());
//! let remote = Arc::new(Remote::open(&url, &RemoteOptions::default())?);
//! let shipper = Shipper::new(Arc::clone(&remote), Arc::clone(&store), ShipConfig::new("node-1"))?;
//! // Blocking; on a tokio runtime, `shipper.ship().await`.
//! let report = shipper.ship_pending()?;
//! assert_eq!(report.shipped.len(), 1);
//!
//! // A node rebuilt from nothing restores the newest snapshot that verifies.
//! let fresh = SnapshotStore::open(Arc::new(RealFs), fresh_dir.path(), trusting(&key))?;
//! let restored = restore(&remote, &fresh, &RestoreOptions::default())?;
//! assert_eq!(fresh.latest()?.map(|s| *s.name()), Some(restored.name));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

#[cfg(feature = "s3")]
mod checksum_probe;
mod chunk_gc;
mod chunk_sweep;
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
mod remote_chunks;
mod remote_index;
pub mod repair;
mod restore;
mod restore_chunks;
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
