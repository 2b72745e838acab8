//! The manifest: the archive's first entry, and the rules an archive's listing must follow
//! before any of its bytes are acted on (docs/ARCHIVE.md, "The manifest").

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use snapseal_persist::internals::Escaped;
use snapseal_persist::{FileState, SnapshotName};

use crate::source::{cover, ChunkRef};

/// The manifest's format tag.
pub const FORMAT: &str = "snapseal-archive v1";

/// How much an archive holds; each level holds everything the one before does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The newest snapshot that verifies and the public keys: enough to start a node.
    Operational,
    /// Operational plus every ledger chunk from the snapshot to the commit index.
    Replay,
    /// Every retained snapshot that verifies and every chunk available; gaps listed.
    Archival,
    /// Archival plus every other regular file of the snapshot and ledger directories
    /// (quarantined and pending files, the open chunk, logs), under `debug/`, for a human to
    /// look at; never imported.
    Debug,
}

impl Level {
    /// The level's name as the CLI and the manifest spell it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Operational => "operational",
            Level::Replay => "replay",
            Level::Archival => "archival",
            Level::Debug => "debug",
        }
    }
}

/// What an artifact is. Artifacts come in this order in an archive (keys first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// A public key (32 raw Ed25519 bytes) under `keys/`.
    Key,
    /// A chunk of a chunked snapshot (docs/FORMAT.md §2.2) under `chunks/`, named by its
    /// BLAKE3. Before the snapshots, so an import has a snapshot's chunks in its store when
    /// it verifies the snapshot.
    Chunk,
    /// A committed snapshot file under `snapshots/`.
    Snapshot,
    /// A sealed ledger chunk under `ledger/`.
    Ledger,
    /// Any other file, under `debug/` (debug level): exported as found, never imported.
    Debug,
}

impl ArtifactKind {
    /// The directory its paths start with.
    pub fn prefix(self) -> &'static str {
        match self {
            ArtifactKind::Key => "keys/",
            ArtifactKind::Chunk => "chunks/",
            ArtifactKind::Snapshot => "snapshots/",
            ArtifactKind::Ledger => "ledger/",
            ArtifactKind::Debug => "debug/",
        }
    }

    /// The largest entry of this kind an archive may hold. Checked against the manifest
    /// before any entry is read, and against each entry's tar header before its data is: a
    /// chunk is verified whole in memory, so its cap bounds import's memory; snapshots and
    /// debug files stream through a fixed buffer.
    pub fn max_len(self) -> u64 {
        match self {
            ArtifactKind::Key => KEY_LEN,
            ArtifactKind::Chunk => MAX_SNAPSHOT_CHUNK,
            ArtifactKind::Snapshot => MAX_SNAPSHOT,
            ArtifactKind::Ledger => MAX_CHUNK,
            ArtifactKind::Debug => MAX_DEBUG,
        }
    }
}

/// One archived file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Path inside the archive.
    pub path: String,
    /// What it is.
    pub kind: ArtifactKind,
    /// Size in bytes.
    pub len: u64,
    /// BLAKE3 of its bytes, 64 lowercase hex digits.
    pub blake3: String,
}

/// A range of ledger indices the archive does not hold (archival and debug levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Missing {
    /// First missing index.
    pub from: u64,
    /// Last missing index.
    pub to: u64,
}

/// The manifest: level, the newest snapshot and commit index it was cut at, every artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The level the archive was exported at.
    pub level: Level,
    /// Index of the newest snapshot (the one a node starts from).
    pub snapshot_idx: u64,
    /// The commit index the export was cut at: the highest sealed ledger index the source
    /// held, and at least the signature index the newest snapshot's receipt proves.
    pub commit_idx: u64,
    /// Every artifact, in archive order.
    pub artifacts: Vec<Artifact>,
    /// Ledger ranges between 1 and `commit_idx` the archive does not hold.
    pub missing: Vec<Missing>,
}

/// A key entry's exact size.
pub const KEY_LEN: u64 = 32;
/// Largest `MANIFEST.json`.
pub const MAX_MANIFEST: u64 = 16 << 20;
/// Largest snapshot entry (streamed to disk, never held in memory).
pub const MAX_SNAPSHOT: u64 = 1 << 40;
/// Largest chunk entry (verified whole in memory).
pub const MAX_CHUNK: u64 = 1 << 30;
/// Largest snapshot chunk entry: a chunk's largest size (256 KiB, docs/FORMAT.md §2.2).
pub const MAX_SNAPSHOT_CHUNK: u64 = 256 << 10;
/// Largest debug entry (hashed as it streams, never written).
pub const MAX_DEBUG: u64 = 1 << 40;
/// Longest file name a debug path may end with.
const MAX_DEBUG_NAME: usize = 255;
/// The manifest's path in the archive.
pub const MANIFEST_PATH: &str = "MANIFEST.json";

