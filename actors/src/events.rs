//! What the Snapshotter tells the node, how those notifications are queued, and the counters it
//! keeps.
//!
//! Events go two ways, both fed by the thread that produced the event (the consensus thread
//! for `Skipped`/`Dropped`, an engine worker for `Committed`/`Failed`): to every hook registered
//! with [`Snapshotter::on_event`](crate::Snapshotter::on_event), then into a bounded queue read
//! through [`Events`]. The queue's overflow policy is documented on [`Events`].

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use snapseal_persist::Hash;

use crate::actions::GenerationError;

/// A notification from the [`Snapshotter`](crate::Snapshotter), read from
/// [`Events`] or seen by an [`on_event`](crate::Snapshotter::on_event) hook.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SnapshotEvent {
    /// A generation was persisted: its `.committed` file is durable (file and directory synced).
    Committed(CommittedSnapshot),
    /// A generation failed (capture, serialise or persist); it left no `.committed` file.
    Failed {
        /// Generation number.
        generation: u64,
        /// Snapshot index.
        idx: u64,
        /// What went wrong; a persistence error names the file and the step.
        error: Arc<GenerationError>,
    },
    /// A pending generation was dropped by a rollback; it leaves no file.
    Dropped {
        /// Generation number.
        generation: u64,
        /// Snapshot index.
        idx: u64,
    },
    /// A due snapshot point was skipped because `max_pending` generations were pending.
    Skipped {
        /// The skipped point.
        idx: u64,
    },
    /// Only in the [`Events`] queue (never given to hooks): the queue was full and events were
    /// removed from it to stay within its capacity. Delivered before the next queued event; it
    /// counts the events removed since the previous `Overflowed`. See [`Events`] for which
    /// events go first.
    Overflowed {
        /// Events removed in all.
        lost: u64,
        /// How many of them were `Committed` (the files are on disk: `SnapshotStore::list`
        /// finds them).
        committed: u64,
        /// How many of them were `Failed` (the counters still count them).
        failed: u64,
    },
}

/// A generation that reached disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedSnapshot {
    /// Generation number (0, 1, 2 … in creation order).
    pub generation: u64,
    /// Snapshot index.
    pub idx: u64,
    /// Index of the evidence tx carrying the digest.
    pub evidence_idx: u64,
    /// Index of the signature that proves the evidence (Merkle mode); in statement mode
    /// ([`Snapshotter::with_statement_key`](crate::Snapshotter::with_statement_key)) the
    /// evidence index itself, since the node's own statement proves it.
    pub sig_idx: u64,
    /// Path of the `.committed` file.
    pub path: PathBuf,
    /// BLAKE3 of the stored body.
    pub digest: Hash,
    /// The claims digest the evidence tx carries (docs/FORMAT.md §3: idx, flags, lengths and
    /// the body digest under one domain-separated BLAKE3).
    pub claims_digest: Hash,
    /// Size of the committed file in bytes.
    pub file_len: u64,
    /// With a chunked store ([`StoreOptions::chunked`](snapseal_persist::StoreOptions::chunked)):
    /// the bytes of the chunks this snapshot wrote into the store's packs, those no pack held
    /// when its body was cut. The file plus these is what it cost the disk. 0 for a plain store.
    pub new_chunk_bytes: u64,
}

/// Default capacity of the [`Events`] queue.
pub(crate) const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// A hook registered with [`Snapshotter::on_event`](crate::Snapshotter::on_event).
pub(crate) type Hook = Arc<dyn Fn(&SnapshotEvent) + Send + Sync>;

#[derive(Debug, Default)]
struct Lost {
    total: u64,
    committed: u64,
    failed: u64,
}

#[derive(Debug)]
struct Queue {
    events: VecDeque<SnapshotEvent>,
    capacity: usize,
    lost: Lost,
    /// Set when the Snapshotter closed: nothing more will be pushed.
    closed: bool,
}

impl Queue {
    fn pop(&mut self) -> Option<SnapshotEvent> {
        if self.lost.total > 0 {
            let lost = std::mem::take(&mut self.lost);
            return Some(SnapshotEvent::Overflowed {
                lost: lost.total,
                committed: lost.committed,
                failed: lost.failed,
            });
        }
        self.events.pop_front()
    }

