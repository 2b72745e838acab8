//! The actix facade end to end: messages in, notifications out, files on disk.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use snapseal_actors::actor::actix::prelude::*;
use snapseal_actors::actor::{
    Close, Commit, GetCounters, GetPending, RecordCommittable, RecordEvidence, RecordSignature,
    RecordTree, SnapshotNotification, SnapshotterActor,
};
use snapseal_actors::{CloseMode, SnapshotEvent, Snapshotter, SnapshotterConfig};
use snapseal_engine::{EngineConfig, TaskSystem};
use snapseal_persist::fs::RealFs;
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::{SnapshotStore, StoreOptions};
use snapseal_sim::ledger::{Ledger, TxKind};
use snapseal_sim::node::{ChannelSink, KvState};

/// A Snapshotter on the threaded engine over a store in `dir` trusting `ledger`'s key, snapshotting
/// every 10 txs; the receiver gets the evidence requests.
fn threaded_snapshotter(
    dir: &std::path::Path,
    ledger: &Ledger,
) -> (
    Snapshotter,
    TaskSystem,
    crossbeam_channel::Receiver<(u64, snapseal_actors::Hash)>,
) {
    let verifier = Arc::new(Ed25519Verifier::new(vec![ledger.verifying_key()]));
    let store =
        SnapshotStore::open(Arc::new(RealFs::new()), dir, StoreOptions::new(verifier)).unwrap();
    let tasks = TaskSystem::threaded(EngineConfig::default()).unwrap();
    let (sink, evidence) = ChannelSink::new();
    let snapshotter = Snapshotter::new(
        SnapshotterConfig {
            tx_interval: 10,
            ..Default::default()
        },
        tasks.clone(),
        Arc::new(store),
        Arc::new(KvState::new(ledger.clone())),
        Arc::new(sink),
    )
    .unwrap();
    (snapshotter, tasks, evidence)
}

/// Collects notifications.
struct Collector(Arc<Mutex<Vec<SnapshotEvent>>>);
impl Actor for Collector {
    type Context = Context<Self>;
}
impl Handler<SnapshotNotification> for Collector {
    type Result = ();
    fn handle(&mut self, m: SnapshotNotification, _: &mut Context<Self>) {
        self.0.lock().push(m.0);
    }
}

#[test]
fn messages_drive_a_snapshot_to_disk_and_notify_the_subscriber() {
    let tmp = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let system = System::new();
    let seen2 = Arc::clone(&seen);
    let seen3 = Arc::clone(&seen);
    let dir = tmp.path().to_path_buf();
    system.block_on(async move {
        let ledger = Ledger::from_seed(5);
        let (snapshotter, tasks, evidence) = threaded_snapshotter(&dir, &ledger);
        let collector = Collector(seen2).start();
        let snap = SnapshotterActor::new(snapshotter, Some(collector.recipient())).start();

        for i in 1..10u64 {
            ledger.append(TxKind::Write {
                key: i,
                value: Arc::from(vec![i as u8]),
            });
        }
        let s10 = ledger.append_signature();
        assert!(snap.send(RecordCommittable(10)).await.unwrap());
        snap.send(RecordSignature(s10)).await.unwrap();
        snap.send(RecordTree {
            sig_idx: 10,
            tree: ledger.proofs(),
        })
        .await
        .unwrap();
        snap.send(Commit(10)).await.unwrap();
        // The serialise action runs on the engine, not on this arbiter.
        let (snapshot_idx, digest) = evidence.recv_timeout(Duration::from_secs(30)).unwrap();
        let e = ledger.append(TxKind::Evidence {
            snapshot_idx,
            digest,
        });
        snap.send(RecordEvidence {
            evidence_idx: e,
            snapshot_idx,
            digest,
            term: None,
        })
        .await
        .unwrap()
        .unwrap();
        let s12 = ledger.append_signature();
        snap.send(RecordSignature(s12)).await.unwrap();
        snap.send(RecordTree {
            sig_idx: 12,
            tree: ledger.proofs(),
        })
        .await
        .unwrap();
        snap.send(Commit(12)).await.unwrap();
        assert!(tasks.wait_idle(Duration::from_secs(30)));
        let pending = snap.send(GetPending).await.unwrap();
        assert!(pending.is_empty(), "{pending:?}");
        assert_eq!(snap.send(GetCounters).await.unwrap().persisted, 1);
        // Give the forwarder thread a moment to deliver; bounded wait, not a timing assertion.
        for _ in 0..300 {
            if !seen3.lock().is_empty() {
                break;
            }
            snapseal_actors::actor::actix::clock::sleep(Duration::from_millis(10)).await;
        }
    });
    let events = seen.lock().clone();
    assert!(
        matches!(&events[..], [SnapshotEvent::Committed(c)] if c.idx == 10 && c.evidence_idx == 11 && c.sig_idx == 12),
        "{events:?}"
    );
    assert!(tmp.path().join("snapshot_10_11.committed").exists());
}

