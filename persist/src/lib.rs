//! snapseal-persist: the on-disk side of snapseal.
//!
//! File names, the committed file format, receipts and their verification, the crash-safe
//! writer, the reader and the store, and the filesystem seam that lets tests inject faults and
//! crashes. This crate knows nothing about actors or the task system.
//!
//! The main entry point is [`SnapshotStore`]: it owns one snapshot directory (exclusive lock),
//! cleans up after crashes when opened, commits snapshots with [`SnapshotStore::persist`]
//! (the exact write sequence of SPEC §5), finds the newest snapshot that verifies with
//! [`SnapshotStore::latest`] (quarantining ones that do not), and applies retention without
//! ever deleting a snapshot under a [`Hold`]. [`classify_dir`] and [`plan_latest`] give the
//! same view of a directory read-only, without the store's lock (for operator tools).
//!
//! # Layout of the API
//!
//! Every item has exactly one path. The store, its names, reader, errors and retention types
//! are at the crate root. Three public modules group what a reader looks at together:
//! - [`format`](mod@format): the committed file's byte layout (header, flags, digests);
//! - [`receipt`]: receipts and their schemes (the Merkle receipt and tree, the signed statement
//!   for ledgers without a tree), the [`ReceiptScheme`](receipt::ReceiptScheme) seam for other
//!   ledger schemes and the [`ReceiptVerifier`](receipt::ReceiptVerifier) a store is given;
//! - [`fs`]: the filesystem seam ([`FileSystem`](fs::FileSystem) and [`RealFs`](fs::RealFs));
//!   with the `sim` feature also `SimFs`, the in-memory filesystem with its crash and fault
//!   model (for tests; not in production builds).
//!
//! The Ed25519 key types are re-exported ([`SigningKey`], [`VerifyingKey`]) so a user of
//! this crate names the same `ed25519-dalek` version as it does. The `internals` feature
//! exposes `SnapshotWriter`, the bare write sequence without the store's lock and retention,
//! for this crate's tests and benchmarks.
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::Arc;
//! use snapseal_persist::fs::RealFs;
//! use snapseal_persist::receipt::Ed25519Verifier;
//! use snapseal_persist::{SnapshotStore, StoreOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let trusted_keys = Vec::new();
//! let verifier = Arc::new(Ed25519Verifier::new(trusted_keys));
//! let store = SnapshotStore::open(Arc::new(RealFs), Path::new("/var/lib/node/snapshots"),
//!     StoreOptions::new(verifier))?;
//! if let Some(snapshot) = store.latest()? {
//!     let mut body = Vec::new();
//!     std::io::Read::read_to_end(&mut snapshot.body_reader()?, &mut body)?;
//!     println!("recovering from {} ({} bytes)", snapshot.path().display(), body.len());
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod claims;
mod dir_guard;
mod error;
mod escape;
pub mod format;
pub mod fs;
mod hex;
mod hold;
mod names;
mod options;
mod quarantine;
mod reader;
pub mod receipt;
mod retention;
mod scan;
mod store;
mod writer;

pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::{
    BodyError, Check, Error, IngestError, PersistError, Step, StoreError, StoreStep, VerifyError,
};
pub use escape::Escaped;
pub use hex::{hash_from_hex, to_hex};
pub use hold::Hold;
pub use names::{FileState, OurFile, PendingName, SnapshotName, LOCK_FILE};
pub use options::StoreOptions;
pub use reader::{
    check_body_encoding, open_snapshot, read_checked, verify_bytes, verify_file, BodyReader,
    SnapshotFile, VerifiedFile, VerifiedSnapshot,
};
pub use retention::{plan_retention, RetentionPlan, RetentionReport, Standing};
pub use scan::{classify_dir, EntryClass, ListedEntry, PendingEntry, SnapshotEntry};
pub use store::{plan_latest, LatestPlan, PassOverReason, PassedOver, SnapshotStore, StoreStats};
#[cfg(feature = "internals")]
pub use writer::SnapshotWriter;
pub use writer::{
    Committed, GatheredRequest, IngestFile, Ingested, PersistRequest, SpillCommit, SpillFile,
    VerifiedIngest,
};

/// A BLAKE3 (or Merkle node) digest: 32 bytes.
pub type Hash = [u8; 32];
