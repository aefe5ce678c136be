//! `dht-node`: run a BitTorrent Mainline DHT node, or do one DHT operation and exit.

use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use dht_core::MutableItem;
use dht_core::{from_hex, to_hex};
use dht_core::Transport;
use dht_core::IdPolicy;
use dht_core::{Config, Id, QueryStats};
use dht_node::{
    bencode_bytes, bencoded_string, resolve, Answer, Dht, DhtBuilder, Error, PUBLIC_ROUTERS,
};
use serde_json::{json, Value};

/// Exit status: the operation found nothing (no value, no peers).
const EXIT_NOT_FOUND: u8 = 1;
/// Exit status: bad usage or a bad argument.
const EXIT_USAGE: u8 = 2;
/// Exit status: any other failure (no node answered, I/O).
const EXIT_FAILURE: u8 = 3;

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
answered is on disk within T = 1 s (the store flushes every 500 ms); the table is saved
every minute and on SIGINT/SIGTERM. A missing or empty DIR is initialised; a DIR that
is not a dht data dir, is corrupt, is in use by another process, or is of a newer format
is refused (exit 3, one line on stderr) and left untouched. With --store mem, --data-dir
only keeps the QUIC node key (a DIR used so cannot later become a sled data dir).
One-shot commands ignore --store and --data-dir.

Bootstrap: without --bootstrap, nodes and one-shot commands join through the public
Mainline routers (router.bittorrent.com:6881, dht.transmissionbt.com:6881,
router.utorrent.com:6881, dht.libtorrent.org:25401). One-shot commands run a read-only
node (BEP 43).

Stdout carries only the result; logs (RUST_LOG) go to stderr.
Exit status: 0 success, 1 not found, 2 bad usage or argument, 3 any other failure.";

