//! The hashing pool: where snapseal hashes large bodies, on threads of its own that run at a
//! lower priority than the node's consensus thread.
//!
//! BLAKE3 over a body of hundreds of MiB keeps every core busy for a while. On rayon's global
//! pool those threads compete with the node's consensus thread as equals, and the consensus
//! calls' tail latency grows with every generation in flight. snapseal's own pool instead
//! runs its threads at a higher nice value (lower priority: the scheduler prefers the
//! consensus thread whenever both are ready) and can leave CPUs out altogether.
//!
//! The pool is process-wide, like rayon's, and made on first use from
//! [`HashingConfig::default`] unless [`configure_hashing`] ran before. Its threads lower
//! their priority with the engine's [`lower_thread_priority`], the one place snapseal does.

use std::io;
use std::sync::OnceLock;

use snapseal_engine::{granted_cpus, lower_thread_priority};
use tracing::{debug, warn};

use crate::format::PARALLEL_HASH_THRESHOLD;

/// How the hashing pool is made: `HashingConfig { nice: 15, ..HashingConfig::default() }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashingConfig {
    /// Threads of the pool, at least 1 (0 is taken as 1). Default: the CPUs granted to
    /// snapseal ([`granted_cpus`], the one knob for every pool: every CPU but one unless the
    /// node says otherwise), so a CPU is left to the consensus thread.
    pub threads: usize,
    /// Nice value of the pool's threads, 0 (the node's own priority) to 19 (lowest; a larger
    /// value is taken as 19). Default 10. Raising priority (a negative value, taken as 0) is
    /// not offered.
    pub nice: i32,
}

impl Default for HashingConfig {
    fn default() -> Self {
        HashingConfig {
            threads: granted_cpus().get(),
            nice: 10,
        }
    }
}

impl HashingConfig {
    /// The configuration as the pool runs it: at least one thread, nice within 0..=19.
    fn effective(self) -> Self {
        HashingConfig {
            threads: self.threads.max(1),
            nice: self.nice.clamp(0, 19),
        }
    }
}

/// Why [`configure_hashing`] did not take effect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashingError {
    /// The pool exists already (configured before, or made by a first hash) with this
    /// configuration (`None`: it failed to start and hashing runs on the calling thread);
    /// it stays as it is.
    #[error("the hashing pool is already made ({running:?})")]
    AlreadyRunning {
        /// The running pool's configuration.
        running: Option<HashingConfig>,
    },
    /// The threads could not be started (the source says why).
    #[error("starting the hashing pool")]
    Build(#[source] io::Error),
}

struct Pool {
    pool: rayon::ThreadPool,
    config: HashingConfig,
}

static POOL: OnceLock<Result<Pool, String>> = OnceLock::new();

/// The pool, made with the default configuration if nothing made it yet; the reason when it
/// could not be started (hashing then runs on the calling thread).
fn pool() -> Result<&'static rayon::ThreadPool, &'static str> {
    match POOL.get_or_init(|| build(HashingConfig::default()).map_err(|e| e.to_string())) {
        Ok(p) => Ok(&p.pool),
        Err(e) => Err(e.as_str()),
    }
}

/// Makes the process-wide hashing pool with `config`. Call it once, before the first
/// Snapshotter serialises anything; after that the pool exists and this returns
/// [`HashingError::AlreadyRunning`].
///
/// ```
/// use snapseal_persist::{configure_hashing, hashing_config, HashingConfig, HashingError};
///
/// // At start-up, before any snapshot: the granted CPUs, at nice 15.
/// let config = HashingConfig { nice: 15, ..HashingConfig::default() };
/// configure_hashing(config)?;
/// assert_eq!(hashing_config(), Some(config));
/// // The pool exists now; a second configuration is refused and changes nothing.
/// let again = configure_hashing(HashingConfig::default());
/// assert!(matches!(again, Err(HashingError::AlreadyRunning { running: Some(c) }) if c == config));
/// # Ok::<(), HashingError>(())
/// ```
pub fn configure_hashing(config: HashingConfig) -> Result<(), HashingError> {
    if POOL.get().is_some() {
        return Err(HashingError::AlreadyRunning {
            running: hashing_config(),
        });
    }
    let pool = build(config)?;
    POOL.set(Ok(pool))
        .map_err(|_| HashingError::AlreadyRunning {
            running: hashing_config(),
        })
}