/// What a manifest that passed [`check`] lists, parsed.
#[derive(Debug)]
pub(crate) struct Listing {
    /// Snapshot names, in archive order (oldest first).
    pub(crate) snapshots: Vec<SnapshotName>,
    /// Chunks, in archive order (by start), none overlapping.
    pub(crate) chunks: Vec<ChunkRef>,
}

/// Why a manifest was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// A replay archive lacks the entries `from ..= to`.
    Missing {
        /// First missing index.
        from: u64,
        /// Last missing index.
        to: u64,
    },
    /// Another rule is broken (printable: values from the manifest are escaped).
    Rule(String),
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Missing { from, to } => {
                write!(
                    f,
                    "ledger entries {from}..={to} are missing from a replay archive"
                )
            }
            Invalid::Rule(s) => f.write_str(s),
        }
    }
}

/// Whether `name` is a file name a debug path may end with: one path component of printable
/// UTF-8, not `.` or `..`.
pub(crate) fn is_debug_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_DEBUG_NAME
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

/// The order artifacts of one kind come in: keys and debug files by path, snapshots by
/// (idx, evidence_idx), chunks by start.
fn order_key(a: &Artifact) -> (u64, u64, &str) {
    let name = a.path.strip_prefix(a.kind.prefix()).unwrap_or_default();
    match a.kind {
        ArtifactKind::Snapshot => {
            SnapshotName::parse(name).map_or((0, 0, ""), |n| (n.idx, n.evidence_idx, ""))
        }
        ArtifactKind::Ledger => ChunkRef::parse_name(name).map_or((0, 0, ""), |(s, e)| (s, e, "")),
        ArtifactKind::Key | ArtifactKind::Chunk | ArtifactKind::Debug => (0, 0, &a.path),
    }
}

