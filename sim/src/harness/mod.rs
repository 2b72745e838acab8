//! A deterministic simulation harness: the manual executor, [`SimFs`], the reference
//! [`Ledger`] and a [`Snapshotter`](snapseal_actors::Snapshotter), driven by a seed and a list of
//! [`Op`]s, with the SPEC's promises checked after every step.
//!
//! It is library code so that an embedding project's own tests can use it:
//!
//! ```
//! use snapseal_sim::harness::{Harness, HarnessConfig, Op};
//!
//! let mut h = Harness::new(7, HarnessConfig::default()).expect("starts");
//! // 9 writes, a signature at 10 (a snapshot point), commit it, serialise, evidence at 11, a
//! // signature at 12 covering it, commit that, persist; then lose power and recover.
//! for op in [Op::Append(7), Op::Append(0), Op::Sign, Op::Commit(0), Op::RunAll, Op::Evidence,
//!            Op::Sign, Op::Commit(0), Op::RunAll, Op::Crash] {
//!     h.apply(&op).expect("no invariant broken");
//! }
//! assert_eq!(h.acks().len(), 1, "the snapshot at 10 was persisted");
//! ```
//!
//! # The simulated node
//!
//! The node appends key-value writes, signature txs and evidence txs to the ledger and calls
//! the Snapshotter the way a CCF-style node does; the executor runs only when told
//! ([`Op::RunOne`], [`Op::RunAll`]), so every interleaving of serialise and persist actions
//! with the node's calls is reachable and replays from the seed. The node commits only at
//! signatures and rolls back only its uncommitted tail, as a consensus protocol would.
//!
//! A crash ([`Op::Crash`], [`Op::CrashDuring`]) is a power loss: [`SimFs::crash`] decides
//! what of the unsynced disk state survives, the process and everything in it (executor,
//! pending generations, evidence requests, holds) is gone, and the ledger survives up to the
//! commit index (what consensus made durable). Recovery opens the store again (which removes
//! stale files), asks it for `latest()`, and starts a new Snapshotter over the same ledger.
//!
//! # What is checked, and when
//!
//! After every operation, and after every single job the executor runs:
//! - every `.committed` file verifies (header, lengths, receipt against the ledger's key, body
//!   digest, body encoding) and is backed by the ledger: an evidence tx at its
//!   `evidence_idx` carrying the claims digest recomputed from the file's header, and a
//!   *committed* signature at the receipt's `sig_idx`;
//! - a persist action is only ever scheduled when its gate holds: serialised, the evidence tx
//!   at `evidence_idx` carries the body's claims digest, a signature at `sig_idx > evidence_idx`,
//!   and the commit index `>= sig_idx` (checked the moment the action is scheduled);
//! - each `Committed` event matches a gate that held, with the same indices and claims digest; no
//!   generation or file name is reported twice; no generation dropped by a rollback is ever
//!   reported; the file's body is exactly the state at its index;
//! - a snapshot reported committed never disappears, except through retention (and then only
//!   when at least `keep_last` newer ones exist and no hold is on it) or the quarantine of a
//!   file the simulation corrupted itself;
//! - after each successful persist and retention pass, no unheld snapshot beyond the newest
//!   `keep_last` remains except the one just written (which that pass spares by design);
//! - without any injected fault, no uncommitted file exists between jobs; after recovery,
//!   none exists at all;
//! - pending (spilled body) files: without a fault each belongs to a pending generation (or
//!   one a rollback just dropped, whose discard job is queued); after recovery none exists,
//!   nor once [`Harness::settle`] has finished every generation;
//! - retention removes one of the newest `keep_last` snapshots only when `max_bytes` trims it
//!   (or, under a fault, when the store could not read it), never the newest that verifies;
//! - `latest()` (after recovery, and on [`Op::Latest`]) returns a verified snapshot at least as
//!   new as the newest one reported committed that is still there, and newer corrupt files have
//!   been quarantined;
//! - when the run ends ([`Harness::settle`]), with faults cleared, every pending generation
//!   finishes within a bounded number of signature rounds, and a last crash loses nothing.
//!
//! A failure is a [`Violation`] that names the invariant, the step and a one-line command that
//! replays it.

