//! The Sybils: adversarial nodes played by the simulator itself, not by dht-core.
//!
//! Like a node, they are fed datagrams and return the datagrams to send, which
//! [`crate::Sim`] puts on the network; they never touch the network themselves.

use std::net::SocketAddr;

use dht_core::kernel::Candidates;
use dht_core::krpc::{self, Body, ErrorBody, Message, Method, Response};
use dht_core::{Id, NodeInfo};

use crate::address::{Addresses, SYBIL_BIT};
use crate::closest::closest_in;

/// The write token every Sybil hands out in get and get_peers replies, so that honest
/// puts and announces are sent to it and vanish (the realistic attack: a Sybil that
/// withheld tokens would only make itself useless as a storage node).
const SYBIL_TOKEN: &[u8] = b"syb1";

/// Datagrams a Sybil sends: (destination, payload).
pub(super) type Sends = Vec<(SocketAddr, Vec<u8>)>;

/// Every Sybil of a run, and the adversary's global view of them.
#[derive(Debug, Default)]
pub(super) struct Sybils {
    list: Vec<Sybil>,
    /// Per group, Sybil ids in ascending order with their Sybil index: the
    /// adversary's view, from which every Sybil answers with the Sybils of its group
    /// closest to a target. One group (0) for Sybils at random or adjacent ids: one
    /// adversary; a group per key for an eclipse's attackers, so that each key's
    /// attack has its own address budget and nothing more.
    sorted: std::collections::BTreeMap<u32, Vec<(Id, u32)>>,
}

/// An adversarial node, played by the simulator itself rather than by dht-core.
#[derive(Debug)]
struct Sybil {
    id: Id,
    /// Whose Sybils it answers with (see [`Sybils::sorted`]).
    group: u32,
    /// Its join: an iterative find_node of its own id over honest nodes, so that the
    /// nodes near its id learn it as an honest newcomer's bootstrap would make them.
    /// Best effort: no timeouts or retries, a lost datagram only shortens it.
    join: Option<Candidates>,
    next_tid: u32,
}

impl Sybils {
    /// Sybils created so far.
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    /// The id of Sybil `s`.
    pub(super) fn id(&self, s: usize) -> Id {
        self.list[s].id
    }

    /// Creates the next Sybil with `id` in `group`, its join starting at `seeds` (K =
    /// `k`, alpha requests in flight); returns its index and its first find_node queries.
    pub(super) fn add(
        &mut self,
        id: Id,
        group: u32,
        k: usize,
        alpha: usize,
        seeds: impl Iterator<Item = NodeInfo>,
    ) -> (usize, Sends) {
        let s = self.list.len();
        let sorted = self.sorted.entry(group).or_default();
        let pos = sorted.partition_point(|(x, _)| *x < id);
        sorted.insert(pos, (id, s as u32));
        let mut join = Candidates::new(id, k, alpha, 64);
        for seed in seeds {
            join.add(seed, 1);
        }
        self.list.push(Sybil {
            id,
            group,
            join: Some(join),
            next_tid: 0,
        });
        let mut out = Vec::new();
        self.drive_join(s, &mut out);
        (s, out)
    }

    /// The next find_node requests of Sybil `s`'s join, or its end.
    fn drive_join(&mut self, s: usize, out: &mut Sends) {
        let Some(join) = self.list[s].join.as_mut() else {
            return;
        };
        let next = join.next_to_query();
        if next.is_empty() && join.is_done() {
            self.list[s].join = None;
            return;
        }
        let id = self.list[s].id;
        for n in next {
            let method = Method::find_node(id);
            out.push((n.addr, self.query(s, method)));
        }
    }

    fn query(&mut self, s: usize, method: Method) -> Vec<u8> {
        let sy = &mut self.list[s];
        sy.next_tid = sy.next_tid.wrapping_add(1);
        let msg = Message::query(sy.next_tid.to_be_bytes().to_vec(), sy.id, method);
        msg.to_bytes()
    }

    /// The `k` Sybils of `except`'s group closest to `target`, other than `except`.
    fn closest(&self, target: &Id, except: usize, k: usize, book: &Addresses) -> Vec<NodeInfo> {
        let Some(sorted) = self.sorted.get(&self.list[except].group) else {
            return Vec::new();
        };
        closest_in(sorted, target, k + 1)
            .into_iter()
            .filter(|&t| t as usize != except)
            .take(k)
            .map(|t| NodeInfo {
                id: self.list[t as usize].id,
                addr: book.sybil(t as usize),
            })
            .collect()
    }

    /// A datagram from `from` reached Sybil `s`; returns what it sends in turn. `k` is
    /// the network's K, `book` its addresses.
    pub(super) fn receive(
        &mut self,
        s: usize,
        from: SocketAddr,
        payload: &[u8],
        k: usize,
        book: &Addresses,
    ) -> Sends {
        let mut out = Vec::new();
        // Whatever does not decode gets silence: a Sybil has no reason to help.
        let Ok(msg) = krpc::decode(payload) else {
            return out;
        };
        let q = match msg.body {
            Body::Query(q) => q,
            Body::Response(r) => {
                // A reply to the Sybil's join: learn honest nodes only (the Sybil
                // knows the others already) and go on.
                let honest: Vec<NodeInfo> = r
                    .nodes
                    .into_iter()
                    .filter(|n| book.index_of(&n.addr).is_some_and(|i| i & SYBIL_BIT == 0))
                    .collect();
                let Some(join) = self.list[s].join.as_mut() else {
                    return out;
                };
                if !join.addr_matches(&r.id, &from) {
                    return out;
                }
                let Some(depth) = join.on_response(&r.id, None) else {
                    return out;
                };
                for n in honest {
                    join.add(n, depth + 1);
                }
                self.drive_join(s, &mut out);
                return out;
            }
            Body::Error(_) => return out,
        };
        let id = self.list[s].id;
        let mut r = Response::new(id);
        let body = match q.method {
            Method::Ping | Method::Put(_) | Method::AnnouncePeer { .. } => Body::Response(r),
            Method::FindNode { target, .. } => {
                r.nodes = self.closest(&target, s, k, book);
                Body::Response(r)
            }
            Method::GetPeers { info_hash, .. } => {
                r.nodes = self.closest(&info_hash, s, k, book);
                r.token = Some(SYBIL_TOKEN.to_vec());
                Body::Response(r)
            }
            Method::Get { target, .. } => {
                r.nodes = self.closest(&target, s, k, book);
                r.token = Some(SYBIL_TOKEN.to_vec());
                Body::Response(r)
            }
            Method::SampleInfohashes { target, .. } => {
                r.nodes = self.closest(&target, s, k, book);
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
        out.push((from, reply.to_bytes()));
        out
    }
}
