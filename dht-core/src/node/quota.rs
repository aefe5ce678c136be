//! Per-source storage accounting: which source (an IPv4 address or an IPv6 /64, see
//! [`crate::defense::source_of`]) each stored item and peer is charged to, how much
//! each source and each network above it holds (IPv4 /24 and /16, IPv6 /56, /48 and
//! /32: [`V4_LEVELS`], [`V6_LEVELS`]), and the bytes held in all.
//!
//! Two rules read the books. Shares: a source and each of its networks hold at most
//! a share ([`Shares`]), so one network cannot fill a cap from many addresses (64
//! /64s of one /58 filled both caps). Room at a full cap: the network holding the
//! most gives up its soonest-expiring entry to a newcomer from a network holding far
//! less, and a newcomer from the network holding the most is refused
//! ([`Ledger::victim`]), so a flood that fills a cap from many networks no longer
//! refuses everyone new. Exempt writers (loopback, and private ones on a private
//! node) are charged to nobody: no share, and nothing of theirs gives way. `Node::check_shares` and `Node::make_room` apply them for
//! `serve.rs`'s puts and announces (removals go through the store).
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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Bound;

use crate::bep44::Item;
use crate::config::Limits;
use crate::store::{Store, StoreError};

use super::serve::{Refusal, SHARE_USED, STORAGE_FULL};
use super::stats::RefusalReason;
use super::Node;
use crate::id::Id;
use crate::store::UnixMillis;

/// Estimated bytes of one stored peer: the store's entry (about 210 bytes measured
/// for the memory store, 128,000 peers grew a node by 27 MB) plus its ledger entry
/// and deadline (about 190). An undercount since the books per network and the
/// index by source came in: 654 bytes a peer measured at the caps (ARCHITECTURE.md).
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

impl Entry {
    fn is_peer(&self) -> bool {
        matches!(self, Entry::Peer(..))
    }
}

#[derive(Clone, Copy, Debug)]
struct Charge {
    /// `None`: an exempt writer (loopback, or private on a private node), which has
    /// no share and never gives way at a full cap; its bytes still count in all.
    source: Option<IpAddr>,
    bytes: u64,
    expires_at: UnixMillis,
}

/// What one source, or one network of sources, holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Usage {
    /// Items charged to it (it wrote them last).
    pub items: usize,
    /// Swarms in which it holds a peer slot.
    pub swarms: usize,
    /// Estimated bytes of all of the above.
    pub bytes: u64,
}

/// What a share and a cap count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Resource {
    /// Items held.
    Items,
    /// Peer slots held (one per swarm and source).
    Swarms,
    /// Estimated bytes held.
    Bytes,
}

impl Resource {
    const ALL: [Resource; 3] = [Resource::Items, Resource::Swarms, Resource::Bytes];

    fn index(self) -> usize {
        self as usize
    }
}

impl Usage {
    fn amount(&self, r: Resource) -> u64 {
        match r {
            Resource::Items => self.items as u64,
            Resource::Swarms => self.swarms as u64,
            Resource::Bytes => self.bytes,
        }
    }
}

/// A network at one level of aggregation: its prefix length and first address. A
/// source (an IPv4 address, an IPv6 /64) is the lowest level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Net {
    bits: u8,
    first: IpAddr,
}

/// The levels shares are kept at, from the source up, with each level's share as a
/// multiple of a source's (before scaling to the caps, see [`Shares`]). Why these:
/// - an IPv4 /24 and an IPv6 /56, x4: the smallest block a customer or a LAN is
///   given (a /24 is the smallest routed IPv4 block; RIPE-690 gives a home a /56),
///   room for a few hosts or a NAT pool;
/// - an IPv6 /48, x8: a site (RFC 6177), and what tunnel brokers hand out free, so
///   the cheapest way to many /64s;
/// - an IPv4 /16 and an IPv6 /32, x16 (a quarter of the default caps): a
///   provider's block (a /32 is the smallest LIR allocation). It takes four
///   providers to fill a cap, and then a full cap makes room fairly anyway.
///
/// A /58 of 64 /64s, which filled both caps alone, now holds 1,024 items and 1,024
/// swarms (its /56's share).
const V4_LEVELS: [(u8, u64); 3] = [(32, 1), (24, 4), (16, 16)];
/// See [`V4_LEVELS`].
const V6_LEVELS: [(u8, u64); 4] = [(64, 1), (56, 4), (48, 8), (32, 16)];

