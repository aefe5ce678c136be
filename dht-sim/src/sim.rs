//! The virtual network and its event loop.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_core::Id;
use dht_core::{Config, Event, Node, QueryDone, QueryId, Request};
use dht_store_mem::MemStore;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha1::{Digest, Sha1};

use crate::address::{AddressPlan, Addresses, SYBIL_BIT};

mod answers;
mod sybil;
use answers::AnswerLog;
use sybil::Sybil;

/// Wall-clock time (ms since the Unix epoch) the simulation starts at. Fixed, so that
/// expiry deadlines in the stores do not depend on when the simulation is run.
pub const WALL0: u64 = 1_800_000_000_000;

/// Largest datagram the virtual network carries (IPv6 over Ethernet, as PROTOCOL-NOTES
/// says nobody may exceed); bigger ones are dropped and counted as oversize.
pub const MTU: usize = 1452;

const NO_TIMER: u64 = u64::MAX;

/// How the virtual network and its nodes are set up.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// Seed of everything: node RNGs, link latencies, losses, choices of the driver.
    pub seed: u64,
    /// Mean one-way latency in milliseconds (see [`Sim::link_delay`] for the distribution).
    pub latency_ms: f64,
    /// Probability that a datagram is dropped, drawn independently per datagram.
    pub loss: f64,
    /// Bucket size and replication factor of every node.
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
    /// Sybil nodes (see [`Sim::add_sybil`]) at random ids that arrive among the honest
    /// nodes in [`Sim::join_all`], at random arrival slots after the seed nodes.
    pub sybils: usize,
    /// Where nodes and Sybils sit, and so which per-address defenses apply.
    pub address_plan: AddressPlan,
}

impl SimConfig {
    /// Defaults for `nodes` nodes and `seed`: 50 ms mean latency, no loss, K = 8,
    /// alpha = 3, 4 seed nodes, one arrival per millisecond, 60 s to settle, every
    /// node on a public /24 of its own.
    pub fn new(nodes: usize, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            seed,
            latency_ms: 50.0,
            loss: 0.0,
            k: 8,
            alpha: 3,
            seed_nodes: 4,
            join_interval: Duration::from_millis(1),
            settle: Duration::from_secs(60),
            disjoint_paths: 1,
            sybils: 0,
            address_plan: AddressPlan::Public {
                sybil_prefixes: None,
            },
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
}

enum What {
    Deliver {
        from: u32,
        to: u32,
        payload: Vec<u8>,
    },
    Timer {
        node: u32,
    },
}

struct Scheduled {
    at: u64,
    seq: u64,
    what: What,
}

// The heap is a max-heap: invert so the earliest (time, sequence) pops first. The
// sequence number breaks ties in insertion order, which is what makes runs replay.
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}

/// SplitMix64's finaliser: a fixed, well-mixed hash of a `u64`, so that per-node seeds
/// and per-link latencies are functions of the seed alone.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform index below `n` (`n` > 0) from `rng`.
pub fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    ((rng.next_u64() as u128 * n as u128) >> 64) as usize
}

