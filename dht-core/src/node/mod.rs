//! The node: one DHT participant as a state machine.
//!
//! Inputs: [`Node::handle_datagram`], [`Node::handle_timeout`], [`Node::handle_wall_clock`]
//! and [`Node::start`] with a [`Request`], each stamped with the caller's `now`.
//! Outputs, drained after every input in this order: [`Node::poll_transmit`] (datagrams
//! to send), [`Node::poll_timeout`] (when to call `handle_timeout` next) and
//! [`Node::poll_event`] (finished requests). Time only moves forward; an early or extra
//! `handle_timeout` is harmless.
//!
//! One room per concern: this file holds the struct, its inputs and outputs;
//! `request.rs` the request and outcome types; `kind.rs` what differs between kinds of
//! request; `query.rs` lookup driving; `outgoing.rs` our requests in flight and reply
//! matching; `serve.rs` answering queries; `housekeeping.rs` the maintenance timer;
//! `external_ip.rs` BEP 42 address votes; `quota.rs` per-source storage accounting;
//! `stats.rs` the counters; `table.rs` the routing table of one family (IPv4 compact);
//! `handover.rs` giving stored items to newcomers closer to them.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use rand_chacha::rand_core::RngCore;

use crate::config::{key_derived_id, Config, ConfigError, IdPolicy};
use crate::defense::{ByteBudget, RateLimiter, Verdict};
use crate::id::{Id, NodeInfo};
use crate::krpc::{self, code, Body, Method};
use crate::store::{RoutingSnapshot, SnapshotNode, Store, UnixMillis};
use crate::token::Tokens;

mod external_ip;
mod handover;
mod housekeeping;
mod kind;
mod outgoing;
mod query;
mod quota;
mod request;
mod rng;
mod serve;
mod stats;
mod table;

pub use request::{Event, Outcome, QueryDone, QueryId, QueryStats, Request, RequestError};
pub use stats::{
    ErrorCode, ErrorCounts, KrpcMethod, MethodCounts, NodeStats, RefusalCounts, RefusalReason,
};
pub use table::NodeTable;

use external_ip::IpVotes;
use kind::Kind;
use outgoing::{Outgoing, Purpose};
use query::QueryState;
use quota::Ledger;
use rng::NodeRng;

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

/// The most one [`Node::handle_wall_clock`] moves wall time away from where the
/// monotonic clock puts it: a minute covers drift and NTP slews between re-anchors.
pub const MAX_WALL_SLEW: std::time::Duration = std::time::Duration::from_secs(60);

/// Send buffers kept for reuse.
const MAX_POOLED_BUFFERS: usize = 8;

/// Datagrams the drained transmit queue keeps room for (what one input usually queues).
const MAX_IDLE_QUEUE: usize = 4;

/// A DHT node over a [`Store`].
#[derive(Debug)]
pub struct Node<S: Store> {
    /// Shared by the nodes made with [`Node::with_shared_config`] (half a kilobyte
    /// each otherwise, in every node of a large simulation); never changed.
    config: Arc<Config>,
    rng: NodeRng,
    id: Id,
    /// One routing table per family (BEP 32), indexed by [`Family::index`].
    tables: [NodeTable; 2],
    tokens: Tokens,
    store: S,
    /// An instant and the wall-clock time at it: wall time is derived, never read.
    anchor: (Instant, UnixMillis),
    /// Seeds given to bootstrap (routers; ids unknown).
    bootstrap_addrs: Vec<SocketAddr>,
    /// Contacts from the saved routing table, used while a table is empty.
    restored: Vec<NodeInfo>,
    /// Our requests in flight.
    outgoing: Outgoing,
    /// Requests in progress.
    queries: BTreeMap<QueryId, QueryState>,
    next_query: u64,
    /// What to send, each with whether it is the reply to a write, to be sent only
    /// once the store's writes so far are durable ([`Store::commit`]).
    transmits: VecDeque<(Transmit, bool)>,
    pool: Vec<Vec<u8>>,
    events: VecDeque<Event>,
    next_maintenance: Instant,
    next_routing_save: Instant,
    stats: NodeStats,
    limiter: RateLimiter,
    reply_budget: ByteBudget,
    ip_votes: IpVotes,
    /// Who stored what: per-source storage shares and the bytes held.
    ledger: Ledger,
    /// Stored items being handed to newcomers ([`Config::handover`]); `None` when idle.
    handovers: Option<Box<handover::Handovers>>,
}

impl<S: Store> Node<S> {
    /// A node at `now`, with wall-clock time `wall` (ms since the Unix epoch) at that
    /// instant. A routing-table snapshot found in `store` seeds the first lookups.
    ///
    /// Refused when `config` does not pass [`Config::validate`] (for instance a seed
    /// that was never set).
    pub fn new(
        config: Config,
        store: S,
        now: Instant,
        wall: UnixMillis,
    ) -> Result<Node<S>, ConfigError> {
        config.validate()?;
        let seed = config.seed.ok_or(ConfigError::NoSeed)?;
        Node::build(Arc::new(config), seed, store, now, wall)
    }

