//! The Snapshotter's events as a [`Stream`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use parking_lot::Mutex;
use snapseal_actors::{SnapshotEvent, Snapshotter};
use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};

/// Events an [`EventStream`] holds before it starts counting instead of keeping them.
pub(crate) const STREAM_CAPACITY: usize = 1024;

/// Events that did not fit, by kind, until the stream reports them.
#[derive(Debug, Default)]
struct Lost {
    total: u64,
    committed: u64,
    failed: u64,
}

/// The Snapshotter's events as they happen, as a [`Stream`] (from
/// [`AsyncSnapshotter::events`](crate::AsyncSnapshotter::events)); without a `StreamExt` in
/// scope, [`next`](Self::next) reads one.
///
/// Each stream sees every event from its creation on (it is fed by its own
/// [`Snapshotter::on_event`] hook, not by the Snapshotter's shared queue), and ends once the
/// Snapshotter is closed and what it holds is read.
///
/// **Bounded, with overflow accounting:** a stream holds at most 1024 events. The hook never
/// waits (it runs on the consensus thread or an engine worker): an event that finds the
/// stream full is not kept but counted, and once the stream has been read empty it yields
/// [`SnapshotEvent::Overflowed`] with the counts (split into committed and failed). Nothing
/// is lost silently; the Snapshotter's counters count every outcome and the store lists every
/// committed file. Events are few (at most one outcome per snapshot), so only a stream nobody
/// reads fills up.
///
/// Dropping the stream stops its channel; its hook stays registered, doing nothing, until the
/// Snapshotter closes (so make one stream per consumer, not one per read).
#[derive(Debug)]
pub struct EventStream {
    events: mpsc::Receiver<SnapshotEvent>,
    lost: Arc<Mutex<Lost>>,
}

impl EventStream {
    pub(crate) fn new(snap: &Snapshotter) -> EventStream {
        let (tx, events) = mpsc::channel(STREAM_CAPACITY);
        let lost = Arc::new(Mutex::new(Lost::default()));
        let counts = Arc::clone(&lost);
        snap.on_event(move |event| match tx.try_send(event.clone()) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(event)) => {
                let mut lost = counts.lock();
                lost.total += 1;
                match event {
                    SnapshotEvent::Committed(_) => lost.committed += 1,
                    SnapshotEvent::Failed { .. } => lost.failed += 1,
                    _ => {}
                }
            }
        });
        EventStream { events, lost }
    }

    /// The next event, waiting for one; `None` once the Snapshotter is closed and every
    /// event was read. The same as `StreamExt::next`.
    pub async fn next(&mut self) -> Option<SnapshotEvent> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The events that did not fit since the last report, as one `Overflowed` event.
    fn take_lost(&self) -> Option<SnapshotEvent> {
        let lost = std::mem::take(&mut *self.lost.lock());
        (lost.total > 0).then_some(SnapshotEvent::Overflowed {
            lost: lost.total,
            committed: lost.committed,
            failed: lost.failed,
        })
    }
}

impl Stream for EventStream {
    type Item = SnapshotEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SnapshotEvent>> {
        let this = self.get_mut();
        // `try_recv` first: `poll_recv` also returns `Pending` when the task used up its
        // cooperative budget, which must not read as "empty" (and report losses early).
        match this.events.try_recv() {
            Ok(event) => return Poll::Ready(Some(event)),
            // Closed (the hook went with the Snapshotter's close): the last count, then the end.
            Err(TryRecvError::Disconnected) => return Poll::Ready(this.take_lost()),
            // Read empty: events are lost only while the stream is full, so report them now.
            Err(TryRecvError::Empty) => {
                if let Some(overflowed) = this.take_lost() {
                    return Poll::Ready(Some(overflowed));
                }
            }
        }
        match this.events.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(Some(event)),
            Poll::Ready(None) => Poll::Ready(this.take_lost()),
            Poll::Pending => Poll::Pending,
        }
    }
}
