//! Commands and the lookups that serve them, driven by the querying node.
//!
//! A lookup is iterative, as the issue asks and unlike the paper's pseudocode (which
//! forwards recursively): the querier asks one node at a time for the target's
//! successor; a node that does not know it answers with the nodes that most closely
//! precede the target, and the querier asks the closest of all it has heard of next.
//! A node that times out is dropped and the next closest asked, which is the paper's
//! fault-tolerant lookup. Latency is then measured where it is felt, at the querier,
//! exactly as for the Kademlia lookups beside it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use dht_core::{Event, Id, QueryDone, QueryId, QueryStats, Store};

use crate::lookup::{Candidates, Op, OpId, Phase, Purpose, MAX_CANDIDATES};
use crate::node::{ChordNode, Pending, Waiting};
use crate::request::{BadValue, Outcome};
use crate::ring;
use crate::trace;
use crate::wire::{self, Peer, Query, Reply};

impl<S: Store> ChordNode<S> {
    // ---- commands ----

    /// Joins the ring through any of `bootstrap` (their ids need not be known), by a
    /// lookup of this node's own id; with no address, creates a ring of one. Ends
    /// with [`Outcome::Successors`], the new successor list (empty: the join failed).
    pub fn join(&mut self, now: Instant, bootstrap: &[SocketAddr]) -> QueryId {
        let q = self.new_query();
        if bootstrap.is_empty() {
            self.joined = true;
            self.events.push_back(Event::QueryDone(QueryDone {
                id: q,
                outcome: Outcome::Successors {
                    successors: vec![self.peer()],
                },
                stats: QueryStats::default(),
            }));
            return q;
        }
        let op = self.new_op(now, Some(q), Purpose::Join, self.id);
        if let Some(o) = self.ops.get_mut(&op) {
            // Reversed: `next` pops from the end, and the first address is asked first.
            o.candidates.bootstrap = bootstrap.iter().rev().copied().collect();
        }
        self.advance(now, op);
        q
    }

    /// Looks up `target`'s successor. Ends with [`Outcome::Successors`].
    pub fn find_successor(&mut self, now: Instant, target: Id) -> QueryId {
        self.start_op(now, Purpose::FindSuccessor, target)
    }

    /// Gets the value stored under `target` from its successor, or from the nodes
    /// that follow it when the successor lacks it or is dead. Ends with [`Outcome::Value`].
    pub fn get(&mut self, now: Instant, target: Id) -> QueryId {
        self.start_op(now, Purpose::Get, target)
    }

    /// Stores the bencoded value `v` under SHA-1(v) at the key's successor, which
    /// copies it to its successor list. Ends with [`Outcome::Stored`].
    pub fn put(&mut self, now: Instant, v: Vec<u8>) -> Result<QueryId, BadValue> {
        if v.len() > wire::MAX_VALUE || !dht_core::bencode::is_valid(&v) {
            return Err(BadValue);
        }
        let target = Id::sha1(&v);
        Ok(self.start_op(now, Purpose::Put(v), target))
    }

    fn new_query(&mut self) -> QueryId {
        self.next_op += 1;
        QueryId(self.next_op)
    }

    fn start_op(&mut self, now: Instant, purpose: Purpose, target: Id) -> QueryId {
        let q = self.new_query();
        let op = self.new_op(now, Some(q), purpose, target);
        self.trace(op, || {
            let o = &self.ops[&op];
            let what = match o.purpose {
                Purpose::Get => "get",
                Purpose::Put(_) => "put",
                _ => "find_successor",
            };
            format!("start {} {what} {}", q.0, trace::short(&target))
        });
        self.route(now, op);
        q
    }

    /// Starts `fix_fingers`' lookup of finger `i`.
    pub(crate) fn start_finger_lookup(&mut self, now: Instant, i: usize) -> OpId {
        let target = ring::finger_start(&self.id, i);
        let op = self.new_op(now, None, Purpose::Finger(i), target);
        self.route(now, op);
        op
    }

