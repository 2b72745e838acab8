//! The engine's tests that observe the whole process (its threads, the tracing callsites' cached
//! interest), in one test binary apart from the others, where they take turns ([`alone`]).
//!
//! `cargo test -p snapseal-engine --test process_wide [module::]` runs them.

use std::sync::{Mutex, MutexGuard};

#[path = "../common/mod.rs"]
mod common;

mod threads_joined;
mod tracing_events;

/// Held for the whole of each test here, so no two run at once: each one's view of the process
/// must not include the other's threads or callsites.
fn alone() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    // A failed test poisons the lock; the next one still runs, alone.
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
