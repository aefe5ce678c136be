//! Candidate diversity per prefix (issue 26, item 2): one IPv6 /64 (or one IPv4 /24,
//! or one IPv4 /16) that offers all k contacts closest to a lookup's target, from many
//! addresses, does not fill the lookup's window: at most one candidate per /64
//! (`lookup_max_per_ip`, a /64 counting as one host), two per /24
//! (`lookup_max_per_prefix`) and four per /16 (`lookup_max_per_v4_16`, issue 26 item 4:
//! a targeted eclipse from one /16), so the lookup goes on to honest nodes and ends
//! with them.
//!
//! One node runs the lookup; its requests are answered in memory by a scripted
//! network. Addresses are documentation, benchmarking and IETF blocks (2001:db8::/32,
//! 198.18.0.0/15, 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 192.0.0.0/24):
//! public, so no exemption applies, and never routed.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use common::{TestStore, WALL0};
use dht_core::krpc::{self, Body, Message, Response};
use dht_core::{Config, Event, Id, Node, NodeInfo, Outcome, Request};
use dht_core::{RoutingSnapshot, SnapshotNode, Store};

const K: usize = 8;

fn target() -> Id {
    Id([0x55; 20])
}

/// `target` with byte `at` flipped by `x`: the larger `at`, the closer.
fn near(at: usize, x: u8) -> Id {
    let mut id = target().0;
    id[at] ^= x;
    Id(id)
}

/// Where the attackers sit.
#[derive(Clone, Copy, PartialEq)]
enum Attackers {
    /// One IPv6 /64.
    V6Slash64,
    /// One IPv4 /24.
    V4Slash24,
    /// One IPv4 /16, a /24 each.
    V4Slash16,
}

struct Network {
    router: NodeInfo,
    /// The k closest to the target, all in one network.
    attackers: Vec<NodeInfo>,
    /// Farther than every attacker, each in a network of its own.
    honest: Vec<NodeInfo>,
}

impl Network {
    fn new(attackers: Attackers) -> Network {
        let v6 = attackers == Attackers::V6Slash64;
        let at = |ip: IpAddr| SocketAddr::new(ip, 6881);
        let router = NodeInfo {
            id: near(0, 0x80),
            addr: if v6 {
                at("2001:db8:1::1".parse().unwrap())
            } else {
                at("198.18.0.1".parse().unwrap())
            },
        };
        let attackers = (1..=K as u8)
            .map(|i| NodeInfo {
                id: near(19, i),
                addr: match attackers {
                    Attackers::V6Slash64 => at(format!("2001:db8:bad:1::{i}").parse().unwrap()),
                    Attackers::V4Slash24 => at(format!("192.0.2.{i}").parse().unwrap()),
                    Attackers::V4Slash16 => at(format!("198.19.{i}.1").parse().unwrap()),
                },
            })
            .collect();
        let honest = (1..=K as u8)
            .map(|i| NodeInfo {
                id: near(10, i),
                // At most two per /24 and, with the router (198.18.0.1), four per
                // /16, away from the attackers' networks: within every bound.
                addr: if v6 {
                    at(format!("2001:db8:100:{i}::1").parse().unwrap())
                } else {
                    let honest = [
                        "198.18.1.1",
                        "198.18.1.2",
                        "198.18.2.1",
                        "198.51.100.1",
                        "198.51.100.2",
                        "203.0.113.1",
                        "203.0.113.2",
                        "192.0.0.1",
                    ];
                    at(honest[usize::from(i - 1)].parse().unwrap())
                },
            })
            .collect();
        Network {
            router,
            attackers,
            honest,
        }
    }

    /// Who is at `addr` and what it answers: the router points at everyone, the
    /// attackers only at each other, honest nodes at honest nodes.
    fn answer(&self, addr: SocketAddr) -> Option<(Id, Vec<NodeInfo>)> {
        if addr == self.router.addr {
            let all = self.attackers.iter().chain(&self.honest).copied().collect();
            return Some((self.router.id, all));
        }
        if let Some(a) = self.attackers.iter().find(|n| n.addr == addr) {
            return Some((a.id, self.attackers.clone()));
        }
        let h = self.honest.iter().find(|n| n.addr == addr)?;
        Some((h.id, self.honest.clone()))
    }
}