#[derive(Debug, Parser)]
#[command(name = "dht-node", version, about = "A BitTorrent Mainline DHT node and client", after_help = AFTER_HELP)]
struct Cli {
    /// Datagram transport (a QUIC network and a UDP network do not meet).
    #[arg(long, global = true, value_enum, default_value_t = TransportKind::Udp)]
    transport: TransportKind,
    /// Where the node keeps items, peers and its routing table (sled: in --data-dir).
    #[arg(long, global = true, value_enum, default_value_t = StoreKind::Mem)]
    store: StoreKind,
    /// Directory for the node's state: the QUIC key (DIR/node.key) with any store,
    /// and everything else with --store sled. Created if missing.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// QUIC: most connections accepted from one public IPv4 address or IPv6 /64
    /// (loopback and private sources are exempt, so a loopback testnet needs no change).
    #[arg(long, global = true, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    quic_max_conns_per_ip: u16,
    /// Address to bind (repeatable; at most one IPv4 and one IPv6).
    /// Node default: 0.0.0.0:6881 and [::]:6881; one-shot commands use a free port.
    #[arg(long, global = true, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Bootstrap node as HOST:PORT (repeatable). Default: the public Mainline routers.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    bootstrap: Vec<String>,
    /// Do not bootstrap (a node others join, or a test network's first node).
    #[arg(long, global = true, conflicts_with = "bootstrap")]
    no_bootstrap: bool,
    /// Bucket size and replication factor.
    #[arg(long, global = true, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    k: u16,
    /// Run the node read-only (BEP 43): it answers no queries.
    #[arg(long)]
    read_only: bool,
    /// Write the bound addresses to this file, one per line, once listening.
    #[arg(long, global = true, value_name = "PATH")]
    addr_file: Option<PathBuf>,
    /// Print one JSON object on stdout instead of the bare result.
    #[arg(long, global = true)]
    json: bool,
    /// How long to wait for each reply, in milliseconds.
    #[arg(long, global = true, hide = true, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    request_timeout_ms: u64,
    /// Tests: housekeeping period in milliseconds (default: the core's, 30 s).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    maintenance_ms: Option<u64>,
    /// Tests: silence after which a node is pinged, in milliseconds (default: the
    /// core's, BEP 5's 15 minutes).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    questionable_after_ms: Option<u64>,
    /// Tests: period of the status log line and of --routing-file, in milliseconds.
    #[arg(long, hide = true, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    status_interval_ms: u64,
    /// Tests: rewrite this file with the routing table ("id addr" a line) at every status.
    #[arg(long, hide = true, value_name = "PATH")]
    routing_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportKind {
    /// Plain UDP (BEP 5).
    Udp,
    /// QUIC (needs the `quic` feature).
    Quic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// In memory: lost on exit.
    Mem,
    /// On disk in --data-dir (needs the `sled` feature).
    Sled,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Announce that we accept BitTorrent connections for INFO_HASH on --port.
    Announce {
        /// The info_hash in hex.
        info_hash: String,
        /// The BitTorrent port to announce.
        #[arg(long)]
        port: u16,
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

/// A failure with the exit status it maps to; printed as one line on stderr.
#[derive(Debug)]
struct Fail {
    status: u8,
    message: String,
}

impl Fail {
    fn usage(message: impl Into<String>) -> Fail {
        Fail {
            status: EXIT_USAGE,
            message: message.into(),
        }
    }
    fn other(message: impl Into<String>) -> Fail {
        Fail {
            status: EXIT_FAILURE,
            message: message.into(),
        }
    }
    fn not_found(message: impl Into<String>) -> Fail {
        Fail {
            status: EXIT_NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::other(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap prints help/version to stdout (status 0) and errors to stderr (status 2).
        Err(e) => e.exit(),
    };
    let default_level = if cli.command.is_some() {
        "warn"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.status)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Fail> {
    #[cfg(not(feature = "quic"))]
    if cli.transport == TransportKind::Quic {
        return Err(Fail::usage(
            "this build has no QUIC transport (build with --features quic)",
        ));
    }
    #[cfg(not(feature = "sled"))]
    if cli.store == StoreKind::Sled {
        return Err(Fail::usage(
            "this build has no sled store (build with --features sled)",
        ));
    }
    match &cli.command {
        None => run_node(&cli).await,
        Some(Command::Keygen { out }) => keygen(&cli, out),
        Some(cmd) => one_shot(&cli, cmd).await,
    }
}

fn builder(cli: &Cli) -> DhtBuilder {
    let mut config = Config {
        k: usize::from(cli.k),
        request_timeout: Duration::from_millis(cli.request_timeout_ms),
        ..Config::default()
    };
    if let Some(ms) = cli.maintenance_ms {
        config.maintenance_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = cli.questionable_after_ms {
        config.questionable_after = Duration::from_millis(ms);
    }
    Dht::builder().config(config)
}

/// The transport chosen by --transport, with what it needs to bind.
enum Net {
    Udp,
    #[cfg(feature = "quic")]
    Quic {
        key: Box<ed25519_dalek::SigningKey>,
        config: dht_net_quic::QuicConfig,
    },
}

impl Net {
    /// `key` is the node key over QUIC (ignored over UDP).
    fn new(cli: &Cli, key: Option<ed25519_dalek::SigningKey>) -> Net {
        match cli.transport {
            TransportKind::Udp => Net::Udp,
            #[cfg(feature = "quic")]
            TransportKind::Quic => {
                let config = dht_net_quic::QuicConfig {
                    max_connections_per_ip: usize::from(cli.quic_max_conns_per_ip),
                    ..dht_net_quic::QuicConfig::default()
                };
                Net::Quic {
                    key: Box::new(key.unwrap_or_else(dht_net_quic::generate_key)),
                    config,
                }
            }
            // `run` refused it already; UDP keeps this arm total without a panic.
            #[cfg(not(feature = "quic"))]
            TransportKind::Quic => {
                let _ = key;
                Net::Udp
            }
        }
    }
}

/// The store chosen by --store, opened.
enum NodeStore {
    Mem(dht_store_mem::MemStore),
    #[cfg(feature = "sled")]
    Sled(Box<dht_store_sled::SledStore>),
}

fn spawn_on<T: Transport>(b: DhtBuilder, transport: T, store: NodeStore) -> io::Result<Dht> {
    match store {
        NodeStore::Mem(s) => b.spawn_with(transport, s),
        #[cfg(feature = "sled")]
        NodeStore::Sled(s) => b.spawn_with(transport, *s),
    }
}

/// A node's store, and what it remembers of the node's previous runs.
struct Opened {
    store: NodeStore,
    /// The id to keep over UDP (over QUIC the key decides it).
    id: Option<Id>,
    /// Contacts saved by a previous run: the node can rejoin through them alone.
    saved_contacts: usize,
}

/// Binds `addrs` on the chosen transport and starts a node there. The store is
/// taken only once the bind has succeeded, so that a failed attempt can be retried
/// on other addresses with the same store (a persistent one can be opened only once).
fn spawn_node(
    b: DhtBuilder,
    net: &Net,
    addrs: &[SocketAddr],
    store: &mut Option<NodeStore>,
) -> io::Result<Dht> {
    let take = |store: &mut Option<NodeStore>| {
        store
            .take()
            .ok_or_else(|| io::Error::other("the store is already in use by another attempt"))
    };
    match net {
        Net::Udp => {
            let transport = dht_net_udp::UdpTransport::bind(addrs)?;
            spawn_on(b, transport, take(store)?)
        }
        #[cfg(feature = "quic")]
        Net::Quic { key, config } => {
            let transport =
                dht_net_quic::QuicTransport::bind(addrs, (**key).clone(), config.clone())?;
            // Peers drop messages whose id is not the one derived from the key
            // the handshake proved, so no other id policy can work over QUIC.
            let b = b.id_policy(IdPolicy::PublicKey(transport.public_key()));
            spawn_on(b, transport, take(store)?)
        }
    }
}

/// The node's key over QUIC: kept in DIR/node.key with a data dir, else fresh.
fn node_key(cli: &Cli) -> Result<Option<ed25519_dalek::SigningKey>, Fail> {
    #[cfg(feature = "quic")]
    if cli.transport == TransportKind::Quic {
        if let Some(dir) = &cli.data_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| Fail::other(format!("cannot create {}: {e}", dir.display())))?;
            let path = dir.join("node.key");
            let key = dht_net_quic::load_or_generate_key(&path).map_err(|e| {
                Fail::other(format!("cannot load the node key {}: {e}", path.display()))
            })?;
            return Ok(Some(key));
        }
    }
    let _ = cli;
    Ok(None)
}

/// Opens the store of a node (one-shot commands always use memory).
fn open_store(cli: &Cli) -> Result<Opened, Fail> {
    match cli.store {
        StoreKind::Mem => {
            if cli.data_dir.is_some() && cli.transport == TransportKind::Udp {
                tracing::warn!(
                    "--data-dir keeps nothing with --store mem over UDP (only the QUIC node key)"
                );
            }
            Ok(Opened {
                store: NodeStore::Mem(dht_store_mem::MemStore::new()),
                id: None,
                saved_contacts: 0,
            })
        }
        #[cfg(feature = "sled")]
        StoreKind::Sled => open_sled(cli),
        #[cfg(not(feature = "sled"))]
        StoreKind::Sled => Err(Fail::usage(
            "this build has no sled store (build with --features sled)",
        )),
    }
}

#[cfg(feature = "sled")]
fn open_sled(cli: &Cli) -> Result<Opened, Fail> {
    use dht_core::Store;

    let Some(dir) = &cli.data_dir else {
        return Err(Fail::usage("--store sled needs --data-dir DIR"));
    };
    let mut store = dht_store_sled::SledStore::open(dir)
        .map_err(|e| Fail::other(format!("cannot open the data dir: {e}")))?;
    let read_err = |e: dht_core::StoreError| {
        Fail::other(format!("cannot read the data dir {}: {e}", dir.display()))
    };
    let snapshot = store.load_routing().map_err(read_err)?;
    let saved_contacts = snapshot.as_ref().map_or(0, |s| s.nodes.len());
    let id = match cli.transport {
        // The key in DIR/node.key decides the id; a saved one would be refused by peers.
        TransportKind::Quic => None,
        TransportKind::Udp => {
            let saved = match store.node_id().map_err(read_err)? {
                Some(id) => Some(id),
                None => snapshot.and_then(|s| s.node_id),
            };
            let id = match saved {
                Some(id) => id,
                None => {
                    let seed = dht_node::os_seed().map_err(|e| Fail::other(e.to_string()))?;
                    let mut id = [0u8; 20];
                    id.copy_from_slice(&seed[..20]);
                    Id(id)
                }
            };
            // Durable before the node says anything under it: an id that changed after
            // a crash would make the node a stranger to everyone who knew it.
            store.set_node_id(id).map_err(|e| {
                Fail::other(format!("cannot write the data dir {}: {e}", dir.display()))
            })?;
            Some(id)
        }
    };
    Ok(Opened {
        store: NodeStore::Sled(Box::new(store)),
        id,
        saved_contacts,
    })
}

/// Writes `text` whole, then renames it into place: a test polling the file never
/// reads half of it.
fn write_file_atomically(path: &Path, text: &str) -> Result<(), Fail> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Fail::other(format!("cannot write {}: {e}", path.display())))
}

fn write_addr_file(path: &Path, addrs: &[SocketAddr]) -> Result<(), Fail> {
    let text: String = addrs.iter().map(|a| format!("{a}\n")).collect();
    write_file_atomically(path, &text)
}

fn bootstrap_names(cli: &Cli) -> Vec<String> {
    if cli.bootstrap.is_empty() {
        PUBLIC_ROUTERS.iter().map(|s| s.to_string()).collect()
    } else {
        cli.bootstrap.clone()
    }
}

fn bind_node(cli: &Cli, net: &Net, store: NodeStore, b: DhtBuilder) -> Result<Dht, Fail> {
    let mut store = Some(store);
    let b = b.read_only(cli.read_only);
    if !cli.listen.is_empty() {
        return spawn_node(b, net, &cli.listen, &mut store)
            .map_err(|e| Fail::other(format!("cannot bind {:?}: {e}", cli.listen)));
    }
    let v4: SocketAddr = ([0, 0, 0, 0], 6881).into();
    let v6: SocketAddr = (std::net::Ipv6Addr::UNSPECIFIED, 6881).into();
    if let Ok(dht) = spawn_node(b.clone(), net, &[v4, v6], &mut store) {
        return Ok(dht);
    }
    // One family may be missing (no IPv6 on the host) or its port taken: run on the other.
    let mut last = None;
    for a in [v4, v6] {
        match spawn_node(b.clone(), net, &[a], &mut store) {
            Ok(dht) => {
                tracing::warn!(
                    "could not bind both 0.0.0.0:6881 and [::]:6881; running on {a} only"
                );
                return Ok(dht);
            }
            Err(e) => {
                tracing::warn!(addr = %a, error = %e, "cannot bind");
                last = Some(e);
            }
        }
    }
    Err(Fail::other(format!(
        "cannot bind 0.0.0.0:6881 nor [::]:6881: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

async fn run_node(cli: &Cli) -> Result<(), Fail> {
    // The store first: it creates and claims the data dir, where the key then goes.
    let opened = open_store(cli)?;
    let net = Net::new(cli, node_key(cli)?);
    let mut b = builder(cli);
    if let Some(id) = opened.id {
        b = b.id_policy(IdPolicy::Fixed(id));
    }
    let dht = bind_node(cli, &net, opened.store, b)?;
    let addrs: Vec<String> = dht.local_addrs().iter().map(|a| a.to_string()).collect();
    // A stable line for scripts and tests, whatever RUST_LOG says.
    eprintln!(
        "dht-node listening id={} addrs={}",
        dht.id(),
        addrs.join(",")
    );
    if let Some(path) = &cli.addr_file {
        write_addr_file(path, dht.local_addrs())?;
    }
    tracing::info!(id = %dht.id(), addrs = %addrs.join(","), read_only = cli.read_only, "node running");

    if !cli.no_bootstrap {
        let dht = dht.clone();
        let names = bootstrap_names(cli);
        tokio::spawn(async move { bootstrap_forever(dht, names).await });
    } else if opened.saved_contacts > 0 {
        // The saved table is the node's own bootstrap list: rejoin through it now
        // rather than at the next housekeeping tick.
        let dht = dht.clone();
        let saved = opened.saved_contacts;
        tokio::spawn(async move {
            match dht.bootstrap(&[]).await {
                Ok(a) => tracing::info!(saved, nodes = a.value.len(), "rejoined"),
                Err(e) => tracing::warn!(saved, error = %e, "no saved contact answered"),
            }
        });
    }
    let status = {
        let dht = dht.clone();
        let every = Duration::from_millis(cli.status_interval_ms);
        let routing_file = cli.routing_file.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Ok(info) = dht.routing_table().await else {
                    break;
                };
                tracing::info!(
                    ipv4_nodes = info.nodes_v4,
                    ipv6_nodes = info.nodes_v6,
                    republishing = info.republishing,
                    datagrams_in = info.stats.datagrams_in,
                    datagrams_out = info.stats.datagrams_out,
                    key_id_mismatch = info.stats.key_id_mismatch,
                    "status"
                );
                if let Some(path) = &routing_file {
                    let text: String = info
                        .nodes
                        .iter()
                        .map(|n| format!("{} {}\n", n.id, n.addr))
                        .collect();
                    if let Err(f) = write_file_atomically(path, &text) {
                        tracing::warn!("{}", f.message);
                    }
                }
            }
        })
    };
    wait_for_signal().await;
    tracing::info!("shutting down");
    status.abort();
    dht.shutdown().await?;
    Ok(())
}

/// Bootstraps until some node answers, backing off up to five minutes: a node
/// started before its network (or offline for a while) joins once it can.
async fn bootstrap_forever(dht: Dht, names: Vec<String>) {
    let mut delay = Duration::from_secs(5);
    loop {
        let addrs = resolve(&names).await;
        if !addrs.is_empty() {
            match dht.bootstrap(&addrs).await {
                Ok(a) => {
                    tracing::info!(nodes = a.value.len(), "bootstrapped");
                    return;
                }
                Err(Error::Shutdown) => return,
                Err(_) => {}
            }
        }
        tracing::warn!(
            "no bootstrap node answered; retrying in {}s",
            delay.as_secs()
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(300));
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the node");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

fn keygen(cli: &Cli, out: &Path) -> Result<(), Fail> {
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // A secret key: readable by its owner only.
        opts.mode(0o600);
    }
    let mut f = opts
        .open(out)
        .map_err(|e| Fail::other(format!("cannot create {}: {e}", out.display())))?;
    writeln!(f, "{}", to_hex(key.as_bytes()))
        .map_err(|e| Fail::other(format!("cannot write {}: {e}", out.display())))?;
    let public = to_hex(key.verifying_key().as_bytes());
    if cli.json {
        print_json(json!({ "public_key": public, "key_file": out.display().to_string() }));
    } else {
        println!("{public}");
    }
    Ok(())
}

fn read_key(path: &Path) -> Result<ed25519_dalek::SigningKey, Fail> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Fail::other(format!("cannot read {}: {e}", path.display())))?;
    let bytes = from_hex(text.trim())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            Fail::usage(format!(
                "{}: expected 64 hex characters (an ed25519 seed)",
                path.display()
            ))
        })?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&bytes))
}

