//! Chunked snapshots on a `file://` remote: only the chunks the remote lacks go up; a restore
//! fetches only the chunks the store lacks, from one remote or several, checks each, resumes
//! after a failure, and commits nothing when a chunk is damaged or missing; gc keeps the
//! chunks of retained and held snapshots and deletes the rest; a running chunk sweep holds
//! the shipper off indexing.

use std::path::Path;

use crate::support::chunked::*;
use crate::support::*;
use snapseal_persist::SnapshotName;
use snapseal_ship::retention::{self, GcPolicy};
use snapseal_ship::{restore, RestoreOptions, ShipConfig, ShipError, Shipper};

const NODE: &str = "n1";
const MIB: usize = 1 << 20;

/// One pass of a shipper of `store` to the `file://` remote at `remote_dir`.
fn ship(store: &std::sync::Arc<snapseal_persist::SnapshotStore>, remote_dir: &Path) {
    let remote = local_remote(remote_dir);
    let sh = Shipper::new(remote, std::sync::Arc::clone(store), ShipConfig::new(NODE)).unwrap();
    sh.ship_pending().unwrap();
}

/// A store at `local` with chunked snapshots 10 (`old`) and 20 (`old` with 100 bytes
/// changed), both shipped to `remote_dir` in two passes. Returns the names, the states and
/// the chunk bytes each pass uploaded.
fn two_shipped(local: &Path, remote_dir: &Path) -> ([SnapshotName; 2], [Vec<u8>; 2], [u64; 2]) {
    let store = chunked_store(local);
    let sh = Shipper::new(
        local_remote(remote_dir),
        std::sync::Arc::clone(&store),
        ShipConfig::new(NODE),
    )
    .unwrap();
    let old = state(4 * MIB, 1);
    let new = edited(&old, 2 * MIB, 100);
    let first = persist_chunked(&store, 10, &old);
    sh.ship_pending().unwrap();
    let after_first = sh.stats().chunk_bytes_uploaded;
    let second = persist_chunked(&store, 20, &new);
    sh.ship_pending().unwrap();
    let after_second = sh.stats().chunk_bytes_uploaded;
    (
        [first, second],
        [old, new],
        [after_first, after_second - after_first],
    )
}

#[test]
fn a_second_ship_after_a_small_change_uploads_only_the_new_chunks() {
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (names, _, uploaded) = two_shipped(local.path(), remote_dir.path());
    assert_eq!(
        uploaded[0],
        4 * MIB as u64,
        "the first pass uploads every chunk"
    );
    assert!(
        uploaded[1] > 0 && uploaded[1] <= 3 * 256 * 1024,
        "a 100-byte change uploads at most a few chunks, not {}",
        uploaded[1]
    );
    // Both indexed, and every chunk either names is on the remote.
    let store = chunked_store(local.path());
    let objects: Vec<String> = chunk_objects(remote_dir.path(), NODE)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in &names {
        assert!(remote_dir.path().join(NODE).join(name.file_name()).exists());
        for chunk in chunk_names(&store, name) {
            assert!(
                objects.contains(&chunk),
                "chunk {chunk} of {name} is on the remote"
            );
        }
    }
}

