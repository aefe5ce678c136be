//! The Sybils: adversarial nodes played by the simulator itself, not by dht-core.

use std::net::SocketAddr;

use dht_core::krpc::{self, Body, ErrorBody, Message, Method, Response};
use dht_core::Candidates;
use dht_core::{Id, NodeInfo};

use super::Sim;
use crate::address::SYBIL_BIT;

/// The write token every Sybil hands out in get and get_peers replies, so that honest
/// puts and announces are sent to it and vanish (the realistic attack: a Sybil that
/// withheld tokens would only make itself useless as a storage node).
const SYBIL_TOKEN: &[u8] = b"syb1";

/// An adversarial node, played by the simulator itself rather than by dht-core.
#[derive(Debug)]
pub(super) struct Sybil {
    pub(super) id: Id,
    /// Its join: an iterative find_node of its own id over honest nodes, so that the
    /// nodes near its id learn it as an honest newcomer's bootstrap would make them.
    /// Best effort: no timeouts or retries, a lost datagram only shortens it.
    join: Option<Candidates>,
    next_tid: u32,
}

impl Sim {
    /// Creates a Sybil with `id` at the current virtual time (at most
    /// [`crate::AddressPlan::max_sybils`]).
    ///
    /// A Sybil is played by the simulator, not by dht-core. It answers every query at
    /// once: ping normally (so honest nodes keep it in their tables); find_node,
    /// get_peers, get and sample_infohashes with the K Sybils closest to the target
    /// (from the adversary's global view) and a write token, never with values or a
    /// `v`; put and announce_peer with an OK while storing nothing, so that what honest
    /// nodes write to it vanishes. It joins like a newcomer: an iterative find_node of
    /// its own id starting at the seed nodes, which makes the honest nodes near its id
    /// ping it and take it into their tables.
    pub fn add_sybil(&mut self, id: Id) -> usize {
        assert!(
            self.sybils.len() < self.cfg.address_plan.max_sybils(),
            "too many Sybils for the address plan"
        );
        let s = self.sybils.len();
        self.addrs.add_sybil();
        let pos = self.sybil_sorted.partition_point(|(x, _)| *x < id);
        self.sybil_sorted.insert(pos, (id, s as u32));
        let mut join = Candidates::new(id, self.cfg.k, self.cfg.alpha, 64);
        // A newcomer knows its bootstrap nodes' addresses; the simulator hands over
        // their ids too, which only saves the Sybil one round trip.
        let seeds = self.cfg.seed_nodes.clamp(1, self.nodes.len().max(1));
        for i in 0..seeds.min(self.nodes.len()) {
            join.add(
                NodeInfo {
                    id: self.nodes[i].id(),
                    addr: self.addr(i),
                },
                1,
            );
        }
        self.sybils.push(Sybil {
            id,
            join: Some(join),
            next_tid: 0,
        });
        self.sybil_drive_join(s);
        s
    }

    /// Sends the next find_node requests of Sybil `s`'s join, or ends it.
    fn sybil_drive_join(&mut self, s: usize) {
        let Some(join) = self.sybils[s].join.as_mut() else {
            return;
        };
        let next = join.next_to_query();
        if next.is_empty() && join.is_done() {
            self.sybils[s].join = None;
            return;
        }
        let id = self.sybils[s].id;
        for n in next {
            let method = Method::find_node(id);
            self.sybil_query(s, n.addr, method);
        }
    }

    fn sybil_query(&mut self, s: usize, to: SocketAddr, method: Method) {
        let sy = &mut self.sybils[s];
        sy.next_tid = sy.next_tid.wrapping_add(1);
        let msg = Message::query(sy.next_tid.to_be_bytes().to_vec(), sy.id, method);
        self.send(SYBIL_BIT | s as u32, to, msg.to_bytes());
    }

    /// The K Sybils closest to `target`, other than `except`.
    fn sybils_closest(&self, target: &Id, except: usize) -> Vec<NodeInfo> {
        crate::global::closest_in(&self.sybil_sorted, target, self.cfg.k + 1)
            .into_iter()
            .filter(|&t| t as usize != except)
            .take(self.cfg.k)
            .map(|t| NodeInfo {
                id: self.sybils[t as usize].id,
                addr: self.sybil_addr(t as usize),
            })
            .collect()
    }

    /// A datagram from event-queue index `from` reached Sybil `s`.
    pub(super) fn sybil_receive(&mut self, from: u32, s: usize, payload: &[u8]) {
        // Whatever does not decode gets silence: a Sybil has no reason to help.
        let Ok(msg) = krpc::decode(payload) else {
            return;
        };
        let from_addr = self.addr_of_index(from);
        let q = match msg.body {
            Body::Query(q) => q,
            Body::Response(r) => {
                // A reply to the Sybil's join: learn honest nodes only (the Sybil
                // knows the others already) and go on.
                let honest: Vec<NodeInfo> = r
                    .nodes
                    .into_iter()
                    .filter(|n| self.index_of(&n.addr).is_some_and(|i| i & SYBIL_BIT == 0))
                    .collect();
                let Some(join) = self.sybils[s].join.as_mut() else {
                    return;
                };
                if !join.addr_matches(&r.id, &from_addr) {
                    return;
                }
                let Some(depth) = join.on_response(&r.id, None) else {
                    return;
                };
                for n in honest {
                    join.add(n, depth + 1);
                }
                self.sybil_drive_join(s);
                return;
            }
            Body::Error(_) => return,
        };
        let id = self.sybils[s].id;
        let mut r = Response::new(id);
        let body = match q.method {
            Method::Ping | Method::Put(_) | Method::AnnouncePeer { .. } => Body::Response(r),
            Method::FindNode { target, .. } => {
                r.nodes = self.sybils_closest(&target, s);
                Body::Response(r)
            }
            Method::GetPeers { info_hash, .. } => {
                r.nodes = self.sybils_closest(&info_hash, s);
                r.token = Some(SYBIL_TOKEN.to_vec());
                Body::Response(r)
            }
            Method::Get { target, .. } => {
                r.nodes = self.sybils_closest(&target, s);
                r.token = Some(SYBIL_TOKEN.to_vec());
                Body::Response(r)
            }
            Method::SampleInfohashes { target, .. } => {
                r.nodes = self.sybils_closest(&target, s);
                r.samples = Some(Vec::new());
                r.interval = Some(300);
                r.num = Some(0);
                Body::Response(r)
            }
            Method::Unknown { .. } => {
                Body::Error(ErrorBody::new(krpc::code::METHOD_UNKNOWN, "method unknown"))
            }
        };
        let reply = Message::new(msg.transaction_id, body);
        self.send(SYBIL_BIT | s as u32, from_addr, reply.to_bytes());
    }
}