    /// Make room for one event: the oldest `Skipped`/`Dropped` goes first; only a queue holding
    /// nothing but outcomes gives up its oldest outcome.
    fn make_room(&mut self) {
        while self.events.len() >= self.capacity {
            let at = self
                .events
                .iter()
                .position(|e| {
                    matches!(
                        e,
                        SnapshotEvent::Skipped { .. } | SnapshotEvent::Dropped { .. }
                    )
                })
                .unwrap_or(0);
            let Some(evicted) = self.events.remove(at) else {
                return;
            };
            self.lost.total += 1;
            match evicted {
                SnapshotEvent::Committed(_) => self.lost.committed += 1,
                SnapshotEvent::Failed { .. } => self.lost.failed += 1,
                _ => {}
            }
        }
    }
}

/// Where events go: the hooks and the bounded queue. Shared by the Snapshotter, its actions and
/// every [`Events`] handle.
pub(crate) struct EventHub {
    queue: Mutex<Queue>,
    ready: Condvar,
    hooks: RwLock<Vec<Hook>>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("queue", &*self.queue.lock())
            .field("hooks", &self.hooks.read().len())
            .finish()
    }
}

impl EventHub {
    pub(crate) fn new(capacity: NonZeroUsize) -> Arc<Self> {
        Arc::new(EventHub {
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                capacity: capacity.get(),
                lost: Lost::default(),
                closed: false,
            }),
            ready: Condvar::new(),
            hooks: RwLock::new(Vec::new()),
        })
    }

    /// Give `event` to every hook (on this thread), then queue it.
    pub(crate) fn emit(&self, event: SnapshotEvent) {
        let hooks = self.hooks.read().clone();
        for hook in hooks {
            // A panicking hook must not turn a persisted generation into a failed action.
            if catch_unwind(AssertUnwindSafe(|| hook(&event))).is_err() {
                tracing::error!("a snapshot event hook panicked");
            }
        }
        let mut queue = self.queue.lock();
        if queue.closed {
            return;
        }
        queue.make_room();
        queue.events.push_back(event);
        drop(queue);
        self.ready.notify_one();
    }

    pub(crate) fn add_hook(&self, hook: Hook) {
        self.hooks.write().push(hook);
    }

    pub(crate) fn set_capacity(&self, capacity: NonZeroUsize) {
        let mut queue = self.queue.lock();
        queue.capacity = capacity.get();
    }

    /// No more events: receivers drain what is queued, then see the end.
    pub(crate) fn close(&self) {
        self.queue.lock().closed = true;
        self.hooks.write().clear();
        self.ready.notify_all();
    }
}

