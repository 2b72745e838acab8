//! snapseal-persist: the on-disk side of snapseal.
//!
//! File names, the committed file format, receipts and their verification, the crash-safe
//! writer, the reader and the store, and the filesystem seam that lets tests inject faults and
//! crashes. This crate knows nothing about actors or the task system.
//!
//! The main entry point is [`SnapshotStore`]: it owns one snapshot directory (exclusive lock),
//! cleans up after crashes when opened, commits snapshots with [`SnapshotStore::persist`]
//! (the exact write sequence of SPEC §5, via [`SnapshotWriter`]), finds the newest snapshot
//! that verifies with [`SnapshotStore::latest`] (quarantining ones that do not), and applies
//! retention without ever deleting a snapshot under a [`Hold`].
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::Arc;
//! use snapseal_persist::receipt::Ed25519Verifier;
//! use snapseal_persist::{RealFs, SnapshotStore, StoreOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let trusted_keys = Vec::new();
//! let verifier = Arc::new(Ed25519Verifier::new(trusted_keys));
//! let store = SnapshotStore::open(Arc::new(RealFs), Path::new("/var/lib/node/snapshots"),
//!     StoreOptions::new(verifier))?;
//! if let Some(snapshot) = store.latest()? {
//!     println!("recovering from {} ({} body bytes)", snapshot.path().display(), snapshot.body().len());
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod error;
pub mod format;
pub mod fs;
pub mod hold;
pub mod names;
pub mod options;
mod quarantine;
pub mod reader;
pub mod receipt;
pub mod retention;
pub mod scan;
pub mod store;
pub mod writer;

pub use error::{Check, PersistError, Step, StoreError, StoreStep, VerifyError};
pub use fs::{FileSystem, RealFs, SimFs};
pub use hold::Hold;
pub use names::{FileState, PendingName, SnapshotName};
pub use options::StoreOptions;
pub use reader::{open_snapshot, verify_bytes, SnapshotFile, VerifiedSnapshot};
pub use retention::{RetentionPlan, RetentionReport};
pub use scan::{PendingEntry, SnapshotEntry};
pub use store::{SnapshotStore, StoreStats};
pub use writer::{Committed, PersistRequest, SnapshotWriter, SpillCommit, SpillFile};
