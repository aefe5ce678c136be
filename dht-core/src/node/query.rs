//! Driving our own requests: starting a lookup, moving it along as replies come in,
//! the write phase of puts and announces, and the end that reports a [`QueryDone`].
//!
//! A lookup runs one or more disjoint candidate sets (`paths`) toward its target in
//! one address family; what differs between kinds is asked of [`Kind`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Instant;

use crate::defense::{is_unusable, locality};
use crate::disjoint::Paths;
use crate::id::{Id, NodeInfo};
use crate::krpc::Response;
use crate::lookup::Candidates;
use crate::store::Store;

use super::kind::Kind;
use super::outgoing::Purpose;
use super::request::{Event, QueryDone, QueryId, QueryStats};
use super::{Family, Node};

/// Most refresh lookups started when a bootstrap ends.
const MAX_BOOTSTRAP_REFRESHES: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Lookup,
    Write,
}

/// One request in progress.
#[derive(Debug)]
pub(super) struct QueryState {
    pub kind: Kind,
    pub family: Family,
    pub target: Id,
    /// Started by the node itself (refresh, a dual-stack bootstrap): no event.
    pub internal: bool,
    phase: Phase,
    started: Instant,
    pub stats: QueryStats,
    /// One candidate set per disjoint path (one for plain lookups).
    pub paths: Paths,
    /// Seeds (bootstrap routers, ids unknown) asked by address, reply pending: a
    /// candidate at one of these addresses is not asked again by id.
    pub seeds_in_flight: BTreeSet<SocketAddr>,
    pub writes_in_flight: usize,
    /// When each node asked by id becomes overdue
    /// ([`crate::Config::end_without_overdue`] only).
    overdue_at: BTreeMap<Id, Instant>,
    /// A bootstrap: when it ends, buckets it left sparse are refreshed.
    refresh_after: bool,
}

impl QueryState {
    /// Our own join (a bootstrap lookup), while it runs.
    pub fn is_bootstrap(&self) -> bool {
        self.refresh_after
    }
}

impl<S: Store> Node<S> {
    pub(super) fn new_query(
        &mut self,
        now: Instant,
        kind: Kind,
        target: Id,
        family: Family,
        internal: bool,
    ) -> QueryId {
        let qid = QueryId(self.next_query);
        self.next_query += 1;
        let cfg = &self.config;
        let paths = kind.paths(cfg);
        let last_round = self.last_round_bits(now, family);
        self.queries.insert(
            qid,
            QueryState {
                kind,
                family,
                target,
                internal,
                phase: Phase::Lookup,
                started: now,
                stats: QueryStats::default(),
                paths: Paths::new(
                    (0..paths)
                        .map(|_| {
                            let c = Candidates::new(
                                target,
                                cfg.k,
                                cfg.alpha,
                                cfg.max_lookup_candidates,
                            )
                            .prefer_fast(cfg.rtt_aware_lookups);
                            if cfg.early_last_round {
                                c.early_last_round(last_round)
                            } else {
                                c
                            }
                        })
                        .collect(),
                ),
                seeds_in_flight: BTreeSet::new(),
                writes_in_flight: 0,
                overdue_at: BTreeMap::new(),
                refresh_after: false,
            },
        );
        qid
    }

    /// Leading bits the k closest nodes of any target are expected to share with it
    /// ([`crate::Config::early_last_round`]): as many as our own k-th closest contact
    /// shares with our id, where our table is most complete. (One bit less started the
    /// last round too early: at 2,000 simulated nodes 0.2 RTT faster at the median
    /// than this, for 2.2 more messages per lookup; docs/lookup-tuning.md.)
    fn last_round_bits(&self, now: Instant, family: Family) -> Option<usize> {
        if !self.config.early_last_round {
            return None;
        }
        let k = self.config.k;
        let own = self.tables[family.index()].closest(&self.id, k, now);
        own.get(k.checked_sub(1)?)
            .map(|n| n.id.common_prefix_len(&self.id))
    }