/// Runs a find_node toward the target from a node that knows only the router; returns
/// the lookup's closest responders and the honest nodes it asked.
fn lookup(attackers: Attackers) -> (Vec<NodeInfo>, usize, Network) {
    let v6 = attackers == Attackers::V6Slash64;
    let net = Network::new(attackers);
    let mut store = TestStore::default();
    store
        .save_routing(&RoutingSnapshot {
            node_id: None,
            nodes: vec![SnapshotNode {
                node: net.router,
                last_seen: 0,
            }],
        })
        .expect("in-memory store");
    let mut now = Instant::now();
    let cfg = Config::with_seed(26);
    let mut n = Node::new(cfg, store, now, WALL0).expect("valid config");
    n.start(now, Request::FindNode { target: target() })
        .expect("a find_node");
    let mut asked_honest = 0;
    for _ in 0..1_000 {
        let mut sent = Vec::new();
        while let Some(t) = n.poll_transmit() {
            sent.push(t);
        }
        for t in sent {
            let m = krpc::decode(&t.payload).expect("we send what we decode");
            if !matches!(m.body, Body::Query(_)) {
                continue;
            }
            let Some((id, nodes)) = net.answer(t.to) else {
                continue;
            };
            asked_honest += usize::from(net.honest.iter().any(|h| h.addr == t.to));
            let r = if v6 {
                Response::new(id).with_nodes6(nodes)
            } else {
                Response::new(id).with_nodes(nodes)
            };
            let reply = Message::new(m.transaction_id.clone(), Body::Response(r)).to_bytes();
            n.handle_datagram(now, t.to, None, &reply);
        }
        if let Some(Event::QueryDone(d)) = n.poll_event() {
            match d.outcome {
                Outcome::Nodes { closest } => return (closest, asked_honest, net),
                o => panic!("a find_node ends with nodes, not {o:?}"),
            }
        }
        if let Some(t) = n.poll_timeout() {
            now = now.max(t);
            n.handle_timeout(now);
        }
    }
    panic!("the lookup did not end");
}

fn honest_in(closest: &[NodeInfo], net: &Network) -> usize {
    closest.iter().filter(|c| net.honest.contains(c)).count()
}

#[test]
fn one_v6_slash_64_offering_all_k_closest_leaves_room_for_honest_nodes() {
    let (closest, asked_honest, net) = lookup(Attackers::V6Slash64);
    assert_eq!(closest.len(), K, "{closest:?}");
    // One attacker (the /64's one candidate) and the 7 closest honest nodes.
    assert_eq!(honest_in(&closest, &net), K - 1, "{closest:?}");
    assert!(asked_honest >= K - 1, "honest nodes asked: {asked_honest}");
}

#[test]
fn one_v4_slash_24_offering_all_k_closest_leaves_room_for_honest_nodes() {
    let (closest, asked_honest, net) = lookup(Attackers::V4Slash24);
    assert_eq!(closest.len(), K, "{closest:?}");
    // Two attackers (the /24's bound) and the 6 closest honest nodes.
    assert_eq!(honest_in(&closest, &net), K - 2, "{closest:?}");
    assert!(asked_honest >= K - 2, "honest nodes asked: {asked_honest}");
}

#[test]
fn one_v4_slash_16_offering_all_k_closest_leaves_room_for_honest_nodes() {
    let (closest, asked_honest, net) = lookup(Attackers::V4Slash16);
    assert_eq!(closest.len(), K, "{closest:?}");
    // Four attackers (the /16's bound, each on a /24 of its own) and the 4 closest
    // honest nodes.
    assert_eq!(honest_in(&closest, &net), K - 4, "{closest:?}");
    assert!(asked_honest >= K - 4, "honest nodes asked: {asked_honest}");
}
