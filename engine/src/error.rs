//! Errors of building a task system.

/// Why a [`TaskSystem`](crate::TaskSystem) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A configuration value is out of range.
    #[error("invalid engine config: `{field}` {reason}")]
    InvalidConfig {
        /// The offending field of [`EngineConfig`](crate::EngineConfig).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The OS refused to start one of the engine's threads; the threads already started were
    /// stopped and joined before this was returned.
    #[error("starting engine thread `{thread}` failed")]
    SpawnThread {
        /// Name of the thread that could not be started.
        thread: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
