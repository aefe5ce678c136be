//! # dht-interop: every Mainline implementation in one loopback network
//!
//! (And every IPFS Kademlia implementation in another: `dht-interop ipfs`, whose
//! peers and line protocol are in [`ipfs`].)
//!
//! The binary `dht-interop` (behind `cargo xtask interop`) starts one process per
//! implementation, each hosting a few DHT nodes on 127.0.0.1, all joined through one
//! seed (a node of ours), and makes every implementation put, get, announce and look
//! up peers; every result is checked by every other implementation, and a raw KRPC
//! probe asks every node which items it stored. Nothing contacts the public routers:
//! every process gets the loopback seed as its only bootstrap.
//!
//! Each implementation runs behind a *peer*: a small program speaking the line
//! protocol below on stdin and stdout.
//!
//! | implementation | peer |
//! | --- | --- |
//! | ours (`dht-node`) | `dht-interop peer-ours` |
//! | the `mainline` crate | `dht-interop peer-mainline` |
//! | libtorrent (python3-libtorrent) | `peers/libtorrent_peer.py` |
//! | bittorrent-dht (npm) | `peers/bittorrent_dht_peer.js` |
//!
//! ## Line protocol
//! A peer is started as `PEER --nodes N [--bootstrap HOST:PORT]` and prints
//! `ready ADDR...` once its N nodes are bound (the first one runs the commands).
//! Binary arguments are lowercase hex, `-` is an empty salt, and every command gets one
//! line back: `ok ...`, `none` (looked up, nothing found) or `err MESSAGE`.
//!
//! | command | reply |
//! | --- | --- |
//! | `put_immutable VALUE` (a byte string) | `ok TARGET` |
//! | `get_immutable TARGET` | `ok VALUE` |
//! | `put_mutable SEED SALT SEQ VALUE` (32-byte ed25519 seed) | `ok SEQ` (the seq put) |
//! | `get_mutable PUBLIC_KEY SALT` | `ok SEQ VALUE` |
//! | `announce INFO_HASH PORT` | `ok [PORT]` (the port announced, if not PORT) |
//! | `get_peers INFO_HASH` | `ok PORT,PORT,...` |
//! | `quit` | (exits) |
//!
//! Values are byte strings (bencoded as strings on the wire): the `mainline` crate
//! accepts no other BEP 44 value.
#![warn(missing_docs)]

use std::fmt::Write as _;

pub mod ipfs;

/// One command of the line protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// BEP 44 immutable put of a byte string.
    PutImmutable(Vec<u8>),
    /// BEP 44 immutable get.
    GetImmutable([u8; 20]),
    /// BEP 44 mutable put, signed with the key of `seed`.
    PutMutable {
        /// ed25519 seed (the 32-byte secret key).
        seed: [u8; 32],
        /// Salt (empty: none).
        salt: Vec<u8>,
        /// Sequence number (libtorrent picks its own: the stored one plus one).
        seq: i64,
        /// The byte string.
        value: Vec<u8>,
    },
    /// BEP 44 mutable get of the newest item.
    GetMutable {
        /// ed25519 public key.
        key: [u8; 32],
        /// Salt (empty: none).
        salt: Vec<u8>,
    },
    /// BEP 5 announce_peer with an explicit port.
    Announce([u8; 20], u16),
    /// BEP 5 get_peers lookup.
    GetPeers([u8; 20]),
    /// Stop the peer.
    Quit,
}

impl Command {
    /// The command as one line (no newline).
    pub fn to_line(&self) -> String {
        match self {
            Command::PutImmutable(v) => format!("put_immutable {}", hex(v)),
            Command::GetImmutable(t) => format!("get_immutable {}", hex(t)),
            Command::PutMutable {
                seed,
                salt,
                seq,
                value,
            } => format!(
                "put_mutable {} {} {seq} {}",
                hex(seed),
                salt_arg(salt),
                hex(value)
            ),
            Command::GetMutable { key, salt } => {
                format!("get_mutable {} {}", hex(key), salt_arg(salt))
            }
            Command::Announce(ih, port) => format!("announce {} {port}", hex(ih)),
            Command::GetPeers(ih) => format!("get_peers {}", hex(ih)),
            Command::Quit => "quit".to_string(),
        }
    }

