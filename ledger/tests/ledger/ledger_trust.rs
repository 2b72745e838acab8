//! The disk ledger as a trust boundary (docs/LEDGER.md): a failed write, fsync or close
//! poisons the open chunk (never fsynced again, never sealed, its entries never committed);
//! a full disk or a crash at any step loses no acknowledged commit and the directory reopens;
//! a forged chunk (check bytes recomputed), a chunk signed by another key and a chunk from
//! another history are refused with their name and the reason, never replayed; an oversized
//! chunk is refused by its size before a byte of it is read.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use snapseal_ledger::disk_ledger::{
    read_chunk_file, replay_writes, ChunkParts, DiskLedger, LedgerDir, LedgerError,
    MAX_CHUNK_BYTES, MAX_CHUNK_FILE,
};
use snapseal_ledger::disk_node::{DiskKv, ReopenError, StartPoint};
use snapseal_ledger::ledger::{Ledger, TxKind};
use snapseal_persist::fs::{Fault, FaultKind, FileSystem, Op, RealFs, SimFs};
use snapseal_persist::internals::fs::UntrustedError;

const SEED: u64 = 11;

fn write(k: u64, fill: u8) -> TxKind {
    TxKind::Write {
        key: k,
        value: Arc::from(vec![fill; 40]),
    }
}

/// Round `r` of the test history: 9 writes (values filled with `fill`) then a signature.
fn append_round(disk: &DiskLedger, r: u64, fill: u8) -> u64 {
    for k in 0..9 {
        disk.append(write(r * 10 + k, fill));
    }
    disk.append_signature().sig_idx
}

/// `rounds` rounds, each signature committed; returns the signatures.
fn rounds(disk: &DiskLedger, rounds: std::ops::Range<u64>, fill: u8) -> Vec<u64> {
    rounds
        .map(|r| {
            let sig = append_round(disk, r, fill);
            disk.commit(sig).unwrap();
            sig
        })
        .collect()
}

/// Every committed tx of `disk`, read back.
fn txs(disk: &DiskLedger) -> Vec<TxKind> {
    let mut out = Vec::new();
    let n = disk
        .for_each(1, disk.commit_idx(), |_, tx| out.push(tx.clone()))
        .unwrap();
    assert_eq!(n, disk.commit_idx());
    out
}

/// The same history in the in-memory reference ledger, up to `n` txs.
fn reference(seed: u64, n: u64, fill: u8) -> Vec<TxKind> {
    let mem = Ledger::from_seed(seed);
    let mut r = 0;
    while mem.last_idx() < n {
        for k in 0..9 {
            mem.append(write(r * 10 + k, fill));
        }
        mem.append_signature();
        r += 1;
    }
    (1..=n).map(|i| mem.tx(i).unwrap()).collect()
}

fn sim_ledger(sim: &SimFs, chunk_bytes: u64) -> Result<DiskLedger, LedgerError> {
    DiskLedger::open(
        sim,
        Path::new("/ledger"),
        Ledger::seed_key(SEED),
        chunk_bytes,
    )
}

#[test]
fn a_failed_fsync_poisons_the_open_chunk_which_is_never_fsynced_again_nor_sealed() {
    let sim = SimFs::new(1);
    let disk = sim_ledger(&sim, MAX_CHUNK_BYTES).unwrap();
    rounds(&disk, 0..2, 1);
    let sig = append_round(&disk, 2, 1);
    sim.clear_trace();
    sim.inject(Fault::nth(Op::Sync, 1, FaultKind::Eio));
    let err = disk.commit(sig).unwrap_err().to_string();
    assert!(
        err.contains("ledger_1: fsync: Input/output error (os error 5)"),
        "{err}"
    );
    assert_eq!(
        disk.commit_idx(),
        20,
        "txs whose fsync failed are not committed"
    );
    // What a clean stop does (the demo seals at the end), and a retry: both refused.
    assert!(matches!(disk.seal(), Err(LedgerError::Failed(_))));
    assert!(matches!(disk.commit(sig), Err(LedgerError::Failed(_))));
    let after: Vec<Op> = sim.trace().iter().map(|r| r.op).collect();
    assert_eq!(
        after.iter().filter(|op| **op == Op::Sync).count(),
        1,
        "one fsync, the failed one: {after:?}"
    );
    assert!(
        !after
            .iter()
            .any(|op| matches!(op, Op::Close | Op::Rename | Op::HardLink)),
        "the poisoned chunk is never closed for sealing nor renamed: {after:?}"
    );
    assert_eq!(sim.names(Path::new("/ledger")), ["ledger_1"]);
    // What was committed before reads back; the failed txs are still the uncommitted tail.
    assert_eq!(txs(&disk), reference(SEED, 20, 1));
    assert_eq!(disk.last_idx(), 30);
}

