//! The node on the disk ledger (`DiskKv`): every committed snapshot holds the state the
//! ledger on disk implies at its index, rollbacks included, and a reopened ledger rebuilds the
//! same state from the newest snapshot plus the replayed chunks.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use snapseal_actors::SnapshotterConfig;
use snapseal_engine::TaskSystem;
use snapseal_ledger::disk_ledger::{state_hash, DiskLedger};
use snapseal_ledger::disk_node::{DiskKv, StartPoint};
use snapseal_ledger::ledger::{Ledger, TxKind};
use snapseal_ledger::node::{decode_kv, SimConfig, SimNode};
use snapseal_persist::fs::RealFs;
use snapseal_persist::internals::receipt::Receipt;
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::{SnapshotStore, StoreOptions};

const SEED: u64 = 5;

fn open_store(dir: &std::path::Path) -> SnapshotStore {
    let key = Ledger::seed_key(SEED).verifying_key();
    let mut o = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![key])));
    o.keep_last = 100;
    SnapshotStore::open(Arc::new(RealFs::new()), dir, o).unwrap()
}

/// The KV map the ledger's writes `1 ..= idx` imply, read back from disk.
fn replayed(ledger: &DiskLedger, idx: u64) -> BTreeMap<u64, Vec<u8>> {
    let mut map = BTreeMap::new();
    let seen = ledger
        .for_each(1, idx, |_, tx| {
            if let TxKind::Write { key, value } = tx {
                map.insert(*key, value.to_vec());
            }
        })
        .unwrap();
    assert_eq!(seen, idx);
    map
}

#[test]
fn snapshots_of_a_node_on_the_disk_ledger_hold_the_ledgers_state_and_a_reopen_rebuilds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ledger_path = dir.join("ledger");
    let disk =
        DiskLedger::open(&RealFs::new(), &ledger_path, Ledger::seed_key(SEED), 3000).unwrap();
    let kv = DiskKv::open(disk, None).unwrap();
    let tasks = TaskSystem::manual(SEED);
    let sim = SimConfig {
        txs: 4000,
        sig_every: 20,
        value_size: 16,
        keys: 64,
        rollback_every: Some(333),
        seed: SEED,
    };
    let snap = SnapshotterConfig {
        tx_interval: 300,
        ..SnapshotterConfig::default()
    };
    let store = Arc::new(open_store(dir));
    let mut node = SimNode::with_ledger(sim, kv.clone(), snap, tasks.clone(), store).unwrap();
    while node.step() {
        tasks.run_until_idle();
    }
    assert!(node.finish(1000));
    assert_eq!(node.ledger_error(), None);
    assert!(node.committed().len() >= 5, "{}", node.committed().len());
    kv.ledger().seal().unwrap();
    let commit = kv.applied_idx();
    assert_eq!(commit, kv.ledger().commit_idx());
    assert!(kv.ledger().sealed().len() > 3, "several chunks");
    assert_eq!(
        kv.state_hash(),
        state_hash(&replayed(kv.ledger(), commit)),
        "the live state is the ledger's"
    );
    let committed = node.committed().to_vec();
    drop(node);
    let store = open_store(dir);
    for c in &committed {
        let Ok(file) = snapseal_persist::internals::open_snapshot(
            &*snapseal_persist::fs::FileSystem::open_dir(&RealFs::new(), dir, false).unwrap(),
            &snapseal_persist::SnapshotName::parse_os(c.path.file_name().unwrap()).unwrap(),
            &Ed25519Verifier::new(vec![Ledger::seed_key(SEED).verifying_key()]),
        ) else {
            continue;
        };
        let mut body = Vec::new();
        file.body_reader().unwrap().read_to_end(&mut body).unwrap();
        let (idx, map) = decode_kv(&body).unwrap();
        assert_eq!(idx, c.idx);
        assert_eq!(map, replayed(kv.ledger(), idx), "snapshot at {idx}");
    }
    let (hash, last) = (kv.state_hash(), kv.ledger().last_idx());
    drop(kv);

    // Reopen: the newest snapshot plus the chunks after it.
    let latest = store.latest().unwrap().unwrap();
    let mut body = Vec::new();
    latest
        .body_reader()
        .unwrap()
        .read_to_end(&mut body)
        .unwrap();
    let (idx, map) = decode_kv(&body).unwrap();
    assert!(idx < commit, "something to replay");
    let disk =
        DiskLedger::open(&RealFs::new(), &ledger_path, Ledger::seed_key(SEED), 3000).unwrap();
    assert!(disk.commit_idx() == commit && last >= commit);
    let signed = Receipt::decode(latest.receipt_bytes()).unwrap().signed;
    let reopened = DiskKv::open(disk, Some(StartPoint { idx, map, signed })).unwrap();
    assert_eq!(reopened.applied_idx(), commit);
    assert_eq!(
        reopened.state_hash(),
        hash,
        "the same state after reopening"
    );
}
