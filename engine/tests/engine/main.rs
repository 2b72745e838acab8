//! The task system's behaviour, in one test binary (each module was once a binary of its own,
//! linking the whole dependency graph again) over the helpers of [`common`]: configuration,
//! ordering and mutual exclusion under contention, cancel and pause, failures and panics,
//! timers, shutdown, and the manual executor's determinism. The tests that observe the whole
//! process are the `process_wide` binary; the loom model is `loom_handoff`.
//!
//! `cargo test -p snapseal-engine --test engine [module::]` runs them (all, or one module's).

#[path = "../common/mod.rs"]
mod common;

mod cancel_pause;
mod config;
mod determinism;
mod failure;
mod ordering;
mod shutdown;
mod timers;
