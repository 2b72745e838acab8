//! `SnapshotStore::ingest`: a snapshot file from outside the store is committed only when it
//! verifies, never replaces a committed file, leaves nothing behind when refused, and a crash
//! at any step leaves either no file of it or the complete verified one.

use crate::fixture::*;
use snapseal_persist::fs::{Fault, FaultKind, Op, SimFs};
use snapseal_persist::internals::format::{Header, HEADER_LEN};
use snapseal_persist::internals::{verify_bytes, PendingName};
use snapseal_persist::{FileState, IngestError, Ingested, SnapshotStore, StoreOptions};
use std::io::Write;

const LIMIT: u64 = 1 << 30;

fn leftovers(sim: &SimFs) -> Vec<String> {
    sim.names(dir())
        .into_iter()
        .filter(|n| PendingName::parse(n).is_some())
        .collect()
}

fn empty_store() -> (SimFs, SnapshotStore) {
    let sim = SimFs::new(1);
    let store = open(&sim, opts());
    (sim, store)
}

#[test]
fn a_genuine_file_is_committed_byte_identical_and_becomes_latest() {
    let (sim, store) = empty_store();
    let snap = Snap::new(40, 70_000);
    let bytes = snap.file_bytes();
    let got = store.ingest(&mut &bytes[..], LIMIT).unwrap();
    let Ingested::Committed(c) = &got else {
        panic!("expected a commit, got {got:?}")
    };
    assert_eq!(c.name, snap.name());
    assert_eq!(c.file_len, bytes.len() as u64);
    assert_eq!(
        sim.read(dir(), &snap.file_name(FileState::Committed)),
        Some(bytes)
    );
    assert_eq!(store.latest().unwrap().unwrap().name(), &snap.name());
    assert!(leftovers(&sim).is_empty());
}

#[test]
fn ingesting_the_same_file_twice_reports_it_present_and_changes_nothing() {
    let (sim, store) = empty_store();
    let snap = Snap::new(40, 5000);
    let bytes = snap.file_bytes();
    store.ingest(&mut &bytes[..], LIMIT).unwrap();
    let before = sim.op_count();
    let again = store.ingest(&mut &bytes[..], LIMIT).unwrap();
    assert_eq!(again, Ingested::AlreadyPresent(snap.name()));
    let trace = sim.trace();
    let since: Vec<Op> = trace
        .iter()
        .skip(trace.len() - (sim.op_count() - before) as usize)
        .map(|r| r.op)
        .collect();
    assert!(
        !since
            .iter()
            .any(|op| matches!(op, Op::CreateNew | Op::Write | Op::Rename | Op::Unlink)),
        "a present name must not be written again: {since:?}"
    );
    assert_eq!(names_in(&sim, FileState::Committed), vec![snap.name()]);
}

#[test]
fn an_existing_committed_file_is_never_replaced_even_by_a_different_genuine_one() {
    let (sim, store) = empty_store();
    let first = Snap::from_body(40, 41, vec![1u8; 3000]);
    let other = Snap::from_body(40, 41, vec![2u8; 3000]);
    store.ingest(&mut &first.file_bytes()[..], LIMIT).unwrap();
    let got = store.ingest(&mut &other.file_bytes()[..], LIMIT).unwrap();
    assert_eq!(got, Ingested::AlreadyPresent(first.name()));
    assert_eq!(
        sim.read(dir(), &first.file_name(FileState::Committed)),
        Some(first.file_bytes())
    );
}

