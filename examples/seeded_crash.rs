//! A seeded crash test of a node's own state: a ledger of account balances, snapshotted by
//! snapseal, crashed (power losses, mid-write too, with filesystem faults) and recovered, all
//! from a seed — first with `snapseal_sim::crash::CrashTest`, then by hand with only the facade
//! (`TaskSystem::manual`, and `SimFs` from the `testing` feature).
//!
//! `cargo run --example seeded_crash [first-seed [seeds]]` sweeps seeds and prints what each
//! run did; `cargo test --example seeded_crash` runs the seed list below (CI does).
//!
//! What the node has to get right, and the driver checks: the state captured at a snapshot
//! point is the state at that point, even when snapseal captures the point again after the
//! live state moved on (a rollback re-arms it); the body it writes restores; and the restored
//! node plus the committed log after it is the node it was before the crash.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use snapseal::{CaptureError, StateSource, StateView};
use snapseal_sim::crash::{CrashNode, CrashReport, CrashTest};

/// The balances: account number to balance. Transfers only, so they always sum to zero.
type Balances = BTreeMap<u8, i64>;

/// The node's state, shared with the source snapseal captures from.
#[derive(Default)]
struct Accounts {
    live: Arc<Mutex<Balances>>,
}

impl Accounts {
    fn balances(&self) -> Balances {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl CrashNode for Accounts {
    /// A write is a transfer between two of eight accounts.
    fn apply(&mut self, _idx: u64, write: u64) {
        let from = (write % 8) as u8;
        let to = ((write >> 8) % 8) as u8;
        let amount = ((write >> 16) % 100) as i64;
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        *live.entry(from).or_default() -= amount;
        *live.entry(to).or_default() += amount;
    }

    fn state_source(&self) -> Arc<dyn StateSource> {
        Arc::new(Versions {
            live: Arc::clone(&self.live),
            kept: Mutex::default(),
        })
    }

    fn restore(body: &mut dyn Read) -> Result<Self, Box<dyn Error + Send + Sync>> {
        let balances = decode(body)?;
        Ok(Accounts {
            live: Arc::new(Mutex::new(balances)),
        })
    }
}

impl PartialEq for Accounts {
    fn eq(&self, other: &Self) -> bool {
        self.balances() == other.balances()
    }
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.balances()).finish()
    }
}

/// The node's `StateSource`: the node applies committed writes, so at the first capture of a
/// point the live state is the state there; that version is kept until snapseal releases the
/// point, because a rollback can make it capture the point again later.
struct Versions {
    live: Arc<Mutex<Balances>>,
    kept: Mutex<BTreeMap<u64, Arc<Balances>>>,
}

impl StateSource for Versions {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let version = kept.entry(idx).or_insert_with(|| {
            // A copy is fine for a test's eight accounts; a large state would hand out a
            // reference-counted version instead.
            Arc::new(
                self.live
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            )
        });
        Ok(Box::new(Frozen(Arc::clone(version))))
    }

    fn release(&self, idx: u64) {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&idx);
    }
}

/// A frozen version, written as (account, balance little-endian) pairs in account order.
struct Frozen(Arc<Balances>);

impl StateView for Frozen {
    fn write_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        for (account, balance) in self.0.iter() {
            out.write_all(&[*account])?;
            out.write_all(&balance.to_le_bytes())?;
        }
        Ok(())
    }
}

/// Reads what [`Frozen`] wrote, refusing anything else: a length that is not whole pairs,
/// accounts out of order, balances that do not sum to zero.
fn decode(body: &mut dyn Read) -> Result<Balances, Box<dyn Error + Send + Sync>> {
    let mut bytes = Vec::new();
    body.read_to_end(&mut bytes)?;
    if bytes.len() % 9 != 0 {
        return Err(format!("{} bytes is not a whole number of balances", bytes.len()).into());
    }
    let mut balances = Balances::new();
    for pair in bytes.chunks_exact(9) {
        let (account, balance) = pair.split_at(1);
        let balance = i64::from_le_bytes(balance.try_into()?);
        if balances
            .last_key_value()
            .is_some_and(|(a, _)| *a >= account[0])
        {
            return Err(format!("account {} out of order", account[0]).into());
        }
        balances.insert(account[0], balance);
    }
    let total: i64 = balances.values().sum();
    if total != 0 {
        return Err(format!("balances sum to {total}, not 0").into());
    }
    Ok(balances)
}

