//! The facade's Snapshotter pipeline end to end, in one test binary (each module was once a
//! binary of its own, linking the whole dependency graph again) over the hand-driven node of
//! [`common`], on the manual executor over SimFs and the threaded engine over a real directory:
//! the CCF-style scenarios, spilled bodies, and the zero-copy path.
//!
//! `cargo test --test pipeline [module::]` runs them (all, or one module's).

mod common;

mod scenarios;
mod spill_pipeline;
mod tokio_kv;
mod zero_copy;
