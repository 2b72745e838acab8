//! Committed-file bytes through the header parser, the reader and the store's latest().
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = snapseal_sim::harness::fuzz_entry::file_reader(data) {
        panic!("{failure}");
    }
});
