//! What goes to stdout: text lines for people, or one JSON document with `--json`.
//!
//! Every write is checked (a closed pipe is an error, never a panic) and goes around the
//! progress bar. Formatting helpers for digests live here too (sizes and durations are
//! `snapseal_cli::units`, re-exported).

use std::fmt;
use std::io::{self, Write};

use serde::Serialize;

use crate::cli::progress;

/// Sizes and durations for people: the crate's one formatter of each.
pub(super) use snapseal_cli::units::{bytes, duration};

/// Output settings shared by every command.
#[derive(Clone, Copy, Debug)]
pub(super) struct Out {
    /// One JSON document instead of text.
    pub json: bool,
    /// No progress bars, no chatter.
    pub quiet: bool,
}

impl Out {
    /// Settings from the global flags.
    pub(super) fn new(json: bool, quiet: bool) -> Out {
        Out { json, quiet }
    }

    /// Whether progress bars are drawn.
    pub(super) fn bars(&self) -> bool {
        progress::enabled(self.quiet)
    }

    /// Prints a text line, unless `--json` (whose document carries the same facts).
    pub(super) fn text(&self, args: fmt::Arguments<'_>) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        line(args)
    }

    /// Prints an informational line on stderr, unless `--quiet`; stdout stays for results
    /// (and valid JSON).
    pub(super) fn info(&self, args: fmt::Arguments<'_>) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        progress::suspend(|| writeln!(io::stderr().lock(), "{args}"))
    }

    /// Prints `value` as pretty JSON when `--json`.
    pub(super) fn json<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        if !self.json {
            return Ok(());
        }
        let doc = serde_json::to_string_pretty(value)?;
        line(format_args!("{doc}"))?;
        Ok(())
    }
}

/// Writes one line to stdout around the progress bar.
pub(super) fn line(args: fmt::Arguments<'_>) -> io::Result<()> {
    write_stdout(args)
}

/// The one path to stdout: writes `text` and a newline around the progress bar, and flushes,
/// so a full device (ENOSPC) or a closed pipe (EPIPE) is reported here rather than lost when
/// the buffer is dropped at exit.
pub(super) fn write_stdout(text: impl fmt::Display) -> io::Result<()> {
    progress::suspend(|| {
        let mut out = io::stdout().lock();
        writeln!(out, "{text}").and_then(|()| out.flush())
    })
    // Same kind (a closed pipe stays recognisable), and the message says what failed.
    .map_err(|e| io::Error::new(e.kind(), format!("writing to stdout: {e}")))
}

/// `text!(out, "...", args)`: [`Out::text`] with `format_args!`, `?`-propagating.
macro_rules! text {
    ($out:expr, $($arg:tt)*) => {
        $out.text(format_args!($($arg)*))?
    };
}
pub(crate) use text;

/// `info!(out, "...", args)`: [`Out::info`] with `format_args!`, `?`-propagating.
macro_rules! info {
    ($out:expr, $($arg:tt)*) => {
        $out.info(format_args!($($arg)*))?
    };
}
pub(crate) use info;

/// Lower-case hex (persist's spelling, so the CLI and error messages agree).
pub(super) use snapseal::persist::to_hex as hex;
