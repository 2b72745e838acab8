//! A small reference model of the node plus Snapshotter, written from SPEC §3 rather than
//! from the implementation, for model-based tests: the same [`Op`]s applied to the model and
//! to a [`Harness`](super::Harness) (FIFO executor, no faults) must give the same answers —
//! which signatures are snapshot points, which generations exist with which evidence and
//! signature, when a persist is scheduled, which snapshots are reported committed, in which
//! order, and the counters.
//!
//! The model has no executor, files or crypto: a generation is a record, a digest is a
//! *fingerprint* (the snapshot index plus the newest write at or before it; keys are never
//! reused, so two states are equal exactly when their fingerprints are), and [`Op::RunAll`]
//! finishes every serialisation and every scheduled persist at once, in the order they were
//! scheduled (what a FIFO executor does). Operations it does not model (single jobs, the
//! clock, faults, corruption, holds, readers, retention) are rejected by
//! [`Model::supports`].
//!
//! Where SPEC §3 is silent, the model follows the behaviour the scenario tests pin down:
//! a generation dropped by a rollback although its snapshot index survived is taken again at
//! the next commit, and after a rollback the next interval counts from the newest surviving
//! snapshot point.

use super::Op;

/// A ledger entry as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tx {
    /// A write, by its never-reused key.
    Write(u64),
    /// Evidence for the snapshot at this index with this fingerprint.
    Evidence(Fingerprint),
    /// A signature.
    Signature,
}

/// Stands in for a body digest: equal exactly when the serialised states are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    idx: u64,
    newest_write: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Point {
    idx: u64,
    forced: bool,
    done: bool,
    /// Done without a generation (`max_pending` was reached).
    skipped: bool,
    deferral_counted: bool,
}

/// A pending generation, as the model tracks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelGeneration {
    /// Generation number within the incarnation.
    pub number: u64,
    /// Snapshot index.
    pub idx: u64,
    /// Serialisation finished.
    pub serialised: bool,
    /// Evidence index, once recorded.
    pub evidence_idx: Option<u64>,
    /// Signature kept for it, once recorded.
    pub sig_idx: Option<u64>,
    /// The persist action was scheduled.
    pub persist_scheduled: bool,
    fingerprint: Option<Fingerprint>,
}

/// The model's counters (one Snapshotter incarnation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelCounters {
    /// Generations created.
    pub scheduled: u64,
    /// Due points skipped at `max_pending`.
    pub skipped: u64,
    /// Forced points deferred at `max_pending`.
    pub deferred: u64,
    /// Generations persisted.
    pub persisted: u64,
    /// Generations dropped by rollbacks.
    pub dropped: u64,
}

/// The reference model.
#[derive(Clone, Debug)]
pub struct Model {
    tx_interval: u64,
    max_pending: usize,
    ledger: Vec<Tx>,
    commit: u64,
    uncommitted_sigs: Vec<u64>,
    next_write: u64,
    // The Snapshotter (one incarnation).
    points: Vec<Point>,
    forced: bool,
    pending: Vec<ModelGeneration>,
    next_generation: u64,
    /// Evidence requests sent by finished serialisations, not yet appended by the node.
    requests: Vec<Fingerprint>,
    /// Generations whose persist is scheduled, in scheduling order.
    persist_queue: Vec<u64>,
    counters: ModelCounters,
    acks: Vec<(u64, u64, u64)>,
    last_due: Option<bool>,
}

impl Model {
    /// A fresh node with these Snapshotter settings (everything else at its default).
    pub fn new(tx_interval: u64, max_pending: usize) -> Model {
        Model {
            tx_interval,
            max_pending,
            ledger: Vec::new(),
            commit: 0,
            uncommitted_sigs: Vec::new(),
            next_write: 0,
            points: vec![Point {
                idx: 0,
                forced: false,
                done: true,
                skipped: false,
                deferral_counted: false,
            }],
            forced: false,
            pending: Vec::new(),
            next_generation: 0,
            requests: Vec::new(),
            persist_queue: Vec::new(),
            counters: ModelCounters::default(),
            acks: Vec::new(),
            last_due: None,
        }
    }

