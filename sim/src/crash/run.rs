//! One crash run: the log, the node, the live process, and the steps over them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::Receiver;
use snapseal_actors::{Events, SnapshotEvent, Snapshotter, SnapshotterConfig};
use snapseal_engine::{ShutdownMode, TaskSystem};
use snapseal_ledger::node::ChannelSink;
use snapseal_persist::fs::{Fault, FileSystem, SimFs};
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::{ErrorChain, Hash, SigningKey, SnapshotStore, StoreOptions};

use super::{chunks, CrashFailure, CrashNode, CrashReport};
use crate::harness::{SplitMix64, FAULT_CALLS, FAULT_ERRORS};

/// Most jobs one "run every ready job" step runs: a guard against a job that re-queues itself.
const MAX_JOBS_PER_RUN: usize = 10_000;

/// Rounds (run, evidence, commit) the final settle allows before it calls the pending
/// generations stuck; each round takes a statement-mode generation at least one stage on.
const SETTLE_ROUNDS: usize = 64;

/// One entry of the simulated log.
#[derive(Clone, Copy, Debug)]
enum Entry {
    /// A write the node applies once committed.
    Write(u64),
    /// The evidence entry snapseal asked for: the snapshot it is for, and the term it was
    /// appended in.
    Evidence { snapshot_idx: u64, term: u64 },
}

/// One incarnation of the node's process: executor, Snapshotter (and the store it holds) and
/// their channels.
/// A power loss drops it whole.
struct Incarnation {
    tasks: TaskSystem,
    store: Arc<SnapshotStore>,
    snap: Snapshotter,
    evidence: Receiver<(u64, Hash)>,
    events: Events,
}

impl Incarnation {
    /// A new Snapshotter over `store` and `node`'s state source, on a new executor.
    fn start<N: CrashNode>(
        config: &SnapshotterConfig,
        key: &SigningKey,
        store: Arc<SnapshotStore>,
        node: &N,
        exec_seed: u64,
    ) -> Result<Incarnation, String> {
        let tasks = TaskSystem::manual(exec_seed);
        let (sink, evidence) = ChannelSink::new();
        let snap = Snapshotter::new(
            config.clone(),
            tasks.clone(),
            Arc::clone(&store),
            node.state_source(),
            Arc::new(sink),
        )
        .map_err(|e| format!("starting the Snapshotter: {e}"))?
        .with_statement_key(key.clone());
        let events = snap.events();
        Ok(Incarnation {
            tasks,
            store,
            snap,
            evidence,
            events,
        })
    }

    /// The process dies: nothing queued runs any more, every handle goes (the handles on the
    /// crashed disk are dead already, so nothing of this reaches it).
    fn kill(self) {
        self.tasks.shutdown(ShutdownMode::Cancel);
        drop(self);
    }
}

/// The state of one run.
pub(super) struct Run<N: CrashNode> {
    seed: u64,
    rng: SplitMix64,
    faults: bool,
    config: SnapshotterConfig,
    /// Store settings: what [`open_store`] opens with at every recovery.
    keep_last: usize,
    chunked: bool,
    sim: SimFs,
    dir: PathBuf,
    key: SigningKey,
    /// The log; the entry at index `i` is `log[i - 1]`.
    log: Vec<Entry>,
    commit_idx: u64,
    term: u64,
    /// Snapshot points the Snapshotter accepted and the node has not committed yet.
    points: BTreeSet<u64>,
    /// Newest index offered as a snapshot point.
    offered: u64,
    /// The node: it has applied every committed write, nothing else.
    node: N,
    live: Incarnation,
    newest_acked: u64,
    /// A fault is or was armed (or a halt cut calls short) in this incarnation.
    dirty: bool,
    report: CrashReport,
    step: usize,
    steps: usize,
    op: String,
}

