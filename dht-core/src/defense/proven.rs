//! The record of sources that proved their address (the only ones ever banned).
//!
//! Two generations of hash sets instead of a map ordered by proof: a proof goes into
//! the young generation; when it holds half of [`PROVEN_MAX`] the old generation is
//! dropped and the young one takes its place. So at most `PROVEN_MAX` sources are
//! remembered, a source proven among the last `PROVEN_MAX / 2` distinct proofs always
//! is, and one not proven again is forgotten after at most `PROVEN_MAX` others: the
//! oldest go first, in halves rather than one by one. Every operation is O(1).
//!
//! Why not the exact order: a node proves every source that answers it, so this
//! record is as large as the set of nodes it talked to recently (about 150 in a
//! simulated network of 10,000). Two ordered maps (by address and by proof) cost
//! about 72 bytes a source; a set of `u32` (IPv4) or `u64` (an IPv6 /64, what
//! [`super::source_of`] keeps of it) about 7 to 20, and nothing when empty; while a
//! generation is small its set is a sorted vector, about 5 bytes a source.

use std::collections::HashSet;
use std::net::IpAddr;

use super::PROVEN_MAX;

/// Past this many keys a generation's set is hashed; below it, a sorted vector.
const SORTED_MAX: usize = 1024;

/// A set of keys: sorted in a vector while small, hashed past [`SORTED_MAX`].
///
/// Why both: a node of a large simulation proves a couple of hundred sources, which a
/// hash set keeps in 256 buckets of key and control byte (about 1.3 KB for IPv4) and a
/// vector grown a quarter at a time in about 0.7 KB; a busy node proving tens of
/// thousands would pay a vector's insertion shift on every new proof.
///
/// The hashed form is boxed: a node holds four of these sets (two generations, two
/// families), 24 bytes each instead of 56.
#[derive(Clone, Debug)]
enum KeySet<K> {
    Sorted(Vec<K>),
    // Boxed on purpose (see above): the box makes the small, common form smaller.
    #[allow(clippy::box_collection)]
    Hashed(Box<HashSet<K>>),
}

impl<K> Default for KeySet<K> {
    fn default() -> Self {
        KeySet::Sorted(Vec::new())
    }
}

impl<K: Ord + std::hash::Hash + Copy> KeySet<K> {
    fn len(&self) -> usize {
        match self {
            KeySet::Sorted(v) => v.len(),
            KeySet::Hashed(h) => h.len(),
        }
    }

    fn contains(&self, key: &K) -> bool {
        match self {
            KeySet::Sorted(v) => v.binary_search(key).is_ok(),
            KeySet::Hashed(h) => h.contains(key),
        }
    }

    /// True when it was not there before.
    fn insert(&mut self, key: K) -> bool {
        match self {
            KeySet::Sorted(v) => {
                let Err(at) = v.binary_search(&key) else {
                    return false;
                };
                if v.len() >= SORTED_MAX {
                    let mut h: HashSet<K> = v.iter().copied().collect();
                    h.insert(key);
                    *self = KeySet::Hashed(Box::new(h));
                    return true;
                }
                if v.len() == v.capacity() {
                    v.reserve_exact((v.len() / 4).max(8));
                }
                v.insert(at, key);
                true
            }
            KeySet::Hashed(h) => h.insert(key),
        }
    }

    fn remove(&mut self, key: &K) {
        match self {
            KeySet::Sorted(v) => {
                if let Ok(at) = v.binary_search(key) {
                    v.remove(at);
                }
            }
            KeySet::Hashed(h) => {
                h.remove(key);
            }
        }
    }
}

/// One generation: IPv4 sources and IPv6 /64 prefixes apart, each in its smallest key.
#[derive(Clone, Debug, Default)]
struct Generation {
    v4: KeySet<u32>,
    v6: KeySet<u64>,
}

impl Generation {
    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    fn contains(&self, source: IpAddr) -> bool {
        match source {
            IpAddr::V4(a) => self.v4.contains(&u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(&prefix64(a)),
        }
    }

    /// True when it was not there before.
    fn insert(&mut self, source: IpAddr) -> bool {
        match source {
            IpAddr::V4(a) => self.v4.insert(u32::from(a)),
            IpAddr::V6(a) => self.v6.insert(prefix64(a)),
        }
    }

    fn remove(&mut self, source: IpAddr) {
        match source {
            IpAddr::V4(a) => self.v4.remove(&u32::from(a)),
            IpAddr::V6(a) => self.v6.remove(&prefix64(a)),
        }
    }
}

/// The /64 a source is keyed by ([`super::source_of`] already zeroed the rest).
fn prefix64(a: std::net::Ipv6Addr) -> u64 {
    (u128::from(a) >> 64) as u64
}

/// Proven sources, bounded to [`PROVEN_MAX`], the least recently proven out first.
#[derive(Clone, Debug, Default)]
pub(super) struct ProvenSources {
    young: Generation,
    old: Generation,
}

impl ProvenSources {
    /// Records a proof from `source` (as `source_of` gives it).
    pub(super) fn insert(&mut self, source: IpAddr) {
        if !self.young.insert(source) {
            return;
        }
        // Proven again: it lives in the young generation now, counted once.
        self.old.remove(source);
        if self.young.len() >= PROVEN_MAX / 2 {
            self.old = std::mem::take(&mut self.young);
        }
    }

    /// True when `source` is remembered as proven.
    pub(super) fn contains(&self, source: IpAddr) -> bool {
        self.young.contains(source) || self.old.contains(source)
    }

    /// Sources remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(i: u32) -> IpAddr {
        IpAddr::from(Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn bounded_and_the_oldest_go_first() {
        let mut p = ProvenSources::default();
        let n = PROVEN_MAX as u32 + 10;
        for i in 0..n {
            p.insert(v4(i));
            assert!(
                p.len() <= PROVEN_MAX,
                "{} remembered after {} proofs",
                p.len(),
                i + 1
            );
        }
        assert!(
            !p.contains(v4(0)),
            "the first proof outlived {PROVEN_MAX} others"
        );
        // The last half of the proofs are all remembered.
        for i in n - PROVEN_MAX as u32 / 2..n {
            assert!(p.contains(v4(i)), "source {i} of the last half forgotten");
        }
    }

    #[test]
    fn proving_again_keeps_a_source() {
        let mut p = ProvenSources::default();
        let kept = v4(u32::MAX - 0x0a00_0000);
        p.insert(kept);
        // Three full turnovers of the record, the kept source proving itself again
        // every quarter of one.
        for i in 0..3 * PROVEN_MAX as u32 {
            if i % (PROVEN_MAX as u32 / 4) == 0 {
                p.insert(kept);
            }
            p.insert(v4(i));
        }
        assert!(p.contains(kept));
        // Counted once, even when proven in both generations.
        assert!(p.len() <= PROVEN_MAX);
    }

    #[test]
    fn ipv4_and_ipv6_sources_are_apart() {
        let mut p = ProvenSources::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        // The /64 whose top 64 bits equal the IPv4 address as a number.
        let b = IpAddr::from(Ipv6Addr::from(u128::from(0x0a00_0001u64) << 64));
        p.insert(a);
        assert!(p.contains(a));
        assert!(!p.contains(b));
        p.insert(b);
        assert!(p.contains(b));
        assert_eq!(p.len(), 2);
    }
}
