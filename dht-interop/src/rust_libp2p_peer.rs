//! rust-libp2p 0.57's Kademlia (`libp2p-kad` 0.49) as a peer of the IPFS matrix:
//! `--nodes N` swarms on 127.0.0.1, each kad + identify + ping on TCP + noise + yamux,
//! as its users set it up: server mode (it would stay a client on loopback, having no
//! public address), its listen address added as an external address, and the listen
//! addresses identify reports of kad servers added to its table. Everything else is
//! `kad::Config`'s default but the query timeout (20 s instead of 60, so that a query
//! ends within one command's time).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use dht_interop::hex;
use dht_interop::ipfs::{holders_reply, ids_reply, IpfsCommand, IpfsPeerArgs};
use futures::StreamExt;
use libp2p::kad::{self, store::MemoryStore, store::RecordStore, GetProvidersOk, GetRecordOk};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Behaviour {
    kad: kad::Behaviour<MemoryStore>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// A command for one swarm's task, answered with one reply line.
struct Job {
    cmd: IpfsCommand,
    seeds: Vec<(PeerId, Multiaddr)>,
    reply: oneshot::Sender<String>,
}

/// A query in flight and what it found so far.
enum Pending {
    Bootstrap(oneshot::Sender<String>),
    Closest(oneshot::Sender<String>),
    Put(oneshot::Sender<String>),
    Get(Option<oneshot::Sender<String>>),
    Provide(oneshot::Sender<String>),
    Providers(HashSet<PeerId>, oneshot::Sender<String>),
}

/// Runs the peer until stdin closes or says `quit`.
pub fn main(args: IpfsPeerArgs) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(serve(args));
}

fn fail(msg: String) -> ! {
    eprintln!("rust-libp2p peer: {msg}");
    std::process::exit(1)
}

async fn spawn_node() -> Result<(mpsc::Sender<Job>, Multiaddr), String> {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let id = key.public().to_peer_id();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| e.to_string())?
        .with_behaviour(|key| {
            let mut cfg = kad::Config::new(kad::PROTOCOL_NAME);
            cfg.set_query_timeout(Duration::from_secs(20));
            Behaviour {
                kad: kad::Behaviour::with_config(id, MemoryStore::new(id), cfg),
                identify: identify::Behaviour::new(identify::Config::new(
                    "ipfs/0.1.0".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
            }
        })
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm.behaviour_mut().kad.set_mode(Some(kad::Mode::Server));
    let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().map_err(|e| format!("{e}"))?;
    swarm.listen_on(listen).map_err(|e| e.to_string())?;
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    swarm.add_external_address(addr.clone());
    let (jobs, rx) = mpsc::channel(16);
    tokio::spawn(drive(swarm, rx));
    Ok((jobs, addr.with(libp2p::multiaddr::Protocol::P2p(id))))
}

async fn serve(args: IpfsPeerArgs) {
    let mut nodes = Vec::new();
    for _ in 0..args.nodes {
        nodes.push(spawn_node().await.unwrap_or_else(|e| fail(e)));
    }
    let mut seeds: Vec<(PeerId, Multiaddr)> = Vec::new();
    if let Some(b) = &args.bootstrap {
        match b.parse::<Multiaddr>().ok().and_then(|a| split_p2p(&a)) {
            Some(seed) => seeds.push(seed),
            None => fail(format!(
                "--bootstrap {b}: not a multiaddr ending in /p2p/ID"
            )),
        }
    }
    seeds.extend(split_p2p(&nodes[0].1));
    refresh(&nodes, &seeds).await;
    let ready: Vec<String> = nodes.iter().map(|(_, a)| a.to_string()).collect();
    println!("ready {}", ready.join(" "));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match IpfsCommand::parse(&line) {
            Ok(IpfsCommand::Quit) => break,
            Ok(IpfsCommand::Refresh) => {
                refresh(&nodes, &seeds).await;
                "ok".to_string()
            }
            Ok(cmd @ (IpfsCommand::HoldsRecord(_) | IpfsCommand::HoldsProvider(..))) => {
                let asks = nodes
                    .iter()
                    .map(|(jobs, _)| ask(jobs, cmd.clone(), Vec::new()));
                let replies = futures::future::join_all(asks).await;
                holders_reply(replies.iter().map(|r| r == "ok 1"))
            }
            Ok(cmd) => ask(&nodes[0].0, cmd, Vec::new()).await,
            Err(e) => format!("err {e}"),
        };
        let written = out.write_all(format!("{reply}\n").as_bytes()).await;
        if written.is_err() || out.flush().await.is_err() {
            break;
        }
    }
}

/// Every node adds `seeds` (but itself) to its table and runs rust's bootstrap.
async fn refresh(nodes: &[(mpsc::Sender<Job>, Multiaddr)], seeds: &[(PeerId, Multiaddr)]) {
    let joins = nodes.iter().map(|(jobs, own)| {
        let own = strip(own);
        let seeds = seeds.iter().filter(|(_, a)| Some(a) != own.as_ref());
        ask(jobs, IpfsCommand::Refresh, seeds.cloned().collect())
    });
    futures::future::join_all(joins).await;
}

/// `.../p2p/ID` as (ID, the address without it).
fn split_p2p(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut dial = addr.clone();
    match dial.pop() {
        Some(libp2p::multiaddr::Protocol::P2p(id)) => Some((id, dial)),
        _ => None,
    }
}

fn strip(addr: &Multiaddr) -> Option<Multiaddr> {
    split_p2p(addr).map(|(_, a)| a)
}