    /// The family a lookup runs in: the one whose table has more nodes (IPv4 on a tie),
    /// or the family of the seeds when both tables are empty.
    fn pick_family(&self) -> Family {
        let v4 = self.tables[0].len();
        let v6 = self.tables[1].len();
        if v4 == 0 && v6 == 0 {
            let seeds_v6 = self
                .bootstrap_addrs
                .iter()
                .chain(self.restored.iter().map(|n| &n.addr))
                .all(|a| Family::of(a) == Family::V6);
            let any = !self.bootstrap_addrs.is_empty() || !self.restored.is_empty();
            return if any && seeds_v6 {
                Family::V6
            } else {
                Family::V4
            };
        }
        if v6 > v4 {
            Family::V6
        } else {
            Family::V4
        }
    }

    pub(super) fn start_lookup(&mut self, now: Instant, kind: Kind, target: Id) -> QueryId {
        let family = self.pick_family();
        self.start_lookup_in(now, kind, target, family, false)
    }

    pub(super) fn start_lookup_in(
        &mut self,
        now: Instant,
        kind: Kind,
        target: Id,
        family: Family,
        internal: bool,
    ) -> QueryId {
        let qid = self.new_query(now, kind, target, family, internal);
        let k = self.config.k;
        let paths = self.queries.get(&qid).map_or(1, |q| q.paths.len());
        // With disjoint paths each may start from k contacts of its own: when the k
        // closest are all Sybils (one bucket filled by one Sybil's answer), the
        // farther ones from other buckets still start some path among honest nodes.
        let start = if self.config.spread_disjoint_starts {
            k * paths
        } else {
            k
        };
        let from_table = self.tables[family.index()].closest(&target, start, now);
        let use_seeds = from_table.len() < k;
        let wall = self.wall(now);
        let q = self.queries.get_mut(&qid).expect("just inserted");
        q.kind
            .seed_from_store(&self.store, &target, family, wall, &self.config);
        let d = q.paths.len();
        // Deal the closest known nodes round-robin, so each path starts near the target.
        let hints = self.config.rtt_aware_lookups;
        let srtt = self.outgoing.srtt();
        let defense = self.config.defense;
        for (i, n) in from_table.into_iter().enumerate() {
            q.paths[i % d].add_diverse(n, 1, defense.lookup_diversity(n.addr.ip()));
            if let Some(rtt) = hints
                .then(|| self.tables[family.index()].rtt_of(&n).or(srtt))
                .flatten()
            {
                q.paths[i % d].hint_rtt(&n.id, rtt);
            }
        }
        if use_seeds {
            for n in self
                .restored
                .iter()
                .filter(|n| Family::of(&n.addr) == family)
            {
                q.paths[0].add(*n, 1);
            }
            // Bootstrap routers have no known id: ask them directly; their replies
            // make them (and what they return) candidates. A seed that is a
            // candidate already (it answered us before) is asked once, by id.
            let seeds: Vec<SocketAddr> = self
                .bootstrap_addrs
                .iter()
                .filter(|a| Family::of(a) == family)
                .filter(|a| !q.paths.iter().any(|c| c.has_addr(a)))
                .copied()
                .collect();
            let method = q.kind.lookup_method(target);
            if let Some(method) = method {
                for (i, addr) in seeds.into_iter().enumerate() {
                    if let Some(q) = self.queries.get_mut(&qid) {
                        q.seeds_in_flight.insert(addr);
                        q.stats.requests += 1;
                    }
                    let path = (i % d) as u8;
                    self.send_request(now, addr, None, Purpose::Lookup(qid, path), method.clone());
                }
            }
        }
        self.drive(now, qid);
        qid
    }

    /// Looks up our own id from the seeds and the routing table, in the family with
    /// more nodes, and quietly in the other family too when it has seeds.
    pub(super) fn bootstrap(&mut self, now: Instant, addrs: &[SocketAddr]) -> QueryId {
        // Room for the seeds given, not a vector's first four (a node is given one to
        // three: 32 bytes a seed, kept by every node of a large simulation).
        self.bootstrap_addrs.reserve_exact(addrs.len());
        for a in addrs {
            if !self.bootstrap_addrs.contains(a) {
                self.bootstrap_addrs.push(*a);
            }
        }
        let family = self.pick_family();
        let qid = self.start_bootstrap(now, family, false);
        let other = match family {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        };
        let other_has_seeds = self.bootstrap_addrs.iter().any(|a| Family::of(a) == other)
            || self.restored.iter().any(|n| Family::of(&n.addr) == other)
            || !self.tables[other.index()].is_empty();
        if other_has_seeds {
            self.start_bootstrap(now, other, true);
        }
        qid
    }

