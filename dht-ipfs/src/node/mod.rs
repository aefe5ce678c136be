//! The node: a sans-IO state machine implementing [`Overlay`] with streams. Its state
//! is split by concern: `serve.rs` answers requests, `query.rs` runs our lookups and
//! their writes, `maintain.rs` admits peers from identify and keeps the table, the
//! store and our publications alive; this file holds the struct, the inputs and
//! outputs, and the requests in flight.
//!
//! Drain order after every input: [`Overlay::poll_output`] until `None`, then
//! [`Overlay::poll_timeout`], then [`Overlay::poll_event`].

mod addrs;
mod config;
mod maintain;
mod query;
mod request;
mod serve;

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use dht_core::kernel::{Contact, RequestTable, RoutingTable};
use dht_core::{Defense, Event, Input, Output, Overlay, QueryId, StreamId};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use addrs::is_public_addr;
pub use config::{Config, Mode, KAD_PROTOCOL};
pub use maintain::grind_preimage;
pub use request::{Outcome, Request, RequestError};

use crate::peer::{Key, PeerId, PeerInfo};
use crate::store::{Store, UnixMillis};
use crate::validate::{Namespaces, Validator};
use crate::wire::{self, Message};
use maintain::Room;
use query::Query;

/// What one of our requests in flight is for.
#[derive(Clone, Debug)]
enum Purpose {
    /// A step of query `query` on lookup path `path`.
    Lookup { query: QueryId, path: u8 },
    /// A PUT_VALUE of query `query`'s write phase.
    Put { query: QueryId },
    /// A FIND_NODE of our own key to a peer identify reported as a server, or to a
    /// questionable contact: its answer lets it into (or keeps it in) the table.
    Admit,
}

/// One of our requests in flight.
#[derive(Clone, Debug)]
struct Asked {
    peer: PeerInfo,
    purpose: Purpose,
    /// The message type asked, which the reply must carry.
    kind: wire::MessageType,
}

/// A sans-IO node of IPFS's Kademlia DHT, generic over its store and validator.
#[derive(Debug)]
pub struct Node<S: Store, V: Validator = Namespaces> {
    config: Config,
    own: Key,
    rng: ChaCha8Rng,
    store: S,
    validator: V,
    table: RoutingTable<PeerInfo, Defense>,
    requests: RequestTable<Asked, ()>,
    /// Numbers our outbound streams (and names them to the request table).
    next_stream: u32,
    queries: BTreeMap<QueryId, Query>,
    next_query: u64,
    outputs: VecDeque<Output<PeerInfo>>,
    events: VecDeque<Event<Outcome>>,
    /// Keys of the peers with an open connection (FIND_NODE answers mark them
    /// CONNECTED): 32 bytes each, where a PeerId takes 44, for the many connections a
    /// busy node holds. Looked up for every peer of every reply: a hash set, where a
    /// B-tree compares 32-byte keys some 18 times a lookup.
    connected: HashSet<Key, BuildHasherDefault<PointHasher>>,
    /// Peers sent an admitting FIND_NODE not answered yet: one at a time each.
    admitting: BTreeSet<PeerId>,
    /// `now` and the wall-clock time it stands for: store deadlines are wall time.
    anchor: (Instant, UnixMillis),
    maintenance: maintain::Maintenance,
}

impl<S: Store> Node<S, Namespaces> {
    /// A node with the built-in validator (`/pk`, others refused).
    pub fn new(config: Config, store: S, now: Instant, wall: UnixMillis) -> Self {
        Node::with_validator(config, store, Namespaces::default(), now, wall)
    }
}