fn levels(ip: IpAddr) -> &'static [(u8, u64)] {
    match ip {
        IpAddr::V4(_) => &V4_LEVELS,
        IpAddr::V6(_) => &V6_LEVELS,
    }
}

/// The network of `bits` that `ip` belongs to, and its last address.
fn net(ip: IpAddr, bits: u8) -> (Net, IpAddr) {
    let (first, last) = match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - bits as u32).unwrap_or(0);
            let a = u32::from(a);
            (
                IpAddr::V4(Ipv4Addr::from(a & mask)),
                IpAddr::V4(Ipv4Addr::from(a | !mask)),
            )
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - bits as u32).unwrap_or(0);
            let a = u128::from(a);
            (
                IpAddr::V6(Ipv6Addr::from(a & mask)),
                IpAddr::V6(Ipv6Addr::from(a | !mask)),
            )
        }
    };
    (Net { bits, first }, last)
}

/// The shares of one source and of each network above it, scaled to the caps.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shares {
    items: u64,
    swarms: u64,
    bytes: u64,
    caps: (u64, u64, u64),
}

impl Shares {
    /// The shares `limits` give.
    pub fn of(limits: &Limits) -> Shares {
        Shares {
            items: limits.max_items_per_source as u64,
            swarms: limits.max_info_hashes_per_source as u64,
            bytes: limits.max_bytes_per_source,
            caps: (
                limits.max_items as u64,
                limits.max_info_hashes as u64,
                limits.max_bytes,
            ),
        }
    }

    /// The share of `r` of a network at `multiple` times a source's: never more than
    /// half the cap (a share that reaches its cap lets one network fill it: a node
    /// started with `--max-items 256` and shares of 256 refused every honest put
    /// once one source had written 256), never less than 1.
    pub fn at(&self, r: Resource, multiple: u64) -> u64 {
        let (share, cap) = match r {
            Resource::Items => (self.items, self.caps.0),
            Resource::Swarms => (self.swarms, self.caps.1),
            Resource::Bytes => (self.bytes, self.caps.2),
        };
        share.saturating_mul(multiple).min(cap / 2).max(1)
    }
}

/// The books: charges by entry, usage by source and by each network above it,
/// entries by source (what a source gives up when a cap makes room), deadlines to
/// release charges as entries expire.
#[derive(Debug, Default)]
pub(super) struct Books {
    charges: BTreeMap<Entry, Charge>,
    usage: BTreeMap<Net, Usage>,
    /// The top-level networks (IPv4 /16s, IPv6 /32s) by what they hold of each
    /// resource, so that finding the biggest costs a lookup, not a pass over them all.
    top: [BTreeSet<(u64, Net)>; 3],
    /// (source, is a peer, deadline, entry): a source's items, then its peers, each
    /// soonest-expiring first.
    held: BTreeSet<(IpAddr, bool, UnixMillis, Entry)>,
    deadlines: BTreeSet<(UnixMillis, Entry)>,
    total_bytes: u64,
}

impl Books {
    /// What `source` holds.
    #[cfg(test)]
    pub fn usage(&self, source: IpAddr) -> Usage {
        let (n, _) = net(source, levels(source)[0].0);
        self.usage_of(&n)
    }

    fn usage_of(&self, n: &Net) -> Usage {
        self.usage.get(n).copied().unwrap_or_default()
    }

    /// Estimated bytes held in all (what this node stored since it started).
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The bytes `entry` is charged (0 when it is not).
    pub fn bytes_of(&self, entry: &Entry) -> u64 {
        self.charges.get(entry).map_or(0, |c| c.bytes)
    }

