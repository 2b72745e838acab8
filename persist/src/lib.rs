//! snapseal-persist: the on-disk side of snapseal.
//!
//! File names, the committed file format, receipts and their verification, the crash-safe
//! writer, the reader and the store, and the filesystem seam that lets tests inject faults and
//! crashes. This crate knows nothing about actors or the task system.
#![deny(missing_docs)]

pub mod format;
pub mod fs;
pub mod names;
pub mod receipt;
