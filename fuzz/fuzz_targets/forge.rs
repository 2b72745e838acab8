//! Forged headers, receipts, bodies and names against the verifier, starting from genuine
//! committed files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = snapseal_sim::harness::fuzz_entry::forge(data) {
        panic!("{failure}");
    }
});
