//! The operations a simulation is made of: everything a node, its executor, its disk and its
//! operator can do, in one enum, so a run is just a seed plus a list of these.
//!
//! Every field is a small integer that the harness maps onto the current state (e.g. "commit
//! the k-th uncommitted signature, modulo how many there are"), so *any* list of operations is
//! meaningful: that is what lets proptest shrink a failing list and a fuzzer mutate one without
//! producing mostly no-ops.

use snapseal_persist::fs::{FaultKind, Op as Call};

use super::rng::SplitMix64;

/// The seam calls the store and the writer make, which [`Op::Fault`] targets (persist's own
/// [`Call`] names them; opening the directory, writeback hints and the lock are left out:
/// failing those only stops a restart, which [`Op::Crash`] already covers).
pub const FAULT_CALLS: [Call; 12] = [
    Call::CreateNew,
    Call::Write,
    Call::WriteAt,
    Call::Sync,
    Call::Close,
    Call::Rename,
    Call::HardLink,
    Call::Unlink,
    Call::SyncDir,
    Call::List,
    Call::OpenRead,
    Call::Any,
];

/// How an injected fault fails its call: every [`FaultKind`], in the order fuzz inputs
/// decode them.
pub const FAULT_ERRORS: [FaultKind; 5] = [
    FaultKind::Eio,
    FaultKind::Enospc,
    FaultKind::Eintr,
    FaultKind::Eexist,
    FaultKind::ShortWrite,
];

/// Structured fuzz input for a field drawn from a fixed list: one of `items`, decoded as
/// `arbitrary`'s derive decodes a field-less enum (a `u32`, multiplied by the count, shifted
/// down 32), so the committed corpus keeps meaning the same steps.
#[cfg(feature = "fuzzing")]
fn pick<T: Copy, const N: usize>(
    u: &mut arbitrary::Unstructured<'_>,
    items: &[T; N],
) -> arbitrary::Result<T> {
    let x = <u32 as arbitrary::Arbitrary>::arbitrary(u)?;
    let i = (u64::from(x) * N as u64) >> 32;
    // `i < N` by construction; an empty list has nothing to give.
    usize::try_from(i)
        .ok()
        .and_then(|i| items.get(i).copied())
        .ok_or(arbitrary::Error::EmptyChoose)
}

