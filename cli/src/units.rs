//! Figures for people, shared by the command and the bench: sizes, durations and the one
//! percentile definition.
//!
//! indicatif's `HumanBytes` (always two decimals) and `HumanDuration` (whole seconds and up)
//! do not fit: tables here need `4 KiB` and `2.50 µs`.

use std::time::Duration;

/// A size in the largest binary unit below 1024 of it: `512 B`, `4 KiB`, `1.5 MiB` (one
/// decimal unless whole).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("TiB");
    if v.fract() == 0.0 {
        format!("{v:.0} {name}")
    } else {
        format!("{v:.1} {name}")
    }
}

/// Seconds with a unit that fits: `2.50 s`, `2.50 ms`, `2.50 µs`, `25 ns`.
pub fn secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.2} µs", s * 1e6)
    } else {
        format!("{:.0} ns", s * 1e9)
    }
}

/// [`secs`] of a [`Duration`].
pub fn duration(d: Duration) -> String {
    secs(d.as_secs_f64())
}

/// The `q`-quantile (0 ..= 1) of `sorted` (ascending) by nearest rank: the smallest sample
/// with at least `q` of the samples at or below it. Zero for no samples.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_pick_the_largest_unit_below_1024() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(4 << 10), "4 KiB");
        assert_eq!(bytes(3 << 20), "3 MiB");
        assert_eq!(bytes(2 << 30), "2 GiB");
        assert_eq!(bytes(5 << 40), "5 TiB");
        assert_eq!(bytes(5000 << 40), "5000 TiB");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(secs(2.5), "2.50 s");
        assert_eq!(secs(0.0025), "2.50 ms");
        assert_eq!(secs(2.5e-6), "2.50 µs");
        assert_eq!(secs(25e-9), "25 ns");
        assert_eq!(duration(Duration::from_nanos(1_500)), "1.50 µs");
        assert_eq!(duration(Duration::from_millis(3_250)), "3.25 s");
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let p = |q| percentile(&samples, q).as_micros();
        assert_eq!((p(0.0), p(0.5), p(0.99), p(1.0)), (1, 50, 99, 100));
        assert_eq!(percentile(&samples[..1], 0.99), Duration::from_micros(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
