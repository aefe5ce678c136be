//! The command line: the clap definition of `dht-node`'s flags and subcommands, and
//! the `--help` text. Nothing here runs anything.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use dht_node::PUBLIC_ROUTERS;

const AFTER_HELP: &str = "\
Without a subcommand, runs a DHT node until SIGINT or SIGTERM.

Values: `put VALUE` stores VALUE as a bencoded byte string (<len>:<bytes>); its target
is the SHA-1 of that bencoding. `get` prints the string's bytes raw when the stored value
is a bencoded string, and the raw bencode otherwise.

Transports: a QUIC network and a UDP network are separate networks; every node and
one-shot command of one network must use the same --transport. Over QUIC the node id is
derived from the node's ed25519 key: with --data-dir the node keeps it in DIR/node.key
(created on first start), otherwise each start (and every one-shot command) uses a
fresh key and so a fresh id.

Data dir: with --store sled (feature `sled`), the node keeps its id, routing table,
items and peers in --data-dir DIR and, restarted on DIR, rejoins through the saved table
(even with --no-bootstrap) and serves what it stored. A put or announce the node has
answered is on disk before the answer leaves; on a full disk puts and announces are
refused with 202 (logged when it starts, at most once a minute, and when it clears)
until there is room again. The table is saved every minute and on SIGINT/SIGTERM. A missing or empty DIR is initialised; a DIR that
is not a dht data dir, is corrupt, is in use by another process, or is of a newer format
is refused (exit 3, one line on stderr) and left untouched. With --store mem, --data-dir
only keeps the QUIC node key (a DIR used so cannot later become a sled data dir).
One-shot commands ignore --store and --data-dir.

Bootstrap: without --bootstrap, nodes and one-shot commands join through the public
Mainline routers (router.bittorrent.com:6881, dht.transmissionbt.com:6881,
router.utorrent.com:6881, dht.libtorrent.org:25401). One-shot commands run a read-only
node (BEP 43).

Chord (--overlay chord): a Chord ring over UDP, for research and comparison; it never
meets the Mainline DHT. A node needs --listen IP:PORT (the address others reach it at;
not 0.0.0.0) and either --bootstrap IP:PORT of a ring member (repeatable) or
--no-bootstrap to start a new ring. `put VALUE --bootstrap IP:PORT` and
`get HEX --bootstrap IP:PORT` are clients that ask a member and never join the ring.
Values map as for Mainline: VALUE is stored as the bencoded byte string <len>:<bytes>,
the key printed is the SHA-1 of that bencoding in lowercase hex, and `get` prints VALUE
back exactly as it was put. --k is the successor-list length r (r copies of each key).
--http serves /metrics, /healthz and /readyz (200 once settled on the ring). Mainline's
flags and commands (--transport quic, --store sled, --data-dir, --read-only, --handover,
--http-token-file, --no-local-exemption, mutable items, announce, scrape, peers, ping,
find-node, keygen, sign) are refused.

IPFS (--overlay ipfs, feature `ipfs`): IPFS's Kademlia on libp2p, with multiaddrs for
addresses and commands of its own; see `dht-node --overlay ipfs --help`.

Stdout carries only the result; logs (RUST_LOG) go to stderr.
Exit status: 0 success, 1 not found, 2 bad usage or argument, 3 any other failure.";

