//! snapseal-sim: the simulated world snapseal is tested in. Not published, and never a
//! dependency of a production build (the `snapseal` command included): it turns on persist's
//! simulated filesystem (`SimFs`).
//!
//! - [`crash`]: a seeded crash test for an embedder's own node (its state type, `StateSource`
//!   and restore) over the real Snapshotter and store on `SimFs`, with power losses and
//!   recovery checked;
//! - [`harness`]: a deterministic harness (manual executor, `SimFs`, seeded operations) that
//!   checks the SPEC's promises after every step, with the fuzz entry points;
//! - the reference ledger (in memory and on disk) and the simulated node the harness drives
//!   live in `snapseal-ledger`, which the `snapseal` command shares; [`ledger`], [`node`],
//!   [`disk_ledger`], [`disk_node`] and [`frontier`] are its modules, re-exported here so a
//!   test that already depends on the simulator needs no second dependency.
//!
//! An embedder's tests can use all of it (the harness drives the reference ledger and its
//! key-value state; [`crash`] drives the embedder's own); none of it belongs in a production
//! node.
#![deny(missing_docs)]

pub mod crash;
pub mod harness;

pub use snapseal_ledger::{disk_ledger, disk_node, frontier, ledger, node};