mod checks;
mod config;
pub mod fuzz_archive;
pub mod fuzz_entry;
pub mod fuzz_ledger;
mod history;
pub mod model;
mod op;
mod process;
mod rng;
mod runner;
mod violation;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use snapseal_actors::{SnapshotCounters, SnapshotEvent};
use snapseal_persist::fs::Fault;
use snapseal_persist::fs::SimFs;
use snapseal_persist::internals::PendingName;
use snapseal_persist::receipt::{Ed25519Verifier, ReceiptVerifier};
use snapseal_persist::{FileState, SnapshotName, StoreStats};

pub use config::HarnessConfig;
pub use history::{AckRecord, HarnessStats};
pub use op::{Op, FAULT_CALLS, FAULT_ERRORS};
pub use process::StartError;
pub use rng::SplitMix64;
pub use runner::{
    env_count, repro_command, run_seed, sweep, SweepReport, DEFAULT_OPS, OPS_ENV, SEEDS_ENV,
    SEED_ENV,
};
pub use violation::{Invariant, Violation, KNOWN_BUGS};

use history::History;
use process::Process;
use snapseal_ledger::ledger::{Ledger, TxKind};

/// Most jobs one [`Op::RunAll`] runs: a guard against a job that keeps re-queuing itself.
const MAX_JOBS_PER_RUN: usize = 10_000;

/// Consecutive signature rounds in which [`Harness::settle`] sees no generation start or
/// finish before it calls the pending ones stuck.
const SETTLE_STALL_ROUNDS: usize = 32;

/// Signature rounds [`Harness::settle`] allows in all. A backlog of deferred points drains
/// about one generation per round, so this only stops a settle that never ends.
const SETTLE_MAX_ROUNDS: usize = 10_000;

/// One simulated node and everything checked about it (see the module doc).
pub struct Harness {
    seed: u64,
    cfg: HarnessConfig,
    sim: SimFs,
    dir: PathBuf,
    ledger: Ledger,
    verifier: Arc<dyn ReceiptVerifier>,
    process: Process,
    /// The node's commit index: only ever moves forward (consensus never un-commits).
    commit_idx: u64,
    /// Signature txs appended but not yet committed, oldest first.
    uncommitted_sigs: Vec<u64>,
    /// Key of the next write: keys are never reused, so equal states mean equal write sets.
    next_write: u64,
    incarnation: u64,
    history: History,
    /// Committed names as last observed on the (simulated) disk.
    present: BTreeSet<SnapshotName>,
    /// Committed names already verified in this incarnation (names are never reused).
    verified: BTreeSet<SnapshotName>,
    /// Committed names whose bits the simulation flipped.
    corrupted: BTreeSet<SnapshotName>,
    /// Size of each committed file when it was verified (for the `max_bytes` rule).
    sizes: BTreeMap<SnapshotName, u64>,
    /// Pending (spilled body) files seen in this incarnation.
    pending_seen: BTreeSet<PendingName>,
    /// A fault is or was armed during this incarnation.
    dirty: bool,
    /// A fault may still be armed (injected and not cleared).
    armed: bool,
    stats: HarnessStats,
    /// Store counters of earlier incarnations, folded in at each crash.
    store_totals: StoreStats,
    step: usize,
    op_text: String,
    repro: String,
    last_due: Option<bool>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("seed", &self.seed)
            .field("cfg", &self.cfg)
            .field("step", &self.step)
            .field("commit_idx", &self.commit_idx)
            .field("last_idx", &self.ledger.last_idx())
            .field("incarnation", &self.incarnation)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// A node with an empty ledger and an empty snapshot directory; every random choice (the
    /// executor's picks, the crash outcomes, the ledger key) derives from `seed`.
    pub fn new(seed: u64, cfg: HarnessConfig) -> Result<Harness, Violation> {
        let sim = SimFs::new(seed);
        sim.set_rename_noreplace_supported(cfg.rename_noreplace);
        let dir = PathBuf::from("/node/snapshots");
        let ledger = Ledger::from_seed(seed);
        let verifier: Arc<dyn ReceiptVerifier> =
            Arc::new(Ed25519Verifier::new(vec![ledger.verifying_key()]));
        let repro = format!("Harness::new({seed}, {cfg:?}) then apply the same ops");
        let process =
            Process::start(&sim, &dir, &ledger, &verifier, &cfg, seed).map_err(|e| Violation {
                invariant: Invariant::UnexpectedError,
                seed,
                step: 0,
                op: "start".into(),
                detail: e.to_string(),
                repro: repro.clone(),
            })?;
        Ok(Harness {
            seed,
            cfg,
            sim,
            dir,
            ledger,
            verifier,
            process,
            commit_idx: 0,
            uncommitted_sigs: Vec::new(),
            next_write: 0,
            incarnation: 0,
            history: History::default(),
            present: BTreeSet::new(),
            verified: BTreeSet::new(),
            corrupted: BTreeSet::new(),
            sizes: BTreeMap::new(),
            pending_seen: BTreeSet::new(),
            dirty: false,
            armed: false,
            stats: HarnessStats {
                runs: 1,
                ..HarnessStats::default()
            },
            store_totals: StoreStats::default(),
            step: 0,
            op_text: "start".into(),
            repro,
            last_due: None,
        })
    }

