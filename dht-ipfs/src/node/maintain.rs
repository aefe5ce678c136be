//! Keeping the node in the network: identify-driven admission, the housekeeping run
//! (store expiry, bucket refresh, liveness of questionable contacts, republishing our
//! records and provider announcements) and the PeerId grinding a refresh needs.
//!
//! Admission: only servers enter the table, and only once they answered us. A peer
//! identify reports as a server (listing `/ipfs/kad/1.0.0`), whether we dialed it or
//! it connected to us, is sent a FIND_NODE of our own key at once, at the listen
//! addresses identify gave (never the connection's source port), unless it is in the
//! table already or its bucket is full (go-libp2p-kad-dht's `UsefulNewPeer`); its
//! answer puts it in the bucket if there is still room. A peer whose identify stops
//! listing the protocol leaves the table. Liveness is the same FIND_NODE (PING is
//! answered, never sent). Far buckets keep one contact per slice of their range
//! (`Node::room_for`), refresh into their emptiest slice, and a lookup asks the
//! servers it learns of that would fill an empty slice (`Node::admit_learned`).

use std::collections::BTreeMap;
use std::time::Instant;

use dht_core::kernel::Contact;
use rand_chacha::rand_core::RngCore;

use super::query::Kind;
use super::{Config, Node, Purpose, KAD_PROTOCOL};
use crate::peer::{key_of, Key, PeerInfo};
use crate::store::Store;
use crate::validate::Validator;
use crate::wire::{Message, MessageType};

/// Most buckets a bootstrap refreshes (the farthest first).
const MAX_BOOTSTRAP_REFRESHES: usize = 16;

/// Buckets this many above the last one, or farther, keep their contacts spread
/// (see `Node::room_for`).
const SPREAD_DEPTH: usize = 4;
/// The slices a spread bucket is cut into: the 5 bits after its prefix (32 slices,
/// one contact each, for k = 20).
const SPREAD_BITS: usize = 5;

/// Whether a newcomer that answers us may enter the table.
pub(super) enum Room {
    /// Its bucket has a place for it.
    Free,
    /// It may take the place of this contact, which shares its slice with another.
    Evict(Key),
    /// Its bucket is full, or holds a contact in its slice already.
    None,
}

/// Housekeeping's clock and what we publish.
#[derive(Debug)]
pub(super) struct Maintenance {
    next_run: Instant,
    /// Our records, with when each is sent again.
    records: BTreeMap<Vec<u8>, (Vec<u8>, Instant)>,
    /// Keys we provide, with when each is announced again.
    provided: BTreeMap<Vec<u8>, Instant>,
}

impl Maintenance {
    pub(super) fn new(now: Instant, config: &Config) -> Maintenance {
        Maintenance {
            next_run: now + config.housekeeping_interval,
            records: BTreeMap::new(),
            provided: BTreeMap::new(),
        }
    }

    pub(super) fn next_run(&self) -> Instant {
        self.next_run
    }

    pub(super) fn published(
        &mut self,
        now: Instant,
        config: &Config,
        key: Vec<u8>,
        value: Vec<u8>,
    ) {
        self.records
            .insert(key, (value, now + config.republish_interval));
    }

    pub(super) fn provided(&mut self, now: Instant, config: &Config, key: Vec<u8>) {
        self.provided.insert(key, now + config.republish_interval);
    }
}

/// A PeerId-shaped preimage (a SHA-256 multihash of random bytes) whose key shares
/// exactly `bucket` leading bits with `own` (at least `bucket` for the last bucket,
/// which holds everything that deep): tried up to `limit` times, else the one found
/// whose shared prefix came closest to `bucket`. A bucket refresh looks this up: a
/// FIND_NODE carries a preimage, never a key, and only a preimage whose SHA-256 lands
/// in the bucket makes the lookup walk the part of the keyspace that bucket covers.
pub fn grind_preimage(
    own: &Key,
    bucket: usize,
    last: bool,
    limit: u32,
    rng: &mut impl RngCore,
) -> Vec<u8> {
    grind(limit, rng, |key| {
        let shared = own.common_prefix_len(key);
        let hit = shared == bucket || (last && shared > bucket);
        (hit, shared.abs_diff(bucket))
    })
}

/// A PeerId-shaped preimage whose key shares at least `bits` leading bits with
/// `point`, tried up to `limit` times, else the one found that shares the most.
fn grind_toward(point: &Key, bits: usize, limit: u32, rng: &mut impl RngCore) -> Vec<u8> {
    grind(limit, rng, |key| {
        let shared = point.common_prefix_len(key);
        (shared >= bits, bits.saturating_sub(shared))
    })
}