/// A busy node: while it works on a long request ([`Hold`]) 64 client messages wait in its
/// mailbox — far above actix's default capacity (16) — as in a node serving many clients.
struct BusyNode {
    committed: Arc<Mutex<Vec<u64>>>,
}
struct Client;
impl Message for Client {
    type Result = ();
}
/// Keeps the node busy until the test says so.
struct Hold(crossbeam_channel::Receiver<()>);
impl Message for Hold {
    type Result = ();
}
impl Actor for BusyNode {
    type Context = Context<Self>;
}
impl Handler<Client> for BusyNode {
    type Result = ();
    fn handle(&mut self, _: Client, _: &mut Context<Self>) {}
}
impl Handler<Hold> for BusyNode {
    type Result = ();
    fn handle(&mut self, m: Hold, _: &mut Context<Self>) {
        let _ = m.0.recv();
    }
}
impl Handler<SnapshotNotification> for BusyNode {
    type Result = ();
    fn handle(&mut self, m: SnapshotNotification, _: &mut Context<Self>) {
        if let SnapshotEvent::Committed(c) = m.0 {
            self.committed.lock().push(c.idx);
        }
    }
}

#[test]
fn a_flooded_subscriber_still_gets_every_committed_notification() {
    const SNAPSHOTS: u64 = 5;
    let tmp = tempfile::tempdir().unwrap();
    let committed = Arc::new(Mutex::new(Vec::new()));
    let system = System::new();
    let dir = tmp.path().to_path_buf();
    let (seen, watch) = (Arc::clone(&committed), Arc::clone(&committed));
    system.block_on(async move {
        let ledger = Ledger::from_seed(6);
        let (snapshotter, tasks, evidence) = threaded_snapshotter(&dir, &ledger);
        let arbiter = Arbiter::new();
        let node =
            BusyNode::start_in_arbiter(&arbiter.handle(), move |_| BusyNode { committed: seen });
        let (release, held) = crossbeam_channel::bounded(1);
        node.do_send(Hold(held));
        for _ in 0..64 {
            node.do_send(Client);
        }
        let snap = SnapshotterActor::new(snapshotter, Some(node.recipient())).start();
        let sign = |ledger: &Ledger| {
            let signed = ledger.append_signature();
            let sig_idx = signed.sig_idx;
            let snap = snap.clone();
            let tree = ledger.proofs();
            async move {
                let point = snap.send(RecordCommittable(sig_idx)).await.unwrap();
                snap.send(RecordSignature(signed)).await.unwrap();
                snap.send(RecordTree { sig_idx, tree }).await.unwrap();
                snap.send(Commit(sig_idx)).await.unwrap();
                point
            }
        };
        for k in 1..=SNAPSHOTS {
            while ledger.last_idx() + 1 < 10 * k {
                let i = ledger.last_idx() + 1;
                ledger.append(TxKind::Write {
                    key: i,
                    value: Arc::from(vec![i as u8]),
                });
            }
            assert!(sign(&ledger).await, "a point at {}", 10 * k);
            let (snapshot_idx, digest) = evidence.recv_timeout(Duration::from_secs(60)).unwrap();
            let e = ledger.append(TxKind::Evidence {
                snapshot_idx,
                digest,
            });
            snap.send(RecordEvidence {
                evidence_idx: e,
                snapshot_idx,
                digest,
                term: None,
            })
            .await
            .unwrap()
            .unwrap();
            sign(&ledger).await;
            assert!(tasks.wait_idle(Duration::from_secs(60)));
        }
        assert!(snap.send(GetPending).await.unwrap().is_empty());
        assert_eq!(snap.send(GetCounters).await.unwrap().persisted, SNAPSHOTS);
        // Every notification was sent while the node was busy; now let it work through them.
        release.send(()).unwrap();
        // Bounded wait for delivery through the busy mailbox; not a timing assertion.
        for _ in 0..3000 {
            if watch.lock().len() as u64 >= SNAPSHOTS {
                break;
            }
            snapseal_actors::actor::actix::clock::sleep(Duration::from_millis(10)).await;
        }
        arbiter.stop();
    });
    let on_disk: Vec<u64> = {
        let mut v: Vec<u64> = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                let rest = name.strip_prefix("snapshot_")?.strip_suffix(".committed")?;
                rest.split('_').next()?.parse().ok()
            })
            .collect();
        v.sort();
        v
    };
    let mut got = committed.lock().clone();
    got.sort();
    assert_eq!(on_disk, (1..=SNAPSHOTS).map(|k| 10 * k).collect::<Vec<_>>());
    assert_eq!(got, on_disk, "every persisted snapshot was notified");
}

