//! The node's routing table of one address family, with IPv4 contacts held compact.
//!
//! An entry of the kernel's table of [`NodeInfo`] is 64 bytes, 32 of them a
//! `SocketAddr` that for IPv4 carries 6 bytes of address and port. The IPv4 table
//! holds [`Contact4`]s instead (a 37-byte entry): a simulated network of 100,000 nodes
//! holds some 250 entries a node, 6 KB of them saved per node. Every decision is the
//! kernel's on the same inputs: `Contact4` answers every question of [`Contact`]
//! exactly as the `NodeInfo` it packs, and the round trip is lossless for every
//! `SocketAddr::V4`.
//!
//! The IPv4 table may also be handed an IPv4-mapped IPv6 address ([`Family::of`]
//! files `[::ffff:a.b.c.d]:p` under IPv4, flow and scope included), which a `Contact4`
//! cannot hold. The first time one must be stored the table becomes a table of
//! `NodeInfo` ([`RoutingTable::map_contacts`]: every bucket, entry, order, stamp and
//! cache kept) and stays one, so such a node behaves as before too. The IPv6 table is
//! a table of `NodeInfo` from the start.
//!
//! [`Family::of`]: super::Family::of

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Family;
use crate::config::Config;
use crate::contact::{Admission, Contact};
use crate::id::{Id, NodeInfo};
use crate::routing::{Entry, Health, Insert, RoutingTable, Stamp};

/// An IPv4 node: its id, address and port, 26 bytes where a [`NodeInfo`] takes 52.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Contact4 {
    id: Id,
    ip: [u8; 4],
    /// Big-endian bytes, not a `u16`: nothing in an entry is then aligned past a byte
    /// (see [`crate::kernel::Rtt`]).
    port: [u8; 2],
}

impl Contact4 {
    /// The compact form of `node`, when its address is a `SocketAddr::V4`.
    fn narrow(node: &NodeInfo) -> Option<Contact4> {
        match node.addr {
            SocketAddr::V4(a) => Some(Contact4 {
                id: node.id,
                ip: a.ip().octets(),
                port: a.port().to_be_bytes(),
            }),
            SocketAddr::V6(_) => None,
        }
    }

    fn ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.ip)
    }

    /// The [`NodeInfo`] it packs.
    fn widen(&self) -> NodeInfo {
        NodeInfo {
            id: self.id,
            addr: SocketAddr::V4(SocketAddrV4::new(
                self.ipv4(),
                u16::from_be_bytes(self.port),
            )),
        }
    }

    /// True when it is reached at `addr`.
    fn is_at(&self, addr: &SocketAddr) -> bool {
        match addr {
            SocketAddr::V4(a) => a.ip().octets() == self.ip && a.port().to_be_bytes() == self.port,
            SocketAddr::V6(_) => false,
        }
    }
}

/// The same answers as [`NodeInfo`]'s for the same node.
impl Contact for Contact4 {
    type Key = Id;

    #[inline]
    fn key(&self) -> &Id {
        &self.id
    }

    #[inline]
    fn ip(&self) -> Option<IpAddr> {
        Some(IpAddr::V4(self.ipv4()))
    }

    #[inline]
    fn same_endpoint(&self, other: &Self) -> bool {
        self.ip == other.ip && self.port == other.port
    }

    fn is_verified(&self) -> bool {
        crate::bep42::is_valid(&self.id, IpAddr::V4(self.ipv4()))
    }

    fn readdress(&mut self, _newer: &Self) -> bool {
        false
    }
}

fn widen_entry(e: &Entry<Contact4>) -> Entry<NodeInfo> {
    e.map(Contact4::widen)
}

fn widen_insert(i: Insert<Contact4>) -> Insert<NodeInfo> {
    match i {
        Insert::Updated => Insert::Updated,
        Insert::Added => Insert::Added,
        Insert::Cached(stale) => Insert::Cached(stale.as_ref().map(Contact4::widen)),
        Insert::Rejected => Insert::Rejected,
    }
}