#[test]
fn a_restore_into_an_empty_store_and_into_one_holding_the_older_snapshot_fetches_only_what_is_missing(
) {
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (names, states, _) = two_shipped(local.path(), remote_dir.path());
    let remote = local_remote(remote_dir.path());

    let empty = tempfile::tempdir().unwrap();
    let fresh = chunked_store(empty.path());
    let restored = restore(&remote, &fresh, &RestoreOptions::default()).unwrap();
    assert_eq!(restored.name, names[1]);
    assert_eq!(read_state(&fresh, &names[1]), states[1]);
    assert!(pack_bytes(empty.path()) >= 4 * MIB as u64);

    // A store holding snapshot 10 (restored from the remote, node-scoped to it) fetches the
    // changed chunks only when it restores 20.
    let older = tempfile::tempdir().unwrap();
    let behind = chunked_store(older.path());
    let bytes = file_bytes(local.path(), &names[0]);
    let mut import = snapseal_persist::internals::chunks::ChunkImport::new(&behind);
    let source = chunked_store(local.path());
    for h in import.missing(
        snapseal_persist::internals::chunks::chunk_list(&source.read(&names[0]).unwrap())
            .unwrap()
            .unwrap()
            .iter()
            .map(|(_, h)| h),
    ) {
        let chunk = snapseal_persist::internals::chunks::read_chunk(&source, &h)
            .unwrap()
            .unwrap();
        import.add(&h, &chunk).unwrap();
    }
    let mut incoming = behind.begin_ingest(1 << 30);
    std::io::Write::write_all(&mut incoming, &bytes).unwrap();
    import.finish_ingest(&behind, incoming).unwrap();
    let before = pack_bytes(older.path());
    let restored = restore(&remote, &behind, &RestoreOptions::default()).unwrap();
    assert_eq!(restored.name, names[1]);
    assert_eq!(read_state(&behind, &names[1]), states[1]);
    let fetched = pack_bytes(older.path()) - before;
    assert!(
        fetched <= 3 * 256 * 1024 + 4096,
        "only the changed chunks are fetched, not {fetched} bytes"
    );
}

#[test]
fn a_damaged_or_missing_chunk_object_fails_that_snapshot_naming_the_chunk_and_commits_nothing() {
    for damage in [true, false] {
        let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = chunked_store(local.path());
        let name = persist_chunked(&store, 10, &state(MIB, 3));
        ship(&store, remote_dir.path());
        let victim = chunk_objects(remote_dir.path(), NODE)[0].clone();
        let hex = victim.file_name().unwrap().to_string_lossy().into_owned();
        if damage {
            let mut bytes = std::fs::read(&victim).unwrap();
            bytes[0] ^= 1;
            std::fs::write(&victim, bytes).unwrap();
        } else {
            std::fs::remove_file(&victim).unwrap();
        }
        let target = tempfile::tempdir().unwrap();
        let into = chunked_store(target.path());
        let got = restore(
            &local_remote(remote_dir.path()),
            &into,
            &RestoreOptions::default(),
        );
        match got {
            Err(ShipError::NothingRestored { passed_over, .. }) => {
                assert_eq!(passed_over.len(), 1, "{passed_over:?}");
                assert!(
                    passed_over[0].contains(&name.file_name()),
                    "{passed_over:?}"
                );
                assert!(
                    passed_over[0].contains(&hex),
                    "names the chunk: {passed_over:?}"
                );
                let what = if damage { "damaged" } else { "missing" };
                assert!(passed_over[0].contains(what), "{passed_over:?}");
            }
            other => panic!("expected nothing restored, got {other:?}"),
        }
        assert!(into.list().unwrap().is_empty(), "no committed file");
        assert!(into.latest().unwrap().is_none());
    }
}

#[test]
fn a_restore_that_failed_on_a_chunk_resumes_without_fetching_again_what_it_kept() {
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = chunked_store(local.path());
    let s = state(8 * MIB, 4);
    let name = persist_chunked(&store, 10, &s);
    ship(&store, remote_dir.path());
    // The list's last chunk is away during the first restore.
    let last = chunk_names(&store, &name).pop().unwrap();
    let path = remote_dir.path().join(NODE).join("chunks").join(&last);
    let aside = remote_dir.path().join("aside");
    std::fs::rename(&path, &aside).unwrap();
    let target = tempfile::tempdir().unwrap();
    let into = chunked_store(target.path());
    let remote = local_remote(remote_dir.path());
    assert!(restore(&remote, &into, &RestoreOptions::default()).is_err());
    let kept = pack_bytes(target.path());
    assert!(into.list().unwrap().is_empty());
    std::fs::rename(&aside, &path).unwrap();
    drop(into);
    let into = chunked_store(target.path());
    restore(&remote, &into, &RestoreOptions::default()).unwrap();
    assert_eq!(read_state(&into, &name), s);
    let fetched_again = pack_bytes(target.path()) - kept;
    assert!(
        kept >= 4 * MIB as u64 && fetched_again < 4 * MIB as u64,
        "kept {kept} bytes from the failed attempt, fetched {fetched_again} more"
    );
}

