//! The live ring seen from above: the truth [`super::run`] judges Chord's lookups by,
//! and the perfect tables its ideal path lengths come from.

use dht_core::Id;

use super::sim::ChordSim;

/// The live ring seen from above: ids sorted clockwise from zero.
#[derive(Clone, Debug)]
pub struct Ring {
    sorted: Vec<(Id, u32)>,
}

impl Ring {
    /// The live nodes of `sim`.
    pub fn of(sim: &ChordSim) -> Ring {
        Ring::from_ids(sim.live().into_iter().map(|i| (sim.node(i).id(), i as u32)))
    }

    /// Any ids, each with the index of its (physical) node.
    pub fn from_ids(ids: impl Iterator<Item = (Id, u32)>) -> Ring {
        let mut sorted: Vec<(Id, u32)> = ids.collect();
        sorted.sort_unstable();
        Ring { sorted }
    }

    /// Nodes on the ring.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// True for an empty ring.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Position (in clockwise order) of `key`'s successor. The ring must not be empty.
    pub fn successor_pos(&self, key: &Id) -> usize {
        self.sorted.partition_point(|(id, _)| id < key) % self.sorted.len()
    }

    /// `key`'s successor: its id and node index.
    pub fn successor(&self, key: &Id) -> (Id, u32) {
        self.sorted[self.successor_pos(key)]
    }

    /// The `r` nodes from `key`'s successor on (fewer in a smaller ring).
    pub fn successors(&self, key: &Id, r: usize) -> Vec<(Id, u32)> {
        let p = self.successor_pos(key);
        let n = self.sorted.len();
        (0..r.min(n)).map(|k| self.sorted[(p + k) % n]).collect()
    }

    /// What a perfect node `id` routes by: its 160 fingers, next `r` successors and
    /// predecessor (a real node routes by its predecessor too: a key just before
    /// itself is one step away, at the predecessor, not a walk around the fingers).
    fn perfect_table(&self, id: &Id, r: usize) -> Vec<Id> {
        let mut known: Vec<Id> = (0..dht_chord::ring::M)
            .map(|i| self.successor(&dht_chord::ring::finger_start(id, i)).0)
            .collect();
        let after = dht_chord::ring::add(id, &dht_chord::ring::pow2(0));
        known.extend(self.successors(&after, r).into_iter().map(|(x, _)| x));
        let pos = self.successor_pos(id);
        let n = self.sorted.len();
        if n > 0 {
            known.push(self.sorted[(pos + n - 1) % n].0);
        }
        known.sort_unstable();
        known.dedup();
        known.retain(|x| x != id);
        known
    }

    /// Distinct entries of a perfect table (fingers, r successors, predecessor) of node `id`.
    pub fn perfect_entries(&self, id: &Id, r: usize) -> usize {
        self.perfect_table(id, r).len()
    }

    /// The path length of a lookup of `target` from node `src` over perfect tables,
    /// counted as [`dht_chord::QueryStats::hops`] counts it.
    pub fn ideal_hops(&self, src: &Id, target: &Id, r: usize) -> u32 {
        let mut x = *src;
        let mut hops = 0;
        loop {
            let after = dht_chord::ring::add(&x, &dht_chord::ring::pow2(0));
            let succ = self.successor(&after).0;
            if dht_chord::ring::in_half_open(target, &x, &succ) || hops > 160 {
                return hops;
            }
            let known = self.perfect_table(&x, r);
            match dht_chord::ring::closest_preceding(&x, target, known.iter(), 1).first() {
                Some(next) => x = *next,
                None => return hops,
            }
            hops += 1;
        }
    }
}
