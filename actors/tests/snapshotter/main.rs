//! The Snapshotter, in one test binary (each module was once a binary of its own, linking the
//! whole dependency graph again): its node-facing contract over the minimal node of [`common`],
//! the actix facade end to end, Merkle mode over a ledger built on the library's tree, and
//! statement mode with key membership over the Raft-style member of [`statement_node`].
//!
//! `cargo test -p snapseal-actors --test snapshotter [module::]` runs them (all, or one
//! module's). The crate's dev-dependency on itself turns on `actix` for its tests.

mod common;
mod statement_node;

#[cfg(feature = "actix")]
mod actix_facade;
mod chunked;
mod lifecycle;
mod membership;
mod merkle_ledger;
mod statements;
