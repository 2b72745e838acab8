//! Archive import against structure-aware mutations of genuine archives (entries, manifest,
//! order, sizes, splices of another run's artifacts): never a panic, never a committed
//! artifact that does not verify or chain, nothing committed by a refused import.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = snapseal_sim::harness::fuzz_archive::archive_import(data) {
        panic!("{failure}");
    }
});
