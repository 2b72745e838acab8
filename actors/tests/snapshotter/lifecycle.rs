//! The node-facing contract of the Snapshotter: capture/release, baseline, close, events and
//! typed errors.

use std::collections::BTreeSet;
use std::io;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::common::{open_store, Drive};
use parking_lot::Mutex;
use snapseal_actors::{
    CaptureError, CloseMode, EvidenceError, GenerationError, SnapshotEvent, SnapshotterConfig,
    StateSource, StateView,
};
use snapseal_engine::TaskSystem;
use snapseal_sim::ledger::Ledger;
use snapseal_sim::node::{KvState, SimConfig, SimNode};

fn cfg(tx_interval: u64, max_pending: usize) -> SnapshotterConfig {
    SnapshotterConfig {
        tx_interval,
        max_pending,
        ..SnapshotterConfig::default()
    }
}

/// A node that keeps one version per snapshot point until `release`, as the docs ask.
struct Keeping {
    inner: KvState,
    kept: Mutex<BTreeSet<u64>>,
    captures: Mutex<Vec<u64>>,
    /// A capture for a version not kept (the bug a node removing on capture would hit).
    bad_captures: AtomicU64,
    /// A release for a version not kept (released twice, or never armed).
    bad_releases: AtomicU64,
}

impl Keeping {
    fn new(ledger: &Ledger) -> Arc<Self> {
        Arc::new(Keeping {
            inner: KvState::new(ledger.clone()),
            kept: Mutex::new(BTreeSet::new()),
            captures: Mutex::new(Vec::new()),
            bad_captures: AtomicU64::new(0),
            bad_releases: AtomicU64::new(0),
        })
    }
}

impl StateSource for Keeping {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        self.captures.lock().push(idx);
        if !self.kept.lock().contains(&idx) {
            self.bad_captures.fetch_add(1, Ordering::Relaxed);
            return Err(CaptureError::new(idx, "no version kept"));
        }
        self.inner.capture(idx)
    }
    fn release(&self, idx: u64) {
        if !self.kept.lock().remove(&idx) {
            self.bad_releases.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sign, and keep the version when the signature became a snapshot point.
fn sign_keeping(d: &mut Drive, state: &Keeping) -> bool {
    let point = d.sign();
    if point {
        state.kept.lock().insert(d.last_sig);
    }
    point
}

#[test]
fn kept_versions_are_released_after_rollbacks_and_skips_and_recaptures_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = Ledger::from_seed(1);
    let state = Keeping::new(&ledger);
    let mut d = Drive::new(tmp.path(), ledger, cfg(10, 1), state.clone(), false);

    // A point at 10, captured; its evidence lands at 11.
    d.writes_until(10);
    assert!(sign_keeping(&mut d, &state));
    d.commit(10);
    d.settle();
    assert_eq!(d.evidence(), vec![11]);
    // Roll back to 10: the evidence is gone, the generation dropped, the point re-armed.
    d.ledger.truncate(10);
    d.snap.rollback(10);
    assert!(state.kept.lock().contains(&10), "re-armed: still needed");
    d.commit(10);
    assert_eq!(*state.captures.lock(), vec![10, 10], "captured again");

    // max_pending = 1 and generation 10 pending: the point at 20 is skipped.
    d.writes_until(20);
    assert!(sign_keeping(&mut d, &state));
    d.commit(20);
    assert!(
        !state.kept.lock().contains(&20),
        "a skipped point is released"
    );

    // A point at 30 rolled back before it is committed.
    d.writes_until(30);
    assert!(sign_keeping(&mut d, &state));
    d.ledger.truncate(25);
    d.snap.rollback(25);
    assert!(
        !state.kept.lock().contains(&30),
        "a rolled-back point is released"
    );

    // That rollback also dropped generation 10 (no evidence yet) and re-armed 10 again.
    d.commit(20);
    assert_eq!(*state.captures.lock(), vec![10, 10, 10]);

    // Generation 10 goes through: serialised, evidence, signature, committed.
    d.settle();
    assert_eq!(d.evidence().len(), 1);
    sign_keeping(&mut d, &state);
    d.commit(d.last_sig);
    d.settle();
    d.commit(d.last_sig); // the Snapshotter notices the finished generation
    assert_eq!(d.snap.counters().persisted, 1);
    assert!(
        !state.kept.lock().contains(&10),
        "a persisted point is released"
    );

    // One more point, still pending at close: close releases it.
    d.writes_until(40);
    assert!(sign_keeping(&mut d, &state));
    d.snap.close(CloseMode::Cancel);

    assert!(
        state.kept.lock().is_empty(),
        "leaked: {:?}",
        state.kept.lock()
    );
    assert_eq!(state.bad_captures.load(Ordering::Relaxed), 0);
    assert_eq!(state.bad_releases.load(Ordering::Relaxed), 0);
}

#[test]
fn a_snapshotter_started_from_a_snapshot_counts_its_interval_from_there() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = Ledger::resumed(Ledger::seed_key(3), 2240);
    let state = Arc::new(KvState::new(ledger.clone()));
    // The state starts as the snapshot at 2240.
    let mut d = Drive::build(tmp.path(), ledger, cfg(100, 5), state, false, |s| {
        s.with_baseline(2240)
    });
    assert_eq!(d.snap.baseline(), 2240);
    let mut points = Vec::new();
    for sig in (2250..=2400).step_by(10) {
        d.writes_until(sig);
        if d.sign() {
            points.push(sig);
        }
        d.commit(sig);
    }
    assert_eq!(points, vec![2340], "first point at 2240 + tx_interval");
}

