//! Chord on the virtual network: [`ChordSim`] is [`crate::Sim`]'s [`Network`] with
//! dht-chord nodes on it, at 10.0.0.1 + i (the private plan: dht-chord has no
//! per-address defenses). Only the node type and the join differ.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_chord::{ChordNode, Config, Outcome, Request};
use dht_core::{Id, UnixMillis};
use dht_store_mem::MemStore;

use crate::address::{AddressPlan, Addresses};
use crate::net::{Network, SimConfig, SimOverlay};

/// Node j arrives at least this long divided by j after node j - 1 (see `join_all`).
const ARRIVAL_PACE: Duration = Duration::from_secs(2);

/// Time between two seed nodes' joins: a few stabilize periods.
const SEED_PACE: Duration = Duration::from_secs(3);

/// N Chord nodes over the virtual network on virtual time. With this overlay
/// [`SimConfig::k`] is r, the successor-list length and number of copies of a key.
pub type ChordSim = Network<ChordNode<MemStore>>;

impl SimOverlay for ChordNode<MemStore> {
    const NAME: &'static str = "chord";
    type Key = Id;
    type Book = Addresses;
    type World = ();

    fn book(cfg: &SimConfig) -> Addresses {
        Addresses::new(AddressPlan::Private, cfg.seed)
    }

    fn create(cfg: &SimConfig, peer: SocketAddr, seed: u64, now: Instant, _: UnixMillis) -> Self {
        let mut config = Config::new(peer, seed);
        config.successors = cfg.k;
        ChordNode::new(config, MemStore::new(), now)
    }

    fn id(&self) -> Id {
        ChordNode::id(self)
    }

    fn join_request(bootstrap: Vec<SocketAddr>) -> Request {
        Request::Join { bootstrap }
    }

    fn lookup_request(target: Id) -> Request {
        Request::FindSuccessor { target }
    }

    fn lookup_result(outcome: &Outcome) -> Vec<Id> {
        match outcome {
            Outcome::Successors { successors } => successors.iter().map(|p| p.id).collect(),
            _ => Vec::new(),
        }
    }

    /// The key's live successor, first in the answer.
    fn judge_lookup(net: &ChordSim, _: usize, target: &Id, got: &[Id]) -> bool {
        // The first live id at or after the target, by a scan: the ring changes
        // between two judgements, and a scan of N ids costs less than a sort.
        let truth = net
            .live()
            .into_iter()
            .map(|i| net.node(i).id())
            .min_by_key(|id| dht_chord::ring::sub(id, target));
        truth.is_some() && got.first() == truth.as_ref()
    }

    /// As Kademlia's join but for the pace of arrivals: node 0 creates the ring and the
    /// other seed nodes join through it, then node j arrives max(`join_interval`, 2 s /
    /// j) after node j - 1 and joins through the seed nodes; then the ring settles.
    fn join_all(net: &mut ChordSim, progress: &mut dyn FnMut(usize)) {
        let cfg = net.config().clone();
        let n = cfg.nodes;
        let seeds = cfg.seed_nodes.clamp(1, n.max(1)).min(n);
        for i in 0..seeds {
            // One at a time: seeds joining a ring of one together can close a loop
            // around it twice, which stabilize never undoes.
            net.run_for(SEED_PACE * u32::from(i > 0));
            net.add_node();
            let bootstrap = if i == 0 {
                Vec::new()
            } else {
                vec![net.addr(0)]
            };
            net.command_untracked(i, |node, now| node.join(now, &bootstrap));
        }
        let mut at = net.now();
        for slot in seeds..n {
            // A ring absorbs about one arrival per gap and stabilize period: arrivals
            // much faster than that pile up in the few gaps of a young ring, and
            // stabilize sorts each pile one node per round. So arrivals keep pace
            // with the ring's size, 2 s / (nodes so far), and never come faster than
            // the Kademlia network's one per `join_interval`.
            at += cfg.join_interval.max(ARRIVAL_PACE / slot as u32);
            net.run_until(at);
            let j = net.add_node();
            // Every seed, starting at a different one per node: a seed that has not
            // finished its own join yet ignores queries, and the next one is asked.
            let bootstrap: Vec<SocketAddr> =
                (0..seeds).map(|k| net.addr((slot + k) % seeds)).collect();
            net.command_untracked(j, |node, now| node.join(now, &bootstrap));
            if slot % 10_000 == 0 {
                progress(slot);
            }
        }
        net.run_for(cfg.settle);
        progress(n);
    }
}

impl ChordSim {
    /// Node `i` leaves voluntarily (its goodbye messages go out), then is dead.
    pub fn leave(&mut self, i: usize) {
        self.command_untracked(i, |n, now| n.leave(now));
        self.kill(i);
    }
}