    /// Whether `source` and every network above it have room in their shares for one
    /// more `entry` of `bytes` (what the write replaces counts once: its old charge
    /// is taken off the networks that hold it); the resource whose share is used up
    /// if not.
    pub fn check_shares(
        &self,
        source: IpAddr,
        entry: &Entry,
        bytes: u64,
        shares: &Shares,
    ) -> Result<(), Resource> {
        let replaced = self.charges.get(entry);
        let count = if entry.is_peer() {
            Resource::Swarms
        } else {
            Resource::Items
        };
        for &(bits, multiple) in levels(source) {
            let (n, last) = net(source, bits);
            let mut u = self.usage_of(&n);
            let within = |c: &&Charge| c.source.is_some_and(|s| n.first <= s && s <= last);
            if let Some(c) = replaced.filter(within) {
                u.bytes = u.bytes.saturating_sub(c.bytes);
                match entry {
                    Entry::Item(_) => u.items = u.items.saturating_sub(1),
                    Entry::Peer(..) => u.swarms = u.swarms.saturating_sub(1),
                }
            }
            if u.amount(count) >= shares.at(count, multiple) {
                return Err(count);
            }
            if u.bytes + bytes > shares.at(Resource::Bytes, multiple) {
                return Err(Resource::Bytes);
            }
        }
        Ok(())
    }

    /// The source that gives up an entry so that a write of `add` of `r` from
    /// `source` fits under a full cap, or `None`: the write is refused.
    ///
    /// From the top level down (IPv4 /16s and IPv6 /32s, then within the newcomer's
    /// network its /24s or /48s, and so on), the newcomer's network is compared with
    /// the sibling that holds the most. When that sibling holds at least twice what
    /// the newcomer's network would hold after the write, it gives way: the entry
    /// comes from its biggest source (its biggest sub-network at each level down).
    /// When the newcomer's network holds the most, the comparison moves down into it
    /// (someone inside may hold far more than the newcomer). Otherwise, and when the
    /// newcomer's own source holds the most, it is refused: a network that already
    /// holds the most never evicts an honest one, and networks holding about the same
    /// do not evict each other (no churn among equals).
    ///
    /// Costs a lookup at the top level and a pass over the siblings at each level
    /// below (at most 256, but 65,536 /48s in a /32), only when a cap is full.
    pub fn victim(&self, source: IpAddr, r: Resource, add: u64) -> Option<IpAddr> {
        let chain = levels(source);
        let mut parent: Option<(Net, IpAddr)> = None;
        for &(bits, _) in chain.iter().rev() {
            let (mine, last) = net(source, bits);
            let n = self.usage_of(&mine).amount(r);
            let best = match parent {
                None => self.top[r.index()]
                    .iter()
                    .rev()
                    .find(|(_, k)| *k != mine)
                    .map(|&(a, k)| (k, a)),
                Some(p) => self.children(p, bits).filter(|(k, _)| **k != mine).fold(
                    None,
                    |best: Option<(Net, u64)>, (k, u)| {
                        let a = u.amount(r);
                        match best {
                            Some((_, m)) if m >= a => best,
                            _ => Some((*k, a)),
                        }
                    },
                ),
            };
            match best {
                Some((h, m)) if m >= n.saturating_add(add).saturating_mul(2) => {
                    return self.biggest_source_in(h, r)
                }
                Some((_, m)) if n < m => return None,
                _ => parent = Some((mine, last)),
            }
        }
        None
    }