    /// Starts the lookup of this node's own id that ends each finger pass, from its
    /// two farthest fingers rather than from its own successor pointers.
    ///
    /// Stabilize repairs a ring from what neighbours say of each other, and that is
    /// not always enough: joins racing through a young ring can leave a node B whose
    /// predecessor A points past it to C (with C's predecessor A) while B sits on a
    /// second chain that skips C, each pointer confirmed by its own successor. The
    /// paper's join, re-run through the far side of the ring, meets the node that
    /// holds B in its interval on the main chain, and B takes the closer successor
    /// it names; stabilize and notify do the rest. One lookup per pass of about
    /// log2 N finger lookups.
    pub(crate) fn start_self_check(&mut self, now: Instant) -> Option<OpId> {
        let succ = self.successor().id;
        let mut far: Vec<Peer> = Vec::new();
        for i in (0..ring::M).rev() {
            let f = self.finger(i);
            if f.id == succ || f.id == self.id || far.iter().any(|p| p.id == f.id) {
                continue;
            }
            far.push(f);
            if far.len() == 2 {
                break;
            }
        }
        if far.is_empty() {
            return None;
        }
        let op = self.new_op(now, None, Purpose::SelfCheck, self.id);
        if let Some(o) = self.ops.get_mut(&op) {
            for p in far {
                o.candidates.add(p);
            }
        }
        self.advance(now, op);
        Some(op)
    }

    fn new_op(
        &mut self,
        now: Instant,
        query: Option<QueryId>,
        purpose: Purpose,
        target: Id,
    ) -> OpId {
        self.next_op += 1;
        let op = self.next_op;
        self.ops.insert(
            op,
            Op {
                query,
                purpose,
                target,
                candidates: Candidates {
                    from: self.id,
                    target,
                    by_distance: BTreeMap::new(),
                    bootstrap: Vec::new(),
                },
                phase: Phase::Routing,
                stats: QueryStats::default(),
                started: now,
                closest_responder: None,
                span_asked: false,
            },
        );
        op
    }

    /// The first step: answered here when the target lies between us and our
    /// successor, else from our closest preceding nodes.
    fn route(&mut self, now: Instant, op: OpId) {
        let Some(target) = self.ops.get(&op).map(|o| o.target) else {
            return;
        };
        if !self.joined && !self.config.gateways.is_empty() {
            // A client: on no ring, it asks a member, and any node but the target
            // itself may lie closer to the target than it.
            let gateways = self.config.gateways.iter().rev().copied().collect();
            if let Some(o) = self.ops.get_mut(&op) {
                o.candidates.from = ring::add(&target, &ring::pow2(0));
                o.candidates.bootstrap = gateways;
            }
            return self.advance(now, op);
        }
        let succ = self.successor();
        if ring::in_half_open(&target, &self.id, &succ.id) {
            let list = self.successor_list_or_self();
            return self.routed(now, op, list);
        }
        // Every known node that precedes the target, closest first: without failures
        // only the first is asked, and after many the lookup still has somewhere
        // to go when the closest few are dead.
        let first = self.closest_preceding(&target, MAX_CANDIDATES);
        if let Some(o) = self.ops.get_mut(&op) {
            for p in first {
                o.candidates.add(p);
            }
        }
        self.advance(now, op);
    }

    /// Asks the next candidate, or ends the op if none is left.
    fn advance(&mut self, now: Instant, op: OpId) {
        let Some(o) = self.ops.get_mut(&op) else {
            return;
        };
        let target = o.target;
        match o.candidates.next() {
            Some((addr, node)) => {
                o.stats.requests += 1;
                let q = Query::FindSuccessor { target };
                self.send_query(now, addr, &q, Some(Waiting::Step { op, node }));
                self.trace(op, || match node {
                    Some(id) => format!("ask {}", trace::short(&id)),
                    None => format!("ask {addr}"),
                });
            }
            None => self.span_fallback(now, op),
        }
    }

