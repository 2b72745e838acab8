//! `demo --resume`: going on in a directory an earlier demo wrote, even one killed at any
//! instant (`kill -9`, power loss).
//!
//! Two steps. [`survey`] looks without touching anything: every name must be one the demo
//! writes, `node.pub` must hold the seed's key, `committed.log` must parse; it notes the
//! largest ledger index any of our names carries. Then the caller opens the store (the lock,
//! stale files removed) and [`go_on`] does the rest under that lock: rewrites a `node.pub`
//! the earlier run left missing or empty, reopens `committed.log` for appending, asks the
//! store for the snapshot a node would recover from, and picks the ledger base.
//!
//! The ledger lives on disk (`ledger/`, see `snapseal_ledger::disk_ledger` and docs/LEDGER.md)
//! and is reopened, not rebuilt: opening it verifies every chunk against the node's key and
//! its neighbours (a forged, foreign or other-history chunk is refused, naming it), and
//! recovers what a killed or failed run left; the resumed node goes on after its commit
//! index, the base. The node makes a commit durable in the ledger before the Snapshotter
//! hears of it, so every committed snapshot and every logged commit lies at or below the
//! base; one beyond it means the ledger was removed or replaced, and the resume is refused.
//! The state at the base is the newest snapshot that verifies plus the ledger's committed
//! txs after it, replayed from verified chunks, once the ledger is shown to hold the very
//! signature tx the snapshot's receipt proves against (so it is the snapshot's history).
//!
//! Names of ours beyond the base are those of the killed run's uncommitted tail (the store
//! removed them if stale, quarantined them if committed-named and failing verification) or
//! not a demo's at all; they are ignored with a warning naming them. New snapshots are named
//! after the base, so no committed snapshot's name is ever reused.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use snapseal::persist::internals::receipt::{key_id, Receipt};
use snapseal::persist::internals::{PendingName, LOCK_FILE};
use snapseal::persist::{SnapshotName, SnapshotStore};
use snapseal_archive::LEDGER_DIR;
use snapseal_ledger::disk_node::StartPoint;
use snapseal_ledger::node::decode_kv;

use crate::cli::committed_log::{CommittedLog, LogContents, LogLine, COMMITTED_LOG};
use crate::cli::keys::{self, NODE_PUB};
use crate::cli::output::hex;
use crate::cli::safe_open;

/// How many ignored names a warning lists (the rest are counted).
const IGNORED_SHOWN: usize = 10;

/// What the directory held before the resumed run changed anything.
#[derive(Debug)]
pub(super) struct Survey {
    /// Nothing there (missing or empty directory): start like a fresh demo.
    pub fresh: bool,
    /// Every name of ours seen, with the largest index it carries.
    names: Vec<(String, u64)>,
    /// `node.pub` is missing or empty (the earlier run stopped while creating it).
    node_pub_missing: bool,
}

/// The largest ledger index a snapshot or pending name carries.
fn name_max(name: &str) -> Option<u64> {
    if let Some(n) = SnapshotName::parse(name) {
        return Some(n.idx.max(n.evidence_idx));
    }
    PendingName::parse(name).map(|p| p.idx)
}