#[test]
fn a_restore_takes_each_chunk_from_whichever_of_two_remotes_has_it() {
    let (local, a) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = chunked_store(local.path());
    let s = state(2 * MIB, 5);
    let name = persist_chunked(&store, 10, &s);
    ship(&store, a.path());
    // Remote b: the same objects; then each keeps only every other chunk.
    let b = tempfile::tempdir().unwrap();
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", a.path().display()))
        .arg(b.path())
        .status()
        .unwrap();
    assert!(copy.success());
    let chunks = chunk_objects(a.path(), NODE);
    assert!(chunks.len() >= 8);
    for (i, c) in chunks.iter().enumerate() {
        let file = c.file_name().unwrap();
        let in_b = b.path().join(NODE).join("chunks").join(file);
        std::fs::remove_file(if i % 2 == 0 { c.clone() } else { in_b }).unwrap();
    }
    let target = tempfile::tempdir().unwrap();
    let into = chunked_store(target.path());
    // From a alone: chunks are missing.
    assert!(restore(&local_remote(a.path()), &into, &RestoreOptions::default()).is_err());
    let opts = RestoreOptions::default().with_chunk_source(local_remote(b.path()));
    let restored = restore(&local_remote(a.path()), &into, &opts).unwrap();
    assert_eq!(restored.name, name);
    assert_eq!(read_state(&into, &name), s);
}

#[test]
fn gc_keeps_the_chunks_of_retained_and_held_snapshots_and_deletes_the_rest() {
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = chunked_store(local.path());
    let names: Vec<SnapshotName> = (1..=3u64)
        .map(|i| persist_chunked(&store, i * 10, &state(MIB, 10 + i)))
        .collect();
    ship(&store, remote_dir.path());
    let remote = local_remote(remote_dir.path());
    retention::hold(&remote, NODE, &names[0]).unwrap();
    let mut dry = GcPolicy::new(1);
    dry.dry_run = true;
    let would = retention::gc(&remote, &dry).unwrap();
    let report = retention::gc(&remote, &GcPolicy::new(1)).unwrap();
    // A dry run says what the gc then does: the chunks of the snapshot it would delete too.
    assert_eq!(
        (would.chunks_deleted, would.chunk_bytes_deleted),
        (report.chunks_deleted, report.chunk_bytes_deleted)
    );
    let deleted: Vec<u64> = report.deleted.iter().map(|o| o.name.idx).collect();
    assert_eq!(deleted, [20]);
    let objects: Vec<String> = chunk_objects(remote_dir.path(), NODE)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let dead = chunk_names(&store, &names[1]);
    assert_eq!(report.chunks_deleted, dead.len());
    for chunk in &dead {
        assert!(
            !objects.contains(chunk),
            "the deleted snapshot's chunk {chunk} is gone"
        );
    }
    for name in [&names[0], &names[2]] {
        for chunk in chunk_names(&store, name) {
            assert!(objects.contains(&chunk), "{name}'s chunk {chunk} is kept");
        }
    }
    // The held one still restores.
    let target = tempfile::tempdir().unwrap();
    let into = chunked_store(target.path());
    let r = restore(&remote, &into, &RestoreOptions::default()).unwrap();
    assert_eq!(r.name, names[2]);
    // gc wrote its sweep record and its end.
    let gc_dir = remote_dir.path().join(NODE).join("gc");
    let records: Vec<String> = std::fs::read_dir(gc_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("chunks_"))
        .collect();
    assert!(
        records.contains(&"chunks_1.done".to_string()),
        "{records:?}"
    );
}