    /// Whether the model covers `op`.
    pub fn supports(op: &Op) -> bool {
        matches!(
            op,
            Op::Append(_)
                | Op::Sign
                | Op::Commit(_)
                | Op::Evidence
                | Op::Rollback(_)
                | Op::Trigger
                | Op::RunAll
                | Op::Crash
        )
    }

    /// Applies `op` (unsupported ones change nothing).
    pub fn apply(&mut self, op: &Op) {
        self.last_due = None;
        match *op {
            Op::Append(n) => {
                for _ in 0..1 + u64::from(n % 8) {
                    self.ledger.push(Tx::Write(self.next_write));
                    self.next_write += 1;
                }
            }
            Op::Sign => self.sign(),
            Op::Commit(k) => self.commit_op(k),
            Op::Evidence => self.evidence(),
            Op::Rollback(k) => self.rollback(k),
            Op::Trigger => self.forced = true,
            Op::RunAll => self.run_all(),
            Op::Crash => self.crash(),
            _ => {}
        }
    }

    /// `(idx, evidence_idx, sig_idx)` of every snapshot reported committed, in order.
    pub fn acks(&self) -> &[(u64, u64, u64)] {
        &self.acks
    }

    /// Pending generations, oldest first.
    pub fn pending(&self) -> &[ModelGeneration] {
        &self.pending
    }

    /// The current incarnation's counters.
    pub fn counters(&self) -> ModelCounters {
        self.counters
    }

    /// What `record_committable` answered, if the last op was a signature.
    pub fn last_due(&self) -> Option<bool> {
        self.last_due
    }

    /// Index of the last ledger entry.
    pub fn last_idx(&self) -> u64 {
        self.ledger.len() as u64
    }

    /// The commit index.
    pub fn commit_idx(&self) -> u64 {
        self.commit
    }

    fn baseline(&self) -> u64 {
        self.points.last().map_or(0, |p| p.idx)
    }

    fn sign(&mut self) {
        self.ledger.push(Tx::Signature);
        let s = self.last_idx();
        self.uncommitted_sigs.push(s);
        // record_committable: due after tx_interval, or when forced.
        let baseline = self.baseline();
        let due = s > baseline && (self.forced || s - baseline >= self.tx_interval);
        if due {
            self.points.push(Point {
                idx: s,
                forced: std::mem::take(&mut self.forced),
                done: false,
                skipped: false,
                deferral_counted: false,
            });
        }
        self.last_due = Some(due);
        // record_signature / record_tree: the first signature after each evidence is kept.
        for g in &mut self.pending {
            if let (Some(e), None) = (g.evidence_idx, g.sig_idx) {
                if s > e {
                    g.sig_idx = Some(s);
                }
            }
        }
        self.check_gates();
    }

    fn commit_op(&mut self, k: u8) {
        let n = self.uncommitted_sigs.len();
        if n > 0 {
            let target = self.uncommitted_sigs[n - 1 - usize::from(k) % n];
            self.commit = self.commit.max(target);
            let commit = self.commit;
            self.uncommitted_sigs.retain(|&s| s > commit);
        }
        self.check_gates();
        self.schedule_due();
    }

    fn evidence(&mut self) {
        for fp in std::mem::take(&mut self.requests) {
            self.ledger.push(Tx::Evidence(fp));
            let e = self.last_idx();
            // The generation at that index still waiting for evidence takes it if its own
            // body has that digest.
            if let Some(g) = self
                .pending
                .iter_mut()
                .find(|g| g.idx == fp.idx && g.evidence_idx.is_none())
            {
                if g.fingerprint == Some(fp) {
                    g.evidence_idx = Some(e);
                }
            }
            self.check_gates();
        }
    }

