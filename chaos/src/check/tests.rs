//! Known-good and known-bad histories.

use super::*;

const S: u64 = 1_000_000_000;

fn op(client: u32, call: Call, outcome: Outcome, invoke: u64, complete: Option<u64>) -> Op {
    Op {
        client,
        key: "k".into(),
        call,
        outcome,
        invoke_ns: invoke * S,
        complete_ns: complete.map(|c| c * S),
    }
}

fn put(c: u32, v: &str, t0: u64, t1: u64) -> Op {
    op(
        c,
        Call::Put { value: v.into() },
        Outcome::Written,
        t0,
        Some(t1),
    )
}

fn put_unknown(c: u32, v: &str, t0: u64) -> Op {
    op(c, Call::Put { value: v.into() }, Outcome::Unknown, t0, None)
}

fn put_failed(c: u32, v: &str, t0: u64, t1: u64) -> Op {
    op(
        c,
        Call::Put { value: v.into() },
        Outcome::Failed,
        t0,
        Some(t1),
    )
}

fn get(c: u32, v: Option<&str>, t0: u64, t1: u64) -> Op {
    let value = v.map(str::to_string);
    op(c, Call::Get, Outcome::Read { value }, t0, Some(t1))
}

fn cas(c: u32, from: Option<&str>, to: &str, ok: bool, prev: Option<&str>, t0: u64, t1: u64) -> Op {
    op(
        c,
        Call::Cas {
            from: from.map(str::to_string),
            to: to.into(),
        },
        Outcome::Swapped {
            ok,
            prev: prev.map(str::to_string),
        },
        t0,
        Some(t1),
    )
}

fn cas_unknown(c: u32, from: Option<&str>, to: &str, t0: u64) -> Op {
    let call = Call::Cas {
        from: from.map(str::to_string),
        to: to.into(),
    };
    op(c, call, Outcome::Unknown, t0, None)
}

fn verdict(history: &[Op]) -> Verdict {
    let report = check(history, 1_000_000);
    assert_eq!(report.keys.len(), 1);
    report.keys[0].verdict
}