    /// Sets the command a [`Violation`] prints to replay this run.
    pub fn set_repro(&mut self, command: impl Into<String>) {
        self.repro = command.into();
    }

    /// Applies one operation, then checks every invariant.
    pub fn apply(&mut self, op: &Op) -> Result<(), Violation> {
        self.step += 1;
        self.stats.steps += 1;
        self.op_text = format!("{op:?}");
        self.last_due = None;
        self.dispatch(op)?;
        self.after_step(None)
    }

    /// Applies every operation, then [`settle`](Self::settle)s. Returns what the run did.
    pub fn run(&mut self, ops: &[Op]) -> Result<HarnessStats, Violation> {
        for op in ops {
            self.apply(op)?;
        }
        self.settle()?;
        Ok(self.stats())
    }

    /// Ends a run: clears the faults, then drives signatures and commits until no generation
    /// is pending (an [`Invariant::Stuck`] violation after 32 consecutive rounds in which no
    /// generation starts or finishes, or after 10 000 rounds in all), then crashes and
    /// recovers once more, checking that nothing acknowledged is lost. Its own signatures are
    /// not offered as snapshot points, so only the backlog drains.
    pub fn settle(&mut self) -> Result<(), Violation> {
        self.step += 1;
        self.op_text = "settle".into();
        self.clear_faults();
        // Cooldown and time-interval deferrals only end when the clock moves.
        let tick = Duration::from_secs(60);
        let progress = |h: &Self| {
            let c = h.process.snap.counters();
            c.scheduled + c.persisted + c.dropped + c.failed + c.skipped
        };
        let mut stalled = 0;
        for _ in 0..SETTLE_MAX_ROUNDS {
            let before = progress(self);
            self.run_all()?;
            self.evidence()?;
            self.after_step(None)?;
            if self.process.snap.pending().is_empty() {
                break;
            }
            self.process.tasks.tick(tick);
            self.sign_at(false);
            self.commit_latest();
            self.after_step(None)?;
            stalled = if progress(self) == before {
                stalled + 1
            } else {
                0
            };
            if stalled == SETTLE_STALL_ROUNDS {
                break;
            }
        }
        let pending = self.process.snap.pending();
        if !pending.is_empty() {
            return Err(self.violation(
                Invariant::Stuck,
                format!(
                    "settling without faults, still pending after {stalled} rounds without a \
                     generation starting or finishing: {pending:?}"
                ),
            ));
        }
        // Nothing pending and the executor idle: every discarded body's file is gone too.
        if !self.dirty {
            if let Some(p) = self.pending_files().first() {
                return Err(self.violation(
                    Invariant::StaleFile,
                    format!("{p} is left although no generation is pending"),
                ));
            }
        }
        self.crash_and_recover()
    }

    // ---- accessors -----------------------------------------------------------------------

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The configuration.
    pub fn config(&self) -> &HarnessConfig {
        &self.cfg
    }

    /// What the simulation did so far.
    pub fn stats(&self) -> HarnessStats {
        let mut s = self.stats;
        let store = self.process.store.stats();
        s.quarantined = self.store_totals.quarantined + store.quarantined;
        s.retention_deleted = self.store_totals.retention_deleted + store.retention_deleted;
        s.stale_removed = self.store_totals.stale_removed + store.stale_removed;
        s
    }

    /// Every `Committed` event so far, in arrival order.
    pub fn acks(&self) -> &[AckRecord] {
        &self.history.acks
    }

    /// The current Snapshotter's counters (reset by each crash).
    pub fn counters(&self) -> SnapshotCounters {
        self.process.snap.counters()
    }