#[cfg(feature = "fuzzing")]
fn arbitrary_call(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Call> {
    pick(u, &FAULT_CALLS)
}

#[cfg(feature = "fuzzing")]
fn arbitrary_error(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<FaultKind> {
    pick(u, &FAULT_ERRORS)
}

/// One step of a simulation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum Op {
    /// Append `1 + n % 8` key-value writes to the ledger.
    Append(u8),
    /// Append a signature tx and tell the Snapshotter (`record_committable`,
    /// `record_signature`, `record_tree`).
    Sign,
    /// Commit up to the `k % len`-th newest uncommitted signature (`Commit(0)`: the newest);
    /// with none uncommitted, repeat the current commit index.
    Commit(u8),
    /// Append an evidence tx for every finished serialisation and record it.
    Evidence,
    /// Roll the uncommitted tail back to `commit + k % (last - commit + 1)`.
    Rollback(u8),
    /// `trigger_snapshot()`.
    Trigger,
    /// Run one ready job of the manual executor.
    RunOne,
    /// Run jobs until none is ready (each one checked on its own).
    RunAll,
    /// Move the engine clock by `n` seconds.
    Tick(u8),
    /// Fail the `1 + nth % 4`-th next matching seam call.
    Fault {
        /// Which call (one of [`FAULT_CALLS`]).
        #[cfg_attr(feature = "fuzzing", arbitrary(with = arbitrary_call))]
        call: Call,
        /// How it fails.
        #[cfg_attr(feature = "fuzzing", arbitrary(with = arbitrary_error))]
        error: FaultKind,
        /// Which matching call (from now) fails.
        nth: u8,
    },
    /// Remove every injected fault.
    ClearFaults,
    /// Power loss now, then restart and recover.
    Crash,
    /// The process dies after `n % 32` more seam calls: run until idle (every call past that
    /// point fails), then power loss, restart and recover.
    CrashDuring(u8),
    /// Flip one bit (`bit`, modulo the file's size) of the `which`-th intact committed file on the
    /// medium, like bit rot.
    Corrupt {
        /// Which committed file (modulo how many there are).
        which: u8,
        /// Which bit.
        bit: u16,
    },
    /// Take a hold on the `k`-th committed file.
    Hold(u8),
    /// Release the `k`-th hold taken.
    Release(u8),
    /// Ask the store for `latest()` (a reader), checking what it returns.
    Latest,
    /// Run a retention pass now.
    Retention,
}

impl Op {
    /// A random operation, weighted so that runs make progress: mostly ledger traffic and
    /// executor steps, with faults, crashes and the operator's actions sprinkled in.
    pub fn random(rng: &mut SplitMix64) -> Op {
        let b = |rng: &mut SplitMix64| rng.next_u64() as u8;
        match rng.below(1000) {
            0..=199 => Op::Append(b(rng)),
            200..=339 => Op::Sign,
            340..=479 => Op::Commit(b(rng)),
            480..=599 => Op::Evidence,
            600..=679 => Op::RunOne,
            680..=779 => Op::RunAll,
            780..=809 => Op::Rollback(b(rng)),
            810..=829 => Op::Trigger,
            830..=849 => Op::Tick(b(rng) % 8),
            850..=879 => Op::Fault {
                call: FAULT_CALLS[rng.below(FAULT_CALLS.len() as u64) as usize],
                error: FAULT_ERRORS[rng.below(FAULT_ERRORS.len() as u64) as usize],
                nth: b(rng),
            },
            880..=889 => Op::ClearFaults,
            890..=894 => Op::Crash,
            895..=909 => Op::CrashDuring(b(rng)),
            910..=919 => Op::Corrupt {
                which: b(rng),
                bit: rng.next_u64() as u16,
            },
            920..=939 => Op::Hold(b(rng)),
            940..=954 => Op::Release(b(rng)),
            955..=969 => Op::Latest,
            970..=979 => Op::Retention,
            _ => Op::RunOne,
        }
    }

    /// `len` random operations from `seed` (the list a seed stands for). Half the
    /// [`Op::CrashDuring`]s come right after the calls that let a persist action become
    /// ready, so the power often fails in the middle of a write sequence.
    pub fn random_list(seed: u64, len: usize) -> Vec<Op> {
        let mut rng = SplitMix64::new(seed ^ 0x0905_1157);
        let mut ops = Vec::with_capacity(len);
        while ops.len() < len {
            let op = Op::random(&mut rng);
            if matches!(op, Op::CrashDuring(_)) && rng.below(2) == 0 {
                ops.extend([Op::RunAll, Op::Evidence, Op::Sign, Op::Commit(0)]);
            }
            ops.push(op);
        }
        ops.truncate(len);
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_stands_for_the_same_list() {
        assert_eq!(Op::random_list(9, 300), Op::random_list(9, 300));
        assert_ne!(Op::random_list(9, 300), Op::random_list(10, 300));
    }

    #[test]
    fn random_lists_contain_every_kind_of_step() {
        let ops = Op::random_list(1, 5000);
        let has = |f: fn(&Op) -> bool| ops.iter().any(f);
        assert!(has(|o| matches!(o, Op::CrashDuring(_))));
        assert!(has(|o| matches!(o, Op::Fault { .. })));
        assert!(has(|o| matches!(o, Op::Corrupt { .. })));
        assert!(has(|o| matches!(o, Op::Retention)));
        assert!(has(|o| matches!(o, Op::Rollback(_))));
    }
}