#[test]
fn a_running_chunk_sweep_keeps_the_shipper_from_indexing_until_it_ends() {
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = chunked_store(local.path());
    persist_chunked(&store, 10, &state(MIB, 6));
    let gc_dir = remote_dir.path().join(NODE).join("gc");
    std::fs::create_dir_all(&gc_dir).unwrap();
    std::fs::write(gc_dir.join("chunks_1"), b"{}").unwrap();
    let config = ShipConfig::new(NODE).with_max_attempts(1).with_backoff(
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(1),
    );
    let sh = Shipper::new(
        local_remote(remote_dir.path()),
        std::sync::Arc::clone(&store),
        config,
    )
    .unwrap();
    let got = sh.ship_pending();
    assert!(
        matches!(&got, Err(ShipError::GaveUp { last, .. }) if matches!(**last, ShipError::ChunkSweepRunning { number: 1, .. })),
        "{got:?}"
    );
    assert!(
        chunk_objects(remote_dir.path(), NODE).is_empty(),
        "nothing relied on"
    );
    std::fs::write(gc_dir.join("chunks_1.done"), b"{}").unwrap();
    let report = sh.ship_pending().unwrap();
    assert_eq!(report.shipped.len(), 1);
}

#[test]
fn repair_checks_every_chunk_of_a_chunked_snapshot_and_drops_one_missing_a_chunk() {
    use snapseal_ship::repair::{self, RepairOptions};
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (names, _, _) = two_shipped(local.path(), remote_dir.path());
    let store = chunked_store(local.path());
    // A chunk only the newer snapshot names goes missing.
    let older = chunk_names(&store, &names[0]);
    let only_newer = chunk_names(&store, &names[1])
        .into_iter()
        .find(|c| !older.contains(c))
        .unwrap();
    std::fs::remove_file(
        remote_dir
            .path()
            .join(NODE)
            .join("chunks")
            .join(&only_newer),
    )
    .unwrap();
    let remote = local_remote(remote_dir.path());
    let report = repair::repair(&remote, &*options().verifier, &RepairOptions::default()).unwrap();
    let node = report.nodes.iter().find(|n| n.node == NODE).unwrap();
    assert_eq!(node.kept, [names[0]]);
    assert_eq!(node.dropped.len(), 1);
    assert_eq!(node.dropped[0].name, names[1]);
    assert!(
        node.dropped[0].reason.contains(&only_newer),
        "{:?}",
        node.dropped
    );
}

#[test]
fn a_chunk_sweep_that_begins_while_a_snapshot_ships_makes_the_shipper_upload_the_swept_chunk_before_indexing(
) {
    use crate::support::sweep_on_put::SweepOnPut;
    use snapseal_ship::{LocalStore, RemoteOptions};
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = chunked_store(local.path());
    let old = state(2 * MIB, 7);
    let first = persist_chunked(&store, 10, &old);
    ship(&store, remote_dir.path());
    // Snapshot 20 shares all but a chunk or two with 10; a sweep deletes a shared chunk
    // (one the shipper saw listed and skipped) just before 20's object goes up.
    let second = persist_chunked(&store, 20, &edited(&old, MIB, 10));
    let shared = chunk_names(&store, &first)[0].clone();
    assert!(chunk_names(&store, &second).contains(&shared));
    let victim = object_store::path::Path::from(format!("{NODE}/chunks/{shared}"));
    let sweeping = SweepOnPut {
        inner: std::sync::Arc::new(LocalStore::new(remote_dir.path().to_path_buf(), u64::MAX)),
        node: NODE.into(),
        victim,
        fired: Default::default(),
    };
    let remote = snapseal_ship::Remote::with_store(
        &file_url(remote_dir.path()),
        std::sync::Arc::new(sweeping),
        object_store::path::Path::from(""),
        &RemoteOptions::default(),
    )
    .unwrap();
    let sh = Shipper::new(
        std::sync::Arc::new(remote),
        std::sync::Arc::clone(&store),
        ShipConfig::new(NODE),
    )
    .unwrap();
    let report = sh.ship_pending().unwrap();
    assert_eq!(report.shipped, [second]);
    let chunk = remote_dir.path().join(NODE).join("chunks").join(&shared);
    assert!(
        chunk.exists(),
        "the swept chunk was uploaded again before 20 was indexed"
    );
    let target = tempfile::tempdir().unwrap();
    let into = chunked_store(target.path());
    let r = restore(
        &local_remote(remote_dir.path()),
        &into,
        &RestoreOptions::default(),
    )
    .unwrap();
    assert_eq!(r.name, second);
}

