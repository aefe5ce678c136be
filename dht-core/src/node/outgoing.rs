//! Our KRPC requests on the wire: sending them, and what a reply, an error or a timeout
//! does to the query that sent them. The table of requests in flight (matching, deadlines,
//! the round-trip estimate) is the kernel's [`RequestTable`].
//!
//! A reply counts only when it comes from the address we asked, under a live 4-byte
//! transaction id; anything else is counted as unexpected and dropped.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::RngCore;

use crate::id::{Id, NodeInfo};
use crate::krpc::{Body, ErrorBody, Message, Method, Query, Response};
use crate::requests::{Pending, RequestTable};
use crate::routing::Insert;
use crate::store::Store;

use super::request::QueryId;
use super::stats::{ErrorCode, KrpcMethod};
use super::{Family, Node};

/// The soonest a lookup request counts as overdue: below this a reply's delay is the
/// hosts' scheduling, not the path (and a network whose replies come back at once,
/// as in memory, would otherwise end every lookup before its last answer).
const MIN_OVERDUE: Duration = Duration::from_millis(10);

/// Why a request was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    /// A lookup request on one of the query's disjoint paths.
    Lookup(QueryId, u8),
    /// A put or announce of the query's write phase.
    Write(QueryId),
    /// A ping: of a request, or of housekeeping (`None`).
    Ping(Option<QueryId>),
    /// A handover's `get` to a newcomer, for its token (`handover.rs`; the handover's key).
    HandoverGet(u32),
    /// A handover's `put`.
    HandoverPut(u32),
}

/// What a request of ours was: whom we meant to ask (unknown for a bootstrap
/// address) and why.
#[derive(Clone, Copy, Debug)]
pub(super) struct Asked {
    node_id: Option<Id>,
    purpose: Purpose,
}

/// Requests in flight, by transaction id, with their deadlines.
#[derive(Debug, Default)]
pub(super) struct Outgoing {
    table: RequestTable<Asked>,
    /// Addresses with a housekeeping ping in flight.
    pinging: BTreeSet<SocketAddr>,
    /// When a lookup's last awaited answer becomes overdue
    /// ([`crate::Config::end_without_overdue`]): the lookup is driven again then.
    wakeups: BTreeSet<(Instant, QueryId)>,
}

impl Outgoing {
    /// The earliest request deadline or lookup wake-up.
    pub fn next_deadline(&self) -> Option<Instant> {
        let wake = self.wakeups.first().map(|w| w.0);
        match (self.table.next_deadline(), wake) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Drives lookup `qid` again at `at`.
    pub fn wake(&mut self, at: Instant, qid: QueryId) {
        self.wakeups.insert((at, qid));
    }

    /// The node-wide smoothed round trip, once one was measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.table.srtt()
    }

    /// The housekeeping ping to `addr` is over. An emptied set gives its root node
    /// back (368 bytes for 11 addresses): a `BTreeSet` keeps it for the next insert,
    /// which a simulation of a million nodes, nearly all idle, pays 368 MB for.
    fn end_ping(&mut self, addr: &SocketAddr) {
        self.pinging.remove(addr);
        if self.pinging.is_empty() {
            self.pinging = BTreeSet::new();
        }
    }

    /// The earliest lookup wake-up due at `now`, taken out; an emptied set gives its
    /// root node back, as [`Outgoing::end_ping`] says.
    fn pop_wakeup(&mut self, now: Instant) -> Option<QueryId> {
        let &(at, qid) = self.wakeups.first()?;
        if at > now {
            return None;
        }
        self.wakeups.pop_first();
        if self.wakeups.is_empty() {
            self.wakeups = BTreeSet::new();
        }
        Some(qid)
    }
}