    pub(super) fn start_bootstrap(
        &mut self,
        now: Instant,
        family: Family,
        internal: bool,
    ) -> QueryId {
        let own = self.id;
        // (A lookup that ends at once, with nobody to ask, has nothing to refresh.)
        let qid = self.start_lookup_in(now, Kind::FindNode, own, family, internal);
        if let Some(q) = self.queries.get_mut(&qid) {
            q.refresh_after = true;
        }
        qid
    }

    /// After a bootstrap, one lookup into each bucket that is not full
    /// (the own-id lookup only fills the buckets near us; waiting 15 minutes for the
    /// regular refresh would leave a young node's table a third full).
    ///
    /// Buckets are counted down to where the table has split, or with extended
    /// buckets down to the closest node the bootstrap found (`depth`): an extended
    /// table splits only when its big first bucket is full, so a young one may
    /// not have split at all.
    fn refresh_sparse_buckets(&mut self, now: Instant, family: Family, depth: usize) {
        let i = family.index();
        let t = &self.tables[i];
        let last = t.bucket_count().saturating_sub(1);
        let depth = if self.config.extended_buckets {
            depth.max(last)
        } else {
            last
        };
        let sparse: Vec<usize> = (0..depth)
            .filter(|b| t.prefix_len(*b) < t.bucket_capacity(*b))
            .take(MAX_BOOTSTRAP_REFRESHES)
            .collect();
        for b in sparse {
            self.tables[i].touch_bucket(b.min(last), now);
            let target = self.id.random_in_bucket(b, &mut self.rng);
            self.start_lookup_in(now, Kind::FindNode, target, family, true);
        }
    }

    /// A reply to a lookup request on `path`; `was_seed` when we asked a bootstrap
    /// address whose id we did not know.
    pub(super) fn on_lookup_response(
        &mut self,
        now: Instant,
        qid: QueryId,
        path: usize,
        was_seed: bool,
        node: NodeInfo,
        mut resp: Response,
    ) {
        let Some(q) = self.queries.get_mut(&qid) else {
            return;
        };
        if q.phase != Phase::Lookup || path >= q.paths.len() {
            return;
        }
        q.stats.responses += 1;
        let depth = if was_seed {
            q.seeds_in_flight.remove(&node.addr);
            q.paths[path].add(node, 1);
            // Mark it answered: it is now a known, responsive candidate.
            q.paths[path].force_responded(&node.id, resp.token.clone());
            1
        } else {
            match q.paths[path].on_response(&node.id, resp.token.clone()) {
                Some(d) => d,
                None => return,
            }
        };
        let learned = match q.family {
            Family::V4 => &resp.nodes,
            Family::V6 => &resp.nodes6,
        };
        let d = self.config.defense;
        let teller = locality(node.addr.ip());
        let hints = self.config.rtt_aware_lookups;
        let srtt = self.outgoing.srtt();
        let table = &self.tables[q.family.index()];
        for n in learned {
            if n.id == self.id || Family::of(&n.addr) != q.family {
                continue;
            }
            // A contact no one can have, or one more local than the node that told us
            // (loopback < private < public): a remote node must not point our queries
            // at our own host or LAN.
            let ip = n.addr.ip();
            if n.addr.port() == 0 || is_unusable(ip) || locality(ip) < teller {
                self.stats.contacts_dropped += 1;
                continue;
            }
            q.paths[path].add_diverse(*n, depth + 1, d.lookup_diversity(ip));
            // What we measured of it ourselves, else the node-wide round trip.
            if let Some(rtt) = hints.then(|| table.rtt_of(n).or(srtt)).flatten() {
                q.paths[path].hint_rtt(&n.id, rtt);
            }
        }
        q.kind.absorb(&q.target, &mut resp, depth, &self.config);
        self.drive(now, qid);
    }

