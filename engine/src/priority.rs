//! Lowering a thread's priority: the engine's workers (`EngineConfig::worker_nice`) and
//! persist's hashing pool, snapseal's only `setpriority` call.
#![allow(unsafe_code)]

/// Sets the calling thread's nice value to `nice`, 0 (the process's own priority: left
/// alone) to 19 (lowest); a thread that has to give way to the node's consensus thread calls
/// it once when it starts. Linux sets the nice value per thread, so the caller's other
/// threads keep theirs. A failure costs only the priority: it is logged, never fatal.
///
/// ```
/// /// This thread's nice value: field 19 of /proc/thread-self/stat (after the `(name)`).
/// fn own_nice() -> i32 {
///     let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
///     stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(16).unwrap().parse().unwrap()
/// }
///
/// let before = own_nice();
/// let background = std::thread::spawn(|| {
///     snapseal_engine::lower_thread_priority(19);
///     own_nice()
/// });
/// assert_eq!(background.join().unwrap(), 19, "the lowest priority there is");
/// assert_eq!(own_nice(), before, "the caller's thread keeps its own");
/// ```
pub fn lower_thread_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: gettid and setpriority take and return plain integers and touch no memory of
    // ours; PRIO_PROCESS with a thread id sets that thread's nice value only (Linux).
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if rc != 0 {
        tracing::warn!(
            nice,
            thread = std::thread::current().name().unwrap_or("unnamed"),
            error = %std::io::Error::last_os_error(),
            "could not lower the thread's priority"
        );
    }
}
