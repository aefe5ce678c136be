//! The virtual network and its event loop, written once for every overlay.
//!
//! [`Network`] carries any [`dht_core::Overlay`] whose sim-side glue implements
//! [`SimOverlay`]: Kademlia ([`crate::Sim`]), Chord ([`crate::chord::ChordSim`]) and
//! IPFS's Kademlia ([`crate::ipfs::IpfsSim`]) today. Scheduling, the per-link latency
//! and loss model, node bookkeeping, datagram and stream delivery ([`stream`]), command
//! tracking and the fingerprint of the run live here and nowhere else; an overlay adds
//! only how its nodes are made, addressed and joined, and what the simulator plays or
//! watches for it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dht_core::kernel::Key;
use dht_core::{Event, Input, Output, Overlay, QueryDone, QueryId, UnixMillis};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::address::{AddressBook, AddressPlan, SYBIL_BIT};
use crate::rng::{mix64, unit};

mod fingerprint;
mod queue;
mod stream;

use fingerprint::Fingerprint;
use queue::RadixQueue;

/// Wall-clock time (ms since the Unix epoch) the simulation starts at. Fixed, so that
/// expiry deadlines in the stores do not depend on when the simulation is run.
pub const WALL0: u64 = 1_800_000_000_000;

/// Largest datagram the virtual network carries (IPv6 over Ethernet, as PROTOCOL-NOTES
/// says nobody may exceed); bigger ones are dropped and counted as oversize.
pub const MTU: usize = 1452;

const NO_TIMER: u64 = u64::MAX;

/// What the simulator needs of an overlay beyond [`Overlay`]: how to make, address and
/// join its nodes, and how to judge a lookup (for [`crate::churn`]). [`Overlay`] says
/// how a node is driven; none of this is the node's business, so it stays here.
pub trait SimOverlay: Overlay + Sized {
    /// The overlay's name in reports: `kademlia`, `chord`, `ipfs`.
    const NAME: &'static str;
    /// The keyspace lookups are judged in: [`dht_core::Id`] for Kademlia and Chord,
    /// 256-bit keys for IPFS.
    type Key: Key;
    /// How the network finds a node from one of its peers.
    type Book: AddressBook<Peer = Self::Peer> + std::fmt::Debug;
    /// What the simulator keeps for this overlay beside its nodes: peers it plays
    /// itself, what it watches on the wire (`()` for none).
    type World: Default + std::fmt::Debug;

    /// The address book of a network configured by `cfg`.
    fn book(cfg: &SimConfig) -> Self::Book;
    /// A node at `peer`, created at `now` (wall clock `wall`), with its own `seed`.
    fn create(cfg: &SimConfig, peer: Self::Peer, seed: u64, now: Instant, wall: UnixMillis)
        -> Self;
    /// The node's id, in the keyspace lookups are judged in.
    fn id(&self) -> Self::Key;
    /// The command that makes a new node join through the members `via`.
    fn join_request(via: Vec<Self::Peer>) -> Self::Request;
    /// The command that looks up the nodes responsible for `target`.
    fn lookup_request(target: Self::Key) -> Self::Request;
    /// The ids a finished lookup returned, best first (none for any other outcome).
    fn lookup_result(outcome: &Self::Outcome) -> Vec<Self::Key>;
    /// Did a lookup of `target` from node `src` that returned `got` find the node
    /// responsible for `target` among the nodes alive now?
    fn judge_lookup(net: &Network<Self>, src: usize, target: &Self::Key, got: &[Self::Key])
        -> bool;
    /// Builds the network of `net.config().nodes` nodes through the protocol's own
    /// joins, then runs it for `settle`; calls `progress` with the nodes created.
    fn join_all(net: &mut Network<Self>, progress: &mut dyn FnMut(usize));

