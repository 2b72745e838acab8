//! Shipping and restoring against the local-directory remote (`file://`, the embedded
//! default), in one test binary (each module was once a binary of its own, linking the whole
//! dependency graph again): the round trip, gc and holds, a hostile remote and restore target,
//! files changing under the shipper, a shipper killed mid-upload, bounded memory. Needs no
//! server; the S3 tests are the `s3` binary, which shares [`support`].
//!
//! `cargo test -p snapseal-ship --test local [module::]` runs them (all, or one module's).

#[path = "../support/mod.rs"]
mod support;

mod async_api;
mod bounded_memory;
mod changed_under_the_shipper;
mod chunked;
mod confirm;
mod full_remote;
mod hostile_local;
mod indexes;
mod layout;
mod layout_trials;
mod local;
mod local_interrupted;
