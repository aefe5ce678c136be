//! `dht-node --overlay ipfs`'s command line: its own clap definition, since its
//! addresses are multiaddrs where Mainline's and Chord's are `IP:PORT`, and `--key` is
//! the node's identity for every command. Nothing here runs anything.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use libp2p::Multiaddr;

use super::keys::{
    parse_cid, parse_lookup_key, parse_peer_id, parse_record_key, Cid, LookupKey, RecordKey,
};
use crate::cli::{LogFormat, StoreKind};

const AFTER_HELP: &str = "\
Without a subcommand, runs an IPFS Kademlia (Amino DHT) node on libp2p (TCP + noise +
yamux) until SIGINT or SIGTERM. One-shot commands run a client-mode node that joins
through --bootstrap, does one operation and exits.

Addresses are multiaddrs: --listen /ip4/127.0.0.1/tcp/4001, --bootstrap
/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW... Without --bootstrap and --no-bootstrap, nodes
and one-shots join through Kubo's default bootstrap peers (the public IPFS network):
its /ip4 peer, and the /dnsaddr/bootstrap.libp2p.io peers resolved through DNS.

Identity: --key FILE (64 hex characters, as `dht-node keygen --out FILE` writes), else
DIR/node.key with --data-dir (created on first start), else a fresh key per start.
`dht-node peer-id --key FILE` prints its PeerId.

Mode: auto (the default) is a client until the node has a public listen or --announce
address, or a public address two peers observed alike; then a server.

Data dir: --store sled --data-dir DIR keeps records and provider records in DIR (an
IPFS data dir: a Mainline data dir is refused with exit 3, as an IPFS one is by a
Mainline node). --provide CID is announced once joined and again every 22 h.

Keys: a CID is v0 (Qm...) or v1 in base32 (b...), base58btc (z...) or base36 (k...),
any codec; its DHT key is its multihash. Record keys are /pk/<PeerId> and
/ipns/<name>; `get-record` prints the best valid record's value in lowercase hex.
`ipns publish --key FILE PATH` signs and stores an IPNS record of the key's name (the
one-shot connects with a fresh identity); `ipns resolve NAME` prints its path.

Stdout carries only the result (one JSON object with --json); logs go to stderr.
Exit status: 0 success, 1 not found, 2 bad usage or argument, 3 any other failure.";

#[derive(Debug, Parser)]
#[command(name = "dht-node", version, about = "An IPFS Kademlia DHT node and client (dht-node --overlay ipfs)", after_help = AFTER_HELP)]
pub(crate) struct IpfsCli {
    /// The overlay: `ipfs` here (`dht-node --help` lists the others).
    #[arg(long, global = true, value_parser = ["ipfs"], default_value = "ipfs")]
    pub(crate) overlay: String,
    /// Multiaddr to listen on (repeatable). Node default: /ip4/0.0.0.0/tcp/4001 and
    /// /ip6/::/tcp/4001; one-shots listen only for `provide` (a free port).
    #[arg(long, global = true, value_name = "MULTIADDR")]
    pub(crate) listen: Vec<Multiaddr>,
    /// A peer to join through, ending in /p2p/<PeerId> (repeatable). Default: Kubo's
    /// bootstrap peers.
    #[arg(long, global = true, value_name = "MULTIADDR", value_parser = parse_seed)]
    pub(crate) bootstrap: Vec<Multiaddr>,
    /// Join nobody (a test network's first node).
    #[arg(long, global = true, conflicts_with = "bootstrap")]
    pub(crate) no_bootstrap: bool,
    /// Serve the DHT, only ask, or serve once the node is reachable (nodes only;
    /// one-shots are clients).
    #[arg(long, global = true, value_enum)]
    pub(crate) mode: Option<ModeArg>,
    /// An address to advertise besides the listen ones (repeatable): a forwarded port.
    #[arg(long, global = true, value_name = "MULTIADDR")]
    pub(crate) announce: Vec<Multiaddr>,
    /// The ed25519 secret key (64 hex characters, from `keygen`): the PeerId.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
    /// Where the node keeps records and provider records (sled: in --data-dir).
    #[arg(long, global = true, value_enum, default_value_t = StoreKind::Mem)]
    pub(crate) store: StoreKind,
    /// The node's directory: its key (DIR/node.key), and with --store sled its data.
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// A CID to provide (repeatable): announced once joined, again every 22 h.
    #[arg(long, value_name = "CID", value_parser = parse_cid)]
    pub(crate) provide: Vec<Cid>,
    /// Write the listen multiaddrs with /p2p/<PeerId> to this file, one a line.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) addr_file: Option<PathBuf>,
    /// Print one JSON object on stdout instead of plain lines.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Serve /metrics, /healthz, /readyz (200 with k servers in the table) and the
    /// Delegated Routing V1 API (/routing/v1/: providers, peers, IPNS) on ADDR.
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<SocketAddr>,
    /// A file holding the bearer token that --http's IPNS PUT requires as
    /// `Authorization: Bearer TOKEN` (as the Mainline node's /v1/ writes do).
    #[arg(long, value_name = "FILE", requires = "http")]
    pub(crate) http_token_file: Option<PathBuf>,
    /// Apply the per-IP connection bound and the table's diversity rules to loopback
    /// and private sources too.
    #[arg(long, global = true)]
    pub(crate) no_local_exemption: bool,
    /// The signing key of an IPNS name this node republishes (repeatable; 64 hex
    /// characters, from `keygen`): its best record is put again every 4 h, re-signed
    /// to live 48 h more when it would end sooner, as Kubo does.
    #[arg(long, value_name = "FILE")]
    pub(crate) ipns_key: Vec<PathBuf>,
    /// Tests: how often --ipns-key's names are republished, in ms.
    #[arg(long, hide = true, default_value_t = super::ipns::REPUBLISH_EVERY.as_millis() as u64, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub(crate) ipns_republish_ms: u64,
    /// Tests: period of the status log line (and of rejoining an empty table), in ms.
    #[arg(long, hide = true, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub(crate) status_interval_ms: u64,
    /// Read flags from a TOML file (see `dht-node --help`).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Option<IpfsCommand>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// Answer requests; listed as a DHT server by identify.
    Server,
    /// Only ask; nobody routes to it.
    Client,
    /// A client until reachable at a public address, then a server.
    Auto,
}