#[test]
fn a_restarted_snapshotter_resumes_from_the_newest_verified_snapshot_unless_told_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = Ledger::from_seed(9);
    let state = Arc::new(KvState::new(ledger.clone()));
    let mut d = Drive::new(tmp.path(), ledger.clone(), cfg(10, 5), state.clone(), false);
    d.snapshot_at(10);
    d.snapshot_at(20);
    d.commit(d.last_sig);
    assert_eq!(d.snap.counters().persisted, 2);
    d.snap.close(CloseMode::Drain);

    // A restart over the same store, nothing said: the schedule counts from 20.
    let restarted = Drive::new(tmp.path(), ledger.clone(), cfg(10, 5), state.clone(), false);
    assert_eq!(restarted.snap.baseline(), 20);
    drop(restarted);

    // The node says otherwise: a fresh schedule.
    let fresh = Drive::build(
        tmp.path(),
        ledger.clone(),
        cfg(10, 5),
        state.clone(),
        false,
        |s| s.with_baseline(0),
    );
    assert_eq!(fresh.snap.baseline(), 0);
    drop(fresh);

    // The newest file rots: the restart resumes from the newest that still verifies.
    let newest = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".committed"))
        .max_by_key(|p| {
            snapseal_persist::SnapshotName::parse(&p.file_name().unwrap().to_string_lossy())
                .map(|n| n.idx)
        })
        .unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&newest, bytes).unwrap();
    let after_rot = Drive::new(tmp.path(), ledger, cfg(10, 5), state, false);
    assert_eq!(after_rot.snap.baseline(), 10);
}

#[test]
fn a_simulated_node_over_a_resumed_ledger_waits_a_whole_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = Ledger::resumed(Ledger::seed_key(4), 2240);
    let store = Arc::new(open_store(tmp.path(), &ledger).unwrap());
    let sim = SimConfig {
        txs: 400,
        sig_every: 10,
        ..SimConfig::default()
    };
    let mut node =
        SimNode::with_ledger(sim, ledger, cfg(100, 5), TaskSystem::manual_fifo(), store).unwrap();
    while node.step() {}
    assert!(node.finish(50));
    let committed: Vec<u64> = node.committed().iter().map(|c| c.idx).collect();
    assert!(!committed.is_empty());
    assert!(
        committed.iter().all(|&idx| idx >= 2340),
        "a snapshot before 2240 + 100: {committed:?}"
    );
}

