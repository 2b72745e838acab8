//! The chunk sweep records: how remote gc deletes chunk objects while the node's shipper may
//! be relying on them (docs/SHIPPING.md, "Chunks and remote gc").
//!
//! A chunk object is named by its hash and written only by its node's shipper, so a re-put
//! writes the same bytes and needs no conditional write. What needs care is the shipper
//! *skipping* a chunk a listing showed while gc deletes it. The protocol:
//!
//! - gc, when a first look finds chunk objects to delete, writes `<node>/gc/chunks_<n>`
//!   (`n` one above every record listed); then lists the node afresh, reads the chunk list of
//!   every snapshot object still there (held and retained ones, and any the shipper uploaded
//!   but has not indexed yet), deletes the chunk objects none names — stopping once
//!   [`SWEEP_BUDGET`] has passed since its record — and writes `<node>/gc/chunks_<n>.done`.
//! - the shipper, for each chunked snapshot, lists `<node>/gc/` and only then `<node>/chunks/`
//!   ([`Remote::node_part`](crate::remote::Remote)); a sweep running (a record without its
//!   `.done`, younger than [`SWEEP_STALE`]) makes it wait (a transient error, retried). It
//!   uploads the chunks not listed, then the snapshot object; then lists `<node>/gc/` again:
//!   only if the records are what they were ([`SweepState`] equal) does it index the
//!   snapshot; otherwise it starts over from the listing.
//!
//! Why that suffices: let gc delete a chunk the shipper saw listed. The sweep's record was
//! written before its deletions. Written before the shipper's first look at `gc/`: the
//! sweep was either running then (the shipper waited) or done, its deletions over before
//! the chunk listing, which then could not show the chunk. Written after the first look and
//! before the second: the second look differs, and the shipper starts over. Written after
//! the second look: the sweep's listing came after it, so after the snapshot object was
//! uploaded; the sweep read that object's list and kept the chunk.

use std::time::Duration;

use crate::layout::NodeObjects;

/// A sweep record without its end that is older than this is taken as a sweep that died;
/// a sweep deletes nothing once [`SWEEP_BUDGET`] has passed since its record, so the margin
/// between them absorbs clocks disagreeing by up to 40 minutes.
pub(crate) const SWEEP_STALE: Duration = Duration::from_secs(3600);

/// How long a chunk sweep may delete for, from its record.
pub(crate) const SWEEP_BUDGET: Duration = Duration::from_secs(20 * 60);

/// What the chunk sweep records of a node say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SweepState {
    /// No sweep running; the newest record's number, if any.
    Quiet(Option<u64>),
    /// Sweep `n` has not ended.
    Running(u64),
}

/// The state the records of `objects` (a listing of `<node>/gc/`) show at `now_unix`.
pub(crate) fn sweep_state(objects: &NodeObjects, now_unix: i64) -> SweepState {
    let stale = SWEEP_STALE.as_secs() as i64;
    let running = objects
        .chunk_sweeps
        .iter()
        .rev()
        .find(|(_, m)| !m.done && now_unix.saturating_sub(m.began_unix) < stale);
    match running {
        Some((n, _)) => SweepState::Running(*n),
        None => SweepState::Quiet(objects.chunk_sweeps.keys().next_back().copied()),
    }
}

/// Seconds since the Unix epoch now.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::SweepMark;

    fn with(marks: &[(u64, bool, i64)]) -> NodeObjects {
        let mut o = NodeObjects::default();
        for (n, done, began_unix) in marks {
            o.chunk_sweeps.insert(
                *n,
                SweepMark {
                    done: *done,
                    began_unix: *began_unix,
                },
            );
        }
        o
    }

    #[test]
    fn a_sweep_without_its_end_is_running_until_it_is_stale() {
        let now = 100_000;
        assert_eq!(sweep_state(&with(&[]), now), SweepState::Quiet(None));
        assert_eq!(
            sweep_state(&with(&[(3, true, now - 10)]), now),
            SweepState::Quiet(Some(3))
        );
        assert_eq!(
            sweep_state(&with(&[(3, true, now - 10), (4, false, now - 10)]), now),
            SweepState::Running(4)
        );
        assert_eq!(
            sweep_state(&with(&[(4, false, now - 3601)]), now),
            SweepState::Quiet(Some(4))
        );
    }
}
