//! snapseal-tokio: snapseal's async edge, for a node running on tokio.
//!
//! snapseal's library crates are synchronous and never depend on tokio. Most of what a node
//! calls is cheap and stays synchronous: the consensus calls (`record_committable`, `commit`,
//! `record_evidence…`, `record_signature`, `record_tree`, `rollback`) update memory and queue
//! work on snapseal's own engine; they never wait for I/O or for a task, so a consensus task
//! on a runtime worker calls them directly. What does block gets an async form here, run on
//! tokio's blocking pool (`spawn_blocking`) so no runtime worker waits on a disk or a lock:
//!
//! - [`open_store`] runs [`SnapshotStore::open`](snapseal_persist::SnapshotStore::open) (lock,
//!   crash clean-up);
//! - [`AsyncSnapshotter::open`] runs [`Snapshotter::new`](snapseal_actors::Snapshotter::new),
//!   which resumes the schedule from the newest snapshot that verifies;
//! - [`latest`] and [`AsyncSnapshotter::latest`] find the newest snapshot that verifies;
//! - [`AsyncSnapshotter::close`] resolves once the Snapshotter is closed and the store handle
//!   dropped; dropping an `AsyncSnapshotter` closes it on a blocking thread too;
//! - [`AsyncSnapshotter::wait_idle`] resolves once the generations started so far ended,
//!   woken by the Snapshotter's events;
//! - [`AsyncSnapshotter::events`] gives the events as a [`futures_core::Stream`]
//!   ([`EventStream`], bounded with overflow accounting).
//!
//! The facade re-exports this crate as `snapseal::tokio` (feature `tokio`). docs/SPEC.md §3.5
//! is the contract; `examples/tokio_kv.rs` is a whole node, restarted after a `kill -9` by
//! the facade's tests.
//!
//! A node on tokio, from the store to a committed snapshot (statement mode: the node signs
//! its receipts; one node, so each entry commits as it is appended):
//!
//! ```
//! use std::sync::Arc;
//! use snapseal_actors::{
//!     CaptureError, CloseMode, EvidenceSink, Hash, SnapshotEvent, Snapshotter,
//!     SnapshotterConfig, StateSource, StateView,
//! };
//! use snapseal_engine::{EngineConfig, TaskSystem};
//! use snapseal_persist::fs::RealFs;
//! use snapseal_persist::receipt::Ed25519Verifier;
//! use snapseal_persist::{SigningKey, StoreOptions};
//! use snapseal_tokio::{open_store, AsyncSnapshotter};
//! use tokio::sync::mpsc;
//!
//! struct State;
//! impl StateSource for State {
//!     fn capture(&self, _idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
//!         Ok(Box::new(State))
//!     }
//! }
//! impl StateView for State {
//!     fn write_to(&mut self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
//!         out.write_all(b"the node's state")
//!     }
//! }
//! /// Evidence requests into the consensus task's channel: an unbounded send never blocks.
//! struct ToConsensus(mpsc::UnboundedSender<(u64, Hash)>);
//! impl EvidenceSink for ToConsensus {
//!     fn append_evidence(&self, snapshot_idx: u64, claims_digest: Hash) {
//!         let _ = self.0.send((snapshot_idx, claims_digest));
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().to_path_buf();
//! let key = SigningKey::from_bytes(&[5; 32]); // the node's own key, from its key store
//! let verifier = Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
//! let store = open_store(Arc::new(RealFs), dir, StoreOptions::new(Arc::new(verifier))).await?;
//! let tasks = TaskSystem::threaded(EngineConfig::default())?;
//! let (requests, mut evidence_wanted) = mpsc::unbounded_channel();
//! let config = SnapshotterConfig { tx_interval: 10, ..SnapshotterConfig::default() };
//! let sink = Arc::new(ToConsensus(requests));
//! let store2 = Arc::clone(&store);
//! let mut snap = AsyncSnapshotter::open_with(move || {
//!     Snapshotter::new(config, tasks, store2, Arc::new(State), sink)
//!         .map(|s| s.with_statement_key(key))
//! })
//! .await?;
//! let mut events = snap.events();
//!
//! // The consensus task: entries 1 to 10 commit; 10 is a snapshot point.
//! for idx in 1..=10 {
//!     snap.record_committable(idx);
//!     snap.commit(idx);
//! }
//! // Serialised on snapseal's workers: the node appends the evidence entry (11, term 1).
//! let (snapshot_idx, digest) = evidence_wanted.recv().await.ok_or("no request")?;
//! snap.record_evidence_in_term(11, snapshot_idx, digest, 1)?;
//! snap.commit(11); // the evidence is committed: the snapshot is written
//! snap.wait_idle().await;
//! assert!(matches!(events.next().await, Some(SnapshotEvent::Committed(c)) if c.idx == 10));
//! assert_eq!(snap.latest().await?.map(|f| f.name().idx), Some(10));
//!
//! snap.close(CloseMode::Drain).await?;
//! assert!(events.next().await.is_none()); // the stream ends with the Snapshotter
//! drop(store); // the directory's lock is free now
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod blocking;
mod error;
mod events;
mod idle;
mod snapshotter;
mod store;

pub use error::Error;
pub use events::EventStream;
pub use snapshotter::AsyncSnapshotter;
pub use store::{latest, open_store};
