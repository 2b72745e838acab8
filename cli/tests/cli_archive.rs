//! `export` and `import` on a demo's directory (snapshots and the ledger on disk): a node
//! started from an imported replay archive reaches the original's state hash; operational and
//! replay archives are deterministic; a missing chunk or a tampered archive is refused.

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::{snapseal, Run};

/// Small chunks, so the ledger has many and a middle one can go missing.
const DEMO: [&str; 8] = [
    "--txs",
    "6000",
    "--tx-interval",
    "500",
    "--sig-every",
    "50",
    "--ledger-chunk-bytes",
    "4000",
];

fn demo(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args: Vec<String> = vec!["demo".into(), "--json".into(), "--dir".into()];
    args.push(dir.display().to_string());
    args.extend(DEMO.iter().map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    snapseal(&args).expect(0).json()
}

fn export(level: &str, dir: &Path, out: &Path) -> Run {
    snapseal(&[
        "export".as_ref(),
        "--level".as_ref(),
        level.as_ref(),
        dir.as_os_str(),
        out.as_os_str(),
    ])
}

fn import(level: &str, archive: &Path, dir: &Path, key: &Path) -> Run {
    snapseal(&[
        "import".as_ref(),
        "--json".as_ref(),
        "--level".as_ref(),
        level.as_ref(),
        "--key".as_ref(),
        key.as_os_str(),
        archive.as_os_str(),
        dir.as_os_str(),
    ])
}

/// The sealed chunks of `dir/ledger`, as `(start, end, path)`, in order.
fn chunks(dir: &Path) -> Vec<(u64, u64, PathBuf)> {
    let mut out: Vec<(u64, u64, PathBuf)> = std::fs::read_dir(dir.join("ledger"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = name.strip_prefix("ledger_")?.strip_suffix(".committed")?;
            let (a, b) = r.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Tar entries as `(path, data offset, size)` (ustar/GNU headers, 512-byte blocks).
fn tar_entries(bytes: &[u8]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= bytes.len() && bytes[at] != 0 {
        let h = &bytes[at..at + 512];
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_string();
        let size_text = String::from_utf8_lossy(&h[124..136]);
        let size =
            usize::from_str_radix(size_text.trim_matches(|c| c == '\0' || c == ' '), 8).unwrap();
        out.push((name, at + 512, size));
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

#[test]
fn a_node_started_from_an_imported_replay_archive_reaches_the_originals_state_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let (orig, fresh) = (tmp.path().join("orig"), tmp.path().join("fresh"));
    let summary = demo(&orig, &[]);
    assert!(chunks(&orig).len() > 3, "several sealed chunks");
    let archive = tmp.path().join("replay.tar");
    export("replay", &orig, &archive).expect(0);
    // OUT is never overwritten.
    let again = export("replay", &orig, &archive).expect(2);
    assert!(
        again.stderr.contains("never overwritten"),
        "{}",
        again.stderr
    );

    let r = import("replay", &archive, &fresh, &orig.join("node.pub"))
        .expect(0)
        .json();
    assert!(!r["chunks_committed"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["snapshots_committed"].as_array().unwrap().len(), 1, "{r}");
    // Rerun: everything is already there, nothing is written twice.
    let r2 = import("replay", &archive, &fresh, &orig.join("node.pub"))
        .expect(0)
        .json();
    assert!(
        r2["chunks_committed"].as_array().unwrap().is_empty(),
        "{r2}"
    );
    assert_eq!(
        r2["chunks_present"].as_array().unwrap().len(),
        r["chunks_committed"].as_array().unwrap().len()
    );

    // A node started from the imported directory: newest snapshot + replayed ledger.
    let resumed = snapseal(&[
        "demo".as_ref(),
        "--json".as_ref(),
        "--resume".as_ref(),
        "--dir".as_ref(),
        fresh.as_os_str(),
        "--txs".as_ref(),
        "600".as_ref(),
        "--tx-interval".as_ref(),
        "500".as_ref(),
        "--sig-every".as_ref(),
        "50".as_ref(),
    ])
    .expect(0)
    .json();
    let at = &resumed["resumed"];
    assert_eq!(at["base"], summary["ledger_commit_idx"], "{at}");
    assert_eq!(
        at["state_hash"], summary["state_hash"],
        "the same state as the original at its commit index"
    );
    assert!(
        resumed["snapshots"]["committed"].as_u64().unwrap() >= 1,
        "and it goes on"
    );
}

#[test]
fn operational_and_replay_archives_are_byte_identical_across_deterministic_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut archives = Vec::new();
    for run in ["a", "b"] {
        let dir = tmp.path().join(run);
        demo(&dir, &["--deterministic", "--seed", "9"]);
        let mut both = Vec::new();
        for level in ["operational", "replay"] {
            let out = tmp.path().join(format!("{run}-{level}.tar"));
            export(level, &dir, &out).expect(0);
            both.push(std::fs::read(&out).unwrap());
        }
        archives.push(both);
    }
    assert!(
        archives[0][1].len() > archives[0][0].len(),
        "replay ⊃ operational"
    );
    assert!(
        archives[0][0] == archives[1][0],
        "operational archives differ"
    );
    assert!(archives[0][1] == archives[1][1], "replay archives differ");
}

#[test]
fn a_deleted_middle_chunk_fails_replay_export_and_import_naming_the_range() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    demo(&dir, &[]);
    // Keep only the oldest snapshot, so the replay range spans many chunks.
    let mut snaps: Vec<(u64, PathBuf)> = cli_support::committed(&dir)
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name.split('_').nth(1).unwrap().parse().unwrap(), p)
        })
        .collect();
    snaps.sort();
    for (_, p) in &snaps[1..] {
        std::fs::remove_file(p).unwrap();
    }
    let snap_idx = snaps[0].0;
    let after: Vec<_> = chunks(&dir)
        .into_iter()
        .filter(|c| c.0 > snap_idx + 1)
        .collect();
    assert!(after.len() >= 3, "chunks after the snapshot: {after:?}");
    let (start, end, path) = after[after.len() / 2].clone();
    std::fs::remove_file(&path).unwrap();
    let range = format!("{start}..={end}");

    let out = tmp.path().join("r.tar");
    let e = export("replay", &dir, &out).expect(1);
    assert!(e.stderr.contains(&range), "names {range}: {}", e.stderr);
    assert!(!out.exists(), "no partial archive left");

    // Archival never fails for a gap; importing it at replay names the same range.
    let arch = tmp.path().join("a.tar");
    export("archival", &dir, &arch).expect(0);
    let fresh = tmp.path().join("fresh");
    let e = import("replay", &arch, &fresh, &dir.join("node.pub")).expect(1);
    assert!(e.stderr.contains(&range), "names {range}: {}", e.stderr);
    assert!(
        !fresh.join("ledger").exists() || chunks(&fresh).is_empty(),
        "nothing imported before the level was checked"
    );
    import("archival", &arch, &fresh, &dir.join("node.pub")).expect(0);
}

#[test]
fn a_tampered_archive_is_refused_and_leaves_no_committed_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    demo(&dir, &[]);
    let archive = tmp.path().join("r.tar");
    export("replay", &dir, &archive).expect(0);
    let good = std::fs::read(&archive).unwrap();
    let entries = tar_entries(&good);
    for prefix in ["snapshots/", "ledger/"] {
        let (name, off, size) = entries
            .iter()
            .find(|e| e.0.starts_with(prefix))
            .unwrap()
            .clone();
        let mut bad = good.clone();
        bad[off + size / 2] ^= 0x10;
        let path = tmp.path().join("bad.tar");
        std::fs::write(&path, &bad).unwrap();
        let fresh = tmp
            .path()
            .join(format!("fresh-{}", prefix.trim_end_matches('/')));
        let e = import("replay", &path, &fresh, &dir.join("node.pub")).expect(1);
        assert!(e.stderr.contains(&name), "names {name}: {}", e.stderr);
        let committed: Vec<String> = cli_support::names(&fresh)
            .into_iter()
            .filter(|n| n.ends_with(".committed"))
            .collect();
        let committed_chunks = if fresh.join("ledger").exists() {
            chunks(&fresh).len()
        } else {
            0
        };
        if prefix == "snapshots/" {
            assert!(committed.is_empty(), "{committed:?}");
        }
        assert!(
            prefix != "ledger/" || committed_chunks < chunks(&dir).len(),
            "the flipped chunk was not committed"
        );
        std::fs::remove_file(&path).unwrap();
    }
    // A key the importer does not trust is refused.
    let other = tmp.path().join("other.pub");
    let key = snapseal_sim::ledger::Ledger::seed_key(77).verifying_key();
    std::fs::write(
        &other,
        format!("{}\n", snapseal::persist::to_hex(key.as_bytes())),
    )
    .unwrap();
    let e = import("operational", &archive, &tmp.path().join("x"), &other);
    assert_eq!(e.code, 1, "{}", e.stderr);
}
