//! The `Snapshotter`: the state machine the consensus thread drives (SPEC §3).
//!
//! Every call is cheap: it updates in-memory state, may capture a frozen view (the node's
//! `capture`, required to be cheap) and may add an action to a generation's queue. Nothing here
//! performs I/O or waits for a task; serialisation and persistence run on the engine.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use snapseal_engine::TaskSystem;
use snapseal_persist::receipt::SignedRoot;
use snapseal_persist::Hash;
use snapseal_persist::SnapshotStore;
use tracing::{debug, info, warn};

use crate::actions::{hex_prefix, PersistJob, SerialiseJob};
use crate::body::MemoryBudget;
use crate::config::{ConfigError, SnapshotterConfig};
use crate::events::{Counters, SnapshotCounters, SnapshotEvent};
use crate::generation::{GenShared, Generation};
use crate::node::{EvidenceSink, ProofSource, StateSource};
use crate::points::Points;

/// What a test or operator can see of one pending generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerationInfo {
    /// Generation number (0, 1, 2 … in creation order).
    pub generation: u64,
    /// Snapshot index.
    pub idx: u64,
    /// Serialisation finished.
    pub serialised: bool,
    /// Evidence index, once recorded.
    pub evidence_idx: Option<u64>,
    /// Index of the signature kept for it, once recorded.
    pub sig_idx: Option<u64>,
    /// The gate held and the persist action was added.
    pub persist_scheduled: bool,
}

/// Turns commit points into generations and generations into `.committed` files.
///
/// Drive it from the consensus thread (`&mut self`: one caller at a time). Generations run on
/// the [`TaskSystem`] given at construction — threaded in production, manual in tests.
pub struct Snapshotter {
    config: SnapshotterConfig,
    tasks: TaskSystem,
    store: Arc<SnapshotStore>,
    state: Arc<dyn StateSource>,
    sink: Arc<dyn EvidenceSink>,
    points: Points,
    /// Pending generations in creation order.
    pending: Vec<Generation>,
    next_generation: u64,
    commit_idx: u64,
    forced: bool,
    /// Engine-clock time of the last serialisation started (None: none yet).
    last_serialise_at: Option<Duration>,
    /// Newest index persisted so far: the baseline floor if a rollback removes every point.
    last_persisted_idx: u64,
    counters: Arc<Counters>,
    /// In-memory allowance of all pending bodies (`None`: never spill to disk).
    spill_budget: Option<MemoryBudget>,
    events_tx: Sender<SnapshotEvent>,
    events_rx: Receiver<SnapshotEvent>,
    done_tx: Sender<(u64, SnapshotEvent)>,
    done_rx: Receiver<(u64, SnapshotEvent)>,
}