impl<S: Store> Node<S> {
    /// How long to wait for a reply: adapted to the round trips measured so far
    /// (smoothed RTT + 4 x deviation, as TCP does), within
    /// [`crate::Config::min_request_timeout`, `crate::Config::request_timeout`]. A lost
    /// datagram then costs a few round trips instead of the full timeout.
    ///
    /// With [`crate::Config::rtt_aware_lookups`], a node of our table whose round
    /// trip was measured is given twice that (at least the minimum, at most the
    /// node-wide wait): a fast node that went silent costs little.
    fn request_timeout(&self, to: SocketAddr, node_id: Option<Id>) -> Duration {
        let (min, max) = (self.config.min_request_timeout, self.config.request_timeout);
        let measured = node_id
            .filter(|_| self.config.timeouts_from_rtt || self.config.rtt_aware_lookups)
            .and_then(|id| self.tables[Family::of(&to).index()].rtt_of(&NodeInfo { id, addr: to }));
        if self.config.timeouts_from_rtt {
            if let Some(rtt) = measured {
                // Its own round trip is known: the node-wide floor, set for estimates
                // over every peer, need not apply in full.
                let node_wide = self.outgoing.table.timeout(None, min, max);
                let floor = (min / 4).min(node_wide);
                return (rtt * 2).max(floor).min(node_wide);
            }
        }
        let node_rtt = measured.filter(|_| self.config.rtt_aware_lookups);
        self.outgoing.table.timeout(node_rtt, min, max)
    }

    /// When a lookup request sent now to `to` becomes overdue
    /// ([`crate::Config::end_without_overdue`]): twice the node's own measured round
    /// trip, else the node-wide retransmission timeout without its floor; never after
    /// the request's own deadline.
    pub(super) fn overdue_after(&self, to: SocketAddr, id: Id) -> Duration {
        let max = self.request_timeout(to, Some(id));
        let measured = self.tables[Family::of(&to).index()].rtt_of(&NodeInfo { id, addr: to });
        let wait = match measured {
            Some(rtt) => rtt * 2,
            None => self.outgoing.table.timeout(None, Duration::ZERO, max),
        };
        wait.max(MIN_OVERDUE).min(max)
    }

    pub(super) fn send_request(
        &mut self,
        now: Instant,
        to: SocketAddr,
        node_id: Option<Id>,
        purpose: Purpose,
        method: Method,
    ) {
        let rng = &mut self.rng;
        let tid = self
            .outgoing
            .table
            .unused_id(|| rng.next_u32().to_be_bytes());
        self.stats.queries_sent.bump(KrpcMethod::of(&method));
        let msg = Message {
            transaction_id: tid.to_vec(),
            version: self.config.version.map(|v| v.to_vec()),
            read_only: self.config.read_only,
            requester_ip: None,
            body: Body::Query(Query {
                id: self.id,
                method,
            }),
        };
        let mut buf = self.take_buf();
        msg.encode(&mut buf);
        self.push_transmit(to, buf);
        let deadline = now + self.request_timeout(to, node_id);
        self.outgoing
            .table
            .insert(tid, to, Asked { node_id, purpose }, now, deadline);
    }

    /// Requests whose deadline has passed at `now` fail as timeouts.
    pub(super) fn expire_requests(&mut self, now: Instant) {
        while let Some(p) = self.outgoing.table.pop_expired(now) {
            self.on_request_failed(now, p, None);
        }
        while let Some(qid) = self.outgoing.pop_wakeup(now) {
            self.drive(now, qid);
        }
    }

    /// Forgets the requests in flight of a finished query: late replies are then
    /// counted as unexpected and ignored.
    pub(super) fn forget_requests_of(&mut self, qid: QueryId) {
        self.outgoing
            .table
            .forget(|r| matches!(r.purpose, Purpose::Lookup(x, _) | Purpose::Write(x) if x == qid));
    }

