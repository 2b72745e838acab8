//! The hashing pool runs below the node's priority, and only its own threads do.

use snapseal_actors::{
    configure_hashing, current_thread_nice, hashing_config, on_hashing_thread, BodyBuilder,
    HashingConfig, HashingError,
};
use std::io::Write;

/// One test: the pool is process-wide, so its configuration is made once per test binary.
#[test]
fn the_hashing_pool_runs_at_its_nice_value_and_is_configured_once() {
    let node_nice = current_thread_nice();
    let wanted = HashingConfig::default().with_threads(2).with_nice(12);
    configure_hashing(wanted).unwrap();
    assert_eq!(hashing_config(), Some(wanted));
    let pool_nice = on_hashing_thread(current_thread_nice).unwrap();
    assert_eq!(
        pool_nice, 12,
        "the pool's threads run at the configured nice value"
    );
    assert_eq!(
        current_thread_nice(),
        node_nice,
        "the caller's priority is untouched"
    );
    // A large body goes through the pool and hashes the same as a plain BLAKE3.
    let body: Vec<u8> = (0..(3usize << 20)).map(|i| (i % 251) as u8).collect();
    let mut b = BodyBuilder::new(None).unwrap();
    b.write_all(&body).unwrap();
    assert_eq!(
        b.finish().unwrap().digest(),
        *blake3::hash(&body).as_bytes()
    );
    match configure_hashing(HashingConfig::leave_one_cpu()) {
        Err(HashingError::AlreadyRunning { running }) => assert_eq!(running, Some(wanted)),
        other => panic!("a second configuration must be refused: {other:?}"),
    }
}
