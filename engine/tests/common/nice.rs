//! Reading a thread's nice value, for the tests of lowered priorities (the engine's workers
//! here, persist's hashing pool in `persist/tests/hashing_pool.rs`, which includes this file).

/// The nice value of the calling thread, from `/proc/thread-self/stat` (field 19).
pub(crate) fn own_nice() -> i32 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // The command name (field 2) may hold spaces; fields after its closing parenthesis.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(16).unwrap().parse().unwrap()
}