async fn ask(
    jobs: &mpsc::Sender<Job>,
    cmd: IpfsCommand,
    seeds: Vec<(PeerId, Multiaddr)>,
) -> String {
    let (reply, rx) = oneshot::channel();
    if jobs.send(Job { cmd, seeds, reply }).await.is_err() {
        return "err the node stopped".to_string();
    }
    rx.await
        .unwrap_or_else(|_| "err the node dropped the command".to_string())
}

/// One swarm's task: runs jobs as kad queries and answers them when the queries end.
async fn drive(mut swarm: Swarm<Behaviour>, mut jobs: mpsc::Receiver<Job>) {
    let mut pending: HashMap<kad::QueryId, Pending> = HashMap::new();
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { return };
                start(&mut swarm, &mut pending, job);
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                    peer_id, info, ..
                })) if info.protocols.contains(&kad::PROTOCOL_NAME) => {
                    for a in info.listen_addrs {
                        swarm.behaviour_mut().kad.add_address(&peer_id, a);
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                    id, result, step, ..
                })) => progressed(&mut pending, id, result, step.last),
                _ => {}
            }
        }
    }
}

fn start(swarm: &mut Swarm<Behaviour>, pending: &mut HashMap<kad::QueryId, Pending>, job: Job) {
    let Job { cmd, seeds, reply } = job;
    let kad = &mut swarm.behaviour_mut().kad;
    let (id, p) = match cmd {
        IpfsCommand::Refresh => {
            for (p, a) in seeds {
                kad.add_address(&p, a);
            }
            match kad.bootstrap() {
                Ok(id) => (id, Pending::Bootstrap(reply)),
                // No known peer yet (the network's seed): others will find us.
                Err(_) => return answer_now(reply, "ok".to_string()),
            }
        }
        IpfsCommand::Closest(key) => (kad.get_closest_peers(key), Pending::Closest(reply)),
        IpfsCommand::PutRecord { key, value } => {
            match kad.put_record(kad::Record::new(key, value), kad::Quorum::One) {
                Ok(id) => (id, Pending::Put(reply)),
                Err(e) => return answer_now(reply, format!("err {e:?}")),
            }
        }
        IpfsCommand::GetRecord(key) => (
            kad.get_record(kad::RecordKey::new(&key)),
            Pending::Get(Some(reply)),
        ),
        IpfsCommand::Provide(key) => match kad.start_providing(kad::RecordKey::new(&key)) {
            Ok(id) => (id, Pending::Provide(reply)),
            Err(e) => return answer_now(reply, format!("err {e:?}")),
        },
        IpfsCommand::Providers(key) => (
            kad.get_providers(kad::RecordKey::new(&key)),
            Pending::Providers(HashSet::new(), reply),
        ),
        IpfsCommand::HoldsRecord(key) => {
            let held = kad.store_mut().get(&kad::RecordKey::new(&key)).is_some();
            return answer_now(reply, format!("ok {}", u8::from(held)));
        }
        IpfsCommand::HoldsProvider(key, provider) => {
            let providers = kad.store_mut().providers(&kad::RecordKey::new(&key));
            let held = providers.iter().any(|p| p.provider.to_base58() == provider);
            return answer_now(reply, format!("ok {}", u8::from(held)));
        }
        IpfsCommand::Quit => return answer_now(reply, String::new()),
    };
    pending.insert(id, p);
}

/// Answers a job whose query has ended: nothing is left pending.
fn answer(tx: oneshot::Sender<String>, line: String) -> Option<Pending> {
    // The reader may have gone (the peer is stopping): nobody to tell.
    let _ = tx.send(line);
    None
}

/// Answers a job that needed no query.
fn answer_now(tx: oneshot::Sender<String>, line: String) {
    let _ = tx.send(line);
}

fn progressed(
    pending: &mut HashMap<kad::QueryId, Pending>,
    id: kad::QueryId,
    result: kad::QueryResult,
    last: bool,
) {
    use kad::QueryResult as R;
    let Some(p) = pending.remove(&id) else { return };
    let keep = match (p, result) {
        (Pending::Bootstrap(tx), _) if last => answer(tx, "ok".to_string()),
        (p @ Pending::Bootstrap(_), _) => Some(p),
        (Pending::Closest(tx), R::GetClosestPeers(r)) => {
            let peers = match r {
                Ok(ok) => ok.peers,
                Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
            };
            let ids: Vec<String> = peers.iter().map(|p| p.peer_id.to_base58()).collect();
            answer(tx, ids_reply(&ids))
        }
        (Pending::Put(tx), R::PutRecord(r)) => answer(
            tx,
            match r {
                Ok(_) => "ok 1".to_string(),
                Err(e) => format!("err {e:?}"),
            },
        ),
        (Pending::Get(mut tx), R::GetRecord(r)) => {
            if let Ok(GetRecordOk::FoundRecord(rec)) = r {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(format!("ok {}", hex(&rec.record.value)));
                }
            }
            match tx {
                Some(tx) if last => answer(tx, "none".to_string()),
                tx => Some(Pending::Get(tx)),
            }
        }
        (Pending::Provide(tx), R::StartProviding(r)) => answer(
            tx,
            match r {
                Ok(_) => "ok 1".to_string(),
                Err(e) => format!("err {e:?}"),
            },
        ),
        (Pending::Providers(mut found, tx), R::GetProviders(r)) => {
            if let Ok(GetProvidersOk::FoundProviders { providers, .. }) = r {
                found.extend(providers);
            }
            if last {
                let ids: Vec<String> = found.iter().map(|p| p.to_base58()).collect();
                answer(tx, ids_reply(&ids))
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