#[test]
fn sequential_puts_and_reads_linearize() {
    let h = [
        get(1, None, 0, 1),
        put(1, "a", 2, 3),
        get(2, Some("a"), 4, 5),
        put(2, "b", 6, 7),
        get(1, Some("b"), 8, 9),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn a_stale_read_is_a_violation() {
    let h = [
        put(1, "a", 0, 1),
        put(1, "b", 2, 3),
        get(2, Some("a"), 4, 5),
    ];
    assert_eq!(verdict(&h), Verdict::Violation);
}

#[test]
fn a_lost_acknowledged_write_is_a_violation() {
    // "a" was acknowledged, then a later read finds the key absent.
    let h = [put(1, "a", 0, 1), get(2, None, 2, 3)];
    assert_eq!(verdict(&h), Verdict::Violation);
}

#[test]
fn two_cas_succeeding_from_the_same_value_is_a_violation() {
    let h = [
        put(1, "a", 0, 1),
        cas(1, Some("a"), "b", true, Some("a"), 2, 5),
        cas(2, Some("a"), "c", true, Some("a"), 2, 5),
    ];
    assert_eq!(verdict(&h), Verdict::Violation);
}

#[test]
fn a_read_of_a_value_never_written_is_a_violation() {
    let h = [put(1, "a", 0, 1), get(2, Some("zz"), 2, 3)];
    assert_eq!(verdict(&h), Verdict::Violation);
}

#[test]
fn a_cas_that_reports_a_wrong_previous_value_is_a_violation() {
    let h = [
        put(1, "a", 0, 1),
        cas(2, Some("x"), "b", false, Some("q"), 2, 3),
    ];
    assert_eq!(verdict(&h), Verdict::Violation);
}

#[test]
fn concurrent_ops_linearize_in_either_order() {
    // Two overlapping puts; readers afterwards may see either, but then agree.
    let first = [
        put(1, "a", 0, 4),
        put(2, "b", 1, 3),
        get(3, Some("a"), 5, 6),
        get(3, Some("a"), 7, 8),
    ];
    let second = [
        put(1, "a", 0, 4),
        put(2, "b", 1, 3),
        get(3, Some("b"), 5, 6),
        get(3, Some("b"), 7, 8),
    ];
    assert_eq!(verdict(&first), Verdict::Linearizable);
    assert_eq!(verdict(&second), Verdict::Linearizable);
    // ...but not flip-flop once both are done.
    let flip = [
        put(1, "a", 0, 4),
        put(2, "b", 1, 3),
        get(3, Some("b"), 5, 6),
        get(3, Some("a"), 7, 8),
    ];
    assert_eq!(verdict(&flip), Verdict::Violation);
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    let old = [
        put(1, "a", 0, 1),
        put(1, "b", 2, 6),
        get(2, Some("a"), 3, 4),
    ];
    let new = [
        put(1, "a", 0, 1),
        put(1, "b", 2, 6),
        get(2, Some("b"), 3, 4),
    ];
    assert_eq!(verdict(&old), Verdict::Linearizable);
    assert_eq!(verdict(&new), Verdict::Linearizable);
}

#[test]
fn an_unknown_write_that_later_shows_up_linearizes() {
    let h = [
        put(1, "a", 0, 1),
        put_unknown(2, "b", 2),
        get(1, Some("a"), 3, 4),
        get(1, Some("b"), 10, 11),
        get(3, Some("b"), 12, 13),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn an_unknown_write_that_never_shows_up_linearizes() {
    let h = [
        put(1, "a", 0, 1),
        put_unknown(2, "b", 2),
        get(1, Some("a"), 10, 11),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn an_unknown_write_cannot_take_effect_before_it_was_invoked() {
    let h = [
        put(1, "a", 0, 1),
        get(1, Some("b"), 2, 3),
        put_unknown(2, "b", 4),
    ];
    assert_eq!(verdict(&h), Verdict::Violation);
}

#[test]
fn an_unknown_write_cannot_show_up_then_vanish() {
    // Once "b" was seen and nothing else was written, "a" cannot come back.
    let h = [
        put(1, "a", 0, 1),
        put_unknown(2, "b", 2),
        get(1, Some("b"), 3, 4),
        get(1, Some("a"), 5, 6),
    ];
    assert_eq!(verdict(&h), Verdict::Violation);
}

#[test]
fn a_failed_write_that_shows_up_is_a_violation() {
    // A definite failure (409 not-leader) means the write did not happen.
    let h = [
        put(1, "a", 0, 1),
        put_failed(2, "b", 2, 3),
        get(1, Some("b"), 4, 5),
    ];
    assert_eq!(verdict(&h), Verdict::Violation);
}

#[test]
fn an_unknown_cas_that_shows_up_linearizes_only_where_it_could_swap() {
    let swapped = [
        put(1, "a", 0, 1),
        cas_unknown(2, Some("a"), "b", 2),
        get(1, Some("b"), 5, 6),
    ];
    assert_eq!(verdict(&swapped), Verdict::Linearizable);
    // The key was "c" from before the cas was invoked until after "b" was read: no swap.
    let impossible = [
        put(1, "c", 0, 1),
        cas_unknown(2, Some("a"), "b", 2),
        get(1, Some("b"), 5, 6),
    ];
    assert_eq!(verdict(&impossible), Verdict::Violation);
}

#[test]
fn a_violation_names_the_op_that_could_not_be_placed() {
    let h = [
        put(1, "a", 0, 1),
        put(1, "b", 2, 3),
        get(2, Some("a"), 4, 5),
    ];
    let report = check(&h, 1_000_000);
    let bad: Vec<_> = report.violations().collect();
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0].witness.iter().any(|o| o.call == Call::Get),
        "{:?}",
        bad[0].witness
    );
}

#[test]
fn keys_are_checked_independently() {
    let mut other = put(1, "x", 0, 1);
    other.key = "other".into();
    let mut stale = get(2, None, 2, 3);
    stale.key = "other".into();
    let h = [put(1, "a", 0, 1), get(2, Some("a"), 2, 3), other, stale];
    let report = check(&h, 1_000_000);
    let bad: Vec<&str> = report.violations().map(|k| k.key.as_str()).collect();
    assert_eq!(bad, ["other"]);
}

#[test]
fn a_search_over_its_work_bound_is_undecided_not_a_verdict() {
    // Many mutually concurrent unknown writes, each observed: the state space is large.
    let mut h = Vec::new();
    for i in 0..40u32 {
        h.push(put_unknown(i, &format!("v{i}"), 0));
    }
    for i in 0..40u32 {
        h.push(get(
            100,
            Some(&format!("v{}", (i * 7) % 40)),
            10 + 2 * u64::from(i),
            11 + 2 * u64::from(i),
        ));
    }
    let report = check(&h, 1_000);
    assert_eq!(report.keys[0].verdict, Verdict::Undecided);
}

#[test]
fn a_long_concurrent_history_is_checked_quickly() {
    // 4 clients, 2000 ops, each put overlapping the next client's, reads after each round.
    let mut h = Vec::new();
    let mut t = 0;
    for round in 0..500u64 {
        for c in 0..3u32 {
            h.push(put(c, &format!("r{round}c{c}"), t + u64::from(c), t + 5));
        }
        h.push(get(3, Some(&format!("r{round}c2")), t + 3, t + 9));
        t += 10;
    }
    let report = check(&h, 1_000_000);
    assert_eq!(report.keys[0].verdict, Verdict::Linearizable);
}
