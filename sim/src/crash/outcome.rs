//! What a crash run reports: what it did when it passed, what broke and how to replay it when
//! it did not.

use std::fmt;

/// What one passing [`CrashTest`](super::CrashTest) run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CrashReport {
    /// The seed.
    pub seed: u64,
    /// Steps run (not counting the final settle).
    pub steps: usize,
    /// Writes applied by the node, over all its incarnations.
    pub writes: u64,
    /// Executor jobs run (serialise, persist, retention).
    pub jobs: u64,
    /// Snapshots snapseal reported committed (`SnapshotEvent::Committed`).
    pub acked: u64,
    /// Generations that failed (under injected faults).
    pub failed: u64,
    /// Generations dropped by a rollback.
    pub dropped: u64,
    /// Rollbacks of the uncommitted tail.
    pub rollbacks: u64,
    /// Faults injected into the simulated filesystem.
    pub faults: u64,
    /// Power losses (the final one included).
    pub crashes: u64,
    /// Power losses that cut a job short (a write in flight).
    pub crashes_mid_job: u64,
    /// Recoveries that restored the node from a snapshot (the rest started from the empty
    /// state and replayed the whole log).
    pub restored_from_snapshot: u64,
    /// Retained committed snapshots read back whole after a recovery, every chunk verified
    /// (chunked runs only, [`CrashTest::with_chunked`](super::CrashTest::with_chunked)).
    pub retained_checked: u64,
    /// Bytes of new chunks the stores wrote into packs, over all incarnations (chunked runs
    /// only): with chunks shared across snapshots, less than the bodies' bytes.
    pub chunk_bytes_written: u64,
}

impl fmt::Display for CrashReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {} steps, {} writes, {} jobs; {} snapshots acknowledged, {} failed, {} \
             dropped by {} rollbacks; {} faults; {} power losses ({} mid-job), {} recovered from \
             a snapshot; {} retained snapshots read back whole, {} chunk bytes written",
            self.seed,
            self.steps,
            self.writes,
            self.jobs,
            self.acked,
            self.failed,
            self.dropped,
            self.rollbacks,
            self.faults,
            self.crashes,
            self.crashes_mid_job,
            self.restored_from_snapshot,
            self.retained_checked,
            self.chunk_bytes_written,
        )
    }
}

/// A broken promise: which, where in the run, and how to replay it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("seed {seed}, step {step} ({op}): {detail}\n  replay: CrashTest::<YourNode>::new({seed}).run({steps})")]
#[non_exhaustive]
pub struct CrashFailure {
    /// The seed of the run.
    pub seed: u64,
    /// The step that broke it (1-based; `steps + 1` is the final settle).
    pub step: usize,
    /// The steps the run was asked for (the replay runs as many).
    pub steps: usize,
    /// What the step did.
    pub op: String,
    /// What was wrong.
    pub detail: String,
}
