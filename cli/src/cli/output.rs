//! What goes to stdout: text lines for people, or one JSON document with `--json`.
//!
//! Every write is checked (a closed pipe is an error, never a panic) and goes around the
//! progress bar. Formatting helpers for sizes, durations and digests live here too.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use serde::Serialize;

use crate::cli::progress;

/// Output settings shared by every command.
#[derive(Clone, Copy, Debug)]
pub struct Out {
    /// One JSON document instead of text.
    pub json: bool,
    /// No progress bars, no chatter.
    pub quiet: bool,
}

impl Out {
    /// Settings from the global flags.
    pub fn new(json: bool, quiet: bool) -> Out {
        Out { json, quiet }
    }

    /// Whether progress bars are drawn.
    pub fn bars(&self) -> bool {
        progress::enabled(self.quiet)
    }

    /// Prints a text line, unless `--json` (whose document carries the same facts).
    pub fn text(&self, args: fmt::Arguments<'_>) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        line(args)
    }

    /// Prints an informational line on stderr, unless `--quiet`; stdout stays for results
    /// (and valid JSON).
    pub fn info(&self, args: fmt::Arguments<'_>) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        progress::suspend(|| writeln!(io::stderr().lock(), "{args}"))
    }

    /// Prints `value` as pretty JSON when `--json`.
    pub fn json<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        if !self.json {
            return Ok(());
        }
        let doc = serde_json::to_string_pretty(value)?;
        line(format_args!("{doc}"))?;
        Ok(())
    }
}

/// Writes one line to stdout around the progress bar.
pub fn line(args: fmt::Arguments<'_>) -> io::Result<()> {
    write_stdout(args)
}

/// The one path to stdout: writes `text` and a newline around the progress bar, and flushes,
/// so a full device (ENOSPC) or a closed pipe (EPIPE) is reported here rather than lost when
/// the buffer is dropped at exit.
pub fn write_stdout(text: impl fmt::Display) -> io::Result<()> {
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

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A size for people: `1.5 MiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS.get(unit).unwrap_or(&"TiB"))
    }
}

/// A duration for people, with a unit that keeps 3 significant-ish digits.
pub fn duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_pick_the_largest_unit_below_1024() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(Duration::from_nanos(1_500)), "1.5 µs");
        assert_eq!(duration(Duration::from_micros(2_500)), "2.50 ms");
        assert_eq!(duration(Duration::from_millis(3_250)), "3.25 s");
    }

    #[test]
    fn hex_is_lower_case_and_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0xab, 0x0f]), "00ab0f");
    }
}
