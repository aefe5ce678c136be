//! Iterative lookups: the candidate set of one query, its window and its end.
//!
//! Candidates are kept sorted by XOR distance to the target. At most `alpha`
//! requests are in flight until the last round, when the rest of the window of the
//! `k` closest is asked at once ([`Candidates::early_last_round`] says when that
//! round starts); the lookup ends when the `k` closest candidates that have not
//! failed have all answered ([`Candidates::awaiting_last`] lets the caller end it
//! without the last one when that one is overdue). A request that times out is sent once more
//! ([`MAX_ATTEMPTS`]: a datagram lost on the way is common); a second timeout marks
//! the candidate failed, which lets the next candidate into the window (a node
//! silent twice is not worth a third wait).
//!
//! With [`Candidates::prefer_fast`], candidates of equal standing (those whose ids
//! share as many leading bits with the target: the same XOR band) are asked fastest
//! first, by the round trip the caller hinted ([`Candidates::hint_rtt`]); standing
//! still comes first, so the lookup converges as before, on faster paths.
//!
//! Protocol-neutral: a candidate is any [`Contact`] (Mainline's [`NodeInfo`] by
//! default), kept by its key's XOR distance to the target.

use std::net::{IpAddr, SocketAddr};

use crate::contact::Contact;
use crate::defense::source_of;
use crate::id::{Id, Key, NodeInfo};

/// The distance type of contact `C`'s keys.
type DistanceOf<C> = <<C as Contact>::Key as Key>::Distance;

/// Requests a lookup sends to one candidate before giving up on it.
pub const MAX_ATTEMPTS: u8 = 2;

/// Bounds on how many candidates of one lookup may share where they are reached, so
/// that one host or one network cannot be all of the k closest (and receive every put
/// and announce). `None`: no bound. The first candidates seen stay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Diversity {
    /// Most candidates per host: an IPv4 address, or an IPv6 /64 (a host is usually
    /// given a whole /64, so its addresses cost it nothing).
    pub per_host: Option<usize>,
    /// Most candidates per IPv4 /24.
    pub per_v4_prefix: Option<usize>,
    /// Most candidates per IPv4 /16: an attacker with one /16 (256 /24s) could
    /// otherwise still be all of the k closest, two per /24.
    pub per_v4_16: Option<usize>,
}

/// The IPv4 /24 of `ip` (an IPv4-mapped IPv6 address as its IPv4 address).
fn v4_prefix(ip: IpAddr) -> Option<[u8; 3]> {
    match source_of(ip) {
        IpAddr::V4(a) => {
            let o = a.octets();
            Some([o[0], o[1], o[2]])
        }
        IpAddr::V6(_) => None,
    }
}

/// State of one candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CandidateState {
    /// Not asked yet.
    Fresh,
    /// A request is in flight.
    InFlight,
    /// Answered; with the write token it handed us, if any.
    Responded {
        /// `token` from a get_peers / get reply.
        token: Option<Vec<u8>>,
    },
    /// Timed out or answered with an error.
    Failed,
}

/// A node a lookup knows about.
#[derive(Clone, Debug)]
pub struct Candidate<C = NodeInfo> {
    /// The node.
    pub node: C,
    /// Where it stands.
    pub state: CandidateState,
    /// 1 for a contact from our table; d + 1 for one learned from a depth-d node.
    pub depth: u32,
    /// Requests sent to it.
    pub attempts: u8,
    /// Expected round trip in milliseconds (0: unknown), from [`Candidates::hint_rtt`].
    pub rtt_ms: u16,
}

/// The candidate set of one lookup.
#[derive(Clone, Debug)]
pub struct Candidates<C: Contact = NodeInfo> {
    target: C::Key,
    k: usize,
    alpha: usize,
    max: usize,
    /// Sorted by distance to the target, closest first (ids, and so distances, are
    /// distinct). A vector, not a B-tree: at most `max` (64) candidates, and a B-tree's
    /// leaves of 11 slots of 108 bytes held a lookup's few candidates in 1.2 KB each.
    by_distance: Vec<Candidate<C>>,
    in_flight: usize,
    prefer_fast: bool,
    /// The last round may start before the closest candidate answered (see
    /// [`Candidates::early_last_round`]).
    early_last_round: bool,
    /// Leading bits shared with the target from which the window of the k closest
    /// counts as the last round.
    last_round_bits: Option<usize>,
}

