//! The disk ledger against the in-memory reference ledger: same roots, same proofs, chunk
//! files sealed and verifiable, reopen and crash recovery.

use std::sync::Arc;

use snapseal_ledger::disk_ledger::{
    read_chunk_file, verify_chunk, ChunkName, DiskLedger, MAX_CHUNK_BYTES,
};
use snapseal_ledger::ledger::{Ledger, TxKind};
use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::internals::receipt::{root_from_proof, verify_signed_root};
use snapseal_persist::receipt::leaf_hash;

/// A ledger in `dir` signed with `seed`'s key whose open chunk is never sealed by size.
fn unsealed(dir: &std::path::Path, seed: u64) -> DiskLedger {
    DiskLedger::open(&RealFs::new(), dir, Ledger::seed_key(seed), MAX_CHUNK_BYTES).unwrap()
}

fn write(k: u64) -> TxKind {
    TxKind::Write {
        key: k,
        value: Arc::from(vec![k as u8; 40]),
    }
}

/// Drives both ledgers the same way: writes, evidence, signatures every 10, commits one
/// signature behind, a rollback of the uncommitted tail every 37 txs.
fn drive(mem: &Ledger, disk: &DiskLedger, n: u64) -> Vec<(u64, u64)> {
    let mut sigs = Vec::new();
    let mut committed_sig = 0;
    let mut pending_sig = None;
    let mut evidence = Vec::new();
    for i in 0..n {
        if i % 37 == 36 {
            mem.truncate(committed_sig);
            disk.truncate(committed_sig).unwrap();
            pending_sig = None;
            continue;
        }
        if (mem.last_idx() + 1).is_multiple_of(10) {
            let a = mem.append_signature();
            let b = disk.append_signature();
            assert_eq!(a, b, "same signed root at {}", a.sig_idx);
            if let Some(p) = pending_sig.replace(a.sig_idx) {
                disk.commit(p).unwrap();
                committed_sig = p;
            }
            for &e in &evidence {
                if e < a.sig_idx {
                    sigs.push((e, a.sig_idx));
                }
            }
            evidence.clear();
        } else if i % 13 == 5 {
            let kind = TxKind::Evidence {
                snapshot_idx: i,
                digest: [i as u8; 32],
            };
            let a = mem.append(kind.clone());
            assert_eq!(a, disk.append(kind));
            evidence.push(a);
        } else {
            assert_eq!(mem.append(write(i)), disk.append(write(i)));
        }
    }
    sigs
}

#[test]
fn disk_ledger_signs_the_same_roots_and_gives_the_same_proofs_as_the_memory_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = Ledger::from_seed(7);
    let disk = DiskLedger::open(&RealFs::new(), tmp.path(), Ledger::seed_key(7), 2048).unwrap();
    let pairs = drive(&mem, &disk, 3000);
    assert!(
        disk.sealed().len() > 5,
        "small chunks were sealed: {:?}",
        disk.sealed()
    );
    // Proofs for evidence anywhere in the ledger, including in sealed chunks read back.
    let (mp, dp) = (mem.proofs(), disk.proofs());
    let mut checked = 0;
    for (e, s) in pairs {
        if s > disk.last_idx() || mem.tx(e).is_none() {
            continue;
        }
        let a = mp.inclusion_proof(e, s).unwrap();
        let b = dp.inclusion_proof(e, s).unwrap();
        assert_eq!(a, b, "evidence {e} signature {s}");
        checked += 1;
    }
    assert!(checked > 10, "{checked} proofs compared");
    // Every sealed chunk verifies against the key and chains to the next.
    let dir = RealFs::new().open_dir(tmp.path(), false).unwrap();
    let mut prev = None;
    for (start, end) in disk.sealed() {
        let name = ChunkName::Committed { start, end }.file_name();
        let bytes = read_chunk_file(&*dir, &name).unwrap();
        let v = verify_chunk(&bytes, &[disk.verifying_key()], Some((start, end))).unwrap();
        if let Some(p) = prev.replace(v.end_frontier.clone()) {
            assert_eq!(
                p, v.start_frontier,
                "chunk {name} continues the previous one"
            );
        }
    }
}

#[test]
fn a_reopened_ledger_continues_with_the_same_frontier_and_txs() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = Ledger::from_seed(3);
    let disk = DiskLedger::open(&RealFs::new(), tmp.path(), Ledger::seed_key(3), 1024).unwrap();
    drive(&mem, &disk, 800);
    let commit = disk.commit_idx();
    drop(disk);
    let disk = DiskLedger::open(&RealFs::new(), tmp.path(), Ledger::seed_key(3), 1024).unwrap();
    assert_eq!(
        disk.last_idx(),
        commit,
        "the uncommitted tail is gone, the rest is there"
    );
    mem.truncate(commit);
    assert_eq!(disk.tx(5).unwrap(), mem.tx(5));
    assert_eq!(disk.tx(commit).unwrap(), mem.tx(commit));
    let a = mem.append_signature();
    let b = disk.append_signature();
    assert_eq!(a, b, "same root after reopening");
    verify_signed_root(&disk.verifying_key(), &b).unwrap();
    let mut count = 0;
    disk.for_each(1, disk.last_idx(), |i, tx| {
        assert_eq!(Some(tx.clone()), mem.tx(i));
        count += 1;
    })
    .unwrap();
    assert_eq!(count, disk.last_idx());
}

