//! The search for a linearization of one register's history: Wing & Gong's algorithm with
//! Lowe's memoisation, as Porcupine does it. Calls and returns sit in one doubly linked list
//! in time order; the search linearizes a call (removing it and its return from the list) when
//! the model accepts it, and backtracks when it reaches a return whose call it has not yet
//! linearized (that op had to take effect before it returned). A (set of linearized ops,
//! value) state is visited once: the set is kept as a 128-bit Zobrist hash (a collision could
//! only prune a branch, i.e. report a violation, never hide one: and at 2^-128 it will not).
//!
//! An unknown op returns at +infinity: after every completed op, so placing it "never" is
//! placing it last, where nothing observes it. The search therefore linearizes every op.

use std::collections::HashSet;

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;

use super::register::{Interner, Step, Value};
use super::Op;

/// What the search found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Linearizable,
    Violation,
    /// The work bound ran out first.
    Undecided,
}

const NIL: usize = usize::MAX;

/// Whether `ops` (one key's, failed ops removed) linearize; on a violation, the index in
/// `ops` of the op the deepest partial linearization could not place before its return.
pub(super) fn linearizable(ops: &[&Op], max_states: usize) -> (Verdict, Option<usize>) {
    let n = ops.len();
    if n == 0 {
        return (Verdict::Linearizable, None);
    }
    let mut interner = Interner::default();
    let steps: Vec<Step> = ops.iter().map(|op| interner.step(op)).collect();

    // Events 2i (call of op i) and 2i+1 (its return); equal times put calls first (concurrent).
    let mut order: Vec<usize> = (0..2 * n).collect();
    let time = |e: usize| -> (u64, u8) {
        let op = ops[e / 2];
        if e.is_multiple_of(2) {
            (op.invoke_ns, 0)
        } else {
            (op.complete_ns.unwrap_or(u64::MAX), 1)
        }
    };
    order.sort_by_key(|&e| time(e));
    let head = 2 * n;
    let mut next = vec![NIL; 2 * n + 1];
    let mut prev = vec![NIL; 2 * n + 1];
    let mut last = head;
    for &e in &order {
        next[last] = e;
        prev[e] = last;
        last = e;
    }

    let mut rng = SplitMix64::seed_from_u64(0x5eed_c4ec);
    let zobrist: Vec<u128> = (0..n)
        .map(|_| (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()))
        .collect();

    let mut seen: HashSet<(u128, Value)> = HashSet::new();
    let mut stack: Vec<(usize, Value)> = Vec::new();
    let mut hash: u128 = 0;
    let mut value: Value = None;
    let mut entry = next[head];
    let mut deepest = (0usize, None);
    let max_steps = max_states.saturating_mul(64);
    let mut steps_taken = 0usize;
    loop {
        if next[head] == NIL {
            return (Verdict::Linearizable, None);
        }
        steps_taken += 1;
        if steps_taken > max_steps || seen.len() > max_states {
            return (Verdict::Undecided, None);
        }
        if entry == NIL {
            // Cannot happen (the list ends with a return), but never index with it.
            return (Verdict::Undecided, None);
        }
        let op = entry / 2;
        if entry.is_multiple_of(2) {
            if let Some(after) = steps[op].apply(value) {
                let h = hash ^ zobrist[op];
                if seen.insert((h, after)) {
                    stack.push((entry, value));
                    hash = h;
                    value = after;
                    lift(&mut next, &mut prev, entry);
                    entry = next[head];
                    continue;
                }
            }
            entry = next[entry];
        } else {
            if stack.len() >= deepest.0 {
                deepest = (stack.len(), Some(op));
            }
            let Some((call, before)) = stack.pop() else {
                return (Verdict::Violation, deepest.1);
            };
            hash ^= zobrist[call / 2];
            value = before;
            unlift(&mut next, &mut prev, call);
            entry = next[call];
        }
    }
}

/// Takes call `e` and its return `e + 1` out of the list.
fn lift(next: &mut [usize], prev: &mut [usize], e: usize) {
    for x in [e, e + 1] {
        let (p, n) = (prev[x], next[x]);
        next[p] = n;
        if n != NIL {
            prev[n] = p;
        }
    }
}

/// Puts call `e` and its return back where they were (the reverse of [`lift`]).
fn unlift(next: &mut [usize], prev: &mut [usize], e: usize) {
    for x in [e + 1, e] {
        let (p, n) = (prev[x], next[x]);
        next[p] = x;
        if n != NIL {
            prev[n] = x;
        }
    }
}