/// The routing table of one address family of a [`Node`](crate::Node): the kernel's
/// [`RoutingTable`] of [`NodeInfo`], whose IPv4 entries are held in a compact form.
/// It answers as that table does; entries come out by value, as `NodeInfo`s.
#[derive(Clone, Debug)]
pub struct NodeTable(Inner);

#[derive(Clone, Debug)]
enum Inner {
    /// IPv4 contacts, compact.
    V4(RoutingTable<Contact4, NodeDefense>),
    /// Any contact: the IPv6 table, or an IPv4 table that was handed an IPv4-mapped
    /// IPv6 address.
    Any(RoutingTable<NodeInfo, NodeDefense>),
}

/// The admission policy of a node's tables: the [`Defense`] of the configuration the
/// node holds, read through it rather than copied into each table (152 bytes twice a
/// node; a simulation's nodes share one configuration).
#[derive(Clone, Debug)]
pub(crate) struct NodeDefense(pub(crate) Arc<Config>);

impl<C: Contact> Admission<C> for NodeDefense {
    fn admits<'a>(
        &self,
        node: &C,
        table: impl Iterator<Item = &'a C>,
        in_bucket: impl Iterator<Item = &'a C>,
    ) -> bool
    where
        C: 'a,
    {
        self.0.defense.admits(node, table, in_bucket)
    }

    fn may_displace(&self, node: &C) -> bool {
        Admission::<C>::may_displace(&self.0.defense, node)
    }

    fn yields(&self, incumbent: &C) -> bool {
        Admission::<C>::yields(&self.0.defense, incumbent)
    }
}

/// `$body` with `$t` bound to the table, whichever its form.
macro_rules! each {
    ($table:expr, $t:ident => $body:expr) => {
        match &$table.0 {
            Inner::V4($t) => $body,
            Inner::Any($t) => $body,
        }
    };
}

/// [`each!`] with `$t` mutable.
macro_rules! each_mut {
    ($table:expr, $t:ident => $body:expr) => {
        match &mut $table.0 {
            Inner::V4($t) => $body,
            Inner::Any($t) => $body,
        }
    };
}

impl NodeTable {
    /// The empty table of `family` around `own`, as `config` sets it: IPv4 contacts
    /// compact, IPv6 ones as [`NodeInfo`].
    pub(crate) fn new(family: Family, own: Id, config: &Arc<Config>, now: Instant) -> NodeTable {
        fn table<C: Contact<Key = Id>>(
            own: Id,
            config: &Arc<Config>,
            now: Instant,
        ) -> RoutingTable<C, NodeDefense> {
            RoutingTable::with_policy(
                own,
                config.k,
                config.questionable_after,
                config.max_failures,
                now,
                NodeDefense(Arc::clone(config)),
            )
            .with_extended_buckets(config.extended_buckets)
        }
        match family {
            Family::V4 => NodeTable(Inner::V4(table(own, config, now))),
            Family::V6 => NodeTable(Inner::Any(table(own, config, now))),
        }
    }

    /// A compact IPv4 table (the tests build their own).
    #[cfg(test)]
    fn v4(table: RoutingTable<Contact4, NodeDefense>) -> NodeTable {
        NodeTable(Inner::V4(table))
    }

    /// Nodes in the main buckets.
    pub fn len(&self) -> usize {
        each!(self, t => t.len())
    }

    /// True when no node is in the main buckets.
    pub fn is_empty(&self) -> bool {
        each!(self, t => t.is_empty())
    }

    /// Nodes in replacement caches.
    pub fn replacement_len(&self) -> usize {
        each!(self, t => t.replacement_len())
    }

    /// Bucket size.
    pub fn k(&self) -> usize {
        each!(self, t => t.k())
    }

