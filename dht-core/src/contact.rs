//! What the protocol-neutral kernel (routing table, lookups, request table) needs of a
//! node it knows: a [`Contact`], and the [`Admission`] policy a routing table is given
//! to decide who may enter it.
//!
//! The Mainline DHT's contact is [`NodeInfo`] (a 160-bit id and a socket address) and
//! its policy is [`Defense`] (per-IP and per-prefix diversity, BEP 42). Another overlay
//! brings its own contact (libp2p's: a PeerId hashed into a 256-bit key, and a list of
//! multiaddrs) and reuses the table, the lookups and, where its contacts have IPs, the
//! same diversity policy.

use std::fmt::Debug;
use std::net::IpAddr;

use crate::defense::{prefix_of, Bep42Mode, Defense};
use crate::id::{Key, NodeInfo};

/// A node as an overlay's routing table and lookups hold it.
pub trait Contact: Clone + Debug + PartialEq {
    /// Where the contact sits in the keyspace.
    type Key: Key;

    /// Its key.
    fn key(&self) -> &Self::Key;

    /// The IP address the diversity rules count (per IP, per /24 or /64), if any: a
    /// contact reached through no IP of its own is counted by none.
    fn ip(&self) -> Option<IpAddr>;

    /// True when `self` and `other` are reached at the same endpoint (for Mainline, the
    /// same socket address), whatever their keys: one endpoint holds one key.
    fn same_endpoint(&self, other: &Self) -> bool;

    /// True when the contact's key is bound to where it is reached (BEP 42 for
    /// Mainline); policies may prefer or require verified contacts.
    fn is_verified(&self) -> bool;

    /// A newer sighting `newer` of the same key at another endpoint: update `self` and
    /// return true, or keep the endpoint on record and return false (Mainline keeps
    /// it until it fails: an answer from a new address proves nothing about the old).
    fn readdress(&mut self, newer: &Self) -> bool;
}

impl Contact for NodeInfo {
    type Key = crate::id::Id;

    #[inline]
    fn key(&self) -> &crate::id::Id {
        &self.id
    }

    #[inline]
    fn ip(&self) -> Option<IpAddr> {
        Some(self.addr.ip())
    }

    #[inline]
    fn same_endpoint(&self, other: &Self) -> bool {
        self.addr == other.addr
    }

    fn is_verified(&self) -> bool {
        crate::bep42::is_valid(&self.id, self.addr.ip())
    }

    fn readdress(&mut self, _newer: &Self) -> bool {
        false
    }
}

/// Who may enter a routing table: the table asks, the policy decides.
pub trait Admission<C: Contact>: Clone + Debug {
    /// May the newcomer `node` enter bucket `bucket`, given every contact of the table's
    /// main buckets (`table`) and those of that bucket (`in_bucket`)?
    fn admits<'a>(
        &self,
        node: &C,
        table: impl Iterator<Item = &'a C>,
        in_bucket: impl Iterator<Item = &'a C>,
    ) -> bool
    where
        C: 'a;

    /// In a full bucket with no bad contact, may the newcomer `node` take the place of
    /// some incumbent for which [`Admission::yields`] is true (the first such one, which
    /// then waits in the replacement cache)? Asked once per newcomer.
    fn may_displace(&self, node: &C) -> bool;

    /// May `incumbent` give its place to a newcomer that [`Admission::may_displace`]?
    fn yields(&self, incumbent: &C) -> bool;
}

/// The Mainline policy, for any contact with an IP: at most `max_per_ip` contacts per
/// IP and `max_per_prefix_in_table` per /24 (/64) in the table, `max_per_prefix_in_bucket`
/// per /24 (/64) in a bucket, exempt addresses excepted; BEP 42 `Enforce` refuses
/// unverified contacts and `Prefer` lets a verified one displace an unverified one.
impl<C: Contact> Admission<C> for Defense {
    fn admits<'a>(
        &self,
        node: &C,
        table: impl Iterator<Item = &'a C>,
        in_bucket: impl Iterator<Item = &'a C>,
    ) -> bool
    where
        C: 'a,
    {
        if self.bep42 == Bep42Mode::Enforce && !node.is_verified() {
            return false;
        }
        let Some(ip) = node.ip() else {
            return true;
        };
        if self.is_exempt(ip) {
            return true;
        }
        let prefix = prefix_of(ip);
        let (mut same_ip, mut same_prefix) = (0, 0);
        for other in table.filter_map(Contact::ip) {
            same_ip += usize::from(other == ip);
            same_prefix += usize::from(prefix_of(other) == prefix);
        }
        let in_bucket = in_bucket
            .filter_map(Contact::ip)
            .filter(|other| prefix_of(*other) == prefix)
            .count();
        same_ip < self.max_per_ip
            && same_prefix < self.max_per_prefix_in_table
            && in_bucket < self.max_per_prefix_in_bucket
    }

    fn may_displace(&self, node: &C) -> bool {
        self.bep42 == Bep42Mode::Prefer && node.is_verified()
    }

    fn yields(&self, incumbent: &C) -> bool {
        !incumbent.is_verified()
    }
}
