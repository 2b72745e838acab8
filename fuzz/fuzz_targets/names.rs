//! File names through the strict name grammar.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = snapseal_sim::harness::fuzz_entry::names(data) {
        panic!("{failure}");
    }
});
