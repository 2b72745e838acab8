//! The linearizability checker: client histories of a key-value store (put, get, cas), checked
//! key by key (a history is linearizable iff each key's is: P-compositionality), each key a
//! register searched à la Wing & Gong / Lowe (see `search.rs`), with a bound on the work so a
//! pathological history is reported "undecided" instead of hanging the run.
//!
//! Outcomes: an `Ok` op happened between its invoke and its completion with the result it
//! reports; a `Failed` op definitely did not happen (e.g. 409 not-leader) and is dropped; an
//! `Unknown` op (timeout, 503, connection error) may or may not have happened, at any time
//! after its invoke: its completion is +infinity and its result is not known.

mod register;
mod search;

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

pub(crate) use search::Verdict;

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Call {
    /// Set the key to `value`.
    Put { value: String },
    /// Read the key.
    Get,
    /// Set the key to `to` iff it is `from` (`None`: absent).
    Cas { from: Option<String>, to: String },
}

/// What the client learnt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// A put was acknowledged.
    Written,
    /// A get returned `value`.
    Read { value: Option<String> },
    /// A cas answered: `ok` iff the value before (`prev`) equalled `from`.
    Swapped { ok: bool, prev: Option<String> },
    /// Definitely not applied.
    Failed,
    /// May or may not have been applied.
    Unknown,
}

/// One operation of a history. Times are nanoseconds on one clock shared by every client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Op {
    /// The client that issued it (for printing).
    pub(crate) client: u32,
    pub(crate) key: String,
    pub(crate) call: Call,
    pub(crate) outcome: Outcome,
    pub(crate) invoke_ns: u64,
    /// `None` for an `Unknown` outcome (+infinity).
    pub(crate) complete_ns: Option<u64>,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self
            .complete_ns
            .map_or_else(|| "inf".to_string(), |c| format!("{:.3}", c as f64 / 1e9));
        let call = match &self.call {
            Call::Put { value } => format!("put({value:?})"),
            Call::Get => "get()".to_string(),
            Call::Cas { from, to } => format!("cas({from:?} -> {to:?})"),
        };
        let outcome = match &self.outcome {
            Outcome::Written => "ok".to_string(),
            Outcome::Read { value } => format!("= {value:?}"),
            Outcome::Swapped { ok, prev } => format!("= ok:{ok} prev:{prev:?}"),
            Outcome::Failed => "failed".to_string(),
            Outcome::Unknown => "unknown".to_string(),
        };
        write!(
            f,
            "[{:.3}, {end}] client {} {} {call} {outcome}",
            self.invoke_ns as f64 / 1e9,
            self.client,
            self.key
        )
    }
}

/// The checker's answer for one key.
#[derive(Clone, Debug)]
pub(crate) struct KeyReport {
    pub(crate) key: String,
    /// Ops that took part in the search (failed ops and unknown reads are dropped).
    pub(crate) ops_checked: usize,
    pub(crate) verdict: Verdict,
    /// On a violation: the ops around the point where no linearization could go on.
    pub(crate) witness: Vec<Op>,
}

/// The answer for a whole history.
#[derive(Clone, Debug, Default)]
pub(crate) struct Report {
    pub(crate) keys: Vec<KeyReport>,
}

impl Report {
    pub(crate) fn violations(&self) -> impl Iterator<Item = &KeyReport> {
        self.keys.iter().filter(|k| k.verdict == Verdict::Violation)
    }

    pub(crate) fn undecided(&self) -> impl Iterator<Item = &KeyReport> {
        self.keys.iter().filter(|k| k.verdict == Verdict::Undecided)
    }
}

/// Checks `history` key by key; each key's search explores at most `max_states` states.
pub(crate) fn check(history: &[Op], max_states: usize) -> Report {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let keys = by_key
        .into_iter()
        .map(|(key, ops)| check_key(key, &ops, max_states))
        .collect();
    Report { keys }
}

fn check_key(key: &str, ops: &[&Op], max_states: usize) -> KeyReport {
    let kept = relevant(ops);
    let (verdict, stuck) = search::linearizable(&kept, max_states);
    let witness = match (verdict, stuck) {
        (Verdict::Violation, Some(at)) => window(&kept, at),
        (Verdict::Violation, None) => kept.iter().map(|o| (*o).clone()).collect(),
        _ => Vec::new(),
    };
    KeyReport {
        key: key.to_string(),
        ops_checked: kept.len(),
        verdict,
        witness,
    }
}

/// The ops that constrain the search. A failed op never happened; an unknown read observed
/// nothing. An unknown write whose value no completed op ever observed is dropped too: values
/// are unique, so if it took effect it was overwritten unseen, and leaving it out explains
/// the same history (it only adds branching).
fn relevant<'a>(ops: &[&'a Op]) -> Vec<&'a Op> {
    let mut observed: HashSet<&str> = HashSet::new();
    for op in ops {
        match &op.outcome {
            Outcome::Read { value: Some(v) } => {
                observed.insert(v);
            }
            Outcome::Swapped { prev: Some(v), .. } => {
                observed.insert(v);
            }
            _ => {}
        }
    }
    ops.iter()
        .copied()
        .filter(|op| match (&op.outcome, &op.call) {
            (Outcome::Failed, _) => false,
            (Outcome::Unknown, Call::Get) => false,
            (Outcome::Unknown, Call::Put { value }) => observed.contains(value.as_str()),
            (Outcome::Unknown, Call::Cas { to, .. }) => observed.contains(to.as_str()),
            _ => true,
        })
        .collect()
}

/// The ops of `ops` around op `at` (the first op no linearization could place): those
/// overlapping it in time, and the few completed just before it, so the printed witness is
/// small enough to read.
fn window(ops: &[&Op], at: usize) -> Vec<Op> {
    const BEFORE: usize = 6;
    let Some(stuck) = ops.get(at) else {
        return Vec::new();
    };
    let stuck_end = stuck.complete_ns.unwrap_or(u64::MAX);
    let overlapping =
        |o: &&&Op| o.invoke_ns <= stuck_end && o.complete_ns.is_none_or(|c| c >= stuck.invoke_ns);
    let mut before: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|o| o.complete_ns.is_some_and(|c| c < stuck.invoke_ns))
        .collect();
    before.sort_by_key(|o| o.complete_ns);
    let skip = before.len().saturating_sub(BEFORE);
    let mut out: Vec<Op> = before[skip..].iter().map(|o| (*o).clone()).collect();
    out.extend(ops.iter().filter(overlapping).map(|o| (*o).clone()));
    out.sort_by_key(|o| o.invoke_ns);
    out
}

#[cfg(test)]
mod tests;