/// The configuration of the running pool (`None` until it exists, or if it failed to start
/// and hashing fell back to the calling thread).
pub fn hashing_config() -> Option<HashingConfig> {
    POOL.get().and_then(|p| p.as_ref().ok()).map(|p| p.config)
}

fn build(config: HashingConfig) -> Result<Pool, HashingError> {
    let config = config.effective();
    let nice = config.nice;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads)
        .thread_name(|i| format!("snapseal-hash-{i}"))
        .start_handler(move |_| lower_thread_priority(nice))
        .build()
        .map_err(|e| HashingError::Build(io::Error::other(e)))?;
    debug!(threads = config.threads, nice, "hashing pool started");
    Ok(Pool { pool, config })
}

/// Hashes `bytes` into `hasher`: a large slice on the hashing pool (all its threads: the CPUs
/// the node granted, never rayon's global pool), a small one on the calling thread (handing it
/// over would cost more than it saves). Other crates run their own hashing on the pool with
/// `internals::on_hashing_thread`.
pub(crate) fn hash(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    if bytes.len() < PARALLEL_HASH_THRESHOLD {
        hasher.update(bytes);
        return;
    }
    match pool() {
        Ok(pool) => pool.install(|| {
            hasher.update_rayon(bytes);
        }),
        Err(e) => {
            // No threads to be had: hash here, slower but correct.
            warn!(error = %e, "hashing pool unavailable; hashing on the calling thread");
            hasher.update(bytes);
        }
    }
}

/// Hashes `bytes` into `hasher` on the hashing pool while `f` runs on the calling thread, and
/// returns what `f` returned once both are done: writing a buffer out overlaps with hashing
/// it. A small slice is hashed first, then `f` runs (the hand-off would cost more).
///
/// When no pool thread has started the hash by the time `f` returns, the calling thread
/// hashes the bytes itself rather than wait: the pool runs at a lower priority, so when
/// another task holds the other CPUs the scheduler runs it last, and a caller waiting for it
/// leaves its own CPU idle until the pool thread is moved there (`snapseal bench`'s spilled
/// serialise against a `write(2)` floor went to 0.49× beside one busy loop).
pub(crate) fn hash_while<R>(hasher: &mut blake3::Hasher, bytes: &[u8], f: impl FnOnce() -> R) -> R {
    hash_while_where(hasher, bytes, f).0
}

/// Which thread hashed in [`hash_while`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HashedOn {
    /// A thread of the hashing pool.
    Pool,
    /// The calling thread: the slice was small, there is no pool, or no pool thread had
    /// started by the time `f` was done.
    Caller,
}

/// [`hash_while`], also saying where the hash ran (for its tests).
fn hash_while_where<R>(
    hasher: &mut blake3::Hasher,
    bytes: &[u8],
    f: impl FnOnce() -> R,
) -> (R, HashedOn) {
    if bytes.len() < PARALLEL_HASH_THRESHOLD {
        hasher.update(bytes);
        return (f(), HashedOn::Caller);
    }
    let Ok(pool) = pool() else {
        hasher.update(bytes);
        return (f(), HashedOn::Caller);
    };
    // The hasher goes to whichever side takes it first; the other side then has nothing to
    // do (the scope still waits for the pool's job, which by then returns at once).
    let slot = parking_lot::Mutex::new(Some(hasher));
    pool.in_place_scope(|scope| {
        scope.spawn(|_| {
            let taken = slot.lock().take();
            if let Some(hasher) = taken {
                hasher.update_rayon(bytes);
            }
        });
        let r = f();
        let taken = slot.lock().take();
        match taken {
            Some(hasher) => {
                hasher.update(bytes);
                (r, HashedOn::Caller)
            }
            None => (r, HashedOn::Pool),
        }
    })
}

/// A chunk being hashed on the pool in the background (see [`hash_behind`]).
pub(crate) type HashJob = std::sync::mpsc::Receiver<(blake3::Hasher, Vec<u8>)>;

