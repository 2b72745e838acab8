//! The simulation's seeded random numbers: SplitMix64 from `rand_xoshiro` (tiny, fast, and good
//! enough to pick crash outcomes; nothing here needs cryptographic quality).

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;

/// A deterministic random stream: the same seed gives the same sequence on every platform.
#[derive(Clone, Debug)]
pub(super) struct SimRng {
    inner: SplitMix64,
}

impl SimRng {
    /// A stream starting from `seed`.
    pub(super) fn new(seed: u64) -> Self {
        Self {
            inner: SplitMix64::seed_from_u64(seed),
        }
    }

    /// The next 64 random bits.
    pub(super) fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A number in `0..n` (0 when `n` is 0). Multiply-shift: the bias is below 2^-32 for the
    /// small `n` used here.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p` (clamped to `0..=1`; NaN counts as 0).
    pub(super) fn chance(&mut self, p: f64) -> bool {
        // 53 random bits give a uniform float in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }

    /// A fair coin.
    pub(super) fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }
}
