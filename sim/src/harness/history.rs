//! What the harness has seen happen, so each new observation can be checked against the past:
//! which generations passed their gate (and with what), which were reported committed, which
//! were dropped, and what the simulation did in total.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::AddAssign;

use snapseal_persist::Hash;
use snapseal_persist::SnapshotName;

/// A generation as one process incarnation numbered it.
pub(crate) type GenKey = (u64, u64);

/// What the gate looked like when a generation's persist action was scheduled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GateRecord {
    pub idx: u64,
    pub evidence_idx: u64,
    pub sig_idx: u64,
    pub digest: Hash,
}

/// One `Committed` event, as the node received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckRecord {
    /// Which process incarnation (0 before the first crash) reported it.
    pub incarnation: u64,
    /// Generation number within that incarnation.
    pub generation: u64,
    /// Snapshot index.
    pub idx: u64,
    /// Evidence index.
    pub evidence_idx: u64,
    /// Signature index.
    pub sig_idx: u64,
}

/// The bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct History {
    pub scheduled: HashMap<GenKey, GateRecord>,
    pub acked_gens: HashSet<GenKey>,
    pub dropped: HashSet<GenKey>,
    /// Committed names reported committed.
    pub acked_names: BTreeSet<SnapshotName>,
    /// Acked names that retention deleted legitimately (so their absence is no loss).
    pub retired: BTreeSet<SnapshotName>,
    /// Every `Committed` event, in arrival order.
    pub acks: Vec<AckRecord>,
}

/// Totals of what simulations did: the figures `docs/TESTING.md` quotes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HarnessStats {
    /// Simulations run (a `Harness` counts 1).
    pub runs: u64,
    /// Operations applied.
    pub steps: u64,
    /// Executor jobs run (serialise and persist actions).
    pub jobs: u64,
    /// Invariant checks passed (directory scans, gate checks, ack checks, latest checks).
    pub checks: u64,
    /// Snapshots reported committed.
    pub acked: u64,
    /// Generations reported failed (faults, halts).
    pub failed: u64,
    /// Generations dropped by rollbacks.
    pub dropped: u64,
    /// Due points skipped by `max_pending`.
    pub skipped: u64,
    /// Faults injected.
    pub faults: u64,
    /// Power losses (with restart and recovery).
    pub crashes: u64,
    /// Power losses that struck in the middle of a job's seam calls.
    pub crash_points: u64,
    /// Recoveries whose first attempt failed under injected faults (retried without).
    pub recoveries_retried: u64,
    /// Bits flipped in committed files.
    pub corruptions: u64,
    /// Files the store quarantined.
    pub quarantined: u64,
    /// Snapshots retention deleted.
    pub retention_deleted: u64,
    /// Stale uncommitted files recovery removed.
    pub stale_removed: u64,
    /// `latest()` results checked.
    pub latest_checks: u64,
    /// Pending (spilled body) files seen on the simulated disk: generations whose body was
    /// streamed to disk instead of held in memory.
    pub spilled: u64,
    /// Spilled generations reported committed (their pending file completed in place).
    pub spilled_acked: u64,
    /// Pending files a power loss left behind, all removed by the recovery that followed.
    pub pending_cleaned: u64,
    /// Committed snapshots retention removed although fewer than `keep_last` newer ones
    /// existed: trimmed by `max_bytes`.
    pub size_trimmed: u64,
}

impl AddAssign for HarnessStats {
    fn add_assign(&mut self, o: HarnessStats) {
        self.runs += o.runs;
        self.steps += o.steps;
        self.jobs += o.jobs;
        self.checks += o.checks;
        self.acked += o.acked;
        self.failed += o.failed;
        self.dropped += o.dropped;
        self.skipped += o.skipped;
        self.faults += o.faults;
        self.crashes += o.crashes;
        self.crash_points += o.crash_points;
        self.recoveries_retried += o.recoveries_retried;
        self.corruptions += o.corruptions;
        self.quarantined += o.quarantined;
        self.retention_deleted += o.retention_deleted;
        self.stale_removed += o.stale_removed;
        self.latest_checks += o.latest_checks;
        self.spilled += o.spilled;
        self.spilled_acked += o.spilled_acked;
        self.pending_cleaned += o.pending_cleaned;
        self.size_trimmed += o.size_trimmed;
    }
}
