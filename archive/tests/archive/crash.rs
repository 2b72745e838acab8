//! Crashes: an import halted at every filesystem call, then power lost; an export's archive
//! likewise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::support::*;
use snapseal_archive::{import, ImportOptions, Level, Target};
use snapseal_ledger::disk_ledger::ChunkKeys;
use snapseal_persist::fs::FileSystem;
use snapseal_persist::SnapshotStore;

/// Crash matrix over import: the simulated filesystem halts after every possible number of
/// calls (the process died there), then loses power. After the crash every committed name
/// (snapshot or chunk) holds a whole artifact that verifies and equals the archived bytes;
/// what is committed is what publication reached (the snapshots first, then the chunks in
/// order: never a chunk without the snapshots, never a chunk after a gap); rerunning the
/// import completes it with every artifact in place.
#[test]
fn import_crashed_at_every_step_leaves_only_whole_artifacts_and_a_rerun_completes_it() {
    use snapseal_archive::ChunkVerifier;
    use snapseal_persist::fs::SimFs;
    use snapseal_persist::FileState;

    let (_tmp, dir, _) = src();
    let (archive, manifest) = export_bytes(&dir, Level::Replay).unwrap();
    let archived: BTreeMap<String, Vec<u8>> = entries(&archive).into_iter().collect();
    let want_chunks: BTreeSet<String> = manifest
        .artifacts
        .iter()
        .filter_map(|a| a.path.strip_prefix("ledger/").map(str::to_string))
        .collect();
    let want_snaps: BTreeSet<String> = manifest
        .artifacts
        .iter()
        .filter_map(|a| a.path.strip_prefix("snapshots/").map(str::to_string))
        .collect();
    let d = Path::new("/node");
    let run = |fs: &SimFs| {
        let store = SnapshotStore::open(Arc::new(fs.clone()), d, store_opts())?;
        let handle = snapseal_archive::Dir::open_on(fs, d, false)?;
        // SimFs has no subdirectories: the ledger by its own path.
        let ledger = snapseal_archive::Dir::open_on(fs, &d.join("ledger"), true)?;
        let opts = ImportOptions {
            level: Level::Replay,
            trusted_keys: vec![key()],
            repopulate: false,
        };
        let target = Target {
            store: &store,
            dir: &handle,
            ledger: &ledger,
        };
        import(&mut &archive[..], &target, &ChunkKeys(vec![key()]), &opts)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)
            .map(|_| ())
    };
    let mut steps = 0;
    for n in 0.. {
        let fs = SimFs::new(n);
        fs.halt_after(n);
        let outcome: Result<(), Box<dyn std::error::Error>> = run(&fs);
        let halted = fs.op_count() > n;
        fs.crash();
        // What survived the crash: only whole, verifying artifacts under committed names.
        let store = SnapshotStore::open(Arc::new(fs.clone()), d, store_opts()).unwrap();
        let handle = fs.open_dir(d, false).unwrap();
        for s in store.list().unwrap() {
            if s.name.state == FileState::Committed {
                let name = s.name.file_name();
                assert!(want_snaps.contains(&name), "step {n}: {name}");
                let bytes = handle.open_read(&name).unwrap();
                assert!(
                    bytes[..] == archived[&format!("snapshots/{name}")][..],
                    "step {n}: {name} is whole"
                );
            }
        }
        let snaps_now = store.list().unwrap().len();
        drop(store);
        let mut chunks_now: Vec<(u64, u64)> = Vec::new();
        if let Ok(ledger) = fs.open_dir(&d.join("ledger"), false) {
            for e in ledger.list().unwrap() {
                let name = e.name.to_string_lossy().into_owned();
                if let Some((start, end)) = snapseal_archive::ChunkRef::parse_name(&name) {
                    let bytes = ledger.open_read(&name).unwrap();
                    assert!(
                        bytes[..] == archived[&format!("ledger/{name}")][..],
                        "step {n}: committed chunk {name} is whole"
                    );
                    ChunkKeys(vec![key()])
                        .verify_chunk(&mut &bytes[..], bytes.len() as u64, start, end)
                        .unwrap();
                    chunks_now.push((start, end));
                }
            }
        }
        chunks_now.sort_unstable();
        let mut in_order: Vec<(u64, u64)> = want_chunks
            .iter()
            .filter_map(|c| snapseal_archive::ChunkRef::parse_name(c))
            .collect();
        in_order.sort_unstable();
        assert_eq!(
            chunks_now[..],
            in_order[..chunks_now.len()],
            "step {n}: the chunks committed are a prefix"
        );
        assert!(
            chunks_now.is_empty() || snaps_now == want_snaps.len(),
            "step {n}: chunks only after every snapshot"
        );
        // The rerun completes it.
        run(&fs).unwrap_or_else(|e| panic!("step {n}: rerun after the crash: {e}"));
        let store = SnapshotStore::open(Arc::new(fs.clone()), d, store_opts()).unwrap();
        let snaps: BTreeSet<String> = store
            .list()
            .unwrap()
            .iter()
            .filter(|s| s.name.state == FileState::Committed)
            .map(|s| s.name.file_name())
            .collect();
        assert_eq!(snaps, want_snaps, "step {n}");
        let ledger = fs.open_dir(&d.join("ledger"), false).unwrap();
        let chunks: BTreeSet<String> = ledger
            .list()
            .unwrap()
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .filter(|n| snapseal_archive::ChunkRef::parse_name(n).is_some())
            .collect();
        assert_eq!(chunks, want_chunks, "step {n}");
        steps += 1;
        if !halted {
            outcome.unwrap();
            break;
        }
        assert!(
            outcome.is_err(),
            "step {n}: a halted import reports failure"
        );
    }
    assert!(steps > 10, "{steps} crash points covered");
}