    /// Node `from` sends `payload` to event-queue index `to` (before the loss draw).
    fn on_send(net: &mut Network<Self>, from: u32, to: u32, payload: &[u8]) {
        let _ = (net, from, to, payload);
    }
    /// `payload` from `from` reaches live node `to`, which handles it next.
    fn on_deliver(net: &mut Network<Self>, from: u32, to: u32, payload: &[u8]) {
        let _ = (net, from, to, payload);
    }
    /// `payload` from `from` reaches `played` (its index without [`SYBIL_BIT`]), a
    /// peer the simulator plays itself (Kademlia's Sybils). None by default.
    fn deliver_to_played(net: &mut Network<Self>, from: u32, played: usize, payload: &[u8]) {
        let _ = (net, from, played, payload);
    }
    /// The protocols the node's handshake (libp2p's identify) lists, handed to each
    /// peer it connects to in [`Input::Identified`]. None by default: datagram
    /// overlays open no connections.
    fn protocols(&self) -> Vec<String> {
        Vec::new()
    }
}

/// How the virtual network and its nodes are set up.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// Seed of everything: node RNGs, link latencies, losses, choices of the driver.
    pub seed: u64,
    /// Mean one-way latency in milliseconds (see [`Network::link_delay`] for the distribution).
    pub latency_ms: f64,
    /// Probability that a datagram is dropped, drawn independently per datagram.
    pub loss: f64,
    /// Bucket size and replication factor of every node (Chord: r, the successor-list
    /// length and copies per key).
    pub k: usize,
    /// Requests in flight per lookup.
    pub alpha: usize,
    /// Nodes started first, bootstrapping from each other; every later node
    /// bootstraps from them.
    pub seed_nodes: usize,
    /// Time between two nodes' arrivals.
    pub join_interval: Duration,
    /// Time allowed after the last arrival for housekeeping to verify new contacts.
    pub settle: Duration,
    /// `Config::disjoint_paths` of every node: paths of get and get_peers lookups.
    pub disjoint_paths: usize,
    /// Sybil nodes (see [`crate::Sim::add_sybil`]) at random ids that arrive among the
    /// honest nodes in [`Network::join_all`], at random arrival slots after the seed nodes.
    pub sybils: usize,
    /// Where nodes and Sybils sit, and so which per-address defenses apply.
    pub address_plan: AddressPlan,
    /// BEP 42 on (Kademlia): every honest node takes an id derived from its address
    /// and refuses others whose ids do not fit theirs (`Bep42Mode::Enforce`). Off:
    /// dht-core's defaults (random ids, `Bep42Mode::Prefer`).
    pub bep42: bool,
    /// Round trips a new connection's handshake takes before its first stream (stream
    /// overlays only): 3, for TCP, then noise and yamux each agreed by
    /// multistream-select.
    pub handshake_rtts: u32,
    /// A connection with no stream activity for this long closes (stream overlays
    /// only): 60 s.
    pub idle_timeout: Duration,
    /// Kademlia nodes hand stored items to newcomers closer to them
    /// (`dht_core::Config::handover`): dht-core's default, off.
    pub handover: bool,
}

impl SimConfig {
    /// Defaults for `nodes` nodes and `seed`: 50 ms mean latency, no loss, K = 8,
    /// dht-core's default alpha (`Config::default().alpha`: the simulator measures what
    /// a node runs with), 4 seed nodes, one arrival per millisecond, 60 s to settle,
    /// every node on a public /24 of its own; for streams, 3 round trips of handshake
    /// and 60 s before an idle connection closes.
    pub fn new(nodes: usize, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            seed,
            latency_ms: 50.0,
            loss: 0.0,
            k: 8,
            alpha: dht_core::Config::default().alpha,
            seed_nodes: 4,
            join_interval: Duration::from_millis(1),
            settle: Duration::from_secs(60),
            disjoint_paths: 1,
            sybils: 0,
            address_plan: AddressPlan::Public {
                sybil_prefixes: None,
            },
            bep42: false,
            handshake_rtts: 3,
            idle_timeout: Duration::from_secs(60),
            handover: dht_core::Config::default().handover,
        }
    }
}