impl Candidates {
    /// An empty set of Mainline contacts toward `target` (see [`Candidates::toward`]).
    pub fn new(target: Id, k: usize, alpha: usize, max: usize) -> Candidates {
        Candidates::toward(target, k, alpha, max)
    }
}

impl Candidates<NodeInfo> {
    /// Is `addr` the address on record for candidate `id`?
    pub fn addr_matches(&self, id: &Id, addr: &SocketAddr) -> bool {
        self.find(id).is_some_and(|c| c.node.addr == *addr)
    }

    /// Is some candidate at `addr`?
    pub fn has_addr(&self, addr: &SocketAddr) -> bool {
        self.by_distance.iter().any(|c| c.node.addr == *addr)
    }
}

impl<C: Contact> Candidates<C> {
    /// An empty set toward `target`: at most `alpha` requests in flight, done when the
    /// `k` closest live candidates answered, at most `max` candidates kept.
    pub fn toward(target: C::Key, k: usize, alpha: usize, max: usize) -> Candidates<C> {
        Candidates {
            target,
            k: k.max(1),
            alpha: alpha.max(1),
            max: max.max(k),
            by_distance: Vec::new(),
            in_flight: 0,
            prefer_fast: false,
            early_last_round: false,
            last_round_bits: None,
        }
    }

    /// Starts the last round (every fresh candidate of the window of the `k` closest
    /// asked at once, not `alpha` at a time) as soon as one candidate of that window
    /// answered, or the `k` closest live candidates all share at least
    /// `expected_depth` leading bits with the target, and not only once the closest of
    /// them answered. A window candidate that answered has handed us its own closest
    /// nodes, and `expected_depth` is where the caller expects the k closest nodes of
    /// any target (from its table's density near its own id): either way the window
    /// holds the nodes the lookup will end with, and asking them now saves the round
    /// trips of asking them `alpha` at a time.
    pub fn early_last_round(mut self, expected_depth: Option<usize>) -> Self {
        self.early_last_round = true;
        self.last_round_bits = expected_depth;
        self
    }

    /// Asks candidates of equal standing (the same XOR band: ids sharing as many
    /// leading bits with the target) fastest first, by their hinted round trips.
    pub fn prefer_fast(mut self, on: bool) -> Self {
        self.prefer_fast = on;
        self
    }

    /// The expected round trip to candidate `id` (a measured one, or an estimate).
    pub fn hint_rtt(&mut self, id: &C::Key, rtt: std::time::Duration) {
        if let Some(c) = self.get_mut(id) {
            c.rtt_ms = u16::try_from(rtt.as_millis()).unwrap_or(u16::MAX).max(1);
        }
    }

    /// Adds a node unless it is already known (by id) or too far to matter.
    pub fn add(&mut self, node: C, depth: u32) {
        self.add_limited(node, depth, None);
    }

    /// As [`Candidates::add`], but not when `max_per_ip` candidates already share the
    /// node's IP: one host answering from many ports (or under many ids) must not
    /// fill the window of the k closest. The first ones seen stay.
    pub fn add_limited(&mut self, node: C, depth: u32, max_per_ip: Option<usize>) {
        if let (Some(m), Some(ip)) = (max_per_ip, node.ip()) {
            // At most `max` (64) candidates: a linear scan costs less than an index.
            if self
                .by_distance
                .iter()
                .filter(|c| c.node.ip() == Some(ip))
                .count()
                >= m
            {
                return;
            }
        }
        self.insert(node, depth);
    }

    /// As [`Candidates::add`], within the bounds of `limits` per host (IPv4 address,
    /// IPv6 /64), per IPv4 /24 and per IPv4 /16.
    pub fn add_diverse(&mut self, node: C, depth: u32, limits: Diversity) {
        // A node heard of again (most of a lookup's replies repeat its candidates)
        // changes nothing: skip the scan `insert` would end in the same way.
        let d = node.key().distance(&self.target);
        let Err(at) = self.search(&d) else {
            return;
        };
        if let Some(ip) = node.ip() {
            let host = source_of(ip);
            let prefix = v4_prefix(ip);
            let net16 = prefix.map(|p| [p[0], p[1]]);
            let (mut same_host, mut same_prefix, mut same_16) = (0, 0, 0);
            // At most `max` (64) candidates: a linear scan costs less than an index.
            for other in self.by_distance.iter().filter_map(|c| c.node.ip()) {
                same_host += usize::from(source_of(other) == host);
                let theirs = v4_prefix(other);
                same_prefix += usize::from(prefix.is_some() && theirs == prefix);
                same_16 += usize::from(net16.is_some() && theirs.map(|p| [p[0], p[1]]) == net16);
            }
            let over = |n: usize, bound: Option<usize>| bound.is_some_and(|m| n >= m);
            if over(same_host, limits.per_host)
                || over(same_prefix, limits.per_v4_prefix)
                || over(same_16, limits.per_v4_16)
            {
                return;
            }
        }
        self.insert_at(node, depth, d, at);
    }

