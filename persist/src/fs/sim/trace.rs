//! The record of every seam call a [`SimFs`](super::SimFs) saw.

use std::fmt;
use std::path::PathBuf;

use super::fault::{FaultKind, Op};

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// A write succeeded, writing this many bytes.
    Wrote(usize),
    /// It failed, with this raw OS error (`None` for a refused name: no system call made).
    Failed(Option<i32>),
}

/// One seam call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    /// 1-based position among all calls since the `SimFs` was created (matches `op_count`).
    pub seq: u64,
    /// Which call.
    pub op: Op,
    /// The directory it concerned (for `OpenDir`: the path opened).
    pub dir: PathBuf,
    /// The file name, if the call takes one (the source, for rename and link).
    pub name: Option<String>,
    /// The destination name of a rename or link.
    pub to: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The injected fault that fired on this call, if any.
    pub fault: Option<FaultKind>,
    /// True when the call failed only because of `halt_after`.
    pub halted: bool,
}

impl fmt::Display for OpRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {:?} {}", self.seq, self.op, self.dir.display())?;
        if let Some(name) = &self.name {
            write!(f, " {name}")?;
        }
        if let Some(to) = &self.to {
            write!(f, " -> {to}")?;
        }
        match self.outcome {
            Outcome::Ok => write!(f, ": ok")?,
            Outcome::Wrote(n) => write!(f, ": wrote {n}")?,
            Outcome::Failed(Some(errno)) => write!(f, ": errno {errno}")?,
            Outcome::Failed(None) => write!(f, ": invalid name")?,
        }
        if let Some(kind) = self.fault {
            write!(f, " (injected {kind:?})")?;
        }
        if self.halted {
            write!(f, " (halted)")?;
        }
        Ok(())
    }
}
