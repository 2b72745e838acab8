//! What the harness reports when a run breaks a promise of the SPEC.

use std::fmt;

/// Which promise was broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Invariant {
    /// After a rollback, a pending generation still refers to evidence or a signature the
    /// rollback removed from the ledger (SPEC §3 call 5: such generations are dropped).
    RollbackSurvivor,
    /// A persist action was scheduled although the gate did not hold (SPEC §3): no evidence
    /// with the body's digest, no signature after it, or the signature not committed.
    GateNotHeld,
    /// A generation reported committed was never seen passing its gate, or with other indices.
    PersistedWithoutGate,
    /// A generation (or a file name) was reported committed twice.
    PersistedTwice,
    /// A generation dropped by a rollback was later reported committed.
    DroppedPersisted,
    /// A `.committed` file does not verify (header, lengths, body digest, receipt).
    InvalidCommittedFile,
    /// A `.committed` file is not backed by the ledger: its evidence tx is missing or carries
    /// another digest, or its signature is not committed.
    UnprovenCommittedFile,
    /// A committed snapshot's body is not the state at its index.
    WrongContent,
    /// A snapshot reported committed is gone (not by retention, not by quarantine).
    AckedLost,
    /// `latest()` returned something older than the newest snapshot reported committed, or
    /// nothing, or something that does not verify.
    LatestTooOld,
    /// A corrupt newer file was not quarantined by `latest()`.
    NotQuarantined,
    /// An uncommitted or pending file survived recovery; or, without any fault, an uncommitted
    /// file exists between jobs, or a pending file belongs to no pending generation.
    StaleFile,
    /// Retention kept more than `keep_last` unheld snapshots after a pass.
    RetentionLax,
    /// A snapshot among the newest `keep_last` (or under a hold) was deleted.
    RetentionTooEager,
    /// A retention pass (explicit, or the one after a persist) removed the newest snapshot
    /// that verified before it.
    NewestVerifiedRemoved,
    /// With every fault cleared, pending generations never finished.
    Stuck,
    /// A call that cannot fail without an injected fault failed.
    UnexpectedError,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invariant::RollbackSurvivor => "rollback-survivor",
            Invariant::GateNotHeld => "gate-not-held",
            Invariant::PersistedWithoutGate => "persisted-without-gate",
            Invariant::PersistedTwice => "persisted-twice",
            Invariant::DroppedPersisted => "dropped-persisted",
            Invariant::InvalidCommittedFile => "invalid-committed-file",
            Invariant::UnprovenCommittedFile => "unproven-committed-file",
            Invariant::WrongContent => "wrong-content",
            Invariant::AckedLost => "acked-lost",
            Invariant::LatestTooOld => "latest-too-old",
            Invariant::NotQuarantined => "not-quarantined",
            Invariant::StaleFile => "stale-file",
            Invariant::RetentionLax => "retention-lax",
            Invariant::RetentionTooEager => "retention-too-eager",
            Invariant::NewestVerifiedRemoved => "newest-verified-removed",
            Invariant::Stuck => "stuck",
            Invariant::UnexpectedError => "unexpected-error",
        })
    }
}

/// A broken invariant, with where it broke and how to replay it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invariant {invariant} violated at step {step} ({op}): {detail}\n  reproduce: {repro}")]
pub struct Violation {
    /// Which promise.
    pub invariant: Invariant,
    /// The simulation's seed.
    pub seed: u64,
    /// 1-based index of the operation during which it broke (0: at start-up; one past the
    /// list: while settling at the end).
    pub step: usize,
    /// The operation, as `Debug` text.
    pub op: String,
    /// What exactly was seen.
    pub detail: String,
    /// A one-line command that replays the run.
    pub repro: String,
}

/// Invariants broken by bugs that are reported but not fixed yet. Sweeps and the event-order
/// fuzz entry count these without failing, so they keep exploring everything else; each must
/// have an `#[ignore]`d regression test in `tests/simulation/harness_regressions.rs` that fails
/// until the fix. Remove an entry together with its fix. (Empty: the one found so far,
/// [`Invariant::RollbackSurvivor`], is fixed.)
pub const KNOWN_BUGS: &[Invariant] = &[];
