//! The Chord node: its state, its outputs, and how it serves the queries it receives.
//!
//! Commands and lookups live in `ops.rs`; `stabilize`, `notify`, `fix_fingers`,
//! `check_predecessor`, replication and leaving in `maintenance.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_core::kernel::RequestTable;
use dht_core::krpc::code;
use dht_core::{Id, Store, Transmit};
use dht_core::{StoredItem, UnixMillis};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::lookup::{Op, OpId};
use crate::request::Event;
use crate::ring::{self, M};
use crate::wire::{self, Body, Peer, Query, Reply};

/// Counters since start.
///
/// Not [`dht_core::NodeStats`]: most of that is Mainline's (counts by KRPC method,
/// tokens, storage refusals by reason, rate limits), which Chord has none of. The
/// counters that mean the same in both carry the same names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams_in: u64,
    /// Datagrams queued for sending.
    pub datagrams_out: u64,
    /// Datagrams that did not decode.
    pub malformed: u64,
    /// Replies under no live transaction id or from an address we did not ask.
    pub unexpected_replies: u64,
    /// Queries answered (including with an error).
    pub queries_answered: u64,
    /// Requests that got no reply in time.
    pub timeouts: u64,
    /// Replies from an id other than the one asked at that address (a node restarted
    /// there with a new id), taken as the asked node's failure.
    pub replaced: u64,
}

/// What a request in flight waits for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Waiting {
    /// A `find_successor` step of op `op`, to the node `node` (unknown for a bootstrap address).
    Step { op: OpId, node: Option<Id> },
    /// A `get` or `put` of op `op` to the `index`-th node of its successor list.
    Fetch { op: OpId },
    /// `stabilize`'s `get_predecessor` to our successor.
    Stabilize { successor: Id },
    /// A lookup's `get_predecessor` to its closest responder, for its successor list.
    Span { op: OpId },
    /// `check_predecessor`'s ping.
    CheckPredecessor { predecessor: Id },
}

/// A request of ours in flight: the kernel's record, with what it waits for.
pub(crate) type Pending = dht_core::kernel::Pending<Waiting>;

/// One Chord node as a state machine.
///
/// Inputs: [`ChordNode::handle_datagram`], [`ChordNode::handle_timeout`] and the
/// commands ([`ChordNode::join`], [`ChordNode::find_successor`], [`ChordNode::get`],
/// [`ChordNode::put`], [`ChordNode::leave`]), each stamped with the caller's `now`.
/// Outputs, drained after every input in this order: [`ChordNode::poll_transmit`],
/// [`ChordNode::poll_timeout`], [`ChordNode::poll_event`]. Time only moves forward; an
/// early or extra `handle_timeout` is harmless.
pub struct ChordNode<S: Store> {
    pub(crate) config: Config,
    pub(crate) id: Id,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) store: S,
    /// Keys held (owned or replicas): the store has no listing, and replication and
    /// key transfer must know what to send.
    pub(crate) keys: BTreeSet<Id>,
    pub(crate) predecessor: Option<Peer>,
    /// The next r nodes clockwise; empty means this node is its own successor.
    pub(crate) successors: Vec<Peer>,
    /// Finger `i` (the successor of `id + 2^i`) where a lookup set it; fingers whose
    /// start lies before the successor are the successor and are not kept.
    pub(crate) fingers: BTreeMap<u8, Peer>,
    pub(crate) next_finger: usize,
    /// Finger passes completed (each ends with a self-check lookup).
    pub(crate) finger_passes: u32,
    /// True once the current pass asked for a finger.
    pub(crate) pass_begun: bool,
    pub(crate) joined: bool,
    pub(crate) left: bool,
    /// Our requests in flight: the kernel's request table (4-byte ids, replies only
    /// from the address asked, deadlines).
    pub(crate) pending: RequestTable<Waiting>,
    pub(crate) ops: BTreeMap<OpId, Op>,
    pub(crate) next_op: u64,
    pub(crate) next_stabilize: Instant,
    pub(crate) next_fix_fingers: Instant,
    pub(crate) next_check_predecessor: Instant,
    pub(crate) stabilizing: bool,
    /// All r successors failed and the successor is a finger taken in their place,
    /// not yet confirmed by its predecessor pointer (see `stabilize`): live nodes may
    /// lie between, so this node does not claim to know a key's successor.
    pub(crate) rejoining: bool,
    pub(crate) fixing: Option<OpId>,
    pub(crate) checking: bool,
    /// Replica set and predecessor when owned keys were last pushed to the successors.
    pub(crate) replicated_to: Vec<Id>,
    pub(crate) replicated_since: Option<Id>,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) stats: NodeStats,
    /// Print each command's lookup path to stderr (`DHT_CHORD_TRACE`, see `trace.rs`).
    pub(crate) trace: bool,
}

