//! `Config`: every tunable of a node, with the protocol's defaults and why.

use std::net::IpAddr;
use std::time::Duration;

use dht_core::{Defense, Locality};
use multiaddr::Multiaddr;

use crate::peer::PeerId;

/// The protocol a server lists in identify: what makes a peer routable.
pub const KAD_PROTOCOL: &str = "/ipfs/kad/1.0.0";

/// Whether the node serves the DHT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Answers requests and advertises [`KAD_PROTOCOL`]: others route to it.
    Server,
    /// Asks, never answers (behind a NAT, or short-lived): nobody routes to it.
    Client,
}

/// A node's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Seeds the node's one RNG (ChaCha8): one seed, one run.
    pub seed: u64,
    /// This node's PeerId (the transport's identity).
    pub peer_id: PeerId,
    /// The addresses it listens on: announced with ADD_PROVIDER.
    pub listen_addrs: Vec<Multiaddr>,
    /// Server or client.
    pub mode: Mode,
    /// Bucket size and replication: 20 (the spec, rust, go).
    pub k: usize,
    /// Requests in flight per lookup path: 3 (rust; the spec says 10).
    pub alpha: usize,
    /// Disjoint lookup paths (S/Kademlia); 1 is a plain lookup.
    pub disjoint_paths: usize,
    /// How long a request may take: 10 s (rust's default).
    pub request_timeout: Duration,
    /// Largest request accepted: 64 KiB.
    pub max_request_bytes: usize,
    /// Largest reply accepted: 128 KiB.
    pub max_reply_bytes: usize,
    /// Largest message sent: 16 KiB, what rust-libp2p reads.
    pub max_send_bytes: usize,
    /// How long a stored record lives (and the cap on a record's own `ttl`): 48 h.
    pub record_ttl: Duration,
    /// How long a provider lives: 48 h.
    pub provider_ttl: Duration,
    /// How long a provider's addresses are handed out: 24 h (go's Amino default).
    pub provider_addrs_ttl: Duration,
    /// How often our own records and provider announcements are sent again: 22 h, so
    /// that they never lapse at the 48 h holders keep them.
    pub republish_interval: Duration,
    /// A bucket not changed for this long gets a lookup into its range: 10 min.
    pub refresh_interval: Duration,
    /// Hashes tried to find a PeerId-shaped preimage in a bucket before taking the
    /// closest found: 2^16.
    pub refresh_grind_limit: u32,
    /// How often housekeeping runs (expiry, refresh, republish, liveness).
    pub housekeeping_interval: Duration,
    /// Most store entries expired per housekeeping run.
    pub expire_per_run: usize,
    /// Most questionable peers sent a liveness FIND_NODE per housekeeping run.
    pub liveness_per_run: usize,
    /// A contact silent this long is questionable.
    pub questionable_after: Duration,
    /// Failed requests in a row after which a contact is bad.
    pub max_failures: u8,
    /// Candidates kept per lookup path.
    pub max_candidates: usize,
    /// Diversity in the table and in lookups (per IP, per /24 or /64), with the
    /// local-address exemption (`exempt_local`: on by default, off applies the rules
    /// to loopback and private addresses too).
    pub defense: Defense,
    /// How the node classes an IP (loopback, private, public): `dht_core::locality`.
    /// A node with a public listen address hands out and keeps only public addresses
    /// with public peers (see `addrs.rs`), and a lookup takes no contact more local
    /// than the peer that named it. Tests of public behaviour on loopback class some
    /// loopback addresses as public here.
    pub locality: fn(IpAddr) -> Locality,
}

impl Config {
    /// The defaults for a server with `peer_id` listening on `listen_addrs`.
    pub fn new(seed: u64, peer_id: PeerId, listen_addrs: Vec<Multiaddr>) -> Config {
        const HOUR: u64 = 3600;
        Config {
            seed,
            peer_id,
            listen_addrs,
            mode: Mode::Server,
            k: 20,
            alpha: 3,
            disjoint_paths: 1,
            request_timeout: Duration::from_secs(10),
            max_request_bytes: 64 * 1024,
            max_reply_bytes: 128 * 1024,
            max_send_bytes: 16 * 1024,
            record_ttl: Duration::from_secs(48 * HOUR),
            provider_ttl: Duration::from_secs(48 * HOUR),
            provider_addrs_ttl: Duration::from_secs(24 * HOUR),
            republish_interval: Duration::from_secs(22 * HOUR),
            refresh_interval: Duration::from_secs(600),
            refresh_grind_limit: 1 << 16,
            housekeeping_interval: Duration::from_secs(60),
            expire_per_run: 1000,
            liveness_per_run: 8,
            questionable_after: Duration::from_secs(15 * 60),
            max_failures: 2,
            max_candidates: 100,
            defense: Defense::default(),
            locality: dht_core::locality,
        }
    }
}
