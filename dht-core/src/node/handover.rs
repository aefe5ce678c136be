//! Kademlia's handover (Maymounkov and Mazières, section 2.5): a node that learns of a
//! newcomer closer than itself to items it stores gives the newcomer those items, so
//! that data outlives the nodes that first held it without waiting for the publisher's
//! next republish. Under churn the replicas of an item die one by one while newcomers
//! take their places among the closest nodes; without handover an item is lost once
//! its last replica dies before the publisher puts it again.
//!
//! BEP 44 items are self-certifying (an immutable item's target is the SHA-1 of its
//! value; a mutable one carries its key's signature), so any node may put them again:
//! a `get` to the newcomer for its write token (its answer also says whether it holds
//! the item already, or a newer seq), then the `put`. Announced peers cannot be handed
//! over: a peer is the announcer's own address, which only the announcer can give.
//!
//! Who hands over: when a node answers us for the first time and enters a main bucket
//! ([`crate::routing::Insert::Added`], so its address is proven), we look at the items
//! we hold that it is closer to than we are, in the subtree of ids it shares with us
//! (one range of targets: those that share the bits our ids share and agree with its id
//! on the first bit where they differ; a target outside that subtree is far from both
//! of us, and we hold it only in a network too small to matter). For each, when fewer
//! than k nodes we know lie between the newcomer and us in distance to the target (so
//! that we are plausibly one of the item's k holders), we hand it over after
//! [`STAGGER`] times the number of those nodes: the holder just
//! behind the newcomer acts at once, the next one a little later, and each `get` tells
//! whether an earlier holder's `put` already landed, so the item is put about once
//! while a holder that died unnoticed (still in the others' tables) delays it only by
//! a stagger. Nodes listed but dead count as between until they fail a request, which
//! is why their number only orders and bounds the holders and is not asked to place
//! the newcomer among the k closest: under heavy churn the dead entries closer to a
//! target would otherwise stop every handover (a newcomer with 2k listed nodes ahead of
//! it is given nothing). A node that is still joining hands
//! nothing over (its table is too sparse to judge what is closest).
//!
//! Bounded work: at most [`SCAN`] targets are looked at per newcomer, at most [`QUEUE`]
//! handovers wait, at most [`IN_FLIGHT`] run at once; what does not fit is left to the
//! publisher's republish, as without handover.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::bep44::Item;
use crate::id::{Id, NodeInfo, ID_LEN};
use crate::krpc::{Method, PutArgs, Response};
use crate::store::Store;

use super::outgoing::Purpose;
use super::{Family, Node};

/// Targets looked at per newcomer.
pub(super) const SCAN: usize = 256;
/// Handovers waiting for a slot.
pub(super) const QUEUE: usize = 1024;
/// Handovers in flight at once (each a `get` then a `put`).
pub(super) const IN_FLIGHT: usize = 4;
/// The wait per node known between the newcomer and us before we hand an item over:
/// a few round trips, so that the holder ahead of us has had its `get` and `put`
/// answered when ours asks.
pub(super) const STAGGER: Duration = Duration::from_secs(2);

/// Handovers waiting and in flight. Boxed in the node and made on first use: a node
/// that stores nothing (most simulated ones) pays a pointer.
#[derive(Debug, Default)]
pub(super) struct Handovers {
    /// (newcomer, target) waiting for its time (then for a slot), by (due, arrival).
    queue: BTreeMap<(Instant, u32), (NodeInfo, Id)>,
    /// In flight, by the key their requests carry ([`Purpose::HandoverGet`] and
    /// [`Purpose::HandoverPut`]).
    in_flight: BTreeMap<u32, (NodeInfo, Id)>,
    next_key: u32,
}

impl Handovers {
    /// When the next waiting handover is due; `None` while every slot is taken (a
    /// reply or a timeout frees one and starts the next).
    pub(super) fn next_due(&self) -> Option<Instant> {
        if self.in_flight.len() >= IN_FLIGHT {
            return None;
        }
        self.queue.first_key_value().map(|(&(due, _), _)| due)
    }
}

/// The targets of the subtree `own` and `newcomer` share that `newcomer` is closer to:
/// those that share the first `b + 1` bits of `newcomer`, where `b` is the first bit
/// where the two differ. (Outside the subtree, a target is closer to `newcomer` when
/// its bit `b` is `newcomer`'s too, but it is far from both.) `None` for equal ids.
pub(super) fn closer_range(own: &Id, newcomer: &Id) -> Option<(Id, Id)> {
    let b = own.common_prefix_len(newcomer);
    if b >= ID_LEN * 8 {
        return None;
    }
    let (mut lo, mut hi) = (*newcomer, *newcomer);
    for bit in b + 1..ID_LEN * 8 {
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        lo.0[byte] &= !mask;
        hi.0[byte] |= mask;
    }
    Some((lo, hi))
}