impl<N: CrashNode> Run<N> {
    /// The run's settings and its first incarnation, all drawn from `seed`.
    pub(super) fn start(
        seed: u64,
        faults: bool,
        chunked: bool,
        steps: usize,
    ) -> Result<Self, CrashFailure> {
        let mut rng = SplitMix64::new(seed);
        let config = SnapshotterConfig {
            tx_interval: 2 + rng.below(7),
            max_pending: 1 + rng.below(3) as usize,
            // Drawn either way so a seed makes the same other choices chunked or not; a chunked
            // body is never compressed (FORMAT.md §2.2).
            compression: (rng.below(4) == 0 && !chunked).then_some(1),
            // A third of the seeds stream every body into a pending file.
            spill_threshold: (rng.below(3) == 0).then_some(0),
            ..SnapshotterConfig::default()
        };
        let keep_last = 1 + rng.below(3) as usize;
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let key = SigningKey::from_bytes(&key);
        let sim = SimFs::new(seed);
        let dir = PathBuf::from("/node/snapshots");
        let node = N::default();
        let fail = |detail: String| CrashFailure {
            seed,
            step: 0,
            steps,
            op: "start".into(),
            detail,
        };
        let store = open_store(&sim, &dir, &key, keep_last, chunked).map_err(fail)?;
        let live = Incarnation::start(&config, &key, store, &node, seed).map_err(fail)?;
        Ok(Run {
            seed,
            rng,
            faults,
            config,
            keep_last,
            chunked,
            sim,
            dir,
            key,
            log: Vec::new(),
            commit_idx: 0,
            term: 1,
            points: BTreeSet::new(),
            offered: 0,
            node,
            live,
            newest_acked: 0,
            dirty: false,
            report: CrashReport {
                seed,
                ..CrashReport::default()
            },
            step: 0,
            steps,
            op: "start".into(),
        })
    }

    /// Runs the steps, then settles.
    pub(super) fn run(mut self) -> Result<CrashReport, CrashFailure> {
        for _ in 0..self.steps {
            self.step += 1;
            self.report.steps += 1;
            self.one_step()?;
            self.observe()?;
        }
        self.step += 1;
        self.settle()?;
        Ok(self.report)
    }

    // ---- the steps ------------------------------------------------------------------------

    fn one_step(&mut self) -> Result<(), CrashFailure> {
        match self.rng.below(100) {
            0..=23 => {
                let n = 1 + self.rng.below(4);
                self.op = format!("append {n} writes");
                for _ in 0..n {
                    let write = self.rng.next_u64();
                    self.log.push(Entry::Write(write));
                }
            }
            24..=35 => self.offer(),
            36..=51 => self.commit(),
            52..=63 => self.evidence()?,
            64..=73 => {
                self.op = "run one job".into();
                if self.live.tasks.run_one() {
                    self.report.jobs += 1;
                }
            }
            74..=85 => {
                self.op = "run every ready job".into();
                self.run_all()?;
            }
            86..=89 => self.rollback(),
            90..=94 if self.faults => self.inject_fault(),
            90..=94 => {
                self.op = "run every ready job".into();
                self.run_all()?;
            }
            95..=96 => {
                self.op = "power loss".into();
                self.crash_and_recover()?;
            }
            _ => {
                // The evidence asked for goes in and everything is committed, so persists are
                // ready; a persist is a dozen or so calls, so most of these land inside one.
                let n = self.rng.below(16);
                self.evidence()?;
                let last = self.last_idx();
                self.commit_to(last);
                self.op = format!("commit to {last}, power loss {n} calls into the ready jobs");
                self.crash_during(n)?;
            }
        }
        Ok(())
    }

    /// Offers the newest index as a snapshot point (a signature tx, or any index a Raft node
    /// chooses).
    fn offer(&mut self) {
        let last = self.last_idx();
        self.op = format!("offer {last} as a snapshot point");
        if last <= self.commit_idx.max(self.offered) {
            return;
        }
        self.offered = last;
        if self.live.snap.record_committable(last) {
            self.points.insert(last);
        }
    }