    /// The networks of `bits` within `parent`, with what they hold.
    fn children(
        &self,
        (parent, last): (Net, IpAddr),
        bits: u8,
    ) -> impl Iterator<Item = (&Net, &Usage)> + '_ {
        let lo = Net {
            bits,
            first: parent.first,
        };
        self.usage.range(lo..=Net { bits, first: last })
    }

    /// The source within `n` that holds the most of `r`, found by taking the
    /// sub-network that holds the most at each level down.
    fn biggest_source_in(&self, mut n: Net, r: Resource) -> Option<IpAddr> {
        let chain = levels(n.first);
        let mut i = chain.iter().position(|&(b, _)| b == n.bits)?;
        while i > 0 {
            i -= 1;
            let (_, last) = net(n.first, n.bits);
            let lo = Net {
                bits: chain[i].0,
                first: n.first,
            };
            let hi = Net {
                bits: chain[i].0,
                first: last,
            };
            n = *self
                .usage
                .range(lo..=hi)
                .fold(None, |best: Option<(&Net, u64)>, (k, u)| {
                    let a = u.amount(r);
                    match best {
                        Some((_, m)) if m >= a => best,
                        _ => Some((k, a)),
                    }
                })?
                .0;
        }
        Some(n.first)
    }

    /// `source`'s entries, soonest-expiring first: its items, or its peers.
    pub fn held_by(&self, source: IpAddr, peers: bool) -> impl Iterator<Item = Entry> + '_ {
        let from = (source, peers, 0, Entry::Item(Id([0; 20])));
        self.held
            .range((Bound::Included(from), Bound::Unbounded))
            .take_while(move |(s, p, _, _)| *s == source && *p == peers)
            .map(|(_, _, _, e)| *e)
    }

    /// `source`'s soonest-expiring entry other than `keep`, item or peer.
    pub fn soonest_of(&self, source: IpAddr, keep: &Entry) -> Option<Entry> {
        let first = |peers| {
            self.held_by(source, peers)
                .find(|e| e != keep)
                .and_then(|e| self.charges.get(&e).map(|c| (c.expires_at, e)))
        };
        match (first(false), first(true)) {
            (Some(a), Some(b)) => Some(a.min(b).1),
            (a, b) => a.or(b).map(|(_, e)| e),
        }
    }

    /// Applies `f` to the usage of `source` and of every network above it.
    fn each_level(&mut self, source: IpAddr, f: impl Fn(&mut Usage)) {
        let chain = levels(source);
        for (i, &(bits, _)) in chain.iter().enumerate() {
            let (n, _) = net(source, bits);
            let u = self.usage.entry(n).or_default();
            let old = *u;
            f(u);
            let new = *u;
            if new == Usage::default() {
                self.usage.remove(&n);
            }
            if i == chain.len() - 1 {
                for r in Resource::ALL {
                    let rank = &mut self.top[r.index()];
                    rank.remove(&(old.amount(r), n));
                    if new.amount(r) > 0 {
                        rank.insert((new.amount(r), n));
                    }
                }
            }
        }
    }

    /// Charges `entry` to `source` (replacing any earlier charge: the last writer
    /// owns an item, so nobody can keep another's quota spent by refreshing); `None`
    /// for an exempt writer.
    pub fn charge(
        &mut self,
        entry: Entry,
        source: Option<IpAddr>,
        bytes: u64,
        expires_at: UnixMillis,
    ) {
        self.release(&entry);
        let peer = entry.is_peer();
        if let Some(source) = source {
            self.each_level(source, |u| {
                if peer {
                    u.swarms += 1;
                } else {
                    u.items += 1;
                }
                u.bytes += bytes;
            });
            self.held.insert((source, peer, expires_at, entry));
        }
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
        let peer = entry.is_peer();
        self.deadlines.remove(&(c.expires_at, *entry));
        self.total_bytes -= c.bytes;
        if let Some(source) = c.source {
            self.held.remove(&(source, peer, c.expires_at, *entry));
            self.each_level(source, |u| {
                if peer {
                    u.swarms -= 1;
                } else {
                    u.items -= 1;
                }
                u.bytes -= c.bytes;
            });
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

/// No books yet: what a ledger that never charged anything reads.
static EMPTY: Books = Books {
    charges: BTreeMap::new(),
    usage: BTreeMap::new(),
    top: [BTreeSet::new(), BTreeSet::new(), BTreeSet::new()],
    held: BTreeSet::new(),
    deadlines: BTreeSet::new(),
    total_bytes: 0,
};

/// The [`Books`], made at the first charge: a node that stores nothing (every node of
/// a large lookup simulation) holds 8 bytes here instead of 176.
#[derive(Debug, Default)]
pub(super) struct Ledger(Option<Box<Books>>);

impl Ledger {
    fn books(&self) -> &Books {
        self.0.as_deref().unwrap_or(&EMPTY)
    }

    /// What `source` holds.
    #[cfg(test)]
    pub fn usage(&self, source: IpAddr) -> Usage {
        self.books().usage(source)
    }

    /// See [`Books::total_bytes`].
    pub fn total_bytes(&self) -> u64 {
        self.books().total_bytes()
    }

    /// See [`Books::bytes_of`].
    pub fn bytes_of(&self, entry: &Entry) -> u64 {
        self.books().bytes_of(entry)
    }

    /// See [`Books::check_shares`].
    pub fn check_shares(
        &self,
        source: IpAddr,
        entry: &Entry,
        bytes: u64,
        shares: &Shares,
    ) -> Result<(), Resource> {
        self.books().check_shares(source, entry, bytes, shares)
    }

    /// See [`Books::victim`].
    pub fn victim(&self, source: IpAddr, r: Resource, add: u64) -> Option<IpAddr> {
        self.books().victim(source, r, add)
    }

    /// See [`Books::held_by`].
    pub fn held_by(&self, source: IpAddr, peers: bool) -> impl Iterator<Item = Entry> + '_ {
        self.books().held_by(source, peers)
    }

    /// See [`Books::soonest_of`].
    pub fn soonest_of(&self, source: IpAddr, keep: &Entry) -> Option<Entry> {
        self.books().soonest_of(source, keep)
    }

    /// See [`Books::charge`]; makes the books.
    pub fn charge(
        &mut self,
        entry: Entry,
        source: Option<IpAddr>,
        bytes: u64,
        expires_at: UnixMillis,
    ) {
        self.0
            .get_or_insert_with(Default::default)
            .charge(entry, source, bytes, expires_at);
    }

    /// See [`Books::release`].
    pub fn release(&mut self, entry: &Entry) {
        if let Some(b) = &mut self.0 {
            b.release(entry);
        }
    }

    /// See [`Books::expire`].
    pub fn expire(&mut self, wall: UnixMillis, max: usize) -> bool {
        self.0.as_mut().is_some_and(|b| b.expire(wall, max))
    }

    /// Entries charged (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.books().len()
    }
}

