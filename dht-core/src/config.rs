//! Node configuration: every tunable with its default and the reason for it.

use std::net::IpAddr;
use std::time::Duration;

use crate::defense::Defense;
use crate::id::Id;

/// How the node picks its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdPolicy {
    /// Drawn from the node's seeded RNG.
    Random,
    /// Given (e.g. restored from a data dir).
    Fixed(Id),
    /// BEP 42: derived from the node's public IP (exempt addresses get a random id).
    Bep42(IpAddr),
    /// Derived from an ed25519 public key (authenticated transports such as QUIC):
    /// see [`key_derived_id`]. Peers whose transport reports a verified key must
    /// then use the id derived from that key, or their messages are dropped.
    PublicKey([u8; 32]),
}

/// Domain tag hashed before the key in [`key_derived_id`], so that such ids cannot collide
/// with any other SHA-1 use in the protocol.
pub const KEY_ID_DOMAIN: &[u8] = b"dht-rs key-derived node id v1";

/// The node id bound to an ed25519 public key: SHA-1(domain tag || key).
pub fn key_derived_id(key: &[u8; 32]) -> Id {
    Id::sha1_parts(&[KEY_ID_DOMAIN, key])
}

/// Storage limits enforced by the core (a store only keeps what it is told).
///
/// Policy when a limit is reached (documented in ARCHITECTURE.md):
/// - per source (an IPv4 address or an IPv6 /64) and per network above it (IPv4 /24
///   and /16, IPv6 /56, /48 and /32): a share of items, info_hashes and bytes, the
///   source's share here and a network's a multiple of it (x4 for a /24 or /56, x8
///   for a /48, x16 for a /16 or /32, see `node/quota.rs` for why), each at most half
///   the cap, so that no share ever reaches its cap; beyond it that source's new puts
///   and announces get 202, and everyone else is still served. Exempt sources (see
///   [`Defense::is_exempt`]) have no share and no one-slot rule (a loopback testnet
///   shares 127.0.0.1), only the global caps, and what they stored never gives way
///   to make room at a full cap;
/// - items, info_hashes, bytes (the global caps): a write that needs room at a full
///   cap (a *new* target, a *new* info_hash, more bytes) takes it from the network
///   holding the most, when that network holds at least twice what the writer's
///   would: its biggest source's soonest-expiring entry is removed (for the
///   info_hash cap, a swarm it holds alone). A writer from the network holding the
///   most, or from one holding about as much as every other, is refused with 202
///   ("storage full"), so a flood from many networks cannot lock honest newcomers
///   out and networks of equal standing do not evict each other. Existing items can
///   always be updated and refreshed;
/// - peers per swarm: the peer whose announcement expires first is replaced, so a
///   swarm's list stays fresh; one IP holds one slot in a swarm (BEP 33: <info_hash,
///   IP> is unique), a later announce from it updates its port.
///
/// The numbers come from how honest peers behave. libtorrent keeps at most 2,000
/// torrents (`dht_max_torrents`) and 700 items (`dht_max_dht_items`) per node; we keep
/// about 8 and 23 times that, so a node of a small or lopsided network never refuses
/// honest data. An honest source writes each item and announce to the ~8 nodes
/// closest to its target, so one node receives from one honest IP only the few that
/// land near its id; 256 per source leaves room for a NAT with many users behind one
/// address, and it takes 64 sources to fill either cap. Operators map these fields to
/// the node's `--max-items`, `--max-info-hashes` and `--max-peers-per-swarm` flags.
///
/// `#[non_exhaustive]`, like every settings struct here: start from `Default` and set
/// the fields you change, so that a new limit is not a breaking change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most BEP 44 items held (`--max-items`).
    pub max_items: usize,
    /// Most info_hashes with peers (`--max-info-hashes`).
    pub max_info_hashes: usize,
    /// Most peers per info_hash (`--max-peers-per-swarm`), at least 1 (0 would
    /// take every announce down the full-swarm path, past the info_hash and byte
    /// caps).
    pub max_peers_per_swarm: usize,
    /// Most estimated bytes of everything stored (items by size plus a fixed
    /// overhead, peers at a fixed cost: see the `quota` costs), bounding memory at
    /// the caps: without it 16,384 swarms of 256 peers at ~400 bytes would allow
    /// 1.6 GB.
    pub max_bytes: u64,
    /// Most items one source may have written (the last writer of an item owns it);
    /// networks above a source hold multiples of it, every share at most half the
    /// cap.
    pub max_items_per_source: usize,
    /// Most swarms in which one source may hold a peer slot.
    pub max_info_hashes_per_source: usize,
    /// Most estimated bytes charged to one source.
    pub max_bytes_per_source: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // 64 MiB: 16,384 full-size items (~1.5 kB each with overheads, 24 MiB) plus
        // about 100,000 peers; a node on the public DHT stores what the ids near it
        // attract, far below this. Per source: 256 items and 256 swarms, and 256 KiB,
        // enough for ~180 full-size items or all 256 small ones with their swarms.
        Limits {
            max_items: 16_384,
            max_info_hashes: 16_384,
            max_peers_per_swarm: 256,
            max_bytes: 64 << 20,
            max_items_per_source: 256,
            max_info_hashes_per_source: 256,
            max_bytes_per_source: 256 << 10,
        }
    }
}

