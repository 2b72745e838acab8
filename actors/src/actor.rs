//! The actix facade: [`SnapshotterActor`], one message per [`Snapshotter`] call.
//!
//! Built with the crate's `actix` feature; actix appears in this file only. The actor owns the
//! state machine and runs on an actix arbiter; serialisation and persistence still run on the
//! snapseal engine's workers, so a slow disk never blocks the arbiter. Notifications
//! (committed, failed, dropped, skipped) are forwarded to a [`Recipient`] by an
//! [`on_event`](Snapshotter::on_event) hook with [`Recipient::do_send`]: never dropped, however
//! busy the subscriber's mailbox (the mailbox grows instead), and in the order each producing
//! thread emitted them. When the actor stops, the Snapshotter is dropped, which closes it with
//! [`CloseMode::Cancel`].

use std::sync::Arc;

/// The actix version this facade is built on, re-exported so a node uses the same one (and so
/// nothing outside this crate needs its own actix dependency).
pub use actix;

use actix::prelude::*;
use snapseal_persist::receipt::SignedRoot;
use snapseal_persist::Hash;

use crate::error::EvidenceError;
use crate::events::{SnapshotCounters, SnapshotEvent};
use crate::node::ProofSource;
#[cfg(feature = "internals")]
use crate::snapshotter::GenerationInfo;
use crate::snapshotter::Snapshotter;
use crate::CloseMode;

/// Actor wrapping a [`Snapshotter`].
///
/// The node's consensus actor sends it one message per Snapshotter call; the subscriber
/// gets every event as a [`SnapshotNotification`]. (The `StateSource` and `EvidenceSink`
/// here are as in the [`Snapshotter`] example.)
///
/// ```
/// use std::sync::Arc;
/// use snapseal_actors::actor::actix::prelude::*;
/// use snapseal_actors::actor::{
///     Commit, GetCounters, RecordCommittable, Rollback, SnapshotNotification, SnapshotterActor,
/// };
/// use snapseal_actors::{SnapshotEvent, Snapshotter, SnapshotterConfig};
/// use snapseal_engine::TaskSystem;
/// use snapseal_persist::fs::RealFs;
/// use snapseal_persist::receipt::Ed25519Verifier;
/// use snapseal_persist::{SnapshotStore, StoreOptions};
/// # use snapseal_actors::{CaptureError, EvidenceSink, Hash, StateSource, StateView};
/// # struct State;
/// # impl StateSource for State {
/// #     fn capture(&self, _idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
/// #         Ok(Box::new(View))
/// #     }
/// # }
/// # struct View;
/// # impl StateView for View {
/// #     fn write_to(&mut self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
/// #         out.write_all(b"state")
/// #     }
/// # }
/// # struct Sink;
/// # impl EvidenceSink for Sink {
/// #     fn append_evidence(&self, _snapshot_idx: u64, _claims_digest: Hash) {}
/// # }
///
/// /// The node's subscriber: remembers which snapshot points were dropped.
/// #[derive(Default)]
/// struct Subscriber(Vec<u64>);
/// impl Actor for Subscriber {
///     type Context = Context<Self>;
/// }
/// impl Handler<SnapshotNotification> for Subscriber {
///     type Result = ();
///     fn handle(&mut self, n: SnapshotNotification, _: &mut Context<Self>) {
///         if let SnapshotEvent::Dropped { idx, .. } = n.0 {
///             self.0.push(idx);
///         }
///     }
/// }
/// /// Asks the subscriber what it saw.
/// struct Dropped;
/// impl Message for Dropped {
///     type Result = Vec<u64>;
/// }
/// impl Handler<Dropped> for Subscriber {
///     type Result = Vec<u64>;
///     fn handle(&mut self, _: Dropped, _: &mut Context<Self>) -> Vec<u64> {
///         self.0.clone()
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(Vec::new())));
/// let store = Arc::new(SnapshotStore::open(Arc::new(RealFs), dir.path(), opts)?);
/// let tasks = TaskSystem::manual(1);
/// let config = SnapshotterConfig { tx_interval: 3, ..SnapshotterConfig::default() };
/// let snapshotter =
///     Snapshotter::new(config, tasks.clone(), store, Arc::new(State), Arc::new(Sink))?;
///
/// System::new().block_on(async move {
///     let subscriber = Subscriber::default().start();
///     let snap = SnapshotterActor::new(snapshotter, Some(subscriber.clone().recipient())).start();
///     assert!(snap.send(RecordCommittable(3)).await?);
///     snap.send(Commit(3)).await?;
///     tasks.run_until_idle(); // the state at 3 is serialised on the engine
///     assert_eq!(snap.send(GetCounters).await?.scheduled, 1);
///
///     snap.send(Rollback(3)).await?; // its evidence never came: the generation is dropped
///     assert_eq!(subscriber.send(Dropped).await?, [3]);
///     Ok::<_, MailboxError>(())
/// })?;
/// # Ok(()) }
/// ```
pub struct SnapshotterActor {
    inner: Snapshotter,
}

