//! The virtual network of [`crate::Sim`], carrying Chord nodes instead of Kademlia ones.
//!
//! Same model, same seed derivations: addresses 10.0.0.1 + i, per-link base latency
//! from a fixed hash of the seed and the pair plus per-datagram jitter, independent
//! loss, the MTU, events ordered by (virtual time, sequence number), and an
//! `event_hash` over every delivered datagram. Only the node type differs, so a
//! comparison between overlays is one flag apart.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use dht_chord::{ChordNode, Config, Event, QueryDone, QueryId};
use dht_store_mem::MemStore;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha1::{Digest, Sha1};

use crate::address::PORT;
use crate::sim::{mix64, NetStats, SimConfig, MTU};

const FIRST_ADDR: u32 = 0x0A00_0001;
const NO_TIMER: u64 = u64::MAX;

/// Node j arrives at least this long divided by j after node j - 1 (see `join_all`).
const ARRIVAL_PACE: Duration = Duration::from_secs(2);

/// Time between two seed nodes' joins: a few stabilize periods.
const SEED_PACE: Duration = Duration::from_secs(3);

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

// A max-heap: inverted so that the earliest (time, sequence) pops first.
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

fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// N Chord nodes over the virtual network on virtual time. With this overlay
/// [`SimConfig::k`] is r, the successor-list length and number of copies of a key
/// (Kademlia's k is its replication factor too).
pub struct ChordSim {
    cfg: SimConfig,
    base: Instant,
    now: u64,
    rng: ChaCha8Rng,
    nodes: Vec<ChordNode<MemStore>>,
    alive: Vec<bool>,
    timer_at: Vec<u64>,
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    tracked: BTreeSet<(u32, QueryId)>,
    done: BTreeMap<(u32, QueryId), QueryDone>,
    hasher: Sha1,
    stats: NetStats,
}

impl std::fmt::Debug for ChordSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChordSim")
            .field("nodes", &self.nodes.len())
            .field("now", &self.now())
            .finish_non_exhaustive()
    }
}

