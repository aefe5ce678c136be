//! The node: one DHT participant as a state machine.
//!
//! Inputs: [`Node::handle_datagram`], [`Node::handle_timeout`], [`Node::handle_wall_clock`]
//! and the commands ([`Node::bootstrap`], [`Node::find_node`], [`Node::get_peers`], ...),
//! each stamped with the caller's `now`. Outputs, drained after every input in this order:
//! [`Node::poll_transmit`] (datagrams to send), [`Node::poll_timeout`] (when to call
//! `handle_timeout` next) and [`Node::poll_event`] (finished queries). Time only moves
//! forward; an early or extra `handle_timeout` is harmless.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::bep44::{self, MutableItem};
use crate::config::{key_derived_id, Config, IdPolicy};
use crate::defense::{ByteBudget, RateLimiter, Verdict};
use crate::id::{Id, NodeInfo};
use crate::krpc::{
    self, code, Body, ErrorBody, Message, Method, MutablePut, PutArgs, Query, Response, Want,
};
use crate::lookup::Candidates;
use crate::routing::{Insert, RoutingTable};
use crate::store::{
    RoutingSnapshot, SnapshotNode, Store, StoreError, StoredItem, StoredMutable, StoredPeer,
    UnixMillis,
};
use crate::token::Tokens;

/// Handle to a command in progress; reported back in its [`QueryDone`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub u64);

/// Address family: BEP 32 keeps IPv4 and IPv6 as separate DHTs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: &SocketAddr) -> Family {
        match addr.ip() {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
    fn index(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }
}

/// A datagram the node wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Bencoded KRPC message.
    pub payload: Vec<u8>,
}

/// Figures about one finished query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Depth of the closest result: a contact from our routing table has depth 1,
    /// one learned from a depth-d node's reply has depth d + 1.
    pub hops: u32,
    /// Requests sent.
    pub requests: u32,
    /// Replies received (responses and errors).
    pub responses: u32,
    /// Requests that timed out.
    pub timeouts: u32,
    /// Time from the command to the end.
    pub duration: Duration,
}

/// What a finished query found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `ping`: the node that answered, or `None` if none did.
    Ping {
        /// The responder.
        node: Option<NodeInfo>,
    },
    /// `find_node` and `bootstrap`: the closest nodes that answered, closest first.
    Nodes {
        /// Closest responders.
        closest: Vec<NodeInfo>,
    },
    /// `get_peers`.
    Peers {
        /// Peers found (deduplicated, sorted).
        peers: Vec<SocketAddr>,
        /// Closest responders.
        closest: Vec<NodeInfo>,
    },
    /// `announce_peer`, `put`: where the write landed.
    Stored {
        /// The info_hash or item target.
        target: Id,
        /// Nodes that acknowledged the write.
        stored_at: Vec<SocketAddr>,
        /// Nodes that refused it, with their KRPC error.
        errors: Vec<(SocketAddr, ErrorBody)>,
    },
    /// Immutable `get`: the value (checked against the target), if found.
    Immutable {
        /// Bencoded value.
        value: Option<Vec<u8>>,
    },
    /// Mutable `get`: the valid item with the highest seq, if any.
    Mutable {
        /// The item.
        item: Option<MutableItem>,
    },
    /// `sample_infohashes`: the union of samples.
    Samples {
        /// Distinct info_hashes sampled.
        samples: Vec<Id>,
        /// Largest `num` (info_hashes a node holds) reported.
        num_max: i64,
    },
}

/// A finished command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryDone {
    /// The command's handle.
    pub id: QueryId,
    /// What it found.
    pub outcome: Outcome,
    /// How it went.
    pub stats: QueryStats,
}

/// Something the application should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A command finished.
    QueryDone(QueryDone),
}

/// Counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams_in: u64,
    /// Datagrams queued for sending.
    pub datagrams_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes queued for sending.
    pub bytes_out: u64,
    /// Datagrams that did not decode.
    pub malformed: u64,
    /// Queries answered (including with an error).
    pub queries_answered: u64,
    /// Error replies sent.
    pub errors_sent: u64,
    /// Replies that matched no request in flight (late, spoofed or duplicated).
    pub unexpected_replies: u64,
    /// Messages dropped because the id was not the one bound to the sender's key.
    pub key_id_mismatch: u64,
    /// Store operations that failed.
    pub store_errors: u64,
    /// Queries dropped by the per-IP rate limit.
    pub rate_limited: u64,
    /// Datagrams dropped because their source is banned.
    pub banned: u64,
    /// Replies not sent because the reply byte budget was spent.
    pub budget_dropped: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// A lookup request on one of the query's disjoint paths.
    Lookup(QueryId, u8),
    Write(QueryId),
    Ping(Option<QueryId>),
}

#[derive(Clone, Debug)]
struct Pending {
    to: SocketAddr,
    node_id: Option<Id>,
    purpose: Purpose,
    sent: Instant,
    deadline: Instant,
}

#[derive(Clone, Debug)]
enum Kind {
    Ping,
    FindNode,
    GetPeers,
    Announce {
        port: Option<u16>,
    },
    GetImmutable,
    GetMutable {
        key: [u8; 32],
        salt: Vec<u8>,
        min_seq: Option<i64>,
    },
    PutImmutable {
        value: Vec<u8>,
    },
    PutMutable {
        item: MutableItem,
        cas: Option<i64>,
    },
    Samples,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Lookup,
    Write,
}

#[derive(Debug)]
struct QueryState {
    kind: Kind,
    family: Family,
    target: Id,
    internal: bool,
    phase: Phase,
    started: Instant,
    stats: QueryStats,
    /// One candidate set per disjoint path (one for plain lookups).
    paths: Vec<Candidates>,
    /// Nodes some path has queried (disjoint lookups only).
    claimed: BTreeSet<Id>,
    seeds_in_flight: usize,
    writes_in_flight: usize,
    peers: BTreeSet<SocketAddr>,
    value: Option<(Vec<u8>, u32)>,
    best: Option<(MutableItem, u32)>,
    samples: BTreeSet<Id>,
    num_max: i64,
    stored_at: Vec<SocketAddr>,
    errors: Vec<(SocketAddr, ErrorBody)>,
    ping_answer: Option<NodeInfo>,
    /// A bootstrap: when it ends, buckets it left sparse are refreshed.
    refresh_after: bool,
}

/// The address named in an error raised locally, before anything was sent.
pub const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// Most peers returned in one get_peers reply: 50 compact IPv4 peers fill 400 of the
/// 1024 bytes, leaving room for the token and nodes.
const MAX_VALUES_PER_REPLY: usize = 50;
/// Most info_hashes in one BEP 51 sample (20 x 20 bytes).
const MAX_SAMPLES: usize = 20;
/// Housekeeping pings per tick, so that a large table is not pinged all at once.
const PINGS_PER_TICK: usize = 8;
/// Distinct /24s (/64s) that must report the same address before we believe it.
pub const MIN_IP_VOTERS: usize = 5;
/// Most distinct addresses voted for that are remembered.
const MAX_VOTED_IPS: usize = 16;

