//! Ids sorted ascending, searched by XOR: the ids sharing a prefix form one contiguous
//! run, so "the nodes in a bucket's range" and "the nodes near a target" are binary
//! searches. Shared by the global view and the Sybils' own view of each other, for
//! ids of any width (Mainline's 160 bits, IPFS's 256).

use dht_core::Id;

/// `id` with every bit from `prefix_bits` on set to `ones`.
fn with_suffix<const N: usize>(id: &Id<N>, prefix_bits: usize, ones: bool) -> Id<N> {
    let mut b = id.0;
    for bit in prefix_bits..N * 8 {
        let mask = 0x80u8 >> (bit % 8);
        if ones {
            b[bit / 8] |= mask;
        } else {
            b[bit / 8] &= !mask;
        }
    }
    Id(b)
}

/// Index range in `sorted` (ascending ids) of the ids sharing the first `bits` bits with `id`.
pub(crate) fn prefix_range<const N: usize>(
    sorted: &[(Id<N>, u32)],
    id: &Id<N>,
    bits: usize,
) -> (usize, usize) {
    let lo = with_suffix(id, bits, false);
    let hi = with_suffix(id, bits, true);
    let a = sorted.partition_point(|(x, _)| *x < lo);
    let b = sorted.partition_point(|(x, _)| *x <= hi);
    (a, b)
}

/// The `n` entries of `sorted` (ascending ids) closest to `target` by XOR, closest
/// first (their indices).
pub(crate) fn closest_in<const N: usize>(
    sorted: &[(Id<N>, u32)],
    target: &Id<N>,
    n: usize,
) -> Vec<u32> {
    // The deepest prefix of the target still shared by at least n nodes: every
    // node outside that run is farther than every node inside it.
    let mut run = (0, sorted.len());
    for bits in 1..=N * 8 {
        let r = prefix_range(sorted, target, bits);
        if r.1 - r.0 < n {
            break;
        }
        run = r;
    }
    let mut v: Vec<(Id<N>, u32)> = sorted[run.0..run.1].to_vec();
    v.sort_unstable_by_key(|(id, _)| id.distance(target));
    v.into_iter().take(n).map(|x| x.1).collect()
}