/// 64 lowercase hexadecimal digits: a BLAKE3 as the manifest spells it.
fn is_lower_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks one artifact's path, length and digest encoding.
fn check_artifact(a: &Artifact) -> Result<(), String> {
    let at = || Escaped::str(&a.path).to_string();
    let name = a.path.strip_prefix(a.kind.prefix()).ok_or_else(|| {
        format!(
            "{}: a {:?} artifact outside {}",
            at(),
            a.kind,
            a.kind.prefix()
        )
    })?;
    let canonical = match a.kind {
        ArtifactKind::Key => {
            name.len() == 20
                && name.ends_with(".pub")
                && name[..16]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        // Named by its contents: the path's hex is the BLAKE3 listed (checked below too).
        ArtifactKind::Chunk => is_lower_hex(name) && name == a.blake3,
        ArtifactKind::Snapshot => SnapshotName::parse(name)
            .is_some_and(|n| n.state == FileState::Committed && n.file_name() == name),
        ArtifactKind::Ledger => ChunkRef::parse_name(name).is_some(),
        ArtifactKind::Debug => match name.strip_prefix("ledger/") {
            Some(rest) => is_debug_name(rest),
            None => is_debug_name(name),
        },
    };
    if !canonical {
        return Err(format!("{}: not a valid {:?} path", at(), a.kind));
    }
    let exact = a.kind == ArtifactKind::Key;
    if (exact && a.len != KEY_LEN)
        || a.len > a.kind.max_len()
        || (a.kind == ArtifactKind::Chunk && a.len == 0)
    {
        return Err(format!(
            "{}: {} bytes; a {:?} entry is {} {} bytes",
            at(),
            a.len,
            a.kind,
            if exact { "exactly" } else { "at most" },
            a.kind.max_len()
        ));
    }
    if !is_lower_hex(&a.blake3) {
        return Err(format!("{}: blake3 is not 64 lowercase hex digits", at()));
    }
    Ok(())
}

/// Checks a manifest against the rules of docs/ARCHIVE.md before anything of the archive is
/// acted on: format tag; every path canonical for its kind, listed once, within its kind's
/// size cap, its BLAKE3 well-formed; kinds in order (keys, snapshots, ledger, debug) and
/// sorted within a kind; at least one key and one snapshot, the newest at `snapshot_idx`;
/// chunks not overlapping and ending by `commit_idx`; what each level holds (operational:
/// one snapshot, no chunk; replay: one snapshot and exactly the chunks covering
/// `snapshot_idx + 1 ..= commit_idx`; archival and debug: `missing` is exactly what the
/// chunks leave out of `1 ..= commit_idx`; debug files only at debug level). The error is
/// printable (every value from the manifest escaped).
pub(crate) fn check(m: &Manifest) -> Result<Listing, Invalid> {
    let listing = rules(m).map_err(Invalid::Rule)?;
    if m.level == Level::Replay {
        cover(
            &listing.chunks,
            m.snapshot_idx.saturating_add(1),
            m.commit_idx,
        )
        .map_err(|(from, to)| Invalid::Missing { from, to })?;
    }
    Ok(listing)
}

/// [`check`] but for a replay archive's coverage.
fn rules(m: &Manifest) -> Result<Listing, String> {
    if m.format != FORMAT {
        return Err(format!(
            "format \"{}\", expected \"{FORMAT}\"",
            Escaped::str(&m.format)
        ));
    }
    let mut paths = BTreeSet::new();
    for a in &m.artifacts {
        check_artifact(a)?;
        if !paths.insert(a.path.as_str()) {
            return Err(format!("{}: listed twice", Escaped::str(&a.path)));
        }
    }
    for w in m.artifacts.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if (a.kind, order_key(a)) >= (b.kind, order_key(b)) {
            return Err(format!(
                "{} is listed before {}: artifacts come as keys, chunks, snapshots, ledger, \
                 debug, each sorted",
                Escaped::str(&a.path),
                Escaped::str(&b.path)
            ));
        }
    }
    let names = |kind: ArtifactKind| {
        m.artifacts
            .iter()
            .filter(move |a| a.kind == kind)
            .map(move |a| a.path.strip_prefix(kind.prefix()).unwrap_or_default())
    };
    if names(ArtifactKind::Key).next().is_none() {
        return Err(
            "no key: an archive carries the public key(s) its artifacts verify with".into(),
        );
    }
    let snapshots: Vec<SnapshotName> = names(ArtifactKind::Snapshot)
        .filter_map(SnapshotName::parse)
        .collect();
    match snapshots.last() {
        None => return Err("no snapshot".into()),
        Some(newest) if newest.idx != m.snapshot_idx => {
            return Err(format!(
                "snapshot_idx is {}, the newest snapshot listed is at {}",
                m.snapshot_idx, newest.idx
            ))
        }
        Some(_) => {}
    }
    let chunks: Vec<ChunkRef> = m
        .artifacts
        .iter()
        .filter(|a| a.kind == ArtifactKind::Ledger)
        .filter_map(|a| {
            let (start, end) = ChunkRef::parse_name(a.path.strip_prefix("ledger/")?)?;
            Some(ChunkRef {
                start,
                end,
                len: a.len,
            })
        })
        .collect();
    for w in chunks.windows(2) {
        if w[1].start <= w[0].end {
            return Err(format!(
                "{} overlaps {}",
                w[1].file_name(),
                w[0].file_name()
            ));
        }
    }
    if let Some(last) = chunks.last().filter(|c| c.end > m.commit_idx) {
        return Err(format!(
            "{} ends after the commit index {}",
            last.file_name(),
            m.commit_idx
        ));
    }
    let has_debug = names(ArtifactKind::Debug).next().is_some();
    if has_debug && m.level != Level::Debug {
        return Err(format!("debug files in a {} archive", m.level.name()));
    }
    match m.level {
        Level::Operational | Level::Replay => {
            if snapshots.len() != 1 {
                return Err(format!(
                    "{} snapshots; a {} archive holds exactly one",
                    snapshots.len(),
                    m.level.name()
                ));
            }
            if !m.missing.is_empty() {
                return Err(format!("missing ranges in a {} archive", m.level.name()));
            }
            let want = if m.level == Level::Operational {
                Ok(Vec::new())
            } else {
                cover(&chunks, m.snapshot_idx.saturating_add(1), m.commit_idx)
            };
            // A chunk short of the coverage is `check`'s to name.
            if want.is_ok_and(|w| w != chunks) {
                return Err(format!(
                    "a {} archive holds exactly the chunks covering {}..={}",
                    m.level.name(),
                    m.snapshot_idx.saturating_add(1),
                    m.commit_idx
                ));
            }
        }
        Level::Archival | Level::Debug => {
            let gaps = gaps(&chunks, m.commit_idx);
            if gaps != m.missing {
                return Err(
                    "missing does not list exactly the ranges of 1..=commit_idx the chunks \
                     leave out"
                        .into(),
                );
            }
        }
    }
    Ok(Listing { snapshots, chunks })
}