/// Random SHA-256 multihashes until `judge` says one hits (else the least miss).
fn grind(limit: u32, rng: &mut impl RngCore, judge: impl Fn(&Key) -> (bool, usize)) -> Vec<u8> {
    let mut best: Option<(usize, Vec<u8>)> = None;
    for _ in 0..limit.max(1) {
        let mut candidate = vec![0x12, 0x20];
        let mut digest = [0u8; 32];
        rng.fill_bytes(&mut digest);
        candidate.extend(digest);
        let (hit, miss) = judge(&key_of(&candidate));
        if hit {
            return candidate;
        }
        if best.as_ref().is_none_or(|(m, _)| miss < *m) {
            best = Some((miss, candidate));
        }
    }
    best.map(|(_, c)| c).unwrap_or_default()
}

/// The point of bucket `bucket` of `own` where slice `slice` (its [`SPREAD_BITS`]
/// bits after the bucket's prefix) begins.
fn slice_point(own: &Key, bucket: usize, slice: usize) -> Key {
    let mut point = *own;
    let mut set = |bit: usize, on: bool| {
        if let Some(byte) = point.0.get_mut(bit / 8) {
            let mask = 0x80u8 >> (bit % 8);
            *byte = if on { *byte | mask } else { *byte & !mask };
        }
    };
    set(bucket, !own.bit(bucket));
    for i in 0..SPREAD_BITS {
        set(bucket + 1 + i, slice >> (SPREAD_BITS - 1 - i) & 1 == 1);
    }
    point
}

/// The slice of its bucket `key` falls in (see [`slice_point`]).
fn slice_of(key: &Key, bucket: usize) -> usize {
    (0..SPREAD_BITS).fold(0, |s, i| s << 1 | usize::from(key.bit(bucket + 1 + i)))
}

impl<S: Store, V: Validator> Node<S, V> {
    /// Identify told us what `peer` speaks and where it listens.
    pub(super) fn on_identified(&mut self, now: Instant, peer: PeerInfo, protocols: &[String]) {
        if *peer.key() == self.own {
            return;
        }
        if !protocols.iter().any(|p| p == KAD_PROTOCOL) {
            self.table.remove(peer.key());
            return;
        }
        if peer.addrs().is_empty() {
            return;
        }
        // Only a peer that would enter is asked (go-libp2p-kad-dht's `UsefulNewPeer`):
        // one in the table at these addresses answered us already (its entry is
        // kept alive by the liveness check), and one whose bucket is full would only
        // be turned away (we keep no replacement cache: see `Node::on_answer`).
        let known = self
            .table
            .get(peer.key())
            .is_some_and(|e| e.node.addrs() == peer.addrs());
        if known || matches!(self.room_for(peer.key()), Room::None) {
            return;
        }
        self.admit(now, peer);
    }

    /// Is there a place for a newcomer at `key` (see [`Room`])?
    ///
    /// A bucket far from us (at least [`SPREAD_DEPTH`] above the last one, so its range
    /// holds many more servers than it has places) keeps its contacts spread over its
    /// range: one in each of its [`SPREAD_BITS`]-bit slices. The servers that answer
    /// one lookup are the nodes around its target, and without this a bucket refresh
    /// filled a bucket with them: a lookup's first hop then got it 5.0 bits closer to a
    /// random key at 1,000 nodes where k random contacts per bucket get 6.7, and each
    /// lookup took a fifth of a hop more. A contact that shares its slice with another
    /// (it came before the bucket was spread) gives its place to a newcomer in an empty
    /// slice, as libtorrent's table prefers contacts of distinct prefixes.
    pub(super) fn room_for(&self, key: &Key) -> Room {
        let last = self.table.bucket_count().saturating_sub(1);
        let bucket = self.own.common_prefix_len(key).min(last);
        if bucket == last {
            return Room::Free;
        }
        let full = self.table.bucket_len(bucket) >= self.table.bucket_capacity(bucket);
        if bucket + SPREAD_DEPTH > last {
            return if full { Room::None } else { Room::Free };
        }
        let mut counts = [0u8; 1 << SPREAD_BITS];
        let mut crowded = None;
        for e in self.table.entries() {
            if self.own.common_prefix_len(e.node.key()) == bucket {
                let slice = slice_of(e.node.key(), bucket);
                counts[slice] = counts[slice].saturating_add(1);
                if counts[slice] > 1 {
                    crowded = Some(*e.node.key());
                }
            }
        }
        match (counts[slice_of(key, bucket)], full, crowded) {
            (0, false, _) => Room::Free,
            (0, true, Some(crowded)) => Room::Evict(crowded),
            _ => Room::None,
        }
    }

    /// Servers a lookup learned of (`learned`, from a reply) that would fill an empty
    /// slice of a spread bucket with room are asked, as identify's admission asks: a
    /// node that joined recently has few contacts in its far buckets, and the
    /// servers that answer its lookups crowd one slice each, while the lists they
    /// answer with name servers all over the range.
    pub(super) fn admit_learned(&mut self, now: Instant, learned: &[PeerInfo]) {
        let last = self.table.bucket_count().saturating_sub(1);
        let Some(spread) = (last + 1).checked_sub(SPREAD_DEPTH) else {
            return;
        };
        if spread == 0 {
            return;
        }
        // Occupied slices of each spread bucket, as a bit set.
        let mut occupied = vec![0u64; spread];
        for e in self.table.entries() {
            let bucket = self.own.common_prefix_len(e.node.key());
            if let Some(o) = occupied.get_mut(bucket) {
                *o |= 1 << slice_of(e.node.key(), bucket);
            }
        }
        for p in learned {
            let bucket = self.own.common_prefix_len(p.key());
            let Some(o) = occupied.get_mut(bucket) else {
                continue;
            };
            let slice = 1 << slice_of(p.key(), bucket);
            let room = self.table.bucket_len(bucket) < self.table.bucket_capacity(bucket);
            if *o & slice == 0 && room {
                *o |= slice;
                self.admit(now, p.clone());
            }
        }
    }

