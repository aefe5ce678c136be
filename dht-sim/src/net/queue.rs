//! The event queues: a radix heap over (virtual time, sequence number).
//!
//! Why not `BinaryHeap`: a binary heap's pop sifts an element through every level,
//! about 15 moves and as many cache misses for the tens of thousands of datagrams in
//! flight and 20 for a million nodes' wake-ups; it was the largest single item of the
//! simulator's profile (11 % at 10,000 nodes). The simulator's keys are monotone,
//! which a radix heap (Ahuja, Mehlhorn, Orlin and Tarjan, 1990) exploits: virtual time
//! never goes back, and the sequence number only grows, so a key queued is above the
//! last key taken out. Bucket `b` holds the keys whose highest bit differing from that
//! last key is bit `b - 1`; taking from an empty bucket 0 empties the lowest non-empty
//! bucket into lower ones around its minimum. An element moves a few times in its
//! life, in runs along a vector, instead of a sift per pop.
//!
//! Keys come out in exactly (time, sequence) order, the order of the binary heap it
//! replaces, so every run replays with the same event hash. A key below the last
//! taken out (an event scheduled in the past, which the network tolerates and runs
//! at once) waits in a small binary heap of its own that is served first: every
//! such key is below every key in the buckets.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// (virtual time in ns, sequence number): the order events run in.
pub(super) type Key = (u64, u64);

/// Buckets: 0 for the last key itself, 1-64 for keys at the same time (by the
/// highest differing bit of the sequence number), 65-128 for later times.
const BUCKETS: usize = 129;

/// Largest room (elements) an emptied bucket keeps.
const KEEP: usize = 64;

/// A monotone priority queue of `T`s keyed by [`Key`], smallest first.
pub(super) struct RadixQueue<T> {
    /// The last key taken out; every key in `buckets` is above it.
    last: Key,
    buckets: Vec<Vec<(Key, T)>>,
    /// Bit `b` set when bucket `b` (for `b` < 128) is not empty; bucket 128 apart.
    occupied: u128,
    /// The lowest key in the buckets, once looked for and until a pop.
    min: Option<Key>,
    /// Keys that arrived below `last` (see the module doc).
    late: BinaryHeap<Late<T>>,
    len: usize,
}

impl<T> Default for RadixQueue<T> {
    fn default() -> Self {
        RadixQueue {
            last: (0, 0),
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            occupied: 0,
            min: None,
            late: BinaryHeap::new(),
            len: 0,
        }
    }
}

/// The bucket of `key` relative to `last` (`key` >= `last`).
#[inline]
fn bucket(last: Key, key: Key) -> usize {
    if key.0 != last.0 {
        128 - (key.0 ^ last.0).leading_zeros() as usize
    } else {
        64 - (key.1 ^ last.1).leading_zeros() as usize
    }
}

impl<T> RadixQueue<T> {
    /// Events queued.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Queues `value` to come out at `key`.
    pub(super) fn push(&mut self, key: Key, value: T) {
        self.len += 1;
        if key < self.last {
            self.late.push(Late(key, value));
            return;
        }
        if self.min.is_some_and(|m| key < m) {
            self.min = Some(key);
        }
        let b = bucket(self.last, key);
        self.buckets[b].push((key, value));
        self.mark(b);
    }

    #[inline]
    fn mark(&mut self, b: usize) {
        if b < 128 {
            self.occupied |= 1 << b;
        }
    }

    /// The lowest non-empty bucket.
    #[inline]
    fn lowest(&self) -> Option<usize> {
        if self.occupied != 0 {
            Some(self.occupied.trailing_zeros() as usize)
        } else if !self.buckets[128].is_empty() {
            Some(128)
        } else {
            None
        }
    }

    /// The smallest key queued, without taking it out.
    pub(super) fn peek(&mut self) -> Option<Key> {
        if let Some(l) = self.late.peek() {
            return Some(l.0);
        }
        if self.min.is_none() {
            let b = self.lowest()?;
            self.min = self.buckets[b].iter().map(|e| e.0).min();
        }
        self.min
    }

    /// Takes out the element with the smallest key.
    pub(super) fn pop(&mut self) -> Option<(Key, T)> {
        if let Some(Late(key, value)) = self.late.pop() {
            self.len -= 1;
            return Some((key, value));
        }
        let b = self.lowest()?;
        if b > 0 {
            let min = match self.min {
                Some(m) => m,
                None => self.buckets[b].iter().map(|e| e.0).min()?,
            };
            // Every key of bucket `b` shares its bits above `b - 1` with `last` and
            // with `min`, so around `min` each lands in a bucket below `b`.
            self.last = min;
            let mut spilled = std::mem::take(&mut self.buckets[b]);
            if b < 128 {
                self.occupied &= !(1u128 << b);
            }
            for (key, value) in spilled.drain(..) {
                let nb = bucket(min, key);
                self.buckets[nb].push((key, value));
                self.mark(nb);
            }
            // A small emptied vector keeps its room for the bucket's next turn; a large
            // one is given back: its elements moved to lower buckets, which grow to
            // hold them, and every bucket keeping its largest size would hold the
            // queue's peak many times over.
            if spilled.capacity() <= KEEP {
                self.buckets[b] = spilled;
            }
        }
        self.min = None;
        // Bucket 0 holds only `last` itself: sequence numbers are unique.
        let out = self.buckets[0].pop()?;
        if self.buckets[0].is_empty() {
            self.occupied &= !1;
        }
        self.len -= 1;
        Some(out)
    }
}

/// An element of the late heap, ordered by its key alone, smallest first.
struct Late<T>(Key, T);

impl<T> Ord for Late<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.cmp(&self.0)
    }
}
impl<T> PartialOrd for Late<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> PartialEq for Late<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<T> Eq for Late<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Against a binary heap on the same random monotone workload, with some keys
    /// scheduled in the past and peeks between pops: the same elements, in the same
    /// order.
    #[test]
    fn same_order_as_a_binary_heap() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut radix = RadixQueue::default();
        let mut heap = BinaryHeap::new();
        let (mut now, mut seq) = (0u64, 0u64);
        let mut popped = 0;
        for round in 0..20_000u64 {
            for _ in 0..rng.next_u64() % 4 {
                seq += 1;
                let at = match rng.next_u64() % 10 {
                    // In the past: runs at once in both.
                    0 => now.saturating_sub(rng.next_u64() % 1_000),
                    // Now: ordered by the sequence number alone.
                    1 => now,
                    _ => now + rng.next_u64() % (1 << (rng.next_u64() % 40)),
                };
                radix.push((at, seq), round);
                heap.push(Late((at, seq), round));
            }
            if rng.next_u64() % 3 == 0 {
                assert_eq!(radix.peek(), heap.peek().map(|l| l.0));
            }
            if rng.next_u64() % 5 < 3 {
                let want = heap.pop().map(|Late(k, v)| (k, v));
                assert_eq!(radix.pop(), want);
                if let Some((k, _)) = want {
                    now = now.max(k.0);
                    popped += 1;
                }
            }
            assert_eq!(radix.len(), heap.len());
        }
        while let Some(Late(k, v)) = heap.pop() {
            assert_eq!(radix.pop(), Some((k, v)));
            popped += 1;
        }
        assert_eq!(radix.pop(), None);
        assert!(popped > 10_000, "{popped} popped: the workload hardly ran");
    }
}