/// Counters of the virtual network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to a live node.
    pub delivered: u64,
    /// Their bytes.
    pub bytes_delivered: u64,
    /// Datagrams dropped by the loss model.
    pub lost: u64,
    /// Datagrams that arrived at a dead node.
    pub to_dead: u64,
    /// Datagrams over [`MTU`] (dropped).
    pub oversize: u64,
    /// Datagrams to an address no node has (dropped).
    pub unroutable: u64,
    /// Of the delivered datagrams, those handed to a Sybil.
    pub to_sybil: u64,
    /// Requests read by a live node on an inbound stream ([`Input::StreamRequest`]).
    pub stream_requests: u64,
    /// Replies read by the asker ([`Input::StreamReply`]).
    pub stream_replies: u64,
    /// Outbound streams that ended without a reply ([`Input::StreamFailed`]): a dial to
    /// a dead or unknown peer, a reset, or the deadline passing (a lost request or
    /// reply, a dead or silent peer).
    pub streams_failed: u64,
    /// Stream messages dropped by the loss model (counted in `lost` too).
    pub stream_lost: u64,
}

enum What {
    Deliver {
        from: u32,
        to: u32,
        payload: Vec<u8>,
    },
    Stream(stream::Delivery),
}

/// A node's wake-up is queued apart from the datagrams and stream events
/// (`Network::wakes`): every node has one pending (a million in the largest runs)
/// while the messages in flight are some tens of thousands, so in one queue every
/// delivery paid for the timers' numbers. Both queues are ordered by (time, sequence
/// number) from the same counter, so taking the earlier of the two heads replays the
/// order of one queue exactly; the sequence number breaks ties in insertion order,
/// which is what makes runs replay.
type Wake = u32;

/// N overlay nodes over a virtual network on virtual time.
///
/// Time is a count of nanoseconds since a base `Instant` captured once in
/// [`Network::new`]; it jumps from one event to the next and never depends on the real
/// clock. Events are ordered by (time, sequence number), and all randomness comes from
/// ChaCha8 generators derived from [`SimConfig::seed`], so one seed gives one run.
pub struct Network<N: SimOverlay> {
    cfg: SimConfig,
    base: Instant,
    now: u64,
    rng: ChaCha8Rng,
    nodes: Vec<N>,
    alive: Vec<bool>,
    timer_at: Vec<u64>,
    /// Datagrams and stream events.
    heap: RadixQueue<What>,
    /// Nodes' wake-ups: the node's index.
    wakes: RadixQueue<Wake>,
    seq: u64,
    tracked: BTreeSet<(u32, QueryId)>,
    done: BTreeMap<(u32, QueryId), QueryDone<N::Outcome>>,
    hasher: Fingerprint,
    stats: NetStats,
    book: N::Book,
    world: N::World,
    streams: stream::Streams,
}

