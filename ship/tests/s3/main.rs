//! Shipping and restoring against a real S3-compatible server (moto), in one test binary
//! (each module was once a binary of its own, linking the whole dependency graph again): the
//! protocol (`s3`), faults between the shipper and the server (`faults`), and faults of the
//! server process itself (`server_process`, on moto processes of its own). Without a server
//! each test says it was skipped, and why (see `s3`). Shares [`support`] with the `local`
//! binary.
//!
//! `SNAPSEAL_S3_ENDPOINT=http://127.0.0.1:5055 cargo test -p snapseal-ship --test s3 [module::]`
//! runs them (all, or one module's).

#[path = "../support/mod.rs"]
mod support;

mod faults;
mod s3;
mod server_process;