/// A huge state, streamed in small writes; says when streaming started.
struct Huge {
    started: Arc<AtomicBool>,
}
struct HugeView {
    started: Arc<AtomicBool>,
}
impl StateSource for Huge {
    fn capture(&self, _idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        Ok(Box::new(HugeView {
            started: Arc::clone(&self.started),
        }))
    }
}
impl StateView for HugeView {
    fn write_to(&mut self, out: &mut dyn io::Write) -> io::Result<()> {
        let chunk = vec![7u8; 64 << 10];
        // 64 GiB: never finishes within a test unless cancelled.
        for _ in 0..(1u64 << 20) {
            out.write_all(&chunk)?;
            self.started.store(true, Ordering::Release);
        }
        Ok(())
    }
}

fn close_during_serialisation(close: impl FnOnce(snapseal_actors::Snapshotter)) {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = Ledger::from_seed(9);
    let started = Arc::new(AtomicBool::new(false));
    let state = Arc::new(Huge {
        started: Arc::clone(&started),
    });
    let config = SnapshotterConfig {
        spill_threshold: Some(0), // the serialisation holds the store: it spills into it
        ..cfg(10, 5)
    };
    let mut d = Drive::new(tmp.path(), ledger.clone(), config, state, true);
    d.writes_until(10);
    assert!(d.sign());
    d.commit(10);
    let events = d.snap.events();
    while !started.load(Ordering::Acquire) {
        if let Some(e) = events.try_recv() {
            panic!("the serialisation ended: {e:?}");
        }
        std::thread::yield_now();
    }
    let Drive { snap, tasks, .. } = d;
    close(snap);
    // The directory lock is free again, in this very process.
    let reopened = open_store(tmp.path(), &ledger);
    assert!(reopened.is_ok(), "{:?}", reopened.err());
    assert!(tasks.wait_idle(std::time::Duration::from_secs(60)));
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".committed") || n.ends_with(".pending"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn close_cancels_a_running_serialisation_and_frees_the_store() {
    close_during_serialisation(|snap| snap.close(CloseMode::Cancel));
}

#[test]
fn dropping_the_snapshotter_cancels_a_running_serialisation_and_frees_the_store() {
    close_during_serialisation(drop);
}

#[test]
fn close_drain_finishes_a_generation_whose_gate_held_and_ends_the_events() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = Ledger::from_seed(2);
    let state = Arc::new(KvState::new(ledger.clone()));
    let mut d = Drive::new(tmp.path(), ledger, cfg(10, 5), state, false);
    let events = d.snap.events();
    d.writes_until(10);
    assert!(d.sign());
    d.commit(10);
    d.settle();
    assert_eq!(d.evidence(), vec![11]);
    d.sign();
    d.commit(12); // the gate holds: persist queued, not run (manual engine)
                  // A second generation, not through its gate: cancelled.
    d.writes_until(30);
    assert!(d.sign());
    d.commit(30);
    assert_eq!(d.snap.pending().len(), 2);
    d.snap.close(CloseMode::Drain);
    let got: Vec<SnapshotEvent> = events.iter().collect();
    assert!(
        matches!(&got[..], [SnapshotEvent::Dropped { idx: 30, .. }, SnapshotEvent::Committed(c)] if c.idx == 10),
        "{got:?}"
    );
    assert!(events.is_closed());
    assert!(tmp.path().join("snapshot_10_11.committed").exists());
}

