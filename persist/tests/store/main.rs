//! The store's life, in one test binary (each module was once a binary of its own, linking the
//! whole dependency graph again) over the snapshots and SimFs set-up of [`fixture`]: open-time
//! recovery, the lock, `latest()` and its read model, holds, retention, quarantine, ingest,
//! pending (spilled) files, overlapping persists, a real directory, and the metrics it reports.
//!
//! `cargo test -p snapseal-persist --test store [module::]` runs them (all, or one module's).
//! proptest keeps the failures it found in `tests/proptest-regressions/<module>.txt`.

#[path = "../fixture/mod.rs"]
mod fixture;

mod chunk_transfer;
mod chunked;
mod ingest;
mod latest_plan;
mod metrics;
mod retention;
mod spill_store;
mod store;
mod store_parallel;
mod store_real;
