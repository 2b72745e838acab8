//! Which generations have ended, fed by the Snapshotter's events, for
//! [`AsyncSnapshotter::wait_idle`](crate::AsyncSnapshotter::wait_idle).
//!
//! Every generation number is used exactly once, in creation order (0, 1, 2 …), and every
//! generation ends with an event that carries its number: `Committed`, `Failed` (a capture
//! refused by the node included: its number is taken before the capture) or `Dropped`. So
//! "every generation started so far has ended" is "every number below the next one has been
//! seen", and the next number is the `scheduled` counter plus the captures that failed
//! (the only generations the counter does not count). The ended numbers are kept as a
//! contiguous prefix plus the few that ended out of order.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use snapseal_actors::{GenerationError, SnapshotEvent, Snapshotter};
use tokio::sync::watch;

#[derive(Debug, Default)]
struct Seen {
    /// Every generation numbered below this has ended.
    below: u64,
    /// Ended generations numbered above `below` (ended out of order).
    above: BTreeSet<u64>,
}

/// The ended generations, and a watch of how many of the first ones ended.
#[derive(Debug)]
pub(crate) struct Ended {
    seen: Mutex<Seen>,
    below: watch::Sender<u64>,
    /// Generations whose capture failed: they have a number but no `scheduled` count.
    capture_failures: AtomicU64,
}

impl Ended {
    /// Watches `snap`'s events from now on. Call it before the first consensus call, so that
    /// no generation ends unseen.
    pub(crate) fn watch(snap: &Snapshotter) -> Arc<Ended> {
        let ended = Arc::new(Ended {
            seen: Mutex::new(Seen::default()),
            below: watch::Sender::new(0),
            capture_failures: AtomicU64::new(0),
        });
        let hook = Arc::clone(&ended);
        // Runs on the consensus thread or a worker: a short lock and a watch update, no wait.
        snap.on_event(move |event| hook.saw(event));
        ended
    }

    fn saw(&self, event: &SnapshotEvent) {
        let generation = match event {
            SnapshotEvent::Committed(c) => c.generation,
            SnapshotEvent::Dropped { generation, .. } => *generation,
            SnapshotEvent::Failed {
                generation, error, ..
            } => {
                if matches!(**error, GenerationError::Capture { .. }) {
                    self.capture_failures.fetch_add(1, Ordering::Release);
                }
                *generation
            }
            _ => return,
        };
        let below = {
            let mut seen = self.seen.lock();
            if generation >= seen.below {
                seen.above.insert(generation);
            }
            loop {
                let next = seen.below;
                if !seen.above.remove(&next) {
                    break;
                }
                seen.below += 1;
            }
            seen.below
        };
        self.below.send_if_modified(|current| {
            let advanced = below > *current;
            *current = (*current).max(below);
            advanced
        });
    }

    /// Resolves once every generation `snap` has started so far has ended (new ones started
    /// meanwhile are not waited for).
    pub(crate) fn wait_for_started(
        &self,
        snap: &Snapshotter,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        // Captures fail on the consensus thread, inside the call that started the generation:
        // the counter is current when the node, on that thread, calls this.
        let started = snap.counters().scheduled + self.capture_failures.load(Ordering::Acquire);
        let mut below = self.below.subscribe();
        async move {
            // An error: the watch is gone with the Snapshotter, which ended every generation
            // (a close cancels or drains them all) — nothing is left to wait for.
            let _ = below.wait_for(|ended| *ended >= started).await;
        }
    }
}
