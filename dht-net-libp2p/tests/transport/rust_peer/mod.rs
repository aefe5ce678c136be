//! A rust-libp2p Kademlia node as its users run it: `kad` + `identify` on TCP + noise +
//! yamux, server mode (or client), its listen address as an external address, and the
//! listen addresses identify reports of kad servers added to its table. Driven by a
//! task; [`RustPeer`] sends it commands.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use libp2p::kad::{self, store::MemoryStore, GetProvidersOk, GetRecordOk, QueryResult};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, tcp, yamux, Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Behaviour {
    kad: kad::Behaviour<MemoryStore>,
    identify: identify::Behaviour,
}

enum Cmd {
    Bootstrap(Vec<(PeerId, Multiaddr)>, oneshot::Sender<()>),
    Closest(Vec<u8>, oneshot::Sender<Vec<PeerId>>),
    Put(kad::Record, Option<Vec<PeerId>>, oneshot::Sender<bool>),
    Get(Vec<u8>, oneshot::Sender<Option<Vec<u8>>>),
    Provide(Vec<u8>, oneshot::Sender<bool>),
    Providers(Vec<u8>, oneshot::Sender<Vec<PeerId>>),
    Table(oneshot::Sender<Vec<PeerId>>),
}

enum Pending {
    Bootstrap(oneshot::Sender<()>),
    Closest(oneshot::Sender<Vec<PeerId>>),
    Put(oneshot::Sender<bool>),
    Get(Option<oneshot::Sender<Option<Vec<u8>>>>),
    Provide(oneshot::Sender<bool>),
    Providers(HashSet<PeerId>, oneshot::Sender<Vec<PeerId>>),
}

/// A handle on a running rust-libp2p node.
#[derive(Clone)]
pub struct RustPeer {
    pub id: PeerId,
    pub addr: Multiaddr,
    /// Its public key, protobuf-encoded (the value of its `/pk` record).
    pub pk: Vec<u8>,
    cmds: mpsc::Sender<Cmd>,
}

impl RustPeer {
    /// A node on 127.0.0.1; `server`: kad server mode, else client. `max_packet`:
    /// rust's message size limit (16 KiB by default).
    pub async fn spawn(server: bool, max_packet: Option<usize>) -> RustPeer {
        RustPeer::spawn_with(server, max_packet, Vec::new()).await
    }

    /// As [`RustPeer::spawn`], also announcing `extra` as external addresses.
    pub async fn spawn_with(
        server: bool,
        max_packet: Option<usize>,
        extra: Vec<Multiaddr>,
    ) -> RustPeer {
        let key = libp2p::identity::Keypair::generate_ed25519();
        RustPeer::spawn_keyed(key, server, max_packet, extra).await
    }

