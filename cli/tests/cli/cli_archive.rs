//! `export` and `import` on a demo's directory (snapshots and the ledger on disk): a node
//! started from an imported replay archive reaches the original's state hash; operational and
//! replay archives are deterministic; a missing chunk or a tampered archive is refused.

use std::path::{Path, PathBuf};

use crate::support::{snapseal, Run};
use snapseal_sim::harness::fuzz_archive::{ustar_entry, USTAR_END};

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
    let mut snaps: Vec<(u64, PathBuf)> = crate::support::committed(&dir)
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
        let committed: Vec<String> = crate::support::names(&fresh)
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
    let key = snapseal_ledger::ledger::Ledger::seed_key(77).verifying_key();
    std::fs::write(
        &other,
        format!("{}\n", snapseal::persist::to_hex(key.as_bytes())),
    )
    .unwrap();
    let e = import("operational", &archive, &tmp.path().join("x"), &other);
    assert_eq!(e.code, 1, "{}", e.stderr);
}

// ---- Regressions: what an outside reviewer reproduced with the released binary ----------

/// Two deterministic runs of the same node (same seed, so the same key, indices, snapshot
/// points and chunk names) drawing writes from different key ranges: every artifact of one
/// verifies, but none is the other's.
fn twins(tmp: &Path) -> (PathBuf, PathBuf) {
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    for (dir, keys) in [(&a, "100"), (&b, "200")] {
        demo(dir, &["--deterministic", "--seed", "9", "--keys", keys]);
    }
    let names = |d: &Path| {
        chunks(d)
            .into_iter()
            .map(|c| (c.0, c.1))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a), names(&b), "the same chunk names");
    (a, b)
}

/// The entries of a tar archive, as `(path, bytes)`.
fn tar_list(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    tar_entries(bytes)
        .into_iter()
        .map(|(p, off, size)| (p, bytes[off..off + size].to_vec()))
        .collect()
}

/// A ustar archive of `entries` (names under 100 bytes).
fn tar_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        ustar_entry(name.as_bytes(), data.len() as u64, data, &mut out);
    }
    out.extend_from_slice(&USTAR_END);
    out
}

/// `entries` with the manifest rewritten to list exactly them, in order (a forger who fixes
/// the manifest up), and with `missing` recomputed for an archival one.
fn forged(mut entries: Vec<(String, Vec<u8>)>) -> Vec<u8> {
    let mut m: snapseal_archive::Manifest = serde_json::from_slice(&entries[0].1).unwrap();
    let like = m.artifacts.clone();
    m.artifacts = entries[1..]
        .iter()
        .map(|(p, b)| {
            let mut a = like.iter().find(|a| a.path == *p).unwrap().clone();
            a.len = b.len() as u64;
            a.blake3 = blake3::hash(b).to_hex().to_string();
            a
        })
        .collect();
    if !m.missing.is_empty() || m.level >= snapseal_archive::Level::Archival {
        let mut next = 1;
        m.missing.clear();
        for (p, _) in &entries[1..] {
            let Some((s, e)) = p
                .strip_prefix("ledger/")
                .and_then(snapseal_archive::ChunkRef::parse_name)
            else {
                continue;
            };
            if s > next {
                m.missing.push(snapseal_archive::Missing {
                    from: next,
                    to: s - 1,
                });
            }
            next = e + 1;
        }
        if next <= m.commit_idx {
            m.missing.push(snapseal_archive::Missing {
                from: next,
                to: m.commit_idx,
            });
        }
    }
    entries[0].1 = serde_json::to_vec(&m).unwrap();
    tar_of(&entries)
}

fn committed_anything(dir: &Path) -> Vec<String> {
    let mut all: Vec<String> = crate::support::names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".committed"))
        .collect();
    if dir.join("ledger").is_dir() {
        all.extend(chunks(dir).into_iter().map(|c| c.2.display().to_string()));
    }
    all
}

