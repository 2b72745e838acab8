//! The library half of the `snapseal` command: the measurements behind `snapseal bench`, shared
//! with the workspace's divan benches and `examples/bench.rs`.
//!
//! Nothing here is for embedding in a node; the node-facing API is the `snapseal` crate.
#![deny(missing_docs)]

pub mod bench;
pub mod units;