impl std::fmt::Debug for Snapshotter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshotter")
            .field("config", &self.config)
            .field("commit_idx", &self.commit_idx)
            .field("baseline", &self.points.baseline())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Snapshotter {
    /// A Snapshotter with validated `config`, running generations on `tasks` and persisting into
    /// `store`.
    pub fn new(
        config: SnapshotterConfig,
        tasks: TaskSystem,
        store: Arc<SnapshotStore>,
        state: Arc<dyn StateSource>,
        sink: Arc<dyn EvidenceSink>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let spill_budget = config.spill_threshold.map(MemoryBudget::new);
        Ok(Snapshotter {
            spill_budget,
            config,
            tasks,
            store,
            state,
            sink,
            points: Points::new(),
            pending: Vec::new(),
            next_generation: 0,
            commit_idx: 0,
            forced: false,
            last_serialise_at: None,
            last_persisted_idx: 0,
            counters: Arc::new(Counters::default()),
            events_tx,
            events_rx,
            done_tx,
            done_rx,
        })
    }

    /// At every signature tx: records `idx` as a candidate snapshot point when a snapshot is due
    /// there (or was forced). Returns true when the node should start a new ledger chunk at
    /// `idx`.
    pub fn record_committable(&mut self, idx: u64) -> bool {
        let baseline = self.points.baseline();
        if idx <= baseline {
            return false;
        }
        let since = idx - baseline;
        let time_due = self.config.time_interval.is_some_and(|interval| {
            let last = self.last_serialise_at.unwrap_or(Duration::ZERO);
            self.tasks.now().saturating_sub(last) >= interval && since > self.config.min_tx_count
        });
        let due = self.forced || since >= self.config.tx_interval || time_due;
        if !due {
            return false;
        }
        let forced = std::mem::take(&mut self.forced);
        self.points.push(idx, forced);
        debug!(idx, forced, baseline, "snapshot point recorded");
        true
    }

    /// The commit index advanced to `idx`: pass the gates this opens, then start generations for
    /// due points at or below it.
    pub fn commit(&mut self, idx: u64) {
        self.drain_done();
        self.commit_idx = self.commit_idx.max(idx);
        self.check_gates();
        self.schedule_due();
    }

    /// The node appended the evidence tx for the snapshot at `snapshot_idx` at `evidence_idx`.
    pub fn record_evidence(&mut self, evidence_idx: u64, snapshot_idx: u64, digest: Hash) {
        self.drain_done();
        let Some(generation) = self
            .pending
            .iter_mut()
            .find(|g| g.idx == snapshot_idx && g.evidence_idx.is_none())
        else {
            debug!(
                evidence_idx,
                snapshot_idx, "evidence for no pending generation; ignored"
            );
            return;
        };
        if evidence_idx <= snapshot_idx {
            warn!(
                evidence_idx,
                snapshot_idx, "evidence not after its snapshot point; ignored"
            );
            return;
        }
        let body_digest = generation.shared.body.lock().as_ref().map(|b| b.digest());
        if body_digest != Some(digest) {
            warn!(
                evidence_idx,
                snapshot_idx, "evidence digest does not match the serialised body; ignored"
            );
            return;
        }
        generation.evidence_idx = Some(evidence_idx);
        generation.digest = Some(digest);
        generation.span.record("evidence_idx", evidence_idx);
        debug!(parent: &generation.span, evidence_idx, "evidence recorded");
        self.check_gates();
    }

    /// A signature tx at `signed.sig_idx` signed the ledger's root. Each generation with
    /// evidence keeps the first signature strictly after its evidence.
    pub fn record_signature(&mut self, signed: SignedRoot) {
        self.drain_done();
        for g in &mut self.pending {
            let Some(evidence_idx) = g.evidence_idx else {
                continue;
            };
            if g.signature.is_some() || signed.sig_idx <= evidence_idx {
                continue;
            }
            if g.tree.as_ref().is_some_and(|(t, _)| *t != signed.sig_idx) {
                g.tree = None;
            }
            g.span.record("sig_idx", signed.sig_idx);
            g.signature = Some(signed.clone());
        }
        self.check_gates();
    }

    /// The tree (proof source) as of the signature at `sig_idx`. Each generation with evidence
    /// keeps the first tree strictly after its evidence that matches its signature.
    pub fn record_tree(&mut self, sig_idx: u64, tree: Arc<dyn ProofSource>) {
        self.drain_done();
        for g in &mut self.pending {
            let Some(evidence_idx) = g.evidence_idx else {
                continue;
            };
            let matches_sig = g.signature.as_ref().is_none_or(|s| s.sig_idx == sig_idx);
            if g.tree.is_none() && sig_idx > evidence_idx && matches_sig {
                g.tree = Some((sig_idx, Arc::clone(&tree)));
            }
        }
        self.check_gates();
    }

    /// The ledger was rolled back to `idx`: drop points after it and, newest first, the
    /// generations whose evidence is gone (or never came), stopping at the first whose evidence
    /// survives — plus any older generation whose evidence is gone (evidence lands in the
    /// order serialisations finish, so an older generation's can be newer).
    pub fn rollback(&mut self, idx: u64) {
        self.drain_done();
        // Walk back from the newest generation dropping those without surviving evidence, up
        // to the first whose evidence survives. Older ones can still hold evidence `> idx`:
        // evidence is appended in the order serialisations finish, not in generation order,
        // so those are dropped too — their `evidence_idx` would name some other tx.
        let mut walking = true;
        let (mut kept, mut dropped) = (Vec::new(), Vec::new());
        for g in std::mem::take(&mut self.pending).into_iter().rev() {
            let survives = g.evidence_idx.is_some_and(|e| e <= idx);
            let dangling = g.evidence_idx.is_some_and(|e| e > idx);
            if (walking && !survives) || dangling {
                dropped.push(g);
            } else {
                kept.push(g);
            }
            walking &= !survives;
        }
        kept.reverse();
        self.pending = kept;
        let mut rearm = Vec::new();
        for g in dropped {
            if g.persist_scheduled {
                warn!(generation = g.number, idx = g.idx, "rollback below a committed signature; dropping a generation already persisting");
            }
            g.shared
                .dropped
                .store(true, std::sync::atomic::Ordering::Release);
            g.queue.cancel();
            let body = g.shared.body.lock().take();
            if let Some(body) = body.filter(|b| b.is_spilled()) {
                // Closing and unlinking its pending file is I/O: not on the consensus thread.
                self.tasks.spawn("discard spilled body", move || {
                    drop(body);
                    Ok(())
                });
            }
            Counters::bump(&self.counters.dropped);
            info!(parent: &g.span, rollback_to = idx, "generation dropped by rollback");
            let _ = self.events_tx.send(SnapshotEvent::Dropped {
                generation: g.number,
                idx: g.idx,
            });
            if g.idx <= idx {
                rearm.push(g.idx);
            }
        }
        // Survivors keep their evidence, but a signature after `idx` no longer exists.
        for g in &mut self.pending {
            if !g.persist_scheduled && g.signature.as_ref().is_some_and(|s| s.sig_idx > idx) {
                g.signature = None;
                g.tree = None;
            }
        }
        let fallback = self
            .pending
            .iter()
            .map(|g| g.idx)
            .chain([self.last_persisted_idx])
            .max()
            .unwrap_or(0);
        self.points.rollback(idx, fallback);
        // The state at a dropped generation's point survived: snapshot it again.
        for point in rearm {
            self.points.rearm(point);
        }
        self.commit_idx = self.commit_idx.min(idx);
    }

    /// Force a snapshot at the next `record_committable`, whatever the interval.
    pub fn trigger_snapshot(&mut self) {
        self.forced = true;
    }

    /// Notifications for the node: committed, failed, dropped and skipped generations. The
    /// receiver may be cloned; each event is delivered to one receiver.
    pub fn events(&self) -> Receiver<SnapshotEvent> {
        self.events_rx.clone()
    }

    /// The counters (scheduled, skipped, deferred, persisted, dropped, failed).
    pub fn counters(&self) -> SnapshotCounters {
        self.counters.snapshot()
    }

    /// Pending generations, oldest first (after accounting for finished ones).
    pub fn pending(&mut self) -> Vec<GenerationInfo> {
        self.drain_done();
        self.pending
            .iter()
            .map(|g| GenerationInfo {
                generation: g.number,
                idx: g.idx,
                serialised: g.shared.is_serialised(),
                evidence_idx: g.evidence_idx,
                sig_idx: g.signature.as_ref().map(|s| s.sig_idx),
                persist_scheduled: g.persist_scheduled,
            })
            .collect()
    }

    /// The commit index as the Snapshotter knows it.
    pub fn commit_idx(&self) -> u64 {
        self.commit_idx
    }

    /// The index the next `tx_interval` counts from.
    pub fn baseline(&self) -> u64 {
        self.points.baseline()
    }

    /// The store generations persist into.
    pub fn store(&self) -> &Arc<SnapshotStore> {
        &self.store
    }

    /// Remove generations whose queue finished (persisted or failed).
    fn drain_done(&mut self) {
        while let Ok((number, event)) = self.done_rx.try_recv() {
            if let SnapshotEvent::Committed(c) = &event {
                self.last_persisted_idx = self.last_persisted_idx.max(c.idx);
            }
            self.pending.retain(|g| g.number != number);
        }
    }

    /// Add the persist action to every generation whose gate now holds.
    fn check_gates(&mut self) {
        for g in &mut self.pending {
            let Some(sig_idx) = g.gate(self.commit_idx) else {
                continue;
            };
            let (Some(evidence_idx), Some(signature), Some((_, tree))) =
                (g.evidence_idx, g.signature.clone(), g.tree.clone())
            else {
                continue;
            };
            let job = PersistJob {
                generation: g.number,
                idx: g.idx,
                evidence_idx,
                signature,
                tree,
                shared: Arc::clone(&g.shared),
                store: Arc::clone(&self.store),
                span: g.span.clone(),
                events: self.events_tx.clone(),
                done: self.done_tx.clone(),
                counters: Arc::clone(&self.counters),
            };
            g.persist_scheduled = g.queue.add_action("persist", move || job.run());
            debug!(parent: &g.span, sig_idx, scheduled = g.persist_scheduled, "gate passed");
        }
    }

    /// Start generations for due points `<= commit_idx`, honouring max_pending and cooldown.
    fn schedule_due(&mut self) {
        let now = self.tasks.now();
        for point in self.points.due(self.commit_idx) {
            if point.idx == 0 {
                self.points.mark_done(0);
                continue;
            }
            if self.pending.len() >= self.config.max_pending {
                if point.forced {
                    // A forced snapshot is a user's request: wait for a slot, never drop it.
                    if self.points.mark_deferred(point.idx) {
                        Counters::bump(&self.counters.deferred);
                    }
                    continue;
                }
                warn!(
                    idx = point.idx,
                    max_pending = self.config.max_pending,
                    "snapshot skipped: too many pending generations"
                );
                self.points.mark_done(point.idx);
                Counters::bump(&self.counters.skipped);
                let _ = self
                    .events_tx
                    .send(SnapshotEvent::Skipped { idx: point.idx });
                continue;
            }
            let in_cooldown = match (self.config.cooldown, self.last_serialise_at) {
                (Some(cooldown), Some(last)) => now < last + cooldown,
                _ => false,
            };
            if in_cooldown && !point.forced {
                if self.points.mark_deferred(point.idx) {
                    debug!(idx = point.idx, "snapshot deferred by cooldown");
                    Counters::bump(&self.counters.deferred);
                }
                // Later points fall in the same cooldown.
                break;
            }
            self.points.mark_done(point.idx);
            self.last_serialise_at = Some(now);
            self.start_generation(point.idx);
        }
        self.points.prune(self.commit_idx);
    }

    fn start_generation(&mut self, idx: u64) {
        let number = self.next_generation;
        self.next_generation += 1;
        let span = tracing::info_span!(
            "generation",
            generation = number,
            idx,
            evidence_idx = tracing::field::Empty,
            sig_idx = tracing::field::Empty,
            bytes = tracing::field::Empty,
            digest = tracing::field::Empty,
        );
        let view = match self.state.capture(idx) {
            Ok(view) => view,
            Err(e) => {
                warn!(parent: &span, error = %e, "cannot capture state; generation failed");
                Counters::bump(&self.counters.failed);
                let _ = self.events_tx.send(SnapshotEvent::Failed {
                    generation: number,
                    idx,
                    error: e.to_string(),
                });
                return;
            }
        };
        let shared = Arc::new(GenShared::default());
        let queue = self.tasks.ordered(format!("snapshot-{number}@{idx}"));
        let (done, events, counters) = (
            self.done_tx.clone(),
            self.events_tx.clone(),
            Arc::clone(&self.counters),
        );
        queue.on_failure(move |failure| {
            Counters::bump(&counters.failed);
            let error = format!("{} action failed: {}", failure.action, failure.message);
            let event = SnapshotEvent::Failed {
                generation: number,
                idx,
                error,
            };
            let _ = done.send((number, event.clone()));
            let _ = events.send(event);
        });
        let job = SerialiseJob {
            generation: number,
            idx,
            view,
            compression: self.config.compression,
            spill: self
                .spill_budget
                .clone()
                .map(|budget| (Arc::clone(&self.store), budget)),
            shared: Arc::clone(&shared),
            sink: Arc::clone(&self.sink),
            span: span.clone(),
        };
        queue.add_action("serialise", move || job.run());
        Counters::bump(&self.counters.scheduled);
        info!(parent: &span, "generation scheduled");
        self.pending.push(Generation {
            number,
            idx,
            queue,
            shared,
            span,
            evidence_idx: None,
            digest: None,
            signature: None,
            tree: None,
            persist_scheduled: false,
        });
    }
}

/// Log-friendly digest prefix (re-exported for the facade's messages).
pub fn digest_prefix(digest: &Hash) -> String {
    hex_prefix(digest)
}