/// Most entries one write evicts at a full cap: an item of 1,000 bytes needs the
/// room of four peers.
const MAX_EVICTIONS_PER_WRITE: usize = 8;
/// Most of a victim's peers looked at for a swarm it holds alone (each a store read),
/// when the info_hash cap makes room.
const SOLE_SWARMS_TRIED: usize = 16;

/// The two rules as `serve.rs` applies them to a put or an announce.
impl<S: Store> Node<S> {
    /// Refuses a write that does not fit the shares of its source or of a network
    /// above it (see `quota.rs`).
    pub(super) fn check_shares(
        &mut self,
        src: IpAddr,
        entry: &Entry,
        bytes: u64,
    ) -> Result<(), Refusal> {
        let shares = Shares::of(&self.config.limits);
        match self.ledger.check_shares(src, entry, bytes, &shares) {
            Ok(()) => Ok(()),
            Err(r) => {
                let why = match r {
                    Resource::Items => RefusalReason::SourceItems,
                    Resource::Swarms => RefusalReason::SourceInfoHashes,
                    Resource::Bytes => RefusalReason::SourceBytes,
                };
                Err(self.refuse(SHARE_USED, why))
            }
        }
    }

    /// While `full` says a global cap of `r` has no room for a write of `add` from
    /// `src`, removes one entry of the network that holds the most (never `keep`,
    /// the entry being written), as `Ledger::victim` picks it; refuses the write
    /// when nobody should give way. Bounded: a write needs at most a few entries'
    /// room (an item of 1,000 bytes, four peers).
    pub(super) fn make_room(
        &mut self,
        src: IpAddr,
        r: Resource,
        add: u64,
        keep: &Entry,
        full: impl Fn(&Self) -> Result<bool, StoreError>,
    ) -> Result<(), Refusal> {
        for _ in 0..MAX_EVICTIONS_PER_WRITE {
            match full(self) {
                Ok(false) => return Ok(()),
                Ok(true) => {}
                Err(e) => return Err(self.store_err(e)),
            }
            let victim = self.ledger.victim(src, r, add);
            let entry = victim.and_then(|v| match r {
                Resource::Items => self.ledger.held_by(v, false).find(|e| e != keep),
                Resource::Bytes => self.ledger.soonest_of(v, keep),
                // Only a swarm the victim holds alone frees an info_hash.
                Resource::Swarms => {
                    self.ledger
                        .held_by(v, true)
                        .take(SOLE_SWARMS_TRIED)
                        .find(|e| match e {
                            Entry::Peer(ih, _) => {
                                self.store.get_peers(ih).is_ok_and(|p| p.len() == 1)
                            }
                            Entry::Item(_) => false,
                        })
                }
            });
            let Some(entry) = entry else { break };
            let removed = match entry {
                Entry::Item(target) => self.store.remove_item(&target),
                Entry::Peer(ih, addr) => self.store.remove_peer(&ih, &addr),
            };
            if let Err(e) = removed {
                return Err(self.store_err(e));
            }
            self.ledger.release(&entry);
            self.stats.storage_evicted += 1;
        }
        match full(self) {
            Ok(false) => Ok(()),
            Ok(true) => Err(self.refuse(
                STORAGE_FULL,
                match r {
                    Resource::Items => RefusalReason::ItemCap,
                    Resource::Swarms => RefusalReason::InfoHashCap,
                    Resource::Bytes => RefusalReason::ByteCap,
                },
            )),
            Err(e) => Err(self.store_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defense::source_of;

    #[test]
    fn charges_move_and_expire() {
        let mut l = Ledger::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t = Id([1; 20]);
        l.charge(Entry::Item(t), Some(a), 100, 10);
        assert_eq!(l.usage(a).items, 1);
        l.charge(Entry::Item(t), Some(b), 120, 20);
        assert_eq!(l.usage(a), Usage::default());
        assert_eq!(l.usage(b).bytes, 120);
        assert_eq!(l.total_bytes(), 120);
        let p = Entry::Peer(t, "192.0.2.1:1".parse().unwrap());
        l.charge(p, Some(a), PEER_COST, 15);
        assert!(!l.expire(15, 10));
        assert_eq!(l.len(), 1);
        assert!(!l.expire(20, 10));
        assert_eq!(l.len(), 0);
        assert_eq!(l.total_bytes(), 0);
        // Nothing left behind at any level.
        let b = l.books();
        assert!(b.usage.is_empty() && b.held.is_empty() && b.top.iter().all(|t| t.is_empty()));
    }

    #[test]
    fn networks_add_up_and_the_biggest_gives_way() {
        let mut l = Books::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Three /64s of one /56 hold 3 items; one other /32 holds 1.
        for (i, s) in ["2001:db8:0:1::1", "2001:db8:0:2::1", "2001:db8:0:3::9"]
            .iter()
            .enumerate()
        {
            l.charge(
                Entry::Item(Id([i as u8; 20])),
                Some(source_of(ip(s))),
                500,
                10,
            );
        }
        l.charge(Entry::Item(Id([9; 20])), Some(ip("3fff::")), 500, 10);
        let (n56, _) = net(ip("2001:db8::"), 56);
        assert_eq!(l.usage_of(&n56).items, 3);
        assert_eq!(l.usage_of(&n56).bytes, 1_500);
        // A newcomer elsewhere takes room from the /56's biggest /64 (the first).
        let v = l.victim(ip("198.51.100.1"), Resource::Items, 1);
        assert_eq!(v, Some(ip("2001:db8:0:1::")));
        // The lone holder of 3fff::/32 cannot evict: the /56 holds 3, less than twice
        // its 1 + 1. A newcomer in the /56 holds the most and is refused.
        assert_eq!(l.victim(ip("3fff::1"), Resource::Items, 1), None);
        assert_eq!(l.victim(ip("2001:db8:0:4::1"), Resource::Items, 1), None);
        // Shares: the /56 holds 3 items; with a source share of 1 its share is 4.
        let shares = Shares::of(&Limits {
            max_items_per_source: 1,
            ..Limits::default()
        });
        let e = Entry::Item(Id([7; 20]));
        assert_eq!(
            l.check_shares(ip("2001:db8:0:4::"), &e, 500, &shares),
            Ok(())
        );
        l.charge(e, Some(ip("2001:db8:0:4::")), 500, 10);
        let e = Entry::Item(Id([8; 20]));
        assert_eq!(
            l.check_shares(ip("2001:db8:0:5::"), &e, 500, &shares),
            Err(Resource::Items)
        );
    }
}