    /// Commits up to a seeded index of the uncommitted tail, stopping at each snapshot point on
    /// the way so the node's state is the state at that point when snapseal captures it.
    fn commit(&mut self) {
        let last = self.last_idx();
        let target = if last > self.commit_idx {
            self.commit_idx + 1 + self.rng.below(last - self.commit_idx)
        } else {
            // Nothing new: the node repeats its commit index (deferred points are retried).
            self.commit_idx
        };
        self.op = format!("commit to {target}");
        self.commit_to(target);
    }

    fn commit_to(&mut self, target: u64) {
        let due: Vec<u64> = self.points.range(..=target).copied().collect();
        for point in due {
            self.apply_to(point);
            self.live.snap.commit(point);
        }
        self.points.retain(|&p| p > target);
        self.apply_to(target);
        self.live.snap.commit(target);
    }

    /// The node applies the committed writes up to `idx`.
    fn apply_to(&mut self, idx: u64) {
        while self.commit_idx < idx {
            self.commit_idx += 1;
            if let Some(Entry::Write(write)) = self.entry(self.commit_idx) {
                self.node.apply(self.commit_idx, write);
                self.report.writes += 1;
            }
        }
    }

    /// Appends the evidence entries snapseal asked for, in the current term.
    fn evidence(&mut self) -> Result<(), CrashFailure> {
        self.op = "append the evidence asked for".into();
        let term = self.term;
        while let Ok((snapshot_idx, digest)) = self.live.evidence.try_recv() {
            self.log.push(Entry::Evidence { snapshot_idx, term });
            let evidence_idx = self.last_idx();
            let recorded =
                self.live
                    .snap
                    .record_evidence_in_term(evidence_idx, snapshot_idx, digest, term);
            match recorded {
                Ok(()) => {}
                // Asked for before a rollback dropped its generation: nothing to record.
                Err(e) if e.is_stale() => {}
                Err(e) => return Err(self.failure(format!("recording evidence: {e}"))),
            }
        }
        Ok(())
    }

    /// A new leader truncates the uncommitted tail at a seeded index, in a new term.
    fn rollback(&mut self) {
        let span = self.last_idx() - self.commit_idx;
        let to = self.commit_idx + self.rng.below(span + 1);
        self.op = format!("roll back to {to}");
        self.log.truncate(to as usize);
        self.points.retain(|&p| p <= to);
        self.offered = self.offered.min(to);
        self.term += 1;
        self.report.rollbacks += 1;
        self.live.snap.rollback(to);
    }

    fn inject_fault(&mut self) {
        let call = FAULT_CALLS[self.rng.below(FAULT_CALLS.len() as u64) as usize];
        let kind = FAULT_ERRORS[self.rng.below(FAULT_ERRORS.len() as u64) as usize];
        let nth = 1 + self.rng.below(4);
        self.op = format!("fail the {nth}th next {call:?} with {kind:?}");
        self.sim.inject(Fault::nth(call, nth, kind));
        self.dirty = true;
        self.report.faults += 1;
    }

    fn run_all(&mut self) -> Result<(), CrashFailure> {
        for _ in 0..MAX_JOBS_PER_RUN {
            if !self.live.tasks.run_one() {
                return Ok(());
            }
            self.report.jobs += 1;
        }
        Err(self.failure(format!(
            "the executor still had ready jobs after {MAX_JOBS_PER_RUN}"
        )))
    }

    /// The process dies `n` filesystem calls from now (the ready jobs run until then, and
    /// fail from that call on), then the power goes.
    fn crash_during(&mut self, n: u64) -> Result<(), CrashFailure> {
        let halt_at = self.sim.op_count() + n;
        self.sim.halt_after(n);
        self.dirty = true;
        self.run_all()?;
        if self.sim.op_count() > halt_at {
            self.report.crashes_mid_job += 1;
        }
        self.observe()?;
        self.crash_and_recover()
    }