/// The ways a file from outside can be wrong, each refused with nothing left behind.
#[test]
fn a_tampered_relabelled_truncated_or_oversized_file_is_refused_and_leaves_nothing() {
    let snap = Snap::new(40, 9000);
    let good = snap.file_bytes();
    let mut flipped = good.clone();
    flipped[HEADER_LEN + 100] ^= 1;
    let relabelled = {
        let mut b = good.clone();
        let mut h = Header::decode(&b).unwrap();
        h.idx += 5;
        h.evidence_idx += 5;
        b[..HEADER_LEN].copy_from_slice(&h.encode());
        b
    };
    let untrusted = {
        let s = Snap::new(40, 9000);
        // Same bytes, but only keys other than the signer's are trusted.
        s.file_bytes()
    };
    let mut trailing = good.clone();
    trailing.push(0);

    type Check = fn(&IngestError) -> bool;
    let cases: [(&str, Vec<u8>, u64, StoreOptions, Check); 7] = [
        ("bit flip", flipped, LIMIT, opts(), |e| {
            matches!(e, IngestError::Refused { .. })
        }),
        ("relabelled header", relabelled, LIMIT, opts(), |e| {
            matches!(e, IngestError::Refused { .. })
        }),
        (
            "untrusted signer",
            untrusted,
            LIMIT,
            StoreOptions::new(std::sync::Arc::new(
                snapseal_persist::receipt::Ed25519Verifier::new(vec![
                    untrusted_key().verifying_key()
                ]),
            )),
            |e| matches!(e, IngestError::Refused { .. }),
        ),
        (
            "truncated",
            good[..good.len() - 1].to_vec(),
            LIMIT,
            opts(),
            |e| matches!(e, IngestError::Truncated { .. }),
        ),
        ("trailing byte", trailing, LIMIT, opts(), |e| {
            matches!(e, IngestError::TrailingBytes { .. })
        }),
        ("over the limit", good.clone(), 1000, opts(), |e| {
            matches!(e, IngestError::TooLarge { .. })
        }),
        ("junk header", vec![0xAB; 4096], LIMIT, opts(), |e| {
            matches!(e, IngestError::Header { .. })
        }),
    ];
    for (what, bytes, limit, o, check) in cases {
        let sim = SimFs::new(2);
        let store = open(&sim, o);
        let err = store
            .ingest(&mut &bytes[..], limit)
            .expect_err(&format!("{what}: must be refused"));
        assert!(check(&err), "{what}: wrong error {err:?}");
        assert!(
            sim.names(dir()).iter().all(|n| n == ".lock"),
            "{what}: left {:?}",
            sim.names(dir())
        );
        assert!(store.latest().unwrap().is_none(), "{what}");
    }
}

#[test]
fn the_push_form_refuses_bytes_past_the_header_length_at_the_write_that_brings_them() {
    let (sim, store) = empty_store();
    let snap = Snap::new(40, 2000);
    let mut bytes = snap.file_bytes();
    bytes.extend_from_slice(b"junk");
    let mut file = store.begin_ingest(LIMIT);
    let err = file.write_all(&bytes).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(leftovers(&sim).is_empty(), "the pending file goes at once");
    let got = store.finish_ingest(file).unwrap_err();
    assert!(matches!(got, IngestError::TrailingBytes { .. }), "{got:?}");
}