impl<S: Store, V: Validator> Node<S, V> {
    /// A node validating records with `validator`.
    pub fn with_validator(
        config: Config,
        store: S,
        validator: V,
        now: Instant,
        wall: UnixMillis,
    ) -> Self {
        let own = config.peer_id.key();
        let table = RoutingTable::with_policy(
            own,
            config.k,
            config.questionable_after,
            config.max_failures,
            now,
            config.defense,
        );
        Node {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            own,
            store,
            validator,
            table,
            requests: RequestTable::new(),
            next_stream: 0,
            queries: BTreeMap::new(),
            next_query: 0,
            outputs: VecDeque::new(),
            events: VecDeque::new(),
            connected: HashSet::default(),
            admitting: BTreeSet::new(),
            anchor: (now, wall),
            maintenance: maintain::Maintenance::new(now, &config),
            config,
        }
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> &PeerId {
        &self.config.peer_id
    }

    /// This node as others see it: its PeerId and listen addresses.
    pub fn local_peer(&self) -> PeerInfo {
        PeerInfo::new(
            self.config.peer_id.clone(),
            self.config.listen_addrs.iter().cloned(),
        )
    }

    /// True in server mode.
    pub fn is_server(&self) -> bool {
        self.config.mode == Mode::Server
    }

    /// The protocols identify should list for this node: [`KAD_PROTOCOL`] in server
    /// mode only, so that clients never enter others' tables.
    pub fn protocols(&self) -> Vec<String> {
        if self.is_server() {
            vec![KAD_PROTOCOL.to_string()]
        } else {
            Vec::new()
        }
    }

    /// Switches between server and client mode.
    pub fn set_mode(&mut self, mode: Mode) {
        self.config.mode = mode;
    }

    /// Replaces the addresses we announce (in ADD_PROVIDER): a transport that learns
    /// its public address after the start (two peers observed it) sets it here.
    pub fn set_listen_addrs(&mut self, addrs: Vec<multiaddr::Multiaddr>) {
        self.config.listen_addrs = addrs;
    }

    /// The routing table.
    pub fn table(&self) -> &RoutingTable<PeerInfo, Defense> {
        &self.table
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Requests in flight.
    pub fn requests_in_flight(&self) -> usize {
        self.requests.len()
    }

    /// Queries running (the application's and the node's own refreshes).
    pub fn queries_running(&self) -> usize {
        self.queries.len()
    }

    /// Wall-clock time at `now`.
    fn wall(&self, now: Instant) -> UnixMillis {
        let since = now.saturating_duration_since(self.anchor.0).as_millis();
        self.anchor
            .1
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }

    /// Opens a stream to `peer` with `msg`, recorded as in flight for `purpose`.
    fn send_request(
        &mut self,
        now: Instant,
        peer: PeerInfo,
        msg: &Message,
        purpose: Purpose,
    ) -> StreamId {
        let next = &mut self.next_stream;
        let tid = self.requests.unused_id(|| {
            *next = next.wrapping_add(1);
            next.to_be_bytes()
        });
        let stream = StreamId(u64::from(u32::from_be_bytes(tid)));
        let deadline = now + self.config.request_timeout;
        let kind = msg.kind().unwrap_or(wire::MessageType::Ping);
        self.requests.insert(
            tid,
            (),
            Asked {
                peer: peer.clone(),
                purpose,
                kind,
            },
            now,
            deadline,
        );
        self.outputs.push_back(Output::Request {
            to: peer,
            stream,
            payload: wire::encode_frame(msg),
            deadline,
        });
        stream
    }

    /// Opens a stream for a message with no reply (ADD_PROVIDER): nothing is kept in
    /// flight, and whatever the transport reports on it is ignored.
    fn send_unanswered(&mut self, now: Instant, peer: PeerInfo, msg: &Message) {
        self.next_stream = self.next_stream.wrapping_add(1);
        self.outputs.push_back(Output::Request {
            to: peer,
            stream: StreamId(u64::from(self.next_stream)),
            payload: wire::encode_frame(msg),
            deadline: now + self.config.request_timeout,
        });
    }

    /// The reply on stream `stream` (`None`: it failed), matched to its request.
    fn on_reply(&mut self, now: Instant, stream: StreamId, bytes: Option<&[u8]>) {
        let Ok(t) = u32::try_from(stream.0) else {
            return;
        };
        let Some(pending) = self.requests.take_reply(now, &t.to_be_bytes(), &()) else {
            return;
        };
        let asked = pending.request;
        let reply = bytes
            .and_then(|b| wire::decode_frame(b, self.config.max_reply_bytes).ok())
            .filter(|m| m.kind() == Some(asked.kind));
        if reply.is_some() {
            self.table
                .note_rtt(&asked.peer, now.saturating_duration_since(pending.sent));
        }
        self.on_answer(now, asked, reply);
    }

    /// A request of ours ended: answered with `reply`, or failed (`None`).
    fn on_answer(&mut self, now: Instant, asked: Asked, reply: Option<Message>) {
        match reply {
            // Only servers answer: whoever answered a kad request may be routed to,
            // if its bucket has room. No replacement cache (go-libp2p-kad-dht keeps
            // none; rust-libp2p one pending entry per bucket): a full bucket turns a
            // newcomer away, and a contact that fails twice leaves room for the next
            // server that answers. A cache of k per bucket held more contacts than
            // the buckets themselves, all of them unused.
            Some(_) => {
                let room = match self.table.get(asked.peer.key()) {
                    Some(_) => Room::Free,
                    None => self.room_for(asked.peer.key()),
                };
                if let Room::Evict(crowded) = room {
                    self.table.remove(&crowded);
                }
                if !matches!(room, Room::None) {
                    self.table.on_response(asked.peer.clone(), now);
                }
            }
            None => {
                self.table.on_timeout_of(&asked.peer, now);
            }
        }
        match asked.purpose {
            Purpose::Admit => {
                self.admitting.remove(asked.peer.id());
            }
            Purpose::Lookup { query, path } => {
                self.on_lookup_answer(now, query, path, &asked.peer, reply)
            }
            Purpose::Put { query } => self.on_put_answer(now, query, reply),
        }
    }

    fn next_query_id(&mut self) -> QueryId {
        self.next_query += 1;
        QueryId(self.next_query)
    }
}

impl<S: Store, V: Validator> Overlay for Node<S, V> {
    type Peer = PeerInfo;
    type Request = Request;
    type Outcome = Outcome;
    type RequestError = RequestError;

    fn handle_input(&mut self, now: Instant, input: Input<'_, PeerInfo>) {
        match input {
            Input::StreamRequest {
                from,
                stream,
                bytes,
            } => self.serve(now, &from, stream, bytes),
            Input::StreamReply { stream, bytes } => self.on_reply(now, stream, Some(bytes)),
            Input::StreamFailed { stream } => self.on_reply(now, stream, None),
            Input::Connected { peer } => {
                self.connected.insert(*peer.key());
            }
            Input::Disconnected { peer } => {
                self.connected.remove(peer.key());
            }
            Input::Identified { peer, protocols } => self.on_identified(now, peer, protocols),
            // Datagrams are not this protocol's.
            Input::Datagram { .. } => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        while let Some(p) = self.requests.pop_expired(now) {
            self.on_answer(now, p.request, None);
        }
        self.housekeeping(now);
    }

    fn start(&mut self, now: Instant, request: Request) -> Result<QueryId, RequestError> {
        self.start_query(now, request)
    }

    fn poll_output(&mut self) -> Option<Output<PeerInfo>> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let next = self.maintenance.next_run();
        Some(self.requests.next_deadline().map_or(next, |d| d.min(next)))
    }

    fn poll_event(&mut self) -> Option<Event<Outcome>> {
        self.events.pop_front()
    }

    fn handle_wall_clock(&mut self, now: Instant, wall: UnixMillis) {
        self.anchor = (now, wall);
    }
}

/// Hashes a keyspace point by its first 8 bytes: points are SHA-256 digests, so those
/// are as good a hash as any (and the same in every run); the set it serves is only
/// ever looked up, never iterated.
#[derive(Default)]
struct PointHasher(u64);

impl Hasher for PointHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A point hashes as its length, then its bytes: their first 8 replace the rest.
        for b in bytes.iter().take(8) {
            self.0 = self.0 << 8 | u64::from(*b);
        }
    }
}
