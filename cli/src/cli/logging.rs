//! Diagnostics: tracing-subscriber on stderr, level from `RUST_LOG` (default `warn`), as
//! human-readable lines (`--log-format pretty`) or one JSON object per line (`json`).
//!
//! Log lines go through the progress bar's [`suspend`](crate::cli::progress::suspend), so a
//! warning in the middle of the demo does not tear the bar.

use std::io::{self, IsTerminal, Write};

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::cli::progress;

/// The `--log-format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines (coloured when stderr is a terminal).
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. Fails (exit 2) on a malformed `RUST_LOG`.
pub(super) fn init(format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::WARN.into())
        .from_env()
        // The parse error repeats itself through its source chain: keep its message only.
        .map_err(|e| {
            anyhow::anyhow!(
                "invalid RUST_LOG (e.g. RUST_LOG=info or RUST_LOG=snapseal_persist=debug): {e}"
            )
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(StderrAroundBar);
    let installed = match format {
        LogFormat::Pretty => builder.with_ansi(io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}

/// Makes [`BarAwareStderr`] writers.
#[derive(Clone, Copy, Debug)]
struct StderrAroundBar;

impl<'a> MakeWriter<'a> for StderrAroundBar {
    type Writer = BarAwareStderr;

    fn make_writer(&'a self) -> Self::Writer {
        BarAwareStderr
    }
}

/// Writes to stderr with the progress bar (if any) hidden meanwhile. The formatter writes each
/// event in one call, so one event is one suspension.
#[derive(Debug)]
struct BarAwareStderr;

impl Write for BarAwareStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        progress::suspend(|| io::stderr().lock().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
