//! Forged disk ledger chunks against the chunk verifier and the ledger's open, starting from
//! genuine signed chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = snapseal_sim::harness::fuzz_ledger::ledger_chunk(data) {
        panic!("{failure}");
    }
});