#[test]
fn an_enospc_append_commits_nothing_seals_nothing_and_the_ledger_reopens_after_it() {
    let sim = SimFs::new(2);
    let disk = sim_ledger(&sim, MAX_CHUNK_BYTES).unwrap();
    rounds(&disk, 0..2, 1);
    let sig = append_round(&disk, 2, 1);
    // The disk fills in the middle of the append: part of it is written, then ENOSPC.
    sim.inject(Fault::nth(Op::Write, 1, FaultKind::ShortWrite));
    sim.inject(Fault::nth(Op::Write, 2, FaultKind::Enospc));
    let err = disk.commit(sig).unwrap_err().to_string();
    assert!(
        err.contains("appending: No space left on device (os error 28)"),
        "{err}"
    );
    assert_eq!(
        disk.commit_idx(),
        20,
        "the txs of a failed append are not committed"
    );
    let mut seen = Vec::new();
    disk.for_each(21, 30, |i, tx| seen.push((i, tx.clone())))
        .unwrap();
    assert_eq!(seen.len(), 10, "still there, as the uncommitted tail");
    assert!(matches!(disk.seal(), Err(LedgerError::Failed(_))));
    assert_eq!(
        sim.names(Path::new("/ledger")),
        ["ledger_1"],
        "the torn chunk is not sealed"
    );
    drop(disk);
    sim.clear_faults();

    // The process restarts with space again: the torn tail is cut at the last whole
    // signature interval, and the ledger goes on.
    let disk = sim_ledger(&sim, MAX_CHUNK_BYTES).unwrap();
    assert_eq!(disk.commit_idx(), 20);
    assert_eq!(disk.sealed(), [(1, 20)]);
    assert_eq!(txs(&disk), reference(SEED, 20, 1));
    rounds(&disk, 2..4, 1);
    drop(disk);
    let disk = sim_ledger(&sim, MAX_CHUNK_BYTES).unwrap();
    assert_eq!(txs(&disk), reference(SEED, 40, 1));
}

/// One run of the crash test: opens the ledger (small chunks, so seals happen) and commits
/// rounds until `rounds` are done or a call fails; returns the largest acknowledged commit.
fn crash_run(sim: &SimFs, rounds: u64) -> u64 {
    let Ok(disk) = sim_ledger(sim, 1000) else {
        return 0;
    };
    let mut acked = disk.commit_idx();
    let mut r = acked / 10;
    while r < rounds {
        let sig = append_round(&disk, r, 1);
        if disk.commit(sig).is_err() {
            break;
        }
        acked = sig;
        r += 1;
    }
    acked
}