#[test]
fn an_archive_with_another_runs_chunk_is_refused_and_commits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = twins(tmp.path());
    let (ar, br) = (tmp.path().join("a.tar"), tmp.path().join("b.tar"));
    export("archival", &a, &ar).expect(0);
    export("archival", &b, &br).expect(0);
    let (ours, theirs) = (
        tar_list(&std::fs::read(&ar).unwrap()),
        tar_list(&std::fs::read(&br).unwrap()),
    );
    let ledger: Vec<usize> = (0..ours.len())
        .filter(|&i| ours[i].0.starts_with("ledger/"))
        .collect();
    let i = ledger[ledger.len() / 2];
    let mut spliced = ours.clone();
    spliced[i] = theirs.iter().find(|e| e.0 == ours[i].0).unwrap().clone();
    let bad = tmp.path().join("spliced.tar");
    std::fs::write(&bad, forged(spliced)).unwrap();
    let fresh = tmp.path().join("fresh");
    let r = import("archival", &bad, &fresh, &a.join("node.pub")).expect(1);
    assert!(r.stderr.contains("does not continue"), "{}", r.stderr);
    assert_eq!(committed_anything(&fresh), Vec::<String>::new());
}

#[test]
fn repopulate_does_not_fill_a_gap_with_another_runs_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = twins(tmp.path());
    let br = tmp.path().join("b.tar");
    export("archival", &b, &br).expect(0);
    let (s, e, gap) = chunks(&a)[60].clone();
    std::fs::remove_file(&gap).unwrap();
    let before = committed_anything(&a);
    // Their chunk for the gap, with snapshots the directory holds (by name; their bytes are
    // another run's, so only the directory's own may come): ours.
    let name = format!("ledger/ledger_{s}-{e}.committed");
    let theirs = tar_list(&std::fs::read(&br).unwrap());
    let ar = tmp.path().join("a.tar");
    export("operational", &a, &ar).expect(0);
    let ours = tar_list(&std::fs::read(&ar).unwrap());
    let mut list: Vec<(String, Vec<u8>)> = vec![theirs[0].clone()];
    list.extend(ours[1..].iter().cloned());
    list.push(theirs.iter().find(|x| x.0 == name).unwrap().clone());
    // The manifest: theirs (archival), listing what is there.
    let m: snapseal_archive::Manifest = serde_json::from_slice(&theirs[0].1).unwrap();
    let ours_m: snapseal_archive::Manifest = serde_json::from_slice(&ours[0].1).unwrap();
    let mut m2 = m.clone();
    m2.snapshot_idx = ours_m.snapshot_idx;
    m2.artifacts.extend(ours_m.artifacts.clone());
    list[0].1 = serde_json::to_vec(&m2).unwrap();
    let archive = tmp.path().join("gap.tar");
    std::fs::write(&archive, forged(list)).unwrap();
    let r = snapseal(&[
        "import".as_ref(),
        "--level".as_ref(),
        "archival".as_ref(),
        "--repopulate".as_ref(),
        "--key".as_ref(),
        a.join("node.pub").as_os_str(),
        archive.as_os_str(),
        a.as_os_str(),
    ])
    .expect(1);
    assert!(r.stderr.contains(&name), "names {name}: {}", r.stderr);
    assert_eq!(committed_anything(&a), before, "nothing committed");
}

#[test]
fn a_replay_archive_of_one_runs_snapshot_and_another_runs_chunks_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = twins(tmp.path());
    let (ar, br) = (tmp.path().join("a.tar"), tmp.path().join("b.tar"));
    export("replay", &a, &ar).expect(0);
    export("replay", &b, &br).expect(0);
    let theirs = tar_list(&std::fs::read(&br).unwrap());
    let paired: Vec<(String, Vec<u8>)> = tar_list(&std::fs::read(&ar).unwrap())
        .into_iter()
        .map(|(p, bytes)| match theirs.iter().find(|t| t.0 == p) {
            Some(t) if p.starts_with("ledger/") => t.clone(),
            _ => (p, bytes),
        })
        .collect();
    let bad = tmp.path().join("paired.tar");
    std::fs::write(&bad, forged(paired)).unwrap();
    let fresh = tmp.path().join("fresh");
    let r = import("replay", &bad, &fresh, &a.join("node.pub")).expect(1);
    assert!(r.stderr.contains("receipt"), "{}", r.stderr);
    assert_eq!(committed_anything(&fresh), Vec::<String>::new());
}