/// Runs `seeds` seeds from `first`, 200 steps each; the first failure, or every report.
fn sweep(first: u64, seeds: u64) -> Result<Vec<CrashReport>, Box<dyn Error>> {
    let mut reports = Vec::new();
    for seed in first..first + seeds {
        reports.push(CrashTest::<Accounts>::new(seed).run(200)?);
    }
    Ok(reports)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let first = args.next().transpose()?.unwrap_or(1);
    let seeds = args.next().transpose()?.unwrap_or(20);
    for report in sweep(first, seeds)? {
        println!("{report}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    use snapseal::persist::receipt::Ed25519Verifier;
    use snapseal::persist::SigningKey;
    use snapseal::{
        CommittedSnapshot, EvidenceSink, Fault, FaultKind, Hash, SimFs, SnapshotEvent,
        SnapshotStore, Snapshotter, SnapshotterConfig, StoreOptions, TaskSystem,
    };

    /// The seeds CI runs: each a different configuration, operation mix and crash pattern.
    const SEEDS: std::ops::RangeInclusive<u64> = 1..=24;

    #[test]
    fn every_seed_in_the_list_recovers_the_accounts_after_every_power_loss() {
        let reports = sweep(*SEEDS.start(), SEEDS.end() - SEEDS.start() + 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let sum = |f: fn(&CrashReport) -> u64| reports.iter().map(f).sum::<u64>();
        // The run is only a test if the things it checks happened.
        assert!(sum(|r| r.acked) > 0, "no snapshot was ever committed");
        assert!(
            sum(|r| r.restored_from_snapshot) > 0,
            "no recovery used a snapshot"
        );
        assert!(
            sum(|r| r.crashes_mid_job) > 0,
            "no power loss cut a write short"
        );
        assert!(sum(|r| r.dropped) > 0, "no rollback dropped a generation");
        assert!(
            sum(|r| r.failed) > 0,
            "no injected fault failed a generation"
        );
    }

    /// A source that hands out the live state whatever index it is asked for: wrong when a
    /// point is captured again after a rollback.
    #[derive(Default)]
    struct Careless(Accounts);

    impl CrashNode for Careless {
        fn apply(&mut self, idx: u64, write: u64) {
            self.0.apply(idx, write);
        }
        fn state_source(&self) -> Arc<dyn StateSource> {
            struct Live(Arc<Mutex<Balances>>);
            impl StateSource for Live {
                fn capture(&self, _idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
                    let now = self
                        .0
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    Ok(Box::new(Frozen(Arc::new(now))))
                }
            }
            Arc::new(Live(Arc::clone(&self.0.live)))
        }
        fn restore(body: &mut dyn Read) -> Result<Self, Box<dyn Error + Send + Sync>> {
            Accounts::restore(body).map(Careless)
        }
    }

    impl PartialEq for Careless {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }

    impl fmt::Debug for Careless {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt(f)
        }
    }

    #[test]
    fn a_source_that_captures_the_live_state_for_an_older_point_is_caught() {
        let caught = (1..=200).find_map(|seed| CrashTest::<Careless>::new(seed).run(200).err());
        let failure = caught.expect("some seed recaptures a point after the state moved on");
        assert!(
            failure.detail.contains("but the node's state at"),
            "{failure}"
        );
    }

    /// The same node under a test written by hand with the facade alone: the manual executor,
    /// `SimFs` (feature `testing`) and a fault, in statement mode.
    #[test]
    fn a_snapshot_committed_before_a_power_loss_restores_the_accounts_after_it() {
        struct Requests(Mutex<Vec<(u64, Hash)>>);
        impl EvidenceSink for Requests {
            fn append_evidence(&self, snapshot_idx: u64, claims_digest: Hash) {
                let mut requests = self.0.lock().unwrap_or_else(PoisonError::into_inner);
                requests.push((snapshot_idx, claims_digest));
            }
        }
        let sim = SimFs::new(7);
        let dir = Path::new("/node/snapshots");
        let key = SigningKey::from_bytes(&[9; 32]);
        let trusted = || {
            let verifier =
                Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
            StoreOptions::new(Arc::new(verifier))
        };
        let store = Arc::new(SnapshotStore::open(Arc::new(sim.clone()), dir, trusted()).unwrap());
        let tasks = TaskSystem::manual(7);
        let mut node = Accounts::default();
        let sink = Arc::new(Requests(Mutex::new(Vec::new())));
        let config = SnapshotterConfig {
            tx_interval: 3,
            ..SnapshotterConfig::default()
        };
        let mut snap = Snapshotter::new(
            config,
            tasks.clone(),
            Arc::clone(&store),
            node.state_source(),
            Arc::clone(&sink) as Arc<dyn EvidenceSink>,
        )
        .unwrap()
        .with_statement_key(key.clone());
        let events = snap.events();

        // Three transfers committed; 3 is a snapshot point.
        for (idx, write) in [(1, 0x0500_0102), (2, 0x0700_0203), (3, 0x0900_0301)] {
            node.apply(idx, write);
        }
        assert!(snap.record_committable(3));
        snap.commit(3);
        tasks.run_until_idle();
        let (snapshot_idx, digest) = sink.0.lock().unwrap().pop().unwrap();
        snap.record_evidence_in_term(4, snapshot_idx, digest, 1)
            .unwrap();
        // The disk is full for the first attempt's write: that generation fails, nothing is
        // committed, and the node snapshots again at its next point.
        sim.inject(Fault::nth(
            snapseal::persist::fs::Op::Write,
            1,
            FaultKind::Enospc,
        ));
        snap.commit(4);
        tasks.run_until_idle();
        assert!(matches!(
            events.try_recv(),
            Some(SnapshotEvent::Failed { idx: 3, .. })
        ));
        sim.clear_faults();
        assert!(snap.record_committable(6));
        for (idx, write) in [(5, 0x0100_0405), (6, 0x0200_0506)] {
            node.apply(idx, write);
        }
        snap.commit(6);
        tasks.run_until_idle();
        let (snapshot_idx, digest) = sink.0.lock().unwrap().pop().unwrap();
        snap.record_evidence_in_term(7, snapshot_idx, digest, 1)
            .unwrap();
        snap.commit(7);
        tasks.run_until_idle();
        let committed: Option<CommittedSnapshot> = events.try_iter().find_map(|e| match e {
            SnapshotEvent::Committed(c) => Some(c),
            _ => None,
        });
        assert_eq!(committed.map(|c| c.idx), Some(6));
        let before = node.balances();

        // Power loss: what was synced survives, the process is gone.
        sim.crash();
        drop((snap, store));
        let store = SnapshotStore::open(Arc::new(sim.clone()), dir, trusted()).unwrap();
        let latest = store.latest().unwrap().expect("the snapshot at 6 survived");
        assert_eq!(latest.name().idx, 6);
        let restored = Accounts::restore(&mut latest.body_reader().unwrap()).unwrap();
        assert_eq!(restored.balances(), before);
    }
}
