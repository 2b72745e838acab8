//! Progress bars (indicatif) for anything that can take more than a second.
//!
//! Bars are drawn on stderr, and only when stdout is a terminal and `--quiet` is off: piped
//! or scripted output stays clean. At most one bar is active at a time; it is registered here
//! so that log lines and result lines printed meanwhile go through [`suspend`] instead of
//! tearing the bar.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;

/// The bar currently drawn, if any.
static ACTIVE: Mutex<Option<ProgressBar>> = parking_lot::const_mutex(None);

/// What a bar counts.
#[derive(Clone, Copy, Debug)]
pub(super) enum Unit {
    /// Plain items (transactions, files).
    Items,
    /// Bytes (shown as sizes and rates).
    Bytes,
}

/// One progress bar; hidden (all calls no-ops) when bars are off. Dropping it clears it.
#[derive(Debug)]
pub(super) struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar of `len` units labelled `message`, drawn only if `enabled`.
    pub(super) fn new(enabled: bool, len: u64, unit: Unit, message: &str) -> Progress {
        if !enabled {
            return Progress { bar: None };
        }
        let template = match unit {
            Unit::Items => {
                "{msg:>12} [{bar:40.cyan/blue}] {human_pos}/{human_len} ({elapsed}, eta {eta})"
            }
            Unit::Bytes => {
                "{msg:>12} [{bar:40.cyan/blue}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})"
            }
        };
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        // The templates are constants; a bad one would only lose the styling, never the bar.
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_string());
        *ACTIVE.lock() = Some(bar.clone());
        Progress { bar: Some(bar) }
    }

    /// A spinner for work of unknown length.
    pub(super) fn spinner(enabled: bool, message: &str) -> Progress {
        if !enabled {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        *ACTIVE.lock() = Some(bar.clone());
        Progress { bar: Some(bar) }
    }

    /// Moves the bar to `pos`.
    pub(super) fn set_position(&self, pos: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        }
    }

    /// Sets the bar's length (work whose size is learnt on the way).
    pub(super) fn set_length(&self, len: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(len);
        }
    }

    /// Advances the bar by `n`.
    pub(super) fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            // One bar at a time: the active one is this one.
            *ACTIVE.lock() = None;
        }
    }
}

/// Whether bars should be drawn: stdout is a terminal and `--quiet` is off.
pub(super) fn enabled(quiet: bool) -> bool {
    !quiet && std::io::stdout().is_terminal()
}

/// Runs `f` (which prints) with the active bar, if any, hidden meanwhile.
pub(super) fn suspend<R>(f: impl FnOnce() -> R) -> R {
    // Clone out of the lock: `f` must never run under it (a log line inside would deadlock).
    let bar = ACTIVE.lock().clone();
    match bar {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// Clears any bar still drawn (before the final error message).
pub(super) fn clear() {
    let bar = ACTIVE.lock().take();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_bars_are_inert_and_not_registered() {
        let p = Progress::new(false, 10, Unit::Items, "x");
        p.inc(3);
        p.set_position(5);
        assert!(
            ACTIVE.lock().is_none(),
            "a hidden bar must not capture output"
        );
        assert_eq!(suspend(|| 7), 7);
    }
}