/// Read-only checks of `dir` before resuming in it with `key` (see the module docs).
pub(super) fn survey(dir: &Path, key: &VerifyingKey) -> anyhow::Result<Survey> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Survey {
                fresh: true,
                names: Vec::new(),
                node_pub_missing: true,
            })
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", dir.display())),
    };
    let mut any = false;
    let mut snapshots = 0usize;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        any = true;
        let os_name = entry.file_name();
        let name = os_name.to_string_lossy();
        if let Some(max) = os_name.to_str().and_then(name_max) {
            snapshots += 1;
            names.push((name.clone().into_owned(), max));
        } else if name == LEDGER_DIR {
            safe_open::check_subdir(dir, LEDGER_DIR)?;
        } else if ![LOCK_FILE, NODE_PUB, COMMITTED_LOG].contains(&name.as_ref())
            // A chunked demo's packs (a `--chunked` run resumes with `--chunked`).
            && !snapseal::persist::internals::chunks::is_pack_name(&name)
        {
            bail!(
                "cannot resume in {}: `{name}` is not a file the demo writes (--resume only \
                 goes on in a directory an earlier `snapseal demo` wrote)",
                dir.display()
            );
        }
    }
    if !any {
        return Ok(Survey {
            fresh: true,
            names: Vec::new(),
            node_pub_missing: true,
        });
    }
    let node_pub = dir.join(NODE_PUB);
    // Read as safe_open says: a link, FIFO or oversized file is refused, not followed.
    let node_pub_bytes = safe_open::read_in_dir(dir, NODE_PUB, safe_open::KEY_FILE)?;
    let node_pub_missing = node_pub_bytes.as_ref().is_none_or(Vec::is_empty);
    if node_pub_missing {
        // The demo makes node.pub durable before it opens the store: snapshot files without
        // it were not written by a demo, and nothing says which key should sign the new ones.
        if snapshots > 0 {
            bail!(
                "cannot resume in {}: it holds snapshot files but no {NODE_PUB} saying which \
                 key signed them",
                dir.display()
            );
        }
    } else {
        let text = String::from_utf8(node_pub_bytes.unwrap_or_default())
            .with_context(|| format!("key file {} is not text", node_pub.display()))?;
        let found = keys::decode(&text, &node_pub)?;
        if found != [*key] {
            let ids: Vec<String> = found.iter().map(|k| hex(&key_id(k))).collect();
            bail!(
                "cannot resume in {}: {} holds key id {}, but this seed's key id is {}; \
                 resume with the seed the directory was made with (--seed)",
                dir.display(),
                node_pub.display(),
                ids.join(", "),
                hex(&key_id(key))
            );
        }
    }
    // Only read here (a malformed log is refused before anything changes); go_on reopens
    // it under the lock.
    LogContents::read(dir)?;
    Ok(Survey {
        fresh: false,
        names,
        node_pub_missing,
    })
}

fn log_max(lines: &[LogLine]) -> u64 {
    lines
        .iter()
        .map(|l| l.name.idx.max(l.name.evidence_idx))
        .max()
        .unwrap_or(0)
}

/// What resuming found and did (part of the demo's summary).
#[derive(Debug, Serialize)]
pub(super) struct ResumeInfo {
    /// The reopened ledger's commit index; the first new tx is `base + 1`.
    pub base: u64,
    /// The state hash at the base (the recovered snapshot plus the replayed ledger), hex.
    pub state_hash: String,
    /// Commits earlier runs logged.
    pub earlier_acknowledged: usize,
    /// Bytes of an unfinished last log line that were cut off (never acknowledged).
    pub log_tail_cut: u64,
    /// Stale uncommitted and pending files the store removed when it opened.
    pub stale_removed: u64,
    /// Snapshots quarantined because they failed verification.
    pub quarantined: u64,
    /// The snapshot a node would recover from (the newest that verifies), if any.
    pub recovered: Option<PathBuf>,
    /// Names whose indices lie beyond the ledger's commit index (see the module docs).
    pub ignored: Vec<String>,
}

/// The resumed run's log, earlier acknowledgements and [`ResumeInfo`] (its `state_hash`
/// filled in by the caller once the state is rebuilt).
#[derive(Debug)]
pub(super) struct Resumed {
    /// `committed.log`, open for appending.
    pub log: CommittedLog,
    /// The commits earlier runs logged.
    pub earlier: Vec<LogLine>,
    /// For the summary.
    pub info: ResumeInfo,
    /// The recovered snapshot (index, KV map, the signed root of its receipt): the state
    /// the ledger is replayed onto.
    pub snapshot: Option<StartPoint>,
}