#[test]
fn a_power_loss_at_any_step_of_commits_seals_and_recovery_loses_no_acknowledged_commit() {
    let clean = SimFs::new(0);
    crash_run(&clean, 6);
    let ops = clean.op_count();
    let expected = reference(SEED, 60, 1);
    for n in 0..ops {
        for m in [None, Some(0), Some(1), Some(2), Some(3), Some(5), Some(8)] {
            let sim = SimFs::new(n * 31 + m.unwrap_or(99));
            sim.halt_after(n);
            let acked = crash_run(&sim, 6);
            sim.crash();
            if let Some(m) = m {
                // A second power loss, during the recovery.
                sim.halt_after(m);
                let _ = sim_ledger(&sim, 1000);
                sim.crash();
            }
            let disk = sim_ledger(&sim, 1000)
                .unwrap_or_else(|e| panic!("halt after {n}, then {m:?}: reopen: {e}"));
            let got = txs(&disk);
            assert!(
                got.len() as u64 >= acked,
                "halt after {n}, then {m:?}: {} txs, {acked} acknowledged",
                got.len()
            );
            assert_eq!(got[..], expected[..got.len()], "halt after {n}, then {m:?}");
        }
    }
}

#[test]
fn after_a_full_disk_and_a_power_loss_the_ledger_reopens_with_every_acknowledged_commit() {
    for seed in 0..32 {
        let sim = SimFs::new(seed);
        let disk = sim_ledger(&sim, 1000).unwrap();
        rounds(&disk, 0..3, 1);
        let sig = append_round(&disk, 3, 1);
        sim.inject(Fault::always(Op::Write, FaultKind::Enospc));
        assert!(disk.commit(sig).is_err());
        assert!(disk.seal().is_err());
        drop(disk);
        sim.crash();
        sim.clear_faults();
        let disk = sim_ledger(&sim, 1000).unwrap();
        assert_eq!(disk.commit_idx(), 30, "seed {seed}");
        assert_eq!(txs(&disk), reference(SEED, 30, 1));
        rounds(&disk, 3..5, 1);
        assert_eq!(txs(&disk), reference(SEED, 50, 1));
    }
}

/// A ledger of four sealed chunks (1-10, 11-20, 21-30, 31-40) in `path`, signed with `seed`'s
/// key, its values filled with `fill`.
fn four_chunks(path: &Path, seed: u64, fill: u8) {
    let disk = DiskLedger::open(&RealFs::new(), path, Ledger::seed_key(seed), 1).unwrap();
    for r in 0..4 {
        let sig = append_round(&disk, r, fill);
        disk.commit(sig).unwrap();
    }
    assert_eq!(disk.sealed(), [(1, 10), (11, 20), (21, 30), (31, 40)]);
}

fn open_real(path: &Path) -> Result<DiskLedger, LedgerError> {
    DiskLedger::open(&RealFs::new(), path, Ledger::seed_key(SEED), 1)
}

/// Rewrites chunk `name` in `dir` with `edit` applied, every check byte recomputed.
fn forge(dir: &Path, name: &str, edit: impl FnOnce(&mut ChunkParts)) {
    let path = dir.join(name);
    let mut parts = ChunkParts::decode(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut parts);
    std::fs::write(&path, parts.encode()).unwrap();
}

fn assert_refused(err: &str, name: &str, why: &str) {
    assert!(err.contains(name) && err.contains(why), "{err}");
}

#[test]
fn a_forged_chunk_with_its_check_bytes_recomputed_is_refused_naming_it_and_why() {
    for name in ["ledger_11-20.committed", "ledger_31-40.committed"] {
        let tmp = tempfile::tempdir().unwrap();
        four_chunks(tmp.path(), SEED, 1);
        forge(tmp.path(), name, |p| {
            p.entries[2].1 = write(99, 7);
        });
        let err = open_real(tmp.path()).unwrap_err().to_string();
        assert_refused(&err, name, "signs a root other than the tree before it");
        // The replay an archive or a tool makes refuses it as well, before applying a write.
        let mut state = BTreeMap::new();
        let key = Ledger::seed_key(SEED).verifying_key();
        let ledger = LedgerDir::open(&RealFs::new(), tmp.path()).unwrap();
        let err = replay_writes(&ledger, &[key], 1, 40, &mut state)
            .unwrap_err()
            .to_string();
        assert_refused(&err, name, "signs a root other than the tree before it");
        assert!(
            !state.contains_key(&99),
            "the forged write was never applied"
        );
    }
    // A forged header frontier changes every root the chunk's signatures sign.
    let tmp = tempfile::tempdir().unwrap();
    four_chunks(tmp.path(), SEED, 1);
    let other = tempfile::tempdir().unwrap();
    four_chunks(other.path(), SEED, 2);
    let theirs = std::fs::read(other.path().join("ledger_31-40.committed")).unwrap();
    let frontier = ChunkParts::decode(&theirs).unwrap().frontier;
    forge(tmp.path(), "ledger_31-40.committed", |p| {
        p.frontier = frontier
    });
    let err = open_real(tmp.path()).unwrap_err().to_string();
    assert_refused(&err, "ledger_31-40.committed", "signs a root other than");
}

