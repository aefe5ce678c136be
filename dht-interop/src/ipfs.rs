//! The IPFS matrix's line protocol (`dht-interop ipfs`): IPFS's Kademlia
//! (`/ipfs/kad/1.0.0`) over TCP + noise + yamux, every peer on 127.0.0.1.
//!
//! | implementation | peer |
//! | --- | --- |
//! | ours (`dht-net-libp2p`'s `IpfsHost`) | `dht-interop peer-ours-ipfs` |
//! | rust-libp2p 0.57 (`libp2p-kad` 0.49) | `dht-interop peer-rust-libp2p` |
//! | js-libp2p (`libp2p` + `@libp2p/kad-dht`, npm) | `peers/js_libp2p_peer.mjs` |
//!
//! A peer is started as `PEER --nodes N [--bootstrap MULTIADDR]` (the seed,
//! `/ip4/127.0.0.1/tcp/PORT/p2p/ID`) and prints `ready MULTIADDR...` once its N nodes
//! listen and have joined, each address ending in `/p2p/<PeerId>`; the first node runs
//! the commands. Keys and values are lowercase hex, PeerIds base58; every command gets
//! one line back: `ok ...`, `none` (looked up, nothing found) or `err MESSAGE`.
//!
//! | command | reply |
//! | --- | --- |
//! | `refresh` (every node looks itself up again: peers that joined later) | `ok` |
//! | `closest KEY` (the lookup goes toward SHA-256(KEY)) | `ok ID,ID,...` |
//! | `put_record KEY VALUE` | `ok ACKS` (servers that took it; rust-libp2p: 1, its quorum) |
//! | `get_record KEY` | `ok VALUE` |
//! | `provide MULTIHASH` | `ok SENT` (servers told) |
//! | `providers MULTIHASH` | `ok ID,ID,...` |
//! | `holds_record KEY` (its own stores, no network) | `ok I,J,...` (which nodes hold it, 0 the first) |
//! | `holds_provider MULTIHASH ID` (its own stores) | `ok I,J,...` |
//! | `quit` | (exits) |

use crate::{hex, unhex};

/// One command of the IPFS line protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpfsCommand {
    /// Every node of the peer looks itself up again.
    Refresh,
    /// The k closest servers to SHA-256 of the key.
    Closest(Vec<u8>),
    /// PUT_VALUE to the k closest servers.
    PutRecord {
        /// The record key (`/pk/<PeerId bytes>` in the matrix).
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// GET_VALUE lookup.
    GetRecord(Vec<u8>),
    /// ADD_PROVIDER to the k closest servers.
    Provide(Vec<u8>),
    /// GET_PROVIDERS lookup.
    Providers(Vec<u8>),
    /// Which of the peer's nodes hold a record under the key.
    HoldsRecord(Vec<u8>),
    /// Which of the peer's nodes hold the provider (base58 PeerId) for the key.
    HoldsProvider(Vec<u8>, String),
    /// Stop the peer.
    Quit,
}

impl IpfsCommand {
    /// The command as one line (no newline).
    pub fn to_line(&self) -> String {
        match self {
            IpfsCommand::Refresh => "refresh".to_string(),
            IpfsCommand::Closest(k) => format!("closest {}", hex(k)),
            IpfsCommand::PutRecord { key, value } => {
                format!("put_record {} {}", hex(key), hex(value))
            }
            IpfsCommand::GetRecord(k) => format!("get_record {}", hex(k)),
            IpfsCommand::Provide(k) => format!("provide {}", hex(k)),
            IpfsCommand::Providers(k) => format!("providers {}", hex(k)),
            IpfsCommand::HoldsRecord(k) => format!("holds_record {}", hex(k)),
            IpfsCommand::HoldsProvider(k, id) => format!("holds_provider {} {id}", hex(k)),
            IpfsCommand::Quit => "quit".to_string(),
        }
    }

    /// Parses one line; `Err` says what is wrong with it.
    pub fn parse(line: &str) -> Result<IpfsCommand, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let arg = |i: usize| -> Result<&str, String> {
            words
                .get(i)
                .copied()
                .ok_or_else(|| format!("missing argument {i}"))
        };
        let bytes = |i: usize| -> Result<Vec<u8>, String> {
            let b = unhex(arg(i)?)?;
            if b.is_empty() {
                return Err("empty key".to_string());
            }
            Ok(b)
        };
        Ok(match words.first().copied().unwrap_or("") {
            "refresh" => IpfsCommand::Refresh,
            "closest" => IpfsCommand::Closest(bytes(1)?),
            "put_record" => IpfsCommand::PutRecord {
                key: bytes(1)?,
                value: unhex(arg(2)?)?,
            },
            "get_record" => IpfsCommand::GetRecord(bytes(1)?),
            "provide" => IpfsCommand::Provide(bytes(1)?),
            "providers" => IpfsCommand::Providers(bytes(1)?),
            "holds_record" => IpfsCommand::HoldsRecord(bytes(1)?),
            "holds_provider" => IpfsCommand::HoldsProvider(bytes(1)?, arg(2)?.to_string()),
            "quit" => IpfsCommand::Quit,
            other => return Err(format!("unknown command {other:?}")),
        })
    }
}