#[test]
fn close_drain_persists_what_was_scheduled_stops_the_actor_and_frees_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let system = System::new();
    let dir = tmp.path().to_path_buf();
    let ledger = Ledger::from_seed(8);
    let ledger2 = ledger.clone();
    system.block_on(async move {
        let ledger = ledger2;
        let (snapshotter, _tasks, evidence) = threaded_snapshotter(&dir, &ledger);
        let snap = SnapshotterActor::new(snapshotter, None).start();
        for i in 1..10u64 {
            ledger.append(TxKind::Write {
                key: i,
                value: Arc::from(vec![i as u8]),
            });
        }
        let s = ledger.append_signature();
        let sig = s.sig_idx;
        assert!(snap.send(RecordCommittable(sig)).await.unwrap());
        snap.send(RecordSignature(s)).await.unwrap();
        snap.send(RecordTree {
            sig_idx: sig,
            tree: ledger.proofs(),
        })
        .await
        .unwrap();
        snap.send(Commit(sig)).await.unwrap();
        let (snapshot_idx, digest) = evidence.recv_timeout(Duration::from_secs(30)).unwrap();
        let e = ledger.append(TxKind::Evidence {
            snapshot_idx,
            digest,
        });
        snap.send(RecordEvidence {
            evidence_idx: e,
            snapshot_idx,
            digest,
            term: None,
        })
        .await
        .unwrap()
        .unwrap();
        let s2 = ledger.append_signature();
        let sig2 = s2.sig_idx;
        snap.send(RecordSignature(s2)).await.unwrap();
        snap.send(RecordTree {
            sig_idx: sig2,
            tree: ledger.proofs(),
        })
        .await
        .unwrap();
        // The persist is scheduled here; nothing waits for it but the close.
        snap.send(Commit(sig2)).await.unwrap();
        snap.send(Close(CloseMode::Drain)).await.unwrap();
        assert!(
            matches!(snap.send(GetCounters).await, Err(MailboxError::Closed)),
            "the actor stops with the Snapshotter"
        );
    });
    let committed: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".committed"))
        .collect();
    assert_eq!(committed.len(), 1, "{committed:?}");
    // The store's directory lock went with the Snapshotter: the directory opens again.
    let verifier = Arc::new(Ed25519Verifier::new(vec![ledger.verifying_key()]));
    SnapshotStore::open(
        Arc::new(RealFs::new()),
        tmp.path(),
        StoreOptions::new(verifier),
    )
    .unwrap();
}

#[test]
fn statement_evidence_sent_with_a_term_is_signed_in_that_term() {
    let tmp = tempfile::tempdir().unwrap();
    let key = snapseal_persist::SigningKey::from_bytes(&[5; 32]);
    let store = crate::statement_node::store_trusting(tmp.path(), &[key.verifying_key()]).unwrap();
    let tasks = TaskSystem::manual_fifo();
    let (sink, evidence) = ChannelSink::new();
    let snapshotter = Snapshotter::new(
        SnapshotterConfig {
            tx_interval: 10,
            ..Default::default()
        },
        tasks.clone(),
        Arc::clone(&store),
        Arc::new(crate::statement_node::IndexState),
        Arc::new(sink),
    )
    .unwrap()
    .with_statement_key(key);
    let system = System::new();
    system.block_on(async move {
        let snap = SnapshotterActor::new(snapshotter, None).start();
        assert!(snap.send(RecordCommittable(10)).await.unwrap());
        snap.send(Commit(10)).await.unwrap();
        tasks.run_until_idle();
        let (snapshot_idx, digest) = evidence.try_recv().unwrap();
        snap.send(RecordEvidence {
            evidence_idx: 11,
            snapshot_idx,
            digest,
            term: Some(6),
        })
        .await
        .unwrap()
        .unwrap();
        snap.send(Commit(11)).await.unwrap();
        tasks.run_until_idle();
        snap.send(Close(CloseMode::Drain)).await.unwrap();
    });
    let latest = store.latest().unwrap().expect("the snapshot at 10");
    let receipt = latest.receipt();
    assert_eq!((receipt.sig_idx, receipt.term), (11, Some(6)));
}