/// Crash matrix over writing an archive: the export halts after every possible number of
/// filesystem calls on the archive's directory, then loses power. Afterwards the archive's
/// name holds nothing, or the whole archive.
#[test]
fn an_export_killed_at_any_step_leaves_no_archive_or_a_whole_one() {
    use snapseal_archive::{export, PendingFile, Stale};
    use snapseal_ledger::disk_ledger::LedgerDir;
    use snapseal_persist::fs::{RealFs, SimFs};
    use std::io::Write;

    let (_tmp, dir, _) = src();
    let (whole, _) = export_bytes(&dir, Level::Replay).unwrap();
    let source = LedgerDir::open(&RealFs::new(), &dir.join("ledger")).unwrap();
    let handle = snapseal_archive::Dir::open(&dir).unwrap();
    let out = Path::new("/out");
    let mut complete = 0;
    for n in 0.. {
        let fs = SimFs::new(n);
        fs.open_dir(out, true).unwrap();
        let base = fs.op_count();
        fs.halt_after(n);
        let outcome = (|| -> Result<(), Box<dyn std::error::Error>> {
            let d = snapseal_archive::Dir::open_on(&fs, out, false)?;
            let file = PendingFile::create(&d, "a.tar.pending", 0o644, Stale::Refuse)?;
            let mut w = std::io::BufWriter::new(file);
            export(
                &handle,
                &source,
                &ChunkKeys(vec![key()]),
                &export_opts(Level::Replay),
                &mut w,
            )?;
            w.flush()?;
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.seal()?.publish("a.tar")?;
            Ok(())
        })();
        let halted = fs.op_count() > base + n;
        fs.crash();
        let d = fs.open_dir(out, false).unwrap();
        if let Ok(bytes) = d.open_read("a.tar") {
            assert!(
                bytes[..] == whole[..],
                "step {n}: a.tar is the whole archive"
            );
            complete += 1;
        }
        if !halted {
            outcome.unwrap();
            assert_eq!(&d.open_read("a.tar").unwrap()[..], &whole[..]);
            break;
        }
        assert!(
            outcome.is_err(),
            "step {n}: a halted export reports failure"
        );
    }
    assert!(complete >= 1);
}
