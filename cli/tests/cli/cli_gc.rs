//! `gc`: the plan, the dry run, retention through the store, and the store's lock.

use std::path::Path;
use std::sync::Arc;

use crate::support::{committed, demo_dir, names, snapseal, sparse_signed_snapshot_at};
use snapseal::persist::fs::RealFs;
use snapseal::persist::receipt::Ed25519Verifier;
use snapseal::persist::{SnapshotStore, StoreOptions};

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing_then_gc_carries_it_out() {
    let (_tmp, dir) = demo_dir();
    // A stale uncommitted file, as a crash mid-write leaves.
    std::fs::write(dir.join("snapshot_77_78"), b"half written").unwrap();
    // A body spilled by a generation that was pending when the node stopped.
    std::fs::write(dir.join("snapshot_80.g3.pending"), b"spilled").unwrap();
    let files = committed(&dir);
    assert!(files.len() >= 3);
    let before = names(&dir);

    let plan = snapseal(&["gc", "--dry-run", "--json", "--keep-last", "2", arg(&dir)]).expect(0);
    let plan = plan.json();
    assert_eq!(names(&dir), before, "dry run changed the directory");
    assert_eq!(plan["stale"][0].as_str(), Some("snapshot_77_78"));
    assert_eq!(plan["stale"][1].as_str(), Some("snapshot_80.g3.pending"));
    let planned: Vec<String> = plan["delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(planned.len(), files.len() - 2);

    let done = snapseal(&["gc", "--json", "--keep-last", "2", arg(&dir)]).expect(0);
    let done = done.json();
    let deleted: Vec<String> = done["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(deleted, planned, "gc did what the dry run planned");
    let after = committed(&dir);
    assert_eq!(
        after,
        files[files.len() - 2..].to_vec(),
        "the two newest are kept"
    );
    assert!(!dir.join("snapshot_77_78").exists(), "stale file removed");
    assert!(
        !dir.join("snapshot_80.g3.pending").exists(),
        "stale pending file removed"
    );
    assert_eq!(done["stale"].as_array().unwrap().len(), 2);
    assert!(dir.join("node.pub").exists() && dir.join("committed.log").exists());
}

#[test]
fn gc_and_repair_refuse_a_locked_directory_with_a_clear_message() {
    let (_tmp, dir) = demo_dir();
    let before = names(&dir);
    // This test process plays the running node: it holds the store's lock.
    let _node = SnapshotStore::open(
        Arc::new(RealFs::new()),
        &dir,
        StoreOptions::new(Arc::new(Ed25519Verifier::new(Vec::new()))),
    )
    .unwrap();
    for args in [
        vec!["gc", "--keep-last", "1", arg(&dir)],
        vec!["latest", "--repair", arg(&dir)],
    ] {
        let run = snapseal(&args).expect(2);
        assert!(run.stderr.contains("locked"), "{args:?}: {}", run.stderr);
    }
    assert_eq!(names(&dir), before);
    // Read-only commands take no lock.
    snapseal(&["gc", "--dry-run", arg(&dir)]).expect(0);
    snapseal(&["list", arg(&dir)]).expect(0);
    snapseal(&["verify", arg(&dir)]).expect(0);
    snapseal(&["latest", arg(&dir)]).expect(0);
}

#[test]
fn list_marks_what_retention_would_delete() {
    let (_tmp, dir) = demo_dir();
    let files = committed(&dir);
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.toml");
    std::fs::write(&config, "[store]\nkeep_last = 1\n").unwrap();
    let run = snapseal(&["list", "--json", "--config", arg(&config), arg(&dir)]).expect(0);
    let doc = run.json();
    let rows = doc["files"].as_array().unwrap();
    assert_eq!(rows.len(), files.len());
    let newest = files
        .last()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for r in rows {
        let want = if r["file"].as_str() == Some(newest.as_str()) {
            "keep"
        } else {
            "delete"
        };
        assert_eq!(r["retention"].as_str(), Some(want), "{r}");
        assert_eq!(r["state"].as_str(), Some("committed"));
    }
    // The column rests on names only, and says so (the verified plan is gc --dry-run's).
    assert!(doc["retention_basis"]
        .as_str()
        .is_some_and(|b| b.contains("as if every committed file verified")));
    let text = snapseal(&["list", "--config", arg(&config), arg(&dir)]).expect(0);
    assert!(
        text.stdout.contains("gc --dry-run` verifies"),
        "{}",
        text.stdout
    );
}

/// Five junk files named newer than every good snapshot: gc counts only snapshots that verify,
/// so the good ones stay (the newest of them above all) and the junk is quarantined.
#[test]
fn gc_with_junk_newer_than_every_good_snapshot_keeps_the_good_ones() {
    let (_tmp, dir) = demo_dir();
    let good = committed(&dir);
    assert!(!good.is_empty());
    let newest =
        snapseal::persist::SnapshotName::parse_os(good.last().unwrap().file_name().unwrap())
            .unwrap();
    let mut junk = Vec::new();
    for k in 1..=5u64 {
        let idx = newest.idx + 100 * k;
        let path = dir.join(format!("snapshot_{idx}_{}.committed", idx + 1));
        std::fs::write(&path, b"junk, not a snapshot").unwrap();
        junk.push(path);
    }
    let run = snapseal(&["gc", "--json", "--keep-last", "5", arg(&dir)]).expect(0);
    let doc = run.json();
    assert!(doc["deleted"].as_array().unwrap().is_empty(), "{doc}");
    assert_eq!(doc["quarantine"].as_array().unwrap().len(), 5, "{doc}");
    let keep_n = good.len().min(5);
    assert_eq!(committed(&dir), good[good.len() - keep_n..].to_vec());
    for j in &junk {
        assert!(!j.exists(), "{} still under a committed name", j.display());
    }
    // The quarantine bound (default 3) holds after gc as well.
    let corrupt = names(&dir)
        .iter()
        .filter(|n| n.ends_with(".corrupt"))
        .count();
    assert_eq!(corrupt, 3);
    let latest = snapseal(&["latest", "--json", arg(&dir)]).expect(0).json();
    assert!(latest.to_string().contains(&newest.file_name()), "{latest}");
}

/// A byte limit with one huge junk file: the newest snapshot that verifies survives.
#[test]
fn gc_max_bytes_with_a_huge_junk_file_keeps_the_newest_verified_snapshot() {
    let (_tmp, dir) = demo_dir();
    let good = committed(&dir);
    let newest_good = good.last().unwrap().clone();
    let newest =
        snapseal::persist::SnapshotName::parse_os(newest_good.file_name().unwrap()).unwrap();
    let idx = newest.idx + 1000;
    let huge = dir.join(format!("snapshot_{idx}_{}.committed", idx + 1));
    let f = std::fs::File::create(&huge).unwrap();
    f.set_len(64 << 20).unwrap();
    drop(f);
    let dry = snapseal(&["gc", "--dry-run", "--json", "--max-bytes", "1", arg(&dir)]).expect(0);
    let dry = dry.json();
    let newest_name = newest.file_name();
    assert_eq!(dry["keep"][0].as_str(), Some(newest_name.as_str()), "{dry}");
    snapseal(&["gc", "--max-bytes", "1", arg(&dir)]).expect(0);
    assert_eq!(
        committed(&dir),
        vec![newest_good],
        "only the newest good one is left"
    );
    assert!(!huge.exists());
}

/// The names in a JSON array of the gc report.
fn listed(doc: &serde_json::Value, field: &str) -> Vec<String> {
    doc[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {doc}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The dry run (no lock, files checked by the command) and gc (the store's retention) judge
/// every file by the same rule: junk newer than the good snapshots is quarantined, a file
/// signed by a key outside the trusted set is left in place and not counted, and the same
/// old snapshots are deleted.
#[test]
fn gc_dry_run_judges_junk_and_untrusted_signers_as_gc_does() {
    let (_tmp, dir) = demo_dir();
    let good = committed(&dir);
    assert!(good.len() >= 3, "{good:?}");
    let newest =
        snapseal::persist::SnapshotName::parse_os(good.last().unwrap().file_name().unwrap())
            .unwrap();
    let junk_idx = newest.idx + 100;
    let junk = dir.join(format!("snapshot_{junk_idx}_{}.committed", junk_idx + 1));
    std::fs::write(&junk, b"junk under a committed name").unwrap();
    // Signed by the demo key of another seed: consistent, but not by a trusted key.
    let (foreign, _, _) = sparse_signed_snapshot_at(&dir, 99, 4096, newest.idx + 200);

    let dry = snapseal(&["gc", "--dry-run", "--json", "--keep-last", "2", arg(&dir)]).expect(0);
    let dry = dry.json();
    let file = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(listed(&dry, "quarantine"), vec![file(&junk)], "{dry}");
    assert_eq!(listed(&dry, "unverified"), vec![file(&foreign)], "{dry}");
    assert_eq!(listed(&dry, "keep").len(), 2, "{dry}");

    let done = snapseal(&["gc", "--json", "--keep-last", "2", arg(&dir)]).expect(0);
    let done = done.json();
    for (planned, carried_out) in [
        ("keep", "keep"),
        ("delete", "deleted"),
        ("quarantine", "quarantine"),
        ("unverified", "unverified"),
    ] {
        assert_eq!(
            listed(&dry, planned),
            listed(&done, carried_out),
            "{planned}: dry run {dry}\ngc {done}"
        );
    }
    assert!(
        foreign.exists(),
        "an untrusted signer's file is left in place"
    );
    assert!(!junk.exists(), "junk is quarantined");
}

#[test]
fn gc_needs_the_trusted_keys() {
    let (_tmp, dir) = demo_dir();
    std::fs::remove_file(dir.join("node.pub")).unwrap();
    let before = names(&dir);
    let run = snapseal(&["gc", arg(&dir)]).expect(2);
    assert!(run.stderr.contains("no trusted key"), "{}", run.stderr);
    assert_eq!(names(&dir), before);
}
