//! snapseal as openraft's state machine, in one test binary (each module was once a binary of
//! its own, linking the whole dependency graph again) over the key-value state, log store and
//! network of [`support`] (which the `openraft_kv` example shares): openraft's own storage
//! suite, and an in-process cluster whose snapshots are snapseal files.
//!
//! `cargo test -p snapseal-openraft --test adapter [module::]` runs them (all, or one module's).

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod suite;