impl SnapshotterActor {
    /// Wrap `snapshotter`; events go to `subscriber` when given.
    pub fn new(
        snapshotter: Snapshotter,
        subscriber: Option<Recipient<SnapshotNotification>>,
    ) -> Self {
        if let Some(recipient) = subscriber {
            // `do_send` never fails on a full mailbox (unlike `try_send`) and never blocks, so
            // it is safe on the worker or consensus thread that produced the event.
            snapshotter.on_event(move |event| {
                recipient.do_send(SnapshotNotification(event.clone()));
            });
        }
        SnapshotterActor { inner: snapshotter }
    }
}

impl Actor for SnapshotterActor {
    type Context = Context<Self>;
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

/// [`Snapshotter::record_evidence`], or with a `term`
/// [`Snapshotter::record_evidence_in_term`] (statement mode: the receipt signs the term of
/// the evidence entry).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "Result<(), EvidenceError>")]
pub struct RecordEvidence {
    /// Index of the evidence tx.
    pub evidence_idx: u64,
    /// Snapshot index it proves.
    pub snapshot_idx: u64,
    /// Snapshot digest it carries.
    pub digest: Hash,
    /// The evidence entry's term, for a statement-mode Snapshotter (`None`: no term signed).
    pub term: Option<u64>,
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

/// Ends the Snapshotter ([`Snapshotter::close`] with this mode: [`CloseMode::Drain`] persists
/// every generation whose persist is scheduled, [`CloseMode::Cancel`] drops them) and stops the
/// actor; when the reply arrives the snapshots are on disk (or dropped), every kept point is
/// released and the store's directory lock is free unless the node holds the store elsewhere.
/// Later messages fail with [`MailboxError::Closed`].
///
/// The handler blocks the actor's arbiter thread until running actions finish (a serialisation
/// stops at its next write once cancelled; a persist runs to its fsync).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Close(pub CloseMode);

/// Ask for [`Snapshotter::counters`].
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "SnapshotCounters")]
pub struct GetCounters;

/// Ask for [`Snapshotter::pending`] (feature `internals`).
#[cfg(feature = "internals")]
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
    type Result = Result<(), EvidenceError>;
    fn handle(&mut self, m: RecordEvidence, _: &mut Context<Self>) -> Self::Result {
        match m.term {
            Some(term) => {
                self.inner
                    .record_evidence_in_term(m.evidence_idx, m.snapshot_idx, m.digest, term)
            }
            None => self
                .inner
                .record_evidence(m.evidence_idx, m.snapshot_idx, m.digest),
        }
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

impl Handler<Close> for SnapshotterActor {
    type Result = ();
    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        self.inner.shutdown(msg.0);
        ctx.stop();
    }
}

impl Handler<GetCounters> for SnapshotterActor {
    type Result = MessageResult<GetCounters>;
    fn handle(&mut self, _: GetCounters, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.inner.counters())
    }
}

#[cfg(feature = "internals")]
impl Handler<GetPending> for SnapshotterActor {
    type Result = MessageResult<GetPending>;
    fn handle(&mut self, _: GetPending, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.inner.pending())
    }
}
