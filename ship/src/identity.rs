//! Who writes a node's index: each shipper draws an instance id when it is made, writes it
//! into its node index, and stops when it finds another id there after claiming the node —
//! another shipper with the same node name, or `remote repair`, wrote it.
//!
//! The id is drawn per shipper, not kept in the store directory: a restarted shipper must take
//! its node over anyway (the previous process may have died without a word), so a persisted id
//! would add a file to the snapshot directory and a crash-safe write of it without making the
//! takeover any safer. What the id detects is two shippers writing the same node index at the
//! same time (see `Shipper` and docs/SHIPPING.md).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The prefix of the writer id `remote repair` writes.
pub(crate) const REPAIR_WRITER: &str = "repair-";

/// A fresh random 128-bit id, 32 lower-case hex digits.
///
/// The randomness is the standard library's (`RandomState`'s keys come from the operating
/// system's generator), mixed with the time, the process id and a counter through BLAKE3: two
/// ids drawn anywhere, even in one process in the same nanosecond, differ.
pub(crate) fn new_writer_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = blake3::Hasher::new();
    for _ in 0..2 {
        hasher.update(&RandomState::new().hash_one(0u8).to_le_bytes());
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.update(&nanos.to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    hasher.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hasher.finalize().to_hex()[..32].to_string()
}

/// The writer id of one run of `remote repair`.
pub(crate) fn repair_writer_id() -> String {
    format!("{REPAIR_WRITER}{}", new_writer_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (new_writer_id(), new_writer_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(repair_writer_id().starts_with(REPAIR_WRITER));
    }
}
