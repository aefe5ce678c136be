//! The simulator's arithmetic of chance: fixed hashes and draws that are functions
//! of the seed alone, shared by the network, the address plan and the global view.

use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha8Rng;

/// SplitMix64's finaliser: a fixed, well-mixed hash of a `u64`, so that per-node seeds
/// and per-link latencies are functions of the seed alone.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The top 53 bits of `bits` as a fraction in [0, 1).
pub(crate) fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform index below `n` (`n` > 0) from `rng`.
pub fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    ((rng.next_u64() as u128 * n as u128) >> 64) as usize
}