#[test]
fn a_chunk_signed_by_another_key_is_refused_naming_it_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    four_chunks(tmp.path(), SEED, 1);
    let other = tempfile::tempdir().unwrap();
    four_chunks(other.path(), SEED + 1, 1);
    for name in ["ledger_21-30.committed", "ledger_31-40.committed"] {
        let ours = std::fs::read(tmp.path().join(name)).unwrap();
        std::fs::copy(other.path().join(name), tmp.path().join(name)).unwrap();
        let err = open_real(tmp.path()).unwrap_err().to_string();
        assert_refused(&err, name, "signed by a key that is not trusted");
        std::fs::write(tmp.path().join(name), ours).unwrap();
    }
    open_real(tmp.path()).unwrap();
}

#[test]
fn a_chunk_from_another_history_is_refused_naming_it_and_why() {
    // Same key, same chunk boundaries, other values: each chunk verifies on its own.
    let tmp = tempfile::tempdir().unwrap();
    four_chunks(tmp.path(), SEED, 1);
    let other = tempfile::tempdir().unwrap();
    four_chunks(other.path(), SEED, 2);
    for name in ["ledger_21-30.committed", "ledger_31-40.committed"] {
        let ours = std::fs::read(tmp.path().join(name)).unwrap();
        std::fs::copy(other.path().join(name), tmp.path().join(name)).unwrap();
        let err = open_real(tmp.path()).unwrap_err().to_string();
        assert_refused(
            &err,
            name,
            "does not start where the chunk before it ends: it belongs to another history",
        );
        std::fs::write(tmp.path().join(name), ours).unwrap();
    }
    // The other history's chunk as the open chunk a crash left.
    std::fs::remove_file(tmp.path().join("ledger_31-40.committed")).unwrap();
    std::fs::copy(
        other.path().join("ledger_31-40.committed"),
        tmp.path().join("ledger_31"),
    )
    .unwrap();
    let err = open_real(tmp.path()).unwrap_err().to_string();
    assert_refused(&err, "ledger_31", "it belongs to another history");
    assert!(
        tmp.path().join("ledger_31").exists(),
        "a refused chunk is left alone"
    );
}

#[test]
fn a_snapshot_is_not_replayed_onto_a_ledger_of_another_history() {
    let ours = tempfile::tempdir().unwrap();
    four_chunks(ours.path(), SEED, 1);
    let theirs = tempfile::tempdir().unwrap();
    four_chunks(theirs.path(), SEED, 2);
    let ledger = open_real(ours.path()).unwrap();
    let Some(TxKind::Signature(signed)) = ledger.tx(20).unwrap() else {
        panic!("tx 20 is a signature");
    };
    let start = || StartPoint {
        idx: 15,
        map: BTreeMap::new(),
        signed: signed.clone(),
    };
    // Their ledger verifies (same key, consistent chunks) but is not the snapshot's history.
    let err = DiskKv::open(open_real(theirs.path()).unwrap(), Some(start())).unwrap_err();
    assert!(
        matches!(err, ReopenError::OtherHistory { sig_idx: 20, .. }),
        "{err}"
    );
    DiskKv::open(ledger, Some(start())).unwrap();
}