/// N dht-core nodes over a virtual network on virtual time.
///
/// Time is a count of nanoseconds since a base `Instant` captured once in [`Sim::new`];
/// it jumps from one event to the next and never depends on the real clock. Events
/// are ordered by (time, sequence number), and all randomness comes from ChaCha8
/// generators derived from [`SimConfig::seed`], so one seed gives one run.
pub struct Sim {
    cfg: SimConfig,
    base: Instant,
    now: u64,
    rng: ChaCha8Rng,
    nodes: Vec<Node<MemStore>>,
    alive: Vec<bool>,
    timer_at: Vec<u64>,
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    tracked: BTreeSet<(u32, QueryId)>,
    done: BTreeMap<(u32, QueryId), QueryDone>,
    hasher: Sha1,
    stats: NetStats,
    sybils: Vec<Sybil>,
    /// Sybil ids in ascending order with their Sybil index: the adversary's global
    /// view, from which every Sybil answers with the Sybils closest to a target.
    sybil_sorted: Vec<(Id, u32)>,
    addrs: Addresses,
    answers: AnswerLog,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("nodes", &self.nodes.len())
            .field("now", &self.now())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// An empty network; nodes arrive with [`Sim::add_node`] or [`Sim::join_all`].
    pub fn new(cfg: SimConfig) -> Sim {
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        Sim {
            base: Instant::now(),
            now: 0,
            rng,
            nodes: Vec::with_capacity(cfg.nodes),
            alive: Vec::with_capacity(cfg.nodes),
            timer_at: Vec::with_capacity(cfg.nodes),
            heap: BinaryHeap::new(),
            seq: 0,
            tracked: BTreeSet::new(),
            done: BTreeMap::new(),
            hasher: Sha1::new(),
            stats: NetStats::default(),
            sybils: Vec::new(),
            sybil_sorted: Vec::new(),
            addrs: Addresses::new(cfg.address_plan, cfg.seed),
            answers: AnswerLog::default(),
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
    pub fn node(&self, i: usize) -> &Node<MemStore> {
        &self.nodes[i]
    }

    /// Is node `i` alive?
    pub fn is_alive(&self, i: usize) -> bool {
        self.alive[i]
    }

    /// Indices of the live nodes.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.alive[i]).collect()
    }

    /// The address of node `i` (see [`AddressPlan`]).
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs.honest(i)
    }

    /// The address of Sybil `s`.
    pub fn sybil_addr(&self, s: usize) -> SocketAddr {
        self.addrs.sybil(s)
    }

    /// Sybils created so far.
    pub fn sybil_count(&self) -> usize {
        self.sybils.len()
    }

    /// The id of Sybil `s`.
    pub fn sybil_id(&self, s: usize) -> Id {
        self.sybils[s].id
    }

    /// Is `addr` a Sybil's?
    pub fn is_sybil_addr(&self, addr: &SocketAddr) -> bool {
        self.index_of(addr).is_some_and(|i| i & SYBIL_BIT != 0)
    }

    /// Event-queue index of `addr`: an honest node's index, or `SYBIL_BIT | s`.
    fn index_of(&self, addr: &SocketAddr) -> Option<u32> {
        self.addrs.index_of(addr)
    }

    /// The address of event-queue index `i` (honest or Sybil).
    fn addr_of_index(&self, i: u32) -> SocketAddr {
        self.addrs.of_index(i)
    }

    /// Network counters.
    pub fn net_stats(&self) -> NetStats {
        self.stats
    }

    /// SHA-1 (hex) over (time, source, destination, length, payload) of every datagram
    /// delivered so far: two runs with equal hashes exchanged the same bytes at the same
    /// virtual times.
    pub fn event_hash(&self) -> String {
        dht_core::to_hex(&self.hasher.clone().finalize())
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
        let i = self.nodes.len();
        let mut config = Config::with_seed(mix64(self.cfg.seed ^ mix64(i as u64 + 1)));
        config.k = self.cfg.k;
        config.alpha = self.cfg.alpha;
        config.disjoint_paths = self.cfg.disjoint_paths;
        // As the runtime does for a node bound to a public address: private sources
        // are strangers, not a LAN, and nothing the plan hands out is exempt.
        if let AddressPlan::Public { .. } = self.cfg.address_plan {
            config.defense.local_listen = false;
        }
        // Simulated nodes never restart from a store: a routing snapshot per node would
        // only cost memory (kilobytes each, gigabytes at 100,000 nodes).
        config.routing_save_interval = std::time::Duration::from_secs(30 * 24 * 3600);
        let node = Node::new(
            config,
            MemStore::new(),
            self.now_instant(),
            WALL0 + self.now / 1_000_000,
        )
        .expect("valid config");
        self.addrs.add_honest();
        self.nodes.push(node);
        self.alive.push(true);
        self.timer_at.push(NO_TIMER);
        self.drain(i);
        i
    }

