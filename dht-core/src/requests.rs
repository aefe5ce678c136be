//! Requests in flight, protocol-neutral: the table every overlay keeps of what it asked
//! whom, matching a reply to its request, deadlines, and the round-trip estimate that
//! sets per-node timeouts.
//!
//! Requests are named by 4-byte transaction ids (KRPC's `t`: some Mainline peers
//! answer no other length, and random ids make blind spoofing harder); a reply counts
//! only when it comes from the endpoint asked, under a live id. What a request was
//! for (`R`) and how its peer is addressed (`A`) are the overlay's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A transaction id: 4 bytes.
pub type TransactionId = [u8; 4];

/// One request in flight.
#[derive(Clone, Debug)]
pub struct Pending<R, A = SocketAddr> {
    /// Who was asked.
    pub to: A,
    /// What the request was for.
    pub request: R,
    /// When it left.
    pub sent: Instant,
    /// When it times out.
    pub deadline: Instant,
}

/// Requests in flight by transaction id, with their deadlines and the round trips
/// measured so far.
#[derive(Clone, Debug)]
pub struct RequestTable<R, A = SocketAddr> {
    pending: BTreeMap<TransactionId, Pending<R, A>>,
    timers: BTreeSet<(Instant, TransactionId)>,
    rtt: RttEstimator,
}

impl<R, A> Default for RequestTable<R, A> {
    fn default() -> Self {
        RequestTable {
            pending: BTreeMap::new(),
            timers: BTreeSet::new(),
            rtt: RttEstimator::default(),
        }
    }
}

impl<R, A: PartialEq> RequestTable<R, A> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests in flight.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Draws ids from `draw` (the overlay's seeded RNG) until one is not in flight.
    pub fn unused_id(&self, mut draw: impl FnMut() -> TransactionId) -> TransactionId {
        loop {
            let t = draw();
            if !self.pending.contains_key(&t) {
                return t;
            }
        }
    }

    /// Records a request sent to `to` at `now` under `tid`, due by `deadline`.
    pub fn insert(
        &mut self,
        tid: TransactionId,
        to: A,
        request: R,
        now: Instant,
        deadline: Instant,
    ) {
        self.pending.insert(
            tid,
            Pending {
                to,
                request,
                sent: now,
                deadline,
            },
        );
        self.timers.insert((deadline, tid));
    }

    /// The request a reply from `from` under transaction id `t` answers, taken out of
    /// the table, its round trip sampled. `None` (the reply is unexpected: late,
    /// spoofed or garbled) when `t` is not a live 4-byte id or `from` is not who was
    /// asked.
    pub fn take_reply(&mut self, now: Instant, t: &[u8], from: &A) -> Option<Pending<R, A>> {
        let tid = TransactionId::try_from(t).ok()?;
        if self.pending.get(&tid).is_none_or(|p| p.to != *from) {
            return None;
        }
        let p = self.pending.remove(&tid)?;
        self.timers.remove(&(p.deadline, tid));
        self.release_if_idle();
        self.rtt.sample(now.saturating_duration_since(p.sent));
        Some(p)
    }

    /// The next request whose deadline has passed at `now`, taken out of the table.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Pending<R, A>> {
        while let Some(&(t, tid)) = self.timers.first() {
            if t > now {
                return None;
            }
            self.timers.pop_first();
            if let Some(p) = self.pending.remove(&tid) {
                self.release_if_idle();
                return Some(p);
            }
        }
        self.release_if_idle();
        None
    }

    /// Forgets every request for which `stale` is true: late replies to them are then
    /// unexpected.
    pub fn forget(&mut self, stale: impl Fn(&R) -> bool) {
        let ids: Vec<TransactionId> = self
            .pending
            .iter()
            .filter(|(_, p)| stale(&p.request))
            .map(|(t, _)| *t)
            .collect();
        for t in ids {
            if let Some(p) = self.pending.remove(&t) {
                self.timers.remove(&(p.deadline, t));
            }
        }
        self.release_if_idle();
    }

    /// Gives back the maps' memory once nothing is in flight. An emptied `BTreeMap`
    /// keeps its root node (about a kilobyte here) for the next insert: one node
    /// does not notice, a simulation of 100,000 mostly idle nodes holds 100 MB so.
    fn release_if_idle(&mut self) {
        if self.pending.is_empty() && self.timers.is_empty() {
            self.pending = BTreeMap::new();
            self.timers = BTreeSet::new();
        }
    }

    /// Forgets every request in flight (a node leaving its network).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.timers.clear();
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// The smoothed round trip over every reply, once one was measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt
    }

    /// How long to wait for a reply: smoothed RTT + 4 x deviation (as TCP does) within
    /// [`min`, `max`], or `max` before any reply; for a node whose own round trip
    /// `node_rtt` is known, twice that (at least `min`, at most the node-wide wait), so
    /// a fast node that went silent costs little.
    pub fn timeout(&self, node_rtt: Option<Duration>, min: Duration, max: Duration) -> Duration {
        let min = min.min(max);
        let node_wide = self.rtt.timeout().map_or(max, |t| t.clamp(min, max));
        node_rtt.map_or(node_wide, |rtt| (rtt * 2).clamp(min, node_wide))
    }
}

/// Smoothed round-trip time over every reply (RFC 6298's estimator, one for the node:
/// a DHT talks to each peer too rarely for per-peer estimates).
#[derive(Clone, Copy, Debug, Default)]
struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl RttEstimator {
    fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(s) => {
                let dev = s.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + dev) / 4;
                self.srtt = Some((s * 7 + rtt) / 8);
            }
        }
    }

    fn timeout(&self) -> Option<Duration> {
        self.srtt.map(|s| s + self.rttvar * 4)
    }
}
