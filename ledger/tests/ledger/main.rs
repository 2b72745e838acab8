//! The reference ledger's integration tests, in one test binary (each module was once a
//! binary of its own, linking the whole dependency graph again): the disk ledger against the
//! memory ledger, the node on the disk ledger, and the disk ledger as a trust boundary.
//!
//! `cargo test -p snapseal-ledger --test ledger [module::]` runs them (all, or one module's).

mod disk_ledger;
mod disk_node;
mod ledger_trust;