/// Most housekeeping pings in flight at once.
const MAX_HOUSEKEEPING_PINGS: usize = 64;
/// Send buffers kept for reuse.
const MAX_POOLED_BUFFERS: usize = 8;
/// Most refresh lookups started when a bootstrap ends.
const MAX_BOOTSTRAP_REFRESHES: usize = 16;
/// Bucket refresh lookups started per tick.
const REFRESHES_PER_TICK: usize = 2;

/// A DHT node over a [`Store`].
#[derive(Debug)]
pub struct Node<S: Store> {
    config: Config,
    rng: ChaCha8Rng,
    id: Id,
    tables: [RoutingTable; 2],
    tokens: Tokens,
    store: S,
    anchor: (Instant, UnixMillis),
    bootstrap_addrs: Vec<SocketAddr>,
    restored: Vec<NodeInfo>,
    pending: BTreeMap<u32, Pending>,
    timers: BTreeSet<(Instant, u32)>,
    pinging: BTreeSet<SocketAddr>,
    queries: BTreeMap<QueryId, QueryState>,
    next_query: u64,
    transmits: VecDeque<Transmit>,
    pool: Vec<Vec<u8>>,
    events: VecDeque<Event>,
    next_maintenance: Instant,
    next_routing_save: Instant,
    stats: NodeStats,
    limiter: RateLimiter,
    reply_budget: ByteBudget,
    rtt: RttEstimator,
    /// BEP 42 votes: our address as responders saw it -> the /24s (/64s) that said so.
    votes: BTreeMap<IpAddr, BTreeSet<[u8; 8]>>,
    external_ip: Option<IpAddr>,
}

impl<S: Store> Node<S> {
    /// A node at `now`, with wall-clock time `wall` (ms since the Unix epoch) at that
    /// instant. A routing-table snapshot found in `store` seeds the first lookups.
    pub fn new(config: Config, store: S, now: Instant, wall: UnixMillis) -> Node<S> {
        let mut rng = ChaCha8Rng::from_seed(config.seed);
        let id = match config.id_policy {
            IdPolicy::Random => Id::random(&mut rng),
            IdPolicy::Fixed(id) => id,
            IdPolicy::Bep42(ip) => {
                let mut filler = [0u8; 20];
                rng.fill_bytes(&mut filler);
                let r = (rng.next_u32() & 0xff) as u8;
                crate::bep42::secure_id(ip, r, filler)
            }
            IdPolicy::PublicKey(key) => key_derived_id(&key),
        };
        let mk = || {
            RoutingTable::new(
                id,
                config.k,
                config.questionable_after,
                config.max_failures,
                now,
            )
        };
        let tables = [mk(), mk()];
        let tokens = Tokens::new(now, config.token_rotation, &mut rng);
        let mut stats = NodeStats::default();
        let restored = match store.load_routing() {
            Ok(Some(snap)) => snap
                .nodes
                .into_iter()
                .map(|n| n.node)
                .filter(|n| n.id != id)
                .collect(),
            Ok(None) => Vec::new(),
            Err(_) => {
                stats.store_errors += 1;
                Vec::new()
            }
        };
        Node {
            next_maintenance: now + config.maintenance_interval,
            next_routing_save: now + config.routing_save_interval,
            config,
            rng,
            id,
            tables,
            tokens,
            store,
            anchor: (now, wall),
            bootstrap_addrs: Vec::new(),
            restored,
            pending: BTreeMap::new(),
            timers: BTreeSet::new(),
            pinging: BTreeSet::new(),
            queries: BTreeMap::new(),
            next_query: 0,
            transmits: VecDeque::new(),
            pool: Vec::new(),
            events: VecDeque::new(),
            stats,
            limiter: RateLimiter::new(),
            reply_budget: ByteBudget::default(),
            rtt: RttEstimator::default(),
            votes: BTreeMap::new(),
            external_ip: None,
        }
    }

    // ---- getters ----

    /// Our node id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The routing table of a family.
    pub fn routing_table(&self, family: Family) -> &RoutingTable {
        &self.tables[family.index()]
    }