    /// As [`RustPeer::spawn_with`], with identity `key` (RSA, for one).
    pub async fn spawn_keyed(
        key: libp2p::identity::Keypair,
        server: bool,
        max_packet: Option<usize>,
        extra: Vec<Multiaddr>,
    ) -> RustPeer {
        let id = key.public().to_peer_id();
        let pk = key.public().encode_protobuf();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("transport")
            .with_behaviour(|key| {
                let mut cfg = kad::Config::new(kad::PROTOCOL_NAME);
                cfg.set_query_timeout(Duration::from_secs(10));
                cfg.set_periodic_bootstrap_interval(None);
                if let Some(max) = max_packet {
                    cfg.set_max_packet_size(max);
                }
                let id = key.public().to_peer_id();
                Behaviour {
                    kad: kad::Behaviour::with_config(id, MemoryStore::new(id), cfg),
                    identify: identify::Behaviour::new(identify::Config::new(
                        "ipfs/0.1.0".into(),
                        key.public(),
                    )),
                }
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        swarm.behaviour_mut().kad.set_mode(Some(if server {
            kad::Mode::Server
        } else {
            kad::Mode::Client
        }));
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr"))
            .expect("listen");
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        swarm.add_external_address(addr.clone());
        for a in extra {
            swarm.add_external_address(a);
        }
        let (cmds, rx) = mpsc::channel(16);
        tokio::spawn(run(swarm, rx));
        RustPeer { id, addr, pk, cmds }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> T {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(make(tx)).await.expect("rust peer running");
        rx.await.expect("rust peer answers")
    }

    /// Adds `seeds` to the table and runs rust's bootstrap.
    pub async fn bootstrap(&self, seeds: Vec<(PeerId, Multiaddr)>) {
        self.ask(|tx| Cmd::Bootstrap(seeds, tx)).await
    }

    /// `get_closest_peers(key)`.
    pub async fn closest(&self, key: Vec<u8>) -> Vec<PeerId> {
        self.ask(|tx| Cmd::Closest(key, tx)).await
    }

    /// `put_record` (to `to` with quorum all when given, else the closest, quorum one):
    /// true on success.
    pub async fn put(&self, key: Vec<u8>, value: Vec<u8>, to: Option<Vec<PeerId>>) -> bool {
        let record = kad::Record::new(key, value);
        self.ask(|tx| Cmd::Put(record, to, tx)).await
    }

    /// `get_record(key)`: the first record found.
    pub async fn get(&self, key: Vec<u8>) -> Option<Vec<u8>> {
        self.ask(|tx| Cmd::Get(key, tx)).await
    }

    /// `start_providing(key)`: true on success.
    pub async fn provide(&self, key: Vec<u8>) -> bool {
        self.ask(|tx| Cmd::Provide(key, tx)).await
    }

    /// `get_providers(key)`.
    pub async fn providers(&self, key: Vec<u8>) -> Vec<PeerId> {
        self.ask(|tx| Cmd::Providers(key, tx)).await
    }

    /// Every peer in its routing table.
    pub async fn table(&self) -> Vec<PeerId> {
        self.ask(Cmd::Table).await
    }
}

async fn run(mut swarm: libp2p::Swarm<Behaviour>, mut rx: mpsc::Receiver<Cmd>) {
    let mut pending: HashMap<kad::QueryId, Pending> = HashMap::new();
    loop {
        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return };
                let kad = &mut swarm.behaviour_mut().kad;
                match cmd {
                    Cmd::Bootstrap(seeds, tx) => {
                        for (p, a) in seeds {
                            kad.add_address(&p, a);
                        }
                        match kad.bootstrap() {
                            Ok(id) => { pending.insert(id, Pending::Bootstrap(tx)); }
                            Err(_) => { let _ = tx.send(()); }
                        }
                    }
                    Cmd::Closest(key, tx) => {
                        pending.insert(kad.get_closest_peers(key), Pending::Closest(tx));
                    }
                    Cmd::Put(record, to, tx) => {
                        let id = match to {
                            Some(peers) => kad.put_record_to(record, peers.into_iter(), kad::Quorum::All),
                            None => match kad.put_record(record, kad::Quorum::One) {
                                Ok(id) => id,
                                Err(_) => { let _ = tx.send(false); continue; }
                            },
                        };
                        pending.insert(id, Pending::Put(tx));
                    }
                    Cmd::Get(key, tx) => {
                        pending.insert(kad.get_record(kad::RecordKey::new(&key)), Pending::Get(Some(tx)));
                    }
                    Cmd::Provide(key, tx) => match kad.start_providing(kad::RecordKey::new(&key)) {
                        Ok(id) => { pending.insert(id, Pending::Provide(tx)); }
                        Err(_) => { let _ = tx.send(false); }
                    },
                    Cmd::Providers(key, tx) => {
                        let id = kad.get_providers(kad::RecordKey::new(&key));
                        pending.insert(id, Pending::Providers(HashSet::new(), tx));
                    }
                    Cmd::Table(tx) => {
                        let peers = kad.kbuckets().flat_map(|b| b.iter().map(|e| *e.node.key.preimage()).collect::<Vec<_>>()).collect();
                        let _ = tx.send(peers);
                    }
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }))
                    if info.protocols.contains(&kad::PROTOCOL_NAME) =>
                {
                    for a in info.listen_addrs {
                        swarm.behaviour_mut().kad.add_address(&peer_id, a);
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed { id, result, step, .. })) => {
                    on_result(&mut pending, id, result, step.last);
                }
                _ => {}
            }
        }
    }
}

fn on_result(
    pending: &mut HashMap<kad::QueryId, Pending>,
    id: kad::QueryId,
    result: QueryResult,
    last: bool,
) {
    let Some(p) = pending.remove(&id) else { return };
    let keep = match (p, result) {
        (Pending::Bootstrap(tx), _) => {
            if last {
                let _ = tx.send(());
                None
            } else {
                Some(Pending::Bootstrap(tx))
            }
        }
        (Pending::Closest(tx), QueryResult::GetClosestPeers(r)) => {
            let peers = match r {
                Ok(ok) => ok.peers,
                Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
            };
            let _ = tx.send(peers.into_iter().map(|p| p.peer_id).collect());
            None
        }
        (Pending::Put(tx), QueryResult::PutRecord(r)) => {
            let _ = tx.send(r.is_ok());
            None
        }
        (Pending::Get(mut tx), QueryResult::GetRecord(r)) => {
            if let Ok(GetRecordOk::FoundRecord(rec)) = r {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(Some(rec.record.value));
                }
            }
            if last {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(None);
                }
                None
            } else {
                Some(Pending::Get(tx))
            }
        }
        (Pending::Provide(tx), QueryResult::StartProviding(r)) => {
            let _ = tx.send(r.is_ok());
            None
        }
        (Pending::Providers(mut found, tx), QueryResult::GetProviders(r)) => {
            if let Ok(GetProvidersOk::FoundProviders { providers, .. }) = r {
                found.extend(providers);
            }
            if last {
                let _ = tx.send(found.into_iter().collect());
                None
            } else {
                Some(Pending::Providers(found, tx))
            }
        }
        (p, _) => Some(p),
    };
    if let Some(p) = keep {
        pending.insert(id, p);
    }
}
