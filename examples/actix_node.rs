//! A small actix-based node driving snapseal through the `SnapshotterActor` facade.
//!
//! The node actor owns its log, a Merkle-tree ledger on the library's tree
//! (`support/merkle_log.rs`). It appends txs, and at every signature sends
//! `RecordCommittable`, `RecordSignature`, `RecordTree` and (for the previous signature)
//! `Commit` to the snapshotter actor with `Addr::send`/`do_send`. Serialisation and persistence
//! run on the snapseal engine's worker threads, never on the actix arbiter; when a serialisation
//! finishes, the evidence request comes back to the node actor as a message, and committed
//! snapshots arrive as `SnapshotNotification`s.
//!
//! Needs the `actix` feature of `snapseal` (`snapseal = { features = ["actix"] }`).
//! Run: `cargo run --example actix_node --features actix` (writes into a fresh temp directory
//! and prints it).

use std::io;
use std::sync::Arc;

use snapseal::actors::actor::actix::prelude::*;
use snapseal::actors::actor::{
    Commit, RecordCommittable, RecordEvidence, RecordSignature, RecordTree, SnapshotNotification,
    SnapshotterActor,
};
use snapseal::engine::{EngineConfig, TaskSystem};
use snapseal::persist::fs::RealFs;
use snapseal::persist::receipt::Ed25519Verifier;
use snapseal::persist::{Hash, SigningKey, SnapshotStore, StoreOptions};
use snapseal::{
    CaptureError, EvidenceSink, SnapshotEvent, Snapshotter, SnapshotterConfig, StateSource,
    StateView,
};

#[path = "support/merkle_log.rs"]
mod merkle_log;
use merkle_log::MerkleLog;

/// How many snapshots to wait for before stopping.
const WANTED: usize = 3;

/// A serialisation finished: append its evidence tx (sent from a worker thread).
struct EvidenceReady {
    snapshot_idx: u64,
    digest: Hash,
}
impl Message for EvidenceReady {
    type Result = ();
}

/// Append the next batch of txs.
struct Tick;
impl Message for Tick {
    type Result = ();
}

/// The evidence sink hands requests to the node actor's mailbox.
struct ActorSink(Recipient<EvidenceReady>);
impl EvidenceSink for ActorSink {
    fn append_evidence(&self, snapshot_idx: u64, digest: Hash) {
        self.0.do_send(EvidenceReady {
            snapshot_idx,
            digest,
        });
    }
}

/// The node's state, kept minimal here: how many txs it has applied. (A real node hands out a
/// frozen version of its state machine; see `examples/embed.rs`.)
struct Applied;

impl StateSource for Applied {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        Ok(Box::new(AppliedView(idx)))
    }
}

struct AppliedView(u64);

impl StateView for AppliedView {
    fn write_to(&mut self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(&self.0.to_le_bytes())
    }
}

struct Node {
    ledger: MerkleLog,
    snapshotter: Option<Addr<SnapshotterActor>>,
    pending_sig: Option<u64>,
    committed: usize,
}

impl Actor for Node {
    type Context = Context<Self>;
}

impl Handler<Tick> for Node {
    type Result = ();
    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let Some(snap) = self.snapshotter.clone() else {
            return;
        };
        for _ in 0..9 {
            let i = self.ledger.last_idx() + 1;
            self.ledger.append_write(&i.to_le_bytes());
        }
        let signed = self.ledger.append_signature();
        let sig_idx = signed.sig_idx;
        snap.do_send(RecordCommittable(sig_idx));
        snap.do_send(RecordSignature(signed));
        snap.do_send(RecordTree {
            sig_idx,
            tree: self.ledger.proofs(),
        });
        // One signature of replication lag: the previous signature is now committed.
        if let Some(prev) = self.pending_sig.replace(sig_idx) {
            snap.do_send(Commit(prev));
        }
        if self.committed < WANTED {
            ctx.notify_later(Tick, std::time::Duration::from_millis(5));
        }
    }
}

impl Handler<EvidenceReady> for Node {
    type Result = ();
    fn handle(&mut self, m: EvidenceReady, ctx: &mut Context<Self>) {
        let evidence_idx = self.ledger.append_evidence(m.snapshot_idx, m.digest);
        if let Some(snap) = &self.snapshotter {
            // `send` queues the message now (in order with the `do_send`s above); the answer
            // comes back asynchronously.
            let answer = snap.send(RecordEvidence {
                evidence_idx,
                snapshot_idx: m.snapshot_idx,
                digest: m.digest,
                term: None,
            });
            ctx.spawn(
                async move {
                    match answer.await {
                        Ok(Ok(())) => {}
                        // Asked for before a rollback dropped that snapshot: nothing to prove.
                        Ok(Err(stale)) if stale.is_stale() => {}
                        Ok(Err(refused)) => eprintln!("evidence refused: {refused}"),
                        Err(e) => eprintln!("snapshotter gone: {e}"),
                    }
                }
                .into_actor(self),
            );
        }
    }
}

impl Handler<SnapshotNotification> for Node {
    type Result = ();
    fn handle(&mut self, m: SnapshotNotification, _: &mut Context<Self>) {
        match m.0 {
            SnapshotEvent::Committed(c) => {
                self.committed += 1;
                println!(
                    "committed snapshot {} (evidence {}, signature {}): {}",
                    c.idx,
                    c.evidence_idx,
                    c.sig_idx,
                    c.path.display()
                );
                if self.committed >= WANTED {
                    System::current().stop();
                }
            }
            other => println!("event: {other:?}"),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new()
        .prefix("snapseal-actix-")
        .tempdir()?
        .keep();
    println!("snapshots go to {}", dir.display());
    let system = System::new();
    system.block_on(async move {
        // The ledger's signing key (from your key store; fixed here for the example).
        let ledger = MerkleLog::new(SigningKey::from_bytes(&[7; 32]));
        let verifier = Arc::new(Ed25519Verifier::new(vec![ledger.verifying_key()]));
        let store =
            SnapshotStore::open(Arc::new(RealFs::new()), &dir, StoreOptions::new(verifier))?;
        let tasks = TaskSystem::threaded(EngineConfig::default())?;

        let node = Node {
            ledger,
            snapshotter: None,
            pending_sig: None,
            committed: 0,
        }
        .start();
        let snapshotter = Snapshotter::new(
            SnapshotterConfig {
                tx_interval: 50,
                ..SnapshotterConfig::default()
            },
            tasks,
            Arc::new(store),
            Arc::new(Applied),
            Arc::new(ActorSink(node.clone().recipient())),
        )?;
        let snap = SnapshotterActor::new(snapshotter, Some(node.clone().recipient())).start();
        node.do_send(SetSnapshotter(snap));
        node.do_send(Tick);
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    system.run()?;
    Ok(())
}

/// Wire the snapshotter's address into the node once both actors exist.
struct SetSnapshotter(Addr<SnapshotterActor>);
impl Message for SetSnapshotter {
    type Result = ();
}
impl Handler<SetSnapshotter> for Node {
    type Result = ();
    fn handle(&mut self, m: SetSnapshotter, _: &mut Context<Self>) {
        self.snapshotter = Some(m.0);
    }
}
