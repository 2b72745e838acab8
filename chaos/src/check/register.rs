//! The model each key is checked against: one register, absent at first, with put, get and
//! compare-and-set. Values are interned (`u32`) so a search state is small and hashes fast.

use std::collections::HashMap;

use super::{Call, Op, Outcome};

/// The register's value: `None` while the key is absent.
pub(super) type Value = Option<u32>;

/// One op as the search sees it: the effect and the result to check, on interned values.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step {
    /// Sets the value (an acknowledged put, or an unknown one placed somewhere).
    Set(u32),
    /// Observes the value.
    Read(Value),
    /// A completed cas: observed `prev`, swapped iff `ok`.
    Cas {
        from: Value,
        to: u32,
        ok: bool,
        prev: Value,
    },
    /// A cas whose answer was lost: it swaps iff the value is `from` where it is placed.
    CasUnknown { from: Value, to: u32 },
    /// A record whose call and outcome do not match: it cannot be placed anywhere.
    Malformed,
}

impl Step {
    /// The value after this op applied to `value`, or `None` if its result contradicts it.
    pub(super) fn apply(self, value: Value) -> Option<Value> {
        match self {
            Step::Set(v) => Some(Some(v)),
            Step::Read(seen) => (seen == value).then_some(value),
            Step::Cas { from, to, ok, prev } => {
                if prev != value || ok != (value == from) {
                    None
                } else if ok {
                    Some(Some(to))
                } else {
                    Some(value)
                }
            }
            Step::CasUnknown { from, to } => Some(if value == from { Some(to) } else { value }),
            Step::Malformed => None,
        }
    }
}

/// Interns the strings of one key's history.
#[derive(Default)]
pub(super) struct Interner(HashMap<String, u32>);

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        let next = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        *self.0.entry(s.to_string()).or_insert(next)
    }

    fn value(&mut self, v: Option<&String>) -> Value {
        v.map(|s| self.id(s))
    }

    /// The step `op` is (its outcome is not `Failed`: those never reach the search).
    pub(super) fn step(&mut self, op: &Op) -> Step {
        match (&op.call, &op.outcome) {
            (Call::Put { value }, Outcome::Written | Outcome::Unknown) => Step::Set(self.id(value)),
            (Call::Get, Outcome::Read { value }) => Step::Read(self.value(value.as_ref())),
            (Call::Cas { from, to }, Outcome::Swapped { ok, prev }) => Step::Cas {
                from: self.value(from.as_ref()),
                to: self.id(to),
                ok: *ok,
                prev: self.value(prev.as_ref()),
            },
            (Call::Cas { from, to }, Outcome::Unknown) => Step::CasUnknown {
                from: self.value(from.as_ref()),
                to: self.id(to),
            },
            _ => Step::Malformed,
        }
    }
}
