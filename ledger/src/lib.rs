//! snapseal-ledger: the reference ledger a node embedding snapseal would have, and the node
//! that drives a [`Snapshotter`](snapseal_actors::Snapshotter) from it.
//!
//! - [`ledger`]: a CCF-style ledger in memory (key-value writes, evidence txs, signature txs,
//!   the SPEC §4 Merkle tree and Ed25519-signed roots) implementing
//!   [`ProofSource`](snapseal_actors::ProofSource), and the tx types ([`ledger::TxKind`]);
//! - [`disk_ledger`]: the same ledger on disk (append-only chunk files, docs/LEDGER.md),
//!   bounded in memory at any length through a compact Merkle [`frontier`]; its directory and
//!   keys are the archive's artifact seam ([`disk_ledger::LedgerDir`],
//!   [`disk_ledger::ChunkKeys`]);
//! - [`node`]: a simulated replicated node (seeded writes, signatures, one signature of
//!   replication lag) over either ledger, and [`disk_node`], its KV state on the disk ledger:
//!   what `snapseal demo` runs.
//!
//! Every Merkle computation is persist's (`snapseal_persist::receipt`: leaf and node hashes,
//! roots and the RFC 9162 proof walk); this crate only decides where the leaves come from.
//!
//! It is the `snapseal` command's ledger, so it depends on neither the simulator
//! (`snapseal-sim`, which builds on it) nor persist's simulated filesystem, except in its own
//! tests.
#![deny(missing_docs)]

pub mod disk_ledger;
pub mod disk_node;
pub mod frontier;
pub mod ledger;
pub mod node;