impl<S: Store> Node<S> {
    /// `node` answered us and entered a main bucket: queue the items it should hold.
    pub(super) fn hand_over_to(&mut self, now: Instant, node: NodeInfo) {
        if !self.config.handover || self.queries.values().any(|q| q.is_bootstrap()) {
            return;
        }
        let Some((lo, hi)) = closer_range(&self.id, &node.id) else {
            return;
        };
        let targets = match self.store.item_targets(&lo, SCAN) {
            Ok(t) => t,
            Err(_) => {
                self.stats.store_errors += 1;
                return;
            }
        };
        let fam = Family::of(&node.addr).index();
        let k = self.config.k;
        for target in targets.into_iter().take_while(|t| *t <= hi) {
            let to_new = node.id.distance(&target);
            let to_us = self.id.distance(&target);
            // The 2k + 1 closest known nodes: enough to count those ahead of the
            // newcomer and those between it and us, dead ones still listed included.
            let near = self.tables[fam].closest(&target, 2 * k + 1, now);
            let ahead = near
                .iter()
                .filter(|c| c.id.distance(&target) < to_new)
                .count();
            let between = near
                .iter()
                .filter(|c| {
                    let d = c.id.distance(&target);
                    to_new < d && d < to_us
                })
                .count();
            // Far outside the k closest even if half the listed nodes ahead are dead,
            // or we are far behind it: another holder's turn, or nobody's.
            if ahead >= 2 * k || between >= k {
                continue;
            }
            let h = self.handovers.get_or_insert_with(Box::default);
            if h.queue.len() >= QUEUE {
                self.stats.handovers_dropped += 1;
                continue;
            }
            let due = now + STAGGER * between as u32;
            let key = h.next_key;
            h.next_key = h.next_key.wrapping_add(1);
            h.queue.insert((due, key), (node, target));
        }
        self.pump_handovers(now);
    }

    /// Starts the handovers that are due while slots are free (called on every
    /// timeout too: [`Node::poll_timeout`] wakes the node for the next one due).
    pub(super) fn pump_handovers(&mut self, now: Instant) {
        loop {
            let Some(h) = self.handovers.as_mut() else {
                return;
            };
            if h.in_flight.len() >= IN_FLIGHT {
                return;
            }
            let due = h.queue.first_key_value().map(|(&(due, _), _)| due);
            if due.is_none_or(|due| due > now) {
                if due.is_none() && h.in_flight.is_empty() {
                    // Nothing left: give the memory back.
                    self.handovers = None;
                }
                return;
            }
            let Some(((_, key), (node, target))) = h.queue.pop_first() else {
                return;
            };
            h.in_flight.insert(key, (node, target));
            self.send_request(
                now,
                node.addr,
                Some(node.id),
                Purpose::HandoverGet(key),
                Method::get(target),
            );
        }
    }

    /// The newcomer answered our `get`: put the item unless it holds it (or a newer
    /// seq) already.
    pub(super) fn on_handover_get(&mut self, now: Instant, key: u32, resp: Response) {
        let Some(&(node, target)) = self.handovers.as_ref().and_then(|h| h.in_flight.get(&key))
        else {
            return;
        };
        let wall = self.wall(now);
        let item = match self.store.get_item(&target) {
            Ok(Some(stored)) if stored.expires_at > wall => stored.item,
            Ok(_) => return self.end_handover(now, key),
            Err(_) => {
                self.stats.store_errors += 1;
                return self.end_handover(now, key);
            }
        };
        let held = match &item {
            Item::Immutable { .. } => resp.value.is_some(),
            Item::Mutable(m) => resp.seq.is_some_and(|s| s >= m.seq),
        };
        let Some(token) = resp.token.filter(|_| !held) else {
            return self.end_handover(now, key);
        };
        self.send_request(
            now,
            node.addr,
            Some(node.id),
            Purpose::HandoverPut(key),
            Method::Put(PutArgs::new(token, item)),
        );
    }

    /// The newcomer acknowledged our `put`.
    pub(super) fn on_handover_put(&mut self, now: Instant, key: u32) {
        self.stats.handovers += 1;
        self.end_handover(now, key);
    }

    /// A handover ends (done, refused, timed out, or not needed): its slot goes to the next.
    pub(super) fn end_handover(&mut self, now: Instant, key: u32) {
        if let Some(h) = self.handovers.as_mut() {
            h.in_flight.remove(&key);
        }
        self.pump_handovers(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u8, second: u8) -> Id {
        let mut b = [0x55u8; ID_LEN];
        b[0] = first;
        b[1] = second;
        Id(b)
    }

    #[test]
    fn the_range_is_where_the_newcomer_is_closer() {
        // Ids differ first at bit 3 (0b0001_0000 vs 0b0000_0000): targets agreeing with
        // the newcomer on bits 0-3 are closer to it.
        let own = id(0b0000_0000, 0);
        let newcomer = id(0b0001_0000, 0);
        let (lo, hi) = closer_range(&own, &newcomer).expect("distinct ids");
        assert_eq!(lo.0[0], 0b0001_0000);
        assert!(lo.0[1..].iter().all(|&b| b == 0));
        assert_eq!(hi.0[0], 0b0001_1111);
        assert!(hi.0[1..].iter().all(|&b| b == 0xff));
        // Every target in it is closer to the newcomer; in the subtree both share
        // (first 3 bits 000), every target closer to the newcomer is in it.
        let mut rng_state = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut t = [0u8; ID_LEN];
            for byte in t.iter_mut() {
                rng_state ^= rng_state << 13;
                rng_state ^= rng_state >> 7;
                rng_state ^= rng_state << 17;
                *byte = rng_state as u8;
            }
            let t = Id(t);
            let inside = lo <= t && t <= hi;
            let closer = newcomer.distance(&t) < own.distance(&t);
            if inside {
                assert!(closer, "target {t:?}");
            }
            if t.common_prefix_len(&own) >= 3 {
                assert_eq!(inside, closer, "target {t:?}");
            }
        }
        assert_eq!(closer_range(&own, &own), None);
    }
}
