//! Export and import, in one test binary (each module was once a binary of its own, linking
//! the whole dependency graph again) over the fixtures in [`support`]: the round trip and its
//! levels, chunks of another run spliced in, crashes at every step, hostile archives.
//!
//! `cargo test -p snapseal-archive --test archive [module::]` runs them (all, or one module's).

mod support;

mod chain;
mod chunked;
mod crash;
mod hostile;
mod roundtrip;