    /// Asks `peer` for the peers closest to our own key: its answer admits it.
    pub(super) fn admit(&mut self, now: Instant, peer: PeerInfo) {
        if !self.admitting.insert(peer.id().clone()) {
            return;
        }
        let msg = Message::new(
            MessageType::FindNode,
            self.config.peer_id.as_bytes().to_vec(),
        );
        self.send_request(now, peer, &msg, Purpose::Admit);
    }

    /// Housekeeping, when due: expiry, refresh, liveness, republishing.
    pub(super) fn housekeeping(&mut self, now: Instant) {
        if now < self.maintenance.next_run {
            return;
        }
        self.maintenance.next_run = now + self.config.housekeeping_interval;
        let wall = self.wall(now);
        // Bounded per run; the next run takes the rest.
        let _ = self.store.expire(wall, self.config.expire_per_run);
        if !self.table.is_empty() {
            let last = self.table.bucket_count() - 1;
            for bucket in self.table.stale_buckets(now, self.config.refresh_interval) {
                self.refresh_bucket(now, bucket, bucket == last);
            }
        }
        for peer in self.table.questionable(now, self.config.liveness_per_run) {
            self.admit(now, peer);
        }
        self.republish(now);
    }

    /// A lookup into bucket `bucket` toward a ground preimage: in a spread bucket (see
    /// [`Node::room_for`]), into its slice with the fewest contacts, where the
    /// servers that answer are most wanted.
    fn refresh_bucket(&mut self, now: Instant, bucket: usize, last: bool) {
        self.table.touch_bucket(bucket, now);
        let limit = self.config.refresh_grind_limit;
        let key = match self.emptiest_slice(bucket) {
            Some(slice) => {
                let point = slice_point(&self.own, bucket, slice);
                grind_toward(&point, bucket + 1 + SPREAD_BITS, limit, &mut self.rng)
            }
            None => grind_preimage(&self.own, bucket, last, limit, &mut self.rng),
        };
        self.new_query(now, Kind::Refresh, key, vec![], true);
    }

    /// In a spread bucket, the slice with the fewest contacts (the first of them after
    /// a random one, so that ties are broken at random).
    fn emptiest_slice(&mut self, bucket: usize) -> Option<usize> {
        let last = self.table.bucket_count().saturating_sub(1);
        if bucket + SPREAD_DEPTH > last {
            return None;
        }
        let mut counts = [0usize; 1 << SPREAD_BITS];
        for e in self.table.entries() {
            if self.own.common_prefix_len(e.node.key()) == bucket {
                counts[slice_of(e.node.key(), bucket)] += 1;
            }
        }
        let start = self.rng.next_u32() as usize;
        (0..counts.len())
            .map(|i| (start + i) % counts.len())
            .min_by_key(|&i| counts[i])
    }

    /// After a bootstrap's own-key lookup: one lookup into each bucket that is not full,
    /// down to the depth of the closest peer found (the own-key lookup fills only the
    /// buckets near us).
    pub(super) fn refresh_after_bootstrap(&mut self, now: Instant, closest: &[PeerInfo]) {
        let deepest = closest
            .first()
            .map_or(0, |p| self.own.common_prefix_len(p.key()));
        let buckets = (self.table.bucket_count().saturating_sub(1))
            .max(deepest)
            .min(MAX_BOOTSTRAP_REFRESHES);
        let running = self.lookup_targets();
        for bucket in 0..buckets {
            let last = bucket + 1 >= self.table.bucket_count();
            let full = !last && self.table.bucket_len(bucket) >= self.table.k();
            let busy = running
                .iter()
                .any(|t| self.own.common_prefix_len(t) == bucket);
            if !full && !busy {
                self.refresh_bucket(now, bucket, false);
            }
        }
    }

    /// Sends our records and provider announcements again when their time comes.
    fn republish(&mut self, now: Instant) {
        let due: Vec<(Vec<u8>, Vec<u8>)> = self
            .maintenance
            .records
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        for (key, value) in due {
            // A record that no longer validates (a policy changed) is dropped.
            if self.put_record(now, key.clone(), value, true).is_err() {
                self.maintenance.records.remove(&key);
            }
        }
        let due: Vec<Vec<u8>> = self
            .maintenance
            .provided
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if self.start_providing(now, key.clone(), true).is_err() {
                self.maintenance.provided.remove(&key);
            }
        }
    }
}
