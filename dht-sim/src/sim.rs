//! Kademlia on the virtual network: [`Sim`] is a [`Network`] of real dht-core
//! [`Node`]s over [`MemStore`]s, on the address plan of [`SimConfig::address_plan`],
//! with the Sybils the simulator plays and its record of who answered whose lookup.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use dht_core::{Bep42Mode, Config, Id, IdPolicy, Node, NodeInfo, Outcome, Request, UnixMillis};
use dht_store_mem::MemStore;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::address::{AddressPlan, Addresses, SYBIL_BIT};
use crate::net::{Network, SimConfig, SimOverlay};
use crate::rng::{below, mix64};

mod answers;
mod sybil;
use answers::AnswerLog;
use sybil::{Sends, Sybils};

/// The settings of a simulated node, its seed aside; `bep42_addr` is the node's own
/// address when BEP 42 is on.
fn node_config(cfg: &SimConfig, bep42_addr: Option<SocketAddr>) -> Config {
    let mut config = Config::default();
    config.k = cfg.k;
    config.alpha = cfg.alpha;
    config.disjoint_paths = cfg.disjoint_paths;
    config.handover = cfg.handover;
    // As the runtime does for a node bound to a public address: private sources
    // are strangers, not a LAN, and nothing the plan hands out is exempt.
    if let AddressPlan::Public { .. } = cfg.address_plan {
        config.defense.local_listen = false;
    }
    // BEP 42 on: an id derived from the node's address, and none but such ids
    // from others' (exempt addresses excepted, as BEP 42 says).
    if let Some(addr) = bep42_addr {
        config.id_policy = IdPolicy::Bep42(addr.ip());
        config.defense.bep42 = Bep42Mode::Enforce;
    }
    // Simulated nodes never restart from a store: a routing snapshot per node would
    // only cost memory (kilobytes each, gigabytes at 100,000 nodes).
    config.routing_save_interval = std::time::Duration::from_secs(30 * 24 * 3600);
    config
}

/// What [`node_config`] reads of a [`SimConfig`] without BEP 42.
type SharedKey = (usize, usize, usize, bool, bool);

thread_local! {
    /// The configuration the last network built on this thread shared among its nodes,
    /// with what it was made from. A network's nodes are created one at a time through
    /// [`SimOverlay::create`], which is given only the [`SimConfig`]; a change of any
    /// setting it reads makes a new one.
    static SHARED: std::cell::RefCell<Option<(SharedKey, Arc<Config>)>> =
        const { std::cell::RefCell::new(None) };
}

fn shared_config(cfg: &SimConfig) -> Arc<Config> {
    let key = (
        cfg.k,
        cfg.alpha,
        cfg.disjoint_paths,
        cfg.handover,
        matches!(cfg.address_plan, AddressPlan::Public { .. }),
    );
    SHARED.with(|shared| {
        let mut shared = shared.borrow_mut();
        match &*shared {
            Some((k, config)) if *k == key => Arc::clone(config),
            _ => {
                let config = Arc::new(node_config(cfg, None));
                *shared = Some((key, Arc::clone(&config)));
                config
            }
        }
    })
}

/// N dht-core nodes over the virtual network on virtual time (see [`Network`]).
pub type Sim = Network<Node<MemStore>>;

/// What the simulator keeps for Kademlia beside the nodes.
#[derive(Debug, Default)]
pub struct KademliaWorld {
    sybils: Sybils,
    answers: AnswerLog,
}

impl SimOverlay for Node<MemStore> {
    const NAME: &'static str = "kademlia";
    type Key = Id;
    type Book = Addresses;
    type World = KademliaWorld;

    fn book(cfg: &SimConfig) -> Addresses {
        Addresses::new(cfg.address_plan, cfg.seed)
    }

