//! Candidate snapshot points and the baseline they imply (SPEC §3, calls 1, 2 and 5).
//!
//! A point is pushed by `record_committable` when a snapshot is due there; `commit` turns due
//! points into generations. The newest point is the *baseline* the next interval counts from, so
//! rolling back a point also rolls the baseline back to the point before it.

use std::collections::VecDeque;

/// One candidate snapshot point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Point {
    pub idx: u64,
    /// Pushed because of `trigger_snapshot`: bypasses cooldown, waits for a slot instead of
    /// being skipped.
    pub forced: bool,
    /// A generation was created for it, or it was skipped.
    pub done: bool,
    /// Its deferral was already counted.
    pub deferred: bool,
}

/// The ordered candidate points; never empty (index 0 is the initial baseline, never
/// snapshotted).
#[derive(Debug)]
pub(crate) struct Points {
    points: VecDeque<Point>,
}

impl Points {
    /// Points whose baseline is `idx` (the snapshot the state started from; never taken again).
    pub(crate) fn starting_at(idx: u64) -> Self {
        let mut points = VecDeque::new();
        points.push_back(Point {
            idx,
            forced: false,
            done: true,
            deferred: false,
        });
        Points { points }
    }

    /// Indices of points still to be captured.
    pub(crate) fn undone(&self) -> impl Iterator<Item = u64> + '_ {
        self.points.iter().filter(|p| !p.done).map(|p| p.idx)
    }

    /// Index the next interval is measured from.
    pub(crate) fn baseline(&self) -> u64 {
        self.points.back().map_or(0, |p| p.idx)
    }

    /// Add a point; indices only move forward (a repeated or older index is ignored).
    pub(crate) fn push(&mut self, idx: u64, forced: bool) -> bool {
        if idx <= self.baseline() {
            return false;
        }
        self.points.push_back(Point {
            idx,
            forced,
            done: false,
            deferred: false,
        });
        true
    }

    /// Points not yet done with `idx <= commit`, oldest first.
    pub(crate) fn due(&self, commit: u64) -> Vec<Point> {
        self.points
            .iter()
            .filter(|p| !p.done && p.idx <= commit)
            .copied()
            .collect()
    }

    /// Mark the point at `idx` done (a generation was created, or it was skipped).
    pub(crate) fn mark_done(&mut self, idx: u64) {
        if let Some(p) = self.points.iter_mut().find(|p| p.idx == idx) {
            p.done = true;
        }
    }

    /// Mark the point at `idx` deferred; true the first time (so it is counted once).
    pub(crate) fn mark_deferred(&mut self, idx: u64) -> bool {
        match self.points.iter_mut().find(|p| p.idx == idx) {
            Some(p) if !p.deferred => {
                p.deferred = true;
                true
            }
            _ => false,
        }
    }

    /// Forget done points that can no longer matter. A rollback never goes below the commit
    /// index, so the newest point `<= commit` must stay: it is the baseline such a rollback
    /// falls back to (even when that point was skipped rather than snapshotted).
    pub(crate) fn prune(&mut self, commit: u64) {
        while self.points.len() > 1
            && self.points.front().is_some_and(|p| p.done)
            && self.points.get(1).is_some_and(|next| next.idx <= commit)
        {
            self.points.pop_front();
        }
    }

    /// Drop points `> idx`. The baseline falls back to the newest remaining point; if none
    /// remains, to `fallback` (the newest snapshot point that survives the rollback).
    pub(crate) fn rollback(&mut self, idx: u64, fallback: u64) {
        while self.points.back().is_some_and(|p| p.idx > idx) {
            self.points.pop_back();
        }
        if self.points.is_empty() {
            self.points.push_back(Point {
                idx: fallback.min(idx),
                forced: false,
                done: true,
                deferred: false,
            });
        }
    }

    /// A generation at `idx` was dropped although `idx` itself survived the rollback: take the
    /// point again so the state there is still snapshotted.
    pub(crate) fn rearm(&mut self, idx: u64) {
        if idx == 0 {
            return;
        }
        if let Some(p) = self.points.iter_mut().find(|p| p.idx == idx) {
            p.done = false;
            return;
        }
        let at = self
            .points
            .iter()
            .position(|p| p.idx > idx)
            .unwrap_or(self.points.len());
        self.points.insert(
            at,
            Point {
                idx,
                forced: false,
                done: false,
                deferred: false,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn indices(&self) -> Vec<(u64, bool)> {
        self.points.iter().map(|p| (p.idx, p.done)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_follows_the_newest_point_and_rolls_back_with_it() {
        let mut p = Points::starting_at(0);
        assert_eq!(p.baseline(), 0);
        assert!(p.push(10, false));
        assert!(!p.push(10, false), "same index twice");
        assert!(p.push(13, true));
        assert_eq!(p.baseline(), 13);
        p.rollback(12, 0);
        assert_eq!(p.baseline(), 10);
        p.rollback(5, 0);
        assert_eq!(p.baseline(), 0);
    }

    #[test]
    fn prune_keeps_pending_points_and_the_baseline() {
        let mut p = Points::starting_at(0);
        p.push(10, false);
        p.push(20, false);
        for point in p.due(10) {
            p.mark_done(point.idx);
        }
        p.prune(10);
        assert_eq!(
            p.indices(),
            vec![(10, true), (20, false)],
            "10 is the rollback floor"
        );
        for point in p.due(20) {
            p.mark_done(point.idx);
        }
        p.prune(20);
        assert_eq!(p.indices(), vec![(20, true)]);
        assert_eq!(p.baseline(), 20);
    }

    #[test]
    fn rearm_reinserts_in_order() {
        let mut p = Points::starting_at(0);
        p.push(30, false);
        p.rearm(20);
        assert_eq!(p.indices(), vec![(0, true), (20, false), (30, false)]);
        p.rearm(0);
        assert_eq!(p.indices().len(), 3);
    }
}
