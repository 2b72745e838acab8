//! The hashing pool runs below the node's priority, and only its own threads do.
//!
//! Alone in its test binary: the pool is process-wide, and any other test hashing a large body
//! would start it first with the default configuration.

use std::io::Write;

use snapseal_persist::internals::on_hashing_thread;
use snapseal_persist::{
    configure_hashing, hashing_config, BodyBuilder, HashingConfig, HashingError,
};

// The engine's tests read a thread's nice value the same way; one copy of the helper.
#[path = "../../engine/tests/common/nice.rs"]
mod nice;
use nice::own_nice;

/// One test: the pool is process-wide, so its configuration is made once per test binary.
#[test]
fn the_hashing_pool_runs_at_its_nice_value_and_is_configured_once() {
    let node_nice = own_nice();
    // Lowering is always allowed, wherever this runs (under `nice` too, up to 19).
    let wanted = HashingConfig {
        threads: 2,
        nice: node_nice.max(12),
    };
    configure_hashing(wanted).unwrap();
    assert_eq!(hashing_config(), Some(wanted));
    let pool_nice = on_hashing_thread(own_nice).unwrap();
    assert_eq!(
        pool_nice, wanted.nice,
        "the pool's threads run at the configured nice value"
    );
    assert_eq!(own_nice(), node_nice, "the caller's priority is untouched");
    // A large body goes through the pool and hashes the same as a plain BLAKE3.
    let body: Vec<u8> = (0..(3usize << 20)).map(|i| (i % 251) as u8).collect();
    let mut b = BodyBuilder::new(None).unwrap();
    b.write_all(&body).unwrap();
    assert_eq!(
        b.finish().unwrap().digest(),
        *blake3::hash(&body).as_bytes()
    );
    match configure_hashing(HashingConfig::default()) {
        Err(HashingError::AlreadyRunning { running }) => assert_eq!(running, Some(wanted)),
        other => panic!("a second configuration must be refused: {other:?}"),
    }
}