#[test]
fn replay_export_with_the_ledger_ending_before_the_snapshots_receipt_names_the_range() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    demo(&dir, &[]);
    let newest: u64 = crate::support::committed(&dir)
        .iter()
        .filter_map(|p| {
            let n = p.file_name()?.to_str()?.to_string();
            n.split('_').nth(1)?.parse().ok()
        })
        .max()
        .unwrap();
    for (_, end, path) in chunks(&dir) {
        if end > newest {
            std::fs::remove_file(path).unwrap();
        }
    }
    let out = tmp.path().join("r.tar");
    let r = export("replay", &dir, &out).expect(1);
    let from = format!("ledger entries {}..=", newest + 1);
    assert!(r.stderr.contains(&from), "{from}: {}", r.stderr);
    assert!(!out.exists());
}

#[test]
fn export_refuses_a_junk_chunk_naming_it_and_leaves_no_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    demo(&dir, &[]);
    let (_, _, path) = chunks(&dir).pop().unwrap();
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    std::fs::write(&path, vec![0x5a; len]).unwrap();
    let out = tmp.path().join("r.tar");
    let r = export("replay", &dir, &out).expect(1);
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(r.stderr.contains(name), "names {name}: {}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("r.tar"))
        .collect();
    assert!(left.is_empty(), "no archive, whole or pending: {left:?}");
}

#[test]
fn a_killed_export_leaves_no_partial_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    demo(&dir, &["--value-size", "4096"]);
    let whole = tmp.path().join("whole.tar");
    export("archival", &dir, &whole).expect(0);
    let out = tmp.path().join("r.tar");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_snapseal"))
        .args(["export", "--level", "archival"])
        .args([dir.as_os_str(), out.as_os_str()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as it has started writing (or has finished, if it was that quick).
    let started = |n: &str| n.starts_with("r.tar");
    loop {
        let seen = std::fs::read_dir(tmp.path())
            .unwrap()
            .any(|e| started(&e.unwrap().file_name().to_string_lossy()));
        if seen || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::yield_now();
    }
    let _ = child.kill();
    child.wait().unwrap();
    // Whatever the moment: OUT is absent, or it is the whole archive.
    if out.exists() {
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(&whole).unwrap(),
            "OUT holds a partial archive"
        );
    }
}

#[test]
fn a_huge_zero_filled_chunk_entry_is_refused_by_its_magic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    demo(&dir, &[]);
    let ar = tmp.path().join("a.tar");
    export("operational", &dir, &ar).expect(0);
    let list = tar_list(&std::fs::read(&ar).unwrap());
    let mut m: snapseal_archive::Manifest = serde_json::from_slice(&list[0].1).unwrap();
    let huge: u64 = 1 << 30;
    let mut chunk = m.artifacts.last().unwrap().clone();
    chunk.kind = snapseal_archive::ArtifactKind::Ledger;
    chunk.path = "ledger/ledger_1-9.committed".into();
    chunk.len = huge;
    m.artifacts.push(chunk);
    m.level = snapseal_archive::Level::Archival;
    m.missing = vec![snapseal_archive::Missing {
        from: 10,
        to: m.commit_idx,
    }];
    let mut head = list.clone();
    head[0].1 = serde_json::to_vec(&m).unwrap();
    let mut bytes = Vec::new();
    for (name, data) in &head {
        ustar_entry(name.as_bytes(), data.len() as u64, data, &mut bytes);
    }
    ustar_entry(b"ledger/ledger_1-9.committed", huge, &[], &mut bytes);
    let path = tmp.path().join("huge.tar");
    std::fs::write(&path, &bytes).unwrap();
    // The GiB of zeros and the end blocks: a sparse file, nothing written.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(bytes.len() as u64 + huge + 1024).unwrap();
    drop(f);
    let fresh = tmp.path().join("fresh");
    let r = import("archival", &path, &fresh, &dir.join("node.pub")).expect(1);
    assert!(r.stderr.contains("magic"), "{}", r.stderr);
    assert_eq!(committed_anything(&fresh), Vec::<String>::new());
}