/// The ranges of `1 ..= commit_idx` that `chunks` (sorted, not overlapping) leave out.
pub(crate) fn gaps(chunks: &[ChunkRef], commit_idx: u64) -> Vec<Missing> {
    let mut out = Vec::new();
    let mut next = 1u64;
    for c in chunks {
        if c.start > next {
            out.push(Missing {
                from: next,
                to: c.start - 1,
            });
        }
        next = next.max(c.end.saturating_add(1));
    }
    if next <= commit_idx {
        out.push(Missing {
            from: next,
            to: commit_idx,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(path: &str, kind: ArtifactKind, len: u64) -> Artifact {
        Artifact {
            path: path.into(),
            kind,
            len,
            blake3: "ab".repeat(32),
        }
    }

    fn replay() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            level: Level::Replay,
            snapshot_idx: 10,
            commit_idx: 30,
            artifacts: vec![
                artifact("keys/0123456789abcdef.pub", ArtifactKind::Key, 32),
                artifact(
                    "snapshots/snapshot_10_11.committed",
                    ArtifactKind::Snapshot,
                    500,
                ),
                artifact("ledger/ledger_5-20.committed", ArtifactKind::Ledger, 9),
                artifact("ledger/ledger_21-30.committed", ArtifactKind::Ledger, 9),
            ],
            missing: vec![],
        }
    }

    #[test]
    fn a_replay_manifest_from_export_passes_and_each_broken_rule_is_refused() {
        assert!(check(&replay()).is_ok());
        type Edit = Box<dyn Fn(&mut Manifest)>;
        let broken: Vec<(&str, Edit)> = vec![
            ("format", Box::new(|m| m.format = "x".into())),
            ("key len", Box::new(|m| m.artifacts[0].len = 33)),
            (
                "digest",
                Box::new(|m| m.artifacts[0].blake3 = "AB".repeat(32)),
            ),
            ("order", Box::new(|m| m.artifacts.swap(2, 3))),
            ("kind order", Box::new(|m| m.artifacts.swap(0, 1))),
            (
                "twice",
                Box::new(|m| m.artifacts[3] = m.artifacts[2].clone()),
            ),
            ("gap", Box::new(|m| m.artifacts.remove(2).len = 0)),
            ("beyond commit", Box::new(|m| m.commit_idx = 25)),
            ("snapshot idx", Box::new(|m| m.snapshot_idx = 9)),
            (
                "missing",
                Box::new(|m| m.missing.push(Missing { from: 1, to: 4 })),
            ),
            (
                "chunk cap",
                Box::new(|m| m.artifacts[2].len = MAX_CHUNK + 1),
            ),
            (
                "path",
                Box::new(|m| m.artifacts[2].path = "ledger/../x".into()),
            ),
            (
                "kind",
                Box::new(|m| m.artifacts[2].kind = ArtifactKind::Debug),
            ),
        ];
        for (what, f) in broken {
            let mut m = replay();
            f(&mut m);
            assert!(check(&m).is_err(), "{what}");
        }
    }

    #[test]
    fn a_chunk_is_named_by_its_blake3_sized_as_a_chunk_and_listed_before_the_snapshots() {
        let hex = "cd".repeat(32);
        let chunk = Artifact {
            path: format!("chunks/{hex}"),
            kind: ArtifactKind::Chunk,
            len: 1000,
            blake3: hex.clone(),
        };
        let with = |edit: &dyn Fn(&mut Artifact)| {
            let mut m = replay();
            let mut c = chunk.clone();
            edit(&mut c);
            m.artifacts.insert(1, c);
            m
        };
        assert!(check(&with(&|_| {})).is_ok(), "{:?}", check(&with(&|_| {})));
        type Edit = Box<dyn Fn(&mut Artifact)>;
        let broken: Vec<(&str, Edit)> = vec![
            ("another name", Box::new(|c| c.blake3 = "ab".repeat(32))),
            (
                "uppercase hex",
                Box::new(|c| {
                    c.path = format!("chunks/{}", "CD".repeat(32));
                    c.blake3 = "CD".repeat(32);
                }),
            ),
            ("empty", Box::new(|c| c.len = 0)),
            ("over 256 KiB", Box::new(|c| c.len = MAX_SNAPSHOT_CHUNK + 1)),
        ];
        for (what, edit) in broken {
            assert!(check(&with(&*edit)).is_err(), "{what}");
        }
        let mut after_snapshot = replay();
        after_snapshot.artifacts.insert(2, chunk);
        assert!(
            check(&after_snapshot).is_err(),
            "a chunk after the snapshots"
        );
    }

    #[test]
    fn archival_missing_must_be_exactly_the_gaps() {
        let mut m = replay();
        m.level = Level::Archival;
        m.commit_idx = 40;
        assert!(check(&m).is_err());
        m.missing = vec![Missing { from: 1, to: 4 }, Missing { from: 31, to: 40 }];
        assert!(check(&m).is_ok(), "{:?}", check(&m));
    }

    #[test]
    fn debug_names_are_single_printable_components() {
        assert!(is_debug_name("snapshot_1_2.committed.corrupt"));
        for bad in ["", ".", "..", "a/b", "a\u{1b}[31m", "a\\b"] {
            assert!(!is_debug_name(bad), "{bad:?}");
        }
    }
}
