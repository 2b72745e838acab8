//! Fault injection: which seam call fails, when, and how.

use std::io;

use nix::errno::Errno;

use super::rng::SimRng;

/// A seam call, as counted, traced and targeted by faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `FileSystem::open_dir`.
    OpenDir,
    /// `DirHandle::create_new`.
    CreateNew,
    /// `WritableFile::write`.
    Write,
    /// `WritableFile::write_at` (pwrite).
    WriteAt,
    /// `WritableFile::start_writeback` (sync_file_range: a hint, durable nothing).
    Writeback,
    /// `WritableFile::sync` (fsync of a file).
    Sync,
    /// `WritableFile::close`.
    Close,
    /// `DirHandle::rename_noreplace`.
    Rename,
    /// `DirHandle::hard_link`.
    HardLink,
    /// `DirHandle::unlink`.
    Unlink,
    /// `DirHandle::sync` (fsync of the directory).
    SyncDir,
    /// `DirHandle::list`.
    List,
    /// `DirHandle::open_read`.
    OpenRead,
    /// `DirHandle::lock_exclusive`.
    Lock,
    /// Only in a [`Fault`]: matches every call above.
    Any,
}

/// When a [`Fault`] fires, counting only the calls it matches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trigger {
    /// On the n-th matching call after injection (1-based), once; `Nth(0)` never fires.
    Nth(u64),
    /// On every matching call.
    Always,
    /// On each matching call with this probability, drawn from the seeded RNG.
    Probability(f64),
}

/// How an injected fault fails the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// `EIO`.
    Eio,
    /// `ENOSPC`.
    Enospc,
    /// `EEXIST`.
    Eexist,
    /// `EINTR`.
    Eintr,
    /// Only for `Write` and `WriteAt` (a fault with this kind never matches other calls): the
    /// write succeeds
    /// but writes a seeded-random strict prefix of the buffer (at least one byte, so a caller's
    /// loop always progresses; a one-byte buffer is written whole) and returns its length.
    ShortWrite,
}

impl FaultKind {
    /// The errno this fault fails with (`None` for `ShortWrite`, which does not fail).
    pub fn errno(self) -> Option<i32> {
        let e = match self {
            FaultKind::Eio => Errno::EIO,
            FaultKind::Enospc => Errno::ENOSPC,
            FaultKind::Eexist => Errno::EEXIST,
            FaultKind::Eintr => Errno::EINTR,
            FaultKind::ShortWrite => return None,
        };
        Some(e as i32)
    }

    /// The error a call fails with; `EIO` for `ShortWrite`, which callers never ask for.
    pub(super) fn error(self) -> io::Error {
        io::Error::from_raw_os_error(self.errno().unwrap_or(Errno::EIO as i32))
    }
}

/// One injected fault: calls of `op` fail as `kind` whenever `trigger` says so.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fault {
    /// Which calls it watches.
    pub op: Op,
    /// When it fires.
    pub trigger: Trigger,
    /// What the failing call does.
    pub kind: FaultKind,
}

impl Fault {
    /// Fails the `n`-th call of `op` (1-based, counted from injection).
    pub fn nth(op: Op, n: u64, kind: FaultKind) -> Self {
        Self {
            op,
            trigger: Trigger::Nth(n),
            kind,
        }
    }

    /// Fails every call of `op`.
    pub fn always(op: Op, kind: FaultKind) -> Self {
        Self {
            op,
            trigger: Trigger::Always,
            kind,
        }
    }

    /// Fails each call of `op` with probability `p`.
    pub fn probability(op: Op, p: f64, kind: FaultKind) -> Self {
        Self {
            op,
            trigger: Trigger::Probability(p),
            kind,
        }
    }

    fn matches(&self, op: Op) -> bool {
        let op_ok = self.op == Op::Any || self.op == op;
        op_ok && (self.kind != FaultKind::ShortWrite || matches!(op, Op::Write | Op::WriteAt))
    }
}

/// A fault plus how many matching calls it has seen.
#[derive(Debug)]
struct Armed {
    fault: Fault,
    seen: u64,
}

/// The injected faults, in injection order.
#[derive(Debug, Default)]
pub(super) struct FaultTable {
    armed: Vec<Armed>,
}

impl FaultTable {
    pub(super) fn inject(&mut self, fault: Fault) {
        self.armed.push(Armed { fault, seen: 0 });
    }

    pub(super) fn clear(&mut self) {
        self.armed.clear();
    }

    /// Counts one call of `op` against every matching fault and returns the first (in
    /// injection order) that fires. Every matching fault sees the call, even after one fired,
    /// so each `Nth` counts the calls of its op exactly.
    pub(super) fn check(&mut self, op: Op, rng: &mut SimRng) -> Option<FaultKind> {
        let mut fired = None;
        for armed in self.armed.iter_mut().filter(|a| a.fault.matches(op)) {
            armed.seen += 1;
            let fires = match armed.fault.trigger {
                Trigger::Nth(n) => armed.seen == n,
                Trigger::Always => true,
                Trigger::Probability(p) => rng.chance(p),
            };
            if fires && fired.is_none() {
                fired = Some(armed.fault.kind);
            }
        }
        // An Nth fault that has had its turn is spent.
        self.armed
            .retain(|a| !matches!(a.fault.trigger, Trigger::Nth(n) if a.seen >= n));
        fired
    }
}
