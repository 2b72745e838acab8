//! What a failed action looks like, and running user code so that a panic becomes a failure.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ActionResult;

/// The report of an action (or task) that returned `Err` or panicked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionFailure {
    /// Name of the [`OrderedTasks`](crate::OrderedTasks) the action belonged to (for a plain
    /// task: the task's name).
    pub queue: String,
    /// Name of the action (for a plain task: the task's name).
    pub action: String,
    /// The error's message with its `source()` chain joined by `": "`, or the panic message.
    pub message: String,
    /// Whether the action panicked (rather than returning `Err`).
    pub panicked: bool,
}

impl fmt::Display for ActionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.panicked { "panicked" } else { "failed" };
        write!(
            f,
            "action `{}` of `{}` {how}: {}",
            self.action, self.queue, self.message
        )
    }
}

impl std::error::Error for ActionFailure {}

/// Why a run of user code did not succeed (before names are attached).
pub(crate) struct Fault {
    pub(crate) message: String,
    pub(crate) panicked: bool,
}

impl Fault {
    pub(crate) fn into_failure(self, queue: &str, action: &str) -> ActionFailure {
        ActionFailure {
            queue: queue.to_owned(),
            action: action.to_owned(),
            message: self.message,
            panicked: self.panicked,
        }
    }
}

/// Runs user code, turning both `Err` and a panic into a [`Fault`] so the calling worker
/// survives. The closure is consumed inside the guard, so a panic while dropping its captures
/// is caught too.
pub(crate) fn run_caught(f: impl FnOnce() -> ActionResult) -> Result<(), Fault> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Fault {
            message: error_chain(error.as_ref()),
            panicked: false,
        }),
        Err(payload) => Err(Fault {
            message: panic_message(payload.as_ref()),
            panicked: true,
        }),
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::run_caught;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn err_message_carries_the_source_chain() {
        let fault = match run_caught(|| Err(Outer(std::io::Error::other("inner")).into())) {
            Err(fault) => fault,
            Ok(()) => panic!("an Err must be a fault"),
        };
        assert_eq!(fault.message, "outer: inner");
        assert!(!fault.panicked);
    }

    #[test]
    fn panic_becomes_a_fault_with_its_message() {
        let fault = match run_caught(|| panic!("boom {}", 7)) {
            Err(fault) => fault,
            Ok(()) => panic!("a panic must be a fault"),
        };
        assert_eq!(fault.message, "boom 7");
        assert!(fault.panicked);
    }
}