/// Under the store's lock, with the ledger reopened at `ledger_commit`: recovers, checks
/// every proven commit lies within the ledger, then repairs `node.pub` and reopens the log.
pub(super) fn go_on(
    dir: &Path,
    key: &VerifyingKey,
    survey: &Survey,
    store: &SnapshotStore,
    ledger_commit: u64,
) -> anyhow::Result<Resumed> {
    // Names listed now, under the lock, on top of the survey's (which saw the stale files
    // the store has since removed), before recovery quarantines anything.
    let mut names = survey.names.clone();
    for e in store
        .list()
        .with_context(|| format!("listing {}", dir.display()))?
    {
        names.push((e.name.file_name(), e.name.idx.max(e.name.evidence_idx)));
    }
    for p in store
        .list_pending()
        .with_context(|| format!("listing {}", dir.display()))?
    {
        names.push((p.name.file_name(), p.name.idx));
    }
    let recovered = store
        .latest()
        .with_context(|| format!("recovering the latest snapshot in {}", dir.display()))?;
    let snapshot = match &recovered {
        None => None,
        Some(file) => {
            let mut body = Vec::new();
            std::io::Read::read_to_end(
                &mut file
                    .body_reader()
                    .with_context(|| format!("reading {}", file.path().display()))?,
                &mut body,
            )
            .with_context(|| format!("reading {}", file.path().display()))?;
            let (idx, map) = decode_kv(&body).with_context(|| {
                format!(
                    "{}: verifies, but its body is not a demo KV state",
                    file.path().display()
                )
            })?;
            let signed = Receipt::decode(file.receipt_bytes())
                .with_context(|| {
                    format!(
                        "{}: verifies, but its receipt is not a ledger receipt",
                        file.path().display()
                    )
                })?
                .signed;
            Some(StartPoint { idx, map, signed })
        }
    };
    let recovered_max = recovered
        .as_ref()
        .map_or(0, |f| f.name().idx.max(f.name().evidence_idx));
    let recovered = recovered.map(|file| file.path().to_path_buf());
    // Read only: nothing changes before the checks below pass.
    let logged = LogContents::read(dir)?;
    let proven = log_max(&logged.lines).max(recovered_max);
    if proven > ledger_commit {
        bail!(
            "cannot resume in {}: a commit at idx {proven} is logged or on disk, but the \
             ledger in {} ends at {ledger_commit} (it was removed or replaced, or the \
             directory was written by a demo without a ledger on disk)",
            dir.display(),
            dir.join(LEDGER_DIR).display()
        );
    }
    if survey.node_pub_missing {
        let path = dir.join(NODE_PUB);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing empty {}", path.display())),
        }
        keys::write_node_pub(dir, key)?;
    }
    let (log, contents) = CommittedLog::resume(dir)?;
    let (base, ignored) = bounded_base(ledger_commit, names);
    if !ignored.is_empty() {
        let shown: Vec<&str> = ignored
            .iter()
            .take(IGNORED_SHOWN)
            .map(String::as_str)
            .collect();
        tracing::warn!(
            "resuming in {}: ignoring {} name(s) with an index past the ledger's commit index \
             {ledger_commit} (a killed run's uncommitted tail, or not written by a demo here): \
             {}{}",
            dir.display(),
            ignored.len(),
            shown.join(", "),
            if ignored.len() > IGNORED_SHOWN {
                ", ..."
            } else {
                ""
            }
        );
    }
    let stats = store.stats();
    Ok(Resumed {
        log,
        info: ResumeInfo {
            base,
            earlier_acknowledged: contents.lines.len(),
            log_tail_cut: contents.partial_len,
            stale_removed: stats.stale_removed,
            quarantined: stats.quarantined,
            recovered,
            ignored,
            state_hash: String::new(),
        },
        earlier: contents.lines,
        snapshot,
    })
}

