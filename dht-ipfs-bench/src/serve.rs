//! `serve IMPL`: one FIND_NODE server on 127.0.0.1 with the bench's server identity,
//! on a single-threaded runtime (the bench pins it to one core). It prints
//! `listening MULTIADDR`, then answers `table` with `table N` (its routing table's
//! size) until stdin closes.
//!
//! | IMPL | what answers |
//! | --- | --- |
//! | `ours` | `dht_net_libp2p::IpfsHost`, server mode, `HostConfig::new`'s defaults |
//! | `rust` | rust-libp2p 0.57's `kad::Behaviour` (libp2p-kad 0.49), `kad::Config::new`'s defaults, server mode |
//! | `canned` | no engine: every kad stream gets one fixed FIND_NODE reply of 20 peers |
//!
//! All three run identify and ping beside kad on TCP + noise + yamux, with a 60 s idle
//! connection timeout (ours's default; rust-libp2p's swarm default of 0 would close the
//! load generator's connections between two requests). The rust-libp2p server adds the
//! listen addresses of peers whose identify lists kad to its table, as the
//! rust-libp2p examples and the interop matrix's peer do.

use std::time::Duration;

use dht_ipfs::{MemStore, StoreLimits};
use dht_net_libp2p::{HostConfig, IpfsHost};
use futures::StreamExt;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, ping, Multiaddr, Swarm};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines, Stdin};

use crate::table::{self, server_key};
use crate::wire::{self, KadCodec};

/// What `serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    Ours,
    Rust,
    Canned,
}

impl Impl {
    pub fn parse(s: &str) -> Option<Impl> {
        match s {
            "ours" => Some(Impl::Ours),
            "rust" => Some(Impl::Rust),
            "canned" => Some(Impl::Canned),
            _ => None,
        }
    }
}

/// The idle connection timeout of every server: ours's default.
pub const IDLE: Duration = Duration::from_secs(60);

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
pub struct RustKad {
    pub kad: kad::Behaviour<MemoryStore>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
}

/// rust-libp2p's kad as its users set up a server: default configuration, server mode.
pub async fn rust_kad(
    key: libp2p::identity::Keypair,
) -> Result<(Swarm<RustKad>, Multiaddr), String> {
    let id = key.public().to_peer_id();
    let mut swarm = table::swarm(
        key,
        |k| RustKad {
            kad: kad::Behaviour::with_config(
                id,
                MemoryStore::new(id),
                kad::Config::new(kad::PROTOCOL_NAME),
            ),
            identify: table::identify(k),
            ping: ping::Behaviour::default(),
        },
        IDLE,
    )?;
    swarm.behaviour_mut().kad.set_mode(Some(kad::Mode::Server));
    let addr = table::listen(&mut swarm).await?;
    let mut external = addr.clone();
    external.pop();
    swarm.add_external_address(external);
    Ok((swarm, addr))
}

/// What a rust-libp2p user's event loop does with identify: kad servers' listen
/// addresses go into the table. True when the event was that.
pub fn on_rust_event(swarm: &mut Swarm<RustKad>, event: &SwarmEvent<RustKadEvent>) -> bool {
    if let SwarmEvent::Behaviour(RustKadEvent::Identify(identify::Event::Received {
        peer_id,
        info,
        ..
    })) = event
    {
        if info.protocols.contains(&kad::PROTOCOL_NAME) {
            for a in &info.listen_addrs {
                swarm.behaviour_mut().kad.add_address(peer_id, a.clone());
            }
        }
        return true;
    }
    false
}

pub fn rust_table_size(swarm: &mut Swarm<RustKad>) -> usize {
    swarm
        .behaviour_mut()
        .kad
        .kbuckets()
        .map(|b| b.num_entries())
        .sum()
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Canned {
    kad: request_response::Behaviour<KadCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// The canned reply: 20 peers of one loopback address each, as a real reply's size.
fn canned_reply() -> Vec<u8> {
    let peers: Vec<_> = (0..20u64)
        .map(|n| {
            let id = table::keypair("dht-ipfs-bench canned", 0, n)
                .public()
                .to_peer_id();
            let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", 40000 + n)
                .parse()
                .expect("a multiaddr");
            (id.to_bytes(), vec![addr.to_vec()])
        })
        .collect();
    wire::message(wire::FIND_NODE, &[], &peers)
}

async fn say(out: &mut tokio::io::Stdout, line: String) -> bool {
    out.write_all(format!("{line}\n").as_bytes()).await.is_ok() && out.flush().await.is_ok()
}

fn stdin_lines() -> Lines<BufReader<Stdin>> {
    BufReader::new(tokio::io::stdin()).lines()
}

pub async fn run(which: Impl, seed: u64) -> Result<(), String> {
    let key = server_key(seed);
    let mut out = tokio::io::stdout();
    let mut lines = stdin_lines();
    match which {
        Impl::Ours => {
            let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().map_err(|e| format!("{e}"))?];
            let mut config = HostConfig::new(key, listen);
            config.seed = seed;
            let store = MemStore::new(StoreLimits::default());
            let host = IpfsHost::spawn(config, store)
                .await
                .map_err(|e| e.to_string())?;
            let addr = host
                .dial_addrs()
                .first()
                .cloned()
                .ok_or("no listen address")?;
            say(&mut out, format!("listening {addr}")).await;
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = match line.as_str() {
                    "table" => match host.status().await {
                        Ok(s) => format!("table {}", s.table_size),
                        Err(e) => format!("err {e}"),
                    },
                    _ => format!("err unknown command {line}"),
                };
                if !say(&mut out, reply).await {
                    break;
                }
            }
            host.shutdown().await;
        }
        Impl::Rust => {
            let (mut swarm, addr) = rust_kad(key).await?;
            say(&mut out, format!("listening {addr}")).await;
            loop {
                tokio::select! {
                    line = lines.next_line() => {
                        let Ok(Some(line)) = line else { break };
                        let reply = match line.as_str() {
                            "table" => format!("table {}", rust_table_size(&mut swarm)),
                            _ => format!("err unknown command {line}"),
                        };
                        if !say(&mut out, reply).await {
                            break;
                        }
                    }
                    event = swarm.select_next_some() => {
                        on_rust_event(&mut swarm, &event);
                    }
                }
            }
        }
        Impl::Canned => {
            let reply = canned_reply();
            let mut swarm = table::swarm(
                key,
                |k| Canned {
                    kad: request_response::Behaviour::new(
                        [(wire::KAD, ProtocolSupport::Inbound)],
                        request_response::Config::default(),
                    ),
                    identify: table::identify(k),
                    ping: ping::Behaviour::default(),
                },
                IDLE,
            )?;
            let addr = table::listen(&mut swarm).await?;
            say(&mut out, format!("listening {addr}")).await;
            loop {
                tokio::select! {
                    line = lines.next_line() => {
                        let Ok(Some(line)) = line else { break };
                        let reply = match line.as_str() {
                            "table" => "table 0".to_string(),
                            _ => format!("err unknown command {line}"),
                        };
                        if !say(&mut out, reply).await {
                            break;
                        }
                    }
                    event = swarm.select_next_some() => {
                        if let SwarmEvent::Behaviour(CannedEvent::Kad(request_response::Event::Message {
                            message: request_response::Message::Request { channel, .. },
                            ..
                        })) = event
                        {
                            let _ = swarm.behaviour_mut().kad.send_response(channel, reply.clone());
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
