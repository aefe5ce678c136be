//! Per-source storage accounting: which source (an IPv4 address or an IPv6 /64, see
//! [`crate::defense::source_of`]) each stored item and peer is charged to, how much
//! each source holds, and the bytes held in all.
//!
//! The ledger lives in memory and mirrors what this node has stored since it started:
//! the core decides every write and removal, so it can keep the books itself without
//! asking the store. What a persistent store held from before a restart is not
//! charged to anyone (the store cannot say who sent it); it still counts toward the
//! global item and info_hash caps (the store's counts) and ages out within the item
//! and peer lifetimes (2 hours, 30 minutes), after which the books are exact again.
//! This keeps the store format unchanged.
//!
//! Costs are estimates of what an entry costs in memory (store plus ledger), so that
//! [`crate::Limits::max_bytes`] bounds the memory of a node at its caps.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use crate::bep44::Item;
use crate::id::Id;
use crate::store::UnixMillis;

/// Estimated bytes of one stored peer: the store's entry (about 210 bytes measured
/// for the memory store, 128,000 peers grew a node by 27 MB) plus its ledger entry
/// and deadline (about 190).
pub const PEER_COST: u64 = 400;
/// Estimated bytes of one stored item besides its value, key, signature and salt:
/// the store's maps and deadline index and the ledger's entry.
pub const ITEM_OVERHEAD: u64 = 400;

/// Estimated bytes of a stored item.
pub fn item_cost(item: &Item) -> u64 {
    ITEM_OVERHEAD
        + match item {
            Item::Immutable { value } => value.len() as u64,
            Item::Mutable(m) => (m.value.len() + m.salt.len() + 32 + 64 + 8) as u64,
        }
}

/// One stored thing the ledger charges to a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Entry {
    /// A BEP 44 item by target.
    Item(Id),
    /// A peer of a swarm.
    Peer(Id, SocketAddr),
}

#[derive(Clone, Copy, Debug)]
struct Charge {
    source: IpAddr,
    bytes: u64,
    expires_at: UnixMillis,
}

/// What one source holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Usage {
    /// Items charged to it (it wrote them last).
    pub items: usize,
    /// Swarms in which it holds a peer slot.
    pub swarms: usize,
    /// Estimated bytes of all of the above.
    pub bytes: u64,
}

/// The books: charges by entry, usage by source, deadlines to release charges as
/// entries expire.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    charges: BTreeMap<Entry, Charge>,
    usage: BTreeMap<IpAddr, Usage>,
    deadlines: BTreeSet<(UnixMillis, Entry)>,
    total_bytes: u64,
}

impl Ledger {
    /// What `source` holds.
    pub fn usage(&self, source: IpAddr) -> Usage {
        self.usage.get(&source).copied().unwrap_or_default()
    }

    /// Estimated bytes held in all (what this node stored since it started).
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The source and bytes `entry` is charged to, if any.
    pub fn charge_of(&self, entry: &Entry) -> Option<(IpAddr, u64)> {
        self.charges.get(entry).map(|c| (c.source, c.bytes))
    }

    /// Charges `entry` to `source` (replacing any earlier charge: the last writer
    /// owns an item, so nobody can keep another's quota spent by refreshing).
    pub fn charge(&mut self, entry: Entry, source: IpAddr, bytes: u64, expires_at: UnixMillis) {
        self.release(&entry);
        let u = self.usage.entry(source).or_default();
        match entry {
            Entry::Item(_) => u.items += 1,
            Entry::Peer(..) => u.swarms += 1,
        }
        u.bytes += bytes;
        self.total_bytes += bytes;
        self.charges.insert(
            entry,
            Charge {
                source,
                bytes,
                expires_at,
            },
        );
        self.deadlines.insert((expires_at, entry));
    }

    /// Drops the charge of `entry` (removed or replaced in the store).
    pub fn release(&mut self, entry: &Entry) {
        let Some(c) = self.charges.remove(entry) else {
            return;
        };
        self.deadlines.remove(&(c.expires_at, *entry));
        self.total_bytes -= c.bytes;
        if let Some(u) = self.usage.get_mut(&c.source) {
            match entry {
                Entry::Item(_) => u.items -= 1,
                Entry::Peer(..) => u.swarms -= 1,
            }
            u.bytes -= c.bytes;
            if u.items == 0 && u.swarms == 0 {
                self.usage.remove(&c.source);
            }
        }
    }

    /// Releases the charges of entries that expired at or before `wall`, at most
    /// `max` of them (bounded work per call); true when more are due.
    pub fn expire(&mut self, wall: UnixMillis, max: usize) -> bool {
        for _ in 0..max {
            match self.deadlines.first() {
                Some(&(t, entry)) if t <= wall => self.release(&entry),
                _ => return false,
            }
        }
        self.deadlines.first().is_some_and(|&(t, _)| t <= wall)
    }

    /// Entries charged (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.charges.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_move_and_expire() {
        let mut l = Ledger::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t = Id([1; 20]);
        l.charge(Entry::Item(t), a, 100, 10);
        assert_eq!(l.usage(a).items, 1);
        l.charge(Entry::Item(t), b, 120, 20);
        assert_eq!(l.usage(a), Usage::default());
        assert_eq!(l.usage(b).bytes, 120);
        assert_eq!(l.total_bytes(), 120);
        let p = Entry::Peer(t, "192.0.2.1:1".parse().unwrap());
        l.charge(p, a, PEER_COST, 15);
        assert!(!l.expire(15, 10));
        assert_eq!(l.len(), 1);
        assert!(!l.expire(20, 10));
        assert_eq!(l.len(), 0);
        assert_eq!(l.total_bytes(), 0);
    }
}
