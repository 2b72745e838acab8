//! The CPU grant sizes the pools snapseal starts: on a process limited to two CPUs, the
//! default grant is one CPU (one left to the consensus thread), and no pool has more threads
//! doing work than that.
//!
//! Alone in its test binary: the hashing pool is process-wide, and the affinity must be set
//! before any pool starts (threads inherit it from the thread that creates them).

use std::io::Write;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use snapseal_engine::{granted_cpus, EngineConfig, TaskSystem};
use std::sync::Arc;

use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::{statement_receipt, Ed25519Verifier};
use snapseal_persist::{BodyBuilder, SigningKey, SnapshotStore, StoreOptions};

/// The names of this process's threads (`/proc/self/task/*/comm`).
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .map(|task| {
            let comm = std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap();
            comm.trim_end().to_string()
        })
        .collect()
}

fn count(names: &[String], prefix: &str) -> usize {
    names.iter().filter(|n| n.starts_with(prefix)).count()
}

#[test]
fn on_two_cpus_each_pool_snapseal_starts_stays_within_the_default_grant_of_one() {
    // Two of the CPUs this process may run on (one, on a one-CPU machine).
    let mine = sched_getaffinity(Pid::from_raw(0)).unwrap();
    let mut two = CpuSet::new();
    let mut allowed = 0;
    for cpu in 0..CpuSet::count() {
        if allowed < 2 && mine.is_set(cpu).unwrap() {
            two.set(cpu).unwrap();
            allowed += 1;
        }
    }
    sched_setaffinity(Pid::from_raw(0), &two).unwrap();
    let grant = granted_cpus().get();
    assert_eq!(
        grant,
        (allowed - 1).max(1),
        "every CPU but one, at least one"
    );

    // The engine's workers, and the hashing pool (a body large enough to hash on it).
    let tasks = TaskSystem::threaded(EngineConfig::default()).unwrap();
    let mut body = BodyBuilder::new(None).unwrap();
    body.write_all(&vec![7u8; 4 << 20]).unwrap();
    body.finish().unwrap();

    let names = thread_names();
    let (workers, hashers) = (count(&names, "snapseal-w"), count(&names, "snapseal-hash"));
    assert_eq!(workers, (grant / 2).max(1), "{names:?}");
    assert_eq!(
        hashers, grant,
        "the hashing pool started, at the grant: {names:?}"
    );
    assert!(workers <= grant && hashers <= grant);
    // The only other thread of snapseal's: the engine's timer, asleep unless a timer is due.
    let others: Vec<_> = names
        .iter()
        .filter(|n| n.starts_with("snapseal") && !n.starts_with("snapseal-w"))
        .filter(|n| !n.starts_with("snapseal-hash"))
        .collect();
    assert_eq!(others, ["snapseal-timer"], "{names:?}");

    // Verifying a large snapshot (a restart's `latest()`, pread in parallel subtrees) hashes
    // on the same pool: no other pool (rayon's global one) starts a thread.
    let before = names.len();
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[7; 32]);
    let trusted = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
    let store = SnapshotStore::open(
        Arc::new(RealFs),
        dir.path(),
        StoreOptions::new(Arc::new(trusted)),
    )
    .unwrap();
    let mut body = BodyBuilder::new(None).unwrap();
    body.write_all(&vec![9u8; 16 << 20]).unwrap();
    let body = body.finish().unwrap();
    let receipt = statement_receipt(&key, &body.claims(10), 11, None).unwrap();
    body.commit(&store, 10, 11, &receipt).unwrap();
    drop(store);
    let store = SnapshotStore::open(
        Arc::new(RealFs),
        dir.path(),
        StoreOptions::new(Arc::new(
            Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]),
        )),
    )
    .unwrap();
    assert_eq!(store.latest().unwrap().map(|f| f.name().idx), Some(10));
    let after = thread_names();
    assert_eq!(
        after.len(),
        before,
        "no thread beyond the grant's pools: {after:?}"
    );
    drop(tasks);
}