    /// Where a candidate at distance `d` is (`Ok`) or would go (`Err`).
    fn search(&self, d: &DistanceOf<C>) -> Result<usize, usize> {
        self.by_distance
            .binary_search_by(|c| c.node.key().distance(&self.target).cmp(d))
    }

    fn find(&self, id: &C::Key) -> Option<&Candidate<C>> {
        let i = self.search(&id.distance(&self.target)).ok()?;
        self.by_distance.get(i)
    }

    fn insert(&mut self, node: C, depth: u32) {
        let d = node.key().distance(&self.target);
        let Err(at) = self.search(&d) else {
            return;
        };
        self.insert_at(node, depth, d, at);
    }

    /// Inserts `node`, at distance `d`, at `at` (where [`Candidates::search`] says a
    /// node at `d` goes), unless the set is full of closer or asked candidates.
    fn insert_at(&mut self, node: C, depth: u32, d: DistanceOf<C>, at: usize) {
        if self.by_distance.len() >= self.max {
            // Full: only a node closer than the farthest fresh one gets in. That one
            // is farther than `d`, so at or after `at`: removing it leaves `at` valid.
            let far_fresh = self
                .by_distance
                .iter()
                .rposition(|c| c.state == CandidateState::Fresh);
            match far_fresh {
                Some(f) if d < self.by_distance[f].node.key().distance(&self.target) => {
                    self.by_distance.remove(f);
                }
                _ => return,
            }
        }
        self.by_distance.insert(
            at,
            Candidate {
                node,
                state: CandidateState::Fresh,
                depth,
                attempts: 0,
                rtt_ms: 0,
            },
        );
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The next candidates to ask: fresh ones within the window of the `k` closest
    /// live candidates, while fewer than `alpha` requests are in flight.
    pub fn next_to_query(&mut self) -> Vec<C> {
        self.next_to_query_skipping(|_| false)
    }

    /// As [`Candidates::next_to_query`], but fresh candidates for which `skip` is true
    /// are set aside as failed (disjoint lookups: another path has claimed them; a
    /// seed asked by address answers for the candidate at that address).
    pub fn next_to_query_skipping(&mut self, skip: impl Fn(&C) -> bool) -> Vec<C> {
        let mut out = Vec::new();
        let mut live = 0;
        // Converged when the closest live candidate has already answered: nothing
        // closer is pending, so (as in the Kademlia paper) the rest of the k closest
        // are asked at once instead of alpha at a time, which saves round trips.
        let converged = self
            .by_distance
            .iter()
            .find(|c| {
                c.state != CandidateState::Failed
                    && !(c.state == CandidateState::Fresh && skip(&c.node))
            })
            .is_some_and(|c| matches!(c.state, CandidateState::Responded { .. }));
        let limit = if converged || self.in_last_round(&skip) {
            self.k
        } else {
            self.alpha
        };
        if self.prefer_fast {
            return self.next_fastest(limit, skip);
        }
        for c in self.by_distance.iter_mut() {
            if self.in_flight + out.len() >= limit || live >= self.k {
                break;
            }
            if c.state == CandidateState::Fresh && skip(&c.node) {
                c.state = CandidateState::Failed;
            }
            match c.state {
                CandidateState::Failed => continue,
                CandidateState::Fresh => {
                    c.state = CandidateState::InFlight;
                    c.attempts = c.attempts.saturating_add(1);
                    out.push(c.node.clone());
                }
                _ => {}
            }
            live += 1;
        }
        self.in_flight += out.len();
        out
    }

    /// [`Candidates::next_to_query_skipping`] with fast candidates first within a
    /// band: the fresh candidates a plain pass could reach (the window of k live
    /// ones) are taken band by band, closest band first, fastest first inside one.
    fn next_fastest(&mut self, limit: usize, skip: impl Fn(&C) -> bool) -> Vec<C> {
        let room = limit.saturating_sub(self.in_flight);
        if room == 0 {
            return Vec::new();
        }
        // (band, rtt or MAX when unknown, position): sorting this is the order asked
        // (positions are in the order of distances).
        let mut fresh: Vec<(std::cmp::Reverse<usize>, u16, usize)> = Vec::new();
        let mut live = 0;
        for (i, c) in self.by_distance.iter_mut().enumerate() {
            if live >= self.k {
                break;
            }
            if c.state == CandidateState::Fresh && skip(&c.node) {
                c.state = CandidateState::Failed;
            }
            match c.state {
                CandidateState::Failed => continue,
                CandidateState::Fresh => {
                    let band = c.node.key().common_prefix_len(&self.target);
                    let rtt = if c.rtt_ms == 0 { u16::MAX } else { c.rtt_ms };
                    fresh.push((std::cmp::Reverse(band), rtt, i));
                }
                _ => {}
            }
            live += 1;
        }
        fresh.sort_unstable();
        let mut out = Vec::with_capacity(room.min(fresh.len()));
        for (_, _, i) in fresh.into_iter().take(room) {
            if let Some(c) = self.by_distance.get_mut(i) {
                c.state = CandidateState::InFlight;
                c.attempts = c.attempts.saturating_add(1);
                out.push(c.node.clone());
            }
        }
        self.in_flight += out.len();
        out
    }

    /// True when the last round may start early ([`Candidates::early_last_round`]).
    fn in_last_round(&self, skip: &impl Fn(&C) -> bool) -> bool {
        if !self.early_last_round {
            return false;
        }
        let (mut answered, mut kth) = (false, None);
        let live = self.by_distance.iter().filter(|c| {
            c.state != CandidateState::Failed
                && !(c.state == CandidateState::Fresh && skip(&c.node))
        });
        for (i, c) in live.take(self.k).enumerate() {
            answered |= matches!(c.state, CandidateState::Responded { .. });
            if i + 1 == self.k {
                kth = Some(c);
            }
        }
        let deep =
            |bits: usize| kth.is_some_and(|c| c.node.key().common_prefix_len(&self.target) >= bits);
        answered || self.last_round_bits.is_some_and(deep)
    }

    /// The one candidate the lookup waits for when `k - 1` of the `k` closest live
    /// candidates answered and the last of them is in flight (nothing fresh in the
    /// window): the caller may end the lookup without it once it is overdue.
    pub fn awaiting_last(&self) -> Option<&C> {
        let mut answered = 0;
        let mut awaited = None;
        for c in self.by_distance.iter() {
            if answered + usize::from(awaited.is_some()) >= self.k {
                break;
            }
            match c.state {
                CandidateState::Failed => continue,
                CandidateState::Responded { .. } => answered += 1,
                CandidateState::InFlight if awaited.is_none() => awaited = Some(&c.node),
                CandidateState::Fresh | CandidateState::InFlight => return None,
            }
        }
        awaited.filter(|_| answered + 1 == self.k)
    }

    fn get_mut(&mut self, id: &C::Key) -> Option<&mut Candidate<C>> {
        let i = self.search(&id.distance(&self.target)).ok()?;
        self.by_distance.get_mut(i)
    }

    /// The candidate `id` answered. Returns its depth (so learned nodes get depth + 1).
    pub fn on_response(&mut self, id: &C::Key, token: Option<Vec<u8>>) -> Option<u32> {
        let c = self.get_mut(id)?;
        if c.state != CandidateState::InFlight {
            return None;
        }
        c.state = CandidateState::Responded { token };
        let depth = c.depth;
        self.in_flight -= 1;
        Some(depth)
    }

    /// Marks `id` as answered without a request of ours through this set (a bootstrap
    /// router asked by address before its id was known).
    pub fn force_responded(&mut self, id: &C::Key, token: Option<Vec<u8>>) {
        let mut was_in_flight = false;
        if let Some(c) = self.get_mut(id) {
            was_in_flight = c.state == CandidateState::InFlight;
            c.state = CandidateState::Responded { token };
        }
        if was_in_flight {
            self.in_flight -= 1;
        }
    }

    /// A request to `id` timed out: the first time it is asked again (a datagram lost
    /// on the way is common, a dead node is not asked a third time), then it fails.
    pub fn on_timeout(&mut self, id: &C::Key) {
        if let Some(c) = self.get_mut(id) {
            if c.state == CandidateState::InFlight {
                c.state = if c.attempts < MAX_ATTEMPTS {
                    CandidateState::Fresh
                } else {
                    CandidateState::Failed
                };
                self.in_flight -= 1;
            }
        }
    }

    /// The candidate `id` failed (an error reply, or it is not who we thought).
    pub fn on_failure(&mut self, id: &C::Key) {
        if let Some(c) = self.get_mut(id) {
            if c.state == CandidateState::InFlight {
                c.state = CandidateState::Failed;
                self.in_flight -= 1;
            }
        }
    }

    /// A candidate whose reply came from another id than the one we had for it.
    pub fn on_wrong_id(&mut self, expected: &C::Key) {
        self.on_failure(expected)
    }

    /// True when the `k` closest candidates that have not failed have all answered
    /// (or there is nobody left to ask and nothing in flight).
    pub fn is_done(&self) -> bool {
        let mut seen = 0;
        for c in self.by_distance.iter() {
            if seen >= self.k {
                break;
            }
            match c.state {
                CandidateState::Failed => continue,
                CandidateState::Responded { .. } => seen += 1,
                CandidateState::Fresh | CandidateState::InFlight => return false,
            }
        }
        self.in_flight == 0 || seen >= self.k
    }

    /// The `k` closest candidates that answered, closest first, with their depth and token.
    pub fn closest_responded(&self) -> Vec<(C, u32, Option<Vec<u8>>)> {
        self.by_distance
            .iter()
            .filter_map(|c| match &c.state {
                CandidateState::Responded { token } => {
                    Some((c.node.clone(), c.depth, token.clone()))
                }
                _ => None,
            })
            .take(self.k)
            .collect()
    }

    /// The target.
    pub fn target(&self) -> C::Key {
        self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(b: u8) -> NodeInfo {
        let mut id = [0u8; 20];
        id[0] = b;
        NodeInfo {
            id: Id(id),
            addr: SocketAddr::from(([127, 0, 0, 1], b as u16 + 1000)),
        }
    }

    #[test]
    fn window_alpha_and_termination() {
        let mut c = Candidates::new(Id::ZERO, 2, 2, 16);
        for b in 1..=5 {
            c.add(n(b), 1);
        }
        let first = c.next_to_query();
        assert_eq!(first, vec![n(1), n(2)]);
        assert!(c.next_to_query().is_empty(), "alpha bound");
        c.on_timeout(&n(1).id);
        // A first timeout: node 1 is asked again.
        assert_eq!(c.next_to_query(), vec![n(1)]);
        c.on_timeout(&n(1).id);
        // Node 1 failed twice: node 3 enters the window of the 2 closest live.
        assert_eq!(c.next_to_query(), vec![n(3)]);
        assert_eq!(c.on_response(&n(2).id, None), Some(1));
        assert!(!c.is_done());
        c.on_response(&n(3).id, None);
        assert!(c.is_done(), "2 closest live (2, 3) answered");
        let got: Vec<NodeInfo> = c.closest_responded().into_iter().map(|x| x.0).collect();
        assert_eq!(got, vec![n(2), n(3)]);
    }

    #[test]
    fn closer_nodes_learned_late_extend_the_lookup() {
        let mut c = Candidates::new(Id::ZERO, 1, 1, 16);
        c.add(n(9), 1);
        assert_eq!(c.next_to_query(), vec![n(9)]);
        c.on_response(&n(9).id, None);
        c.add(n(2), 2);
        assert!(!c.is_done());
        assert_eq!(c.next_to_query(), vec![n(2)]);
        c.on_response(&n(2).id, None);
        assert!(c.is_done());
    }

    #[test]
    fn the_last_round_starts_when_one_of_the_window_answered() {
        let setup = |early: bool| {
            let c = Candidates::new(Id::ZERO, 4, 2, 16);
            let mut c = if early { c.early_last_round(None) } else { c };
            for b in 2..=6 {
                c.add(n(b), 1);
            }
            assert_eq!(c.next_to_query(), vec![n(2), n(3)]);
            // The second closest answers while the closest is still in flight.
            c.on_response(&n(3).id, None);
            c.next_to_query()
        };
        assert_eq!(setup(false), vec![n(4)], "alpha at a time");
        assert_eq!(
            setup(true),
            vec![n(4), n(5)],
            "the rest of the window at once"
        );
    }

    #[test]
    fn the_last_round_starts_when_the_window_is_as_deep_as_expected() {
        // Ids 1 and 2 share 7 and 6 leading bits with the target 0.
        let first = |depth: usize| {
            let mut c = Candidates::new(Id::ZERO, 2, 1, 16).early_last_round(Some(depth));
            c.add(n(1), 1);
            c.add(n(2), 1);
            c.next_to_query()
        };
        assert_eq!(first(6), vec![n(1), n(2)]);
        assert_eq!(first(7), vec![n(1)]);
    }

    #[test]
    fn the_last_of_the_k_closest_is_awaited_alone() {
        let mut c = Candidates::new(Id::ZERO, 2, 2, 16);
        c.add(n(1), 1);
        c.add(n(2), 1);
        assert_eq!(c.next_to_query(), vec![n(1), n(2)]);
        assert_eq!(c.awaiting_last(), None, "two in flight");
        c.on_response(&n(1).id, None);
        assert_eq!(c.awaiting_last(), Some(&n(2)));
        assert!(!c.is_done());
        c.on_response(&n(2).id, None);
        assert_eq!(c.awaiting_last(), None);
        assert!(c.is_done());
    }

    #[test]
    fn one_candidate_per_v6_slash_64_and_two_per_v4_slash_24() {
        let at = |b: u8, ip: &str| NodeInfo {
            id: n(b).id,
            addr: SocketAddr::new(ip.parse().unwrap(), 6881),
        };
        let limits = Diversity {
            per_host: Some(1),
            per_v4_prefix: Some(2),
            per_v4_16: None,
        };
        let mut c = Candidates::new(Id::ZERO, 8, 3, 16);
        c.add_diverse(at(1, "2001:db8:1::1"), 1, limits);
        c.add_diverse(at(2, "2001:db8:1::2"), 1, limits);
        c.add_diverse(at(3, "2001:db8:2::1"), 1, limits);
        c.add_diverse(at(4, "192.0.2.1"), 1, limits);
        c.add_diverse(at(5, "::ffff:192.0.2.2"), 1, limits);
        c.add_diverse(at(6, "192.0.2.3"), 1, limits);
        c.add_diverse(at(7, "198.51.100.1"), 1, limits);
        let ids: Vec<u8> = c.by_distance.iter().map(|c| c.node.id.0[0]).collect();
        assert_eq!(ids, vec![1, 3, 4, 5, 7]);
        // No bound: every one.
        c.add_diverse(at(6, "192.0.2.3"), 1, Diversity::default());
        assert_eq!(c.by_distance.len(), 6);
    }

    #[test]
    fn fast_candidates_first_within_a_band_and_bands_in_order() {
        use std::time::Duration;
        // Ids 0x40 | i share one leading bit with the target 0; 0x20 shares two.
        let mut c = Candidates::new(Id::ZERO, 8, 2, 16).prefer_fast(true);
        for b in [0x20, 0x41, 0x42, 0x43] {
            c.add(n(b), 1);
        }
        c.hint_rtt(&n(0x20).id, Duration::from_millis(900));
        c.hint_rtt(&n(0x41).id, Duration::from_millis(300));
        c.hint_rtt(&n(0x42).id, Duration::from_millis(200));
        c.hint_rtt(&n(0x43).id, Duration::from_millis(20));
        // The closer band first however slow, then the fastest of the next band.
        assert_eq!(c.next_to_query(), vec![n(0x20), n(0x43)]);
        c.on_response(&n(0x20).id, None);
        // 0x20 answered and is the closest: converged, the rest go at once, fast first.
        assert_eq!(c.next_to_query(), vec![n(0x42), n(0x41)]);
        // Without the preference: by distance alone.
        let mut plain = Candidates::new(Id::ZERO, 8, 2, 16);
        for b in [0x20, 0x41, 0x42, 0x43] {
            plain.add(n(b), 1);
        }
        plain.hint_rtt(&n(0x43).id, Duration::from_millis(20));
        assert_eq!(plain.next_to_query(), vec![n(0x20), n(0x41)]);
    }
}