    fn create(
        cfg: &SimConfig,
        addr: SocketAddr,
        seed: u64,
        now: Instant,
        wall: UnixMillis,
    ) -> Node<MemStore> {
        let mut own_seed = [0u8; 32];
        own_seed[..8].copy_from_slice(&seed.to_le_bytes());
        // BEP 42 derives each node's id from its own address, which is part of its
        // configuration; otherwise every node of the network has the same settings,
        // held once (half a kilobyte a node, half a gigabyte at a million).
        let config = if cfg.bep42 {
            Arc::new(node_config(cfg, Some(addr)))
        } else {
            shared_config(cfg)
        };
        Node::with_shared_config(config, own_seed, MemStore::new(), now, wall)
            .expect("valid config")
    }

    fn id(&self) -> Id {
        Node::id(self)
    }

    fn join_request(seeds: Vec<SocketAddr>) -> Request {
        Request::Bootstrap { seeds }
    }

    fn lookup_request(target: Id) -> Request {
        Request::FindNode { target }
    }

    fn lookup_result(outcome: &Outcome) -> Vec<Id> {
        match outcome {
            Outcome::Nodes { closest } => closest.iter().map(|n| n.id).collect(),
            _ => Vec::new(),
        }
    }

    /// The closest live node other than the source, anywhere in the answer.
    fn judge_lookup(net: &Sim, src: usize, target: &Id, got: &[Id]) -> bool {
        let truth = net
            .live()
            .into_iter()
            .filter(|&i| i != src)
            .map(|i| net.node(i).id())
            .min_by_key(|id| id.distance(target));
        truth.is_some_and(|t| got.contains(&t))
    }

    /// The seed nodes start together and bootstrap from each other, then one node
    /// arrives every `join_interval` and bootstraps from the seed nodes (Sybils take
    /// `sybils` random arrival slots); finally the network runs for `settle`.
    fn join_all(net: &mut Sim, progress: &mut dyn FnMut(usize)) {
        let cfg = net.config().clone();
        let n = cfg.nodes;
        let seeds = cfg.seed_nodes.clamp(1, n.max(1));
        for _ in 0..seeds.min(n) {
            net.add_node();
        }
        let seed_addrs: Vec<SocketAddr> = (0..seeds.min(n)).map(|i| net.addr(i)).collect();
        for i in 0..seeds.min(n) {
            let others: Vec<SocketAddr> = seed_addrs
                .iter()
                .copied()
                .filter(|a| *a != seed_addrs[i])
                .collect();
            net.command_untracked(i, |node, now| {
                node.start(now, Request::Bootstrap { seeds: others })
                    .expect("request")
            });
        }
        let start = net.now();
        // Sybils take random arrival slots among the later arrivals: sequential
        // sampling (a slot is a Sybil's with probability Sybils left / slots left)
        // gives exactly `sybils` of them. Its own generator, so that a run without
        // Sybils draws nothing more than before.
        let mut sybils_left = cfg.sybils.min(cfg.address_plan.max_sybils());
        let total = n + sybils_left;
        let mut sybil_rng = ChaCha8Rng::seed_from_u64(mix64(cfg.seed ^ 0x5b11_0000_0000_0001));
        for slot in seeds.min(n)..total {
            net.run_until(start + cfg.join_interval * (slot - seeds + 1) as u32);
            let slots_left = total - slot;
            if sybils_left > 0 && below(&mut sybil_rng, slots_left) < sybils_left {
                sybils_left -= 1;
                let id = Id::random(&mut sybil_rng);
                net.add_sybil(id);
            } else {
                let j = net.add_node();
                let seeds = seed_addrs.to_vec();
                net.command_untracked(j, |node, now| {
                    node.start(now, Request::Bootstrap { seeds })
                        .expect("request")
                });
            }
            if slot % 10_000 == 0 {
                progress(slot);
            }
        }
        net.run_for(cfg.settle);
        progress(total);
    }

    fn on_send(net: &mut Sim, from: u32, to: u32, payload: &[u8]) {
        if net.world().answers.is_on() && net.has_command(from) {
            net.world_mut().answers.on_send(from, to, payload);
        }
    }

