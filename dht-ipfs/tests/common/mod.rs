//! A small deterministic in-memory network for `dht-ipfs` nodes: virtual time, a fixed
//! one-way latency, streams carried as the `Overlay` trait describes them, and
//! identify played by the network on each new connection (both sides learn the other's
//! listen addresses and protocols). Dialing a killed node fails at once, as a refused
//! connection does on loopback.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dht_core::{Event, Input, Output, Overlay, QueryDone, QueryId, StreamId};
use dht_ipfs::{Config, MemStore, Node, Outcome, PeerId, PeerInfo, Request, StoreLimits};
use multiaddr::Multiaddr;
use sha2::{Digest, Sha256};

pub const T0_WALL: u64 = 1_700_000_000_000;

/// An ed25519-shaped PeerId (identity multihash of a protobuf public key) for `n`.
pub fn peer_id(seed: u64, n: u32) -> PeerId {
    let mut b = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    let digest: [u8; 32] =
        Sha256::digest([seed.to_be_bytes(), u64::from(n).to_be_bytes()].concat()).into();
    b.extend(digest);
    PeerId::from_bytes(&b).expect("identity PeerId")
}

/// Node `n`'s listen address: 127.0.x.y, port 4001.
pub fn listen_addr(n: u32) -> Multiaddr {
    let n = n + 1;
    format!("/ip4/127.0.{}.{}/tcp/4001", n / 256, n % 256)
        .parse()
        .expect("multiaddr")
}

enum Ev {
    Request {
        from: usize,
        to: usize,
        stream: StreamId,
        payload: Vec<u8>,
    },
    Reply {
        to: usize,
        stream: StreamId,
        payload: Vec<u8>,
    },
    Failed {
        to: usize,
        stream: StreamId,
    },
    Identified {
        at: usize,
        peer: usize,
    },
}

pub struct Net {
    pub now: Instant,
    pub latency: Duration,
    pub nodes: Vec<Option<Node<MemStore>>>,
    pub peers: Vec<PeerInfo>,
    by_id: BTreeMap<PeerId, usize>,
    queue: BTreeMap<(Instant, u64), Ev>,
    seq: u64,
    timers: BTreeSet<(Instant, usize)>,
    timer_of: Vec<Option<Instant>>,
    /// Inbound stream at a server -> (client, client's stream).
    inbound: BTreeMap<(usize, StreamId), (usize, StreamId)>,
    next_inbound: u64,
    connected: BTreeSet<(usize, usize)>,
    pub done: BTreeMap<(usize, QueryId), QueryDone<Outcome>>,
    /// SHA-256 over every delivered message, in order: one seed, one hash.
    hasher: Sha256,
    pub messages: u64,
}

impl Net {
    /// `n` server nodes, none joined yet.
    pub fn new(seed: u64, n: u32, configure: impl Fn(&mut Config)) -> Net {
        let now = Instant::now();
        let mut net = Net {
            now,
            latency: Duration::from_millis(20),
            nodes: Vec::new(),
            peers: Vec::new(),
            by_id: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            timers: BTreeSet::new(),
            timer_of: Vec::new(),
            inbound: BTreeMap::new(),
            next_inbound: 0,
            connected: BTreeSet::new(),
            done: BTreeMap::new(),
            hasher: Sha256::new(),
            messages: 0,
        };
        for i in 0..n {
            let id = peer_id(seed, i);
            let mut config =
                Config::new(seed ^ u64::from(i) << 20, id.clone(), vec![listen_addr(i)]);
            configure(&mut config);
            let node = Node::new(config, MemStore::new(StoreLimits::default()), now, T0_WALL);
            net.by_id.insert(id.clone(), i as usize);
            net.peers.push(PeerInfo::new(id, [listen_addr(i)]));
            net.nodes.push(Some(node));
            net.timer_of.push(None);
            net.flush(i as usize);
        }
        net
    }

    pub fn node(&mut self, i: usize) -> &mut Node<MemStore> {
        self.nodes[i].as_mut().expect("a live node")
    }

    pub fn kill(&mut self, i: usize) {
        self.nodes[i] = None;
        if let Some(t) = self.timer_of[i].take() {
            self.timers.remove(&(t, i));
        }
    }

