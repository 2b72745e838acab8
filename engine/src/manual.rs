//! The manual job board: no threads; the caller runs jobs one at a time, and which ready job
//! runs next is a seeded pseudo-random pick (or FIFO), so a run is reproducible bit for bit.

use std::collections::VecDeque;

use crate::admission::{Admission, Phase};
use crate::job::Job;
use crate::rng::SplitMix64;
use crate::sync::Mutex;

/// How the next ready job is chosen.
pub(crate) enum Pick {
    /// Oldest first.
    Fifo,
    /// Uniformly among the ready jobs, by a SplitMix64 stream.
    Seeded(SplitMix64),
}

struct ManualState {
    ready: VecDeque<Job>,
    pick: Pick,
    phase: Phase,
}

/// The job board of a manual system.
pub(crate) struct ManualBoard {
    state: Mutex<ManualState>,
}

impl ManualBoard {
    pub(crate) fn new(pick: Pick) -> Self {
        Self {
            state: Mutex::new(ManualState {
                ready: VecDeque::new(),
                pick,
                phase: Phase::Open,
            }),
        }
    }

    /// Every submission, continuations included, goes to the ready set: in manual mode a
    /// queue with more actions competes with the other ready jobs at every pick, which is
    /// what lets different seeds explore different interleavings.
    pub(crate) fn submit(&self, job: Job, admission: Admission) -> Result<(), Job> {
        let mut state = self.state.lock();
        if !state.phase.admits(admission) {
            return Err(job);
        }
        state.ready.push_back(job);
        Ok(())
    }

    /// Takes the next job to run, if any is ready.
    pub(crate) fn take(&self) -> Option<Job> {
        let mut state = self.state.lock();
        let state = &mut *state;
        match &mut state.pick {
            Pick::Fifo => state.ready.pop_front(),
            Pick::Seeded(rng) => {
                if state.ready.is_empty() {
                    return None;
                }
                let index = crate::rng::below(rng, state.ready.len());
                state.ready.remove(index)
            }
        }
    }

    /// `shutdown(Drain)` began: only continuations are taken from now on.
    pub(crate) fn begin_drain(&self) {
        let mut state = self.state.lock();
        if state.phase == Phase::Open {
            state.phase = Phase::Draining;
        }
    }

    /// Closes the board; returns whatever was still ready, for the caller to cancel.
    pub(crate) fn close(&self) -> Vec<Job> {
        let mut state = self.state.lock();
        state.phase = Phase::Closed;
        state.ready.drain(..).collect()
    }

    /// Number of ready jobs.
    pub(crate) fn ready(&self) -> usize {
        self.state.lock().ready.len()
    }
}
