//! The names of the files in a snapshot directory (SPEC §5), and nothing else.
//!
//! - `snapshot_<idx>_<evidence_idx>`: being written (uncommitted);
//! - `snapshot_<idx>_<evidence_idx>.committed`: committed;
//! - `snapshot_<idx>_<evidence_idx>.committed.corrupt`: quarantined after failing verification;
//! - [`LOCK_FILE`] (`.lock`): the store's lock file; ours, but not a snapshot;
//! - `snapshot_<idx>.g<generation>.pending`: a *pending* body spilled to disk while its
//!   generation waits for the ledger's proof ([`PendingName`]). It carries no evidence index
//!   (there is none yet when the body is streamed); the `.g<generation>` part keeps two
//!   generations of one index apart. A pending file is never a snapshot: it becomes one only
//!   by the writer's rename to the committed name after fsync, and a leftover one is removed
//!   when the store opens. [`OurFile`] predates it and does not classify it; use
//!   [`PendingName::parse`].
//!
//! Numbers are plain decimal `u64`s: ASCII digits only, no sign, no leading zeros (`0` itself
//! is fine), no overflow. Any other name is not ours and must never be touched, so parsing is
//! strict: exactly one spelling per snapshot name, and `parse(file_name()) == Some(self)`.

use std::ffi::OsStr;
use std::fmt;

/// The store's lock file: ours, never a snapshot.
pub const LOCK_FILE: &str = ".lock";

const PREFIX: &str = "snapshot_";
const COMMITTED: &str = ".committed";
const CORRUPT: &str = ".committed.corrupt";
const PENDING: &str = ".pending";
const GENERATION: &str = ".g";

/// Where a snapshot file is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileState {
    /// Being written; a leftover one is stale after a crash.
    Uncommitted,
    /// Written, fsynced, renamed and the rename made durable.
    Committed,
    /// Committed once, then failed verification and was quarantined.
    Corrupt,
}

/// A parsed snapshot file name. Ordered by `(idx, evidence_idx, state)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotName {
    /// The ledger index the snapshot captures.
    pub idx: u64,
    /// The ledger index of the evidence transaction holding the snapshot's digest.
    pub evidence_idx: u64,
    /// Which of the three names this is.
    pub state: FileState,
}

impl SnapshotName {
    internals_pub! {
        /// Parses a file name; `None` when it is not a snapshot name of ours.
        fn parse(name: &str) -> Option<Self> {
            let (stem, state) = if let Some(stem) = name.strip_suffix(CORRUPT) {
                (stem, FileState::Corrupt)
            } else if let Some(stem) = name.strip_suffix(COMMITTED) {
                (stem, FileState::Committed)
            } else {
                (name, FileState::Uncommitted)
            };
            let numbers = stem.strip_prefix(PREFIX)?;
            let (idx, evidence_idx) = numbers.split_once('_')?;
            Some(Self {
                idx: parse_u64(idx)?,
                evidence_idx: parse_u64(evidence_idx)?,
                state,
            })
        }
    }

    internals_pub! {
        /// Like [`parse`](Self::parse), for a raw directory entry name (non-UTF-8 is not ours).
        fn parse_os(name: &OsStr) -> Option<Self> {
            name.to_str().and_then(Self::parse)
        }
    }

    internals_pub! {
        /// The file name for this snapshot in this state.
        fn file_name(&self) -> String {
            let suffix = match self.state {
                FileState::Uncommitted => "",
                FileState::Committed => COMMITTED,
                FileState::Corrupt => CORRUPT,
            };
            format!("{PREFIX}{}_{}{suffix}", self.idx, self.evidence_idx)
        }
    }

    internals_pub! {
        /// The same snapshot in another state (e.g. the committed name of an uncommitted file).
        fn with_state(self, state: FileState) -> Self {
            Self { state, ..self }
        }
    }
}

impl fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name())
    }
}

/// A parsed pending (spilled body) file name: `snapshot_<idx>.g<generation>.pending`.
/// Ordered by `(idx, generation)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PendingName {
    /// The ledger index the body captures.
    pub idx: u64,
    /// The Snapshotter generation streaming it (unique per index within one store's life).
    pub generation: u64,
}

impl PendingName {
    /// Parses a file name; `None` when it is not a pending name (strict: one spelling only,
    /// so `parse(file_name()) == Some(self)`).
    pub fn parse(name: &str) -> Option<Self> {
        let numbers = name.strip_prefix(PREFIX)?.strip_suffix(PENDING)?;
        let (idx, generation) = numbers.split_once(GENERATION)?;
        Some(Self {
            idx: parse_u64(idx)?,
            generation: parse_u64(generation)?,
        })
    }

    /// Like [`parse`](Self::parse), for a raw directory entry name (non-UTF-8 is not ours).
    pub fn parse_os(name: &OsStr) -> Option<Self> {
        name.to_str().and_then(Self::parse)
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        format!(
            "{PREFIX}{}{GENERATION}{}{PENDING}",
            self.idx, self.generation
        )
    }
}

impl fmt::Display for PendingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name())
    }
}

/// A name in the snapshot directory that is ours (pending names are [`PendingName`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OurFile {
    /// A snapshot file.
    Snapshot(SnapshotName),
    /// The lock file, [`LOCK_FILE`].
    Lock,
}

impl OurFile {
    /// Classifies a file name; `None` when it is not ours (and so must not be touched).
    pub fn parse(name: &str) -> Option<Self> {
        if name == LOCK_FILE {
            Some(OurFile::Lock)
        } else {
            SnapshotName::parse(name).map(OurFile::Snapshot)
        }
    }

    /// Like [`parse`](Self::parse), for a raw directory entry name.
    pub fn parse_os(name: &OsStr) -> Option<Self> {
        name.to_str().and_then(Self::parse)
    }
}

/// A canonical decimal `u64`: ASCII digits only, no leading zero unless it is `0`, in range.
pub(crate) fn parse_u64(digits: &str) -> Option<u64> {
    let bytes = digits.as_bytes();
    let canonical = match bytes {
        [] => false,
        [b'0'] => true,
        [b'0', ..] => false,
        _ => bytes.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    // Only digits remain (no sign, which `str::parse` would accept); this fails on overflow.
    digits.parse().ok()
}