#[test]
fn a_one_percent_change_ships_under_three_percent_of_a_full_ship() {
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = chunked_store(local.path());
    let sh = Shipper::new(
        local_remote(remote_dir.path()),
        std::sync::Arc::clone(&store),
        ShipConfig::new(NODE),
    )
    .unwrap();
    let len = 32 * MIB;
    let base = state(len, 8);
    persist_chunked(&store, 10, &base);
    sh.ship_pending().unwrap();
    let full = sh.stats().chunk_bytes_uploaded;
    // 1% of the bytes, in one contiguous range.
    persist_chunked(&store, 20, &edited(&base, len / 3, len / 100));
    sh.ship_pending().unwrap();
    let delta = sh.stats().chunk_bytes_uploaded - full;
    let percent = delta as f64 * 100.0 / full as f64;
    eprintln!("chunk bytes shipped: full {full}, after a 1% change {delta} ({percent:.2}%)");
    assert_eq!(full, len as u64);
    assert!(percent <= 3.0, "{percent:.2}% of a full ship");
}

#[test]
fn a_chunked_snapshot_with_a_damaged_local_chunk_is_not_shipped_and_its_bad_chunk_never_leaves() {
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = chunked_store(local.path());
    let name = persist_chunked(&store, 10, &state(MIB, 9));
    let first = chunk_names(&store, &name)[0].clone();
    let pack = std::fs::read_dir(local.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[8] ^= 1; // the first chunk's first byte
    std::fs::write(&pack, bytes).unwrap();
    let sh = Shipper::new(
        local_remote(remote_dir.path()),
        std::sync::Arc::clone(&store),
        ShipConfig::new(NODE),
    )
    .unwrap();
    let report = sh.ship_pending().unwrap();
    assert_eq!(report.skipped, [name]);
    assert!(report.shipped.is_empty());
    let objects = chunk_objects(remote_dir.path(), NODE);
    assert!(
        !objects.iter().any(|p| p.ends_with(&first)),
        "the damaged chunk was not uploaded"
    );
    assert!(!remote_dir.path().join(NODE).join(name.file_name()).exists());
}

#[test]
fn gc_running_beside_the_shipper_never_leaves_an_indexed_snapshot_without_a_chunk() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    let (local, remote_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = chunked_store(local.path());
    let config = ShipConfig::new(NODE)
        .with_max_attempts(1000)
        .with_backoff(Duration::from_millis(1), Duration::from_millis(5));
    let sh = Shipper::new(
        local_remote(remote_dir.path()),
        std::sync::Arc::clone(&store),
        config,
    )
    .unwrap();
    let done = AtomicBool::new(false);
    let mut names = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let remote = local_remote(remote_dir.path());
            while !done.load(Ordering::SeqCst) {
                retention::gc(&remote, &GcPolicy::new(1)).unwrap();
            }
        });
        // Two states taking turns: each snapshot shares its chunks with the one before the
        // last, which gc (keeping 1) is deleting while it ships, with its chunks.
        let states = [state(MIB, 11), state(MIB, 12)];
        for i in 1..=16u64 {
            let current = edited(
                &states[i as usize % 2],
                (i as usize * 97_531) % (MIB - 5000),
                100,
            );
            names.push(persist_chunked(&store, i * 10, &current));
            sh.ship_pending().unwrap();
        }
        done.store(true, Ordering::SeqCst);
    });
    // Every snapshot the index names whose object is still there has every chunk it names.
    let index = snapseal_ship::index::NodeIndex::decode(
        &std::fs::read(remote_dir.path().join(NODE).join("index.json")).unwrap(),
        NODE,
    )
    .unwrap();
    let objects: Vec<String> = chunk_objects(remote_dir.path(), NODE)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut checked = 0;
    for name in &names {
        let indexed = index.snapshots.iter().any(|e| e.name == name.file_name());
        if !indexed || !remote_dir.path().join(NODE).join(name.file_name()).exists() {
            continue;
        }
        checked += 1;
        for chunk in chunk_names(&store, name) {
            assert!(
                objects.contains(&chunk),
                "{name} is indexed without its chunk {chunk}"
            );
        }
    }
    assert!(checked >= 1, "the newest snapshots are indexed and kept");
}
