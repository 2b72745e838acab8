//! The actix facade: [`SnapshotterActor`], one message per [`Snapshotter`] call.
//!
//! actix appears in this file only. The actor owns the state machine and runs on an actix
//! arbiter; serialisation and persistence still run on the snapseal engine's workers, so a slow
//! disk never blocks the arbiter. Notifications (committed, failed, dropped, skipped) are
//! forwarded to a [`Recipient`] by a small thread that waits on the event channel.

use std::sync::Arc;

/// The actix version this facade is built on, re-exported so a node uses the same one (and so
/// nothing outside this crate needs its own actix dependency).
pub use actix;

use actix::prelude::*;
use snapseal_persist::receipt::SignedRoot;
use snapseal_persist::Hash;

use crate::events::{SnapshotCounters, SnapshotEvent};
use crate::node::ProofSource;
use crate::snapshotter::{GenerationInfo, Snapshotter};

/// Actor wrapping a [`Snapshotter`].
pub struct SnapshotterActor {
    inner: Snapshotter,
    subscriber: Option<Recipient<SnapshotNotification>>,
}

impl SnapshotterActor {
    /// Wrap `snapshotter`; events go to `subscriber` when given.
    pub fn new(
        snapshotter: Snapshotter,
        subscriber: Option<Recipient<SnapshotNotification>>,
    ) -> Self {
        SnapshotterActor {
            inner: snapshotter,
            subscriber,
        }
    }
}

impl Actor for SnapshotterActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        let Some(recipient) = self.subscriber.clone() else {
            return;
        };
        let events = self.inner.events();
        // A plain thread: the channel is blocking, and the arbiter must never block.
        let spawned = std::thread::Builder::new()
            .name("snapseal-events".into())
            .spawn(move || {
                for event in events.iter() {
                    if recipient.try_send(SnapshotNotification(event)).is_err()
                        && !recipient.connected()
                    {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the event forwarder; notifications are off");
        }
    }
}

/// An event forwarded to the subscriber.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct SnapshotNotification(pub SnapshotEvent);

/// [`Snapshotter::record_committable`].
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "bool")]
pub struct RecordCommittable(pub u64);

/// [`Snapshotter::commit`].
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Commit(pub u64);

/// [`Snapshotter::record_evidence`].
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct RecordEvidence {
    /// Index of the evidence tx.
    pub evidence_idx: u64,
    /// Snapshot index it proves.
    pub snapshot_idx: u64,
    /// Snapshot digest it carries.
    pub digest: Hash,
}

/// [`Snapshotter::record_signature`].
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct RecordSignature(pub SignedRoot);

/// [`Snapshotter::record_tree`].
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct RecordTree {
    /// The signature index the tree belongs to.
    pub sig_idx: u64,
    /// The proofs.
    pub tree: Arc<dyn ProofSource>,
}

/// [`Snapshotter::rollback`].
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Rollback(pub u64);

/// [`Snapshotter::trigger_snapshot`].
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct TriggerSnapshot;

/// Ask for [`Snapshotter::counters`].
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "SnapshotCounters")]
pub struct GetCounters;

/// Ask for [`Snapshotter::pending`].
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "Vec<GenerationInfo>")]
pub struct GetPending;

impl Handler<RecordCommittable> for SnapshotterActor {
    type Result = bool;
    fn handle(&mut self, m: RecordCommittable, _: &mut Context<Self>) -> bool {
        self.inner.record_committable(m.0)
    }
}

impl Handler<Commit> for SnapshotterActor {
    type Result = ();
    fn handle(&mut self, m: Commit, _: &mut Context<Self>) {
        self.inner.commit(m.0)
    }
}

impl Handler<RecordEvidence> for SnapshotterActor {
    type Result = ();
    fn handle(&mut self, m: RecordEvidence, _: &mut Context<Self>) {
        self.inner
            .record_evidence(m.evidence_idx, m.snapshot_idx, m.digest)
    }
}

impl Handler<RecordSignature> for SnapshotterActor {
    type Result = ();
    fn handle(&mut self, m: RecordSignature, _: &mut Context<Self>) {
        self.inner.record_signature(m.0)
    }
}

impl Handler<RecordTree> for SnapshotterActor {
    type Result = ();
    fn handle(&mut self, m: RecordTree, _: &mut Context<Self>) {
        self.inner.record_tree(m.sig_idx, m.tree)
    }
}

impl Handler<Rollback> for SnapshotterActor {
    type Result = ();
    fn handle(&mut self, m: Rollback, _: &mut Context<Self>) {
        self.inner.rollback(m.0)
    }
}

impl Handler<TriggerSnapshot> for SnapshotterActor {
    type Result = ();
    fn handle(&mut self, _: TriggerSnapshot, _: &mut Context<Self>) {
        self.inner.trigger_snapshot()
    }
}

impl Handler<GetCounters> for SnapshotterActor {
    type Result = MessageResult<GetCounters>;
    fn handle(&mut self, _: GetCounters, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.inner.counters())
    }
}

impl Handler<GetPending> for SnapshotterActor {
    type Result = MessageResult<GetPending>;
    fn handle(&mut self, _: GetPending, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.inner.pending())
    }
}
