//! The simulation harness and what it drives, in one test binary (each module was once a binary
//! of its own, linking the whole dependency graph again): seed sweeps, the harness's checks
//! shown to be live, the bugs it found pinned, the model-based test, the checked-in fuzz
//! corpus replayed through the fuzz targets' entry functions, and the crash driver's checks
//! shown to be live.
//!
//! `cargo test --test simulation [module::]` runs them (all, or one module's); a failing seed
//! prints its own replay command (`-- --exact harness_seeds::replay`).

mod crash_driver;
mod fuzz_corpus;
mod harness_invariants;
mod harness_regressions;
mod harness_seeds;
mod model_snapshotter;
