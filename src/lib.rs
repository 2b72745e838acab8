//! snapseal facade crate.
#![deny(missing_docs)]
