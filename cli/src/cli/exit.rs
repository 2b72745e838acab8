//! The one place where a command's outcome becomes the process exit code (documented in
//! `--help`, see [`EXIT_CODES`](crate::cli::EXIT_CODES)), and the one formatter of an error
//! chain ([`chain`], [`causes`]).
//!
//! - `Ok(Status::Ok)` → 0;
//! - `Ok(Status::Failed)` → 1: the command ran to the end and found a file that fails
//!   verification, or nothing usable (the reasons were already printed);
//! - `Err(_)` → 2: usage or I/O error (bad config, missing directory, no trusted key, locked
//!   store, ...). Clap's own usage errors exit 2 as well, before any command runs;
//! - `Ok(Status::SignatureUnchecked)` → 3: `inspect` without a key found nothing wrong, but
//!   the signature was not checked, so the file is not verified (never 0: a script must not
//!   take a file nobody's key vouched for as good);
//! - `Ok(Status::Regressed)` → 4: `bench --compare` flagged a row as regressed beyond the
//!   run-to-run noise.

use std::error::Error;
use std::io::{self, Write};
use std::process::ExitCode;

use snapseal_persist::ErrorChain;

use crate::cli::{output, progress};

/// Exit code: success.
pub(super) const OK: u8 = 0;
/// Exit code: verification failed, or nothing usable.
pub(super) const FAILED: u8 = 1;
/// Exit code: usage or I/O error.
pub(super) const ERROR: u8 = 2;
/// Exit code: `inspect` without a key; every check that needs no key passed.
pub(super) const SIGNATURE_UNCHECKED: u8 = 3;
/// Exit code: `bench --compare` found a regression.
pub(super) const REGRESSED: u8 = 4;

/// How a command that ran to the end went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    /// Everything checked out.
    Ok,
    /// Verification failed, or nothing usable was found; the reasons were printed.
    Failed,
    /// Every check that needs no key passed; the signature was not checked (no key).
    SignatureUnchecked,
    /// `bench --compare`: a row is worse than the saved run by more than the noise.
    Regressed,
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

    /// The exit code.
    pub(super) fn code(self) -> u8 {
        match self {
            Status::Ok => OK,
            Status::Failed => FAILED,
            Status::SignatureUnchecked => SIGNATURE_UNCHECKED,
            Status::Regressed => REGRESSED,
        }
    }
}

/// Prints the error (if any) to stderr and returns the exit code for `result`.
pub(super) fn report(result: anyhow::Result<Status>) -> ExitCode {
    progress::clear();
    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(e) if is_broken_pipe(&e) => {
            // The reader of our stdout went away (`| head`): nothing left to tell anyone.
            ExitCode::from(ERROR)
        }
        Err(e) => {
            // A failing stderr leaves nobody to tell; never panic over it.
            let _ = writeln!(io::stderr(), "error: {}", chain(&e));
            ExitCode::from(ERROR)
        }
    }
}

/// An error and all its causes on one line, outermost first, joined by `: `: "what we did:
/// why it failed: the errno". Every cause appears exactly once: many error types print their
/// source in their own message *and* return it from `source()`, so a cause whose text is
/// already on the line is not repeated, and none is dropped.
pub(super) fn chain(e: &anyhow::Error) -> String {
    let outermost: &(dyn Error + 'static) = e.as_ref();
    causes(outermost)
}

/// [`chain`] for a library error value (not wrapped in `anyhow`): for the places that print
/// an error and go on. The one chain formatter is persist's [`ErrorChain`].
pub(super) fn causes(e: &(dyn Error + 'static)) -> String {
    ErrorChain(e).to_string()
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

    /// An error that, like many `thiserror` types, prints its source in its own message and
    /// returns it from `source()` as well.
    #[derive(Debug, thiserror::Error)]
    #[error("fsync of node.pub.pending: {source}")]
    struct Repeats {
        #[source]
        source: io::Error,
    }

    /// An error that keeps its cause out of its message.
    #[derive(Debug, thiserror::Error)]
    #[error("publishing node.pub")]
    struct Quiet {
        #[source]
        source: Repeats,
    }

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

    #[test]
    fn every_status_has_its_documented_code() {
        assert_eq!(Status::Ok.code(), 0);
        assert_eq!(Status::Failed.code(), 1);
        assert_eq!(Status::SignatureUnchecked.code(), 3);
        assert_eq!(Status::Regressed.code(), 4);
        for code in [OK, FAILED, ERROR, SIGNATURE_UNCHECKED, REGRESSED] {
            assert!(
                crate::cli::EXIT_CODES.contains(&format!("\n  {code}  ")),
                "{code} is not in the help's table"
            );
        }
    }

    #[test]
    fn the_chain_names_every_cause_once_with_its_errno() {
        let enospc = || io::Error::from_raw_os_error(28);
        let e = anyhow::Error::new(Quiet {
            source: Repeats { source: enospc() },
        })
        .context("importing into /d");
        let line = chain(&e);
        assert_eq!(
            line,
            format!(
                "importing into /d: publishing node.pub: fsync of node.pub.pending: {}",
                enospc()
            )
        );
        assert!(line.contains("os error 28"), "{line}");
        assert_eq!(line.matches("os error 28").count(), 1, "{line}");
        let quiet = Quiet {
            source: Repeats { source: enospc() },
        };
        assert_eq!(
            causes(&quiet),
            line.trim_start_matches("importing into /d: ")
        );
    }
}