    /// Runs a command on node `i` at the current virtual time and tracks its result,
    /// which [`Sim::take_done`] returns once [`Sim::run_until_idle`] (or any run) saw it finish.
    pub fn command(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Node<MemStore>, Instant) -> QueryId,
    ) -> QueryId {
        let now = self.now_instant();
        let q = f(&mut self.nodes[i], now);
        self.tracked.insert((i as u32, q));
        self.drain(i);
        q
    }

    /// Like [`Sim::command`], for commands whose result nobody waits for (bootstrap).
    pub fn command_untracked(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Node<MemStore>, Instant) -> QueryId,
    ) {
        let now = self.now_instant();
        let _ = f(&mut self.nodes[i], now);
        self.drain(i);
    }

    /// The result of a tracked command, once it finished.
    pub fn take_done(&mut self, i: usize, q: QueryId) -> Option<QueryDone> {
        self.done.remove(&(i as u32, q))
    }

    /// Tracked commands not finished yet.
    pub fn outstanding(&self) -> usize {
        self.tracked.len()
    }

    /// Does event-queue index `i` (an honest node) have a tracked command in progress?
    fn has_command(&self, i: u32) -> bool {
        i & SYBIL_BIT == 0
            && self
                .tracked
                .range((i, QueryId(0))..=(i, QueryId(u64::MAX)))
                .next()
                .is_some()
    }

    /// Starts (`true`, forgetting earlier answers) or stops recording which nodes
    /// answer the queries of tracked commands (see [`Sim::answered`]). Costs a decode
    /// of those commands' datagrams; off by default.
    pub fn watch_answers(&mut self, on: bool) {
        self.answers.watch(on);
    }

    /// While answers were watched, did node `responder` send node `querier` a
    /// response to a query for `target` (find_node, get_peers, get or
    /// sample_infohashes), as seen on the wire?
    pub fn answered(&self, querier: usize, target: &Id, responder: usize) -> bool {
        self.answers
            .answered(querier as u32, target, responder as u32)
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

    /// Collects node `i`'s outputs after an input, in the order dht-core documents.
    fn drain(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].poll_transmit() {
            self.send(i as u32, t.to, t.payload);
        }
        if let Some(at) = self.nodes[i].poll_timeout() {
            let at = (at.saturating_duration_since(self.base).as_nanos() as u64).max(self.now);
            // Timers are scheduled lazily: a later wake-up leaves the earlier event in
            // place (an early handle_timeout is harmless and reschedules), and an earlier
            // one supersedes it (the old event is recognised as stale when it pops).
            if at < self.timer_at[i] {
                self.timer_at[i] = at;
                self.push(at, What::Timer { node: i as u32 });
            }
        }
        while let Some(ev) = self.nodes[i].poll_event() {
            match ev {
                Event::QueryDone(d) => {
                    if self.tracked.remove(&(i as u32, d.id)) {
                        self.done.insert((i as u32, d.id), d);
                    }
                }
            }
        }
    }

    fn push(&mut self, at: u64, what: What) {
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            what,
        });
    }

    fn send(&mut self, from: u32, to: SocketAddr, payload: Vec<u8>) {
        if payload.len() > MTU {
            self.stats.oversize += 1;
            return;
        }
        let Some(to) = self.index_of(&to) else {
            self.stats.unroutable += 1;
            return;
        };
        if self.answers.is_on() && self.has_command(from) {
            self.answers.on_send(from, to, &payload);
        }
        if self.cfg.loss > 0.0 && unit(self.rng.next_u64()) < self.cfg.loss {
            self.stats.lost += 1;
            // Sybils (SYBIL_BIT set) have no buffer pool: theirs is simply dropped.
            if let Some(n) = self.nodes.get_mut(from as usize) {
                n.recycle(payload);
            }
            return;
        }
        let at = self.now + self.link_delay(from, to).as_nanos() as u64;
        self.push(at, What::Deliver { from, to, payload });
    }

    /// Processes the next event if it is due at or before `limit`; false otherwise.
    pub fn step(&mut self, limit: Duration) -> bool {
        let limit = limit.as_nanos() as u64;
        match self.heap.peek() {
            Some(e) if e.at <= limit => {}
            _ => return false,
        }
        let Some(e) = self.heap.pop() else {
            return false;
        };
        self.now = self.now.max(e.at);
        let now = self.now_instant();
        match e.what {
            What::Deliver { from, to, payload } => {
                let j = to as usize;
                let sybil = to & SYBIL_BIT != 0;
                if !sybil && !self.alive[j] {
                    self.stats.to_dead += 1;
                    return true;
                }
                self.stats.delivered += 1;
                self.stats.bytes_delivered += payload.len() as u64;
                self.hasher.update(e.at.to_be_bytes());
                self.hasher.update(from.to_be_bytes());
                self.hasher.update(to.to_be_bytes());
                self.hasher.update((payload.len() as u32).to_be_bytes());
                self.hasher.update(&payload);
                if sybil {
                    self.stats.to_sybil += 1;
                    self.sybil_receive(from, (to & !SYBIL_BIT) as usize, &payload);
                    return true;
                }
                if self.answers.is_on() && self.has_command(to) {
                    self.answers.on_deliver(from, to, &payload);
                }
                let from_addr = self.addr_of_index(from);
                self.nodes[j].handle_datagram(now, from_addr, None, &payload);
                // The receiver most likely answers next: its reply reuses this buffer.
                self.nodes[j].recycle(payload);
                self.drain(j);
            }
            What::Timer { node } => {
                let i = node as usize;
                if !self.alive[i] || self.timer_at[i] != e.at {
                    return true;
                }
                self.timer_at[i] = NO_TIMER;
                self.nodes[i].handle_timeout(now);
                self.drain(i);
            }
        }
        true
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

    /// Joins `config().nodes` nodes through the protocol: the seed nodes start together
    /// and bootstrap from each other, then one node arrives every `join_interval` and
    /// bootstraps from the seed nodes; finally the network runs for `settle`.
    /// `progress` is called now and then with the number of nodes created.
    pub fn join_all(&mut self, mut progress: impl FnMut(usize)) {
        let n = self.cfg.nodes;
        let seeds = self.cfg.seed_nodes.clamp(1, n.max(1));
        for _ in 0..seeds.min(n) {
            self.add_node();
        }
        let seed_addrs: Vec<SocketAddr> = (0..seeds.min(n)).map(|i| self.addr(i)).collect();
        for i in 0..seeds.min(n) {
            let others: Vec<SocketAddr> = seed_addrs
                .iter()
                .copied()
                .filter(|a| *a != seed_addrs[i])
                .collect();
            self.command_untracked(i, |node, now| {
                node.start(
                    now,
                    Request::Bootstrap {
                        seeds: others.to_vec(),
                    },
                )
                .expect("request")
            });
        }
        let start = self.now();
        // Sybils take random arrival slots among the later arrivals: sequential
        // sampling (a slot is a Sybil's with probability Sybils left / slots left)
        // gives exactly `sybils` of them. Its own generator, so that a run without
        // Sybils draws nothing more than before.
        let mut sybils_left = self.cfg.sybils.min(self.cfg.address_plan.max_sybils());
        let total = n + sybils_left;
        let mut sybil_rng = ChaCha8Rng::seed_from_u64(mix64(self.cfg.seed ^ 0x5b11_0000_0000_0001));
        for slot in seeds.min(n)..total {
            self.run_until(start + self.cfg.join_interval * (slot - seeds + 1) as u32);
            let slots_left = total - slot;
            if sybils_left > 0 && below(&mut sybil_rng, slots_left) < sybils_left {
                sybils_left -= 1;
                let id = Id::random(&mut sybil_rng);
                self.add_sybil(id);
            } else {
                let j = self.add_node();
                self.command_untracked(j, |node, now| {
                    node.start(
                        now,
                        Request::Bootstrap {
                            seeds: seed_addrs.to_vec(),
                        },
                    )
                    .expect("request")
                });
            }
            if slot % 10_000 == 0 {
                progress(slot);
            }
        }
        self.run_for(self.cfg.settle);
        progress(total);
    }
}
