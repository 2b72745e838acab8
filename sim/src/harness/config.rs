//! How one simulated node is set up: Snapshotter and store options, executor order, and what
//! the simulated filesystem supports.

use std::time::Duration;

use snapseal_actors::SnapshotterConfig;

use super::rng::SplitMix64;

/// The knobs of one simulation. [`HarnessConfig::from_seed`] varies them with the seed, so a
/// sweep over seeds also sweeps configurations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HarnessConfig {
    /// Snapshotter `tx_interval` (small, so runs of a few hundred steps take many snapshots).
    pub tx_interval: u64,
    /// Snapshotter `max_pending`.
    pub max_pending: usize,
    /// Snapshotter `cooldown`.
    pub cooldown: Option<Duration>,
    /// Snapshotter `time_interval`.
    pub time_interval: Option<Duration>,
    /// Snapshotter `compression` (zstd level).
    pub compression: Option<i32>,
    /// Store `keep_last`.
    pub keep_last: usize,
    /// Store `max_quarantined`.
    pub max_quarantined: usize,
    /// Whether SimFs accepts `RENAME_NOREPLACE` (false exercises the link + unlink fallback).
    pub rename_noreplace: bool,
    /// Snapshotter `spill_threshold`. `None` here means the Snapshotter's default (32 MiB,
    /// which the harness's small bodies never reach); a small value streams some or all
    /// bodies into pending files that the persist completes in place.
    pub spill_threshold: Option<u64>,
    /// Store `max_bytes` (retention by total size as well as by count).
    pub max_bytes: Option<u64>,
    /// Run ready jobs oldest first instead of in seeded random order (the reference model
    /// needs a predictable order; the sweeps want the random one).
    pub fifo: bool,
}

impl Default for HarnessConfig {
    fn default() -> Self {
        HarnessConfig {
            tx_interval: 10,
            max_pending: 3,
            cooldown: None,
            time_interval: None,
            compression: None,
            keep_last: 2,
            max_quarantined: 1,
            rename_noreplace: true,
            spill_threshold: None,
            max_bytes: None,
            fifo: false,
        }
    }
}

impl HarnessConfig {
    /// A configuration drawn from `seed` (independently of the operations the seed draws).
    pub fn from_seed(seed: u64) -> Self {
        let mut r = SplitMix64::new(seed ^ 0xC0F1_6000_5EED);
        let maybe = |r: &mut SplitMix64, one_in: u64, max_secs: u64| {
            (r.below(one_in) == 0).then(|| Duration::from_secs(1 + r.below(max_secs)))
        };
        HarnessConfig {
            tx_interval: 5 + r.below(16),
            max_pending: 1 + r.below(5) as usize,
            cooldown: maybe(&mut r, 5, 10),
            time_interval: maybe(&mut r, 5, 20),
            compression: (r.below(4) == 0).then(|| 1 + r.below(3) as i32),
            keep_last: 1 + r.below(4) as usize,
            max_quarantined: r.below(3) as usize,
            rename_noreplace: r.below(4) != 0,
            // Drawn after the fields above, so those stay what they were for every seed.
            // A third of the seeds spill: half every body, half only once the bodies held in
            // memory pass a budget of a few bodies (harness bodies are tens to hundreds of
            // bytes), so spilled and in-memory generations mix.
            spill_threshold: match r.below(6) {
                0 => Some(0),
                1 => Some(r.below(1024)),
                _ => None,
            },
            // A quarter of the seeds also limit retention by size: from "only the newest
            // fits" to "a few fit".
            max_bytes: (r.below(4) == 0).then(|| 1 + r.below(2048)),
            fifo: false,
        }
    }

    /// The Snapshotter configuration this stands for.
    pub fn snapshotter(&self) -> SnapshotterConfig {
        SnapshotterConfig {
            tx_interval: self.tx_interval,
            max_pending: self.max_pending,
            cooldown: self.cooldown,
            time_interval: self.time_interval,
            compression: self.compression,
            spill_threshold: self
                .spill_threshold
                .or(SnapshotterConfig::default().spill_threshold),
            ..SnapshotterConfig::default()
        }
    }
}