    /// Counters.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably (e.g. to flush it).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Our public IP as most responders report it (BEP 42 `ip` votes), once
    /// [`MIN_IP_VOTERS`] distinct networks agree.
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.external_ip
    }

    /// Commands not finished yet.
    pub fn queries_in_progress(&self) -> usize {
        self.queries.values().filter(|q| !q.internal).count()
    }

    /// The current routing tables as a snapshot (what the store persists).
    pub fn routing_snapshot(&self, now: Instant) -> RoutingSnapshot {
        let wall = self.wall(now);
        let mut nodes = Vec::new();
        for t in &self.tables {
            for e in t.entries() {
                let last_seen = t
                    .instant_of(e.last_response)
                    .map(|r| {
                        wall.saturating_sub(now.saturating_duration_since(r).as_millis() as u64)
                    })
                    .unwrap_or(0);
                nodes.push(SnapshotNode {
                    node: e.node,
                    last_seen,
                });
            }
        }
        RoutingSnapshot {
            node_id: Some(self.id),
            nodes,
        }
    }

    fn wall(&self, now: Instant) -> UnixMillis {
        self.anchor.1 + now.saturating_duration_since(self.anchor.0).as_millis() as u64
    }

    // ---- outputs ----

    /// The next datagram to send, as an owned buffer.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Gives a sent payload's buffer back for reuse (saves an allocation per datagram).
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        // A few buffers cover a burst of replies; more would cost every node in a
        // large simulation tens of kilobytes for nothing.
        if self.pool.len() < MAX_POOLED_BUFFERS && buf.capacity() <= 2 * krpc::MAX_SEND_BEP44 {
            buf.clear();
            self.pool.push(buf);
        }
    }

    /// When `handle_timeout` should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.timers.first().map(|(t, _)| *t);
        Some(match t {
            Some(t) => t.min(self.next_maintenance),
            None => self.next_maintenance,
        })
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ---- inputs ----

    /// Re-anchors wall-clock time (runtimes call this now and then; the core never reads a clock).
    pub fn handle_wall_clock(&mut self, now: Instant, wall: UnixMillis) {
        self.anchor = (now, wall);
    }

    /// Timers due at `now`: request timeouts and housekeeping.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(t, tid)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            if let Some(p) = self.pending.remove(&tid) {
                self.on_request_failed(now, p, None);
            }
        }
        if now >= self.next_maintenance {
            self.next_maintenance = now + self.config.maintenance_interval;
            self.maintenance(now);
        }
    }

    /// A datagram from `from`. `peer_key` is the sender's verified ed25519 key when
    /// the transport authenticates peers (QUIC), else `None`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        peer_key: Option<&[u8; 32]>,
        bytes: &[u8],
    ) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        if from.port() == 0 {
            return;
        }
        if self.limiter.is_banned(from.ip(), now) {
            self.stats.banned += 1;
            return;
        }
        let msg = match krpc::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                if let Some(t) = e.query_transaction_id {
                    if !self.config.read_only {
                        self.send_error(now, from, t, code::PROTOCOL, e.reason);
                    }
                }
                return;
            }
        };
        let sender_id = match &msg.body {
            Body::Query(q) => Some(q.id),
            Body::Response(r) => Some(r.id),
            Body::Error(_) => None,
        };
        if let (Some(key), Some(id)) = (peer_key, sender_id) {
            if key_derived_id(key) != id {
                self.stats.key_id_mismatch += 1;
                return;
            }
        }
        match msg.body {
            Body::Query(q) => {
                if self.config.read_only {
                    return;
                }
                match self.limiter.check(from.ip(), now, &self.config.defense) {
                    Verdict::Allow => {}
                    Verdict::Drop => {
                        self.stats.rate_limited += 1;
                        return;
                    }
                    Verdict::Banned => {
                        self.stats.banned += 1;
                        return;
                    }
                }
                self.on_query(now, from, msg.transaction_id, msg.read_only, q);
            }
            Body::Response(r) => {
                self.on_reply(now, from, &msg.transaction_id, msg.requester_ip, Ok(r))
            }
            Body::Error(e) => self.on_reply(now, from, &msg.transaction_id, None, Err(e)),
        }
    }

    // ---- commands ----

    fn new_query(
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
        // Every lookup that reads or writes data takes the disjoint paths: a put whose
        // single path runs into Sybils would write only to them (found in dht-sim).
        let paths = match kind {
            Kind::GetPeers
            | Kind::GetImmutable
            | Kind::GetMutable { .. }
            | Kind::Announce { .. }
            | Kind::PutImmutable { .. }
            | Kind::PutMutable { .. } => cfg.disjoint_paths.clamp(1, 16),
            _ => 1,
        };
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
                paths: (0..paths)
                    .map(|_| Candidates::new(target, cfg.k, cfg.alpha, cfg.max_lookup_candidates))
                    .collect(),
                claimed: BTreeSet::new(),
                seeds_in_flight: 0,
                writes_in_flight: 0,
                peers: BTreeSet::new(),
                value: None,
                best: None,
                samples: BTreeSet::new(),
                num_max: 0,
                stored_at: Vec::new(),
                errors: Vec::new(),
                ping_answer: None,
                refresh_after: false,
            },
        );
        qid
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

    fn start_lookup(&mut self, now: Instant, kind: Kind, target: Id, internal: bool) -> QueryId {
        let family = self.pick_family();
        self.start_lookup_in(now, kind, target, family, internal)
    }

    fn start_lookup_in(
        &mut self,
        now: Instant,
        kind: Kind,
        target: Id,
        family: Family,
        internal: bool,
    ) -> QueryId {
        let qid = self.new_query(now, kind, target, family, internal);
        let k = self.config.k;
        let from_table = self.tables[family.index()].closest(&target, k, now);
        let use_seeds = from_table.len() < k;
        self.seed_from_local_store(now, qid);
        let q = self.queries.get_mut(&qid).expect("just inserted");
        let d = q.paths.len();
        // Deal the closest known nodes round-robin, so each path starts near the target.
        for (i, n) in from_table.into_iter().enumerate() {
            q.paths[i % d].add(n, 1);
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
            // make them (and what they return) candidates.
            let seeds: Vec<SocketAddr> = self
                .bootstrap_addrs
                .iter()
                .filter(|a| Family::of(a) == family)
                .copied()
                .collect();
            for (i, addr) in seeds.into_iter().enumerate() {
                let method = self.lookup_method(qid);
                if let Some(method) = method {
                    if let Some(q) = self.queries.get_mut(&qid) {
                        q.seeds_in_flight += 1;
                        q.stats.requests += 1;
                    }
                    let path = (i % d) as u8;
                    self.send_request(now, addr, None, Purpose::Lookup(qid, path), method);
                }
            }
        }
        self.drive(now, qid);
        qid
    }

    /// This node is part of the DHT too: what it stores itself counts as found (depth 0).
    fn seed_from_local_store(&mut self, now: Instant, qid: QueryId) {
        let wall = self.wall(now);
        let Some(q) = self.queries.get_mut(&qid) else {
            return;
        };
        match &q.kind {
            Kind::GetPeers => {
                if let Ok(peers) = self.store.get_peers(&q.target) {
                    let fam = q.family;
                    q.peers.extend(
                        peers
                            .iter()
                            .filter(|p| p.expires_at > wall && Family::of(&p.addr) == fam)
                            .map(|p| p.addr)
                            .take(self.config.max_lookup_peers),
                    );
                }
            }
            Kind::GetImmutable | Kind::GetMutable { .. } => {
                let Ok(Some(item)) = self.store.get_item(&q.target) else {
                    return;
                };
                if item.expires_at <= wall {
                    return;
                }
                match (&q.kind, item.mutable) {
                    (Kind::GetImmutable, None) => q.value = Some((item.value, 0)),
                    (Kind::GetMutable { key, salt, min_seq }, Some(m)) => {
                        let it = MutableItem {
                            key: m.key,
                            signature: m.signature,
                            seq: m.seq,
                            salt: m.salt,
                            value: item.value,
                        };
                        if it.key == *key && it.salt == *salt && min_seq.is_none_or(|s| it.seq > s)
                        {
                            q.best = Some((it, 0));
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Looks up our own id from `addrs` (bootstrap routers or known nodes) and from
    /// the routing table, filling the table. Also remembers `addrs` as seeds for
    /// later lookups whenever a table is empty.
    pub fn bootstrap(&mut self, now: Instant, addrs: &[SocketAddr]) -> QueryId {
        for a in addrs {
            if !self.bootstrap_addrs.contains(a) {
                self.bootstrap_addrs.push(*a);
            }
        }
        let family = self.pick_family();
        let qid = self.start_bootstrap(now, family, false);
        // A dual-stack node bootstraps the other family too, quietly.
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

    fn start_bootstrap(&mut self, now: Instant, family: Family, internal: bool) -> QueryId {
        let own = self.id;
        // (A lookup that ends at once, with nobody to ask, has nothing to refresh.)
        let qid = self.start_lookup_in(now, Kind::FindNode, own, family, internal);
        if let Some(q) = self.queries.get_mut(&qid) {
            q.refresh_after = true;
        }
        qid
    }

    /// After a bootstrap, one lookup into each bucket that holds fewer than k nodes
    /// (the own-id lookup only fills the buckets near us; waiting 15 minutes for the
    /// regular refresh would leave a young node's table a third full).
    fn refresh_sparse_buckets(&mut self, now: Instant, family: Family) {
        let i = family.index();
        let t = &self.tables[i];
        let last = t.bucket_count().saturating_sub(1);
        let sparse: Vec<usize> = (0..last)
            .filter(|b| t.bucket_len(*b) < t.k())
            .take(MAX_BOOTSTRAP_REFRESHES)
            .collect();
        for b in sparse {
            self.tables[i].touch_bucket(b, now);
            let target = self.id.random_in_bucket(b, &mut self.rng);
            self.start_lookup_in(now, Kind::FindNode, target, family, true);
        }
    }

    /// Iterative `find_node` toward `target`.
    pub fn find_node(&mut self, now: Instant, target: Id) -> QueryId {
        self.start_lookup(now, Kind::FindNode, target, false)
    }

    /// Iterative `get_peers` for `info_hash`.
    pub fn get_peers(&mut self, now: Instant, info_hash: Id) -> QueryId {
        self.start_lookup(now, Kind::GetPeers, info_hash, false)
    }

    /// `get_peers` then `announce_peer` to the K closest with their tokens.
    /// `port: None` announces with `implied_port` (the UDP source port).
    pub fn announce_peer(&mut self, now: Instant, info_hash: Id, port: Option<u16>) -> QueryId {
        self.start_lookup(now, Kind::Announce { port }, info_hash, false)
    }

    /// BEP 44 immutable get.
    pub fn get_immutable(&mut self, now: Instant, target: Id) -> QueryId {
        self.start_lookup(now, Kind::GetImmutable, target, false)
    }

    /// BEP 44 mutable get: the valid item with the highest seq (above `min_seq` if given).
    pub fn get_mutable(
        &mut self,
        now: Instant,
        key: [u8; 32],
        salt: &[u8],
        min_seq: Option<i64>,
    ) -> QueryId {
        let target = bep44::mutable_target(&key, salt);
        self.start_lookup(
            now,
            Kind::GetMutable {
                key,
                salt: salt.to_vec(),
                min_seq,
            },
            target,
            false,
        )
    }

    /// BEP 44 immutable put of a bencoded value; the target is its SHA-1.
    /// Values over 1000 bytes are refused by every node (error 205).
    ///
    /// A value that is not exactly one bencoded value is never sent: the query ends at
    /// once with [`Outcome::Stored`] holding one error, code 203, from [`LOCAL`].
    pub fn put_immutable(&mut self, now: Instant, bencoded_value: Vec<u8>) -> QueryId {
        let target = bep44::immutable_target(&bencoded_value);
        if !crate::bencode::is_valid(&bencoded_value) {
            return self.refuse_put(target);
        }
        self.start_lookup(
            now,
            Kind::PutImmutable {
                value: bencoded_value,
            },
            target,
            false,
        )
    }

    fn refuse_put(&mut self, target: Id) -> QueryId {
        let qid = QueryId(self.next_query);
        self.next_query += 1;
        self.events.push_back(Event::QueryDone(QueryDone {
            id: qid,
            outcome: Outcome::Stored {
                target,
                stored_at: Vec::new(),
                errors: vec![(
                    LOCAL,
                    ErrorBody {
                        code: code::PROTOCOL,
                        message: "value is not exactly one bencoded value".into(),
                    },
                )],
            },
            stats: QueryStats::default(),
        }));
        qid
    }

    /// BEP 44 mutable put of a signed item, with an optional compare-and-swap seq.
    /// An invalid value is refused locally as for [`Node::put_immutable`].
    pub fn put_mutable(&mut self, now: Instant, item: MutableItem, cas: Option<i64>) -> QueryId {
        let target = item.target();
        if !crate::bencode::is_valid(&item.value) {
            return self.refuse_put(target);
        }
        self.start_lookup(now, Kind::PutMutable { item, cas }, target, false)
    }

    /// BEP 51: samples of info_hashes from nodes near `target`.
    pub fn sample_infohashes(&mut self, now: Instant, target: Id) -> QueryId {
        self.start_lookup(now, Kind::Samples, target, false)
    }

    /// Pings one address.
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) -> QueryId {
        let qid = self.new_query(now, Kind::Ping, Id::ZERO, Family::of(&addr), false);
        if let Some(q) = self.queries.get_mut(&qid) {
            q.stats.requests = 1;
        }
        self.send_request(now, addr, None, Purpose::Ping(Some(qid)), Method::Ping);
        qid
    }

    // ---- requests and replies ----

    fn lookup_method(&self, qid: QueryId) -> Option<Method> {
        let q = self.queries.get(&qid)?;
        let target = q.target;
        Some(match q.kind {
            Kind::Ping => return None,
            Kind::FindNode => Method::FindNode {
                target,
                want: Want::default(),
            },
            Kind::GetPeers | Kind::Announce { .. } => Method::GetPeers {
                info_hash: target,
                want: Want::default(),
            },
            Kind::GetImmutable
            | Kind::GetMutable { .. }
            | Kind::PutImmutable { .. }
            | Kind::PutMutable { .. } => Method::Get {
                target,
                seq: None,
                want: Want::default(),
            },
            Kind::Samples => Method::SampleInfohashes {
                target,
                want: Want::default(),
            },
        })
    }

    /// How long to wait for a reply: adapted to the round trips measured so far
    /// (smoothed RTT + 4 x deviation, as TCP does), within
    /// [`Config::min_request_timeout`, `Config::request_timeout`]. A lost datagram then
    /// costs a few round trips instead of the full timeout.
    fn request_timeout(&self) -> Duration {
        let max = self.config.request_timeout;
        let min = self.config.min_request_timeout.min(max);
        self.rtt.timeout().map_or(max, |t| t.clamp(min, max))
    }

    fn take_buf(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_else(|| Vec::with_capacity(512))
    }

    fn push_transmit(&mut self, to: SocketAddr, payload: Vec<u8>) {
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += payload.len() as u64;
        self.transmits.push_back(Transmit { to, payload });
    }

    fn send_request(
        &mut self,
        now: Instant,
        to: SocketAddr,
        node_id: Option<Id>,
        purpose: Purpose,
        method: Method,
    ) {
        let tid = loop {
            let t = self.rng.next_u32();
            if !self.pending.contains_key(&t) {
                break t;
            }
        };
        let msg = Message {
            transaction_id: tid.to_be_bytes().to_vec(),
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
        let deadline = now + self.request_timeout();
        self.pending.insert(
            tid,
            Pending {
                to,
                node_id,
                purpose,
                sent: now,
                deadline,
            },
        );
        self.timers.insert((deadline, tid));
    }

    fn on_reply(
        &mut self,
        now: Instant,
        from: SocketAddr,
        t: &[u8],
        seen_as: Option<SocketAddr>,
        reply: Result<Response, ErrorBody>,
    ) {
        let Ok(tid) = <[u8; 4]>::try_from(t).map(u32::from_be_bytes) else {
            self.stats.unexpected_replies += 1;
            return;
        };
        // Only the address we asked may answer: anything else is late or spoofed.
        match self.pending.get(&tid) {
            Some(p) if p.to == from => {}
            _ => {
                self.stats.unexpected_replies += 1;
                return;
            }
        }
        let Some(p) = self.pending.remove(&tid) else {
            return;
        };
        self.timers.remove(&(p.deadline, tid));
        self.rtt.sample(now.saturating_duration_since(p.sent));
        let resp = match reply {
            Ok(r) => r,
            Err(e) => {
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
        if let Some(expected) = p.node_id {
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
        match p.purpose {
            Purpose::Ping(qid) => {
                self.pinging.remove(&from);
                if let Some(qid) = qid {
                    if let Some(q) = self.queries.get_mut(&qid) {
                        q.stats.responses += 1;
                        q.stats.hops = 1;
                        q.ping_answer = Some(node);
                    }
                    self.finish(now, qid);
                }
            }
            Purpose::Lookup(qid, path) => {
                self.on_lookup_response(now, qid, path as usize, p.node_id.is_none(), node, resp)
            }
            Purpose::Write(qid) => {
                if let Some(q) = self.queries.get_mut(&qid) {
                    q.stats.responses += 1;
                    q.writes_in_flight = q.writes_in_flight.saturating_sub(1);
                    q.stored_at.push(from);
                }
                self.drive(now, qid);
            }
        }
    }

    fn vote_external_ip(&mut self, now: Instant, voter: SocketAddr, seen: IpAddr) {
        if Family::of(&voter) != Family::of(&SocketAddr::new(seen, 1)) {
            return;
        }
        if !self.votes.contains_key(&seen) && self.votes.len() >= MAX_VOTED_IPS {
            // Forget the least supported address to keep memory bounded.
            if let Some(weakest) = self
                .votes
                .iter()
                .min_by_key(|(_, v)| v.len())
                .map(|(ip, _)| *ip)
            {
                self.votes.remove(&weakest);
            }
        }
        let voters = self.votes.entry(seen).or_default();
        // Enough voters to decide; more would only cost memory.
        if voters.len() < 4 * MIN_IP_VOTERS {
            voters.insert(crate::defense::prefix_of(voter.ip()));
        }
        if voters.len() < MIN_IP_VOTERS {
            return;
        }
        let leader = self
            .votes
            .iter()
            .max_by_key(|(_, v)| v.len())
            .map(|(ip, _)| *ip);
        if leader != Some(seen) || self.external_ip == Some(seen) {
            return;
        }
        self.external_ip = Some(seen);
        // A node that derives its id from its address (BEP 42) takes an id that fits
        // the address the network sees, unless that address is exempt.
        if matches!(self.config.id_policy, IdPolicy::Bep42(_))
            && !crate::bep42::is_exempt(seen)
            && !crate::bep42::is_valid(&self.id, seen)
        {
            let mut filler = [0u8; 20];
            self.rng.fill_bytes(&mut filler);
            let r = (self.rng.next_u32() & 0xff) as u8;
            let id = crate::bep42::secure_id(seen, r, filler);
            self.change_id(now, id);
        }
    }

    /// Adopts a new node id: the tables are rebuilt around it, keeping their contacts.
    fn change_id(&mut self, now: Instant, id: Id) {
        self.id = id;
        for t in self.tables.iter_mut() {
            *t = t.rebuilt(id, now);
        }
    }

    fn note_response(&mut self, now: Instant, node: NodeInfo) {
        let fam = Family::of(&node.addr).index();
        if let Insert::Cached(Some(stale)) = self.tables[fam].on_response(node, now) {
            self.ping_node(now, stale);
        }
    }

    fn ping_node(&mut self, now: Instant, n: NodeInfo) {
        // Bounded, so that a flood of queries from many (possibly spoofed) sources
        // cannot make us send a ping for each.
        if self.pinging.len() >= MAX_HOUSEKEEPING_PINGS {
            return;
        }
        if self.pinging.insert(n.addr) {
            self.send_request(now, n.addr, Some(n.id), Purpose::Ping(None), Method::Ping);
        }
    }

    fn on_request_failed(&mut self, now: Instant, p: Pending, error: Option<ErrorBody>) {
        let timed_out = error.is_none();
        if let Some(id) = p.node_id {
            if timed_out {
                let fam = Family::of(&p.to).index();
                self.tables[fam].on_timeout(&id, &p.to, now);
            }
        }
        match p.purpose {
            Purpose::Ping(qid) => {
                self.pinging.remove(&p.to);
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
                    match p.node_id {
                        Some(id) => {
                            if let Some(c) = q.paths.get_mut(path as usize) {
                                if timed_out {
                                    c.on_timeout(&id);
                                } else {
                                    c.on_failure(&id);
                                }
                            }
                        }
                        None => q.seeds_in_flight = q.seeds_in_flight.saturating_sub(1),
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
                            q.errors.push((p.to, e));
                        }
                        None => q.stats.timeouts += 1,
                    }
                }
                self.drive(now, qid);
            }
        }
    }

    fn on_lookup_response(
        &mut self,
        now: Instant,
        qid: QueryId,
        path: usize,
        was_seed: bool,
        node: NodeInfo,
        resp: Response,
    ) {
        let Some(q) = self.queries.get_mut(&qid) else {
            return;
        };
        if q.phase != Phase::Lookup || path >= q.paths.len() {
            return;
        }
        q.stats.responses += 1;
        let depth = if was_seed {
            q.seeds_in_flight = q.seeds_in_flight.saturating_sub(1);
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
        for n in learned {
            if n.id != self.id && Family::of(&n.addr) == q.family && n.addr.port() != 0 {
                q.paths[path].add(*n, depth + 1);
            }
        }
        match &q.kind {
            Kind::GetPeers | Kind::Announce { .. } => {
                for v in &resp.values {
                    if q.peers.len() >= self.config.max_lookup_peers {
                        break;
                    }
                    if v.port() != 0 {
                        q.peers.insert(*v);
                    }
                }
            }
            Kind::GetImmutable => {
                if let Some(v) = resp.value {
                    if bep44::immutable_target(&v) == q.target && q.value.is_none() {
                        q.value = Some((v, depth));
                    }
                }
            }
            Kind::GetMutable { key, salt, min_seq } => {
                if let (Some(v), Some(k), Some(sig), Some(seq)) =
                    (resp.value, resp.key, resp.signature, resp.seq)
                {
                    let item = MutableItem {
                        key: k,
                        signature: sig,
                        seq,
                        salt: salt.clone(),
                        value: v,
                    };
                    let better = q.best.as_ref().is_none_or(|(b, _)| seq > b.seq);
                    let fresh_enough = min_seq.is_none_or(|m| seq > m);
                    if k == *key
                        && better
                        && fresh_enough
                        && item.value.len() <= krpc::MAX_VALUE_LEN
                        && item.verify()
                    {
                        q.best = Some((item, depth));
                    }
                }
            }
            Kind::Samples => {
                if let Some(s) = &resp.samples {
                    q.samples.extend(s.iter().copied());
                }
                if let Some(n) = resp.num {
                    q.num_max = q.num_max.max(n);
                }
            }
            _ => {}
        }
        self.drive(now, qid);
    }

    /// Moves a query along: sends what its window allows, starts the write phase,
    /// or finishes it.
    fn drive(&mut self, now: Instant, qid: QueryId) {
        let Some(q) = self.queries.get_mut(&qid) else {
            return;
        };
        match q.phase {
            Phase::Lookup => {
                // An immutable value is self-certifying: the first one found ends the get.
                if matches!(q.kind, Kind::GetImmutable) && q.value.is_some() {
                    self.finish(now, qid);
                    return;
                }
                let mut next = Vec::new();
                let disjoint = q.paths.len() > 1;
                for (i, c) in q.paths.iter_mut().enumerate() {
                    let claimed = &q.claimed;
                    for n in c.next_to_query_skipping(|id| disjoint && claimed.contains(id)) {
                        next.push((i as u8, n));
                    }
                    if disjoint {
                        for (_, n) in next.iter().filter(|(p, _)| *p == i as u8) {
                            q.claimed.insert(n.id);
                        }
                    }
                }
                q.stats.requests += next.len() as u32;
                if !next.is_empty() {
                    let method = self.lookup_method(qid);
                    if let Some(method) = method {
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
                let q = self.queries.get(&qid).expect("checked above");
                if q.seeds_in_flight > 0 || !q.paths.iter().all(|c| c.is_done()) {
                    return;
                }
                let writes = matches!(
                    q.kind,
                    Kind::Announce { .. } | Kind::PutImmutable { .. } | Kind::PutMutable { .. }
                );
                if writes {
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
        let targets: Vec<(NodeInfo, Vec<u8>)> = merged_closest(&q.paths, self.config.k)
            .into_iter()
            .filter_map(|(n, _, tok)| tok.map(|t| (n, t)))
            .collect();
        let target = q.target;
        let kind = q.kind.clone();
        for (n, token) in targets {
            let method = match &kind {
                Kind::Announce { port } => Method::AnnouncePeer {
                    info_hash: target,
                    port: port.unwrap_or(0),
                    token,
                    implied_port: port.is_none(),
                },
                Kind::PutImmutable { value } => Method::Put(PutArgs {
                    token,
                    value: value.clone(),
                    mutable: None,
                }),
                Kind::PutMutable { item, cas } => Method::Put(PutArgs {
                    token,
                    value: item.value.clone(),
                    mutable: Some(MutablePut {
                        key: item.key,
                        signature: item.signature,
                        seq: item.seq,
                        salt: item.salt.clone(),
                        cas: *cas,
                    }),
                }),
                _ => continue,
            };
            if let Some(q) = self.queries.get_mut(&qid) {
                q.writes_in_flight += 1;
                q.stats.requests += 1;
            }
            self.send_request(now, n.addr, Some(n.id), Purpose::Write(qid), method);
        }
        self.drive(now, qid);
    }

    fn finish(&mut self, now: Instant, qid: QueryId) {
        let Some(mut q) = self.queries.remove(&qid) else {
            return;
        };
        // Requests still in flight for this query are forgotten: late replies are
        // then counted as unexpected and ignored.
        let stale: Vec<u32> = self
            .pending
            .iter()
            .filter(
                |(_, p)| matches!(p.purpose, Purpose::Lookup(x, _) | Purpose::Write(x) if x == qid),
            )
            .map(|(t, _)| *t)
            .collect();
        for t in stale {
            if let Some(p) = self.pending.remove(&t) {
                self.timers.remove(&(p.deadline, t));
            }
        }
        if q.refresh_after {
            self.refresh_sparse_buckets(now, q.family);
        }
        if q.internal {
            return;
        }
        let closest = merged_closest(&q.paths, self.config.k);
        q.stats.hops = closest.first().map(|c| c.1).unwrap_or(0).max(q.stats.hops);
        let nodes: Vec<NodeInfo> = closest.iter().map(|c| c.0).collect();
        q.stats.duration = now.saturating_duration_since(q.started);
        let outcome = match q.kind {
            Kind::Ping => Outcome::Ping {
                node: q.ping_answer,
            },
            Kind::FindNode => Outcome::Nodes { closest: nodes },
            Kind::GetPeers => Outcome::Peers {
                peers: q.peers.into_iter().collect(),
                closest: nodes,
            },
            Kind::Announce { .. } | Kind::PutImmutable { .. } | Kind::PutMutable { .. } => {
                Outcome::Stored {
                    target: q.target,
                    stored_at: q.stored_at,
                    errors: q.errors,
                }
            }
            Kind::GetImmutable => {
                if let Some((_, d)) = &q.value {
                    q.stats.hops = *d;
                }
                Outcome::Immutable {
                    value: q.value.map(|v| v.0),
                }
            }
            Kind::GetMutable { .. } => {
                if let Some((_, d)) = &q.best {
                    q.stats.hops = *d;
                }
                Outcome::Mutable {
                    item: q.best.map(|b| b.0),
                }
            }
            Kind::Samples => Outcome::Samples {
                samples: q.samples.into_iter().collect(),
                num_max: q.num_max,
            },
        };
        self.events.push_back(Event::QueryDone(QueryDone {
            id: qid,
            outcome,
            stats: q.stats,
        }));
    }

    // ---- housekeeping ----

    fn maintenance(&mut self, now: Instant) {
        let wall = self.wall(now);
        if self.store.expire(wall).is_err() {
            self.stats.store_errors += 1;
        }
        for fam in [Family::V4, Family::V6] {
            let i = fam.index();
            for n in self.tables[i].questionable(now, PINGS_PER_TICK) {
                self.ping_node(now, n);
            }
            for n in self.tables[i].unverified_with_room(PINGS_PER_TICK) {
                self.ping_node(now, n);
            }
            if self.tables[i].is_empty() {
                let has_seeds = self.bootstrap_addrs.iter().any(|a| Family::of(a) == fam)
                    || self.restored.iter().any(|n| Family::of(&n.addr) == fam);
                let running = self.queries.values().any(|q| q.internal && q.family == fam);
                if has_seeds && !running {
                    self.start_bootstrap(now, fam, true);
                }
                continue;
            }
            let stale = self.tables[i].stale_buckets(now, self.config.bucket_refresh);
            for b in stale.into_iter().take(REFRESHES_PER_TICK) {
                self.tables[i].touch_bucket(b, now);
                let target = if b + 1 >= self.tables[i].bucket_count() {
                    self.id
                } else {
                    self.id.random_in_bucket(b, &mut self.rng)
                };
                self.start_lookup_in(now, Kind::FindNode, target, fam, true);
            }
        }
        if now >= self.next_routing_save {
            self.next_routing_save = now + self.config.routing_save_interval;
            self.save_routing(now);
        }
    }

    /// Writes the routing tables to the store now (also done periodically).
    pub fn save_routing(&mut self, now: Instant) {
        let snap = self.routing_snapshot(now);
        if snap.nodes.is_empty() {
            return;
        }
        if self.store.save_routing(&snap).is_err() {
            self.stats.store_errors += 1;
        }
    }

    // ---- serving ----

    fn on_query(&mut self, now: Instant, from: SocketAddr, t: Vec<u8>, sender_ro: bool, q: Query) {
        self.stats.queries_answered += 1;
        let fam = Family::of(&from);
        if !sender_ro && q.id != self.id {
            let node = NodeInfo {
                id: q.id,
                addr: from,
            };
            if self.tables[fam.index()].on_query(node, now) {
                self.ping_node(now, node);
            }
        }
        let mut r = Response {
            id: self.id,
            ..Response::default()
        };
        let mut big = false;
        let result: Result<(), (i64, &'static str)> = match q.method {
            Method::Ping => Ok(()),
            Method::FindNode { target, want } => {
                self.fill_nodes(&mut r, &target, want, fam, now);
                Ok(())
            }
            Method::GetPeers { info_hash, want } => {
                self.serve_get_peers(now, from, info_hash, want, &mut r)
            }
            Method::AnnouncePeer {
                info_hash,
                port,
                token,
                implied_port,
            } => self.serve_announce(now, from, info_hash, port, &token, implied_port),
            Method::Get { target, seq, want } => {
                big = true;
                self.serve_get(now, from, target, seq, want, &mut r)
            }
            Method::Put(args) => self.serve_put(now, from, args),
            Method::SampleInfohashes { target, want } => {
                self.serve_samples(now, target, want, fam, &mut r)
            }
            Method::Unknown { .. } => Err((code::METHOD_UNKNOWN, "method unknown")),
        };
        match result {
            Ok(()) => self.send_response(now, from, t, r, big),
            Err((c, m)) => self.send_error(now, from, t, c, m),
        }
    }

    fn fill_nodes(&mut self, r: &mut Response, target: &Id, want: Want, fam: Family, now: Instant) {
        let k = self.config.k;
        let (v4, v6) = if want.is_empty() {
            (fam == Family::V4, fam == Family::V6)
        } else {
            (want.v4, want.v6)
        };
        if v4 {
            r.nodes = self.tables[0].closest(target, k, now);
        }
        if v6 {
            r.nodes6 = self.tables[1].closest(target, k, now);
        }
    }

    fn store_err(&mut self, _e: StoreError) -> (i64, &'static str) {
        self.stats.store_errors += 1;
        (code::SERVER, "store error")
    }

    fn serve_get_peers(
        &mut self,
        now: Instant,
        from: SocketAddr,
        info_hash: Id,
        want: Want,
        r: &mut Response,
    ) -> Result<(), (i64, &'static str)> {
        r.token = Some(self.tokens.issue(now, from.ip(), &mut self.rng).to_vec());
        let wall = self.wall(now);
        let mut peers: Vec<SocketAddr> = match self.store.get_peers(&info_hash) {
            Ok(p) => p
                .into_iter()
                .filter(|p| p.expires_at > wall)
                .map(|p| p.addr)
                .collect(),
            Err(e) => return Err(self.store_err(e)),
        };
        let fam = Family::of(&from);
        peers.retain(|p| Family::of(p) == fam);
        if peers.len() > MAX_VALUES_PER_REPLY {
            // A random subset, so that every peer of a big swarm gets handed out.
            for i in 0..MAX_VALUES_PER_REPLY {
                let j = i + (self.rng.next_u32() as usize) % (peers.len() - i);
                peers.swap(i, j);
            }
            peers.truncate(MAX_VALUES_PER_REPLY);
        }
        r.values = peers;
        self.fill_nodes(r, &info_hash, want, fam, now);
        Ok(())
    }

    fn serve_announce(
        &mut self,
        now: Instant,
        from: SocketAddr,
        info_hash: Id,
        port: u16,
        token: &[u8],
        implied_port: bool,
    ) -> Result<(), (i64, &'static str)> {
        if !self.tokens.check(now, from.ip(), token, &mut self.rng) {
            return Err((code::PROTOCOL, "bad token"));
        }
        let port = if implied_port { from.port() } else { port };
        if port == 0 {
            return Err((code::PROTOCOL, "invalid port"));
        }
        let addr = SocketAddr::new(from.ip(), port);
        let wall = self.wall(now);
        let peers = match self.store.get_peers(&info_hash) {
            Ok(p) => p,
            Err(e) => return Err(self.store_err(e)),
        };
        let lim = self.config.limits;
        if peers.is_empty() {
            match self.store.counts() {
                Ok(c) if c.info_hashes >= lim.max_info_hashes => {
                    return Err((code::SERVER, "storage full"))
                }
                Ok(_) => {}
                Err(e) => return Err(self.store_err(e)),
            }
        } else if peers.len() >= lim.max_peers_per_info_hash
            && !peers.iter().any(|p| p.addr == addr)
        {
            if let Some(oldest) = peers.iter().min_by_key(|p| (p.expires_at, p.addr)) {
                if let Err(e) = self.store.remove_peer(&info_hash, &oldest.addr) {
                    return Err(self.store_err(e));
                }
            }
        }
        let peer = StoredPeer {
            addr,
            expires_at: wall + self.config.peer_ttl.as_millis() as u64,
        };
        self.store
            .put_peer(&info_hash, peer)
            .map_err(|e| self.store_err(e))
    }

    fn serve_get(
        &mut self,
        now: Instant,
        from: SocketAddr,
        target: Id,
        seq: Option<i64>,
        want: Want,
        r: &mut Response,
    ) -> Result<(), (i64, &'static str)> {
        r.token = Some(self.tokens.issue(now, from.ip(), &mut self.rng).to_vec());
        let wall = self.wall(now);
        let item = match self.store.get_item(&target) {
            Ok(i) => i.filter(|i| i.expires_at > wall),
            Err(e) => return Err(self.store_err(e)),
        };
        if let Some(item) = item {
            match item.mutable {
                None => r.value = Some(item.value),
                Some(m) => {
                    r.seq = Some(m.seq);
                    // BEP 44: with `seq` given and nothing newer, k, v and sig are omitted.
                    if seq.is_none_or(|s| m.seq > s) {
                        r.value = Some(item.value);
                        r.key = Some(m.key);
                        r.signature = Some(m.signature);
                    }
                }
            }
        }
        self.fill_nodes(r, &target, want, Family::of(&from), now);
        Ok(())
    }

    fn serve_put(
        &mut self,
        now: Instant,
        from: SocketAddr,
        args: PutArgs,
    ) -> Result<(), (i64, &'static str)> {
        // Checked in this order: 205, 207, 203 (token), 206, 301, 302.
        if args.value.len() > krpc::MAX_VALUE_LEN {
            return Err((code::VALUE_TOO_BIG, "message (v field) too big"));
        }
        if let Some(m) = &args.mutable {
            if m.salt.len() > krpc::MAX_SALT_LEN {
                return Err((code::SALT_TOO_BIG, "salt (salt field) too big"));
            }
        }
        if !self
            .tokens
            .check(now, from.ip(), &args.token, &mut self.rng)
        {
            return Err((code::PROTOCOL, "bad token"));
        }
        let wall = self.wall(now);
        let expires_at = wall + self.config.item_ttl.as_millis() as u64;
        let (target, mutable) = match &args.mutable {
            None => (bep44::immutable_target(&args.value), None),
            Some(m) => {
                if !bep44::verify(&m.key, &m.signature, &m.salt, m.seq, &args.value) {
                    return Err((code::INVALID_SIGNATURE, "invalid signature"));
                }
                (bep44::mutable_target(&m.key, &m.salt), Some(m))
            }
        };
        let existing = match self.store.get_item(&target) {
            Ok(i) => i.filter(|i| i.expires_at > wall),
            Err(e) => return Err(self.store_err(e)),
        };
        if let (Some(m), Some(old)) = (mutable, existing.as_ref().and_then(|e| e.mutable.as_ref()))
        {
            if m.cas.is_some_and(|c| c != old.seq) {
                return Err((
                    code::CAS_MISMATCH,
                    "the CAS hash mismatched, re-read value and try again",
                ));
            }
            let same_value = existing.as_ref().is_some_and(|e| e.value == args.value);
            if m.seq < old.seq || (m.seq == old.seq && !same_value) {
                return Err((code::SEQ_TOO_LOW, "sequence number less than current"));
            }
        }
        if existing.is_none() {
            match self.store.counts() {
                Ok(c) if c.items >= self.config.limits.max_items => {
                    return Err((code::SERVER, "storage full"))
                }
                Ok(_) => {}
                Err(e) => return Err(self.store_err(e)),
            }
        }
        let item = StoredItem {
            target,
            value: args.value,
            mutable: mutable.map(|m| StoredMutable {
                key: m.key,
                signature: m.signature,
                seq: m.seq,
                salt: m.salt.clone(),
            }),
            expires_at,
        };
        self.store.put_item(item).map_err(|e| self.store_err(e))
    }

    fn serve_samples(
        &mut self,
        now: Instant,
        target: Id,
        want: Want,
        fam: Family,
        r: &mut Response,
    ) -> Result<(), (i64, &'static str)> {
        let start = Id::random(&mut self.rng);
        let samples = match self.store.info_hashes(&start, MAX_SAMPLES) {
            Ok(s) => s,
            Err(e) => return Err(self.store_err(e)),
        };
        let num = match self.store.counts() {
            Ok(c) => c.info_hashes as i64,
            Err(e) => return Err(self.store_err(e)),
        };
        r.samples = Some(samples);
        r.num = Some(num);
        r.interval = Some(self.config.sample_interval_secs);
        self.fill_nodes(r, &target, want, fam, now);
        Ok(())
    }

    /// True for a non-exempt address with no earlier exchange (not in our table).
    fn is_stranger(&self, to: &SocketAddr) -> bool {
        !self.config.defense.is_exempt(to.ip())
            && !self.tables[Family::of(to).index()]
                .entries()
                .any(|e| e.node.addr == *to)
    }

    /// Replies to non-exempt addresses draw on the global reply budget, except replies
    /// to nodes in our routing table: they have answered our queries, so a flood from
    /// many spoofed sources that spends the budget cannot starve them.
    fn push_reply(&mut self, now: Instant, to: SocketAddr, buf: Vec<u8>) {
        let d = &self.config.defense;
        if let Some(rate) = d.reply_bytes_per_sec {
            if !d.is_exempt(to.ip())
                && !self.reply_budget.take(buf.len(), rate, now)
                && !self.tables[Family::of(&to).index()]
                    .entries()
                    .any(|e| e.node.addr == to)
            {
                self.stats.budget_dropped += 1;
                self.recycle(buf);
                return;
            }
        }
        self.push_transmit(to, buf);
    }

    fn send_response(
        &mut self,
        now: Instant,
        to: SocketAddr,
        t: Vec<u8>,
        r: Response,
        carries_value: bool,
    ) {
        let limit = if carries_value && r.value.is_some() {
            krpc::MAX_SEND_BEP44
        } else {
            krpc::MAX_SEND
        };
        let mut msg = Message {
            transaction_id: t,
            version: self.config.version.map(|v| v.to_vec()),
            read_only: false,
            requester_ip: Some(to),
            body: Body::Response(r),
        };
        let mut buf = self.take_buf();
        // Looked up only for replies above the stranger limit (rare): None = not yet.
        let mut stranger: Option<bool> = None;
        loop {
            buf.clear();
            msg.encode(&mut buf);
            let soft = self.config.defense.stranger_reply_bytes;
            let soft_over = soft.is_some_and(|s| buf.len() > s)
                && *stranger.get_or_insert_with(|| self.is_stranger(&to));
            if buf.len() <= limit && !soft_over {
                break;
            }
            let hard_over = buf.len() > limit;
            let target = if hard_over {
                limit
            } else {
                soft.unwrap_or(limit)
            };
            let Body::Response(r) = &mut msg.body else {
                break;
            };
            if !trim_reply(r, buf.len() - target) {
                if hard_over {
                    // Nothing left to trim: it cannot be made to fit (should not happen
                    // with a value <= 1000 bytes); refuse rather than send oversize.
                    self.pool.push(buf);
                    return;
                }
                // A stranger's reply keeps its BEP 44 value: only lists are trimmed.
                break;
            }
        }
        self.push_reply(now, to, buf);
    }

    fn send_error(&mut self, now: Instant, to: SocketAddr, t: Vec<u8>, code: i64, message: &str) {
        self.stats.errors_sent += 1;
        let msg = Message {
            transaction_id: t,
            version: self.config.version.map(|v| v.to_vec()),
            read_only: false,
            requester_ip: None,
            body: Body::Error(ErrorBody {
                code,
                message: message.to_string(),
            }),
        };
        let mut buf = self.take_buf();
        msg.encode(&mut buf);
        if buf.len() <= krpc::MAX_SEND {
            self.push_reply(now, to, buf);
        } else {
            // A peer's over-long transaction id must not make us send oversize.
            self.pool.push(buf);
        }
    }
}

/// The `k` closest responders over every path of a lookup, closest first.
fn merged_closest(paths: &[Candidates], k: usize) -> Vec<(NodeInfo, u32, Option<Vec<u8>>)> {
    if let [only] = paths {
        return only.closest_responded();
    }
    let mut all: Vec<_> = paths.iter().flat_map(|c| c.closest_responded()).collect();
    let target = paths.first().map(|c| c.target()).unwrap_or_default();
    all.sort_by_key(|(n, _, _)| n.id.distance(&target));
    all.dedup_by_key(|(n, _, _)| n.id);
    all.truncate(k);
    all
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

/// Trims a reply by about `over` bytes: nodes6, then nodes, then peers, then samples, a
/// few at a time. False when none of them is left to trim.
fn trim_reply(r: &mut Response, over: usize) -> bool {
    if !r.nodes6.is_empty() {
        let n = over.div_ceil(38).min(r.nodes6.len());
        r.nodes6.truncate(r.nodes6.len() - n);
    } else if !r.nodes.is_empty() {
        let n = over.div_ceil(26).min(r.nodes.len());
        r.nodes.truncate(r.nodes.len() - n);
    } else if !r.values.is_empty() {
        let n = over.div_ceil(8).min(r.values.len());
        r.values.truncate(r.values.len() - n);
    } else if let Some(s) = r.samples.as_mut().filter(|s| !s.is_empty()) {
        let n = over.div_ceil(20).min(s.len());
        s.truncate(s.len() - n);
    } else {
        return false;
    }
    true
}