impl ChordSim {
    /// An empty network.
    pub fn new(cfg: SimConfig) -> ChordSim {
        ChordSim {
            base: Instant::now(),
            now: 0,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            nodes: Vec::with_capacity(cfg.nodes),
            alive: Vec::with_capacity(cfg.nodes),
            timer_at: Vec::with_capacity(cfg.nodes),
            heap: BinaryHeap::new(),
            seq: 0,
            tracked: BTreeSet::new(),
            done: BTreeMap::new(),
            hasher: Sha1::new(),
            stats: NetStats::default(),
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

    /// The driver's own seeded RNG.
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
    pub fn node(&self, i: usize) -> &ChordNode<MemStore> {
        &self.nodes[i]
    }

    /// Is node `i` alive (not killed, not left)?
    pub fn is_alive(&self, i: usize) -> bool {
        self.alive[i]
    }

    /// Indices of the live nodes.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.alive[i]).collect()
    }

    /// The address of node `i`.
    pub fn addr(i: usize) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(FIRST_ADDR + i as u32),
            PORT,
        ))
    }

    /// The node index at `addr`, if it is one.
    pub fn index_of(&self, addr: &SocketAddr) -> Option<usize> {
        let SocketAddr::V4(v4) = addr else {
            return None;
        };
        let i = u32::from(*v4.ip()).checked_sub(FIRST_ADDR)? as usize;
        (v4.port() == PORT && i < self.nodes.len()).then_some(i)
    }

    /// Network counters.
    pub fn net_stats(&self) -> NetStats {
        self.stats
    }

    /// SHA-1 (hex) over (time, source, destination, length, payload) of every
    /// delivered datagram, as [`crate::Sim::event_hash`].
    pub fn event_hash(&self) -> String {
        dht_core::to_hex(&self.hasher.clone().finalize())
    }

    /// One datagram's delay, with [`crate::Sim::link_delay`]'s distribution and seeds.
    fn link_delay(&mut self, a: u32, b: u32) -> u64 {
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let h = mix64(self.cfg.seed ^ mix64(((lo as u64) << 32) | hi as u64));
        let m = self.cfg.latency_ms * 1e6;
        let base = m * (0.2 + 1.4 * unit(h));
        let jitter = m * 0.2 * unit(self.rng.next_u64());
        (base + jitter) as u64
    }

    /// Creates node `i = len()` now, with its own seed and r = `k`.
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let mut config = Config::new(
            ChordSim::addr(i),
            mix64(self.cfg.seed ^ mix64(i as u64 + 1)),
        );
        config.successors = self.cfg.k;
        let node = ChordNode::new(config, MemStore::new(), self.now_instant());
        self.nodes.push(node);
        self.alive.push(true);
        self.timer_at.push(NO_TIMER);
        self.drain(i);
        i
    }

    /// Runs a command on node `i` now and tracks its result.
    pub fn command(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut ChordNode<MemStore>, Instant) -> QueryId,
    ) -> QueryId {
        let now = self.now_instant();
        let q = f(&mut self.nodes[i], now);
        self.tracked.insert((i as u32, q));
        self.drain(i);
        q
    }

    /// Like [`ChordSim::command`], for results nobody waits for.
    pub fn command_untracked(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut ChordNode<MemStore>, Instant),
    ) {
        let now = self.now_instant();
        f(&mut self.nodes[i], now);
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

    /// Kills node `i` at once: it receives nothing more and its timers stop.
    pub fn kill(&mut self, i: usize) {
        self.alive[i] = false;
        self.tracked.retain(|(n, _)| *n != i as u32);
    }

    /// Node `i` leaves voluntarily (its goodbye messages go out), then is dead.
    pub fn leave(&mut self, i: usize) {
        self.command_untracked(i, |n, now| n.leave(now));
        self.kill(i);
    }

    fn drain(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].poll_transmit() {
            self.send(i as u32, t.to, t.payload);
        }
        if let Some(at) = self.nodes[i].poll_timeout() {
            let at = (at.saturating_duration_since(self.base).as_nanos() as u64).max(self.now);
            // Lazily scheduled, as in `Sim::drain`: an earlier wake-up supersedes.
            if at < self.timer_at[i] {
                self.timer_at[i] = at;
                self.push(at, What::Timer { node: i as u32 });
            }
        }
        while let Some(ev) = self.nodes[i].poll_event() {
            let Event::QueryDone(d) = ev;
            if self.tracked.remove(&(i as u32, d.id)) {
                self.done.insert((i as u32, d.id), d);
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
        if self.cfg.loss > 0.0 && unit(self.rng.next_u64()) < self.cfg.loss {
            self.stats.lost += 1;
            return;
        }
        let at = self.now + self.link_delay(from, to as u32);
        self.push(
            at,
            What::Deliver {
                from,
                to: to as u32,
                payload,
            },
        );
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
                if !self.alive[j] {
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
                self.nodes[j].handle_datagram(now, ChordSim::addr(from as usize), None, &payload);
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

    /// Runs until every tracked command finished or `limit` passed; true when all did.
    pub fn run_until_idle(&mut self, limit: Duration) -> bool {
        let end = self.now() + limit;
        while !self.tracked.is_empty() {
            if !self.step(end) {
                return false;
            }
        }
        true
    }

    /// Builds the ring as [`crate::Sim::join_all`] builds the Kademlia network, but for
    /// the pace of arrivals: node 0 creates it and the other seed nodes join through
    /// it, then node j arrives max(`join_interval`, 2 s / j) after node j - 1 and joins
    /// through the seed nodes, and finally the network runs for `settle`.
    pub fn join_all(&mut self, mut progress: impl FnMut(usize)) {
        let n = self.cfg.nodes;
        let seeds = self.cfg.seed_nodes.clamp(1, n.max(1)).min(n);
        for i in 0..seeds {
            // One at a time: seeds joining a ring of one together can close a loop
            // around it twice, which stabilize never undoes.
            self.run_for(SEED_PACE * u32::from(i > 0));
            self.add_node();
            let via: Vec<SocketAddr> = if i == 0 {
                Vec::new()
            } else {
                vec![ChordSim::addr(0)]
            };
            self.command_untracked(i, |node, now| {
                let _ = node.join(now, &via);
            });
        }
        let mut at = self.now();
        for slot in seeds..n {
            // A ring absorbs about one arrival per gap and stabilize period: arrivals
            // much faster than that pile up in the few gaps of a young ring, and
            // stabilize sorts each pile one node per round. So arrivals keep pace
            // with the ring's size, 2 s / (nodes so far), and never come faster than
            // the Kademlia network's one per `join_interval`.
            at += self.cfg.join_interval.max(ARRIVAL_PACE / slot as u32);
            self.run_until(at);
            let j = self.add_node();
            // Every seed, starting at a different one per node: a seed that has not
            // finished its own join yet ignores queries, and the next one is asked.
            let via: Vec<SocketAddr> = (0..seeds)
                .map(|k| ChordSim::addr((slot + k) % seeds))
                .collect();
            self.command_untracked(j, |node, now| {
                let _ = node.join(now, &via);
            });
            if slot % 10_000 == 0 {
                progress(slot);
            }
        }
        self.run_for(self.cfg.settle);
        progress(n);
    }
}
