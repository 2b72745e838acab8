//! A restart's read of the newest snapshot costs bounded memory: `latest()` verifies a 64 MiB
//! snapshot and its body streams out through `body_reader()` while the process's peak
//! resident set grows by less than 16 MiB — the file is read with `pread`, never mapped (a
//! mapping would add all 64 MiB of its pages).
//!
//! Alone in its test binary (one test), so nothing else moves the process-wide peak meanwhile.

mod rss;

use rss::*;

const STATE: u64 = 64 << 20;
const BOUND_KIB: u64 = 16 << 10;

#[test]
fn latest_and_streaming_the_body_of_a_64_mib_snapshot_grow_the_resident_set_by_under_16_mib() {
    for compression in [None, Some(1)] {
        let tmp = tempfile::tempdir().unwrap();
        let expected = {
            let store = open_store(tmp.path());
            commit_noise(&store, 10, STATE, compression)
        };
        let before = reset_peak();
        let store = open_store(tmp.path());
        let latest = store.latest().unwrap().expect("the snapshot verifies");
        let after_latest = rss_kib().1.saturating_sub(before);
        let (digest, len) = digest_of(&mut latest.body_reader().unwrap()).unwrap();
        let grown = rss_kib().1.saturating_sub(before);
        assert_eq!(
            (digest, len),
            (expected, STATE),
            "{compression:?}: the state read back"
        );
        eprintln!("{compression:?}: latest() +{after_latest} KiB, then the body +{grown} KiB");
        assert!(
            grown < BOUND_KIB,
            "{compression:?}: peak RSS grew by {grown} KiB ({after_latest} KiB by latest()) \
             for a {} MiB snapshot",
            STATE >> 20
        );
    }
}