    /// A response or an error from `from` under transaction id `t`.
    pub(super) fn on_reply(
        &mut self,
        now: Instant,
        from: SocketAddr,
        t: &[u8],
        seen_as: Option<SocketAddr>,
        reply: Result<Response, ErrorBody>,
    ) {
        // Only the address we asked may answer: anything else is late or spoofed.
        let Some(p) = self.outgoing.table.take_reply(now, t, &from) else {
            self.stats.unexpected_replies += 1;
            return;
        };
        // It echoed a transaction id we sent to this address: the address is its own.
        self.limiter.prove(from.ip(), &self.config.defense);
        let rtt = now.saturating_duration_since(p.sent);
        let resp = match reply {
            Ok(r) => r,
            Err(e) => {
                self.stats.errors_received.bump(ErrorCode::of(e.code));
                self.on_request_failed(now, p, Some(e));
                return;
            }
        };
        if resp.id == self.id {
            self.on_request_failed(now, p, None);
            return;
        }
        if let Some(seen) = seen_as {
            self.vote_external_ip(now, from, seen.ip());
        }
        if let Some(expected) = p.request.node_id {
            if expected != resp.id {
                // The node on record answers with another id: it is not who we knew.
                self.tables[Family::of(&from).index()].remove(&expected);
                self.on_request_failed(now, p, None);
                return;
            }
        }
        let node = NodeInfo {
            id: resp.id,
            addr: from,
        };
        self.note_response(now, node);
        self.tables[Family::of(&from).index()].note_rtt(&node, rtt);
        match p.request.purpose {
            Purpose::Ping(qid) => {
                self.outgoing.end_ping(&from);
                if let Some(qid) = qid {
                    if let Some(q) = self.queries.get_mut(&qid) {
                        q.stats.responses += 1;
                        q.stats.hops = 1;
                        if let super::kind::Kind::Ping { answer } = &mut q.kind {
                            *answer = Some(node);
                        }
                    }
                    self.finish(now, qid);
                }
            }
            Purpose::Lookup(qid, path) => {
                let was_seed = p.request.node_id.is_none();
                self.on_lookup_response(now, qid, path as usize, was_seed, node, resp)
            }
            Purpose::HandoverGet(key) => self.on_handover_get(now, key, resp),
            Purpose::HandoverPut(key) => self.on_handover_put(now, key),
            Purpose::Write(qid) => {
                if let Some(q) = self.queries.get_mut(&qid) {
                    q.stats.responses += 1;
                    q.writes_in_flight = q.writes_in_flight.saturating_sub(1);
                    if let Some(w) = q.kind.writes_mut() {
                        w.stored_at.push(from);
                    }
                }
                self.drive(now, qid);
            }
        }
    }

    fn note_response(&mut self, now: Instant, node: NodeInfo) {
        let fam = Family::of(&node.addr).index();
        match self.tables[fam].on_response(node, now) {
            Insert::Cached(Some(stale)) => self.ping_node(now, stale),
            Insert::Added => self.hand_over_to(now, node),
            Insert::Cached(None) | Insert::Updated | Insert::Rejected => {}
        }
    }

    /// A housekeeping ping, unless one is in flight to that address or too many are.
    pub(super) fn ping_node(&mut self, now: Instant, n: NodeInfo) {
        if self.outgoing.pinging.len() >= self.config.max_housekeeping_pings {
            return;
        }
        if self.outgoing.pinging.insert(n.addr) {
            self.send_request(now, n.addr, Some(n.id), Purpose::Ping(None), Method::Ping);
        }
    }

    fn on_request_failed(&mut self, now: Instant, p: Pending<Asked>, error: Option<ErrorBody>) {
        let timed_out = error.is_none();
        if let Some(id) = p.request.node_id {
            if timed_out {
                let fam = Family::of(&p.to).index();
                self.tables[fam].on_timeout(&id, &p.to, now);
            }
        }
        match p.request.purpose {
            Purpose::HandoverGet(key) | Purpose::HandoverPut(key) => self.end_handover(now, key),
            Purpose::Ping(qid) => {
                self.outgoing.end_ping(&p.to);
                if let Some(qid) = qid {
                    if let Some(q) = self.queries.get_mut(&qid) {
                        if timed_out {
                            q.stats.timeouts += 1;
                        } else {
                            q.stats.responses += 1;
                        }
                    }
                    self.finish(now, qid);
                }
            }
            Purpose::Lookup(qid, path) => {
                if let Some(q) = self.queries.get_mut(&qid) {
                    if timed_out {
                        q.stats.timeouts += 1;
                    } else {
                        q.stats.responses += 1;
                    }
                    match p.request.node_id {
                        Some(id) => {
                            if let Some(c) = q.paths.get_mut(path as usize) {
                                if timed_out {
                                    c.on_timeout(&id);
                                } else {
                                    c.on_failure(&id);
                                }
                            }
                        }
                        None => {
                            q.seeds_in_flight.remove(&p.to);
                        }
                    }
                }
                self.drive(now, qid);
            }
            Purpose::Write(qid) => {
                if let Some(q) = self.queries.get_mut(&qid) {
                    q.writes_in_flight = q.writes_in_flight.saturating_sub(1);
                    match error {
                        Some(e) => {
                            q.stats.responses += 1;
                            if let Some(w) = q.kind.writes_mut() {
                                w.errors.push((p.to, e));
                            }
                        }
                        None => q.stats.timeouts += 1,
                    }
                }
                self.drive(now, qid);
            }
        }
    }
}
