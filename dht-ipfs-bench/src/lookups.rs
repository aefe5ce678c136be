//! `lookups IMPL`: a network of NODES servers of one implementation (ours or
//! rust-libp2p's kad, both as `serve` sets them up) on 127.0.0.1 in this process, and
//! LOOKUPS lookups of the closest peers to random keys, one at a time, from the first
//! FROM nodes in turn. Every node joins through the first; then each looks itself up
//! again (`refresh`), so that the tables hold the peers that joined after it. The
//! keys are the same for both implementations (from `--seed`). Prints
//! `tables min=N mean=M`, then `latencies_us V V ...` (every lookup, in order) and
//! `found mean=M` (peers a lookup returned).

use std::collections::HashMap;
use std::time::Instant;

use dht_ipfs::{MemStore, StoreLimits};
use dht_net_libp2p::{HostConfig, IpfsHandle, IpfsHost};
use futures::StreamExt;
use libp2p::kad;
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::serve::{self, Impl, RustKad, RustKadEvent};
use crate::table;

/// One lookup's key: a random PeerId's bytes (an identity multihash of 32 bytes).
fn key(seed: u64, n: u64) -> Vec<u8> {
    let mut k = vec![0x00, 0x20];
    k.extend_from_slice(&table::kad_key(
        &table::keypair("dht-ipfs-bench lookup", seed, n)
            .public()
            .to_peer_id(),
    ));
    k
}

pub async fn run(
    which: Impl,
    nodes: usize,
    lookups: usize,
    from: usize,
    seed: u64,
) -> Result<(), String> {
    let from = from.clamp(1, nodes.max(1));
    let net: Box<dyn Network> = match which {
        Impl::Ours => Box::new(Ours::start(nodes, seed).await?),
        Impl::Rust => Box::new(Rust::start(nodes, seed).await?),
        Impl::Canned => return Err("lookups: canned is no network".into()),
    };
    net.join().await;
    net.join().await;
    let sizes = net.table_sizes().await;
    let min = sizes.iter().min().copied().unwrap_or(0);
    let mean = sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64;
    println!("tables min={min} mean={mean:.1}");
    let mut latencies = Vec::with_capacity(lookups);
    let mut found = 0usize;
    for n in 0..lookups {
        let t = Instant::now();
        found += net.closest(n % from, key(seed, n as u64)).await?;
        latencies.push(t.elapsed().as_micros().to_string());
    }
    println!("latencies_us {}", latencies.join(" "));
    println!("found mean={:.1}", found as f64 / lookups.max(1) as f64);
    Ok(())
}

/// What `run` needs of a network: join, table sizes, one lookup.
trait Network {
    fn join(&self) -> futures::future::BoxFuture<'_, ()>;
    fn table_sizes(&self) -> futures::future::BoxFuture<'_, Vec<usize>>;
    fn closest(
        &self,
        node: usize,
        key: Vec<u8>,
    ) -> futures::future::BoxFuture<'_, Result<usize, String>>;
}

struct Ours {
    hosts: Vec<IpfsHandle>,
}

impl Ours {
    async fn start(nodes: usize, seed: u64) -> Result<Ours, String> {
        let mut hosts = Vec::new();
        for i in 0..nodes {
            let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().map_err(|e| format!("{e}"))?];
            let key = table::keypair("dht-ipfs-bench network", seed, i as u64);
            let mut config = HostConfig::new(key, listen);
            config.seed = seed + i as u64;
            let host = IpfsHost::spawn(config, MemStore::new(StoreLimits::default()))
                .await
                .map_err(|e| e.to_string())?;
            hosts.push(host);
        }
        Ok(Ours { hosts })
    }
}

impl Network for Ours {
    fn join(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let seeds = self.hosts[0].dial_addrs();
            let joins = self.hosts[1..].iter().map(|h| {
                let seeds = seeds.clone();
                // A failed join shows in the table sizes printed.
                async move { drop(h.bootstrap(&seeds).await) }
            });
            futures::future::join_all(joins).await;
            drop(self.hosts[0].bootstrap(&[]).await);
        })
    }

    fn table_sizes(&self) -> futures::future::BoxFuture<'_, Vec<usize>> {
        Box::pin(async move {
            let sizes = self
                .hosts
                .iter()
                .map(|h| async move { h.status().await.map_or(0, |s| s.table_size) });
            futures::future::join_all(sizes).await
        })
    }

    fn closest(
        &self,
        node: usize,
        key: Vec<u8>,
    ) -> futures::future::BoxFuture<'_, Result<usize, String>> {
        Box::pin(async move {
            self.hosts[node]
                .closest_peers(key)
                .await
                .map(|p| p.len())
                .map_err(|e| e.to_string())
        })
    }
}

