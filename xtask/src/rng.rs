//! A small seedable random number generator: xtask picks nodes, churn victims and load
//! targets with it, and `testnet --seed` replays the same choices.

/// xoshiro-style generators would do as well; splitmix64 is short, passes BigCrush, and the
/// load generator only needs unpredictable-enough targets, not cryptographic ones.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A seed that differs between runs and between threads, without a dependency.
    pub fn from_entropy(stream: u64) -> SplitMix64 {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS once per process and then per thread.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(stream);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        hasher.write_u64(nanos);
        SplitMix64(hasher.finish())
    }

    /// A generator that replays the same sequence for the same seed (`testnet --seed`).
    pub fn seeded(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// Uniform enough in `0..n` for picking nodes (`n` is far below 2^64); `n` must not be 0.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn fill_20(&mut self, out: &mut [u8; 20]) {
        let (a, b, c) = (self.next_u64(), self.next_u64(), self.next_u64());
        out[..8].copy_from_slice(&a.to_le_bytes());
        out[8..16].copy_from_slice(&b.to_le_bytes());
        out[16..].copy_from_slice(&c.to_le_bytes()[..4]);
    }
}
