//! snapseal-persist: the on-disk side of snapseal.
//!
//! Snapshot bodies streamed in bounded memory, the committed file format, receipts and their
//! verification, the crash-safe writer, the reader and the store. This crate knows nothing
//! about actors; it uses the engine only to lower its hashing threads' priority.
//!
//! The main entry point is [`SnapshotStore`]: it owns one snapshot directory (exclusive
//! lock), cleans up after crashes when opened, finds the newest snapshot that verifies with
//! [`SnapshotStore::latest`] (quarantining ones that do not), brings in snapshot files from
//! outside ([`SnapshotStore::ingest`]), and applies retention without ever deleting a snapshot
//! under a [`Hold`]. Bodies reach it through a [`BodyBuilder`]: the state streams in, is hashed
//! (and optionally compressed) as it goes, spills to a pending file past its
//! [`MemoryBudget`], and the [`PendingBody`] is committed once the ledger proved its
//! [`Claims`] (the write sequence of SPEC §5). A store opened with
//! [`StoreOptions::chunked`] takes *chunked* snapshots: the body is cut into content-defined
//! chunks kept once each in pack files beside the snapshots, the snapshot file holds only the
//! list of their BLAKE3s (which the claims, hence the receipt, cover), and a snapshot writes
//! only the chunks that changed (docs/FORMAT.md §2.2, §10).
//!
//! # Layout of the API
//!
//! The types a node names are at the crate root. Two public modules hold the two seams:
//! - [`receipt`]: what the ledger proves and how a store checks it — the Merkle receipt and
//!   tree, the signed statement for ledgers without a tree, the
//!   [`ReceiptScheme`](receipt::ReceiptScheme) seam for other ledger schemes and the
//!   [`ReceiptVerifier`](receipt::ReceiptVerifier) a store is given;
//! - [`fs`]: the filesystem a store runs on: [`RealFs`](fs::RealFs), and with the `sim`
//!   feature `SimFs`, the in-memory filesystem with its crash and fault model (for tests).
//!
//! The Ed25519 key types are re-exported ([`SigningKey`], [`VerifyingKey`]) so a user of
//! this crate names the same `ed25519-dalek` version as it does; no other crate's type is in
//! this crate's API. The `internals` feature adds the `internals` module: the file format's
//! byte layout, the read-only directory and verification tools, the hardened file access and
//! the bare writer, for snapseal's own crates (the CLI, archive, ship, the simulator), tests and
//! benchmarks. It is not part of the API this crate promises.
//!
//! A node's whole round trip: commit the state at an index once the ledger proved it, and
//! find it again, verified, after a restart.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::sync::Arc;
//! use snapseal_persist::fs::RealFs;
//! use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
//! use snapseal_persist::{BodyBuilder, SigningKey, SnapshotStore, StoreOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let snapshots = tmp.path(); // e.g. /var/lib/node/snapshots
//! // This node signs a statement for each snapshot it commits; the store trusts that key.
//! let key = SigningKey::from_bytes(&[7; 32]);
//! let trusted = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
//! let opts = StoreOptions::new(Arc::new(trusted));
//! let store = SnapshotStore::open(Arc::new(RealFs), snapshots, opts.clone())?;
//!
//! // The state at index 10 streams in; the ledger committed it at index 11.
//! let mut body = BodyBuilder::new(None)?;
//! body.write_all(b"balance=42")?;
//! let body = body.finish()?;
//! let receipt = statement_receipt(&key, &body.claims(10), 11, None)?;
//! let committed = body.commit(&store, 10, 11, &receipt)?;
//! drop(store); // the directory lock goes with it
//!
//! // After a restart: the newest snapshot that verifies, and the state it holds.
//! let store = SnapshotStore::open(Arc::new(RealFs), snapshots, opts)?;
//! let snapshot = store.latest()?.expect("the snapshot committed above");
//! assert_eq!(*snapshot.name(), committed.name);
//! let mut state = Vec::new();
//! snapshot.body_reader()?.read_to_end(&mut state)?;
//! assert_eq!(state, b"balance=42");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
// Items that only the `internals` module makes reachable are unreachable (and some unused)
// without it, and the seam behind `fs::FileSystem` is the crate's own (so `FileSystem` is
// sealed); builds with tests, benches or snapseal's own crates have it on and check them.
#![cfg_attr(
    not(feature = "internals"),
    allow(unreachable_pub, dead_code, private_interfaces)
)]

#[macro_use]
mod visibility;

mod body;
mod chunks;
mod claims;
mod dir_guard;
mod error;
mod escape;
mod format;
pub mod fs;
mod hex;
mod hold;
#[cfg(feature = "internals")]
pub mod internals;
mod names;
mod options;
mod quarantine;
mod reader;
pub mod receipt;
mod retention;
mod scan;
mod store;
mod writer;

pub use body::budget::{MemoryBudget, SpillTarget};
pub use body::builder::BodyBuilder;
pub use body::hashing::{configure_hashing, hashing_config, HashingConfig, HashingError};
pub use body::pending::{FrozenChunk, PendingBody};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::{
    BodyError, Check, ErrorChain, IngestError, PersistError, Step, StoreError, StoreStep,
    VerifyError,
};
pub use format::{Claims, Flags, FormatError};
// A formatting utility for snapseal's own crates, not part of the contract.
#[cfg(feature = "internals")]
pub use hex::to_hex;
pub use hold::Hold;
pub use names::{FileState, SnapshotName};
pub use options::StoreOptions;
pub use reader::body::BodyReader;
pub use reader::SnapshotFile;
pub use retention::RetentionReport;
pub use scan::SnapshotEntry;
pub use store::{SnapshotStore, StoreStats};
pub use writer::ingest::{IngestFile, Ingested};
pub use writer::Committed;

/// A BLAKE3 (or Merkle node) digest: 32 bytes.
pub type Hash = [u8; 32];