/// `ok ID,ID,...`, or `none` for no id.
pub fn ids_reply(ids: &[String]) -> String {
    if ids.is_empty() {
        "none".to_string()
    } else {
        format!("ok {}", ids.join(","))
    }
}

/// The reply to `holds_*`: `ok I,J,...` (indices of the nodes that hold it) or `none`.
pub fn holders_reply(holds: impl IntoIterator<Item = bool>) -> String {
    let held: Vec<String> = holds
        .into_iter()
        .enumerate()
        .filter(|(_, h)| *h)
        .map(|(i, _)| i.to_string())
        .collect();
    if held.is_empty() {
        "none".to_string()
    } else {
        format!("ok {}", held.join(","))
    }
}

/// Command-line options every IPFS peer takes: `--nodes N` and `--bootstrap MULTIADDR`.
#[derive(Debug, Clone)]
pub struct IpfsPeerArgs {
    /// How many nodes the peer hosts (the first runs the commands).
    pub nodes: usize,
    /// The loopback seed (`/ip4/127.0.0.1/tcp/PORT/p2p/ID`); `None` for the seed's own
    /// process.
    pub bootstrap: Option<String>,
}

impl IpfsPeerArgs {
    /// Parses the arguments after the peer's name; exits with a message on bad input.
    pub fn parse(argv: impl IntoIterator<Item = String>) -> IpfsPeerArgs {
        let mut args = IpfsPeerArgs {
            nodes: 2,
            bootstrap: None,
        };
        let mut it = argv.into_iter();
        while let Some(a) = it.next() {
            let v = it.next();
            match (a.as_str(), v) {
                ("--nodes", Some(v)) => args.nodes = v.parse().unwrap_or(2).max(1),
                ("--bootstrap", Some(v)) => args.bootstrap = Some(v),
                (other, _) => exit_usage(&format!("unknown argument {other}")),
            }
        }
        if let Some(b) = &args.bootstrap {
            if !is_loopback_multiaddr(b) || !b.contains("/p2p/") {
                exit_usage("the bootstrap must be /ip4/127.x.x.x/tcp/PORT/p2p/ID");
            }
        }
        args
    }
}

/// Whether a multiaddr (as text) is on IPv4 loopback: the only addresses a peer of the
/// matrix dials first or reports.
pub fn is_loopback_multiaddr(addr: &str) -> bool {
    addr.strip_prefix("/ip4/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

fn exit_usage(msg: &str) -> ! {
    eprintln!("{msg}\nusage: PEER [--nodes N] [--bootstrap /ip4/127.0.0.1/tcp/PORT/p2p/ID]");
    std::process::exit(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_lines() {
        let cmds = [
            IpfsCommand::Refresh,
            IpfsCommand::Closest(b"key".to_vec()),
            IpfsCommand::PutRecord {
                key: b"/pk/x".to_vec(),
                value: vec![8, 1],
            },
            IpfsCommand::GetRecord(vec![1]),
            IpfsCommand::Provide(vec![0x12, 0x20, 7]),
            IpfsCommand::Providers(vec![0x12]),
            IpfsCommand::HoldsRecord(vec![2]),
            IpfsCommand::HoldsProvider(vec![3], "12D3KooW".to_string()),
            IpfsCommand::Quit,
        ];
        for c in cmds {
            assert_eq!(IpfsCommand::parse(&c.to_line()), Ok(c));
        }
        assert!(IpfsCommand::parse("closest").is_err());
        assert!(IpfsCommand::parse("closest 0").is_err());
        assert!(IpfsCommand::parse("frobnicate").is_err());
    }

    #[test]
    fn only_loopback_multiaddrs() {
        assert!(is_loopback_multiaddr("/ip4/127.0.0.1/tcp/4001/p2p/12D3"));
        assert!(!is_loopback_multiaddr("/ip4/10.0.0.1/tcp/4001"));
        assert!(!is_loopback_multiaddr("/dns4/localhost/tcp/4001"));
    }
}