    /// Parses one line; `Err` says what is wrong with it.
    pub fn parse(line: &str) -> Result<Command, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let arg = |i: usize| -> Result<&str, String> {
            words
                .get(i)
                .copied()
                .ok_or_else(|| format!("missing argument {i}"))
        };
        Ok(match words.first().copied().unwrap_or("") {
            "put_immutable" => Command::PutImmutable(unhex(arg(1)?)?),
            "get_immutable" => Command::GetImmutable(fixed(arg(1)?)?),
            "put_mutable" => Command::PutMutable {
                seed: fixed(arg(1)?)?,
                salt: parse_salt(arg(2)?)?,
                seq: arg(3)?.parse().map_err(|e| format!("seq: {e}"))?,
                value: unhex(arg(4)?)?,
            },
            "get_mutable" => Command::GetMutable {
                key: fixed(arg(1)?)?,
                salt: parse_salt(arg(2)?)?,
            },
            "announce" => Command::Announce(
                fixed(arg(1)?)?,
                arg(2)?.parse().map_err(|e| format!("port: {e}"))?,
            ),
            "get_peers" => Command::GetPeers(fixed(arg(1)?)?),
            "quit" => Command::Quit,
            other => return Err(format!("unknown command {other:?}")),
        })
    }
}

fn salt_arg(salt: &[u8]) -> String {
    if salt.is_empty() {
        "-".to_string()
    } else {
        hex(salt)
    }
}

fn parse_salt(s: &str) -> Result<Vec<u8>, String> {
    if s == "-" {
        Ok(Vec::new())
    } else {
        unhex(s)
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses hex (either case).
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd-length hex {s:?}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("bad hex {s:?}"))
        })
        .collect()
}

/// Parses hex of exactly `N` bytes.
pub fn fixed<const N: usize>(s: &str) -> Result<[u8; N], String> {
    unhex(s)?
        .try_into()
        .map_err(|_| format!("expected {N} bytes of hex, got {s:?}"))
}

/// Command-line options every peer takes: `--nodes N` and `--bootstrap HOST:PORT`.
#[derive(Debug, Clone)]
pub struct PeerArgs {
    /// How many nodes the peer hosts (the first runs the commands).
    pub nodes: usize,
    /// The loopback seed; `None` for the seed's own process.
    pub bootstrap: Option<std::net::SocketAddr>,
}

impl PeerArgs {
    /// Parses the arguments after the peer's name; exits with a message on bad input.
    pub fn parse(argv: impl IntoIterator<Item = String>) -> PeerArgs {
        let mut args = PeerArgs {
            nodes: 2,
            bootstrap: None,
        };
        let mut it = argv.into_iter();
        while let Some(a) = it.next() {
            let v = it.next();
            match (a.as_str(), v) {
                ("--nodes", Some(v)) => args.nodes = v.parse().unwrap_or(2).max(1),
                ("--bootstrap", Some(v)) => match v.parse() {
                    Ok(addr) => args.bootstrap = Some(addr),
                    Err(e) => exit_usage(&format!("--bootstrap {v}: {e}")),
                },
                (other, _) => exit_usage(&format!("unknown argument {other}")),
            }
        }
        if let Some(b) = args.bootstrap {
            if !b.ip().is_loopback() {
                exit_usage("the bootstrap must be a loopback address");
            }
        }
        args
    }
}

fn exit_usage(msg: &str) -> ! {
    eprintln!("{msg}\nusage: PEER [--nodes N] [--bootstrap 127.0.0.1:PORT]");
    std::process::exit(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_lines() {
        let cmds = [
            Command::PutImmutable(b"hello".to_vec()),
            Command::GetImmutable([7; 20]),
            Command::PutMutable {
                seed: [1; 32],
                salt: Vec::new(),
                seq: 5,
                value: b"v".to_vec(),
            },
            Command::GetMutable {
                key: [2; 32],
                salt: b"s".to_vec(),
            },
            Command::Announce([3; 20], 6881),
            Command::GetPeers([4; 20]),
            Command::Quit,
        ];
        for c in cmds {
            assert_eq!(Command::parse(&c.to_line()), Ok(c));
        }
        assert!(Command::parse("get_immutable 00").is_err());
        assert!(Command::parse("frobnicate").is_err());
    }
}