    /// Every candidate is asked and none knew the target's successor: the key's
    /// predecessor is dead and the ring has not repaired yet, so the live node just
    /// before it still names it as its successor and nobody answers `found`. The
    /// paper's lookup "tries the next best predecessor"; here that node is the
    /// closest responder, and its successor list (from `get_predecessor`) holds the
    /// key's successor and the nodes after it: the lookup ends with the part of the
    /// list at or after the target. One round trip, and only after failures.
    fn span_fallback(&mut self, now: Instant, op: OpId) {
        let member = self.is_joined();
        let Some(o) = self.ops.get_mut(&op) else {
            return;
        };
        match o.closest_responder {
            Some(q) if !o.span_asked => {
                o.span_asked = true;
                if self.trace && o.query.is_some() {
                    trace::line(&self.id, op, &format!("span {}", trace::short(&q.id)));
                }
                o.stats.requests += 1;
                self.send_query(
                    now,
                    q.addr,
                    &Query::GetPredecessor,
                    Some(Waiting::Span { op }),
                );
            }
            // Nobody answered, and this node is on the ring: the candidates were
            // nodes of its own that precede the key, and the timeouts took them out of
            // its successor list, which now runs past the key (its head timed out
            // while the key lay just after it). End with the part at or after the key.
            None if member && o.candidates.from == self.id => {
                let target = o.target;
                let list: Vec<Peer> = self
                    .successors
                    .iter()
                    .filter(|p| !ring::in_open(&p.id, &self.id, &target))
                    .copied()
                    .collect();
                self.routed(now, op, list)
            }
            _ => self.routed(now, op, Vec::new()),
        }
    }

    /// The closest responder's successor list (`None`: it did not answer).
    pub(crate) fn on_span_reply(&mut self, now: Instant, op: OpId, reply: Option<Reply>) {
        self.trace(op, || match &reply {
            Some(r) => format!("span-reply {}", trace::list(&r.successors)),
            None => "span-failed".to_string(),
        });
        let Some(o) = self.ops.get_mut(&op) else {
            return;
        };
        let (from, target) = (o.closest_responder.map(|p| p.id), o.target);
        let list: Vec<Peer> = match (reply, from) {
            (Some(r), Some(from)) => r
                .successors
                .into_iter()
                .filter(|p| !ring::in_open(&p.id, &from, &target))
                .take(self.config.successors)
                .collect(),
            _ => Vec::new(),
        };
        self.routed(now, op, list)
    }

    /// Routing ended with `list`, the target's successor first (empty: it failed).
    fn routed(&mut self, now: Instant, op: OpId, list: Vec<Peer>) {
        self.trace(op, || format!("routed {}", trace::list(&list)));
        let Some(o) = self.ops.get_mut(&op) else {
            return;
        };
        match &o.purpose {
            Purpose::Get | Purpose::Put(_) if !list.is_empty() => {
                o.phase = Phase::AtSuccessors { list, index: 0 };
                self.fetch(now, op);
            }
            Purpose::Get => self.finish(now, op, Outcome::Value { value: None }),
            Purpose::Put(_) => {
                let target = o.target;
                self.finish(
                    now,
                    op,
                    Outcome::Stored {
                        target,
                        stored_at: None,
                    },
                )
            }
            Purpose::FindSuccessor => {
                self.finish(now, op, Outcome::Successors { successors: list })
            }
            Purpose::Join => {
                if !list.is_empty() {
                    self.joined = true;
                    self.adopt_successors(list.clone());
                    // Stabilize at once: our successor learns of us a period sooner.
                    self.next_stabilize = now;
                }
                self.finish(now, op, Outcome::Successors { successors: list })
            }
            Purpose::SelfCheck => {
                self.fixing = None;
                self.ops.remove(&op);
                let succ = self.successor();
                let closer = list
                    .iter()
                    .filter(|p| ring::in_open(&p.id, &self.id, &succ.id))
                    .min_by_key(|p| ring::sub(&p.id, &self.id))
                    .copied();
                if let Some(p) = closer {
                    let mut l = vec![p];
                    l.extend(self.successors.iter().copied());
                    self.adopt_successors(l);
                    self.next_stabilize = now;
                }
            }
            &Purpose::Finger(i) => {
                self.fixing = None;
                self.next_finger = match list.first() {
                    Some(&s) if s.id != self.id => self.set_fingers_from(i, s),
                    _ => i + 1,
                } % ring::M;
                self.ops.remove(&op);
            }
        }
    }

