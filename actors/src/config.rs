//! Snapshotter configuration and its validation.

use std::time::Duration;

/// When and how the [`Snapshotter`](crate::Snapshotter) takes snapshots (SPEC §3).
///
/// Build one with [`SnapshotterConfig::default`] and adjust fields; every field is checked by
/// [`SnapshotterConfig::validate`], which [`Snapshotter::new`](crate::Snapshotter::new) calls.
///
/// ```
/// use std::time::Duration;
/// use snapseal_actors::SnapshotterConfig;
///
/// # fn main() -> Result<(), snapseal_actors::ConfigError> {
/// let config = SnapshotterConfig {
///     tx_interval: 50_000,                           // a snapshot every 50 000 txs,
///     time_interval: Some(Duration::from_secs(600)), // or every 10 minutes of traffic
///     compression: Some(3),                          // zstd level 3
///     ..SnapshotterConfig::default()
/// };
/// config.validate()?;
///
/// // An out-of-range field is named, with what would be accepted.
/// let none_pending = SnapshotterConfig { max_pending: 0, ..config };
/// let refused = none_pending.validate();
/// assert!(refused.is_err_and(|e| e.field == "max_pending" && e.allowed.contains("1 ..= 1024")));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotterConfig {
    /// A snapshot is due when `idx - baseline >= tx_interval` (default 10 000, at least 1).
    pub tx_interval: u64,
    /// With `time_interval` on, a snapshot is also due when more than this many txs passed since
    /// the baseline (default 2).
    pub min_tx_count: u64,
    /// When set, a snapshot is also due once this much engine-clock time passed since the last
    /// one (and `min_tx_count` is exceeded). Default: off. Zero is rejected.
    pub time_interval: Option<Duration>,
    /// How many generations may be pending (serialising, waiting for proof or persisting) at
    /// once; a due snapshot beyond that is skipped (default 5, 1 ..= 1024).
    pub max_pending: usize,
    /// Minimum engine-clock time between two serialisations; a due snapshot inside it is
    /// deferred to the next commit after it (default: off). Zero is rejected.
    pub cooldown: Option<Duration>,
    /// zstd level for snapshot bodies, or `None` to store them uncompressed (default). Levels
    /// 1 ..= 19 are accepted.
    pub compression: Option<i32>,
    /// In-memory budget, in bytes, shared by all pending snapshot bodies of this Snapshotter
    /// (stored bytes, i.e. after compression). A body that would take the total above it is
    /// streamed to a pending file in the snapshot directory instead
    /// (`snapshot_<idx>.g<generation>.pending`), and its persist completes that file without
    /// copying the body again. So snapshotting needs at most about this much memory beyond the
    /// node's own state, whatever the state's size. `Some(0)` spills every body; `None` never
    /// spills (every body is held in memory until persisted, as CCF does). Default
    /// [`DEFAULT_SPILL_THRESHOLD`] (32 MiB); at most 1 TiB.
    pub spill_threshold: Option<u64>,
}

/// Default [`SnapshotterConfig::spill_threshold`]: 32 MiB, so the whole pipeline stays within
/// 64 MiB of memory beyond the node's state (the rest is I/O and hashing buffers).
pub const DEFAULT_SPILL_THRESHOLD: u64 = 32 << 20;

/// Largest [`SnapshotterConfig::spill_threshold`] (1 TiB): a bigger in-memory budget is surely a
/// unit mistake; use `None` to never spill.
pub(crate) const MAX_SPILL_THRESHOLD: u64 = 1 << 40;

impl Default for SnapshotterConfig {
    fn default() -> Self {
        SnapshotterConfig {
            tx_interval: 10_000,
            min_tx_count: 2,
            time_interval: None,
            max_pending: 5,
            cooldown: None,
            compression: None,
            spill_threshold: Some(DEFAULT_SPILL_THRESHOLD),
        }
    }
}

/// A configuration value out of its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid snapshotter configuration: `{field}` = {value}: {allowed}")]
pub struct ConfigError {
    /// The offending field's name, as spelled in [`SnapshotterConfig`].
    pub field: &'static str,
    /// The rejected value, rendered for humans.
    pub value: String,
    /// What would have been accepted.
    pub allowed: &'static str,
}

/// Largest `max_pending`: each pending generation may hold a whole snapshot body.
pub(crate) const MAX_PENDING_LIMIT: usize = 1024;

impl SnapshotterConfig {
    /// Check every field; the first bad one is reported by name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(field: &'static str, value: impl ToString, allowed: &'static str) -> ConfigError {
            ConfigError {
                field,
                value: value.to_string(),
                allowed,
            }
        }
        if self.tx_interval == 0 {
            return Err(bad("tx_interval", 0, "must be at least 1"));
        }
        if self.time_interval == Some(Duration::ZERO) {
            return Err(bad(
                "time_interval",
                "0s",
                "must be positive, or unset to turn it off",
            ));
        }
        if self.max_pending == 0 || self.max_pending > MAX_PENDING_LIMIT {
            return Err(bad(
                "max_pending",
                self.max_pending,
                "must be in 1 ..= 1024",
            ));
        }
        if self.cooldown == Some(Duration::ZERO) {
            return Err(bad(
                "cooldown",
                "0s",
                "must be positive, or unset to turn it off",
            ));
        }
        if let Some(level) = self.compression {
            if !(1..=19).contains(&level) {
                return Err(bad("compression", level, "zstd level must be in 1 ..= 19"));
            }
        }
        if let Some(bytes) = self.spill_threshold {
            if bytes > MAX_SPILL_THRESHOLD {
                return Err(bad(
                    "spill_threshold",
                    bytes,
                    "must be at most 1 TiB (1099511627776 bytes), or unset to never spill",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(SnapshotterConfig::default().validate(), Ok(()));
    }

    #[test]
    fn spill_threshold_accepts_zero_none_and_the_maximum() {
        for spill_threshold in [None, Some(0), Some(MAX_SPILL_THRESHOLD)] {
            let cfg = SnapshotterConfig {
                spill_threshold,
                ..Default::default()
            };
            assert_eq!(cfg.validate(), Ok(()), "{spill_threshold:?}");
        }
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let cases: Vec<(SnapshotterConfig, &str)> = vec![
            (
                SnapshotterConfig {
                    tx_interval: 0,
                    ..Default::default()
                },
                "tx_interval",
            ),
            (
                SnapshotterConfig {
                    time_interval: Some(Duration::ZERO),
                    ..Default::default()
                },
                "time_interval",
            ),
            (
                SnapshotterConfig {
                    max_pending: 0,
                    ..Default::default()
                },
                "max_pending",
            ),
            (
                SnapshotterConfig {
                    max_pending: 5000,
                    ..Default::default()
                },
                "max_pending",
            ),
            (
                SnapshotterConfig {
                    cooldown: Some(Duration::ZERO),
                    ..Default::default()
                },
                "cooldown",
            ),
            (
                SnapshotterConfig {
                    compression: Some(0),
                    ..Default::default()
                },
                "compression",
            ),
            (
                SnapshotterConfig {
                    compression: Some(22),
                    ..Default::default()
                },
                "compression",
            ),
            (
                SnapshotterConfig {
                    spill_threshold: Some(MAX_SPILL_THRESHOLD + 1),
                    ..Default::default()
                },
                "spill_threshold",
            ),
        ];
        for (cfg, field) in cases {
            let err = cfg.validate().expect_err(field);
            assert_eq!(err.field, field);
            assert!(err.to_string().contains(field));
        }
    }
}
