//! The Snapshotter, in one test binary (each module was once a binary of its own, linking the
//! whole dependency graph again): its node-facing contract over the minimal node of [`common`],
//! and the actix facade end to end.
//!
//! `cargo test -p snapseal-actors --test snapshotter [module::]` runs them (all, or one
//! module's). The crate's dev-dependency on itself turns on `actix` for its tests.

mod common;

#[cfg(feature = "actix")]
mod actix_facade;
mod lifecycle;
