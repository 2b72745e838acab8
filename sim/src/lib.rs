//! snapseal-sim: the simulated world snapseal is tested in.
//!
//! - [`ledger`]: a reference CCF-style ledger (key-value writes, evidence txs, signature txs,
//!   a BLAKE3 Merkle tree and Ed25519-signed roots) implementing
//!   [`ProofSource`](snapseal_actors::ProofSource);
//! - [`disk_ledger`]: the same ledger on disk (append-only chunk files, a compact Merkle
//!   [`frontier`]), bounded in memory at any length, and [`disk_node`], the node's ledger and
//!   KV state on it;
//! - [`node`]: a simulated replicated node driving a [`Snapshotter`](snapseal_actors::Snapshotter)
//!   from that ledger, used by the demo and the scenario tests;
//! - [`harness`]: a deterministic harness (manual executor, `SimFs`, seeded operations) that
//!   checks the SPEC's promises after every step, with the fuzz entry points.
//!
//! An embedder's tests can use all three; none of it belongs in a production node.
#![deny(missing_docs)]

pub mod disk_ledger;
pub mod disk_node;
pub mod frontier;
pub mod harness;
pub mod ledger;
pub mod node;