#[test]
fn a_dropped_ingest_removes_its_pending_file() {
    let (sim, store) = empty_store();
    let snap = Snap::new(40, 20_000);
    let bytes = snap.file_bytes();
    let mut file = store.begin_ingest(LIMIT);
    file.write_all(&bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(leftovers(&sim).len(), 1, "receiving into a pending file");
    drop(file);
    assert!(leftovers(&sim).is_empty());
    assert!(names_in(&sim, FileState::Committed).is_empty());
}

#[test]
fn an_older_snapshot_ingested_beside_newer_ones_leaves_latest_unchanged() {
    let (_sim, store) = empty_store();
    let newer = Snap::new(90, 3000);
    store.persist(&newer.request()).unwrap();
    let older = Snap::new(30, 3000);
    store.ingest(&mut &older.file_bytes()[..], LIMIT).unwrap();
    assert_eq!(store.latest().unwrap().unwrap().name(), &newer.name());
}

#[test]
fn a_failed_fsync_or_close_refuses_the_ingest_and_removes_the_file() {
    for (op, kind) in [
        (Op::Sync, FaultKind::Eio),
        (Op::Close, FaultKind::Eio),
        (Op::SyncDir, FaultKind::Eio),
    ] {
        let (sim, store) = empty_store();
        sim.inject(Fault::nth(op, 1, kind));
        let snap = Snap::new(40, 3000);
        let err = store
            .ingest(&mut &snap.file_bytes()[..], LIMIT)
            .unwrap_err();
        assert!(matches!(err, IngestError::Persist(_)), "{op:?}: {err:?}");
        assert!(leftovers(&sim).is_empty(), "{op:?}: {:?}", sim.names(dir()));
        assert!(
            names_in(&sim, FileState::Committed).is_empty(),
            "{op:?}: nothing may be reported lost yet stay committed"
        );
    }
}

/// Pushes `bytes` into a new ingest in 8 MiB writes (as a restore does) and finishes it.
fn ingest_in_pieces(store: &SnapshotStore, bytes: &[u8]) -> Result<Ingested, IngestError> {
    let mut file = store.begin_ingest(LIMIT);
    for piece in bytes.chunks(8 << 20) {
        if file.write_all(piece).is_err() {
            break;
        }
    }
    store.finish_ingest(file)
}

#[test]
fn a_large_ingest_starts_writeback_every_16_mib_and_commits() {
    let (sim, store) = empty_store();
    let snap = Snap::new(40, 40 << 20);
    let bytes = snap.file_bytes();
    assert!(matches!(
        ingest_in_pieces(&store, &bytes).unwrap(),
        Ingested::Committed(_)
    ));
    let hints = sim.trace().iter().filter(|r| r.op == Op::Writeback).count();
    assert_eq!(hints, 2, "at 16 and 32 MiB of a 40 MiB file");
    assert_eq!(names_in(&sim, FileState::Committed), vec![snap.name()]);
}

#[test]
fn a_failed_writeback_start_refuses_the_ingest_and_removes_the_file() {
    let (sim, store) = empty_store();
    sim.inject(Fault::nth(Op::Writeback, 1, FaultKind::Eio));
    let snap = Snap::new(40, 40 << 20);
    let err = ingest_in_pieces(&store, &snap.file_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("start writeback"),
        "the step is named: {err}"
    );
    assert!(leftovers(&sim).is_empty(), "{:?}", sim.names(dir()));
    assert!(names_in(&sim, FileState::Committed).is_empty());
}

/// Crash after every seam call of an ingest (with a previous snapshot present): recovery
/// finds the previous snapshot or the ingested one, complete and verified; never a partial
/// committed file or a leftover pending file; an ingest that returned `Ok` survives.
#[test]
fn a_crash_at_any_step_of_an_ingest_leaves_no_file_or_the_complete_verified_one() {
    let previous = Snap::new(10, 3000);
    let next = Snap::new(20, 50_000);
    let sequence = {
        let sim = SimFs::new(0);
        let store = open(&sim, opts());
        store.persist(&previous.request()).unwrap();
        let before = sim.op_count();
        store.ingest(&mut &next.file_bytes()[..], LIMIT).unwrap();
        sim.op_count() - before
    };
    assert!(sequence >= 7, "suspiciously short sequence ({sequence})");
    let mut outcomes = [0u32; 2];
    for seed in 0..16u64 {
        for k in 0..=sequence {
            let ctx = format!("seed {seed} halt after {k} of {sequence}");
            let sim = SimFs::new(seed);
            let store = open(&sim, opts());
            store.persist(&previous.request()).unwrap();
            sim.halt_after(k);
            let result = store.ingest(&mut &next.file_bytes()[..], LIMIT);
            drop(store);
            sim.crash();
            sim.clear_faults();
            for name in names_in(&sim, FileState::Committed) {
                let bytes = sim.read(dir(), &name.file_name()).unwrap();
                verify_bytes(&bytes, Some(&name), &*verifier())
                    .unwrap_or_else(|e| panic!("{ctx}: {name} does not verify: {e}"));
            }
            let store = open(&sim, opts());
            assert!(leftovers(&sim).is_empty(), "{ctx}: {:?}", sim.names(dir()));
            let latest = *store.latest().unwrap().expect("a snapshot").name();
            if result.is_ok() {
                assert_eq!(latest, next.name(), "{ctx}: Ok but lost");
            }
            assert!(latest == previous.name() || latest == next.name(), "{ctx}");
            outcomes[usize::from(latest == next.name())] += 1;
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "outcomes {outcomes:?}");
}

/// Streams `bytes` into a new ingest and verifies it, without committing.
fn verified(
    store: &SnapshotStore,
    bytes: &[u8],
) -> Result<snapseal_persist::internals::VerifiedIngest, IngestError> {
    let mut file = store.begin_ingest(LIMIT);
    let _ = file.write_all(bytes);
    store.verify_ingest(file)
}

#[test]
fn a_set_verified_first_commits_only_when_every_file_verified_and_a_dropped_one_leaves_nothing() {
    let (sim, store) = empty_store();
    let good = [Snap::new(10, 3000), Snap::new(20, 4000)];
    let mut forged = Snap::new(30, 5000).file_bytes();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let mut staged = Vec::new();
    for snap in &good {
        staged.push(verified(&store, &snap.file_bytes()).unwrap());
    }
    // Verified but uncommitted: durable under pending names, nothing committed, not latest.
    assert_eq!(leftovers(&sim).len(), 2);
    assert!(store.latest().unwrap().is_none());
    assert!(matches!(
        verified(&store, &forged),
        Err(IngestError::Refused { .. })
    ));
    // The set failed: dropping what was verified removes it all.
    drop(staged);
    assert!(leftovers(&sim).is_empty());
    assert!(store.list().unwrap().is_empty());

    // The same set without the forgery: verified first, then committed in order.
    let staged: Vec<_> = good
        .iter()
        .map(|s| verified(&store, &s.file_bytes()).unwrap())
        .collect();
    for v in staged {
        assert!(matches!(store.commit_ingest(v), Ok(Ingested::Committed(_))));
    }
    assert_eq!(store.latest().unwrap().unwrap().name(), &good[1].name());
    assert!(leftovers(&sim).is_empty());
    // Already there: verified as present, committing it changes nothing.
    let again = verified(&store, &good[0].file_bytes()).unwrap();
    assert_eq!(
        store.commit_ingest(again).unwrap(),
        Ingested::AlreadyPresent(good[0].name())
    );
}