/// The base is the ledger's commit index; the names beyond it (sorted, each once) are
/// returned apart.
fn bounded_base(ledger_commit: u64, names: Vec<(String, u64)>) -> (u64, Vec<String>) {
    let mut ignored = Vec::new();
    for (name, max) in names {
        if max > ledger_commit {
            ignored.push(name);
        }
    }
    ignored.sort();
    ignored.dedup();
    (ledger_commit, ignored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapseal_ledger::ledger::Ledger;

    fn key(seed: u64) -> VerifyingKey {
        Ledger::seed_key(seed).verifying_key()
    }

    fn seen_max(s: &Survey) -> u64 {
        s.names.iter().map(|(_, max)| *max).max().unwrap_or(0)
    }

    #[test]
    fn names_past_the_ledgers_commit_index_are_ignored() {
        let names = vec![
            ("snapshot_5_9".to_string(), 9),
            (
                "snapshot_1000000000_1000000000.committed".to_string(),
                1_000_000_000,
            ),
            ("snapshot_1000000000_1000000000".to_string(), 1_000_000_000),
            ("snapshot_1000000000_1000000000".to_string(), 1_000_000_000),
        ];
        let (base, ignored) = bounded_base(9, names.clone());
        assert_eq!(base, 9);
        assert_eq!(
            ignored,
            [
                "snapshot_1000000000_1000000000",
                "snapshot_1000000000_1000000000.committed"
            ]
        );
        // A name past the ledger's commit is ignored however close it is.
        let (base, ignored) = bounded_base(8, names);
        assert_eq!((base, ignored.len()), (8, 3));
    }

    #[test]
    fn a_missing_or_empty_directory_is_a_fresh_start() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(survey(&tmp.path().join("new"), &key(1)).unwrap().fresh);
        assert!(survey(tmp.path(), &key(1)).unwrap().fresh);
    }

    #[test]
    fn the_base_covers_every_name_of_ours_and_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join(NODE_PUB), keys::encode(&key(1))).unwrap();
        for name in [
            "snapshot_10_12.committed",
            "snapshot_20_31.committed.corrupt",
            "snapshot_40.g3.pending",
            ".lock",
        ] {
            std::fs::write(d.join(name), b"").unwrap();
        }
        std::fs::write(
            d.join(COMMITTED_LOG),
            format!("30 35 snapshot_30_35.committed {}\n", "00".repeat(32)),
        )
        .unwrap();
        let s = survey(d, &key(1)).unwrap();
        assert!(!s.fresh);
        assert_eq!(seen_max(&s), 40);
        std::fs::write(d.join("snapshot_50_77"), b"").unwrap();
        assert_eq!(seen_max(&survey(d, &key(1)).unwrap()), 77);
    }

    #[test]
    fn another_seed_or_a_foreign_file_is_refused_and_nothing_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join(NODE_PUB), keys::encode(&key(1))).unwrap();
        let e = format!("{:#}", survey(d, &key(2)).unwrap_err());
        assert!(e.contains("--seed"), "{e}");
        std::fs::write(d.join("notes.txt"), b"mine").unwrap();
        let e = format!("{:#}", survey(d, &key(1)).unwrap_err());
        assert!(e.contains("notes.txt"), "{e}");
        assert_eq!(std::fs::read(d.join("notes.txt")).unwrap(), b"mine");
    }

    #[test]
    fn snapshots_without_node_pub_are_refused_but_an_empty_node_pub_alone_is_repaired() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join(NODE_PUB), b"").unwrap();
        let s = survey(d, &key(1)).unwrap();
        assert!(s.node_pub_missing && !s.fresh);
        std::fs::write(d.join("snapshot_1_2.committed"), b"").unwrap();
        let e = format!("{:#}", survey(d, &key(1)).unwrap_err());
        assert!(e.contains("no node.pub"), "{e}");
    }

    fn open_store(d: &Path, seed: u64) -> SnapshotStore {
        use snapseal::persist::fs::RealFs;
        use snapseal::persist::receipt::Ed25519Verifier;
        use snapseal::persist::StoreOptions;
        use std::sync::Arc;
        let verifier = Arc::new(Ed25519Verifier::new(vec![key(seed)]));
        SnapshotStore::open(Arc::new(RealFs::new()), d, StoreOptions::new(verifier)).unwrap()
    }

    #[test]
    fn go_on_cuts_the_log_and_ignores_stale_names_past_the_ledger() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join(NODE_PUB), keys::encode(&key(4))).unwrap();
        let line = format!("30 35 snapshot_30_35.committed {}\n", "00".repeat(32));
        std::fs::write(d.join(COMMITTED_LOG), format!("{line}31 3")).unwrap();
        // Stale: a write cut short by the kill. The store removes it at open; the base
        // must still cover its name.
        std::fs::write(d.join("snapshot_90_99"), b"stale").unwrap();
        let s = survey(d, &key(4)).unwrap();
        let store = open_store(d, 4);
        // A ledger that ends before the logged commit: refused, the log left as it was.
        let e = format!("{:#}", go_on(d, &key(4), &s, &store, 34).unwrap_err());
        assert!(e.contains("ends at 34"), "{e}");
        assert_eq!(
            std::fs::read_to_string(d.join(COMMITTED_LOG)).unwrap(),
            format!("{line}31 3")
        );
        let r = go_on(d, &key(4), &s, &store, 40).unwrap();
        assert_eq!(r.info.base, 40);
        assert_eq!(r.info.ignored, ["snapshot_90_99"]);
        assert_eq!(r.info.stale_removed, 1);
        assert!(!d.join("snapshot_90_99").exists());
        assert_eq!(r.info.log_tail_cut, 4);
        assert_eq!(r.earlier.len(), 1);
        assert_eq!(
            std::fs::read_to_string(d.join(COMMITTED_LOG)).unwrap(),
            line
        );
        assert_eq!(r.info.recovered, None);
    }

    #[test]
    fn go_on_rewrites_an_empty_node_pub_and_creates_a_missing_log() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join(NODE_PUB), b"").unwrap();
        let s = survey(d, &key(4)).unwrap();
        let store = open_store(d, 4);
        let r = go_on(d, &key(4), &s, &store, 0).unwrap();
        assert_eq!(keys::read(&d.join(NODE_PUB)).unwrap(), vec![key(4)]);
        assert!(d.join(COMMITTED_LOG).exists());
        assert_eq!((r.info.base, r.earlier.len()), (0, 0));
    }
}
