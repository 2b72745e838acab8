//! [`StoreOptions`]: the store's configuration, validated before anything touches the disk.

use std::sync::Arc;

use crate::error::StoreError;
use crate::receipt::ReceiptVerifier;

/// Committed snapshots retention keeps by default.
const DEFAULT_KEEP_LAST: usize = 5;
/// Quarantined files kept by default.
const DEFAULT_MAX_QUARANTINED: usize = 3;

/// Configuration of a [`SnapshotStore`](crate::SnapshotStore).
///
/// Start from [`new`](Self::new) (the defaults, with the receipt verifier) and change the
/// fields that differ; [`SnapshotStore::open`](crate::SnapshotStore::open) checks them before
/// it touches the disk.
///
/// ```
/// use std::sync::Arc;
/// use snapseal_persist::fs::RealFs;
/// use snapseal_persist::receipt::Ed25519Verifier;
/// use snapseal_persist::{SigningKey, SnapshotStore, StoreError, StoreOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let ledger_key = SigningKey::from_bytes(&[9; 32]).verifying_key();
/// let mut opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![ledger_key])));
/// assert_eq!((opts.keep_last, opts.max_bytes, opts.max_quarantined), (5, None, 3));
///
/// // Retention may never delete the newest snapshot: keep_last 0 is refused by name.
/// opts.keep_last = 0;
/// let refused = SnapshotStore::open(Arc::new(RealFs), dir.path(), opts.clone());
/// assert!(matches!(refused, Err(StoreError::InvalidOption { field: "keep_last", .. })));
///
/// opts.keep_last = 2;
/// opts.max_bytes = Some(10 << 30); // and at most 10 GiB of snapshots (the newest always stays)
/// let store = SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?;
/// assert_eq!(store.dir(), dir.path());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Committed snapshots retention keeps (newest first). At least 1. Default 5.
    pub keep_last: usize,
    /// When set, retention also drops the oldest kept snapshots while their total size exceeds
    /// this many bytes (never the newest one). Must be positive. Default: no limit.
    pub max_bytes: Option<u64>,
    /// Quarantined (`.corrupt`) files kept for inspection; older ones beyond this are deleted.
    /// 0 deletes a failing file right after quarantining it. Default 3.
    pub max_quarantined: usize,
    /// Checks receipts against the trusted schemes and keys. Which scheme a file uses is read
    /// from its receipt; this only says what is trusted: e.g.
    /// [`Ed25519Verifier::new`](crate::receipt::Ed25519Verifier::new) for Merkle receipts
    /// signed by the ledger's keys, plus
    /// [`with_statement_keys`](crate::receipt::Ed25519Verifier::with_statement_keys) for
    /// signed statements, or [`Schemes`](crate::receipt::Schemes) with a node's own scheme. A
    /// file of a scheme or key not trusted here is passed over, not quarantined.
    pub verifier: Arc<dyn ReceiptVerifier>,
    /// Chunked snapshots (docs/FORMAT.md §2.2, §10): a body built for this store with
    /// [`BodyBuilder::with_spill`](crate::BodyBuilder::with_spill) is cut into
    /// content-defined chunks (FastCDC, 16 / 64 / 256 KiB), each stored once in pack files
    /// beside the snapshots, and the snapshot file holds only the chunk list, so a snapshot
    /// writes only the chunks that changed. Compression is not combined with it (such a
    /// builder is refused). Reading needs nothing: a store reads chunked and plain snapshots
    /// whatever this says. Default: off.
    pub chunked: bool,
}

impl StoreOptions {
    /// Default keep_last (feature `internals`; [`new`](Self::new) sets it).
    #[cfg(feature = "internals")]
    pub const DEFAULT_KEEP_LAST: usize = DEFAULT_KEEP_LAST;
    /// Default max_quarantined (feature `internals`; [`new`](Self::new) sets it).
    #[cfg(feature = "internals")]
    pub const DEFAULT_MAX_QUARANTINED: usize = DEFAULT_MAX_QUARANTINED;

    /// The defaults (keep_last 5, no byte limit, max_quarantined 3) with `verifier`.
    pub fn new(verifier: Arc<dyn ReceiptVerifier>) -> Self {
        Self {
            keep_last: DEFAULT_KEEP_LAST,
            max_bytes: None,
            max_quarantined: DEFAULT_MAX_QUARANTINED,
            verifier,
            chunked: false,
        }
    }

    internals_pub! {
        /// Checks every field; the error names the first field out of range.
        fn validate(&self) -> Result<(), StoreError> {
            if self.keep_last == 0 {
                return Err(StoreError::InvalidOption {
                    field: "keep_last",
                    reason: "must be at least 1 (retention never deletes the newest snapshot)"
                        .into(),
                });
            }
            if self.max_bytes == Some(0) {
                return Err(StoreError::InvalidOption {
                    field: "max_bytes",
                    reason: "must be positive; leave it unset for no byte limit".into(),
                });
            }
            Ok(())
        }
    }
}