    /// Sends the get or put to the current node of the successor list (handled
    /// here when that node is this one), or ends the op when the list is used up.
    fn fetch(&mut self, now: Instant, op: OpId) {
        loop {
            let Some(o) = self.ops.get_mut(&op) else {
                return;
            };
            let Phase::AtSuccessors { list, index } = &mut o.phase else {
                return;
            };
            let Some(&to) = list.get(*index) else {
                let outcome = match o.purpose {
                    Purpose::Put(_) => Outcome::Stored {
                        target: o.target,
                        stored_at: None,
                    },
                    _ => Outcome::Value { value: None },
                };
                return self.finish(now, op, outcome);
            };
            *index += 1;
            let target = o.target;
            if to.id == self.id {
                let done = match &o.purpose {
                    Purpose::Put(v) => {
                        let v = v.clone();
                        self.store_value(now, v, false)
                            .is_ok()
                            .then_some(Outcome::Stored {
                                target,
                                stored_at: Some(to),
                            })
                    }
                    _ => self
                        .store
                        .get_item(&target)
                        .ok()
                        .flatten()
                        .map(|i| Outcome::Value {
                            value: Some(i.item.into_value()),
                        }),
                };
                match done {
                    Some(outcome) => return self.finish(now, op, outcome),
                    None => continue,
                }
            }
            let q = match &o.purpose {
                Purpose::Put(v) => Query::Put {
                    v: v.clone(),
                    replica: false,
                },
                _ => Query::Get { target },
            };
            o.stats.requests += 1;
            self.send_query(now, to.addr, &q, Some(Waiting::Fetch { op }));
            return self.trace(op, || format!("fetch {}", trace::short(&to.id)));
        }
    }

    fn finish(&mut self, now: Instant, op: OpId, outcome: Outcome) {
        self.trace(op, || {
            let ok = match &outcome {
                Outcome::Value { value } => value.is_some(),
                Outcome::Stored { stored_at, .. } => stored_at.is_some(),
                Outcome::Successors { successors } => !successors.is_empty(),
            };
            format!("end {}", if ok { "ok" } else { "failed" })
        });
        let Some(o) = self.ops.remove(&op) else {
            return;
        };
        if let Some(id) = o.query {
            let mut stats = o.stats;
            stats.duration = now.saturating_duration_since(o.started);
            self.events
                .push_back(Event::QueryDone(QueryDone { id, outcome, stats }));
        }
    }

    /// Ends every op at once (the node is leaving).
    pub(crate) fn abandon_ops(&mut self, now: Instant) {
        let ops: Vec<OpId> = self.ops.keys().copied().collect();
        for op in ops {
            let outcome = match self.ops.get(&op).map(|o| (&o.purpose, o.target)) {
                Some((Purpose::Get, _)) => Outcome::Value { value: None },
                Some((Purpose::Put(_), target)) => Outcome::Stored {
                    target,
                    stored_at: None,
                },
                _ => Outcome::Successors {
                    successors: Vec::new(),
                },
            };
            self.finish(now, op, outcome);
        }
        self.fixing = None;
    }

    /// A line of `op`'s path when tracing (commands only: finger fixes are many).
    fn trace(&self, op: OpId, what: impl FnOnce() -> String) {
        if self.trace && self.ops.get(&op).is_some_and(|o| o.query.is_some()) {
            trace::line(&self.id, op, &what());
        }
    }

    // ---- replies and timeouts ----