    fn rollback(&mut self, k: u8) {
        let span = self.last_idx().saturating_sub(self.commit);
        let to = self.commit + u64::from(k) % (span + 1);
        self.ledger.truncate(to as usize);
        self.uncommitted_sigs.retain(|&s| s <= to);
        // Newest first, drop generations whose evidence is gone or never came, up to the
        // first whose evidence survives; older than that, drop those whose evidence is gone
        // (evidence is appended as serialisations finish, not in generation order, so an
        // older generation's may come after a newer one's) and keep those still waiting.
        let mut rearm = Vec::new();
        let mut walking = true;
        let mut kept = Vec::new();
        for g in std::mem::take(&mut self.pending).into_iter().rev() {
            let survives = g.evidence_idx.is_some_and(|e| e <= to);
            let gone = g.evidence_idx.is_some_and(|e| e > to);
            if (walking && !survives) || gone {
                self.counters.dropped += 1;
                self.persist_queue.retain(|&n| n != g.number);
                if g.idx <= to {
                    rearm.push(g.idx);
                }
            } else {
                kept.push(g);
            }
            walking &= !survives;
        }
        kept.reverse();
        self.pending = kept;
        for g in &mut self.pending {
            if !g.persist_scheduled && g.sig_idx.is_some_and(|s| s > to) {
                g.sig_idx = None;
            }
        }
        self.points.retain(|p| p.idx <= to);
        for idx in rearm {
            if let Some(p) = self.points.iter_mut().find(|p| p.idx == idx) {
                p.done = false;
            }
        }
    }

    fn run_all(&mut self) {
        for i in 0..self.pending.len() {
            let fp = self.fingerprint(self.pending[i].idx);
            let g = &mut self.pending[i];
            if !g.serialised {
                g.serialised = true;
                g.fingerprint = Some(fp);
                self.requests.push(fp);
            }
        }
        for number in std::mem::take(&mut self.persist_queue) {
            if let Some(pos) = self.pending.iter().position(|g| g.number == number) {
                let g = self.pending.remove(pos);
                if let (Some(e), Some(s)) = (g.evidence_idx, g.sig_idx) {
                    self.acks.push((g.idx, e, s));
                    self.counters.persisted += 1;
                }
            }
        }
    }

    fn crash(&mut self) {
        // The ledger survives up to the commit index; the Snapshotter starts afresh.
        self.ledger.truncate(self.commit as usize);
        self.uncommitted_sigs.clear();
        // A restart resumes (SPEC §3): its first baseline is the store's newest snapshot that
        // verifies. The model has no faults, so that is the newest acknowledged snapshot.
        let resumed = self.acks.iter().map(|a| a.0).max().unwrap_or(0);
        self.points = vec![Point {
            idx: resumed,
            forced: false,
            done: true,
            skipped: false,
            deferral_counted: false,
        }];
        self.forced = false;
        self.pending.clear();
        self.next_generation = 0;
        self.requests.clear();
        self.persist_queue.clear();
        self.counters = ModelCounters::default();
    }

    fn fingerprint(&self, idx: u64) -> Fingerprint {
        let newest_write = self.ledger[..(idx as usize).min(self.ledger.len())]
            .iter()
            .rev()
            .find_map(|tx| match tx {
                Tx::Write(key) => Some(*key),
                _ => None,
            });
        Fingerprint { idx, newest_write }
    }

    /// SPEC §3 gate: serialised, evidence, a signature after it, committed.
    fn check_gates(&mut self) {
        for g in &mut self.pending {
            if g.persist_scheduled || !g.serialised {
                continue;
            }
            if let (Some(e), Some(s)) = (g.evidence_idx, g.sig_idx) {
                if s > e && self.commit >= s {
                    g.persist_scheduled = true;
                    self.persist_queue.push(g.number);
                }
            }
        }
    }

    /// Due points at or below the commit index become generations, up to `max_pending`.
    fn schedule_due(&mut self) {
        for i in 0..self.points.len() {
            let p = &self.points[i];
            if p.done || p.idx > self.commit {
                continue;
            }
            let idx = p.idx;
            if self.pending.len() >= self.max_pending {
                let p = &mut self.points[i];
                if p.forced {
                    // A forced point waits for a slot.
                    if !p.deferral_counted {
                        p.deferral_counted = true;
                        self.counters.deferred += 1;
                    }
                } else {
                    p.done = true;
                    p.skipped = true;
                    self.counters.skipped += 1;
                }
                continue;
            }
            self.points[i].done = true;
            self.pending.push(ModelGeneration {
                number: self.next_generation,
                idx,
                serialised: false,
                evidence_idx: None,
                sig_idx: None,
                persist_scheduled: false,
                fingerprint: None,
            });
            self.next_generation += 1;
            self.counters.scheduled += 1;
        }
    }
}