    fn on_deliver(net: &mut Sim, from: u32, to: u32, payload: &[u8]) {
        if net.world().answers.is_on() && net.has_command(to) {
            net.world_mut().answers.on_deliver(from, to, payload);
        }
    }

    fn deliver_to_played(net: &mut Sim, from: u32, s: usize, payload: &[u8]) {
        let k = net.config().k;
        let from_addr = net.book().of_index(from);
        let (world, book) = net.world_with_book();
        let sends = world.sybils.receive(s, from_addr, payload, k, book);
        net.send_as_sybil(s, sends);
    }
}

impl Sim {
    /// The address of Sybil `s`.
    pub fn sybil_addr(&self, s: usize) -> SocketAddr {
        self.book().sybil(s)
    }

    /// Sybils created so far.
    pub fn sybil_count(&self) -> usize {
        self.world().sybils.len()
    }

    /// The id of Sybil `s`.
    pub fn sybil_id(&self, s: usize) -> Id {
        self.world().sybils.id(s)
    }

    /// Is `addr` a Sybil's?
    pub fn is_sybil_addr(&self, addr: &SocketAddr) -> bool {
        self.book()
            .index_of(addr)
            .is_some_and(|i| i & SYBIL_BIT != 0)
    }

    /// The Sybil index of the Sybil at `addr`, if one is there.
    pub fn sybil_index(&self, addr: &SocketAddr) -> Option<usize> {
        self.book()
            .index_of(addr)
            .filter(|i| i & SYBIL_BIT != 0)
            .map(|i| (i & !SYBIL_BIT) as usize)
    }

    /// Starts (`true`, forgetting earlier answers) or stops recording which nodes
    /// answer the queries of tracked commands (see [`Sim::answered`]). Costs a decode
    /// of those commands' datagrams; off by default.
    pub fn watch_answers(&mut self, on: bool) {
        self.world_mut().answers.watch(on);
    }

    /// While answers were watched, did node `responder` send node `querier` a
    /// response to a query for `target` (find_node, get_peers, get or
    /// sample_infohashes), as seen on the wire?
    pub fn answered(&self, querier: usize, target: &Id, responder: usize) -> bool {
        self.world()
            .answers
            .answered(querier as u32, target, responder as u32)
    }

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
        self.add_attacker(id, None, 0)
    }

    /// As [`Sim::add_sybil`], an eclipse's attacker: at address `ip` (public plan;
    /// nobody may have it yet) or, for `None`, a /24 of its own; answering with the
    /// Sybils of its `group` only (its key's attackers; the Sybils of
    /// [`Sim::add_sybil`] are group 0).
    pub fn add_attacker(&mut self, id: Id, ip: Option<std::net::Ipv4Addr>, group: u32) -> usize {
        let cfg = self.config();
        let (k, alpha, seed_nodes) = (cfg.k, cfg.alpha, cfg.seed_nodes);
        assert!(
            self.sybil_count() < cfg.address_plan.max_sybils(),
            "too many Sybils for the address plan"
        );
        match ip {
            Some(ip) => self.book_mut().add_sybil_at(ip),
            None => self.book_mut().add_sybil(),
        };
        // A newcomer knows its bootstrap nodes' addresses; the simulator hands over
        // their ids too, which only saves the Sybil one round trip.
        let seeds = seed_nodes.clamp(1, self.len().max(1)).min(self.len());
        let seeds: Vec<NodeInfo> = (0..seeds)
            .map(|i| NodeInfo {
                id: self.node(i).id(),
                addr: self.addr(i),
            })
            .collect();
        let (s, sends) = self
            .world_mut()
            .sybils
            .add(id, group, k, alpha, seeds.into_iter());
        self.send_as_sybil(s, sends);
        s
    }

    /// Puts what Sybil `s` sends on the wire, in order.
    fn send_as_sybil(&mut self, s: usize, sends: Sends) {
        for (to, payload) in sends {
            self.send(SYBIL_BIT | s as u32, &to, payload);
        }
    }
}
