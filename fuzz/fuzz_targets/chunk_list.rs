//! The chunk list decoder (docs/FORMAT.md §2.2) on any bytes: never a panic; a list it
//! accepts re-encodes to exactly the input, every length is in range and they add up to
//! `raw_len`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapseal_persist::internals::chunks::decode_list;

fuzz_target!(|data: &[u8]| {
    let Some((raw, list)) = data.split_first_chunk::<8>() else {
        return;
    };
    // Small raw_len values too, so that accepted lists are found.
    let raw_len = u64::from_le_bytes(*raw) % (1 << 24);
    if let Ok(entries) = decode_list(list, raw_len) {
        let mut again = Vec::with_capacity(list.len());
        let mut sum = 0u64;
        for (len, hash) in &entries {
            assert!((1..=256 * 1024).contains(len), "length {len} accepted");
            sum += u64::from(*len);
            again.extend_from_slice(&len.to_le_bytes());
            again.extend_from_slice(hash);
        }
        assert_eq!(again, list, "an accepted list re-encodes to its bytes");
        assert_eq!(sum, raw_len, "an accepted list adds up to raw_len");
    }
});
