//! A table's buckets in one buffer: every bucket's main entries and replacement cache
//! side by side in a single vector, described by a small header per bucket.
//!
//! Why one buffer: a table of about 200 entries spread over 17 buckets kept two
//! vectors per bucket, each with its own allocation, its malloc header and room grown
//! ahead of need (34 allocations, about 2 KB beyond the entries themselves at 40 bytes
//! an IPv4 entry); a simulation of a million nodes holds a million tables. One buffer
//! grown 8 entries at a time holds the same entries with one allocation and a 32-byte
//! header per bucket.
//!
//! Layout: buckets from the last (the one holding our own id) to bucket 0, each as its
//! main entries then its replacement cache. Bucket 0, the farthest and the largest
//! (with extended buckets it takes 16k), lies at the end, so what it gains or loses
//! moves nothing else; a change to bucket `b` moves the buckets below `b` only.
//!
//! Order within a bucket is the order of insertion, as it was with a vector per
//! bucket: the table's rules (the oldest replacement out first, the newest that
//! answered picked first) and every walk over the entries see the same sequence.

use std::ops::Range;
use std::time::Instant;

/// Where one bucket lies in the buffer, and when it last changed.
#[derive(Clone, Copy, Debug)]
struct Header {
    start: u32,
    nodes: u32,
    replacements: u32,
    last_changed: Instant,
}

/// The buckets of one table: entries of type `T`, main and replacement.
#[derive(Clone, Debug)]
pub(super) struct Buckets<T> {
    slots: Vec<T>,
    /// By bucket index (bucket 0 first); its entries lie at the buffer's end.
    headers: Vec<Header>,
}

impl<T> Buckets<T> {
    /// One empty bucket.
    pub(super) fn new(now: Instant) -> Buckets<T> {
        Buckets {
            slots: Vec::new(),
            headers: vec![Header {
                start: 0,
                nodes: 0,
                replacements: 0,
                last_changed: now,
            }],
        }
    }

    /// Number of buckets.
    pub(super) fn len(&self) -> usize {
        self.headers.len()
    }

    fn main_range(&self, b: usize) -> Range<usize> {
        let h = &self.headers[b];
        let start = h.start as usize;
        start..start + h.nodes as usize
    }

    fn cache_range(&self, b: usize) -> Range<usize> {
        let h = &self.headers[b];
        let start = (h.start + h.nodes) as usize;
        start..start + h.replacements as usize
    }

    /// Bucket `b`'s main entries, oldest first.
    pub(super) fn nodes(&self, b: usize) -> &[T] {
        &self.slots[self.main_range(b)]
    }

    /// Bucket `b`'s main entries, to change in place.
    pub(super) fn nodes_mut(&mut self, b: usize) -> &mut [T] {
        let r = self.main_range(b);
        &mut self.slots[r]
    }

    /// Bucket `b`'s replacement cache, oldest first.
    pub(super) fn replacements(&self, b: usize) -> &[T] {
        &self.slots[self.cache_range(b)]
    }