    /// [`Node::new`] with a configuration that many nodes share (a simulation of a
    /// million nodes, a process running several), each with its own `seed` for its
    /// randomness (id, tokens, transaction ids) in place of `config.seed`.
    ///
    /// Refused when the settings do not pass [`Config::validate`] (the seed aside).
    pub fn with_shared_config(
        config: Arc<Config>,
        seed: [u8; 32],
        store: S,
        now: Instant,
        wall: UnixMillis,
    ) -> Result<Node<S>, ConfigError> {
        config.validate_settings()?;
        Node::build(config, seed, store, now, wall)
    }

    fn build(
        config: Arc<Config>,
        seed: [u8; 32],
        store: S,
        now: Instant,
        wall: UnixMillis,
    ) -> Result<Node<S>, ConfigError> {
        let mut rng = NodeRng::from_seed(seed);
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
        let tables = [
            NodeTable::new(Family::V4, id, &config, now),
            NodeTable::new(Family::V6, id, &config, now),
        ];
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
        Ok(Node {
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
            outgoing: Outgoing::default(),
            queries: BTreeMap::new(),
            next_query: 0,
            transmits: VecDeque::new(),
            pool: Vec::new(),
            events: VecDeque::new(),
            stats,
            limiter: RateLimiter::new(),
            reply_budget: ByteBudget::default(),
            ip_votes: IpVotes::default(),
            ledger: Ledger::default(),
            handovers: None,
        })
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
    pub fn routing_table(&self, family: Family) -> &NodeTable {
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
    /// [`Config::min_ip_voters`] distinct networks agree.
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.ip_votes.external_ip
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
        self.pop_transmit().map(|(t, _)| t)
    }

    /// The next datagram queued; once the queue is drained, a buffer grown by a burst
    /// (a bootstrap, a round of pings) is given back, since every simulated node has
    /// one such burst and would keep kilobytes for it.
    fn pop_transmit(&mut self) -> Option<(Transmit, bool)> {
        let next = self.transmits.pop_front();
        if next.is_none() && self.transmits.capacity() > MAX_IDLE_QUEUE {
            self.transmits = VecDeque::new();
        }
        next
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
        let mut t = self.next_maintenance;
        if let Some(d) = self.outgoing.next_deadline() {
            t = t.min(d);
        }
        if let Some(d) = self.handovers.as_ref().and_then(|h| h.next_due()) {
            t = t.min(d);
        }
        Some(t)
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        let next = self.events.pop_front();
        if next.is_none() && self.events.capacity() > 0 {
            // Events are rare (one per finished command) and large: keep no buffer.
            self.events = VecDeque::new();
        }
        next
    }

    // ---- inputs ----

    /// Re-anchors wall-clock time (runtimes call this now and then; the core never reads
    /// a clock). A wall clock that disagrees with the monotonic one by more than
    /// `MAX_WALL_SLEW` (60 s; a jump: a fixed RTC, a VM resumed, an NTP step) is followed
    /// at most that far per call, and the jump is counted (`wall_clock_jumps`): a
    /// forward jump of hours must not expire everything stored at once, and one call's
    /// expiry work stays bounded. A runtime that re-anchors every minute thus catches
    /// up at twice the clock's rate.
    pub fn handle_wall_clock(&mut self, now: Instant, wall: UnixMillis) {
        let derived = self.wall(now);
        let max = MAX_WALL_SLEW.as_millis() as u64;
        let anchored = if wall > derived.saturating_add(max) {
            self.stats.wall_clock_jumps += 1;
            derived + max
        } else if wall < derived.saturating_sub(max) {
            self.stats.wall_clock_jumps += 1;
            derived - max
        } else {
            wall
        };
        self.anchor = (now, anchored);
    }

    /// Timers due at `now`: request timeouts and housekeeping.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_requests(now);
        self.pump_handovers(now);
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
                // A malformed query costs its source like a well-formed one before it
                // draws a 203: otherwise a 14-byte query reflects a 57-byte error
                // without limit.
                if let Some(t) = e.query_transaction_id {
                    if !self.config.read_only && self.admit(now, from) {
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
                self.stats
                    .queries_received
                    .bump(stats::KrpcMethod::of(&q.method));
                if self.config.read_only || !self.admit(now, from) {
                    return;
                }
                self.on_query(now, from, msg.transaction_id, msg.read_only, q);
            }
            Body::Response(r) => {
                self.on_reply(now, from, &msg.transaction_id, msg.requester_ip, Ok(r))
            }
            Body::Error(e) => self.on_reply(now, from, &msg.transaction_id, None, Err(e)),
        }
    }