/// The receiving end of the Snapshotter's notifications
/// ([`Snapshotter::events`](crate::Snapshotter::events)).
///
/// Clones share one queue: each event is delivered to one receiver. The queue is bounded
/// (1024 events unless set with
/// [`Snapshotter::with_event_capacity`](crate::Snapshotter::with_event_capacity)), so a node that
/// never reads it costs bounded memory. **Overflow policy:** when an event arrives at a full
/// queue, the oldest `Skipped` or `Dropped` event is removed to make room; only when the queue
/// holds nothing but `Committed`/`Failed` is the oldest of those removed. Nothing is removed
/// silently: removed events are counted and the next receive returns
/// [`SnapshotEvent::Overflowed`] with the counts (split by kind) before the remaining events.
/// [`Snapshotter::counters`](crate::Snapshotter::counters) counts every outcome regardless, and
/// the store lists every committed file. A node that must see every event as it happens, without
/// a queue, registers a hook with [`Snapshotter::on_event`](crate::Snapshotter::on_event).
///
/// Once the Snapshotter is closed (or dropped), receivers get what is still queued and then
/// `None`.
///
/// ```
/// # use std::io::{self, Write};
/// # use std::sync::Arc;
/// # use snapseal_actors::{
/// #     CaptureError, CloseMode, EvidenceSink, Hash, SnapshotEvent, Snapshotter,
/// #     SnapshotterConfig, StateSource, StateView,
/// # };
/// # use snapseal_engine::TaskSystem;
/// # use snapseal_persist::fs::RealFs;
/// # use snapseal_persist::receipt::Ed25519Verifier;
/// # use snapseal_persist::{SnapshotStore, StoreOptions};
/// # struct State;
/// # impl StateSource for State {
/// #     fn capture(&self, _idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
/// #         Ok(Box::new(State))
/// #     }
/// # }
/// # impl StateView for State {
/// #     fn write_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
/// #         out.write_all(b"state")
/// #     }
/// # }
/// # struct Sink;
/// # impl EvidenceSink for Sink {
/// #     fn append_evidence(&self, _snapshot_idx: u64, _claims_digest: Hash) {}
/// # }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(Vec::new())));
/// # let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?);
/// # let (state, sink) = (Arc::new(State), Arc::new(Sink));
/// // A queue of one event, and one generation at a time (setup as in the `Snapshotter`
/// // example): each further due point is skipped.
/// let config = SnapshotterConfig { tx_interval: 1, max_pending: 1, ..Default::default() };
/// let mut snap = Snapshotter::new(config, TaskSystem::manual(1), store, state, sink)?
///     .with_event_capacity(std::num::NonZeroUsize::MIN);
/// let events = snap.events();
/// for idx in 1..=3 {
///     snap.record_committable(idx);
///     snap.commit(idx); // 1 starts a generation; 2 and 3 are skipped
/// }
/// // The queue kept the newest event; the one it removed is counted, never lost silently.
/// assert!(matches!(events.try_recv(), Some(SnapshotEvent::Overflowed { lost: 1, .. })));
/// assert!(matches!(events.try_recv(), Some(SnapshotEvent::Skipped { idx: 3 })));
/// assert!(events.try_recv().is_none());
/// assert_eq!(snap.counters().skipped, 2); // the counters count every event
///
/// snap.close(CloseMode::Cancel); // generation 0 is cancelled ...
/// assert!(matches!(events.recv(), Some(SnapshotEvent::Dropped { idx: 1, .. })));
/// assert!(events.recv().is_none()); // ... and then the queue ends
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Events {
    hub: Arc<EventHub>,
}

impl Events {
    pub(crate) fn new(hub: Arc<EventHub>) -> Self {
        Events { hub }
    }

    /// The next event, waiting for one; `None` once the Snapshotter is closed and the queue is
    /// empty. Blocks the calling thread.
    pub fn recv(&self) -> Option<SnapshotEvent> {
        let mut queue = self.hub.queue.lock();
        loop {
            if let Some(event) = queue.pop() {
                return Some(event);
            }
            if queue.closed {
                return None;
            }
            self.hub.ready.wait(&mut queue);
        }
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&self) -> Option<SnapshotEvent> {
        self.hub.queue.lock().pop()
    }

    /// The next event, waiting at most `timeout`; `None` on timeout, or once the Snapshotter is
    /// closed and the queue is empty.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<SnapshotEvent> {
        let deadline = Instant::now().checked_add(timeout);
        let mut queue = self.hub.queue.lock();
        loop {
            if let Some(event) = queue.pop() {
                return Some(event);
            }
            if queue.closed {
                return None;
            }
            match deadline {
                Some(deadline) => {
                    if self.hub.ready.wait_until(&mut queue, deadline).timed_out() {
                        return queue.pop();
                    }
                }
                None => self.hub.ready.wait(&mut queue),
            }
        }
    }

    /// Events queued now (not counting a pending `Overflowed` marker). Feature `internals`.
    #[cfg(feature = "internals")]
    pub fn len(&self) -> usize {
        self.hub.queue.lock().events.len()
    }

    /// Whether nothing is queued (an `Overflowed` marker may still be pending). Feature
    /// `internals`.
    #[cfg(feature = "internals")]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the Snapshotter was closed (queued events can still be received).
    pub fn is_closed(&self) -> bool {
        self.hub.queue.lock().closed
    }

    /// A blocking iterator: [`recv`](Self::recv) until the Snapshotter is closed.
    pub fn iter(&self) -> impl Iterator<Item = SnapshotEvent> + '_ {
        std::iter::from_fn(move || self.recv())
    }

    /// A non-blocking iterator over what is queued now.
    pub fn try_iter(&self) -> impl Iterator<Item = SnapshotEvent> + '_ {
        std::iter::from_fn(move || self.try_recv())
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = SnapshotEvent;
    type IntoIter = Box<dyn Iterator<Item = SnapshotEvent> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// Point-in-time copy of the Snapshotter's counters.