    pub fn is_alive(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    pub fn event_hash(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// Drains node `i`'s outputs onto the network and re-arms its timer.
    fn flush(&mut self, i: usize) {
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        let mut outs = Vec::new();
        while let Some(o) = node.poll_output() {
            outs.push(o);
        }
        let mut events = Vec::new();
        while let Some(Event::QueryDone(d)) = node.poll_event() {
            events.push(d);
        }
        let next = node.poll_timeout();
        for d in events {
            self.done.insert((i, d.id), d);
        }
        if let Some(t) = self.timer_of[i].take() {
            self.timers.remove(&(t, i));
        }
        if let Some(t) = next {
            self.timers.insert((t, i));
            self.timer_of[i] = Some(t);
        }
        let at = self.now + self.latency;
        for o in outs {
            match o {
                Output::Request {
                    to,
                    stream,
                    payload,
                    ..
                } => {
                    let target = self.by_id.get(to.id()).copied();
                    // The dial goes to the addresses given: a wrong one fails.
                    let reachable = target.filter(|&t| {
                        self.nodes[t].is_some()
                            && to.addrs().iter().any(|a| self.peers[t].addrs().contains(a))
                    });
                    match reachable {
                        Some(t) => {
                            self.connect(i, t);
                            self.push(
                                at,
                                Ev::Request {
                                    from: i,
                                    to: t,
                                    stream,
                                    payload,
                                },
                            );
                        }
                        None => self.push(at, Ev::Failed { to: i, stream }),
                    }
                }
                Output::Reply { stream, payload } => {
                    if let Some((c, cs)) = self.inbound.remove(&(i, stream)) {
                        self.push(
                            at,
                            Ev::Reply {
                                to: c,
                                stream: cs,
                                payload,
                            },
                        );
                    }
                }
                Output::Reset { stream } => {
                    if let Some((c, cs)) = self.inbound.remove(&(i, stream)) {
                        self.push(at, Ev::Failed { to: c, stream: cs });
                    }
                }
                Output::Datagram { .. } => panic!("dht-ipfs sends no datagrams"),
            }
        }
    }

    /// A first connection between `a` and `b`: identify runs both ways.
    fn connect(&mut self, a: usize, b: usize) {
        let pair = (a.min(b), a.max(b));
        if self.connected.insert(pair) {
            let at = self.now + self.latency;
            self.push(at, Ev::Identified { at: a, peer: b });
            self.push(at, Ev::Identified { at: b, peer: a });
        }
    }

    fn deliver(&mut self, ev: Ev) {
        let now = self.now;
        self.messages += 1;
        match ev {
            Ev::Request {
                from,
                to,
                stream,
                payload,
            } => {
                self.hasher.update([0]);
                self.hasher.update(&payload);
                self.next_inbound += 1;
                let inbound = StreamId(self.next_inbound);
                self.inbound.insert((to, inbound), (from, stream));
                // The connection's source address: an ephemeral port, not the listen one.
                let ip = &self.peers[from].addrs()[0].to_string();
                let source: Multiaddr = ip
                    .replace("/tcp/4001", "/tcp/50000")
                    .parse()
                    .expect("multiaddr");
                let from_peer = self.peers[from].with_addrs([source]);
                if let Some(n) = self.nodes[to].as_mut() {
                    n.handle_input(
                        now,
                        Input::StreamRequest {
                            from: from_peer,
                            stream: inbound,
                            bytes: &payload,
                        },
                    );
                }
                self.flush(to);
            }
            Ev::Reply {
                to,
                stream,
                payload,
            } => {
                self.hasher.update([1]);
                self.hasher.update(&payload);
                if let Some(n) = self.nodes[to].as_mut() {
                    n.handle_input(
                        now,
                        Input::StreamReply {
                            stream,
                            bytes: &payload,
                        },
                    );
                }
                self.flush(to);
            }
            Ev::Failed { to, stream } => {
                self.hasher.update([2]);
                self.hasher.update(stream.0.to_be_bytes());
                if let Some(n) = self.nodes[to].as_mut() {
                    n.handle_input(now, Input::StreamFailed { stream });
                }
                self.flush(to);
            }
            Ev::Identified { at, peer } => {
                if !self.is_alive(peer) {
                    return;
                }
                let protocols = self.nodes[peer]
                    .as_ref()
                    .map(|n| n.protocols())
                    .unwrap_or_default();
                let info = self.peers[peer].clone();
                if let Some(n) = self.nodes[at].as_mut() {
                    n.handle_input(
                        now,
                        Input::Identified {
                            peer: info,
                            protocols: &protocols,
                        },
                    );
                }
                self.flush(at);
            }
        }
    }

    /// Runs one event or timer; false when nothing is due before `until`.
    fn step(&mut self, until: Instant) -> bool {
        let next_msg = self.queue.first_key_value().map(|(k, _)| k.0);
        let next_timer = self.timers.first().map(|(t, _)| *t);
        let take_msg = match (next_msg, next_timer) {
            (Some(m), Some(t)) => m <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return false,
        };
        let at = if take_msg { next_msg } else { next_timer };
        let Some(at) = at.filter(|&t| t <= until) else {
            return false;
        };
        self.now = self.now.max(at);
        if take_msg {
            if let Some((_, ev)) = self.queue.pop_first() {
                self.deliver(ev);
            }
        } else if let Some((_, i)) = self.timers.pop_first() {
            self.timer_of[i] = None;
            let now = self.now;
            if let Some(n) = self.nodes[i].as_mut() {
                n.handle_timeout(now);
            }
            self.flush(i);
        }
        true
    }

    /// Runs until `d` of virtual time has passed.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.step(until) {}
        self.now = until;
    }

    /// Starts `request` at node `i` and runs until it ends (at most `limit`).
    pub fn run_request(
        &mut self,
        i: usize,
        request: Request,
        limit: Duration,
    ) -> QueryDone<Outcome> {
        let now = self.now;
        let id = self.node(i).start(now, request).expect("request accepted");
        self.flush(i);
        let until = self.now + limit;
        while !self.done.contains_key(&(i, id)) {
            assert!(
                self.step(until),
                "request {id:?} at node {i} did not end within {limit:?}"
            );
        }
        self.done.remove(&(i, id)).expect("done")
    }

    /// Starts `request` at node `i` without waiting.
    pub fn start(&mut self, i: usize, request: Request) -> QueryId {
        let now = self.now;
        let id = self.node(i).start(now, request).expect("request accepted");
        self.flush(i);
        id
    }
}