    /// Runs one query from `from` past the per-source rate limit and ban; false (and
    /// counted) when it must be dropped unanswered.
    fn admit(&mut self, now: Instant, from: SocketAddr) -> bool {
        match self.limiter.check(from.ip(), now, &self.config.defense) {
            Verdict::Allow => true,
            Verdict::Drop => {
                self.stats.rate_limited += 1;
                false
            }
            Verdict::Banned => {
                self.stats.banned += 1;
                false
            }
        }
    }

    // ---- requests ----

    /// Starts a request. What every node would refuse (a value that is too big or
    /// not bencode, a salt that is too long) is refused here, before any packet
    /// leaves; otherwise the request ends with an [`Event::QueryDone`] carrying its id.
    pub fn start(&mut self, now: Instant, request: Request) -> Result<QueryId, RequestError> {
        request.check()?;
        Ok(match request {
            Request::Bootstrap { seeds } => self.bootstrap(now, &seeds),
            Request::Ping { addr } => {
                let ping = Kind::Ping { answer: None };
                let qid = self.new_query(now, ping, Id::ZERO, Family::of(&addr), false);
                if let Some(q) = self.queries.get_mut(&qid) {
                    q.stats.requests = 1;
                }
                self.send_request(now, addr, None, Purpose::Ping(Some(qid)), Method::Ping);
                qid
            }
            lookup => {
                let (kind, target) = Kind::of(lookup).expect("bootstrap and ping handled above");
                self.start_lookup(now, kind, target)
            }
        })
    }

    // ---- output helpers ----

    /// The answer to a write whose commit failed, in place of `reply` (ours, so it
    /// decodes): error 202 under the same transaction id.
    fn uncommitted_reply(&mut self, reply: &[u8]) -> Option<Vec<u8>> {
        let transaction_id = krpc::decode(reply).ok()?.transaction_id;
        self.stats.store_errors += 1;
        self.stats.errors_sent += 1;
        self.stats
            .errors_sent_by_code
            .bump(ErrorCode::of(code::SERVER));
        let msg = krpc::Message {
            transaction_id,
            version: self.config.version.map(|v| v.to_vec()),
            read_only: false,
            requester_ip: None,
            body: Body::Error(krpc::ErrorBody::new(code::SERVER, "store error")),
        };
        let mut buf = self.take_buf();
        msg.encode(&mut buf);
        Some(buf)
    }

    fn take_buf(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_else(|| Vec::with_capacity(512))
    }

    fn push_transmit(&mut self, to: SocketAddr, payload: Vec<u8>) {
        self.push_transmit_after(to, payload, false)
    }

    /// Queues a datagram; `after_commit` for the reply to a write, which a driver
    /// that commits the store holds until the write is durable
    /// ([`crate::Output::DatagramAfterCommit`]).
    fn push_transmit_after(&mut self, to: SocketAddr, payload: Vec<u8>, after_commit: bool) {
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += payload.len() as u64;
        self.transmits
            .push_back((Transmit { to, payload }, after_commit));
    }
}

impl<S: Store> crate::overlay::Overlay for Node<S> {
    type Peer = SocketAddr;
    type Request = Request;
    type Outcome = Outcome;
    type RequestError = RequestError;

    fn handle_input(&mut self, now: Instant, input: crate::overlay::Input<'_, SocketAddr>) {
        use crate::overlay::Input;
        match input {
            Input::Datagram { from, key, bytes } => self.handle_datagram(now, from, key, bytes),
            // KRPC is datagrams only: no transport of ours opens streams for it.
            Input::StreamRequest { .. }
            | Input::StreamReply { .. }
            | Input::StreamFailed { .. }
            | Input::Connected { .. }
            | Input::Disconnected { .. }
            | Input::Identified { .. } => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        Node::handle_timeout(self, now)
    }

    fn start(&mut self, now: Instant, request: Request) -> Result<QueryId, RequestError> {
        Node::start(self, now, request)
    }

    fn poll_output(&mut self) -> Option<crate::overlay::Output<SocketAddr>> {
        use crate::overlay::Output;
        self.pop_transmit().map(
            |(Transmit { to, payload }, after_commit)| match after_commit {
                false => Output::Datagram { to, payload },
                true => Output::DatagramAfterCommit { to, payload },
            },
        )
    }

    fn commit(&mut self) -> Option<crate::store::Commit> {
        self.store.commit()
    }

    fn commit_failed(&mut self, reply: Vec<u8>) -> Option<Vec<u8>> {
        let error = self.uncommitted_reply(&reply);
        self.recycle(reply);
        error
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Node::poll_timeout(self)
    }

    fn poll_event(&mut self) -> Option<Event> {
        Node::poll_event(self)
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        Node::recycle(self, buf)
    }

    fn handle_wall_clock(&mut self, now: Instant, wall: UnixMillis) {
        Node::handle_wall_clock(self, now, wall)
    }
}