#[test]
fn rollback_below_the_commit_index_is_refused_and_above_it_truncates_the_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = DiskLedger::open(&RealFs::new(), tmp.path(), Ledger::seed_key(1), 1 << 20).unwrap();
    for k in 0..5 {
        disk.append(write(k));
    }
    let s = disk.append_signature();
    disk.commit(s.sig_idx).unwrap();
    disk.append(write(9));
    assert!(disk.truncate(3).is_err());
    disk.truncate(s.sig_idx).unwrap();
    assert_eq!(disk.last_idx(), s.sig_idx);
    let again = disk.append_signature();
    let e = disk.append(TxKind::Evidence {
        snapshot_idx: 1,
        digest: [1; 32],
    });
    let signed = disk.append_signature();
    let proof = disk.proofs().inclusion_proof(e, signed.sig_idx).unwrap();
    let leaf = leaf_hash(&proof.tx_digest, &[1; 32]);
    assert_eq!(
        root_from_proof(&leaf, e - 1, signed.sig_idx - 1, &proof.path),
        Some(signed.root)
    );
    assert_ne!(again.root, s.root);
}

#[test]
fn a_torn_open_chunk_is_sealed_at_its_last_signature_on_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = unsealed(tmp.path(), 2);
    let mut sigs = Vec::new();
    for round in 0..4 {
        for k in 0..9 {
            disk.append(write(round * 10 + k));
        }
        let s = disk.append_signature();
        disk.commit(s.sig_idx).unwrap();
        sigs.push(s.sig_idx);
    }
    drop(disk);
    let open = tmp.path().join("ledger_1");
    let len = std::fs::metadata(&open).unwrap().len();
    // Tear the last entry (the last signature) in half.
    let f = std::fs::OpenOptions::new().write(true).open(&open).unwrap();
    f.set_len(len - 50).unwrap();
    drop(f);
    let disk = unsealed(tmp.path(), 2);
    assert_eq!(
        disk.last_idx(),
        sigs[2],
        "continues after the last whole signature"
    );
    assert_eq!(disk.sealed(), vec![(1, sigs[2])]);
    assert!(!open.exists());
    let bytes = std::fs::read(tmp.path().join(format!("ledger_1-{}.committed", sigs[2]))).unwrap();
    verify_chunk(&bytes, &[disk.verifying_key()], Some((1, sigs[2]))).unwrap();
}

#[test]
fn verify_chunk_refuses_a_flipped_bit_a_wrong_key_and_a_wrong_name() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = DiskLedger::open(&RealFs::new(), tmp.path(), Ledger::seed_key(4), 1).unwrap();
    for k in 0..20 {
        disk.append(write(k));
    }
    let s = disk.append_signature();
    disk.commit(s.sig_idx).unwrap();
    let name = ChunkName::Committed {
        start: 1,
        end: s.sig_idx,
    };
    let bytes = std::fs::read(tmp.path().join(name.file_name())).unwrap();
    let key = disk.verifying_key();
    verify_chunk(&bytes, &[key], Some((1, s.sig_idx))).unwrap();
    assert!(verify_chunk(&bytes, &[key], Some((1, s.sig_idx + 1))).is_err());
    let other = Ledger::seed_key(5).verifying_key();
    assert!(verify_chunk(&bytes, &[other], None).is_err());
    for at in [3usize, 60, bytes.len() / 2, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 1;
        assert!(verify_chunk(&bad, &[key], None).is_err(), "flip at {at}");
    }
}

#[test]
fn a_read_of_the_open_chunk_during_an_append_ignores_the_half_written_entry_after_what_it_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = unsealed(tmp.path(), 5);
    for k in 0..9 {
        disk.append(write(k));
    }
    let s = disk.append_signature();
    disk.commit(s.sig_idx).unwrap();
    // What a reader sees while a commit is appending: the next entry's first bytes only.
    let open = tmp.path().join("ledger_1");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&open)
        .unwrap();
    std::io::Write::write_all(&mut f, &[40, 0, 0, 0, 1, 2]).unwrap();
    drop(f);
    assert_eq!(disk.tx(3).unwrap(), Some(write(2)));
    let mut seen = Vec::new();
    assert_eq!(
        disk.for_each(1, s.sig_idx, |i, _| seen.push(i)).unwrap(),
        s.sig_idx
    );
    assert_eq!(seen, (1..=s.sig_idx).collect::<Vec<_>>());
}
