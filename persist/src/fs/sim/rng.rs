//! The simulation's seeded random numbers (SplitMix64: tiny, fast, and good enough to pick
//! crash outcomes; nothing here needs cryptographic quality).

/// A deterministic random stream: the same seed gives the same sequence on every platform.
#[derive(Clone, Debug)]
pub(super) struct SimRng {
    state: u64,
}

impl SimRng {
    /// A stream starting from `seed`.
    pub(super) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub(super) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
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
