//! snapseal-openraft: snapseal as the snapshot store of [`openraft`] (0.9).
//!
//! openraft decides when to snapshot and asks the state machine to build one at its applied
//! (hence committed) index; a follower that is too far behind receives the leader's snapshot
//! and installs it. [`SealedStateMachine`] makes every one of those snapshots a snapseal file:
//! written with the crash-safe sequence (exclusive create, fsync, close, non-replacing rename,
//! directory fsync), bounded in memory (the body streams to disk past a budget), and carrying
//! a *signed statement* receipt: the node's Ed25519 key signs the claims digest (index,
//! flags, lengths, body digest) and the term. openraft's snapshot metadata (last log id,
//! membership, snapshot id) is a record at the start of the body, so it is under the signed
//! digest too. A received snapshot is verified on disk before it gets a committed name, and
//! recovery takes the newest snapshot that verifies.
//!
//! **Chunked snapshots** ([`SealOptions::chunked`]): each body is cut into content-defined
//! chunks stored once in pack files beside the snapshots, so a snapshot *writes* only the
//! chunks that changed. openraft 0.9's snapshot transport is a one-way byte stream (the leader
//! sends `SnapshotData` in pieces; the follower cannot tell it which chunks it already holds),
//! so what a chunked snapshot sends must be self-contained: the file (its body the chunk list)
//! followed by every distinct chunk it names. A follower receiving it writes only the chunks
//! its store lacks, checks each against its hash as it arrives, and commits the file only
//! once it verified with its chunks; a damaged chunk fails the receive and nothing is
//! committed. So with this transport **the network cost of an install is the full state; the
//! follower's disk cost is the change.** A transport with a request/response step — openraft's
//! `full_snapshot` with your own network, 0.10's streaming, or the cluster's own — could ask
//! for the missing chunks only (`snapseal_persist::internals::chunks` has both sides).
//!
//! The user's state plugs in through [`SealedState`]: apply an entry, serialise to a writer
//! (or hand out frozen chunks of its serialised form), restore from a reader. The type config
//! names [`SealedData`] as its `SnapshotData`. The application reads the live state through a
//! [`StateHandle`] (a key-value service answers GETs from it), which follows applies and
//! snapshot installs; [`shutdown`] stops a node and returns once its directory is free.
//!
//! ```
//! use std::io::{Read, Write};
//! use openraft::storage::RaftStateMachine;
//! use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
//! use snapseal_openraft::{SealOptions, SealedData, SealedState, SealedStateMachine};
//! use snapseal_persist::SigningKey;
//!
//! openraft::declare_raft_types!(
//!     pub Config: D = u64, R = u64, SnapshotData = SealedData,
//! );
//!
//! /// A running sum of the entries applied.
//! #[derive(Clone, Default)]
//! struct Sum(u64);
//!
//! impl SealedState<Config> for Sum {
//!     fn apply(&mut self, _: &LogId<u64>, data: &u64) -> u64 {
//!         self.0 = self.0.wrapping_add(*data);
//!         self.0
//!     }
//!     fn no_data_response(&self, _: &LogId<u64>) -> u64 {
//!         self.0
//!     }
//!     fn serialise(&self, out: &mut dyn Write) -> std::io::Result<()> {
//!         out.write_all(&self.0.to_le_bytes())
//!     }
//!     fn restore(input: &mut dyn Read) -> std::io::Result<Self> {
//!         let mut b = [0u8; 8];
//!         input.read_exact(&mut b)?;
//!         Ok(Sum(u64::from_le_bytes(b)))
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path(); // e.g. /var/lib/node/snapshots
//! let key = SigningKey::from_bytes(&[7; 32]);
//! let opts = SealOptions::new(key.clone(), vec![key.verifying_key()]);
//! let mut sm: SealedStateMachine<Config, Sum> = SealedStateMachine::open(dir, opts.clone())?;
//! // Hand `sm` to `openraft::Raft::new` with a log store and a network; openraft then
//! // applies entries and builds snapshots through it, as here by hand:
//! # let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! # rt.block_on(async {
//! let entry = |index, n| Entry::<Config> {
//!     log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
//!     payload: EntryPayload::Normal(n),
//! };
//! assert_eq!(sm.apply([entry(1, 5), entry(2, 7)]).await?, [5, 12]);
//! let snapshot = sm.get_snapshot_builder().await.build_snapshot().await?;
//! assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(2));
//! # Ok::<_, openraft::StorageError<u64>>(())
//! # })?;
//! drop(sm);
//!
//! // After a restart: the state of the newest snapshot that verifies.
//! let sm: SealedStateMachine<Config, Sum> = SealedStateMachine::open(dir, opts)?;
//! assert_eq!(sm.state_handle().read().0, 12);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod chunked;
mod data;
mod error;
mod handle;
mod machine;
mod meta;
mod release;
#[cfg(feature = "testing")]
pub mod testing;

pub use data::SealedData;
pub use error::Error;
pub use handle::StateHandle;
pub use machine::{SealOptions, SealedSnapshotBuilder, SealedState, SealedStateMachine};
pub use release::{shutdown, Released};
pub use snapseal_persist::FrozenChunk;
