//! A table's buckets in one buffer: every bucket's main entries, then every bucket's
//! replacement cache, in a single vector described by a small header per bucket.
//!
//! Why one buffer: a table of about 200 entries spread over 17 buckets kept two
//! vectors per bucket, each with its own allocation, its malloc header and room grown
//! ahead of need (34 allocations, about 2 KB beyond the entries themselves, measured
//! when an IPv4 entry was 40 bytes; it is 37 now); a simulation of a million nodes
//! holds a million tables. One buffer grown 8 entries at a time holds the same entries
//! with one allocation and a 32-byte header per bucket.
//!
//! Layout: the main entries of bucket 0, 1, ... in that order, then the replacement
//! caches in the same order. The main entries of the whole table are one slice, so the
//! walks that look at all of them (the admission policy's counts, the endpoint check,
//! `entries()`) go through it as through one vector, in the order the table always
//! had: bucket 0 first. A full cache takes a newcomer in place (the oldest rotated
//! out), which is what most of a busy table's changes are; a new main entry moves the
//! entries after it, a few kilobytes at most.
//!
//! Order within a bucket is the order of insertion, as it was with a vector per
//! bucket: the table's rules (the oldest replacement out first, the newest that
//! answered picked first) and every walk over the entries see the same sequence.

use std::ops::Range;
use std::time::Instant;

/// Where one bucket's main entries and cache lie in the buffer, and when it changed.
#[derive(Clone, Copy, Debug)]
struct Header {
    main: u32,
    nodes: u32,
    cache: u32,
    replacements: u32,
    last_changed: Instant,
}

/// The buckets of one table: entries of type `T`, main and replacement.
#[derive(Clone, Debug)]
pub(super) struct Buckets<T> {
    slots: Vec<T>,
    /// By bucket index, bucket 0 first.
    headers: Vec<Header>,
}

