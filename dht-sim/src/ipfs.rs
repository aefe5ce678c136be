//! IPFS's Kademlia ([`dht_ipfs::Node`]) on the simulated network: its peers
//! ([`PeerBook`]: a PeerId and a loopback multiaddr per node) and its glue
//! ([`SimOverlay`] for `dht_ipfs::Node<MemStore>`). The network carries its streams,
//! connections and identify ([`crate::Network`]'s stream half); nothing here is
//! scheduling.
//!
//! Node `i` is an ed25519-shaped PeerId drawn from the seed, listening on
//! `/ip4/127.0.x.y/tcp/4001` (`x.y` = `i + 1`); its connections come from port 50000
//! of that IP, so a node that dialed back a connection's source would fail, as it
//! would on a real network. A dial reaches node `i` only at its listen address.
//!
//! Lookups are judged in the 256-bit keyspace: a random key's 32 bytes are the
//! FIND_NODE key (arbitrary bytes, as libp2p allows), so the lookup's target is their
//! SHA-256 ([`dht_ipfs::key_of`]).
//!
//! [`run`] is the experiment of `dht-sim --overlay ipfs` (`ipfs/experiment.rs`).

use std::time::Instant;

use dht_core::kernel::Contact as _;
use dht_core::UnixMillis;
use dht_ipfs::StoreLimits;
use dht_ipfs::{key_of, Config, Key, MemStore, Node, Outcome, PeerId, PeerInfo, Request};
use multiaddr::Multiaddr;
use sha1::Digest as _;

use crate::address::AddressBook;
use crate::net::{Network, SimConfig, SimOverlay};
use crate::rng::mix64;

mod experiment;

pub use experiment::{provider_key, record, run};

/// A network of `dht-ipfs` nodes over in-memory stores.
pub type IpfsSim = Network<Node<MemStore>>;

/// The port every node listens on.
pub const LISTEN_PORT: u16 = 4001;
/// The port every node's outbound connections come from.
pub const SOURCE_PORT: u16 = 50000;

/// A network of `nodes` nodes and `seed` as dht-ipfs runs by default: k, alpha and
/// disjoint paths of [`Config::new`], 20 ms mean one-way latency (loopback-like
/// links of a test), one node joining every 100 ms, 60 s to settle.
pub fn config(nodes: usize, seed: u64) -> SimConfig {
    let node = Config::new(seed, peer_id(seed, 0), Vec::new());
    let mut cfg = SimConfig::new(nodes, seed);
    cfg.k = node.k;
    cfg.alpha = node.alpha;
    cfg.disjoint_paths = node.disjoint_paths;
    cfg.latency_ms = 20.0;
    cfg.join_interval = std::time::Duration::from_millis(100);
    cfg.settle = std::time::Duration::from_secs(60);
    cfg
}

/// The node [`SimOverlay::create`] makes (a server with the network's k, alpha and
/// disjoint paths, the rest dht-ipfs's defaults), then `configure`d: for
/// [`crate::Network::add_node_with`], when a test wants its nodes otherwise.
pub fn node(
    cfg: &SimConfig,
    peer: PeerInfo,
    seed: u64,
    now: Instant,
    wall: UnixMillis,
    configure: impl FnOnce(&mut Config),
) -> Node<MemStore> {
    let mut config = Config::new(seed, peer.id().clone(), peer.addrs().to_vec());
    config.k = cfg.k;
    config.alpha = cfg.alpha;
    config.disjoint_paths = cfg.disjoint_paths;
    configure(&mut config);
    Node::new(config, MemStore::new(StoreLimits::default()), now, wall)
}

/// The peers of an IPFS network: node `i`'s PeerId and listen address, and the way
/// back from a listen address.
#[derive(Debug)]
pub struct PeerBook {
    seed: u64,
    peers: Vec<PeerInfo>,
}

impl PeerBook {
    /// An empty book whose PeerIds derive from `seed`.
    pub fn new(seed: u64) -> PeerBook {
        PeerBook {
            seed,
            peers: Vec::new(),
        }
    }
}

/// Node `i`'s address on `port`: 127.0.x.y with x.y = i + 1 (loopback only).
pub fn node_addr(i: u32, port: u16) -> Multiaddr {
    let n = i + 1;
    let ip = std::net::Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8);
    Multiaddr::empty()
        .with(multiaddr::Protocol::Ip4(ip))
        .with(multiaddr::Protocol::Tcp(port))
}