/// Everything that shapes a node's behaviour.
///
/// `#[non_exhaustive]`: start from [`Config::with_seed`] (or `Default` and a seed) and
/// set the fields you change, so that a new setting is not a breaking change.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Bucket size and replication factor (BEP 5: 8).
    pub k: usize,
    /// Requests in flight per lookup before its last round (Kademlia's alpha; 2: the
    /// last round asks the rest of the k closest at once, see
    /// [`Config::early_last_round`], so a third request in flight on the way there
    /// bought 0.13 RTT at the median, 0.5 at p99, for 2.1 more messages per lookup at
    /// 2,000 simulated nodes; docs/lookup-tuning.md).
    pub alpha: usize,
    /// Seed of the node's ChaCha8 RNG (ids, tokens, transaction ids, refresh targets).
    /// There is no default: runtimes seed it from the OS (tokens and transaction ids
    /// must be unpredictable), simulations and tests from a number
    /// ([`Config::with_seed`]). A node refuses to start without one.
    pub seed: Option<[u8; 32]>,
    /// How the node id is chosen.
    pub id_policy: IdPolicy,
    /// BEP 43: answer no queries and mark ours with `ro` = 1.
    pub read_only: bool,
    /// `v` in our messages (4 bytes by convention).
    pub version: Option<[u8; 4]>,
    /// The longest wait for a reply before counting a timeout (also the wait before any
    /// round trip has been measured).
    pub request_timeout: Duration,
    /// The shortest wait for a reply, however fast the measured round trips (the wait
    /// adapts between the two: smoothed RTT + 4 x its deviation). A value above
    /// `request_timeout` is capped at it.
    pub min_request_timeout: Duration,
    /// Silence after which a node is questionable (BEP 5: 15 minutes).
    pub questionable_after: Duration,
    /// Failed queries in a row that make a node bad.
    pub max_failures: u8,
    /// Distinct /24s (IPv6: /64s) that must report the same address in their `ip`
    /// field before the node believes it is its public address (BEP 42). 5: one
    /// network cannot move us, and a new node learns its address within its first
    /// lookups.
    pub min_ip_voters: usize,
    /// Most housekeeping pings in flight at once (of questionable contacts and of
    /// queriers waiting for a place), so that queries from many spoofed sources cannot
    /// make us ping each.
    pub max_housekeeping_pings: usize,
    /// Refresh a bucket not changed for this long (BEP 5: 15 minutes).
    pub bucket_refresh: Duration,
    /// Token secret rotation (BEP 5 reference: 5 minutes; tokens live 5 to 10 minutes).
    pub token_rotation: Duration,
    /// How long an announced peer is kept (30 minutes).
    pub peer_ttl: Duration,
    /// How long a BEP 44 item is kept without a refresh (BEP 44: 2 hours).
    pub item_ttl: Duration,
    /// How often housekeeping runs (expiry, refresh checks, routing snapshot).
    pub maintenance_interval: Duration,
    /// How often the routing table is saved to the store. A minute: a snapshot is a few
    /// kilobytes, and a node killed without a clean stop restarts from contacts at most
    /// this old.
    pub routing_save_interval: Duration,
    /// BEP 51 `interval` we advertise (seconds).
    pub sample_interval_secs: i64,
    /// Storage limits.
    pub limits: Limits,
    /// Most candidates a lookup tracks (the closest are kept).
    pub max_lookup_candidates: usize,
    /// Most peers a get_peers lookup collects.
    pub max_lookup_peers: usize,
    /// Rate limits, bans, the reply budget and routing-table diversity.
    pub defense: Defense,
    /// Disjoint paths for the lookups of get, get_peers, put and announce (S/Kademlia). 1 is the plain
    /// lookup; with d > 1 the closest known nodes are dealt to d independent lookups
    /// and no node is queried by two of them, so one path that runs into adversarial
    /// nodes cannot poison the others. Costs about d times the messages.
    pub disjoint_paths: usize,
    /// libtorrent's extended routing table: the four buckets farthest from our id
    /// hold 16k, 8k, 4k and 2k nodes (128, 64, 32, 16 for k = 8) instead of k, so a
    /// lookup's first hop lands about four bits closer. Costs 208 more entries per
    /// family at k = 8 when full (an entry is 37 bytes for IPv4, 64 for IPv6: about
    /// 8 and 13 KB) and the pings that keep them fresh. On by default: at 10,000
    /// simulated nodes it took 0.4 hops, 0.3 RTT at the median, 0.4 at p99 and 1.9
    /// messages off each lookup for about 7 KB more memory per node
    /// (docs/lookup-tuning.md).
    pub extended_buckets: bool,
    /// Kademlia's handover: when a node enters our table closer than we are to items we
    /// store, with fewer than k known nodes between it and us, we put the item there (a
    /// `get` for its token, then the `put`), staggered so that the holder just behind
    /// it acts first and the others find the item there. Items then outlive their first holders under churn between the
    /// publisher's republishes. Costs two messages per item handed over, bounded per
    /// newcomer (`node/handover.rs`). Announced peers cannot be handed over (a peer is
    /// its announcer's own address). Off by default until it has run in the interop
    /// matrix (it sends other implementations gets and puts they did not ask for);
    /// `dht-node --handover` turns it on.
    pub handover: bool,
    /// Round trips steer lookups: among candidates of equal standing (ids sharing
    /// as many leading bits with the target) the fastest is asked first (measured
    /// round trips are kept per routing-table entry, in its padding: no memory), and
    /// a request to a node of our table waits twice its smoothed round trip (within
    /// `min_request_timeout` and the node-wide timeout) instead of the node-wide
    /// timeout. Off by default: at 10,000 simulated nodes it took 0.15 RTT off the
    /// median lookup, alone or with extended buckets, for no memory and about 0.2
    /// more messages, but it hands an adversary who answers fast the first place
    /// in each band, and with 20 % Sybils plain gets found fewer items with it
    /// (docs/lookup-tuning.md).
    pub rtt_aware_lookups: bool,
    /// A mutable get ([`crate::Request::GetMutable`]) ends at the first valid item
    /// (signature checked, seq above `min_seq`) instead of asking the k closest for
    /// the highest seq. For callers that want any current value fast (a record that
    /// rarely changes); BEP 44's rule, the highest seq, is the default. An immutable
    /// get always ends at its first value whose hash matches.
    pub mutable_get_first_valid: bool,
    /// A lookup's last round (the rest of the window of the k closest asked at once
    /// instead of `alpha` at a time) starts as soon as one node of that window
    /// answered, or the window lies as deep as the k closest nodes of any target are
    /// expected (as deep as our own k-th closest contact is near our id), not only
    /// once the closest candidate answered. With `alpha` 2 it took 0.44 RTT off the
    /// median lookup and 0.3 off the 99th percentile at 10,000 simulated nodes, with
    /// 2.0 fewer messages than `alpha` 3 without it (docs/lookup-tuning.md).
    pub early_last_round: bool,
    /// A lookup ends when `k - 1` of its `k` closest candidates answered and the last
    /// is overdue: silent past twice its own measured round trip (a node that answered
    /// before), or past the node-wide retransmission timeout (srtt + 4 x deviation,
    /// without the `min_request_timeout` floor). It saves waiting out a timeout and a
    /// second attempt for the one node that went silent; the lookup then reports the
    /// closest nodes that answered, `k - 1` of the k closest among them. Off: with 5 %
    /// loss one lookup in five more missed one of the k closest (a datagram lost, not
    /// a node gone: at 2,000 simulated nodes `exact_k_closest` 0.75 instead of 0.93 to
    /// 0.95, `found_k_closest` 0.968 instead of 0.991), for 0.45 RTT off the median
    /// there and 0.03 without loss
    /// (docs/lookup-tuning.md). For a caller that prefers an answer now to all of
    /// the k closest.
    pub end_without_overdue: bool,
    /// A request to a node that answered us before waits twice that node's measured
    /// round trip (at least `min_request_timeout` / 4, at most the node-wide wait),
    /// not the node-wide wait: a fast node that went silent costs little. Nodes never
    /// measured wait the node-wide time. Unlike [`Config::rtt_aware_lookups`] this
    /// changes only timeouts, never whom a lookup asks first.
    pub timeouts_from_rtt: bool,
    /// With [`Config::disjoint_paths`] d > 1, the d·k table contacts closest to the
    /// target are dealt to the paths (k each), not only the k closest: when those k
    /// are all Sybils (one bucket filled from one Sybil's answer), contacts from
    /// farther buckets still start some paths among honest nodes, and the paths'
    /// disjointness keeps them off the Sybils another path has claimed.
    pub spread_disjoint_starts: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            k: 8,
            alpha: 2,
            seed: None,
            id_policy: IdPolicy::Random,
            read_only: false,
            version: Some(*b"RS\x00\x01"),
            request_timeout: Duration::from_secs(2),
            min_request_timeout: Duration::from_millis(250),
            questionable_after: Duration::from_secs(15 * 60),
            max_failures: 2,
            min_ip_voters: 5,
            max_housekeeping_pings: 64,
            bucket_refresh: Duration::from_secs(15 * 60),
            token_rotation: Duration::from_secs(5 * 60),
            peer_ttl: Duration::from_secs(30 * 60),
            item_ttl: Duration::from_secs(2 * 60 * 60),
            maintenance_interval: Duration::from_secs(30),
            routing_save_interval: Duration::from_secs(60),
            sample_interval_secs: 300,
            limits: Limits::default(),
            max_lookup_candidates: 64,
            max_lookup_peers: 1000,
            defense: Defense::default(),
            disjoint_paths: 1,
            extended_buckets: true,
            handover: false,
            rtt_aware_lookups: false,
            mutable_get_first_valid: false,
            early_last_round: true,
            end_without_overdue: false,
            timeouts_from_rtt: true,
            spread_disjoint_starts: true,
        }
    }
}