impl<N: SimOverlay> std::fmt::Debug for Network<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("overlay", &N::NAME)
            .field("nodes", &self.nodes.len())
            .field("now", &self.now())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<N: SimOverlay> Network<N> {
    /// An empty network; nodes arrive with [`Network::add_node`] or [`Network::join_all`].
    pub fn new(cfg: SimConfig) -> Network<N> {
        Network {
            base: Instant::now(),
            now: 0,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            nodes: Vec::with_capacity(cfg.nodes),
            alive: Vec::with_capacity(cfg.nodes),
            timer_at: Vec::with_capacity(cfg.nodes),
            heap: RadixQueue::default(),
            wakes: RadixQueue::default(),
            seq: 0,
            tracked: BTreeSet::new(),
            done: BTreeMap::new(),
            hasher: Fingerprint::default(),
            stats: NetStats::default(),
            book: N::book(&cfg),
            world: N::World::default(),
            streams: stream::Streams::default(),
            cfg,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Virtual time elapsed since the start.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    /// The virtual clock as the `Instant` handed to the nodes.
    pub fn now_instant(&self) -> Instant {
        self.base + self.now()
    }

    /// The driver's own seeded RNG (for picking sources and targets), so that
    /// choices made outside the simulator replay too.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Nodes created so far.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True before any node was created.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &N {
        &self.nodes[i]
    }

    /// Node `i`, mutable, for a test that feeds it an input or a command itself and
    /// reads its outputs itself: what it leaves unread goes on the wire when the
    /// network next drives it.
    pub fn node_mut(&mut self, i: usize) -> &mut N {
        &mut self.nodes[i]
    }

    /// Is node `i` alive (not killed, not left)?
    pub fn is_alive(&self, i: usize) -> bool {
        self.alive[i]
    }

    /// Indices of the live nodes.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.alive[i]).collect()
    }

    /// How peers address node `i` (see [`AddressPlan`] for `SocketAddr` overlays).
    pub fn addr(&self, i: usize) -> N::Peer {
        self.book.peer(i as u32)
    }

    /// Events scheduled and not yet due (stale timers and stream deadlines included).
    pub fn queued_events(&self) -> usize {
        self.heap.len() + self.wakes.len()
    }

    /// Network counters.
    pub fn net_stats(&self) -> NetStats {
        self.stats
    }

    /// SHA-1 (hex) over (time, source, destination, length, payload) of every datagram
    /// delivered so far, and of every stream delivery (a tag byte first; see
    /// the `stream` module) when there are any: two runs with equal hashes exchanged the same
    /// bytes at the same virtual times. A datagram overlay's hash is the one it had
    /// before streams were carried.
    pub fn event_hash(&self) -> String {
        self.hasher.hex()
    }

    /// The address book.
    pub(crate) fn book(&self) -> &N::Book {
        &self.book
    }

    /// The address book, mutable (to hand out the addresses of played peers).
    pub(crate) fn book_mut(&mut self) -> &mut N::Book {
        &mut self.book
    }

    /// What the simulator keeps for the overlay beside its nodes.
    pub(crate) fn world(&self) -> &N::World {
        &self.world
    }

    /// The world, mutable.
    pub(crate) fn world_mut(&mut self) -> &mut N::World {
        &mut self.world
    }

    /// The world, mutable, with the address book beside it (a played peer answers
    /// from its world and addresses from the book).
    pub(crate) fn world_with_book(&mut self) -> (&mut N::World, &N::Book) {
        (&mut self.world, &self.book)
    }

    /// The one-way delay of one datagram from `a` to `b`.
    ///
    /// Distribution, for a mean M = `latency_ms`: each unordered pair of nodes has a
    /// base latency drawn once, uniform in [0.2 M, 1.6 M] (a fixed hash of the seed
    /// and the pair, so it is the same both ways and for the whole run), and each
    /// datagram adds jitter uniform in [0, 0.2 M) from the simulator's RNG. The mean
    /// one-way delay is M and the mean round trip 2 M.
    pub fn link_delay(&mut self, a: u32, b: u32) -> Duration {
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let h = mix64(self.cfg.seed ^ mix64(((lo as u64) << 32) | hi as u64));
        let m = self.cfg.latency_ms * 1e6;
        let base = m * (0.2 + 1.4 * unit(h));
        let jitter = m * 0.2 * unit(self.rng.next_u64());
        Duration::from_nanos((base + jitter) as u64)
    }

    /// Creates node `i = len()` at the current virtual time, alive, with its own seed.
    pub fn add_node(&mut self) -> usize {
        self.add_node_with(N::create)
    }

    /// Like [`Network::add_node`], the node made by `make` from what
    /// [`SimOverlay::create`] is given (a test's node configured its own way).
    pub fn add_node_with(
        &mut self,
        make: impl FnOnce(&SimConfig, N::Peer, u64, Instant, UnixMillis) -> N,
    ) -> usize {
        let i = self.nodes.len();
        let peer = self.book.add_node();
        let seed = mix64(self.cfg.seed ^ mix64(i as u64 + 1));
        let wall = WALL0 + self.now / 1_000_000;
        let node = make(&self.cfg, peer, seed, self.now_instant(), wall);
        self.nodes.push(node);
        self.alive.push(true);
        self.timer_at.push(NO_TIMER);
        self.drain(i);
        i
    }

    /// Joins `config().nodes` nodes through the overlay's own joins and lets the
    /// network settle ([`SimOverlay::join_all`]). `progress` is called now and then
    /// with the number of nodes created.
    pub fn join_all(&mut self, mut progress: impl FnMut(usize)) {
        N::join_all(self, &mut progress);
    }

    /// Runs a command on node `i` at the current virtual time and tracks its result,
    /// which [`Network::take_done`] returns once [`Network::run_until_idle`] (or any
    /// run) saw it finish.
    pub fn command(&mut self, i: usize, f: impl FnOnce(&mut N, Instant) -> QueryId) -> QueryId {
        let now = self.now_instant();
        let q = f(&mut self.nodes[i], now);
        self.tracked.insert((i as u32, q));
        self.drain(i);
        q
    }

    /// Starts `request` on node `i` now and tracks it, as [`Network::command`]; a
    /// refused request is not tracked.
    pub fn start(&mut self, i: usize, request: N::Request) -> Result<QueryId, N::RequestError> {
        let now = self.now_instant();
        let q = self.nodes[i].start(now, request);
        if let Ok(q) = q {
            self.tracked.insert((i as u32, q));
        }
        self.drain(i);
        q
    }

    /// Like [`Network::command`], for commands whose result nobody waits for (joins).
    pub fn command_untracked<R>(&mut self, i: usize, f: impl FnOnce(&mut N, Instant) -> R) {
        let now = self.now_instant();
        let _ = f(&mut self.nodes[i], now);
        self.drain(i);
    }

    /// The result of a tracked command, once it finished.
    pub fn take_done(&mut self, i: usize, q: QueryId) -> Option<QueryDone<N::Outcome>> {
        self.done.remove(&(i as u32, q))
    }

    /// Tracked commands not finished yet.
    pub fn outstanding(&self) -> usize {
        self.tracked.len()
    }

    /// Does event-queue index `i` (a node) have a tracked command in progress?
    pub(crate) fn has_command(&self, i: u32) -> bool {
        i & SYBIL_BIT == 0
            && self
                .tracked
                .range((i, QueryId(0))..=(i, QueryId(u64::MAX)))
                .next()
                .is_some()
    }

    /// Kills node `i` at once: it receives nothing more and its timers stop.
    pub fn kill(&mut self, i: usize) {
        self.alive[i] = false;
        let gone: Vec<(u32, QueryId)> = self
            .tracked
            .range((i as u32, QueryId(0))..=(i as u32, QueryId(u64::MAX)))
            .copied()
            .collect();
        for g in gone {
            self.tracked.remove(&g);
        }
    }

    /// Collects node `i`'s outputs after an input, in the order [`Overlay`] documents.
    fn drain(&mut self, i: usize) {
        while let Some(out) = self.nodes[i].poll_output() {
            match out {
                // Simulated stores are in memory: `commit` has nothing to wait for.
                Output::Datagram { to, payload } | Output::DatagramAfterCommit { to, payload } => {
                    self.send(i as u32, &to, payload)
                }
                Output::Request {
                    to,
                    stream,
                    payload,
                    deadline,
                } => self.open_stream(i as u32, &to, stream, payload, deadline),
                Output::Reply { stream, payload } => {
                    self.answer_stream(i as u32, stream, Some(payload))
                }
                Output::Reset { stream } => self.answer_stream(i as u32, stream, None),
            }
        }
        if let Some(at) = self.nodes[i].poll_timeout() {
            let at = (at.saturating_duration_since(self.base).as_nanos() as u64).max(self.now);
            // Timers are scheduled lazily: a later wake-up leaves the earlier event in
            // place (an early handle_timeout is harmless and reschedules), and an earlier
            // one supersedes it (the old event is recognised as stale when it pops).
            if at < self.timer_at[i] {
                self.timer_at[i] = at;
                self.seq += 1;
                self.wakes.push((at, self.seq), i as u32);
            }
        }
        while let Some(ev) = self.nodes[i].poll_event() {
            match ev {
                Event::QueryDone(d) => {
                    if self.tracked.remove(&(i as u32, d.id)) {
                        self.streams.command_done(i as u32, d.id);
                        self.done.insert((i as u32, d.id), d);
                    }
                }
            }
        }
    }

    fn push(&mut self, at: u64, what: What) {
        self.seq += 1;
        self.heap.push((at, self.seq), what);
    }

    /// Puts `payload` from event-queue index `from` (a node or a played peer) on the
    /// wire to `to`, through the MTU, the address book and the loss model.
    pub(crate) fn send(&mut self, from: u32, to: &N::Peer, payload: Vec<u8>) {
        if payload.len() > MTU {
            self.stats.oversize += 1;
            return;
        }
        let Some(to) = self.book.index_of(to) else {
            self.stats.unroutable += 1;
            return;
        };
        N::on_send(self, from, to, &payload);
        if self.cfg.loss > 0.0 && unit(self.rng.next_u64()) < self.cfg.loss {
            self.stats.lost += 1;
            return;
        }
        let at = self.now + self.link_delay(from, to).as_nanos() as u64;
        self.push(at, What::Deliver { from, to, payload });
    }

    /// Processes the next event if it is due at or before `limit`; false otherwise.
    pub fn step(&mut self, limit: Duration) -> bool {
        let limit = limit.as_nanos() as u64;
        let next = self.heap.peek();
        let wake = self.wakes.peek();
        if let Some(w) = wake.filter(|w| next.is_none_or(|e| w < &e)) {
            if w.0 > limit {
                return false;
            }
            if let Some(((at, _), node)) = self.wakes.pop() {
                self.wake(at, node);
            }
            return true;
        }
        match next {
            Some((at, _)) if at <= limit => {}
            _ => return false,
        }
        let Some(((at, _), what)) = self.heap.pop() else {
            return false;
        };
        self.now = self.now.max(at);
        let now = self.now_instant();
        match what {
            What::Deliver { from, to, payload } => {
                let j = to as usize;
                let played = to & SYBIL_BIT != 0;
                if !played && !self.alive[j] {
                    self.stats.to_dead += 1;
                    return true;
                }
                self.stats.delivered += 1;
                self.stats.bytes_delivered += payload.len() as u64;
                // One update for the record's header: the same bytes as four.
                let mut head = [0u8; 20];
                head[..8].copy_from_slice(&at.to_be_bytes());
                head[8..12].copy_from_slice(&from.to_be_bytes());
                head[12..16].copy_from_slice(&to.to_be_bytes());
                head[16..].copy_from_slice(&(payload.len() as u32).to_be_bytes());
                self.hasher.update(&head);
                self.hasher.update(&payload);
                if played {
                    self.stats.to_sybil += 1;
                    N::deliver_to_played(self, from, (to & !SYBIL_BIT) as usize, &payload);
                    return true;
                }
                N::on_deliver(self, from, to, &payload);
                let from = self.book.peer(from);
                let input = Input::Datagram {
                    from,
                    key: None,
                    bytes: &payload,
                };
                self.nodes[j].handle_input(now, input);
                // Not recycled into the node's pool: pools of 8 send buffers would
                // cost every node 4 KB, and an allocation per datagram costs little.
                drop(payload);
                self.drain(j);
            }
            What::Stream(d) => self.deliver_stream(at, d),
        }
        true
    }

    /// Node `node`'s wake-up due at `at`, unless it died or its timer moved earlier since.
    fn wake(&mut self, at: u64, node: Wake) {
        self.now = self.now.max(at);
        let i = node as usize;
        if !self.alive[i] || self.timer_at[i] != at {
            return;
        }
        self.timer_at[i] = NO_TIMER;
        let now = self.now_instant();
        self.nodes[i].handle_timeout(now);
        self.drain(i);
    }

    /// Runs every event up to virtual time `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Duration) {
        while self.step(t) {}
        self.now = self.now.max(t.as_nanos() as u64);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now() + d);
    }

    /// Runs until every tracked command finished, or `limit` of virtual time passed.
    /// Returns true when all finished.
    pub fn run_until_idle(&mut self, limit: Duration) -> bool {
        let end = self.now() + limit;
        while !self.tracked.is_empty() {
            if !self.step(end) {
                return false;
            }
        }
        true
    }
}
