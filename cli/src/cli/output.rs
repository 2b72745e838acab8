//! What goes to stdout: text lines for people, or one JSON document with `--json`.
//!
//! Every write is checked (a closed pipe is an error, never a panic) and goes around the
//! progress bar. Formatting helpers for digests live here too (sizes and durations are
//! `snapseal_cli::units`, re-exported).
//!
//! Every name that came from a directory listing, a file or an archive, and every path built
//! from one, is shown through [`Escaped`] (terminal escapes and bytes that are not UTF-8 become
//! `\xNN`), in text and in JSON alike ([`escaped_path`]): what a user reads is what is there.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;

use serde::{Serialize, Serializer};

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

/// Names and bytes from outside, made safe to print.
pub(super) use snapseal::persist::internals::Escaped;

/// Text from outside that spans lines (a parser's message quoting the offending line): each
/// line through [`Escaped`], the line breaks kept.
pub(super) fn escaped_lines(text: &str) -> String {
    text.lines()
        .map(|line| Escaped::str(line).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `#[serde(serialize_with = "output::escaped_path")]`: a path in JSON as [`Escaped`] shows
/// it (a path that is not UTF-8 would otherwise fail the whole document).
pub(super) fn escaped_path<P: AsRef<Path>, S: Serializer>(
    path: &P,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&Escaped::path(path.as_ref()))
}

/// [`escaped_path`] for a list of paths.
pub(super) fn escaped_paths<P: AsRef<Path>, S: Serializer>(
    paths: &[P],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let shown: Vec<String> = paths
        .iter()
        .map(|p| Escaped::path(p.as_ref()).to_string())
        .collect();
    shown.serialize(serializer)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;

    #[derive(serde::Serialize)]
    struct Doc {
        #[serde(serialize_with = "super::escaped_path")]
        file: PathBuf,
    }

    #[test]
    fn a_path_with_escapes_and_invalid_utf8_is_json_as_escaped_text() {
        let file = PathBuf::from(OsStr::from_bytes(b"/d/\x1b]0;pwned\x07\xff"));
        let json = serde_json::to_string(&Doc { file }).unwrap();
        assert_eq!(json, r#"{"file":"/d/\\x1b]0;pwned\\x07\\xff"}"#);
    }
}
