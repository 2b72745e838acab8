//! Lowering a worker thread's priority (`EngineConfig::worker_nice`).
#![allow(unsafe_code)]

/// Sets the calling thread's nice value to `nice` (Linux: per thread; 0 leaves it alone). A
/// failure costs only the priority: logged, never fatal.
pub(crate) fn lower_current_thread(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: gettid and setpriority take and return plain integers and touch no memory of
    // ours; PRIO_PROCESS with a thread id sets that thread's nice value only (Linux).
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if rc != 0 {
        tracing::warn!(
            nice,
            error = %std::io::Error::last_os_error(),
            "could not lower the worker thread's priority"
        );
    }
}
