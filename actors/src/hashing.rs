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
//! [`HashingConfig::default`] unless [`configure_hashing`] ran before.
#![allow(unsafe_code)]

use std::sync::OnceLock;

use snapseal_persist::format::PARALLEL_HASH_THRESHOLD;
use tracing::{debug, warn};

/// How the hashing pool is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HashingConfig {
    /// Threads of the pool. Default: every CPU. Give the number of CPUs minus one to leave
    /// a CPU to the consensus thread entirely.
    pub threads: usize,
    /// Nice value of the pool's threads, 0 (the node's own priority) to 19 (lowest).
    /// Default 10. Raising priority (a negative value) is not offered.
    pub nice: i32,
}

impl Default for HashingConfig {
    fn default() -> Self {
        HashingConfig {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            nice: 10,
        }
    }
}

impl HashingConfig {
    /// Every CPU but one (at least one thread), at the default nice value: leaves a CPU to
    /// the consensus thread.
    pub fn leave_one_cpu() -> Self {
        let d = HashingConfig::default();
        HashingConfig {
            threads: d.threads.saturating_sub(1).max(1),
            ..d
        }
    }

    /// This config with `threads` threads (at least one).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// This config with nice value `nice` (clamped to 0..=19).
    pub fn with_nice(mut self, nice: i32) -> Self {
        self.nice = nice.clamp(0, 19);
        self
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
    /// The threads could not be started.
    #[error("starting the hashing pool")]
    Build(#[source] rayon::ThreadPoolBuildError),
}

struct Pool {
    pool: rayon::ThreadPool,
    config: HashingConfig,
}

static POOL: OnceLock<Result<Pool, String>> = OnceLock::new();

/// Makes the process-wide hashing pool with `config`. Call it once, before the first
/// Snapshotter serialises anything; after that the pool exists and this returns
/// [`HashingError::AlreadyRunning`].
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
    let nice = config.nice.clamp(0, 19);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads.max(1))
        .thread_name(|i| format!("snapseal-hash-{i}"))
        .start_handler(move |_| lower_priority(nice))
        .build()
        .map_err(HashingError::Build)?;
    debug!(threads = config.threads, nice, "hashing pool started");
    Ok(Pool { pool, config })
}

/// Sets the calling thread's nice value (Linux: per thread). A failure only costs the
/// priority, never the hash: logged.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours; on
    // Linux, PRIO_PROCESS with a thread id sets that thread's nice value only.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if rc != 0 {
        warn!(
            nice,
            error = %std::io::Error::last_os_error(),
            "could not lower the hashing thread's priority"
        );
    }
}

/// Hashes `bytes` into `hasher`: a large slice on the hashing pool (all its threads), a small
/// one on the calling thread (handing it over would cost more than it saves).
pub(crate) fn hash(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    if bytes.len() < PARALLEL_HASH_THRESHOLD {
        hasher.update(bytes);
        return;
    }
    match POOL.get_or_init(|| build(HashingConfig::default()).map_err(|e| e.to_string())) {
        Ok(p) => p.pool.install(|| {
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
pub(crate) fn hash_while<R>(hasher: &mut blake3::Hasher, bytes: &[u8], f: impl FnOnce() -> R) -> R {
    if bytes.len() < PARALLEL_HASH_THRESHOLD {
        hasher.update(bytes);
        return f();
    }
    match POOL.get_or_init(|| build(HashingConfig::default()).map_err(|e| e.to_string())) {
        Ok(p) => p.pool.in_place_scope(|scope| {
            scope.spawn(|_| {
                hasher.update_rayon(bytes);
            });
            f()
        }),
        Err(_) => {
            hasher.update(bytes);
            f()
        }
    }
}

/// A chunk being hashed on the pool in the background (see [`hash_behind`]).
pub(crate) type HashJob = std::sync::mpsc::Receiver<(blake3::Hasher, Vec<u8>)>;

/// Hashes `chunk` into `hasher` on the hashing pool in the background, so the caller can fill
/// the next chunk meanwhile; both come back through the returned job once done (an `Err` from
/// it means the hash panicked). Without a pool the hash runs here, before returning.
pub(crate) fn hash_behind(mut hasher: blake3::Hasher, chunk: Vec<u8>) -> HashJob {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    match POOL.get_or_init(|| build(HashingConfig::default()).map_err(|e| e.to_string())) {
        Ok(p) => p.pool.spawn(move || {
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

/// The nice value of the calling thread (for tests).
#[doc(hidden)]
pub fn current_thread_nice() -> i32 {
    // SAFETY: plain integers in and out; getpriority returns that thread's nice value.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

/// Runs `f` on a thread of the hashing pool (for tests: to see its priority).
#[doc(hidden)]
pub fn on_hashing_thread<R: Send>(f: impl FnOnce() -> R + Send) -> Option<R> {
    match POOL.get_or_init(|| build(HashingConfig::default()).map_err(|e| e.to_string())) {
        Ok(p) => Some(p.pool.install(f)),
        Err(_) => None,
    }
}
