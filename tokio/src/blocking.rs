//! Runs a blocking snapseal call on tokio's blocking pool, so that no runtime worker waits on
//! a disk or on a lock.

use crate::Error;

/// Runs `f` on a blocking thread of the current runtime and waits for it without blocking the
/// caller's worker. A panic inside `f` is resumed on the caller, as if `f` had run there.
///
/// Dropping the returned future does not stop `f`: once started it runs to the end (a
/// blocking call cannot be interrupted), its result dropped. Must be polled inside a tokio
/// runtime (`spawn_blocking` panics outside one).
pub(crate) async fn run<T, F>(step: &'static str, f: F) -> Result<T, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(out) => Ok(out),
        Err(join) => match join.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(Error::RuntimeShutDown { step }),
        },
    }
}
