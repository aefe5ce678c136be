//! Backend choice: the core configuration from the flags, the transport
//! (`--transport`, with the QUIC node key kept in the data dir), the store
//! (`--store`, opening a sled data dir and the node id kept there), and binding.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use dht_core::Config;
use dht_core::Transport;
use dht_node::{Dht, DhtBuilder};

use super::{Cli, Fail, StoreKind, TransportKind};

/// A builder configured from the flags every mode shares.
pub(crate) fn builder(cli: &Cli) -> DhtBuilder {
    let mut config = Config::default();
    config.k = usize::from(cli.k);
    config.request_timeout = Duration::from_millis(cli.request_timeout_ms);
    if let Some(ms) = cli.maintenance_ms {
        config.maintenance_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = cli.min_request_timeout_ms {
        config.min_request_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = cli.questionable_after_ms {
        config.questionable_after = Duration::from_millis(ms);
    }
    if let Some(ms) = cli.item_ttl_ms {
        config.item_ttl = Duration::from_millis(ms);
    }
    if let Some(ms) = cli.peer_ttl_ms {
        config.peer_ttl = Duration::from_millis(ms);
    }
    config.limits.max_items = cli.max_items;
    config.limits.max_info_hashes = cli.max_info_hashes;
    config.limits.max_peers_per_swarm = cli.max_peers_per_swarm;
    config.defense.exempt_local = !cli.no_local_exemption;
    config.handover = cli.handover;
    Dht::builder()
        .config(config)
        .egress_delay(cli.egress_delay_ms.map(Duration::from_millis))
}

/// The transport chosen by --transport, with what it needs to bind.
pub(crate) enum Net {
    Udp,
    #[cfg(feature = "quic")]
    Quic {
        key: Box<ed25519_dalek::SigningKey>,
        config: dht_net_quic::QuicConfig,
    },
}

impl Net {
    /// `key` is the node key over QUIC (ignored over UDP).
    pub(crate) fn new(cli: &Cli, key: Option<ed25519_dalek::SigningKey>) -> Net {
        match cli.transport {
            TransportKind::Udp => Net::Udp,
            #[cfg(feature = "quic")]
            TransportKind::Quic => {
                let config = dht_net_quic::QuicConfig {
                    max_connections_per_ip: usize::from(cli.quic_max_conns_per_ip),
                    // --no-local-exemption holds loopback and private sources to the
                    // per-address bound too, as it does the core's defenses.
                    exempt_local: !cli.no_local_exemption,
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
pub(crate) enum NodeStore {
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
pub(crate) struct Opened {
    pub(crate) store: NodeStore,
    /// The builder with the id kept in the data dir over UDP (over QUIC the key
    /// decides it).
    pub(crate) builder: DhtBuilder,
    /// Contacts saved by a previous run: the node can rejoin through them alone.
    pub(crate) saved_contacts: usize,
    /// The sled store's write failures (a full disk), for the node to log.
    #[cfg(feature = "sled")]
    pub(crate) write_health: Option<dht_store_sled::WriteHealth>,
}

/// Binds `addrs` on the chosen transport and starts a node there. The store is
/// taken only once the bind has succeeded, so that a failed attempt can be retried
/// on other addresses with the same store (a persistent one can be opened only once).
pub(crate) fn spawn_node(
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
            // `spawn_quic` runs the core with the key-derived id, the only one
            // peers accept over QUIC.
            match take(store)? {
                NodeStore::Mem(s) => b.spawn_quic(transport, s),
                #[cfg(feature = "sled")]
                NodeStore::Sled(s) => b.spawn_quic(transport, *s),
            }
        }
    }
}

/// The node's key over QUIC: kept in DIR/node.key with a data dir, else fresh.
pub(crate) fn node_key(cli: &Cli) -> Result<Option<ed25519_dalek::SigningKey>, Fail> {
    #[cfg(feature = "quic")]
    if cli.transport == TransportKind::Quic {
        if let Some(dir) = &cli.data_dir {
            let key =
                dht_node::identity::load_node_key(dir).map_err(|e| Fail::other(e.to_string()))?;
            return Ok(Some(key));
        }
    }
    let _ = cli;
    Ok(None)
}

/// The data dir's marker file (`dht_store_sled::MARKER`, named here so that builds
/// without sled check it too).
const DATA_DIR_MARKER: &str = "DHT-DATA-DIR";

/// A --data-dir used without sled must be missing, empty, hold only the node key, or
/// be a dht data dir (its marker present): `--data-dir $HOME` must not get a node.key
/// written into it, whatever the store.
fn check_data_dir(dir: &std::path::Path) -> Result<(), Fail> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Fail::other(format!(
                "cannot read the data dir {}: {e}",
                dir.display()
            )))
        }
    };
    let mut foreign = None;
    for e in entries.flatten() {
        let name = e.file_name();
        if name == DATA_DIR_MARKER {
            return Ok(());
        }
        if name != dht_node::identity::NODE_KEY_FILE {
            foreign = Some(name);
        }
    }
    match foreign {
        None => Ok(()),
        Some(name) => Err(Fail::other(format!(
            "{} is not a dht data dir (no {DATA_DIR_MARKER} marker) and holds other files ({}): refused, left untouched",
            dir.display(),
            name.to_string_lossy()
        ))),
    }
}

/// Opens the store of a node (one-shot commands always use memory), and sets the
/// builder's id to the one kept there.
pub(crate) fn open_store(cli: &Cli, builder: DhtBuilder) -> Result<Opened, Fail> {
    match cli.store {
        StoreKind::Mem => {
            if let Some(dir) = &cli.data_dir {
                check_data_dir(dir)?;
            }
            if cli.data_dir.is_some() && cli.transport == TransportKind::Udp {
                tracing::warn!(
                    "--data-dir keeps nothing with --store mem over UDP (only the QUIC node key)"
                );
            }
            Ok(Opened {
                store: NodeStore::Mem(dht_store_mem::MemStore::new()),
                builder,
                saved_contacts: 0,
                #[cfg(feature = "sled")]
                write_health: None,
            })
        }
        #[cfg(feature = "sled")]
        StoreKind::Sled => open_sled(cli, builder),
        #[cfg(not(feature = "sled"))]
        StoreKind::Sled => {
            let _ = builder;
            Err(Fail::usage(
                "this build has no sled store (build with --features sled)",
            ))
        }
    }
}

#[cfg(feature = "sled")]
fn open_sled(cli: &Cli, builder: DhtBuilder) -> Result<Opened, Fail> {
    use dht_core::Store;
    use dht_node::identity::IdentityError;

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
    let builder = match cli.transport {
        // The key in DIR/node.key decides the id; a saved one would be refused by peers.
        TransportKind::Quic => builder,
        TransportKind::Udp => builder.keep_id_in(&mut store).map_err(|e| match e {
            IdentityError::Read(e) => read_err(e),
            IdentityError::Write(e) => {
                Fail::other(format!("cannot write the data dir {}: {e}", dir.display()))
            }
            IdentityError::Seed(e) => Fail::other(e.to_string()),
        })?,
    };
    Ok(Opened {
        write_health: Some(store.health()),
        store: NodeStore::Sled(Box::new(store)),
        builder,
        saved_contacts,
    })
}

/// Starts a node on --listen, or on 0.0.0.0:6881 and [::]:6881 (or whichever of
/// the two binds).
pub(crate) fn bind_node(
    cli: &Cli,
    net: &Net,
    store: NodeStore,
    b: DhtBuilder,
) -> Result<Dht, Fail> {
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