impl<S: Store> std::fmt::Debug for ChordNode<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChordNode")
            .field("id", &self.id)
            .field("successor", &self.successor())
            .field("predecessor", &self.predecessor)
            .field("joined", &self.joined)
            .field("stabilizing", &self.stabilizing)
            .field("fixing", &self.fixing)
            .field("pending", &self.pending.len())
            .field("ops", &self.ops.len())
            .finish_non_exhaustive()
    }
}

/// Stored items never expire: the paper's store has no lifetimes, and every
/// experiment here ends long before any lifetime would matter.
pub(crate) const NEVER: UnixMillis = UnixMillis::MAX;

impl<S: Store> ChordNode<S> {
    /// A node that is not on a ring yet: call [`ChordNode::join`]. Its id is drawn
    /// from its seeded RNG (SHA-1 is uniform, so a random id is what hashing the
    /// address gives, without tying ids to the simulator's addresses).
    pub fn new(config: Config, store: S, now: Instant) -> ChordNode<S> {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let id = Id::random(&mut rng);
        ChordNode::with_id(config, store, now, id)
    }

    /// Like [`ChordNode::new`] with a chosen id (virtual nodes, tests).
    pub fn with_id(config: Config, store: S, now: Instant, id: Id) -> ChordNode<S> {
        let rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0xc407_d000_0000_0001);
        ChordNode {
            config,
            id,
            rng,
            store,
            keys: BTreeSet::new(),
            predecessor: None,
            successors: Vec::new(),
            fingers: BTreeMap::new(),
            next_finger: 0,
            finger_passes: 0,
            pass_begun: false,
            joined: false,
            left: false,
            pending: RequestTable::new(),
            ops: BTreeMap::new(),
            next_op: 0,
            next_stabilize: now,
            next_fix_fingers: now,
            next_check_predecessor: now,
            stabilizing: false,
            rejoining: false,
            fixing: None,
            checking: false,
            replicated_to: Vec::new(),
            replicated_since: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: NodeStats::default(),
            trace: crate::trace::enabled(),
        }
    }

    // ---- getters ----

    /// This node's id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// This node as others name it.
    pub fn peer(&self) -> Peer {
        Peer {
            id: self.id,
            addr: self.config.addr,
        }
    }

    /// The configuration the node was made with (it never changes it).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The next node clockwise (this node itself in a ring of one).
    pub fn successor(&self) -> Peer {
        self.successors
            .first()
            .copied()
            .unwrap_or_else(|| self.peer())
    }

    /// The successor list (at most r nodes, never this node).
    pub fn successor_list(&self) -> &[Peer] {
        &self.successors
    }

    /// The predecessor, if known.
    pub fn predecessor(&self) -> Option<Peer> {
        self.predecessor
    }

    /// Finger `i` (`i` < 160): the node this node takes for the successor of `id + 2^i`.
    pub fn finger(&self, i: usize) -> Peer {
        let succ = self.successor();
        if ring::in_half_open(&ring::finger_start(&self.id, i), &self.id, &succ.id) {
            return succ;
        }
        // A finger never set yet is taken to be the farthest lower one: still correct
        // routing (it precedes the true finger), only slower.
        (0..=i)
            .rev()
            .find_map(|j| self.fingers.get(&(j as u8)).copied())
            .unwrap_or(succ)
    }

    /// True once a join finished (or the node created a ring), until it leaves.
    pub fn is_joined(&self) -> bool {
        self.joined && !self.left
    }

    /// True once the node sits settled on its ring as far as it can see: joined, its
    /// predecessor known, its successor list full (r nodes) or holding every other
    /// node (it reaches round to the predecessor), and one pass of `fix_fingers` (with
    /// its self-check) done. A ring whose members are all settled routes lookups to
    /// the true successors; puts made before land where later gets may not look.
    /// A node alone on the ring it created is settled.
    pub fn is_settled(&self) -> bool {
        let alone = self.successors.is_empty() && self.predecessor.is_none();
        let full = self.successors.len() >= self.config.successors
            || self
                .predecessor
                .is_some_and(|p| self.successors.iter().any(|s| s.id == p.id));
        // A pass of fix_fingers, or none needed: when even the farthest finger's start
        // lies before the successor, every finger is the successor (fix_fingers counts
        // a pass only when it crosses finger 0 between calls, which a pass of no
        // lookups need not do).
        let succ = self.successor();
        let all_successor =
            ring::in_half_open(&ring::finger_start(&self.id, M - 1), &self.id, &succ.id);
        let fingers = self.finger_passes >= 1 || all_successor;
        let placed = self.predecessor.is_some() && full && fingers;
        self.is_joined() && (alone || placed)
    }

    /// The store holding this node's values, owned and replicas. Read-only: only the
    /// protocol writes it (`put`, replication, key transfer), so that [`ChordNode::keys`]
    /// stays true.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Keys this node holds, as owner or replica.
    pub fn keys(&self) -> &BTreeSet<Id> {
        &self.keys
    }

    /// Counters since the node was made.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// Commands and internal lookups in progress.
    pub fn ops_in_progress(&self) -> usize {
        self.ops.len()
    }

    /// Every node this node routes by: successors, fingers and predecessor.
    pub(crate) fn known(&self) -> impl Iterator<Item = &Peer> {
        self.successors
            .iter()
            .chain(self.fingers.values())
            .chain(self.predecessor.iter())
    }

    /// The known node with `id`, if any.
    pub(crate) fn known_peer(&self, id: &Id) -> Option<Peer> {
        self.known().find(|p| p.id == *id).copied()
    }

    /// The nodes most closely preceding `target`, closest first.
    pub(crate) fn closest_preceding(&self, target: &Id, max: usize) -> Vec<Peer> {
        let ids: Vec<Id> = self.known().map(|p| p.id).collect();
        ring::closest_preceding(&self.id, target, ids.iter(), max)
            .into_iter()
            .filter_map(|id| self.known_peer(&id))
            .collect()
    }

    // ---- outputs ----

    /// The next datagram to send, to its [`Transmit::to`] address; drain until `None`
    /// after every input.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When `handle_timeout` should next be called; `None` after leaving.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.left {
            return None;
        }
        let request = self.pending.next_deadline();
        if !self.joined {
            return request;
        }
        let housekeeping = self
            .next_stabilize
            .min(self.next_fix_fingers)
            .min(self.next_check_predecessor);
        Some(request.map_or(housekeeping, |r| r.min(housekeeping)))
    }

    /// The next event: a command that ended ([`Event::QueryDone`]), with its
    /// [`crate::Outcome`] and figures.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ---- inputs ----

    /// Timers due at `now`: request timeouts, then housekeeping.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.left {
            return;
        }
        while let Some(p) = self.pending.pop_expired(now) {
            self.stats.timeouts += 1;
            self.on_timeout(now, p);
        }
        if self.joined {
            self.housekeeping(now);
        }
    }

    /// A datagram from `from`. `peer_key` is the sender's verified key on
    /// authenticated transports; Chord ids are not bound to keys, so it is unused.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        peer_key: Option<&[u8; 32]>,
        bytes: &[u8],
    ) {
        let _ = peer_key;
        self.stats.datagrams_in += 1;
        if self.left || from.port() == 0 {
            return;
        }
        let msg = match wire::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                if let Some(t) = e.t {
                    self.send_error(from, &t, e.code, e.reason);
                }
                return;
            }
        };
        match msg.body {
            Body::Query { id, query } => {
                self.serve(now, from, &msg.t, Peer { id, addr: from }, query)
            }
            Body::Reply(reply) => {
                let Some(p) = self.take_pending(now, &msg.t, from) else {
                    return;
                };
                if self.asked_id(&p).is_some_and(|id| id != reply.id) {
                    // Another node answers at that address now (the one we knew was
                    // restarted there with a new id): the node we asked is gone, and
                    // trusting its successor's view of the ring would misroute.
                    self.stats.replaced += 1;
                    return self.on_timeout(now, p);
                }
                self.on_reply(now, p, Some(reply));
            }
            Body::Error(..) => {
                let Some(p) = self.take_pending(now, &msg.t, from) else {
                    return;
                };
                // An error is an answer: the node lives but did not do what we asked.
                self.on_reply(now, p, None);
            }
        }
    }

    /// The pending request answered by a message with transaction id `t` from `from`.
    fn take_pending(&mut self, now: Instant, t: &[u8], from: SocketAddr) -> Option<Pending> {
        let p = self.pending.take_reply(now, t, &from);
        if p.is_none() {
            self.stats.unexpected_replies += 1;
        }
        p
    }

    // ---- sending ----

    pub(crate) fn send_query(
        &mut self,
        now: Instant,
        to: SocketAddr,
        query: &Query,
        waiting: Option<Waiting>,
    ) {
        let rng = &mut self.rng;
        let tid = self.pending.unused_id(|| {
            let mut t = [0u8; 4];
            rng.fill_bytes(&mut t);
            t
        });
        let mut payload = Vec::with_capacity(128);
        wire::encode_query(&mut payload, &tid, &self.id, query);
        self.push(to, payload);
        if let Some(waiting) = waiting {
            let deadline = now + self.config.request_timeout;
            self.pending.insert(tid, to, waiting, now, deadline);
        }
    }

    fn send_error(&mut self, to: SocketAddr, t: &[u8], code: i64, reason: &str) {
        let mut payload = Vec::with_capacity(64);
        wire::encode_error(&mut payload, t, code, reason);
        self.push(to, payload);
    }

    fn push(&mut self, to: SocketAddr, payload: Vec<u8>) {
        self.stats.datagrams_out += 1;
        self.transmits.push_back(Transmit { to, payload });
    }

    // ---- serving ----

    fn serve(&mut self, now: Instant, from: SocketAddr, t: &[u8], sender: Peer, query: Query) {
        // A node that has not joined has no ring to answer for.
        if !self.joined {
            return;
        }
        self.stats.queries_answered += 1;
        let mut reply = Reply {
            id: self.id,
            ..Reply::default()
        };
        match query {
            Query::Ping => {}
            Query::Notify => self.on_notify(now, sender),
            Query::FindSuccessor { target } => {
                let succ = self.successor();
                // No successor but fingers: every successor failed, and until
                // stabilize finds the next live node this node cannot place a key.
                let orphan = self.successors.is_empty() && !self.fingers.is_empty();
                if ring::in_half_open(&target, &self.id, &succ.id) && !self.rejoining && !orphan {
                    reply.found = true;
                    reply.nodes = self.successor_list_or_self();
                } else {
                    reply.nodes = self.closest_preceding(&target, self.config.fallbacks);
                }
            }
            Query::GetPredecessor => {
                reply.predecessor = self.predecessor;
                reply.successors = self.successor_list_or_self();
            }
            Query::Get { target } => match self.store.get_item(&target) {
                Ok(item) => reply.v = item.map(|i| i.item.into_value()),
                Err(e) => return self.send_error(from, t, code::SERVER, &e.to_string()),
            },
            Query::Put { v, replica } => {
                if let Err(e) = self.store_value(now, v, replica) {
                    return self.send_error(from, t, code::SERVER, &e.to_string());
                }
            }
            Query::Leave {
                predecessor,
                successors,
            } => self.on_leave(now, sender, predecessor, successors),
        }
        let mut payload = Vec::with_capacity(256);
        wire::encode_reply(&mut payload, t, &reply);
        self.push(from, payload);
    }

    /// The successor list, or this node alone in a ring of one.
    pub(crate) fn successor_list_or_self(&self) -> Vec<Peer> {
        if self.successors.is_empty() {
            vec![self.peer()]
        } else {
            self.successors.clone()
        }
    }

    /// Keeps `v` under SHA-1(v); the key's owner copies it to its successor list.
    pub(crate) fn store_value(
        &mut self,
        now: Instant,
        v: Vec<u8>,
        replica: bool,
    ) -> Result<(), dht_core::StoreError> {
        let target = Id::sha1(&v);
        if !replica && self.owns(&target) {
            let copies = self.config.successors.saturating_sub(1);
            let to: Vec<SocketAddr> = self
                .successors
                .iter()
                .take(copies)
                .map(|p| p.addr)
                .collect();
            for addr in to {
                let q = Query::Put {
                    v: v.clone(),
                    replica: true,
                };
                self.send_query(now, addr, &q, None);
            }
        }
        self.store.put_item(StoredItem {
            target,
            item: dht_core::Item::Immutable { value: v },
            expires_at: NEVER,
        })?;
        self.keys.insert(target);
        Ok(())
    }

    /// Is this node the key's successor, as far as it knows?
    pub(crate) fn owns(&self, key: &Id) -> bool {
        match &self.predecessor {
            Some(p) => ring::in_half_open(key, &p.id, &self.id),
            // Without a predecessor a node cannot tell; taking every key as its own
            // errs towards more copies, never fewer.
            None => true,
        }
    }

    /// Forgets a node that failed to answer: it leaves every list and finger.
    pub(crate) fn forget(&mut self, id: &Id) {
        self.successors.retain(|p| p.id != *id);
        self.fingers.retain(|_, p| p.id != *id);
        if self.predecessor.is_some_and(|p| p.id == *id) {
            self.predecessor = None;
        }
    }

    /// Sets finger `i` and every later finger whose start `s` also succeeds.
    pub(crate) fn set_fingers_from(&mut self, i: usize, s: Peer) -> usize {
        let mut j = i;
        while j < M && ring::in_half_open(&ring::finger_start(&self.id, j), &self.id, &s.id) {
            self.fingers.insert(j as u8, s);
            j += 1;
        }
        if j == i {
            // `s` precedes the finger's start (a stale answer): keep it anyway, as
            // routing through a preceding node is still correct, and move on.
            self.fingers.insert(i as u8, s);
            j += 1;
        }
        j
    }

    /// A random delay around `mean`: uniform in [0.5, 1.5] × mean.
    pub(crate) fn jitter(&mut self, mean: Duration) -> Duration {
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        mean.mul_f64(0.5 + u)
    }
}