enum Job {
    Join(Vec<(PeerId, Multiaddr)>, oneshot::Sender<usize>),
    Table(oneshot::Sender<usize>),
    Closest(Vec<u8>, oneshot::Sender<usize>),
}

struct Rust {
    nodes: Vec<(mpsc::Sender<Job>, PeerId, Multiaddr)>,
}

impl Rust {
    async fn start(nodes: usize, seed: u64) -> Result<Rust, String> {
        let mut out = Vec::new();
        for i in 0..nodes {
            let key = table::keypair("dht-ipfs-bench network", seed, i as u64);
            let (swarm, mut addr) = serve::rust_kad(key).await?;
            let id = *swarm.local_peer_id();
            addr.pop();
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(drive(swarm, rx));
            out.push((tx, id, addr));
        }
        Ok(Rust { nodes: out })
    }

    async fn ask(&self, node: usize, job: impl FnOnce(oneshot::Sender<usize>) -> Job) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.nodes[node].0.send(job(tx)).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }
}

impl Network for Rust {
    fn join(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let seed = vec![(self.nodes[0].1, self.nodes[0].2.clone())];
            let joins = (1..self.nodes.len()).map(|i| {
                let seed = seed.clone();
                self.ask(i, move |tx| Job::Join(seed, tx))
            });
            futures::future::join_all(joins).await;
            self.ask(0, |tx| Job::Join(Vec::new(), tx)).await;
        })
    }

    fn table_sizes(&self) -> futures::future::BoxFuture<'_, Vec<usize>> {
        Box::pin(async move {
            let sizes = (0..self.nodes.len()).map(|i| self.ask(i, Job::Table));
            futures::future::join_all(sizes).await
        })
    }

    fn closest(
        &self,
        node: usize,
        key: Vec<u8>,
    ) -> futures::future::BoxFuture<'_, Result<usize, String>> {
        Box::pin(async move { Ok(self.ask(node, |tx| Job::Closest(key, tx)).await) })
    }
}

/// One rust-libp2p node's task: jobs become kad queries, answered when they end.
async fn drive(mut swarm: Swarm<RustKad>, mut jobs: mpsc::Receiver<Job>) {
    let mut pending: HashMap<kad::QueryId, oneshot::Sender<usize>> = HashMap::new();
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { return };
                let kad = &mut swarm.behaviour_mut().kad;
                match job {
                    Job::Join(seeds, tx) => {
                        for (p, a) in seeds {
                            kad.add_address(&p, a);
                        }
                        match kad.bootstrap() {
                            Ok(id) => drop(pending.insert(id, tx)),
                            Err(_) => drop(tx.send(0)),
                        }
                    }
                    Job::Table(tx) => drop(tx.send(serve::rust_table_size(&mut swarm))),
                    Job::Closest(key, tx) => drop(pending.insert(kad.get_closest_peers(key), tx)),
                }
            }
            event = swarm.select_next_some() => {
                if serve::on_rust_event(&mut swarm, &event) {
                    continue;
                }
                let libp2p::swarm::SwarmEvent::Behaviour(RustKadEvent::Kad(
                    kad::Event::OutboundQueryProgressed { id, result, step, .. },
                )) = event else {
                    continue;
                };
                let found = match result {
                    kad::QueryResult::GetClosestPeers(Ok(ok)) => ok.peers.len(),
                    kad::QueryResult::GetClosestPeers(Err(kad::GetClosestPeersError::Timeout {
                        peers, ..
                    })) => peers.len(),
                    _ => 0,
                };
                // A bootstrap reports each of its steps; a closest-peers query its end only.
                if step.last {
                    if let Some(tx) = pending.remove(&id) {
                        let _ = tx.send(found);
                    }
                }
            }
        }
    }
}
