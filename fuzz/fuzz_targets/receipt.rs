//! Receipt bytes through the COSE decoder and the Ed25519 verifier.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = snapseal_sim::harness::fuzz_entry::receipt(data) {
        panic!("{failure}");
    }
});
