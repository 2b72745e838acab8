//! Event order: arbitrary seed + operation list through the simulation harness, every invariant checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = snapseal_sim::harness::fuzz_entry::event_order(data) {
        panic!("{failure}");
    }
});
