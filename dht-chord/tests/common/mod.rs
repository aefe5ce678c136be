//! What the integration tests share: Chord nodes on a lossless network with no
//! delay, on virtual time, on loopback addresses; nodes can be killed.

#![allow(dead_code)] // Each test file uses its own part.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_chord::{ChordNode, Config, Event, Outcome, QueryId, Request};
use dht_core::{Id, Overlay};
use dht_store_mem::MemStore;

/// Nodes on a lossless network with no delay, on virtual time.
pub struct Net {
    pub nodes: Vec<ChordNode<MemStore>>,
    pub now: Instant,
    /// Killed nodes: they receive nothing and their timers never run.
    pub dead: BTreeSet<usize>,
}

/// The loopback address of node `i`.
pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16))
}

impl Net {
    pub fn new() -> Net {
        Net {
            nodes: Vec::new(),
            now: Instant::now(),
            dead: BTreeSet::new(),
        }
    }

    pub fn add(&mut self, config: Config) -> usize {
        self.nodes
            .push(ChordNode::new(config, MemStore::new(), self.now));
        self.nodes.len() - 1
    }

    pub fn add_with_id(&mut self, config: Config, id: Id) -> usize {
        self.nodes
            .push(ChordNode::with_id(config, MemStore::new(), self.now, id));
        self.nodes.len() - 1
    }

    /// Node `i` fails silently: what it sent is delivered, nothing reaches it after.
    pub fn kill(&mut self, i: usize) {
        self.dead.insert(i);
    }

    /// Delivers every datagram until none is left.
    pub fn deliver(&mut self) {
        let mut queue = VecDeque::new();
        loop {
            for n in &mut self.nodes {
                let from = n.config().addr;
                while let Some(t) = n.poll_transmit() {
                    queue.push_back((from, t));
                }
            }
            let Some((from, t)) = queue.pop_front() else {
                return;
            };
            let to = self.nodes.iter().position(|n| n.config().addr == t.to);
            if let Some(i) = to.filter(|i| !self.dead.contains(i)) {
                self.nodes[i].handle_datagram(self.now, from, None, &t.payload);
            }
        }
    }

    /// Runs `d` of virtual time in 10 ms steps.
    pub fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.deliver();
            self.now += Duration::from_millis(10);
            for (i, n) in self.nodes.iter_mut().enumerate() {
                if !self.dead.contains(&i) {
                    n.handle_timeout(self.now);
                }
            }
        }
        self.deliver();
    }

    pub fn start(&mut self, i: usize, r: Request) -> QueryId {
        let q = Overlay::start(&mut self.nodes[i], self.now, r).expect("accepted");
        self.deliver();
        q
    }

    /// Runs until query `q` of node `i` ends (at most 5 virtual s).
    pub fn outcome(&mut self, i: usize, q: QueryId) -> Outcome {
        for _ in 0..500 {
            while let Some(Event::QueryDone(d)) = self.nodes[i].poll_event() {
                if d.id == q {
                    return d.outcome;
                }
            }
            self.run(Duration::from_millis(10));
        }
        panic!("query {q:?} of node {i} did not finish");
    }

    /// Every query that ended since the last call, by node and query.
    pub fn ended(&mut self) -> BTreeMap<(usize, QueryId), Outcome> {
        let mut out = BTreeMap::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            while let Some(e) = n.poll_event() {
                let Event::QueryDone(d) = e;
                out.insert((i, d.id), d.outcome);
            }
        }
        out
    }
}