    /// Every bucket's main entries, bucket 0 first.
    pub(super) fn all_nodes(&self) -> impl Iterator<Item = &T> + '_ {
        (0..self.headers.len()).flat_map(move |b| self.nodes(b).iter())
    }

    /// Main entries in all buckets.
    pub(super) fn node_count(&self) -> usize {
        self.headers.iter().map(|h| h.nodes as usize).sum()
    }

    /// Replacement entries in all buckets.
    pub(super) fn replacement_count(&self) -> usize {
        self.headers.iter().map(|h| h.replacements as usize).sum()
    }

    /// When bucket `b` last changed.
    pub(super) fn last_changed(&self, b: usize) -> Instant {
        self.headers[b].last_changed
    }

    /// Marks bucket `b` as changed at `now`.
    pub(super) fn set_last_changed(&mut self, b: usize, now: Instant) {
        self.headers[b].last_changed = now;
    }

    /// Appends a main entry to bucket `b`.
    pub(super) fn push_node(&mut self, b: usize, entry: T) {
        let at = self.main_range(b).end;
        self.insert_slot(b, at, entry);
        self.headers[b].nodes += 1;
    }

    /// Removes bucket `b`'s main entry `i`, keeping the others' order.
    pub(super) fn remove_node(&mut self, b: usize, i: usize) -> T {
        let at = self.main_range(b).start + i;
        let entry = self.remove_slot(b, at);
        self.headers[b].nodes -= 1;
        entry
    }

    /// Appends an entry to bucket `b`'s replacement cache.
    pub(super) fn push_replacement(&mut self, b: usize, entry: T) {
        let at = self.cache_range(b).end;
        self.insert_slot(b, at, entry);
        self.headers[b].replacements += 1;
    }

    /// Removes bucket `b`'s replacement `i`, keeping the others' order.
    pub(super) fn remove_replacement(&mut self, b: usize, i: usize) -> T {
        let at = self.cache_range(b).start + i;
        let entry = self.remove_slot(b, at);
        self.headers[b].replacements -= 1;
        entry
    }

    /// Keeps the main entries of bucket `b` for which `keep` holds (order kept).
    pub(super) fn retain_nodes(&mut self, b: usize, mut keep: impl FnMut(&T) -> bool) {
        let mut i = 0;
        while i < self.headers[b].nodes as usize {
            if keep(&self.nodes(b)[i]) {
                i += 1;
            } else {
                self.remove_node(b, i);
            }
        }
    }

    /// Keeps the replacements of bucket `b` for which `keep` holds (order kept).
    pub(super) fn retain_replacements(&mut self, b: usize, mut keep: impl FnMut(&T) -> bool) {
        let mut i = 0;
        while i < self.headers[b].replacements as usize {
            if keep(&self.replacements(b)[i]) {
                i += 1;
            } else {
                self.remove_replacement(b, i);
            }
        }
    }

    /// Splits the last bucket in two: the entries for which `is_near` holds (main and
    /// cache, order kept) form a new last bucket, the rest stay. Both keep the old
    /// bucket's `last_changed`.
    pub(super) fn split_last(&mut self, is_near: impl Fn(&T) -> bool) {
        let last = self.headers.len() - 1;
        let old = self.headers[last];
        // The last bucket is the first in the buffer: its region is rewritten as the
        // near bucket's entries, then the far one's (the buffer's length is unchanged).
        debug_assert_eq!(old.start, 0);
        let n = old.nodes as usize;
        let region: Vec<T> = self.slots.drain(..n + old.replacements as usize).collect();
        let (mut near_nodes, mut far_nodes, mut near_cache, mut far_cache) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, e) in region.into_iter().enumerate() {
            match (i < n, is_near(&e)) {
                (true, true) => near_nodes.push(e),
                (true, false) => far_nodes.push(e),
                (false, true) => near_cache.push(e),
                (false, false) => far_cache.push(e),
            }
        }
        let near = Header {
            start: 0,
            nodes: near_nodes.len() as u32,
            replacements: near_cache.len() as u32,
            last_changed: old.last_changed,
        };
        self.headers[last] = Header {
            start: near.nodes + near.replacements,
            nodes: far_nodes.len() as u32,
            replacements: far_cache.len() as u32,
            last_changed: old.last_changed,
        };
        self.headers.reserve_exact(1);
        self.headers.push(near);
        let rewritten = near_nodes
            .into_iter()
            .chain(near_cache)
            .chain(far_nodes)
            .chain(far_cache);
        self.slots.splice(..0, rewritten);
    }

    /// The same buckets with every entry turned into a `U` by `f`.
    pub(super) fn map<U>(&self, f: impl FnMut(&T) -> U) -> Buckets<U> {
        Buckets {
            slots: self.slots.iter().map(f).collect(),
            headers: self.headers.clone(),
        }
    }

    /// Inserts `entry` at buffer position `at`, inside or at the end of bucket `b`'s
    /// region: the buckets below `b` (after it in the buffer) move up by one.
    fn insert_slot(&mut self, b: usize, at: usize, entry: T) {
        if self.slots.len() == self.slots.capacity() {
            // A thirty-second more at a time (at least 8 entries): doubling would
            // leave a table of 200 entries room for 200 more in every node of a large
            // simulation, an eighth 12 on average (480 bytes at 40 a contact).
            let grow = (self.slots.len() / 32).max(8);
            self.slots.reserve_exact(grow);
        }
        self.slots.insert(at, entry);
        for h in &mut self.headers[..b] {
            h.start += 1;
        }
    }

    fn remove_slot(&mut self, b: usize, at: usize) -> T {
        for h in &mut self.headers[..b] {
            h.start -= 1;
        }
        self.slots.remove(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(b: &Buckets<u32>) -> Vec<(Vec<u32>, Vec<u32>)> {
        (0..b.len())
            .map(|i| (b.nodes(i).to_vec(), b.replacements(i).to_vec()))
            .collect()
    }

    #[test]
    fn buckets_keep_their_entries_apart_and_in_order() {
        let mut b = Buckets::new(Instant::now());
        for x in [1, 12, 3, 14, 5] {
            b.push_node(0, x);
        }
        b.push_replacement(0, 16);
        b.push_replacement(0, 7);
        // Entries of 10 and above are "near": they form the new last bucket.
        b.split_last(|&x| x >= 10);
        assert_eq!(
            contents(&b),
            vec![(vec![1, 3, 5], vec![7]), (vec![12, 14], vec![16])]
        );
        // A change to the last bucket moves bucket 0, which lies after it.
        b.push_node(1, 18);
        b.push_replacement(1, 19);
        b.push_replacement(0, 9);
        assert_eq!(b.remove_node(0, 1), 3);
        b.retain_replacements(1, |&x| x != 16);
        assert_eq!(
            contents(&b),
            vec![(vec![1, 5], vec![7, 9]), (vec![12, 14, 18], vec![19])]
        );
        assert_eq!(
            b.all_nodes().copied().collect::<Vec<_>>(),
            [1, 5, 12, 14, 18]
        );
        assert_eq!((b.node_count(), b.replacement_count()), (5, 3));
        let doubled = b.map(|x| x * 2);
        assert_eq!(doubled.nodes(1), [24, 28, 36]);
        assert_eq!(doubled.replacements(0), [14, 18]);
    }
}
