//! What a snapshot file is and when it verifies, in one test binary (each module was once a
//! binary of its own, linking the whole dependency graph again) over the snapshots of
//! [`fixture`]: names, the header and body format and its published vectors, the Merkle tree,
//! receipts and their schemes, forged, damaged and hostile files, the streamed body reader, and
//! the statements of the documents pinned one test each.
//!
//! `cargo test -p snapseal-persist --test format [module::]` runs them (all, or one module's).
//! proptest keeps the failures it found in `tests/proptest-regressions/<module>.txt`.

#[path = "../fixture/mod.rs"]
mod fixture;

mod body_reader;
mod corruption;
mod documented;
mod forgery;
mod format;
mod format_vector;
mod ledger_mapping;
mod merkle;
mod names;
mod receipt;
mod scheme;