#[derive(Debug, Subcommand)]
pub(crate) enum IpfsCommand {
    /// The k servers closest to KEY (a PeerId, a CID or 0x-prefixed hex bytes); one
    /// PeerId a line, nearest first.
    Closest {
        #[arg(value_name = "KEY", value_parser = parse_lookup_key)]
        target: LookupKey,
    },
    /// A peer's multiaddrs, one a line.
    FindPeer {
        #[arg(value_parser = parse_peer_id)]
        peer: libp2p::PeerId,
    },
    /// Announce --key's PeerId (or a fresh one) as a provider of CID, with the
    /// --announce addresses or the one-shot's own listen address.
    Provide {
        #[arg(value_parser = parse_cid)]
        cid: Cid,
    },
    /// The providers of CID: one PeerId a line (addresses with --json).
    Providers {
        #[arg(value_parser = parse_cid)]
        cid: Cid,
    },
    /// The best valid record under KEY (/pk/<PeerId>, /ipns/<name>): its value in
    /// lowercase hex on the last line.
    GetRecord {
        #[arg(value_name = "KEY", value_parser = parse_record_key)]
        record: RecordKey,
    },
    /// Store FILE's bytes as the record KEY at the closest servers.
    PutRecord {
        #[arg(value_name = "KEY", value_parser = parse_record_key)]
        record: RecordKey,
        file: PathBuf,
    },
    /// IPNS names: `publish` and `resolve`.
    Ipns {
        #[command(subcommand)]
        command: IpnsCommand,
    },
    /// Write a new ed25519 secret key to FILE (as `dht-node keygen`).
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the PeerId of --key FILE.
    PeerId,
}

#[derive(Debug, Subcommand)]
pub(crate) enum IpnsCommand {
    /// Create, sign (with --key FILE, the name's key; the one-shot itself connects
    /// with a fresh identity) and store a record of PATH (`/ipfs/<CID>`); prints the
    /// name (`k51…`) and the record's sequence number.
    Publish {
        path: String,
        /// The sequence number; by default one more than the highest found (0 when
        /// none).
        #[arg(long, value_name = "N")]
        seq: Option<u64>,
        /// How long the record stays valid (`48h`, `90m`, `3d`).
        #[arg(long, value_name = "DURATION", default_value = "48h", value_parser = super::ipns::parse_lifetime)]
        lifetime: std::time::Duration,
    },
    /// The path NAME points at (`/ipns/<name>` or `<name>`: a PeerId or `k51…`),
    /// alone on the last line.
    Resolve {
        #[arg(value_name = "NAME", value_parser = super::ipns::parse_ipns_name)]
        name: super::ipns::IpnsName,
    },
}

/// A --bootstrap multiaddr: it must name the peer.
fn parse_seed(s: &str) -> Result<Multiaddr, String> {
    let addr: Multiaddr = s.parse().map_err(|e| format!("not a multiaddr: {e}"))?;
    dht_net_libp2p::seed_peer(&addr).map_err(|e| e.to_string())?;
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{IpfsCli, IpfsCommand};

    /// Every command parses with the global --key beside its own arguments: a
    /// positional named `key` once shared the flag's id, and clap panicked reading it
    /// (its `debug_assert` does not see a global propagated into a subcommand).
    #[test]
    fn every_command_parses_beside_key() {
        let id = "12D3KooWLXexpG1fUudyrRt5ftRAXEW4WuuAK5YnxHs2oSsL4sxe";
        let pk = format!("/pk/{id}");
        let cid = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn";
        let lines: [&[&str]; 10] = [
            &["closest", "0x01"],
            &["find-peer", id],
            &["provide", cid],
            &["providers", cid],
            &["get-record", &pk],
            &["put-record", &pk, "value.bin"],
            &["keygen", "--out", "k"],
            &["peer-id"],
            &["ipns", "publish", "/ipfs/x", "--seq", "3"],
            &["ipns", "resolve", id],
        ];
        for line in lines {
            let args = [
                &["dht-node", "--overlay", "ipfs"][..],
                line,
                &["--key", "me.key"],
            ]
            .concat();
            let cli = IpfsCli::try_parse_from(&args).expect("parses");
            assert_eq!(cli.key.as_deref(), Some(std::path::Path::new("me.key")));
            assert!(cli.command.is_some(), "{line:?}");
        }
        let cli = IpfsCli::try_parse_from(["dht-node", "closest", "0x0102", "--key", "k"])
            .expect("parses");
        assert!(matches!(cli.command, Some(IpfsCommand::Closest { target }) if target.0 == [1, 2]));
        <IpfsCli as clap::CommandFactory>::command().debug_assert();
    }
}