impl<T> Buckets<T> {
    /// One empty bucket.
    pub(super) fn new(now: Instant) -> Buckets<T> {
        Buckets {
            slots: Vec::new(),
            headers: vec![Header {
                main: 0,
                nodes: 0,
                cache: 0,
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
        h.main as usize..(h.main + h.nodes) as usize
    }

    fn cache_range(&self, b: usize) -> Range<usize> {
        let h = &self.headers[b];
        h.cache as usize..(h.cache + h.replacements) as usize
    }

    /// Where the caches begin: the number of main entries.
    fn main_len(&self) -> usize {
        self.headers[0].cache as usize
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
    pub(super) fn all_nodes(&self) -> std::slice::Iter<'_, T> {
        self.slots[..self.main_len()].iter()
    }

    /// Main entries in all buckets.
    pub(super) fn node_count(&self) -> usize {
        self.main_len()
    }

    /// Replacement entries in all buckets.
    pub(super) fn replacement_count(&self) -> usize {
        self.slots.len() - self.main_len()
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
        self.insert_slot(at, entry);
        for (i, h) in self.headers.iter_mut().enumerate() {
            if i > b {
                h.main += 1;
            }
            h.cache += 1;
        }
        self.headers[b].nodes += 1;
    }

    /// Removes bucket `b`'s main entry `i`, keeping the others' order.
    pub(super) fn remove_node(&mut self, b: usize, i: usize) -> T {
        let at = self.main_range(b).start + i;
        for (j, h) in self.headers.iter_mut().enumerate() {
            if j > b {
                h.main -= 1;
            }
            h.cache -= 1;
        }
        self.headers[b].nodes -= 1;
        self.slots.remove(at)
    }

    /// Appends an entry to bucket `b`'s replacement cache.
    pub(super) fn push_replacement(&mut self, b: usize, entry: T) {
        let at = self.cache_range(b).end;
        self.insert_slot(at, entry);
        for h in &mut self.headers[b + 1..] {
            h.cache += 1;
        }
        self.headers[b].replacements += 1;
    }

    /// Removes bucket `b`'s replacement `i`, keeping the others' order.
    pub(super) fn remove_replacement(&mut self, b: usize, i: usize) -> T {
        let at = self.cache_range(b).start + i;
        for h in &mut self.headers[b + 1..] {
            h.cache -= 1;
        }
        self.headers[b].replacements -= 1;
        self.slots.remove(at)
    }
    /// Keeps the main entries of bucket `b` for which `keep` holds (order kept).
    pub(super) fn retain_nodes(&mut self, b: usize, mut keep: impl FnMut(&T) -> bool) {
        // Usually nothing goes: one pass to find the first that does.
        let Some(mut i) = self.nodes(b).iter().position(|e| !keep(e)) else {
            return;
        };
        self.remove_node(b, i);
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
        let Some(mut i) = self.replacements(b).iter().position(|e| !keep(e)) else {
            return;
        };
        self.remove_replacement(b, i);
        while i < self.headers[b].replacements as usize {
            if keep(&self.replacements(b)[i]) {
                i += 1;
            } else {
                self.remove_replacement(b, i);
            }
        }
    }

    /// Drops bucket `b`'s oldest replacement and appends `entry` after the others, in
    /// place: what `remove_replacement(b, 0)` then `push_replacement(b, entry)` do,
    /// without moving the buckets after it twice. The cache must not be empty.
    pub(super) fn replace_oldest_replacement(&mut self, b: usize, entry: T) {
        let r = self.cache_range(b);
        let cache = &mut self.slots[r];
        cache.rotate_left(1);
        if let Some(last) = cache.last_mut() {
            *last = entry;
        }
    }

    /// Splits the last bucket in two: the entries for which `is_near` holds (main and
    /// cache, order kept) form a new last bucket, the rest stay. Both keep the old
    /// bucket's `last_changed`.
    pub(super) fn split_last(&mut self, is_near: impl Fn(&T) -> bool) {
        let last = self.headers.len() - 1;
        let old = self.headers[last];
        // The last bucket's main entries end the main region and its cache ends the
        // buffer: each is rewritten as the far half's entries, then the near half's.
        let cache: Vec<T> = self.slots.drain(old.cache as usize..).collect();
        let main: Vec<T> = self
            .slots
            .drain(old.main as usize..(old.main + old.nodes) as usize)
            .collect();
        let (near_nodes, far_nodes): (Vec<T>, Vec<T>) = main.into_iter().partition(&is_near);
        let (near_cache, far_cache): (Vec<T>, Vec<T>) = cache.into_iter().partition(&is_near);
        let far = Header {
            main: old.main,
            nodes: far_nodes.len() as u32,
            cache: old.cache,
            replacements: far_cache.len() as u32,
            last_changed: old.last_changed,
        };
        let near = Header {
            main: far.main + far.nodes,
            nodes: near_nodes.len() as u32,
            cache: far.cache + far.replacements,
            replacements: near_cache.len() as u32,
            last_changed: old.last_changed,
        };
        self.headers[last] = far;
        self.headers.reserve_exact(1);
        self.headers.push(near);
        let at = old.main as usize;
        self.slots
            .splice(at..at, far_nodes.into_iter().chain(near_nodes));
        self.slots.extend(far_cache.into_iter().chain(near_cache));
    }

    /// The same buckets with every entry turned into a `U` by `f`.
    pub(super) fn map<U>(&self, f: impl FnMut(&T) -> U) -> Buckets<U> {
        Buckets {
            slots: self.slots.iter().map(f).collect(),
            headers: self.headers.clone(),
        }
    }

    /// Inserts `entry` at buffer position `at`, growing the buffer a little at a time.
    fn insert_slot(&mut self, at: usize, entry: T) {
        if self.slots.len() == self.slots.capacity() {
            // A thirty-second more at a time (at least 8 entries): doubling would
            // leave a table of 200 entries room for 200 more in every node of a large
            // simulation, an eighth 12 on average (444 bytes at 37 an IPv4 entry).
            let grow = (self.slots.len() / 32).max(8);
            self.slots.reserve_exact(grow);
        }
        self.slots.insert(at, entry);
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
        b.replace_oldest_replacement(0, 11);
        assert_eq!(b.replacements(0), [9, 11]);
        assert_eq!(b.nodes(1), [12, 14, 18]);
        let doubled = b.map(|x| x * 2);
        assert_eq!(doubled.nodes(1), [24, 28, 36]);
        assert_eq!(doubled.replacements(0), [18, 22]);
    }
}