/// Hashes `chunk` into `hasher` on the hashing pool in the background, so the caller can fill
/// the next chunk meanwhile; both come back through the returned job once done (an `Err` from
/// it means the hash panicked). Without a pool the hash runs here, before returning.
pub(crate) fn hash_behind(mut hasher: blake3::Hasher, chunk: Vec<u8>) -> HashJob {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    match pool() {
        Ok(pool) => pool.spawn(move || {
            hasher.update_rayon(&chunk);
            // The receiver is gone only when the body was dropped: nothing to hand back.
            let _ = tx.send((hasher, chunk));
        }),
        Err(_) => {
            hasher.update(&chunk);
            let _ = tx.send((hasher, chunk));
        }
    }
    rx
}

/// Threads of the hashing pool (1 when it could not be started: hashing then runs on the
/// calling thread).
pub(crate) fn pool_threads() -> usize {
    pool().map_or(1, |pool| pool.current_num_threads())
}

/// Runs `away` on the hashing pool while `here` runs on the calling thread, and returns both
/// results once both are done (`away` runs after `here`, on the calling thread, when the pool
/// could not be started). `None` for `away` only if it panicked, and the pool re-raises that
/// panic here first, so a caller's fallback for `None` never runs in practice.
pub(crate) fn join_with_pool<A: Send, B>(
    away: impl FnOnce() -> A + Send,
    here: impl FnOnce() -> B,
) -> (Option<A>, B) {
    let Ok(pool) = pool() else {
        let b = here();
        return (Some(away()), b);
    };
    let mut a = None;
    let b = pool.in_place_scope(|scope| {
        let slot = &mut a;
        scope.spawn(move |_| *slot = Some(away()));
        here()
    });
    (a, b)
}

/// Runs `f` on the hashing pool, so the `rayon::join`s in it stay on the pool's threads (the
/// CPUs the node granted, see `snapseal_engine::grant_cpus`), never on rayon's global pool;
/// on the calling thread when the pool could not be started.
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// Runs `f` on a thread of the hashing pool, so its rayon work (`update_rayon`) stays on the
/// granted CPUs (snapseal's own crates; tests use it to see the pool's priority); `None`, with
/// `f` not run, when the pool could not be started.
#[cfg(feature = "internals")]
pub fn on_hashing_thread<R: Send>(f: impl FnOnce() -> R + Send) -> Option<R> {
    pool().ok().map(|pool| pool.install(f))
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::{hash_while_where, pool, HashedOn};

    fn bytes() -> Vec<u8> {
        (0..3 << 20).map(|i: u32| (i % 251) as u8).collect()
    }

    #[test]
    fn hash_while_hashes_the_bytes_once_and_returns_what_f_returned() {
        let data = bytes();
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"before");
        let (r, _) = hash_while_where(&mut hasher, &data, || 42);
        assert_eq!(r, 42);
        let mut expected = blake3::Hasher::new();
        expected.update(b"before");
        expected.update(&data);
        assert_eq!(hasher.finalize(), expected.finalize());
    }

    #[test]
    fn hash_while_hashes_on_the_caller_when_no_pool_thread_is_free() {
        let Ok(pool) = pool() else {
            panic!("the hashing pool did not start");
        };
        // Every pool thread is busy for a second from before hash_while starts: its job can
        // only start after the caller's write is long done. (The scope then waits for that
        // job, which finds nothing to hash, so the test takes the second.)
        let threads = pool.current_num_threads();
        let (started_tx, started) = mpsc::channel();
        for _ in 0..threads {
            let started_tx = started_tx.clone();
            pool.spawn(move || {
                let _ = started_tx.send(());
                std::thread::sleep(Duration::from_secs(1));
            });
        }
        for _ in 0..threads {
            started
                .recv()
                .unwrap_or_else(|e| panic!("a pool thread did not start: {e}"));
        }
        let data = bytes();
        let mut hasher = blake3::Hasher::new();
        let ((), on) = hash_while_where(&mut hasher, &data, || ());
        assert_eq!(on, HashedOn::Caller);
        assert_eq!(hasher.finalize(), blake3::hash(&data));
    }
}