fn parse_id(what: &str, s: &str) -> Result<Id, Fail> {
    Id::from_hex(s)
        .ok_or_else(|| Fail::usage(format!("{what}: expected 40 hex characters, got {s:?}")))
}

fn parse_key(s: &str) -> Result<[u8; 32], Fail> {
    from_hex(s)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| Fail::usage(format!("public key: expected 64 hex characters, got {s:?}")))
}

fn stats_json(s: &QueryStats) -> Value {
    json!({
        "hops": s.hops,
        "requests": s.requests,
        "responses": s.responses,
        "timeouts": s.timeouts,
        "duration_ms": s.duration.as_millis() as u64,
    })
}

fn print_json(v: Value) {
    println!("{v}");
}

/// Prints a value for scripts: a bencoded string's bytes raw, anything else as bencode.
fn write_value(bencoded: &[u8]) {
    let raw = bencoded_string(bencoded).unwrap_or(bencoded);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(raw);
    let _ = out.write_all(b"\n");
}

/// A value for JSON: the string when it is UTF-8, and the bencode in hex always.
fn value_json(bencoded: &[u8]) -> (Value, String) {
    let raw = bencoded_string(bencoded).unwrap_or(bencoded);
    let text = std::str::from_utf8(raw)
        .map(|s| Value::String(s.to_string()))
        .unwrap_or(Value::Null);
    (text, to_hex(bencoded))
}

