//! The rate limiter's per-source states, keyed by source address, in address order.
//!
//! A sorted vector while it holds up to [`SORTED_MAX`] sources, a B-tree past that.
//! Why both: a node sees a handful of sources active at once (the limiter forgets idle
//! ones), which a B-tree keeps in leaves of eleven slots and, past eleven, an inner
//! node besides (about 1.7 KB a node in a simulation of 30,000); a vector holds them
//! in their own size. A flood from many forged sources (up to `max_tracked`, 65,536 by
//! default) would make each new source shift a vector of megabytes, so a large map is
//! a B-tree, and it becomes a vector again once it has shrunk to half the threshold.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Most sources kept in a sorted vector.
const SORTED_MAX: usize = 64;

/// Sources and their states `V`, in address order.
#[derive(Clone, Debug)]
pub(super) enum SourceMap<V> {
    /// Keys and states in two vectors of the same length: a 17-byte address beside an
    /// 8-byte-aligned state would pad every pair by 7 bytes.
    Sorted {
        keys: Vec<IpAddr>,
        vals: Vec<V>,
    },
    Tree(BTreeMap<IpAddr, V>),
}

impl<V> Default for SourceMap<V> {
    fn default() -> Self {
        SourceMap::Sorted {
            keys: Vec::new(),
            vals: Vec::new(),
        }
    }
}

impl<V> SourceMap<V> {
    /// Sources held.
    pub(super) fn len(&self) -> usize {
        match self {
            SourceMap::Sorted { keys, .. } => keys.len(),
            SourceMap::Tree(t) => t.len(),
        }
    }

    /// True when no source is held.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state of `ip`, if held.
    pub(super) fn get(&self, ip: &IpAddr) -> Option<&V> {
        match self {
            SourceMap::Sorted { keys, vals } => keys.binary_search(ip).ok().map(|i| &vals[i]),
            SourceMap::Tree(t) => t.get(ip),
        }
    }

    /// True when `ip` is held.
    pub(super) fn contains_key(&self, ip: &IpAddr) -> bool {
        self.get(ip).is_some()
    }

    /// The state of `ip`, inserted as `fresh` when not held.
    pub(super) fn get_or_insert(&mut self, ip: IpAddr, fresh: V) -> &mut V {
        if let SourceMap::Sorted { keys, vals } = self {
            if keys.len() >= SORTED_MAX && keys.binary_search(&ip).is_err() {
                let keys = std::mem::take(keys);
                let vals = std::mem::take(vals);
                *self = SourceMap::Tree(keys.into_iter().zip(vals).collect());
            }
        }
        match self {
            SourceMap::Sorted { keys, vals } => {
                let at = match keys.binary_search(&ip) {
                    Ok(at) => at,
                    Err(at) => {
                        if keys.len() == keys.capacity() {
                            // A quarter more at a time (at least 4), not double.
                            let grow = (keys.len() / 4).max(4);
                            keys.reserve_exact(grow);
                            vals.reserve_exact(grow);
                        }
                        keys.insert(at, ip);
                        vals.insert(at, fresh);
                        at
                    }
                };
                &mut vals[at]
            }
            SourceMap::Tree(t) => t.entry(ip).or_insert(fresh),
        }
    }

    /// Forgets `ip`.
    pub(super) fn remove(&mut self, ip: &IpAddr) {
        match self {
            SourceMap::Sorted { keys, vals } => {
                if let Ok(at) = keys.binary_search(ip) {
                    keys.remove(at);
                    vals.remove(at);
                    // Room given back once the map is under half its size: a node
                    // tracks dozens of sources in a busy moment and a few after it,
                    // and would keep the busy moment's room for ever (a B-tree frees
                    // its leaves as they empty).
                    if keys.capacity() >= 2 * keys.len() + 8 {
                        let room = keys.len() + keys.len() / 4;
                        keys.shrink_to(room);
                        vals.shrink_to(room);
                    }
                }
            }
            SourceMap::Tree(t) => {
                t.remove(ip);
                if t.len() <= SORTED_MAX / 2 {
                    let (keys, vals) = std::mem::take(t).into_iter().unzip();
                    *self = SourceMap::Sorted { keys, vals };
                }
            }
        }
    }

    /// Calls `f` on up to `n` sources: those after `cursor` in address order, then
    /// from the first on (wrapping around; a map of fewer than `n` sources sees some
    /// twice).
    pub(super) fn sweep(&self, cursor: Option<IpAddr>, n: usize, mut f: impl FnMut(&IpAddr, &V)) {
        match self {
            SourceMap::Sorted { keys, vals } => {
                let start = cursor.map_or(0, |c| keys.partition_point(|k| *k <= c));
                let pairs = keys.iter().zip(vals);
                pairs
                    .clone()
                    .skip(start)
                    .chain(pairs)
                    .take(n)
                    .for_each(|(k, s)| f(k, s));
            }
            SourceMap::Tree(t) => {
                use std::ops::Bound::{Excluded, Unbounded};
                let start = cursor.map_or(Unbounded, Excluded);
                t.range((start, Unbounded))
                    .chain(t.range(..))
                    .take(n)
                    .for_each(|(k, s)| f(k, s));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    fn swept(m: &SourceMap<u32>, cursor: Option<IpAddr>, n: usize) -> Vec<u32> {
        let mut out = Vec::new();
        m.sweep(cursor, n, |_, v| out.push(*v));
        out
    }

    #[test]
    fn sorted_and_tree_agree_across_the_threshold() {
        let mut m = SourceMap::default();
        // Inserted out of order; values are the address's number.
        for i in (0..SORTED_MAX as u32).rev() {
            *m.get_or_insert(ip(i * 2), 0) = i * 2;
        }
        assert!(matches!(m, SourceMap::Sorted { .. }));
        let before = swept(&m, Some(ip(10)), 5);
        assert_eq!(before, [12, 14, 16, 18, 20]);
        // Wrapping: after the last, from the first again.
        let last = ip((SORTED_MAX as u32 - 1) * 2);
        assert_eq!(swept(&m, Some(last), 3), [0, 2, 4]);
        *m.get_or_insert(ip(1), 0) = 1;
        assert!(matches!(m, SourceMap::Tree(_)));
        assert_eq!(swept(&m, Some(ip(0)), 3), [1, 2, 4]);
        assert_eq!(swept(&m, Some(last), 3), [0, 1, 2]);
        assert_eq!(m.get(&ip(14)), Some(&14));
        // Shrunk to half the threshold, it is a vector again, with the same contents.
        for i in 0..=SORTED_MAX as u32 / 2 {
            m.remove(&ip(i * 2));
        }
        assert!(matches!(m, SourceMap::Sorted { .. }));
        assert_eq!(m.len(), SORTED_MAX / 2);
        assert_eq!(
            swept(&m, None, 3),
            [
                1,
                (SORTED_MAX as u32 / 2 + 1) * 2,
                (SORTED_MAX as u32 / 2 + 2) * 2
            ]
        );
        assert!(!m.contains_key(&ip(0)) && m.contains_key(&ip(1)));
    }

    #[test]
    fn a_small_map_is_swept_round_and_round() {
        let mut m = SourceMap::default();
        for i in 0..3 {
            m.get_or_insert(ip(i), i);
        }
        assert_eq!(swept(&m, Some(ip(1)), 8), [2, 0, 1, 2]);
    }
}