    /// What `record_committable` answered in the last operation, if it was [`Op::Sign`].
    pub fn last_due(&self) -> Option<bool> {
        self.last_due
    }

    /// The node's commit index.
    pub fn commit_idx(&self) -> u64 {
        self.commit_idx
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The simulated filesystem.
    pub fn sim(&self) -> &SimFs {
        &self.sim
    }

    /// The snapshot directory on the simulated filesystem.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The current Snapshotter's pending generations (for debugging a failing run).
    pub fn debug_pending(&mut self) -> Vec<snapseal_actors::internals::GenerationInfo> {
        self.process.snap.pending()
    }

    /// How many crashes the node went through.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Pending (spilled body) files now on the simulated disk, by (idx, generation).
    pub fn pending_files(&self) -> Vec<PendingName> {
        let mut names: Vec<PendingName> = self
            .sim
            .names(&self.dir)
            .iter()
            .filter_map(|n| PendingName::parse(n))
            .collect();
        names.sort();
        names
    }

    /// Committed snapshot files now on the simulated disk, oldest first.
    pub fn committed_files(&self) -> Vec<SnapshotName> {
        self.listing()
            .into_iter()
            .filter(|n| n.state == FileState::Committed)
            .collect()
    }

    // ---- operations ----------------------------------------------------------------------

    fn dispatch(&mut self, op: &Op) -> Result<(), Violation> {
        match *op {
            Op::Append(n) => self.append(1 + u64::from(n % 8)),
            Op::Sign => self.sign(),
            Op::Commit(k) => self.commit(k),
            Op::Evidence => self.evidence()?,
            Op::Rollback(k) => self.rollback(k)?,
            Op::Trigger => self.process.snap.trigger_snapshot(),
            Op::RunOne => {
                self.run_one()?;
            }
            Op::RunAll => self.run_all()?,
            Op::Tick(n) => self.process.tasks.tick(Duration::from_secs(u64::from(n))),
            Op::Fault { call, error, nth } => {
                self.sim
                    .inject(Fault::nth(call, 1 + u64::from(nth % 4), error));
                self.dirty = true;
                self.armed = true;
                self.stats.faults += 1;
            }
            Op::ClearFaults => self.clear_faults(),
            Op::Crash => self.crash_and_recover()?,
            Op::CrashDuring(n) => self.crash_during(u64::from(n % 32))?,
            Op::Corrupt { which, bit } => self.corrupt(which, bit),
            Op::Hold(k) => self.hold(k)?,
            Op::Release(k) => {
                let holds = &mut self.process.holds;
                if !holds.is_empty() {
                    holds.remove(usize::from(k) % holds.len());
                }
            }
            Op::Latest => self.check_latest()?,
            Op::Retention => self.retention()?,
        }
        Ok(())
    }

    fn append(&mut self, n: u64) {
        for _ in 0..n {
            let key = self.next_write;
            self.next_write += 1;
            self.ledger.append(TxKind::Write {
                key,
                value: Arc::from(key.to_le_bytes().to_vec()),
            });
        }
    }

    fn sign(&mut self) {
        self.sign_at(true);
    }

    /// Appends a signature; with `point`, its index is offered as a snapshot point. Settling
    /// signs without offering points: with a small tx interval every signature would make a
    /// new snapshot due and settling would chase its own tail (the node's flush does the same).
    fn sign_at(&mut self, point: bool) {
        let signed = self.ledger.append_signature();
        let sig_idx = signed.sig_idx;
        let snap = &mut self.process.snap;
        if point {
            self.last_due = Some(snap.record_committable(sig_idx));
        }
        snap.record_signature(signed);
        snap.record_tree(sig_idx, self.ledger.proofs());
        self.uncommitted_sigs.push(sig_idx);
    }

    fn commit(&mut self, k: u8) {
        if self.uncommitted_sigs.is_empty() {
            // Nothing new is committed, but the node may repeat its commit index (which is
            // when deferred snapshot points are retried).
            self.process.snap.commit(self.commit_idx);
            return;
        }
        let n = self.uncommitted_sigs.len();
        let target = self.uncommitted_sigs[n - 1 - usize::from(k) % n];
        self.commit_to(target);
    }

    fn commit_latest(&mut self) {
        if let Some(&last) = self.uncommitted_sigs.last() {
            self.commit_to(last);
        }
    }

    fn commit_to(&mut self, target: u64) {
        self.commit_idx = self.commit_idx.max(target);
        self.uncommitted_sigs.retain(|&s| s > self.commit_idx);
        self.process.snap.commit(self.commit_idx);
    }

    fn evidence(&mut self) -> Result<(), Violation> {
        while let Ok((snapshot_idx, digest)) = self.process.evidence_rx.try_recv() {
            let e = self.ledger.append(TxKind::Evidence {
                snapshot_idx,
                digest,
            });
            match self.process.snap.record_evidence(e, snapshot_idx, digest) {
                // Announced before a rollback dropped its generation: nothing to record.
                Ok(()) => {}
                Err(stale) if stale.is_stale() => {}
                Err(other) => {
                    return Err(self.violation(Invariant::UnexpectedError, other.to_string()))
                }
            }
        }
        Ok(())
    }

    fn rollback(&mut self, k: u8) -> Result<(), Violation> {
        let span = self.ledger.last_idx().saturating_sub(self.commit_idx);
        let to = self.commit_idx + u64::from(k) % (span + 1);
        self.ledger.truncate(to);
        self.uncommitted_sigs.retain(|&s| s <= to);
        self.process.snap.rollback(to);
        self.stats.checks += 1;
        let survivors = self.process.snap.pending();
        let dangling = survivors.iter().find(|g| {
            !g.persist_scheduled
                && (g.evidence_idx.is_some_and(|e| e > to) || g.sig_idx.is_some_and(|s| s > to))
        });
        match dangling {
            Some(g) => Err(self.violation(
                Invariant::RollbackSurvivor,
                format!("rollback to {to} kept {g:?}; pending: {survivors:?}"),
            )),
            None => Ok(()),
        }
    }

    /// Runs one ready job and checks everything; false when none was ready.
    fn run_one(&mut self) -> Result<bool, Violation> {
        let retention_failures = self.process.store.stats().retention_failures;
        // A job may be a persist, whose retention pass must keep this one.
        let newest = self.newest_verifying();
        if !self.process.tasks.run_one() {
            return Ok(false);
        }
        self.check_newest_verifying_kept(newest, true)?;
        self.stats.jobs += 1;
        let retention_ok = self.process.store.stats().retention_failures == retention_failures;
        self.after_step(Some(retention_ok))?;
        Ok(true)
    }

    fn run_all(&mut self) -> Result<(), Violation> {
        for _ in 0..MAX_JOBS_PER_RUN {
            if !self.run_one()? {
                return Ok(());
            }
        }
        Err(self.violation(
            Invariant::Stuck,
            format!("the executor still had ready jobs after {MAX_JOBS_PER_RUN}"),
        ))
    }

    /// The process dies `n` seam calls from now: whatever runs meanwhile fails from that
    /// call on, then the power goes.
    fn crash_during(&mut self, n: u64) -> Result<(), Violation> {
        let halt_at = self.sim.op_count() + n;
        self.sim.halt_after(n);
        // Writes cut short by the halt may leave uncommitted files until recovery.
        self.dirty = true;
        self.run_all()?;
        if self.sim.op_count() > halt_at {
            self.stats.crash_points += 1;
        }
        self.crash_and_recover()
    }

    /// Power loss, restart, recovery; then the recovery checks.
    fn crash_and_recover(&mut self) -> Result<(), Violation> {
        self.stats.crashes += 1;
        let before = self.present.clone();
        self.sim.crash();
        let left_pending = self.pending_files().len() as u64;
        // What consensus made durable survives; the uncommitted tail is gone with the node.
        self.ledger.truncate(self.commit_idx);
        self.uncommitted_sigs.clear();
        let fold = self.process.store.stats();
        self.store_totals.quarantined += fold.quarantined;
        self.store_totals.retention_deleted += fold.retention_deleted;
        self.store_totals.stale_removed += fold.stale_removed;
        let process = match self.start_process() {
            Ok(p) => p,
            Err(first) if self.dirty => {
                // An injected fault may fail recovery; that is a typed error, not a bug. The
                // operator's next restart (faults gone) must succeed.
                tracing::debug!(error = %first, "recovery failed under injected faults; retrying");
                self.stats.recoveries_retried += 1;
                self.clear_faults();
                self.start_process()
                    .map_err(|e| self.violation(Invariant::UnexpectedError, e.to_string()))?
            }
            Err(e) => {
                return Err(self.violation(
                    Invariant::UnexpectedError,
                    format!("recovery without faults failed: {e}"),
                ))
            }
        };
        let old = std::mem::replace(&mut self.process, process);
        old.kill();
        self.incarnation += 1;
        self.verified.clear();
        self.pending_seen.clear();
        // Faults still armed make the new incarnation dirty from its start.
        self.dirty = self.armed;
        self.check_recovered(&before)?;
        // check_recovered found none left, so recovery removed every one.
        self.stats.pending_cleaned += left_pending;
        self.check_latest()?;
        let commit = self.commit_idx;
        self.process.snap.commit(commit);
        Ok(())
    }

    fn start_process(&self) -> Result<Process, StartError> {
        // A new executor seed per incarnation, so restarts explore other interleavings.
        let exec_seed = self.seed ^ self.incarnation.wrapping_add(1).wrapping_mul(0x9E37);
        Process::start(
            &self.sim,
            &self.dir,
            &self.ledger,
            &self.verifier,
            &self.cfg,
            exec_seed,
        )
    }

    fn clear_faults(&mut self) {
        self.sim.clear_faults();
        self.armed = false;
    }

    fn corrupt(&mut self, which: u8, bit: u16) {
        // Only intact files: a second flip of the same bit would repair the first.
        let committed: Vec<SnapshotName> = self
            .committed_files()
            .into_iter()
            .filter(|n| !self.corrupted.contains(n))
            .collect();
        if committed.is_empty() {
            return;
        }
        let name = committed[usize::from(which) % committed.len()];
        let file = name.file_name();
        let len = self
            .sim
            .read(&self.dir, &file)
            .map_or(0, |b| b.len() as u64);
        if len == 0 {
            return;
        }
        if self
            .sim
            .flip_bit(&self.dir, &file, u64::from(bit) % len.saturating_mul(8))
        {
            self.corrupted.insert(name);
            self.stats.corruptions += 1;
        }
    }

    fn hold(&mut self, k: u8) -> Result<(), Violation> {
        let committed = self.committed_files();
        if committed.is_empty() {
            return Ok(());
        }
        let name = committed[usize::from(k) % committed.len()];
        match self.process.store.hold(&name) {
            Ok(hold) => {
                self.process.holds.push(hold);
                Ok(())
            }
            Err(_) if self.dirty => Ok(()),
            Err(e) => Err(self.violation(
                Invariant::UnexpectedError,
                format!("hold on {name} failed without faults: {e}"),
            )),
        }
    }

    fn retention(&mut self) -> Result<(), Violation> {
        let newest = self.newest_verifying();
        let result = self.process.store.apply_retention();
        self.check_newest_verifying_kept(newest, false)?;
        match result {
            Ok(_) => self.check_retention_bound(None),
            Err(_) if self.dirty => Ok(()),
            Err(e) => Err(self.violation(
                Invariant::UnexpectedError,
                format!("retention failed without faults: {e}"),
            )),
        }
    }

    /// Collects events, then runs the checks. `job` is `Some(retention_ok)` after a job.
    fn after_step(&mut self, job: Option<bool>) -> Result<(), Violation> {
        self.observe_gates()?;
        let mut just_acked = None;
        while let Some(event) = self.process.events_rx.try_recv() {
            match event {
                SnapshotEvent::Committed(c) => {
                    just_acked = Some(self.check_ack(&c)?);
                }
                SnapshotEvent::Failed { .. } => self.stats.failed += 1,
                SnapshotEvent::Dropped { generation, .. } => {
                    self.stats.dropped += 1;
                    self.history.dropped.insert((self.incarnation, generation));
                }
                SnapshotEvent::Skipped { .. } => self.stats.skipped += 1,
                // The queue is drained every step; an overflow would hide acknowledgements.
                other => {
                    return Err(self.violation(
                        Invariant::UnexpectedError,
                        format!("unexpected snapshot event {other:?}"),
                    ))
                }
            }
        }
        self.check_directory()?;
        if let (Some(true), Some(name)) = (job, just_acked) {
            self.check_retention_bound(Some(name))?;
        }
        Ok(())
    }

    fn violation(&self, invariant: Invariant, detail: String) -> Violation {
        Violation {
            invariant,
            seed: self.seed,
            step: self.step,
            op: self.op_text.clone(),
            detail,
            repro: self.repro.clone(),
        }
    }
}