#[derive(Debug, Parser)]
#[command(name = "dht-node", version, about = "A BitTorrent Mainline DHT node and client", after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// The overlay: the BitTorrent Mainline DHT, or a Chord ring (see "Chord" below).
    #[arg(long, global = true, value_enum, default_value_t = OverlayKind::Mainline)]
    pub(crate) overlay: OverlayKind,
    /// Datagram transport (a QUIC network and a UDP network do not meet).
    #[arg(long, global = true, value_enum, default_value_t = TransportKind::Udp)]
    pub(crate) transport: TransportKind,
    /// Where the node keeps items, peers and its routing table (sled: in --data-dir).
    #[arg(long, global = true, value_enum, default_value_t = StoreKind::Mem)]
    pub(crate) store: StoreKind,
    /// Directory for the node's state: the QUIC key (DIR/node.key) with any store,
    /// and everything else with --store sled. Created if missing.
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// QUIC: most connections accepted from one public IPv4 address or IPv6 /64
    /// (loopback and private sources are exempt, so a loopback testnet needs no change).
    #[arg(long, global = true, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) quic_max_conns_per_ip: u16,
    /// Address to bind (repeatable; at most one IPv4 and one IPv6).
    /// Node default: 0.0.0.0:6881 and [::]:6881; one-shot commands use a free port.
    #[arg(long, global = true, value_name = "ADDR")]
    pub(crate) listen: Vec<SocketAddr>,
    /// Bootstrap node as HOST:PORT (repeatable). Default: the public Mainline routers.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub(crate) bootstrap: Vec<String>,
    /// Do not bootstrap (a node others join, or a test network's first node).
    #[arg(long, global = true, conflicts_with = "bootstrap")]
    pub(crate) no_bootstrap: bool,
    /// Bucket size and replication factor.
    #[arg(long, global = true, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) k: u16,
    /// Most BEP 44 items this node stores (new targets beyond it are refused with 202).
    #[arg(long, value_name = "N", default_value_t = dht_core::Limits::default().max_items)]
    pub(crate) max_items: usize,
    /// Most info_hashes with announced peers this node stores.
    #[arg(long, value_name = "N", default_value_t = dht_core::Limits::default().max_info_hashes)]
    pub(crate) max_info_hashes: usize,
    /// Most peers kept per info_hash (the one expiring first is replaced), at least 1.
    #[arg(long, value_name = "N", default_value_t = dht_core::Limits::default().max_peers_per_swarm,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_peers_per_swarm: usize,
    /// Apply every defense (rate limits, bans, per-source shares, one slot per IP in a
    /// swarm, lookup diversity) to loopback and private sources too, so that the
    /// defenses can be tried on one machine with 127.x.y.z sources.
    #[arg(long)]
    pub(crate) no_local_exemption: bool,
    /// Run the node read-only (BEP 43): it answers no queries.
    #[arg(long)]
    pub(crate) read_only: bool,
    /// Put the items this node stores on a newcomer closer to them (Kademlia's
    /// handover), so that they outlive churn between their publishers' republishes.
    /// Off by default for now.
    #[arg(long)]
    pub(crate) handover: bool,
    /// Write the bound addresses to this file, one per line, once listening.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) addr_file: Option<PathBuf>,
    /// Print one JSON object on stdout instead of the bare result.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// How long to wait for each reply, in milliseconds.
    #[arg(long, global = true, hide = true, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) request_timeout_ms: u64,
    /// Tests: the shortest wait for a reply, in milliseconds (default: the core's,
    /// 250 ms; the wait adapts between it and --request-timeout-ms). Set it to
    /// --request-timeout-ms to make a silent node cost the full wait.
    #[arg(long, global = true, hide = true, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) min_request_timeout_ms: Option<u64>,
    /// Testnets: hold every datagram this node sends for this many milliseconds, a
    /// stand-in for a netem link delay on kernels without netem (UDP only; never on a
    /// real network). `cargo xtask testnet --delay` sets it.
    #[arg(long, global = true, hide = true, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) egress_delay_ms: Option<u64>,
    /// Tests: housekeeping period in milliseconds (default: the core's, 30 s).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub(crate) maintenance_ms: Option<u64>,
    /// Tests: silence after which a node is pinged, in milliseconds (default: the
    /// core's, BEP 5's 15 minutes).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub(crate) questionable_after_ms: Option<u64>,
    /// Testnets: how long a BEP 44 item is kept without a refresh, in milliseconds
    /// (default: the core's, BEP 44's 2 hours). A soak compresses time with it, so that
    /// the stored data stops growing within the run (`cargo xtask testnet --item-ttl`).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(1_000..=86_400_000))]
    pub(crate) item_ttl_ms: Option<u64>,
    /// Testnets: how long an announced peer is kept, in milliseconds (default: the
    /// core's, 30 minutes; `cargo xtask testnet --peer-ttl`).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(1_000..=86_400_000))]
    pub(crate) peer_ttl_ms: Option<u64>,
    /// Tests: period of the status log line and of --routing-file, in milliseconds.
    #[arg(long, hide = true, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub(crate) status_interval_ms: u64,
    /// Tests: rewrite this file with the routing table ("id addr" a line) at every status.
    #[arg(long, hide = true, value_name = "PATH")]
    pub(crate) routing_file: Option<PathBuf>,
    /// Serve /metrics, /healthz, /readyz and the JSON API /v1/ on ADDR (HTTP; off by
    /// default). Keep it on loopback unless writes are protected by --http-token-file.
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<SocketAddr>,
    /// A file holding the bearer token that --http writes (POST, PUT, DELETE) require
    /// as `Authorization: Bearer TOKEN`; read before anything is bound.
    #[arg(long, value_name = "FILE", requires = "http")]
    pub(crate) http_token_file: Option<PathBuf>,
    /// Most DHT lookups that --http reads (GET) run at once; a read beyond gets 503
    /// at once. A lookup keeps its place until it ends, even after its client left.
    #[arg(long, value_name = "N", default_value_t = super::state::MAX_DHT_OPS as u32, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub(crate) http_max_ops: u32,
    /// Most of those one client (IPv4 address, IPv6 /64) runs at once; beyond, 503.
    /// Behind a reverse proxy every request comes from the proxy: raise it.
    #[arg(long, value_name = "N", default_value_t = super::state::MAX_READS_PER_CLIENT as u32, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub(crate) http_max_reads_per_client: u32,
    /// Most DHT writes (puts, announces) that --http requests run at once, a pool
    /// apart from the reads'; beyond, 503.
    #[arg(long, value_name = "N", default_value_t = super::state::MAX_DHT_WRITES as u32, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub(crate) http_max_writes: u32,
    /// Most items and announces that --http writes have the node republish (each
    /// every 50 or 15 minutes until `DELETE /v1/republishing/TARGET`); a write of a
    /// new one beyond gets 507.
    #[arg(long, value_name = "N", default_value_t = super::state::MAX_REPUBLISHED as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) http_max_republished: u32,
    /// Most DHT lookups that the pollers of watched items run at once; a poller
    /// finding none free tries again a second later.
    #[arg(long, value_name = "N", default_value_t = super::state::MAX_WATCH_LOOKUPS as u32, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub(crate) http_max_watch_lookups: u32,
    /// Most --http connections open at once; one beyond is closed at once.
    #[arg(long, value_name = "N", default_value_t = super::conn::MAX_CONNS as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) http_max_conns: u32,
    /// How long a request's head may take to arrive, in milliseconds; also how long
    /// a connection may wait idle for its next request. Past it, closed.
    #[arg(long, value_name = "MS", default_value_t = super::conn::HEADER_TIMEOUT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub(crate) http_header_timeout_ms: u64,
    /// How long an --http connection may go without a byte moved either way, in
    /// milliseconds (never less than --http-deadline-ms); past it, closed.
    #[arg(long, value_name = "MS", default_value_t = super::conn::IDLE_TIMEOUT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub(crate) http_idle_timeout_ms: u64,
    /// How long the DHT operation of one --http request may take, in milliseconds;
    /// past it the request gets 504.
    #[arg(long, value_name = "MS", default_value_t = super::state::REQUEST_DEADLINE.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub(crate) http_deadline_ms: u64,
    /// How often a watched mutable item is looked up, in seconds (at least 5).
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=86_400))]
    pub(crate) watch_poll: u64,
    /// Read flags from a TOML file (keys are flag names; a flag given here overrides
    /// its key and any key it conflicts with: --bootstrap drops no-bootstrap; a
    /// regular file only). `dht-node config --print-default` prints every key with
    /// its default.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Log format on stderr: human text, or one JSON object a line for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OverlayKind {
    /// The BitTorrent Mainline DHT (Kademlia, BEP 5).
    Mainline,
    /// A Chord ring (Stoica et al. 2001) over UDP, on a network of its own.
    Chord,
    /// IPFS's Kademlia (the Amino DHT) on libp2p (feature `ipfs`): its flags and
    /// commands are in `dht-node --overlay ipfs --help`.
    Ipfs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TransportKind {
    /// Plain UDP (BEP 5).
    Udp,
    /// QUIC (needs the `quic` feature).
    Quic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StoreKind {
    /// In memory: lost on exit.
    Mem,
    /// On disk in --data-dir (needs the `sled` feature).
    Sled,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Store VALUE (immutable, or --mutable with --key); prints the target in hex.
    Put {
        /// The value, stored as a bencoded byte string.
        value: String,
        /// Store a mutable item signed with --key (BEP 44).
        #[arg(long, requires = "key")]
        mutable: bool,
        /// File holding the ed25519 secret key (64 hex characters, from `keygen`).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Salt of a mutable item (at most 64 bytes).
        #[arg(long, requires = "mutable")]
        salt: Option<String>,
        /// Sequence number. Default: one more than the highest found (1 if none).
        #[arg(long, requires = "mutable")]
        seq: Option<i64>,
        /// Only replace an item whose seq is this (compare-and-swap).
        #[arg(long, requires = "mutable")]
        cas: Option<i64>,
    },
    /// Fetch an item: prints its value (and, for --mutable, its seq on a last line).
    Get {
        /// The immutable target, or with --mutable the public key, in hex.
        target: String,
        /// TARGET is the public key of a mutable item.
        #[arg(long)]
        mutable: bool,
        /// Salt of a mutable item.
        #[arg(long, requires = "mutable")]
        salt: Option<String>,
    },
    /// Write a new ed25519 secret key to FILE (mode 0600); prints the public key in hex.
    Keygen {
        /// Where to write the key; an existing file is not overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a mutable item offline; prints the JSON body of `PUT /v1/mutable/PUBKEY`
    /// ({"value_base64", "seq", "signature", "cas"}); the URL takes the public key
    /// that `keygen` printed and the salt.
    Sign {
        /// The value, as a bencoded byte string (as `put` stores it).
        value: String,
        /// File holding the ed25519 secret key (64 hex characters, from `keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Salt (at most 64 bytes).
        #[arg(long)]
        salt: Option<String>,
        /// Sequence number.
        #[arg(long)]
        seq: i64,
        /// Only replace an item whose seq is this (compare-and-swap).
        #[arg(long)]
        cas: Option<i64>,
    },
    /// Print the libp2p PeerId of an ed25519 key file from `keygen` (IPFS; feature
    /// `ipfs`), alone on one line.
    PeerId {
        /// File holding the ed25519 secret key (64 hex characters, from `keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// The configuration file (--config FILE).
    Config {
        /// Print a commented file with every key at its default.
        #[arg(long, required = true)]
        print_default: bool,
    },
    /// Announce that we accept BitTorrent connections for INFO_HASH on --port.
    Announce {
        /// The info_hash in hex.
        info_hash: String,
        /// The BitTorrent port to announce.
        #[arg(long)]
        port: u16,
        /// Announce as a seed (BEP 33): scrapes count us among the seeds.
        #[arg(long)]
        seed: bool,
    },
    /// Estimate the seeds and peers of INFO_HASH (BEP 33 scrape); prints
    /// "seeds N" and "peers N".
    Scrape {
        /// The info_hash in hex.
        info_hash: String,
    },
    /// List peers announced for INFO_HASH, one ip:port a line.
    Peers {
        /// The info_hash in hex.
        info_hash: String,
    },
    /// Ping a node at ADDR (HOST:PORT); prints its id.
    Ping {
        /// The node's address.
        addr: String,
    },
    /// Find the nodes closest to ID; prints "id ip:port" a line.
    FindNode {
        /// The target id in hex.
        id: String,
    },
}

impl Cli {
    /// The bootstrap names: --bootstrap, or the public routers without it.
    pub(crate) fn bootstrap_names(&self) -> Vec<String> {
        if self.bootstrap.is_empty() {
            PUBLIC_ROUTERS.iter().map(|s| s.to_string()).collect()
        } else {
            self.bootstrap.clone()
        }
    }
}