#[test]
fn archive_names_are_shown_escaped_and_a_cut_archive_is_reported_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    demo(&dir, &[]);
    let ar = tmp.path().join("r.tar");
    export("replay", &dir, &ar).expect(0);
    let good = std::fs::read(&ar).unwrap();
    let key = dir.join("node.pub");

    let mut list = tar_list(&good);
    list[0].0 = "\u{1b}[2J\u{1b}]0;owned\u{7}".into();
    let evil = tmp.path().join("evil.tar");
    std::fs::write(&evil, tar_of(&list)).unwrap();
    let r = import("replay", &evil, &tmp.path().join("x"), &key).expect(1);
    assert!(
        !r.stderr.contains('\u{1b}') && !r.stderr.contains('\u{7}'),
        "{:?}",
        r.stderr
    );
    assert!(r.stderr.contains("\\x1b"), "{}", r.stderr);

    // Cut inside the last chunk's data.
    let (name, off, size) = tar_entries(&good).pop().unwrap();
    assert!(name.starts_with("ledger/"));
    let cut = tmp.path().join("cut.tar");
    std::fs::write(&cut, &good[..off + size / 2]).unwrap();
    let fresh = tmp.path().join("fresh");
    let r = import("replay", &cut, &fresh, &key).expect(1);
    assert!(r.stderr.contains("truncated"), "{}", r.stderr);
    assert!(!r.stderr.contains("BLAKE3"), "{}", r.stderr);
    assert_eq!(committed_anything(&fresh), Vec::<String>::new());
}

/// The sealed chunk packs of `dir`.
fn packs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("chunks_") && n.ends_with(".pack")
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_chunked_demo_exports_and_imports_into_an_empty_directory_that_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let (orig, fresh) = (tmp.path().join("orig"), tmp.path().join("fresh"));
    demo(&orig, &["--chunked"]);
    assert!(!packs(&orig).is_empty(), "the demo stored chunks");
    let archive = tmp.path().join("chunked.tar");
    let text = export("archival", &orig, &archive).expect(0);
    assert!(text.stdout.contains("snapshot chunk(s)"), "{}", text.stdout);
    let r = import("archival", &archive, &fresh, &orig.join("node.pub"))
        .expect(0)
        .json();
    assert!(
        !r["snapshots_committed"].as_array().unwrap().is_empty(),
        "{r}"
    );
    assert!(!packs(&fresh).is_empty(), "the chunks came along: {r}");
    snapseal(&["verify".as_ref(), fresh.as_os_str()]).expect(0);
}

#[test]
fn export_refuses_a_chunked_snapshot_with_a_damaged_chunk_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    demo(&dir, &["--chunked"]);
    // The first chunk of every pack (right after its 8-byte magic), one bit flipped: the
    // newest snapshot names chunks in some of them, so export finds one damaged.
    let mut damaged = Vec::new();
    for pack in packs(&dir) {
        let mut bytes = std::fs::read(&pack).unwrap();
        bytes[8] ^= 1;
        std::fs::write(&pack, bytes).unwrap();
        damaged.push(pack.file_name().unwrap().to_string_lossy().into_owned());
    }
    let out = tmp.path().join("r.tar");
    let r = export("operational", &dir, &out).expect(1);
    assert!(r.stderr.contains("does not match its hash"), "{}", r.stderr);
    assert!(
        damaged.iter().any(|p| r.stderr.contains(p.as_str())),
        "names the pack: {}",
        r.stderr
    );
    assert!(r.stderr.contains("chunk "), "names the chunk: {}", r.stderr);
    assert!(!out.exists(), "no archive");
}
