//! The disjoint paths of one lookup (S/Kademlia): `d` candidate sets toward one target,
//! no contact asked by two of them. With one path this is a plain lookup.
//!
//! Protocol-neutral, like [`Candidates`]: any [`Contact`] (Mainline's [`NodeInfo`] by
//! default).

use std::collections::BTreeSet;

use crate::contact::Contact;
use crate::id::{Key, NodeInfo};
use crate::lookup::Candidates;

/// The candidate sets of one lookup, one per disjoint path, and the contacts some
/// path has claimed.
#[derive(Clone, Debug)]
pub struct Paths<C: Contact = NodeInfo> {
    paths: Vec<Candidates<C>>,
    /// Contacts some path has asked (disjoint lookups only).
    claimed: BTreeSet<C::Key>,
}

impl<C: Contact> Paths<C> {
    /// The lookup's paths; at least one (an empty list gets one that asks nobody).
    pub fn new(paths: Vec<Candidates<C>>) -> Paths<C> {
        Paths {
            paths,
            claimed: BTreeSet::new(),
        }
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when there is no path.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Path `i`.
    pub fn get(&self, i: usize) -> Option<&Candidates<C>> {
        self.paths.get(i)
    }

    /// Path `i`, to add candidates or report on a request it sent.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Candidates<C>> {
        self.paths.get_mut(i)
    }

    /// Every path.
    pub fn iter(&self) -> impl Iterator<Item = &Candidates<C>> + '_ {
        self.paths.iter()
    }

    /// The next contacts to ask, with the path each is asked on. On disjoint lookups
    /// a contact one path claimed is set aside by every later path (each path's
    /// claims are made before the next path picks); `skip` sets aside more (a seed
    /// whose reply is pending answers for the candidate at its address).
    pub fn next_to_query(&mut self, skip: impl Fn(&C) -> bool) -> Vec<(u8, C)> {
        let mut next = Vec::new();
        let disjoint = self.paths.len() > 1;
        for (i, c) in self.paths.iter_mut().enumerate() {
            let claimed = &self.claimed;
            let skip = |n: &C| (disjoint && claimed.contains(n.key())) || skip(n);
            let start = next.len();
            for n in c.next_to_query_skipping(skip) {
                next.push((i as u8, n));
            }
            if disjoint {
                for (_, n) in &next[start..] {
                    self.claimed.insert(*n.key());
                }
            }
        }
        next
    }

    /// True when every path is done.
    pub fn all_done(&self) -> bool {
        self.paths.iter().all(|c| c.is_done())
    }

    /// True when every path is done or waits only for its last of the k closest
    /// ([`Candidates::awaiting_last`]) and `overdue` says that one is overdue.
    pub fn all_done_but_overdue(&self, overdue: impl Fn(&C) -> bool) -> bool {
        self.paths
            .iter()
            .all(|c| c.is_done() || c.awaiting_last().is_some_and(&overdue))
    }

    /// The `k` closest responders over every path, closest first, with their depth
    /// and the token each handed us.
    pub fn merged_closest(&self, k: usize) -> Vec<(C, u32, Option<Vec<u8>>)> {
        if let [only] = self.paths.as_slice() {
            return only.closest_responded();
        }
        let mut all: Vec<_> = self
            .paths
            .iter()
            .flat_map(|c| c.closest_responded())
            .collect();
        let Some(target) = self.paths.first().map(|c| c.target()) else {
            return all;
        };
        all.sort_by_key(|(n, _, _)| n.key().distance(&target));
        all.dedup_by(|a, b| a.0.key() == b.0.key());
        all.truncate(k);
        all
    }
}

impl<C: Contact> std::ops::Index<usize> for Paths<C> {
    type Output = Candidates<C>;
    fn index(&self, i: usize) -> &Candidates<C> {
        &self.paths[i]
    }
}

impl<C: Contact> std::ops::IndexMut<usize> for Paths<C> {
    fn index_mut(&mut self, i: usize) -> &mut Candidates<C> {
        &mut self.paths[i]
    }
}