    /// A reply (`Some`) or a KRPC error (`None`) to a pending request.
    pub(crate) fn on_reply(&mut self, now: Instant, p: Pending, reply: Option<Reply>) {
        match p.request {
            Waiting::Step { op, node } => {
                let Some(o) = self.ops.get_mut(&op) else {
                    return;
                };
                o.stats.responses += 1;
                let Some(reply) = reply else {
                    self.trace(op, || "error".to_string());
                    return self.advance(now, op);
                };
                self.trace(op, || {
                    format!(
                        "reply {} found={} {}",
                        trace::short(&reply.id),
                        u8::from(reply.found),
                        trace::list(&reply.nodes)
                    )
                });
                let Some(o) = self.ops.get_mut(&op) else {
                    return;
                };
                // A bootstrap node's id was unknown: exclude it from our own candidates
                // only by what it says of itself.
                let _ = node;
                o.stats.hops += 1;
                if reply.found {
                    let list: Vec<Peer> = reply
                        .nodes
                        .into_iter()
                        .take(self.config.successors)
                        .collect();
                    return self.routed(now, op, list);
                }
                if let Some(id) = node {
                    let closer = o
                        .closest_responder
                        .is_none_or(|c| ring::sub(&o.target, &id) < ring::sub(&o.target, &c.id));
                    if closer && ring::in_open(&id, &o.candidates.from, &o.target) {
                        o.closest_responder = Some(Peer { id, addr: p.to });
                    }
                }
                for n in reply.nodes {
                    o.candidates.add(n);
                }
                self.advance(now, op);
            }
            Waiting::Fetch { op } => {
                let Some(o) = self.ops.get_mut(&op) else {
                    return;
                };
                o.stats.responses += 1;
                let (target, to) = match &o.phase {
                    Phase::AtSuccessors { list, index } => {
                        (o.target, list.get(index.wrapping_sub(1)).copied())
                    }
                    Phase::Routing => return,
                };
                let has = reply.as_ref().map(|r| r.v.is_some());
                self.trace(op, || format!("fetched {has:?}"));
                let Some(o) = self.ops.get_mut(&op) else {
                    return;
                };
                let outcome = match (&o.purpose, reply) {
                    (Purpose::Put(_), Some(_)) => Some(Outcome::Stored {
                        target,
                        stored_at: to,
                    }),
                    (Purpose::Get, Some(Reply { v: Some(v), .. })) if Id::sha1(&v) == target => {
                        Some(Outcome::Value { value: Some(v) })
                    }
                    _ => None,
                };
                match outcome {
                    Some(outcome) => self.finish(now, op, outcome),
                    None => self.fetch(now, op),
                }
            }
            Waiting::Stabilize { successor } => self.on_stabilize_reply(now, successor, reply),
            Waiting::CheckPredecessor { .. } => self.checking = false,
            Waiting::Span { op } => {
                if let Some(o) = self.ops.get_mut(&op) {
                    o.stats.responses += 1;
                }
                self.on_span_reply(now, op, reply)
            }
        }
    }

    /// The id of the node a pending request went to, where it is known (a join's
    /// bootstrap addresses are asked by address alone).
    pub(crate) fn asked_id(&self, p: &Pending) -> Option<Id> {
        match p.request {
            Waiting::Step { node, .. } => node,
            Waiting::Fetch { op } => match &self.ops.get(&op)?.phase {
                Phase::AtSuccessors { list, index } => {
                    list.get(index.wrapping_sub(1)).map(|n| n.id)
                }
                Phase::Routing => None,
            },
            Waiting::Stabilize { successor } => Some(successor),
            Waiting::Span { op } => self.ops.get(&op)?.closest_responder.map(|n| n.id),
            Waiting::CheckPredecessor { predecessor } => Some(predecessor),
        }
    }

    /// A request that got no answer in time: its node is taken for dead.
    pub(crate) fn on_timeout(&mut self, now: Instant, p: Pending) {
        match p.request {
            Waiting::Step { op, node } => {
                self.trace(op, || "timeout".to_string());
                if let Some(id) = node {
                    self.forget(&id);
                }
                if let Some(o) = self.ops.get_mut(&op) {
                    o.stats.timeouts += 1;
                }
                self.advance(now, op);
            }
            Waiting::Fetch { op } => {
                self.trace(op, || "timeout".to_string());
                let dead = self.ops.get_mut(&op).and_then(|o| {
                    o.stats.timeouts += 1;
                    match &o.phase {
                        Phase::AtSuccessors { list, index } => {
                            list.get(index.wrapping_sub(1)).map(|p| p.id)
                        }
                        Phase::Routing => None,
                    }
                });
                if let Some(id) = dead {
                    self.forget(&id);
                }
                self.fetch(now, op);
            }
            Waiting::Stabilize { successor } => {
                self.forget(&successor);
                self.stabilizing = false;
                // Repair at once: the next successor in the list takes over.
                self.next_stabilize = now;
            }
            Waiting::Span { op } => {
                if let Some(o) = self.ops.get_mut(&op) {
                    o.stats.timeouts += 1;
                }
                self.on_span_reply(now, op, None)
            }
            Waiting::CheckPredecessor { predecessor } => {
                self.checking = false;
                if self.predecessor.is_some_and(|p| p.id == predecessor) {
                    self.predecessor = None;
                }
            }
        }
    }
}