/// One checked one-shot operation.
enum Task {
    PutImmutable(Vec<u8>),
    PutMutable {
        key: Box<ed25519_dalek::SigningKey>,
        value: Vec<u8>,
        salt: Vec<u8>,
        seq: Option<i64>,
        cas: Option<i64>,
    },
    GetImmutable(Id),
    GetMutable([u8; 32], Vec<u8>),
    Announce(Id, u16),
    Peers(Id),
    Ping(String),
    FindNode(Id),
}

async fn one_shot(cli: &Cli, cmd: &Command) -> Result<(), Fail> {
    // Arguments are checked before any network activity, so that a typo costs nothing.
    let op = match cmd {
        Command::Put {
            value,
            mutable,
            key,
            salt,
            seq,
            cas,
        } => {
            let bencoded = bencode_bytes(value.as_bytes());
            if bencoded.len() > dht_core::krpc::MAX_VALUE_LEN {
                return Err(Fail::usage(format!(
                    "value too big: {} bytes bencoded, at most {}",
                    bencoded.len(),
                    dht_core::krpc::MAX_VALUE_LEN
                )));
            }
            let salt = salt.clone().unwrap_or_default().into_bytes();
            if salt.len() > dht_core::krpc::MAX_SALT_LEN {
                return Err(Fail::usage(format!(
                    "salt too big: {} bytes, at most {}",
                    salt.len(),
                    dht_core::krpc::MAX_SALT_LEN
                )));
            }
            match (mutable, key) {
                (true, Some(path)) => Task::PutMutable {
                    key: Box::new(read_key(path)?),
                    value: bencoded,
                    salt,
                    seq: *seq,
                    cas: *cas,
                },
                (false, Some(_)) => return Err(Fail::usage("--key needs --mutable")),
                _ => Task::PutImmutable(bencoded),
            }
        }
        Command::Get {
            target,
            mutable,
            salt,
        } => {
            if *mutable {
                Task::GetMutable(
                    parse_key(target)?,
                    salt.clone().unwrap_or_default().into_bytes(),
                )
            } else {
                Task::GetImmutable(parse_id("target", target)?)
            }
        }
        Command::Announce { info_hash, port } => {
            if *port == 0 {
                return Err(Fail::usage("--port must be between 1 and 65535"));
            }
            Task::Announce(parse_id("info_hash", info_hash)?, *port)
        }
        Command::Peers { info_hash } => Task::Peers(parse_id("info_hash", info_hash)?),
        Command::Ping { addr } => Task::Ping(addr.clone()),
        Command::FindNode { id } => Task::FindNode(parse_id("id", id)?),
        Command::Keygen { out } => return keygen(cli, out),
    };

    let (seeds, ping_addr) = match &op {
        Task::Ping(addr) => {
            let resolved = resolve(std::slice::from_ref(addr)).await;
            let Some(a) = resolved.first().copied() else {
                return Err(Fail::usage(format!(
                    "cannot resolve {addr:?} (expected HOST:PORT)"
                )));
            };
            (vec![a], Some(a))
        }
        _ if cli.no_bootstrap => (Vec::new(), None),
        _ => {
            let names = bootstrap_names(cli);
            let seeds = resolve(&names).await;
            if seeds.is_empty() {
                return Err(Fail::other(format!(
                    "cannot resolve any bootstrap node of {names:?}"
                )));
            }
            (seeds, None)
        }
    };

    let b = builder(cli).read_only(true).republish(None);
    let mut listen = cli.listen.clone();
    if listen.is_empty() {
        // A free port in each family we need to reach.
        if seeds.iter().any(|a| a.is_ipv4()) || seeds.is_empty() {
            listen.push(([0, 0, 0, 0], 0).into());
        }
        if seeds.iter().any(|a| a.is_ipv6()) {
            listen.push((std::net::Ipv6Addr::UNSPECIFIED, 0).into());
        }
    }
    // A one-shot client keeps nothing: a fresh key (a fresh id) and a memory store.
    let net = Net::new(cli, None);
    let store = NodeStore::Mem(dht_store_mem::MemStore::new());
    let dht = spawn_node(b, &net, &listen, &mut Some(store))
        .map_err(|e| Fail::other(format!("cannot bind: {e}")))?;
    if let Some(path) = &cli.addr_file {
        write_addr_file(path, dht.local_addrs())?;
    }
    let result = run_op(cli, &dht, op, &seeds, ping_addr).await;
    let _ = dht.shutdown().await;
    result
}

