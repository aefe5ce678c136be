//! An in-memory network of dht-core nodes on virtual time, for the engine's tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_core::UnixMillis;
use dht_core::{Config, Event, Node, QueryDone, QueryId, Request};
use proptest::prelude::*;

/// The nodes' store: the workspace's one in-memory store (dht-store-mem).
pub type TestStore = dht_store_mem::MemStore;

/// Nodes at 127.0.0.x / ::1 ports, a fixed one-way latency, virtual time.
pub struct Net {
    pub nodes: Vec<Node<TestStore>>,
    pub addrs: Vec<SocketAddr>,
    pub alive: Vec<bool>,
    by_addr: BTreeMap<SocketAddr, usize>,
    queue: BTreeSet<(Instant, u64, usize, SocketAddr, Vec<u8>)>,
    seq: u64,
    pub now: Instant,
    pub latency: Duration,
    done: BTreeMap<(usize, QueryId), QueryDone>,
    /// Every datagram delivered, for inspection: (from, to, payload).
    pub log: Option<Vec<(SocketAddr, SocketAddr, Vec<u8>)>>,
}

pub const WALL0: UnixMillis = 1_800_000_000_000;

impl Net {
    pub fn new(n: usize, seed: u64, v6: bool, tweak: impl Fn(&mut Config)) -> Net {
        let now = Instant::now();
        let mut net = Net {
            nodes: Vec::new(),
            addrs: Vec::new(),
            alive: Vec::new(),
            by_addr: BTreeMap::new(),
            queue: BTreeSet::new(),
            seq: 0,
            now,
            latency: Duration::from_millis(10),
            done: BTreeMap::new(),
            log: None,
        };
        for i in 0..n {
            let mut cfg = Config::with_seed(seed * 1_000_003 + i as u64);
            tweak(&mut cfg);
            net.add_node(cfg, v6);
        }
        net
    }

    pub fn add_node(&mut self, cfg: Config, v6: bool) -> usize {
        self.add_node_with(cfg, TestStore::default(), v6)
    }

    pub fn add_node_with(&mut self, cfg: Config, store: TestStore, v6: bool) -> usize {
        let i = self.nodes.len();
        let addr: SocketAddr = if v6 {
            SocketAddr::new("::1".parse().unwrap(), 10000 + i as u16)
        } else {
            SocketAddr::from(([127, 0, (i / 250) as u8, (i % 250) as u8 + 1], 6881))
        };
        self.nodes
            .push(Node::new(cfg, store, self.now, WALL0).expect("valid config"));
        self.addrs.push(addr);
        self.alive.push(true);
        self.by_addr.insert(addr, i);
        i
    }

    /// Moves every node's output into the network.
    pub fn flush(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].poll_transmit() {
                assert!(
                    t.payload.len() <= 1452,
                    "oversize datagram {} bytes",
                    t.payload.len()
                );
                self.seq += 1;
                self.queue
                    .insert((self.now + self.latency, self.seq, i, t.to, t.payload));
            }
            while let Some(Event::QueryDone(d)) = self.nodes[i].poll_event() {
                self.done.insert((i, d.id), d);
            }
        }
    }

    /// Runs one event (a delivery or the earliest timer); false when idle.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.flush();
        let next_msg = self.queue.first().map(|m| m.0);
        let next_timer = (0..self.nodes.len())
            .filter(|i| self.alive[*i])
            .filter_map(|i| self.nodes[i].poll_timeout().map(|t| (t, i)))
            .min();
        let t_msg = next_msg.unwrap_or(limit + Duration::from_secs(1));
        let t_tmr = next_timer
            .map(|x| x.0)
            .unwrap_or(limit + Duration::from_secs(1));
        let t = t_msg.min(t_tmr);
        if t > limit {
            return false;
        }
        self.now = self.now.max(t);
        if t_msg <= t_tmr {
            let (_, _, from_i, to, payload) = self.queue.pop_first().unwrap();
            if let Some(&j) = self.by_addr.get(&to) {
                if self.alive[j] {
                    let from = self.addrs[from_i];
                    if let Some(log) = self.log.as_mut() {
                        log.push((from, to, payload.clone()));
                    }
                    self.nodes[j].handle_datagram(self.now, from, None, &payload);
                }
            }
        } else if let Some((_, i)) = next_timer {
            self.nodes[i].handle_timeout(self.now);
        }
        true
    }

    /// Runs until `qid` on node `i` finishes (or 10 virtual minutes pass).
    pub fn wait(&mut self, i: usize, qid: QueryId) -> QueryDone {
        let limit = self.now + Duration::from_secs(600);
        loop {
            self.flush();
            if let Some(d) = self.done.remove(&(i, qid)) {
                return d;
            }
            assert!(self.step(limit), "query {qid:?} on node {i} did not finish");
        }
    }

    /// Runs everything for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        while self.step(limit) {}
        self.now = self.now.max(limit);
        self.flush();
    }

    /// Bootstraps every node from node 0 (one after another, as nodes join).
    pub fn bootstrap_all(&mut self) {
        let seed = self.addrs[0];
        for i in 1..self.nodes.len() {
            let now = self.now;
            let q = self.nodes[i]
                .start(
                    now,
                    Request::Bootstrap {
                        seeds: [seed].to_vec(),
                    },
                )
                .expect("request");
            self.wait(i, q);
        }
        // Node 0 learns of the others through their queries; let housekeeping ping them.
        self.run_for(Duration::from_secs(120));
    }
}

/// Byte-level mutations of valid messages (random bytes alone stop at the first byte).
#[derive(Clone, Debug)]
pub enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    Duplicate(usize, usize),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<usize>(),
            prop::sample::select(b"0123456789:deil-x".to_vec())
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

pub fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match *m {
        Mutation::Flip(i, b) => {
            if let Some(x) = bytes.get_mut(i % len) {
                *x ^= b;
            }
        }
        Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
        Mutation::Delete(i) => {
            if !bytes.is_empty() {
                bytes.remove(i % len);
            }
        }
        Mutation::Truncate(i) => bytes.truncate(i % len),
        Mutation::Duplicate(i, n) => {
            let start = i % len;
            let end = (start + n).min(bytes.len());
            let piece = bytes
                .get(start..end)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            bytes.splice(start..start, piece);
        }
    }
}
