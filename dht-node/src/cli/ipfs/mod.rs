//! `--overlay ipfs`: IPFS's Kademlia (`dht-ipfs`) on libp2p (`dht-net-libp2p`), with a
//! command line of its own (`flags`): its addresses are multiaddrs and `--key` is the
//! node's identity for every command. `node` runs a server or client node (with its
//! `--http`), `oneshot` the one-shot clients, `keys` parses CIDs, PeerIds and record
//! keys. This file holds what both share: the identity, the bootstrap peers, the
//! store and the host's configuration.

mod flags;
mod ipns;
mod keys;
mod node;
mod oneshot;
mod routing;

use std::path::Path;

use dht_ipfs::Mode;
use dht_net_libp2p::{HostConfig, HostError, IpfsHandle, IpfsHost};
use libp2p::identity::Keypair;
use libp2p::Multiaddr;

pub(crate) use flags::IpfsCli;
use flags::{IpfsCommand, ModeArg};

use super::{Fail, StoreKind};

/// Kubo's default bootstrap peers (its `config/bootstrap_peers.go`, TCP ones): four
/// behind `/dnsaddr/bootstrap.libp2p.io`, whose TXT records libp2p's DNS transport
/// resolves when they are dialed, and one with an IP address.
const KUBO_BOOTSTRAP: [&str; 5] = [
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
];

/// Runs what an `--overlay ipfs` command line asks.
pub(crate) async fn run(cli: IpfsCli) -> Result<(), Fail> {
    match &cli.command {
        None => node::run(&cli).await,
        Some(IpfsCommand::Keygen { out }) => super::oneshot::keygen(cli.json, out),
        Some(IpfsCommand::PeerId) => match &cli.key {
            Some(key) => peer_id(cli.json, key),
            None => Err(Fail::usage("peer-id needs --key FILE")),
        },
        Some(command) => oneshot::run(&cli, command).await,
    }
}

/// `peer-id --key FILE`: the key's PeerId alone on a line.
pub(crate) fn peer_id(json: bool, key: &Path) -> Result<(), Fail> {
    let id = read_keypair(key)?.public().to_peer_id();
    if json {
        super::output::json_line(&serde_json::json!({ "peer_id": id.to_string() }));
    } else {
        oneshot::say(&id.to_string());
    }
    Ok(())
}

/// `--key FILE`: the format `keygen` writes (64 hex characters, the ed25519 seed).
fn read_keypair(path: &Path) -> Result<Keypair, Fail> {
    let key = super::oneshot::read_key(path)?;
    Keypair::ed25519_from_bytes(key.to_bytes())
        .map_err(|e| Fail::usage(format!("{}: {e}", path.display())))
}

/// A node's identity: --key, else DIR/node.key (the QUIC key's file and format: 32
/// bytes, created on first start), else a fresh key.
fn node_keypair(cli: &IpfsCli) -> Result<Keypair, Fail> {
    if let Some(path) = &cli.key {
        return read_keypair(path);
    }
    let Some(dir) = &cli.data_dir else {
        return Ok(Keypair::generate_ed25519());
    };
    let path = dir.join(dht_node::identity::NODE_KEY_FILE);
    let cannot = |e: &dyn std::fmt::Display| {
        Fail::other(format!("cannot load the node key {}: {e}", path.display()))
    };
    let seed: [u8; 32] = match dht_node::identity::read_bounded(&path, 32) {
        Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            cannot(&format!(
                "a node key file holds 32 bytes, this one {}",
                bytes.len()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| cannot(&e))?;
            let seed = dht_node::identity::os_seed().map_err(|e| cannot(&e))?;
            dht_node::identity::write_new_secret(&path, &seed).map_err(|e| cannot(&e))?;
            seed
        }
        Err(e) => return Err(cannot(&e)),
    };
    Keypair::ed25519_from_bytes(seed).map_err(|e| cannot(&e))
}

/// The peers to join through: --bootstrap, none with --no-bootstrap, else Kubo's.
fn seeds(cli: &IpfsCli) -> Vec<Multiaddr> {
    if !cli.no_bootstrap && cli.bootstrap.is_empty() {
        tracing::info!("joining through Kubo's bootstrap peers (the public IPFS network)");
    }
    seed_list(cli)
}

/// [`seeds`], quietly.
fn seed_list(cli: &IpfsCli) -> Vec<Multiaddr> {
    if cli.no_bootstrap {
        return Vec::new();
    }
    if !cli.bootstrap.is_empty() {
        return cli.bootstrap.clone();
    }
    KUBO_BOOTSTRAP
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// Whether dialing `addr` takes a DNS lookup (`/dns*`, `/dnsaddr`).
fn needs_dns(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    addr.iter().any(|p| {
        matches!(
            p,
            Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_)
        )
    })
}

/// A seed for the engine's RNG from the OS.
fn os_seed() -> Result<u64, Fail> {
    let s =
        dht_node::identity::os_seed().map_err(|e| Fail::other(format!("no OS randomness: {e}")))?;
    let mut first = [0u8; 8];
    first.copy_from_slice(&s[..8]);
    Ok(u64::from_le_bytes(first))
}

