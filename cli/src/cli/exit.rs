//! The one place where a command's outcome becomes the process exit code (documented in
//! `--help`, see `AFTER_HELP`).
//!
//! - `Ok(Status::Ok)` → 0;
//! - `Ok(Status::Failed)` → 1: the command ran to the end and found a file that fails
//!   verification, or nothing usable (the reasons were already printed);
//! - `Err(_)` → 2: usage or I/O error (bad config, missing directory, locked store, ...).
//!   Clap's own usage errors exit 2 as well, before any command runs.

use std::io::{self, Write};
use std::process::ExitCode;

use crate::cli::{output, progress};

/// Exit code: success.
pub(super) const OK: u8 = 0;
/// Exit code: verification failed, or nothing usable.
pub(super) const FAILED: u8 = 1;
/// Exit code: usage or I/O error.
pub(super) const ERROR: u8 = 2;

/// How a command that ran to the end went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    /// Everything checked out.
    Ok,
    /// Verification failed, or nothing usable was found; the reasons were printed.
    Failed,
}

impl Status {
    /// `Failed` when `failed` is true.
    pub(super) fn failed_if(failed: bool) -> Status {
        if failed {
            Status::Failed
        } else {
            Status::Ok
        }
    }
}

/// Prints the error (if any) to stderr and returns the exit code for `result`.
pub(super) fn report(result: anyhow::Result<Status>) -> ExitCode {
    progress::clear();
    match result {
        Ok(Status::Ok) => ExitCode::from(OK),
        Ok(Status::Failed) => ExitCode::from(FAILED),
        Err(e) if is_broken_pipe(&e) => {
            // The reader of our stdout went away (`| head`): nothing left to tell anyone.
            ExitCode::from(ERROR)
        }
        Err(e) => {
            // `{:#}` prints the whole context chain on one line: "what we did: why it failed".
            // A failing stderr leaves nobody to tell; never panic over it.
            let _ = writeln!(io::stderr(), "error: {e:#}");
            ExitCode::from(ERROR)
        }
    }
}

/// Reports what clap stopped at: `--help` / `--version` text goes to stdout like any other
/// output (a write error, `/dev/full` say, is an error: exit 2); a usage error goes to stderr
/// and exits 2 (a non-UTF-8 argument where text is expected is one).
pub(super) fn clap(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            if e.exit_code() == 0 =>
        {
            let text = e.render().to_string();
            let written = output::write_stdout(text.trim_end_matches('\n'));
            report(written.map(|()| Status::Ok).map_err(anyhow::Error::new))
        }
        _ => {
            // Nobody is left to tell when stderr fails too.
            let _ = e.print();
            ExitCode::from(ERROR)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_is_recognised_through_context() {
        let e = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }

    #[test]
    fn failed_if_maps_the_flag() {
        assert_eq!(Status::failed_if(true), Status::Failed);
        assert_eq!(Status::failed_if(false), Status::Ok);
    }
}