///
/// Each is also emitted through the `metrics` facade as `snapseal_snapshots_<field>_total`
/// (`persisted` as `snapseal_snapshots_committed_total`), process-wide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotCounters {
    /// Generations created (serialisation scheduled).
    pub scheduled: u64,
    /// Due points skipped because of `max_pending`.
    pub skipped: u64,
    /// Due points deferred (cooldown, or a forced point waiting for a free slot); counted once
    /// per point.
    pub deferred: u64,
    /// Generations persisted.
    pub persisted: u64,
    /// Generations dropped by rollback.
    pub dropped: u64,
    /// Generations that failed.
    pub failed: u64,
}

/// Shared, lock-free counters (updated by the consensus thread and the workers).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub scheduled: AtomicU64,
    pub skipped: AtomicU64,
    pub deferred: AtomicU64,
    pub persisted: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

impl Counters {
    /// Counts in [`SnapshotCounters`] and, through the `metrics` facade, in whatever recorder
    /// the process installed (none: a no-op).
    pub(crate) fn bump(counter: &AtomicU64, metric: &'static str) {
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric).increment(1);
    }

    pub(crate) fn snapshot(&self) -> SnapshotCounters {
        SnapshotCounters {
            scheduled: self.scheduled.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            deferred: self.deferred.load(Ordering::Relaxed),
            persisted: self.persisted.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(capacity: usize) -> (Arc<EventHub>, Events) {
        let hub = EventHub::new(NonZeroUsize::new(capacity).unwrap());
        (Arc::clone(&hub), Events::new(hub))
    }

    fn committed(idx: u64) -> SnapshotEvent {
        SnapshotEvent::Committed(CommittedSnapshot {
            generation: idx,
            idx,
            evidence_idx: idx + 1,
            sig_idx: idx + 2,
            path: PathBuf::from(format!("snapshot_{idx}")),
            digest: [0; 32],
            claims_digest: [0; 32],
            file_len: 0,
            new_chunk_bytes: 0,
        })
    }

    #[test]
    fn overflow_evicts_skipped_and_dropped_before_any_outcome() {
        let (hub, events) = hub(3);
        hub.emit(SnapshotEvent::Skipped { idx: 1 });
        hub.emit(committed(2));
        hub.emit(SnapshotEvent::Dropped {
            generation: 0,
            idx: 3,
        });
        hub.emit(committed(4));
        hub.emit(committed(5));
        let got: Vec<_> = events.try_iter().collect();
        assert!(
            matches!(
                &got[..],
                [
                    SnapshotEvent::Overflowed { lost: 2, committed: 0, failed: 0 },
                    SnapshotEvent::Committed(a),
                    SnapshotEvent::Committed(b),
                    SnapshotEvent::Committed(c),
                ] if (a.idx, b.idx, c.idx) == (2, 4, 5)
            ),
            "{got:?}"
        );
    }

    #[test]
    fn a_queue_full_of_outcomes_reports_each_lost_commit() {
        let (hub, events) = hub(2);
        for idx in 1..=5 {
            hub.emit(committed(idx));
        }
        assert_eq!(events.len(), 2);
        let got: Vec<_> = events.try_iter().collect();
        assert!(
            matches!(
                &got[..],
                [
                    SnapshotEvent::Overflowed { lost: 3, committed: 3, failed: 0 },
                    SnapshotEvent::Committed(a),
                    SnapshotEvent::Committed(b),
                ] if (a.idx, b.idx) == (4, 5)
            ),
            "{got:?}"
        );
        assert!(events.try_recv().is_none());
    }

    #[test]
    fn hooks_see_every_event_and_close_ends_receivers() {
        let (hub, events) = hub(1);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        hub.add_hook(Arc::new(move |e: &SnapshotEvent| {
            if let SnapshotEvent::Committed(c) = e {
                seen2.lock().push(c.idx);
            }
        }));
        for idx in 1..=4 {
            hub.emit(committed(idx));
        }
        assert_eq!(*seen.lock(), vec![1, 2, 3, 4]);
        hub.close();
        assert!(events.is_closed());
        assert!(matches!(
            events.recv(),
            Some(SnapshotEvent::Overflowed { lost: 3, .. })
        ));
        assert!(matches!(events.recv(), Some(SnapshotEvent::Committed(c)) if c.idx == 4));
        assert!(events.recv().is_none(), "closed and drained");
        assert!(events.recv_timeout(Duration::from_secs(60)).is_none());
    }
}
