//! Shipping and restoring against real S3-compatible servers (moto and s3rver), in one test
//! binary (each module was once a binary of its own, linking the whole dependency graph
//! again): the protocol (`s3`), faults between the shipper and the server (`faults`), errors
//! that must stop the shipper (`terminal`), and faults of the server process itself
//! (`server_process`, on moto processes of its own). Most tests run once per server
//! (`support::s3::s3_test!`: `<test>::moto`, `<test>::s3rver`). Without a server each test
//! says it was skipped, and why (see `support::s3`). Shares [`support`] with the `local`
//! binary.
//!
//! `SNAPSEAL_S3_ENDPOINTS=moto=http://127.0.0.1:5055,s3rver=http://127.0.0.1:5056 cargo test
//! -p snapseal-ship --test s3 [filter]` runs them (all, one module's, or one server's).

#[path = "../support/mod.rs"]
mod support;

mod chunked;
mod confirm;
mod faults;
mod layout;
#[path = "../local/layout_trials.rs"]
mod layout_trials;
mod s3;
mod server_process;
mod terminal;
