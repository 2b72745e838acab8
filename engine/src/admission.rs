//! Which submissions a job board takes in each phase of its life.

/// The life of a job board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Taking all work.
    Open,
    /// `shutdown(Drain)` began: no new work, but the continuation of work already taken (a
    /// queue going back on the board for its next action, a timer that fired) is still run.
    Draining,
    /// Nothing is taken any more; whatever is refused is cancelled by the submitter.
    Closed,
}

/// Where a submission comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// New work from outside the engine: `spawn`, an `add_action` that wakes an idle queue,
    /// `resume`.
    New,
    /// Continuation of work the engine already holds: a queue with more actions, a due timer.
    Continuation,
}

impl Phase {
    pub(crate) fn admits(self, admission: Admission) -> bool {
        match self {
            Phase::Open => true,
            Phase::Draining => admission == Admission::Continuation,
            Phase::Closed => false,
        }
    }
}