#[test]
fn a_sparse_4000_mib_chunk_is_refused_by_its_size_before_anything_is_read() {
    const LEN: u64 = 4000 << 20;
    for name in ["ledger_1-10.committed", "ledger_1"] {
        let tmp = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(tmp.path().join(name)).unwrap();
        f.set_len(LEN).unwrap();
        drop(f);
        let err = open_real(tmp.path()).unwrap_err();
        assert!(
            matches!(
                &err,
                LedgerError::Open(UntrustedError::TooLarge {
                    len: LEN,
                    max: MAX_CHUNK_FILE,
                    ..
                })
            ),
            "{err}"
        );
        assert!(err.to_string().contains(name), "{err}");
        let dir = RealFs::new().open_dir(tmp.path(), false).unwrap();
        let err = read_chunk_file(&*dir, name).unwrap_err().to_string();
        assert!(err.contains("over the limit"), "{err}");
    }
}

/// An open chunk `ledger_1` holding three signature intervals (1-10, 11-20, 21-30) in `path`.
fn open_chunk_of_three(path: &Path) -> Vec<u8> {
    let disk = DiskLedger::open(
        &RealFs::new(),
        path,
        Ledger::seed_key(SEED),
        MAX_CHUNK_BYTES,
    )
    .unwrap();
    rounds(&disk, 0..3, 1);
    drop(disk);
    std::fs::read(path.join("ledger_1")).unwrap()
}

#[test]
fn an_open_chunk_a_crash_tore_or_zeroed_is_recovered_up_to_its_last_whole_signature_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = open_chunk_of_three(tmp.path());
    let chunk = tmp.path().join("ledger_1");
    // The size reached the disk, the last 70 bytes of data did not.
    let mut zeroed = bytes.clone();
    let n = zeroed.len();
    zeroed[n - 70..].fill(0);
    // Only a few bytes of the header reached the disk.
    let torn_header = bytes[..12].to_vec();
    for (case, data, end) in [("zeroed", zeroed, 20), ("torn header", torn_header, 0)] {
        std::fs::write(&chunk, &data).unwrap();
        for f in std::fs::read_dir(tmp.path()).unwrap() {
            let p = f.unwrap().path();
            if p != chunk {
                std::fs::remove_file(p).unwrap();
            }
        }
        let disk = open_real(tmp.path()).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(disk.commit_idx(), end, "{case}");
        assert_eq!(txs(&disk), reference(SEED, end, 1), "{case}");
        assert!(
            !chunk.exists(),
            "{case}: the open chunk is removed once recovered"
        );
    }
}

#[test]
fn damage_inside_an_open_chunk_is_refused_rather_than_cut_off_with_what_follows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = open_chunk_of_three(tmp.path());
    // A bit flip in the middle: committed entries follow it, which a cut would lose.
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(tmp.path().join("ledger_1"), &bytes).unwrap();
    let err = open_real(tmp.path()).unwrap_err().to_string();
    assert_refused(&err, "ledger_1", "damage, not a torn write");
    assert_eq!(
        std::fs::read(tmp.path().join("ledger_1")).unwrap(),
        bytes,
        "left as it was"
    );
}

#[test]
fn a_chunk_changed_after_open_is_refused_when_read() {
    let tmp = tempfile::tempdir().unwrap();
    four_chunks(tmp.path(), SEED, 1);
    let other = tempfile::tempdir().unwrap();
    four_chunks(other.path(), SEED, 2);
    let disk = open_real(tmp.path()).unwrap();
    // Swapped for a chunk that verifies on its own and links to nothing the ledger knows.
    let name = "ledger_11-20.committed";
    std::fs::copy(other.path().join(name), tmp.path().join(name)).unwrap();
    let err = disk.tx(15).unwrap_err().to_string();
    assert_refused(&err, name, "another history");
    assert!(disk.proofs().inclusion_proof(15, 40).is_err());
}
