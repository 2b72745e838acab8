//! The unit the job boards hold: a task to run once, or a queue to run one action of.

use std::sync::Arc;

use crate::ordered::QueueCore;
use crate::shared::Shared;
use crate::task::TaskCore;

/// One entry on a job board. A queue is on a board at most once at a time (its state machine
/// guarantees it), so holding the `Arc` here is what "the queue is scheduled" means.
pub(crate) enum Job {
    /// A one-shot task, or one firing of a periodic task.
    Task(Arc<TaskCore>),
    /// An [`OrderedTasks`](crate::OrderedTasks): one pick runs its next action (and, on a
    /// threaded board, the ones after it while no other job waits).
    Queue(Arc<QueueCore>),
}

impl Job {
    /// Runs the job on the calling thread. Returns the job again when it must go back on the
    /// board (a queue with more actions to run and a reason to let others go first).
    pub(crate) fn run(self, shared: &Shared) -> Option<Job> {
        match self {
            Job::Task(task) => {
                task.run(shared);
                None
            }
            Job::Queue(queue) => queue
                .run_next(&|ran| shared.may_continue_here(ran))
                .then_some(Job::Queue(queue)),
        }
    }

    /// The board refused the job or is being torn down: cancel what it carries.
    pub(crate) fn skip(self) {
        match self {
            Job::Task(task) => task.abandon(),
            Job::Queue(queue) => queue.abandon(),
        }
    }
}
