//! snapseal as openraft's state machine, in one test binary (each module was once a binary of
//! its own, linking the whole dependency graph again), over the key-value service of the
//! `openraft_kv` example (included here, and run to the end by `example_runs`) and the
//! crate's `testing` log and network: openraft's own storage suite, an in-process cluster
//! whose snapshots are snapseal files, the live state handle, the build's one frozen view, and
//! shutdown releasing the directory.
//!
//! `cargo test -p snapseal-openraft --test adapter [module::]` runs them (all, or one module's).

// The example's `main` is not called here (`example_runs` calls its `run`).
#[allow(dead_code)]
#[path = "../../examples/openraft_kv.rs"]
mod example;

mod build;
mod chunked;
mod cluster;
mod example_runs;
mod handle;
mod resend;
mod shutdown;
mod suite;