    /// Our id.
    pub fn own_id(&self) -> Id {
        each!(self, t => t.own_id())
    }

    /// Number of buckets (grows as the bucket holding our id splits).
    pub fn bucket_count(&self) -> usize {
        each!(self, t => t.bucket_count())
    }

    /// Nodes in bucket `i` (0 when there is no such bucket).
    pub fn bucket_len(&self, i: usize) -> usize {
        each!(self, t => t.bucket_len(i))
    }

    /// How many nodes bucket `i` holds when full.
    pub fn bucket_capacity(&self, i: usize) -> usize {
        each!(self, t => t.bucket_capacity(i))
    }

    /// Nodes whose ids share exactly `b` leading bits with ours.
    pub fn prefix_len(&self, b: usize) -> usize {
        each!(self, t => t.prefix_len(b))
    }

    /// The instant a [`Stamp`] of this table stands for (to the second).
    pub fn instant_of(&self, s: Stamp) -> Option<Instant> {
        each!(self, t => t.instant_of(s))
    }

    /// Health of `e` at `now`.
    pub fn health(&self, e: &Entry<NodeInfo>, now: Instant) -> Health {
        each!(self, t => t.health_of(e, now))
    }

    /// Every entry in the main buckets, in the table's order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<NodeInfo>> + '_ {
        let (compact, wide) = match &self.0 {
            Inner::V4(t) => (Some(t.entries().map(widen_entry)), None),
            Inner::Any(t) => (None, Some(t.entries().copied())),
        };
        compact
            .into_iter()
            .flatten()
            .chain(wide.into_iter().flatten())
    }

    /// Looks a node up by id.
    pub fn get(&self, id: &Id) -> Option<Entry<NodeInfo>> {
        match &self.0 {
            Inner::V4(t) => t.get(id).map(widen_entry),
            Inner::Any(t) => t.get(id).copied(),
        }
    }

    /// Up to `n` non-bad nodes closest to `target`, closest first.
    pub fn closest(&self, target: &Id, n: usize, now: Instant) -> Vec<NodeInfo> {
        match &self.0 {
            Inner::V4(t) => t.closest_with(target, n, now, Contact4::widen),
            Inner::Any(t) => t.closest(target, n, now),
        }
    }

    /// Questionable nodes to ping (stalest first within each bucket), at most `max`.
    pub fn questionable(&self, now: Instant, max: usize) -> Vec<NodeInfo> {
        match &self.0 {
            Inner::V4(t) => t
                .questionable(now, max)
                .iter()
                .map(Contact4::widen)
                .collect(),
            Inner::Any(t) => t.questionable(now, max),
        }
    }

    /// The smoothed round trip to `node`, if it is in a main bucket at that address
    /// and has answered.
    pub fn rtt_of(&self, node: &NodeInfo) -> Option<Duration> {
        match &self.0 {
            // No compact entry is at an address that does not pack.
            Inner::V4(t) => Contact4::narrow(node).and_then(|c| t.rtt_of(&c)),
            Inner::Any(t) => t.rtt_of(node),
        }
    }

    /// True when a node of the main buckets is reached at `addr`.
    pub(crate) fn has_endpoint(&self, addr: &SocketAddr) -> bool {
        match &self.0 {
            Inner::V4(t) => t.entries().any(|e| e.node.is_at(addr)),
            Inner::Any(t) => t.entries().any(|e| e.node.addr == *addr),
        }
    }

    /// The compact table and `node` packed, when the table is compact and `node`
    /// packs; otherwise `None`, the table having become a table of `NodeInfo` first
    /// if it was compact (it is about to hold a node that does not pack).
    fn compact_for(
        &mut self,
        node: &NodeInfo,
    ) -> Option<(&mut RoutingTable<Contact4, NodeDefense>, Contact4)> {
        let packed = Contact4::narrow(node);
        if let Inner::V4(t) = &self.0 {
            if packed.is_none() {
                self.0 = Inner::Any(t.map_contacts(Contact4::widen));
            }
        }
        match &mut self.0 {
            Inner::V4(t) => packed.map(|c| (t, c)),
            Inner::Any(_) => None,
        }
    }

    fn wide_mut(&mut self) -> Option<&mut RoutingTable<NodeInfo, NodeDefense>> {
        match &mut self.0 {
            Inner::Any(t) => Some(t),
            Inner::V4(_) => None,
        }
    }

    /// `node` answered one of our queries (see [`RoutingTable::on_response`]).
    pub(crate) fn on_response(&mut self, node: NodeInfo, now: Instant) -> Insert<NodeInfo> {
        if let Some((t, c)) = self.compact_for(&node) {
            return widen_insert(t.on_response(c, now));
        }
        match self.wide_mut() {
            Some(t) => t.on_response(node, now),
            None => Insert::Rejected,
        }
    }

    /// `node` sent us a query (see [`RoutingTable::on_query`]).
    pub(crate) fn on_query(&mut self, node: NodeInfo, now: Instant) -> bool {
        if let Some((t, c)) = self.compact_for(&node) {
            return t.on_query(c, now);
        }
        match self.wide_mut() {
            Some(t) => t.on_query(node, now),
            None => false,
        }
    }

    /// A query to `id` at `addr` timed out (see [`RoutingTable::on_timeout_of`]).
    pub(crate) fn on_timeout(&mut self, id: &Id, addr: &SocketAddr, now: Instant) -> bool {
        let node = NodeInfo {
            id: *id,
            addr: *addr,
        };
        match &mut self.0 {
            // No compact entry or cached node is at an address that does not pack:
            // nothing to count, as in a table of NodeInfo.
            Inner::V4(t) => Contact4::narrow(&node).is_some_and(|c| t.on_timeout_of(&c, now)),
            Inner::Any(t) => t.on_timeout_of(&node, now),
        }
    }

    /// Records a round trip measured to `node` (see [`RoutingTable::note_rtt`]).
    pub(crate) fn note_rtt(&mut self, node: &NodeInfo, rtt: Duration) {
        match &mut self.0 {
            Inner::V4(t) => {
                if let Some(c) = Contact4::narrow(node) {
                    t.note_rtt(&c, rtt);
                }
            }
            Inner::Any(t) => t.note_rtt(node, rtt),
        }
    }

    /// Removes a node (see [`RoutingTable::remove`]).
    pub(crate) fn remove(&mut self, id: &Id) -> bool {
        each_mut!(self, t => t.remove(id))
    }

    /// Marks a bucket as refreshed.
    pub(crate) fn touch_bucket(&mut self, idx: usize, now: Instant) {
        each_mut!(self, t => t.touch_bucket(idx, now))
    }

    /// Buckets not changed since `now - refresh`.
    pub(crate) fn stale_buckets(&self, now: Instant, refresh: Duration) -> Vec<usize> {
        each!(self, t => t.stale_buckets(now, refresh))
    }

    /// Cached nodes that never answered, in buckets with room (see
    /// [`RoutingTable::unverified_with_room`]).
    pub(crate) fn unverified_with_room(&self, max: usize) -> Vec<NodeInfo> {
        match &self.0 {
            Inner::V4(t) => t
                .unverified_with_room(max)
                .iter()
                .map(Contact4::widen)
                .collect(),
            Inner::Any(t) => t.unverified_with_room(max),
        }
    }

    /// The same contacts around a new own id, in the same form.
    pub(crate) fn rebuilt(&self, own: Id, now: Instant) -> NodeTable {
        match &self.0 {
            Inner::V4(t) => NodeTable(Inner::V4(t.rebuilt(own, now))),
            Inner::Any(t) => NodeTable(Inner::Any(t.rebuilt(own, now))),
        }
    }
}

#[cfg(test)]
mod tests;