    /// Moves a query along: sends what its window allows, starts the write phase,
    /// or finishes it.
    pub(super) fn drive(&mut self, now: Instant, qid: QueryId) {
        let Some(q) = self.queries.get_mut(&qid) else {
            return;
        };
        match q.phase {
            Phase::Lookup => {
                if q.kind.is_satisfied(&self.config) {
                    self.finish(now, qid);
                    return;
                }
                let seeds = &q.seeds_in_flight;
                // A node asked by address as a seed is not asked again by id: its
                // pending reply answers for it (a seed learned from another seed).
                let next = q
                    .paths
                    .next_to_query(|n: &NodeInfo| seeds.contains(&n.addr));
                q.stats.requests += next.len() as u32;
                if !next.is_empty() {
                    if let Some(method) = q.kind.lookup_method(q.target) {
                        if self.config.end_without_overdue {
                            let due: Vec<(Id, Instant)> = next
                                .iter()
                                .map(|(_, n)| (n.id, now + self.overdue_after(n.addr, n.id)))
                                .collect();
                            if let Some(q) = self.queries.get_mut(&qid) {
                                q.overdue_at.extend(due);
                            }
                        }
                        for (path, n) in next {
                            self.send_request(
                                now,
                                n.addr,
                                Some(n.id),
                                Purpose::Lookup(qid, path),
                                method.clone(),
                            );
                        }
                    }
                    return;
                }
                if !q.seeds_in_flight.is_empty() {
                    return;
                }
                if !q.paths.all_done() {
                    if !self.config.end_without_overdue {
                        return;
                    }
                    let due = &q.overdue_at;
                    let overdue = |n: &NodeInfo| due.get(&n.id).is_some_and(|t| *t <= now);
                    if !q.paths.all_done_but_overdue(overdue) {
                        // Come back when the last awaited answer of a path is overdue.
                        let wake: Vec<Instant> = q
                            .paths
                            .iter()
                            .filter_map(|c| c.awaiting_last())
                            .filter_map(|n| due.get(&n.id).copied())
                            .filter(|t| *t > now)
                            .collect();
                        for t in wake {
                            self.outgoing.wake(t, qid);
                        }
                        return;
                    }
                }
                if q.kind.writes() {
                    self.start_writes(now, qid);
                } else {
                    self.finish(now, qid);
                }
            }
            Phase::Write => {
                if q.writes_in_flight == 0 {
                    self.finish(now, qid);
                }
            }
        }
    }

    fn start_writes(&mut self, now: Instant, qid: QueryId) {
        let Some(q) = self.queries.get_mut(&qid) else {
            return;
        };
        q.phase = Phase::Write;
        let targets: Vec<(NodeInfo, Vec<u8>)> = q
            .paths
            .merged_closest(self.config.k)
            .into_iter()
            .filter_map(|(n, _, tok)| tok.map(|t| (n, t)))
            .collect();
        let mut sends = Vec::with_capacity(targets.len());
        for (n, token) in targets {
            if let Some(method) = q.kind.write_method(q.target, token) {
                q.writes_in_flight += 1;
                q.stats.requests += 1;
                sends.push((n, method));
            }
        }
        for (n, method) in sends {
            self.send_request(now, n.addr, Some(n.id), Purpose::Write(qid), method);
        }
        self.drive(now, qid);
    }

    /// Ends a query: forgets its requests in flight and reports its outcome.
    pub(super) fn finish(&mut self, now: Instant, qid: QueryId) {
        let Some(mut q) = self.queries.remove(&qid) else {
            return;
        };
        if self.queries.is_empty() {
            // An emptied BTreeMap keeps a root node of 11 query states (4.5 KB): a
            // simulation of 100,000 mostly idle nodes would hold 450 MB so.
            self.queries = BTreeMap::new();
        }
        // Requests still in flight for this query are forgotten: late replies are
        // then counted as unexpected and ignored.
        self.forget_requests_of(qid);
        if q.refresh_after {
            let depth = q
                .paths
                .merged_closest(1)
                .first()
                .map_or(0, |c| c.0.id.common_prefix_len(&self.id));
            self.refresh_sparse_buckets(now, q.family, depth);
        }
        if q.internal {
            return;
        }
        let closest = q.paths.merged_closest(self.config.k);
        q.stats.hops = closest.first().map(|c| c.1).unwrap_or(0).max(q.stats.hops);
        let nodes: Vec<NodeInfo> = closest.iter().map(|c| c.0).collect();
        q.stats.duration = now.saturating_duration_since(q.started);
        let outcome = q.kind.into_outcome(q.target, nodes, &mut q.stats);
        self.events.push_back(Event::QueryDone(QueryDone {
            id: qid,
            outcome,
            stats: q.stats,
        }));
    }
}