impl Config {
    /// Default config with the RNG seeded from a `u64` (for tests and simulations).
    pub fn with_seed(seed: u64) -> Config {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        Config {
            seed: Some(s),
            ..Config::default()
        }
    }

    /// Checks that the settings can work together; [`crate::Node::new`] calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.seed.is_none() {
            return Err(ConfigError::NoSeed);
        }
        self.validate_settings()
    }

    /// [`Config::validate`] but for the seed, which a shared configuration does not
    /// carry ([`crate::Node::with_shared_config`] takes each node's apart).
    pub(crate) fn validate_settings(&self) -> Result<(), ConfigError> {
        let bad = |what: &str| Err(ConfigError::Invalid(what.to_string()));
        if self.k == 0 {
            return bad("k (bucket size) must be at least 1");
        }
        if self.alpha == 0 || self.alpha > self.k {
            return bad(&format!(
                "alpha ({}) must be between 1 and k ({})",
                self.alpha, self.k
            ));
        }
        if self.disjoint_paths == 0 || self.disjoint_paths > 16 {
            return bad(&format!(
                "disjoint_paths ({}) must be between 1 and 16",
                self.disjoint_paths
            ));
        }
        if self.request_timeout.is_zero() {
            return bad("request_timeout must be above zero");
        }
        if self.max_lookup_candidates < self.k {
            return bad("max_lookup_candidates must be at least k");
        }
        if self.maintenance_interval.is_zero() || self.routing_save_interval.is_zero() {
            return bad("maintenance_interval and routing_save_interval must be above zero");
        }
        if self.token_rotation.is_zero() {
            return bad("token_rotation must be above zero");
        }
        if self.min_ip_voters == 0 {
            return bad("min_ip_voters must be at least 1");
        }
        if self.max_failures == 0 {
            return bad("max_failures must be at least 1");
        }
        if self.limits.max_peers_per_swarm == 0 {
            return bad("max_peers_per_swarm must be at least 1");
        }
        Ok(())
    }
}

/// Why a [`Config`] cannot run a node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// [`Config::seed`] was never set.
    #[error("Config::seed is not set: seed the RNG from the OS in a runtime, or use Config::with_seed in a simulation")]
    NoSeed,
    /// Settings that cannot work (the message says which).
    #[error("invalid config: {0}")]
    Invalid(String),
}