    /// Ends the run: faults cleared, every pending generation finished, then a last power loss.
    fn settle(&mut self) -> Result<(), CrashFailure> {
        self.op = "settle".into();
        self.sim.clear_faults();
        for _ in 0..SETTLE_ROUNDS {
            self.run_all()?;
            self.evidence()?;
            let last = self.last_idx();
            self.commit_to(last);
            self.run_all()?;
            self.observe()?;
            if self.live.snap.pending().is_empty() {
                return self.crash_and_recover();
            }
        }
        let pending = self.live.snap.pending();
        Err(self.failure(format!(
            "generations still pending after {SETTLE_ROUNDS} rounds without faults: {pending:?}"
        )))
    }

    // ---- crash and recovery ----------------------------------------------------------------

    /// Power loss, then recovery as a node does it, checking what it finds (module doc).
    fn crash_and_recover(&mut self) -> Result<(), CrashFailure> {
        self.sim.crash();
        // A new boot: the disk works again.
        self.sim.clear_faults();
        self.report.crashes += 1;
        self.dirty = false;
        // What consensus made durable survives; the uncommitted tail is gone with the node.
        self.log.truncate(self.commit_idx as usize);
        self.points.clear();
        self.offered = self.commit_idx;
        self.term += 1;
        let before = std::mem::take(&mut self.node);

        let store = open_store(
            &self.sim,
            &self.dir,
            &self.key,
            self.keep_last,
            self.chunked,
        )
        .map_err(|d| self.failure(d))?;
        if self.chunked {
            self.report.retained_checked +=
                chunks::check_retained(&store).map_err(|d| self.failure(d))?;
        }
        let latest = store.latest().map_err(|e| {
            self.failure(format!(
                "latest() after recovery failed: {}",
                ErrorChain(&e)
            ))
        })?;
        let (mut node, from) = match latest {
            None if self.newest_acked > 0 => {
                return Err(self.failure(format!(
                    "the snapshot at {} was reported committed, but after the power loss the \
                     store has none that verifies",
                    self.newest_acked
                )))
            }
            None => (N::default(), 0),
            Some(file) => {
                let name = *file.name();
                self.check_recovered(name.idx, name.evidence_idx, file.receipt().term)?;
                let mut body = file.body_reader().map_err(|e| {
                    self.failure(format!("opening the body of snapshot {}: {e}", name.idx))
                })?;
                let restored = N::restore(&mut body).map_err(|e| {
                    self.failure(format!(
                        "the node could not restore the snapshot at {}: {e}",
                        name.idx
                    ))
                })?;
                let expected = self.rebuilt(name.idx);
                if restored != expected {
                    return Err(self.failure(format!(
                        "the snapshot at {} restores to {restored:?}, but the node's state at {} \
                         was {expected:?}",
                        name.idx, name.idx
                    )));
                }
                self.report.restored_from_snapshot += 1;
                (restored, name.idx)
            }
        };
        for idx in from + 1..=self.commit_idx {
            if let Some(Entry::Write(write)) = self.entry(idx) {
                node.apply(idx, write);
            }
        }
        if node != before {
            return Err(self.failure(format!(
                "restored from {from} and replayed to {}, the node is {node:?}, but before the \
                 power loss it was {before:?}",
                self.commit_idx
            )));
        }
        self.node = node;
        // A new executor order per incarnation, so restarts explore other interleavings.
        let exec_seed = self.seed ^ self.report.crashes.wrapping_mul(0x9E37_79B9);
        let live = Incarnation::start(&self.config, &self.key, store, &self.node, exec_seed)
            .map_err(|d| self.failure(d))?;
        // The old process died with the power; its handles on the disk are dead already.
        let dead = std::mem::replace(&mut self.live, live);
        self.report.chunk_bytes_written += dead.store.stats().chunk_bytes_written;
        dead.kill();
        let commit = self.commit_idx;
        self.live.snap.commit(commit);
        Ok(())
    }