/// The node whose address [`node_addr`] made `addr`, whatever the port.
fn node_of_addr(addr: &Multiaddr) -> Option<u32> {
    match addr.iter().next()? {
        multiaddr::Protocol::Ip4(ip) => {
            let [_, x, y, z] = ip.octets();
            (u32::from(x) << 16 | u32::from(y) << 8 | u32::from(z)).checked_sub(1)
        }
        _ => None,
    }
}

/// An ed25519-shaped PeerId (the identity multihash of a protobuf public key) for
/// node `i` of a network seeded `seed`.
pub fn peer_id(seed: u64, i: u32) -> PeerId {
    let mut b = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    // Two SHA-1s make the 32 key bytes: the key is never checked, only its shape.
    let mut h = sha1::Sha1::new();
    h.update(mix64(seed).to_be_bytes());
    h.update(u64::from(i).to_be_bytes());
    let a = h.finalize();
    b.extend_from_slice(&a);
    b.extend_from_slice(&sha1::Sha1::digest(a)[..12]);
    PeerId::from_bytes(&b).expect("an identity multihash of a 36-byte key")
}

impl AddressBook for PeerBook {
    type Peer = PeerInfo;

    fn add_node(&mut self) -> PeerInfo {
        let i = self.peers.len() as u32;
        let info = PeerInfo::new(peer_id(self.seed, i), [node_addr(i, LISTEN_PORT)]);
        self.peers.push(info.clone());
        info
    }

    fn peer(&self, i: u32) -> PeerInfo {
        self.peers[i as usize].clone()
    }

    /// The node with `peer`'s PeerId, if one of the addresses dialed is where it
    /// listens.
    ///
    /// A listen address names its node (`127.x.y.z` is node `x.y.z - 1`), so this is
    /// read off the address, then checked: the simulator asks it for every request.
    fn index_of(&self, peer: &PeerInfo) -> Option<u32> {
        peer.addrs().iter().find_map(|a| {
            let i = node_of_addr(a)?;
            let node = self.peers.get(i as usize)?;
            (node.id() == peer.id() && node.addrs().contains(a)).then_some(i)
        })
    }

    fn source(&self, i: u32) -> PeerInfo {
        self.peers[i as usize].with_addrs([node_addr(i, SOURCE_PORT)])
    }
}

impl SimOverlay for Node<MemStore> {
    const NAME: &'static str = "ipfs";
    type Key = Key;
    type Book = PeerBook;
    type World = ();

    fn book(cfg: &SimConfig) -> PeerBook {
        PeerBook::new(cfg.seed)
    }

    /// A server with the network's k and alpha, the rest dht-ipfs's defaults.
    fn create(cfg: &SimConfig, peer: PeerInfo, seed: u64, now: Instant, wall: UnixMillis) -> Self {
        node(cfg, peer, seed, now, wall, |_| {})
    }

    fn id(&self) -> Key {
        *self.local_peer().key()
    }

    fn join_request(via: Vec<PeerInfo>) -> Request {
        Request::Bootstrap { seeds: via }
    }

    fn lookup_request(target: Key) -> Request {
        Request::FindNode {
            key: target.0.to_vec(),
        }
    }

    fn lookup_result(outcome: &Outcome) -> Vec<Key> {
        match outcome {
            Outcome::Peers { closest } => closest.iter().map(|p| *p.key()).collect(),
            _ => Vec::new(),
        }
    }

    /// The closest live node other than the source to the key's SHA-256, anywhere in
    /// the answer.
    fn judge_lookup(net: &IpfsSim, src: usize, target: &Key, got: &[Key]) -> bool {
        let target = key_of(&target.0);
        let truth = net
            .live()
            .into_iter()
            .filter(|&i| i != src)
            .map(|i| SimOverlay::id(net.node(i)))
            .min_by_key(|k| k.distance(&target));
        truth.is_some_and(|t| got.contains(&t))
    }

    /// Node 0 starts alone; one node arrives every `join_interval` and bootstraps
    /// through it (each a FIND_NODE of its own key, identify telling both sides the
    /// other is a server); then the network runs for `settle`.
    fn join_all(net: &mut IpfsSim, progress: &mut dyn FnMut(usize)) {
        let cfg = net.config().clone();
        if cfg.nodes == 0 {
            return;
        }
        net.add_node();
        let first = net.addr(0);
        for _ in 1..cfg.nodes {
            let j = net.add_node();
            let seeds = vec![first.clone()];
            net.command_untracked(j, |n, now| {
                dht_core::Overlay::start(n, now, Request::Bootstrap { seeds })
            });
            net.run_for(cfg.join_interval);
            if j % 100 == 0 {
                progress(j);
            }
        }
        net.run_for(cfg.settle);
        progress(net.len());
    }

    fn protocols(&self) -> Vec<String> {
        Node::protocols(self)
    }
}