/// The host's configuration: `mode` is what the command line asked (a one-shot passes
/// client).
fn host_config(
    cli: &IpfsCli,
    keypair: Keypair,
    listen: Vec<Multiaddr>,
    mode: ModeArg,
) -> Result<HostConfig, Fail> {
    let mut config = HostConfig::new(keypair, listen);
    config.announce = cli.announce.clone();
    (config.mode, config.auto_mode) = match mode {
        ModeArg::Server => (Mode::Server, false),
        ModeArg::Client => (Mode::Client, false),
        ModeArg::Auto => (Mode::Client, true),
    };
    config.seed = os_seed()?;
    config.limits.exempt_local = !cli.no_local_exemption;
    // A resolver only when a seed has a name: test networks never resolve one.
    config.dns = seed_list(cli).iter().any(needs_dns);
    Ok(config)
}

/// The store a node keeps its records in, opened.
enum IpfsStore {
    Mem(dht_ipfs::MemStore),
    #[cfg(feature = "sled")]
    Sled(Box<dht_ipfs_store_sled::SledStore>),
}

/// The marker of a Mainline data dir, and of an IPFS one (`dht_store_sled::MARKER`,
/// `dht_ipfs_store_sled::MARKER`, named here so that builds without sled check them).
const MAINLINE_MARKER: &str = "DHT-DATA-DIR";
const IPFS_MARKER: &str = "DHT-IPFS-DATA-DIR";

/// Opens --store in --data-dir. A Mainline data dir, or a directory holding files of
/// someone else, is refused (exit 3) and left untouched, whatever the store.
fn open_store(cli: &IpfsCli) -> Result<IpfsStore, Fail> {
    let limits = dht_ipfs::StoreLimits::default();
    match cli.store {
        StoreKind::Mem => {
            if let Some(dir) = &cli.data_dir {
                check_data_dir(dir)?;
            }
            Ok(IpfsStore::Mem(dht_ipfs::MemStore::new(limits)))
        }
        #[cfg(feature = "sled")]
        StoreKind::Sled => {
            let Some(dir) = &cli.data_dir else {
                return Err(Fail::usage("--store sled needs --data-dir DIR"));
            };
            let store = dht_ipfs_store_sled::SledStore::open(dir, limits)
                .map_err(|e| Fail::other(format!("cannot open the data dir: {e}")))?;
            Ok(IpfsStore::Sled(Box::new(store)))
        }
        #[cfg(not(feature = "sled"))]
        StoreKind::Sled => Err(Fail::usage(
            "this build has no sled store (build with --features sled)",
        )),
    }
}

/// A --data-dir with --store mem keeps only the key: it must be missing, empty, hold
/// only the key, or be an IPFS data dir.
fn check_data_dir(dir: &Path) -> Result<(), Fail> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Fail::other(format!(
                "cannot read the data dir {}: {e}",
                dir.display()
            )))
        }
    };
    let names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    if names.iter().any(|n| n == MAINLINE_MARKER) {
        return Err(Fail::other(format!(
            "{} is a Mainline (BitTorrent) DHT data directory (it has {MAINLINE_MARKER}), \
             not an IPFS one: refused, left untouched (give the IPFS node a directory of its own)",
            dir.display()
        )));
    }
    if names.iter().any(|n| n == IPFS_MARKER) {
        return Ok(());
    }
    match names
        .iter()
        .find(|n| *n != dht_node::identity::NODE_KEY_FILE)
    {
        None => Ok(()),
        Some(name) => Err(Fail::other(format!(
            "{} is not a dht data dir (no {IPFS_MARKER} marker) and holds other files ({}): \
             refused, left untouched",
            dir.display(),
            name.to_string_lossy()
        ))),
    }
}

/// Starts a host with `store`.
async fn spawn(config: HostConfig, store: IpfsStore) -> Result<IpfsHandle, Fail> {
    let spawned = match store {
        IpfsStore::Mem(s) => IpfsHost::spawn(config, s).await,
        #[cfg(feature = "sled")]
        IpfsStore::Sled(s) => IpfsHost::spawn(config, *s).await,
    };
    spawned.map_err(|e| match e {
        HostError::Listen(addr, why) => Fail::other(format!("cannot listen on {addr}: {why}")),
        e => Fail::other(format!("cannot start the node: {e}")),
    })
}

/// The listen multiaddrs with /p2p/<PeerId>, one a line (--addr-file).
fn write_addr_file(path: &Path, handle: &IpfsHandle) -> Result<(), Fail> {
    let text: String = handle
        .dial_addrs()
        .iter()
        .map(|a| format!("{a}\n"))
        .collect();
    super::output::write_file_atomically(path, &text)
}

#[cfg(test)]
mod tests {
    use super::{needs_dns, KUBO_BOOTSTRAP};

    #[test]
    fn kubo_bootstrap_peers_are_seeds_and_the_dnsaddr_ones_need_dns() {
        let seeds: Vec<libp2p::Multiaddr> = KUBO_BOOTSTRAP
            .iter()
            .map(|a| a.parse().expect("a multiaddr"))
            .collect();
        for s in &seeds {
            let peer = dht_net_libp2p::seed_peer(s).expect("ends in /p2p/<PeerId>");
            let dial = peer.addrs()[0].to_string();
            assert!(!dial.contains("/p2p/"), "{dial}: the PeerId is taken off");
        }
        let named = seeds.iter().filter(|s| needs_dns(s)).count();
        assert_eq!(named, 4, "the /dnsaddr/bootstrap.libp2p.io peers");
        assert!(!needs_dns(
            &"/ip4/127.0.0.1/tcp/4001".parse().expect("a multiaddr")
        ));
    }
}
