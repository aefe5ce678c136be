//! The node's seeded randomness, held as its seed and a position in the stream.

use rand_chacha::rand_core::{Error, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// ChaCha8's stream from the node's seed, held as the seed and the number of 32-bit
/// words drawn so far: 40 bytes where a `ChaCha8Rng` is 320 (it keeps four blocks of
/// output ready). Each draw rebuilds the generator at its position, a few hundred
/// nanoseconds of ChaCha8, and the words drawn are the very ones a kept `ChaCha8Rng`
/// would give, in the same order.
///
/// Why: a node draws rarely (a transaction id per request it sends, a target per
/// bucket refresh, a token secret per rotation, a shuffle when a swarm outgrows a
/// reply), and answering pings and finds draws nothing; a simulation of a million
/// nodes holds one per node, 280 MB saved. A burst of draws goes through
/// [`NodeRng::with`], one rebuild for all of it.
#[derive(Clone)]
pub(crate) struct NodeRng {
    seed: [u8; 32],
    /// Words of the stream drawn so far.
    word_pos: u64,
}

impl NodeRng {
    /// The stream of `seed`, from its start.
    pub(crate) fn from_seed(seed: [u8; 32]) -> NodeRng {
        NodeRng { seed, word_pos: 0 }
    }

    /// Runs `f` on the generator at the stream's current position, then keeps the
    /// position it left the stream at.
    pub(crate) fn with<R>(&mut self, f: impl FnOnce(&mut ChaCha8Rng) -> R) -> R {
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        if self.word_pos != 0 {
            rng.set_word_pos(u128::from(self.word_pos));
        }
        let out = f(&mut rng);
        // Fits: a node would draw for millennia before 2^64 words.
        self.word_pos = rng.get_word_pos() as u64;
        out
    }
}

impl RngCore for NodeRng {
    fn next_u32(&mut self) -> u32 {
        self.with(|r| r.next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        self.with(|r| r.next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.with(|r| r.fill_bytes(dest))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
        self.with(|r| r.try_fill_bytes(dest))
    }
}

/// The position only: the seed is the node's secret (its tokens derive from draws).
impl std::fmt::Debug for NodeRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRng")
            .field("word_pos", &self.word_pos)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any mix of draws, one at a time or in bursts, gives the words a `ChaCha8Rng`
    /// kept whole gives, across its four-block buffer's edges.
    #[test]
    fn the_same_stream_as_a_kept_generator() {
        let seed = [7u8; 32];
        let mut kept = ChaCha8Rng::from_seed(seed);
        let mut node = NodeRng::from_seed(seed);
        let mut pick = ChaCha8Rng::seed_from_u64(1);
        for round in 0..2_000 {
            match pick.next_u32() % 4 {
                0 => assert_eq!(node.next_u32(), kept.next_u32(), "round {round}"),
                1 => assert_eq!(node.next_u64(), kept.next_u64(), "round {round}"),
                2 => {
                    let len = (pick.next_u32() % 70) as usize;
                    let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
                    node.fill_bytes(&mut a);
                    kept.fill_bytes(&mut b);
                    assert_eq!(a, b, "round {round}");
                }
                _ => {
                    let n = pick.next_u32() % 40;
                    let burst: Vec<u32> = node.with(|r| (0..n).map(|_| r.next_u32()).collect());
                    let want: Vec<u32> = (0..n).map(|_| kept.next_u32()).collect();
                    assert_eq!(burst, want, "round {round}");
                }
            }
        }
        assert!(std::mem::size_of::<NodeRng>() <= 40);
    }
}