    /// The snapshot recovery found is at least as new as every acknowledged one, of a
    /// committed index, and backed by the committed evidence entry its name and receipt say.
    fn check_recovered(
        &self,
        idx: u64,
        evidence_idx: u64,
        term: Option<u64>,
    ) -> Result<(), CrashFailure> {
        if idx < self.newest_acked {
            return Err(self.failure(format!(
                "the snapshot at {} was reported committed, but after the power loss the newest \
                 that verifies is at {idx}",
                self.newest_acked
            )));
        }
        if evidence_idx > self.commit_idx {
            return Err(self.failure(format!(
                "the snapshot at {idx} names evidence at {evidence_idx}, past the commit index {}",
                self.commit_idx
            )));
        }
        match self.entry(evidence_idx) {
            Some(Entry::Evidence {
                snapshot_idx,
                term: entry_term,
            }) if snapshot_idx == idx && term == Some(entry_term) => Ok(()),
            other => Err(self.failure(format!(
                "the snapshot at {idx} (receipt term {term:?}) names evidence at {evidence_idx}, \
                 where the committed log holds {other:?}"
            ))),
        }
    }

    // ---- what is observed ------------------------------------------------------------------

    /// Takes the Snapshotter's events and checks each.
    fn observe(&mut self) -> Result<(), CrashFailure> {
        while let Some(event) = self.live.events.try_recv() {
            match event {
                SnapshotEvent::Committed(c) => {
                    if c.evidence_idx > self.commit_idx {
                        return Err(self.failure(format!(
                            "the snapshot at {} was reported committed with its evidence at {}, \
                             past the commit index {}",
                            c.idx, c.evidence_idx, self.commit_idx
                        )));
                    }
                    self.report.acked += 1;
                    self.newest_acked = self.newest_acked.max(c.idx);
                }
                SnapshotEvent::Failed { idx, error, .. } if !self.dirty => {
                    return Err(self.failure(format!(
                        "the generation at {idx} failed without any fault injected: {}",
                        ErrorChain(&*error)
                    )))
                }
                SnapshotEvent::Failed { .. } => self.report.failed += 1,
                SnapshotEvent::Dropped { .. } => self.report.dropped += 1,
                SnapshotEvent::Skipped { .. } => {}
                // Drained every step, the queue never fills: an overflow would hide an ack.
                other => return Err(self.failure(format!("unexpected event {other:?}"))),
            }
        }
        Ok(())
    }

    // ---- helpers ---------------------------------------------------------------------------

    fn last_idx(&self) -> u64 {
        self.log.len() as u64
    }

    fn entry(&self, idx: u64) -> Option<Entry> {
        let i = usize::try_from(idx.checked_sub(1)?).ok()?;
        self.log.get(i).copied()
    }

    /// A node rebuilt from the empty state and the log's writes up to `idx`.
    fn rebuilt(&self, idx: u64) -> N {
        let mut node = N::default();
        for at in 1..=idx {
            if let Some(Entry::Write(write)) = self.entry(at) {
                node.apply(at, write);
            }
        }
        node
    }

    fn failure(&self, detail: String) -> CrashFailure {
        CrashFailure {
            seed: self.seed,
            step: self.step,
            steps: self.steps,
            op: self.op.clone(),
            detail,
        }
    }
}

/// Opens the store over the simulated disk (recovery: stale files removed), trusting
/// statements by the node's key.
fn open_store(
    sim: &SimFs,
    dir: &Path,
    key: &SigningKey,
    keep_last: usize,
    chunked: bool,
) -> Result<Arc<SnapshotStore>, String> {
    let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
    let trusted = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
    let opts = StoreOptions {
        keep_last,
        chunked,
        ..StoreOptions::new(Arc::new(trusted))
    };
    SnapshotStore::open(fs, dir, opts)
        .map(Arc::new)
        .map_err(|e| format!("opening the store: {}", ErrorChain(&e)))
}