#[test]
fn an_undrained_queue_stays_bounded_and_reports_every_lost_commit_while_hooks_see_all() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = Ledger::from_seed(5);
    let state = Arc::new(KvState::new(ledger.clone()));
    let mut d = Drive::build(tmp.path(), ledger, cfg(10, 5), state, false, |s| {
        s.with_event_capacity(NonZeroUsize::new(2).unwrap())
    });
    let hooked = Arc::new(Mutex::new(Vec::new()));
    let hooked2 = Arc::clone(&hooked);
    d.snap.on_event(move |e| {
        if let SnapshotEvent::Committed(c) = e {
            hooked2.lock().push(c.idx);
        }
    });
    let events = d.snap.events();
    for k in 1..=5u64 {
        d.snapshot_at(10 * k);
    }
    d.commit(d.last_sig);
    assert_eq!(d.snap.counters().persisted, 5);
    assert_eq!(hooked.lock().len(), 5, "hooks see every event");
    assert_eq!(events.len(), 2, "bounded");
    let got: Vec<SnapshotEvent> = events.try_iter().collect();
    assert!(
        matches!(
            &got[..],
            [
                SnapshotEvent::Overflowed {
                    lost: 3,
                    committed: 3,
                    failed: 0
                },
                SnapshotEvent::Committed(_),
                SnapshotEvent::Committed(_),
            ]
        ),
        "{got:?}"
    );
}

/// A state whose serialisation fails.
struct Broken;
struct BrokenView;
impl StateSource for Broken {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        if idx == 20 {
            return Err(CaptureError::new(idx, "not kept"));
        }
        Ok(Box::new(BrokenView))
    }
}
impl StateView for BrokenView {
    fn write_to(&mut self, _out: &mut dyn io::Write) -> io::Result<()> {
        Err(io::Error::other("disk of the state machine on fire"))
    }
}

#[test]
fn failures_carry_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = Ledger::from_seed(6);
    let mut d = Drive::new(tmp.path(), ledger, cfg(10, 5), Arc::new(Broken), false);
    let events = d.snap.events();
    d.writes_until(10);
    assert!(d.sign());
    d.commit(10);
    d.settle();
    d.writes_until(20);
    assert!(d.sign());
    d.commit(20);
    let got: Vec<SnapshotEvent> = events.try_iter().collect();
    assert!(
        matches!(&got[..], [
            SnapshotEvent::Failed { idx: 10, error: a, .. },
            SnapshotEvent::Failed { idx: 20, error: b, .. },
        ] if matches!(**a, GenerationError::Serialise { idx: 10, .. })
            && matches!(&**b, GenerationError::Capture { source, .. } if source.idx == 20)),
        "{got:?}"
    );
    // The umbrella error takes each of them.
    if let SnapshotEvent::Failed { error, .. } = &got[0] {
        let e: snapseal_actors::Error = Arc::clone(error).into();
        assert!(e.to_string().contains("serialising the state"), "{e}");
    }
}

#[test]
fn wrong_evidence_is_refused_with_a_reason_and_the_generation_keeps_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = Ledger::from_seed(8);
    let state = Arc::new(KvState::new(ledger.clone()));
    let mut d = Drive::new(tmp.path(), ledger, cfg(10, 5), state, false);
    d.writes_until(10);
    assert!(d.sign());
    d.commit(10);
    d.settle();
    let (snapshot_idx, digest) = d.evidence.try_recv().unwrap();
    let mut wrong = digest;
    wrong[0] ^= 1;
    assert_eq!(
        d.snap.record_evidence(11, snapshot_idx, wrong),
        Err(EvidenceError::DigestMismatch {
            evidence_idx: 11,
            snapshot_idx: 10,
            expected: digest,
            got: wrong
        })
    );
    assert!(matches!(
        d.snap.record_evidence(10, snapshot_idx, digest),
        Err(EvidenceError::NotAfterSnapshot { .. })
    ));
    assert!(matches!(
        d.snap.record_evidence(11, 7, digest),
        Err(EvidenceError::UnknownSnapshot {
            snapshot_idx: 7,
            ..
        })
    ));
    assert_eq!(d.snap.pending()[0].evidence_idx, None, "nothing recorded");
    assert_eq!(d.snap.record_evidence(11, snapshot_idx, digest), Ok(()));
    assert_eq!(d.snap.pending()[0].evidence_idx, Some(11));
}