fn stored_json(target: &Id, a: &Answer<dht_node::Stored>) -> Value {
    json!({
        "target": target.to_hex(),
        "stored_at": a.value.stored_at.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "refused": a.value.refused.len(),
        "stats": stats_json(&a.stats),
    })
}

async fn run_op(
    cli: &Cli,
    dht: &Dht,
    task: Task,
    seeds: &[SocketAddr],
    ping_addr: Option<SocketAddr>,
) -> Result<(), Fail> {
    if let (Task::Ping(_), Some(addr)) = (&task, ping_addr) {
        let a = dht
            .ping(addr)
            .await
            .map_err(|e| Fail::other(format!("{addr} did not answer: {e}")))?;
        if cli.json {
            print_json(json!({
                "id": a.value.id.to_hex(),
                "addr": a.value.addr.to_string(),
                "stats": stats_json(&a.stats),
            }));
        } else {
            println!("{}", a.value.id);
        }
        return Ok(());
    }
    if !seeds.is_empty() {
        dht.bootstrap(seeds).await.map_err(|e| match e {
            Error::NoResponse => Fail::other(format!(
                "no bootstrap node answered ({} tried)",
                seeds.len()
            )),
            e => e.into(),
        })?;
    }
    match task {
        Task::PutImmutable(value) => {
            let a = dht.put_immutable(value).await.map_err(put_failure)?;
            let target = a.value.target;
            if cli.json {
                print_json(stored_json(&target, &a));
            } else {
                println!("{target}");
            }
        }
        Task::PutMutable {
            key,
            value,
            salt,
            seq,
            cas,
        } => {
            let public = key.verifying_key().to_bytes();
            let seq = match seq {
                Some(s) => s,
                None => {
                    let found = dht.get_mutable(public, &salt, None).await?;
                    match found.value {
                        Some(item) => item.seq.checked_add(1).ok_or_else(|| {
                            Fail::other("the stored seq is already the largest possible")
                        })?,
                        None => 1,
                    }
                }
            };
            let item = MutableItem::sign(&key, &salt, seq, &value);
            let a = dht.put_mutable(item, cas).await.map_err(put_failure)?;
            let target = a.value.target;
            if cli.json {
                let mut v = stored_json(&target, &a);
                v["seq"] = json!(seq);
                v["public_key"] = json!(to_hex(&public));
                print_json(v);
            } else {
                println!("{target}");
            }
        }
        Task::GetImmutable(target) => {
            let a = dht.get_immutable(target).await?;
            let Some(value) = a.value else {
                return Err(not_found(&a.stats, format!("no value found for {target}")));
            };
            if cli.json {
                let (text, hex) = value_json(&value);
                print_json(json!({
                    "target": target.to_hex(),
                    "value": text,
                    "value_bencoded_hex": hex,
                    "stats": stats_json(&a.stats),
                }));
            } else {
                write_value(&value);
            }
        }
        Task::GetMutable(key, salt) => {
            let a = dht.get_mutable(key, &salt, None).await?;
            let target = dht_core::mutable_target(&key, &salt);
            let Some(item) = a.value else {
                return Err(not_found(&a.stats, format!("no value found for {target}")));
            };
            if cli.json {
                let (text, hex) = value_json(&item.value);
                print_json(json!({
                    "target": target.to_hex(),
                    "public_key": to_hex(&key),
                    "value": text,
                    "value_bencoded_hex": hex,
                    "seq": item.seq,
                    "stats": stats_json(&a.stats),
                }));
            } else {
                write_value(&item.value);
                println!("{}", item.seq);
            }
        }
        Task::Announce(info_hash, port) => {
            let a = dht
                .announce_peer(info_hash, Some(port))
                .await
                .map_err(put_failure)?;
            if cli.json {
                let mut v = stored_json(&info_hash, &a);
                v["port"] = json!(port);
                print_json(v);
            } else {
                println!("{info_hash}");
            }
        }
        Task::Peers(info_hash) => {
            let a = dht.get_peers(info_hash).await?;
            if a.value.peers.is_empty() {
                return Err(not_found(
                    &a.stats,
                    format!("no peers found for {info_hash}"),
                ));
            }
            if cli.json {
                print_json(json!({
                    "info_hash": info_hash.to_hex(),
                    "peers": a.value.peers.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                    "nodes": nodes_json(&a.value.closest),
                    "stats": stats_json(&a.stats),
                }));
            } else {
                let mut out = std::io::stdout().lock();
                for p in &a.value.peers {
                    let _ = writeln!(out, "{p}");
                }
            }
        }
        Task::FindNode(id) => {
            let a = dht.find_node(id).await?;
            if a.value.is_empty() {
                return Err(Fail::other("no node answered"));
            }
            if cli.json {
                print_json(json!({
                    "target": id.to_hex(),
                    "nodes": nodes_json(&a.value),
                    "stats": stats_json(&a.stats),
                }));
            } else {
                let mut out = std::io::stdout().lock();
                for n in &a.value {
                    let _ = writeln!(out, "{} {}", n.id, n.addr);
                }
            }
        }
        Task::Ping(addr) => return Err(Fail::usage(format!("cannot resolve {addr:?}"))),
    }
    Ok(())
}

fn nodes_json(nodes: &[dht_core::NodeInfo]) -> Value {
    Value::Array(
        nodes
            .iter()
            .map(|n| json!({ "id": n.id.to_hex(), "addr": n.addr.to_string() }))
            .collect(),
    )
}

/// "Not found" only when some node was asked and answered; silence is a failure.
fn not_found(stats: &QueryStats, message: String) -> Fail {
    if stats.responses == 0 {
        Fail::other("no node answered")
    } else {
        Fail::not_found(message)
    }
}

fn put_failure(e: Error) -> Fail {
    match e {
        Error::NoResponse => Fail::other("no node stored it (none answered)"),
        e => Fail::other(format!("no node stored it: {e}")),
    }
}
