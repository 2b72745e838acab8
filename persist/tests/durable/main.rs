//! What survives a crash or a failed call, in one test binary (each module was once a binary of
//! its own, linking the whole dependency graph again): the filesystem seam's contract on
//! `RealFs` and `SimFs` ([`fs_contract`]), SimFs's crash and fault model, a crash and every
//! injected fault at every step of a persist, in one pass and spilled, and the crash-safe
//! sequence of `write_pending` and `publish`.
//!
//! `cargo test -p snapseal-persist --test durable [module::]` runs them (all, or one module's);
//! `SNAPSEAL_CRASH_SEEDS=<n>` raises the seeds of the crash modules.

#[path = "../fixture/mod.rs"]
mod fixture;
mod fs_contract;

mod durable;
mod fs_real;
mod fs_sim;
mod spill_crash;
mod spill_faults;
mod writer_crash;
mod writer_faults;
