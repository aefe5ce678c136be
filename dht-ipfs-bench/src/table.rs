//! The server's identity and the peers of its table, the same for every server run.
//!
//! The table peers' keys are ground so that they fill `buckets` buckets of the
//! server's table, `per_bucket` each, every peer of a bucket in a slice of its own
//! (the 5 bits after the common prefix and the differing bit): a Kademlia table of
//! random peers keeps only about 90 of 200 (the far buckets overflow), and our
//! table keeps one contact per slice in its far buckets (dht-ipfs's `room_for`).
//! So both servers can hold all of them, and hold the same ones.
//!
//! `table` runs them: one swarm each (TCP + noise + yamux, identify, ping, and
//! `/ipfs/kad/1.0.0` answered with nothing found), on 127.0.0.1. On `join ADDR`
//! every one of them dials the server at ADDR, as a server that joins does: the
//! server learns from identify that it speaks kad and where it listens, and takes it
//! into its table (ours after asking it, rust-libp2p's as its users wire identify to
//! `add_address`). Nothing else: they never look anything up.

use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, ping, Multiaddr, PeerId, Swarm};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::wire::{self, KadCodec};

/// Bits of a far bucket's slice (as dht-ipfs's spread buckets).
const SLICE_BITS: usize = 5;

/// A deterministic ed25519 key: the `n`-th of the stream named `label` and `seed`.
pub fn keypair(label: &str, seed: u64, n: u64) -> Keypair {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update(seed.to_be_bytes());
    h.update(n.to_be_bytes());
    let secret: [u8; 32] = h.finalize().into();
    Keypair::ed25519_from_bytes(secret).expect("32 bytes are an ed25519 secret")
}

/// The server's identity for `seed`: every server run of one bench has it.
pub fn server_key(seed: u64) -> Keypair {
    keypair("dht-ipfs-bench server", seed, 0)
}

/// The Kademlia key of a peer: SHA-256 of its PeerId's bytes.
pub fn kad_key(peer: &PeerId) -> [u8; 32] {
    Sha256::digest(peer.to_bytes()).into()
}

fn bit(key: &[u8; 32], i: usize) -> bool {
    key[i / 8] & (0x80 >> (i % 8)) != 0
}

fn common_prefix(a: &[u8; 32], b: &[u8; 32]) -> usize {
    (0..256).find(|&i| bit(a, i) != bit(b, i)).unwrap_or(256)
}

/// The table peers' keys for the server of `seed`: `per_bucket` (at most 32) peers
/// sharing exactly 0, 1, ..., `buckets - 1` leading bits with it, in distinct slices.
pub fn table_keys(seed: u64, buckets: usize, per_bucket: usize) -> Vec<Keypair> {
    let own = kad_key(&server_key(seed).public().to_peer_id());
    let per_bucket = per_bucket.min(1 << SLICE_BITS);
    let mut taken = vec![0u64; buckets];
    let mut counts = vec![0usize; buckets];
    let mut keys = Vec::with_capacity(buckets * per_bucket);
    let mut n = 0u64;
    while counts.iter().any(|&c| c < per_bucket) {
        n += 1;
        let key = keypair("dht-ipfs-bench table", seed, n);
        let k = kad_key(&key.public().to_peer_id());
        let cpl = common_prefix(&own, &k);
        if cpl >= buckets || counts[cpl] >= per_bucket {
            continue;
        }
        let slice = (0..SLICE_BITS).fold(0, |s, i| s << 1 | usize::from(bit(&k, cpl + 1 + i)));
        if taken[cpl] & (1 << slice) != 0 {
            continue;
        }
        taken[cpl] |= 1 << slice;
        counts[cpl] += 1;
        keys.push(key);
    }
    keys
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Peer {
    kad: request_response::Behaviour<KadCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// A swarm of TCP + noise + yamux, as both servers have it, with `behaviour`.
pub fn swarm<B: NetworkBehaviour>(
    key: Keypair,
    behaviour: impl FnOnce(&Keypair) -> B,
    idle: Duration,
) -> Result<Swarm<B>, String> {
    Ok(libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| e.to_string())?
        .with_behaviour(behaviour)
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build())
}

/// Identify as both servers and the table peers run it.
pub fn identify(key: &Keypair) -> identify::Behaviour {
    identify::Behaviour::new(identify::Config::new("ipfs/0.1.0".into(), key.public()))
}

/// Listens on 127.0.0.1 and returns the address with `/p2p/`.
pub async fn listen<B: NetworkBehaviour>(swarm: &mut Swarm<B>) -> Result<Multiaddr, String> {
    let any: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().map_err(|e| format!("{e}"))?;
    swarm.listen_on(any).map_err(|e| e.to_string())?;
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            let id = *swarm.local_peer_id();
            return Ok(address.with(libp2p::multiaddr::Protocol::P2p(id)));
        }
    }
}

/// Runs the table peers of `seed` until stdin closes: `join ADDR` dials ADDR from
/// every one and answers `joined N` (N connected).
pub async fn run(seed: u64, buckets: usize, per_bucket: usize) -> Result<(), String> {
    let keys = table_keys(seed, buckets, per_bucket);
    let mut peers = Vec::with_capacity(keys.len());
    for key in keys {
        let mut s = swarm(
            key,
            |k| Peer {
                kad: request_response::Behaviour::new(
                    [(wire::KAD, ProtocolSupport::Inbound)],
                    request_response::Config::default(),
                ),
                identify: identify(k),
                ping: ping::Behaviour::default(),
            },
            Duration::from_secs(3600),
        )?;
        listen(&mut s).await?;
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(drive(s, rx));
        peers.push(tx);
    }
    println!("ready {}", peers.len());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match line.strip_prefix("join ").map(str::parse::<Multiaddr>) {
            Some(Ok(addr)) => {
                let joins = peers.iter().map(|p| {
                    let (done, rx) = oneshot::channel();
                    let sent = p.try_send((addr.clone(), done)).is_ok();
                    async move { sent && rx.await.unwrap_or(false) }
                });
                let ok = futures::future::join_all(joins).await;
                format!("joined {}", ok.iter().filter(|&&b| b).count())
            }
            _ => format!("err not `join MULTIADDR`: {line}"),
        };
        if out
            .write_all(format!("{reply}\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
        let _ = out.flush().await;
    }
    Ok(())
}

type Join = (Multiaddr, oneshot::Sender<bool>);

async fn drive(mut swarm: Swarm<Peer>, mut joins: mpsc::Receiver<Join>) {
    let mut joining: Option<oneshot::Sender<bool>> = None;
    loop {
        tokio::select! {
            join = joins.recv() => {
                let Some((addr, done)) = join else { return };
                if swarm.dial(addr).is_ok() {
                    joining = Some(done);
                } else {
                    let _ = done.send(false);
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(PeerEvent::Kad(request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                })) => {
                    let _ = swarm.behaviour_mut().kad.send_response(channel, wire::empty_reply(&request));
                }
                SwarmEvent::ConnectionEstablished { endpoint, .. } if endpoint.is_dialer() => {
                    if let Some(done) = joining.take() {
                        let _ = done.send(true);
                    }
                }
                SwarmEvent::OutgoingConnectionError { .. } => {
                    if let Some(done) = joining.take() {
                        let _ = done.send(false);
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_keys_fill_distinct_slices_of_each_bucket() {
        let own = kad_key(&server_key(3).public().to_peer_id());
        let keys = table_keys(3, 6, 20);
        assert_eq!(keys.len(), 120);
        let mut seen = std::collections::HashSet::new();
        let mut per = [0usize; 6];
        for k in &keys {
            let kk = kad_key(&k.public().to_peer_id());
            let cpl = common_prefix(&own, &kk);
            let slice = (0..SLICE_BITS).fold(0, |s, i| s << 1 | usize::from(bit(&kk, cpl + 1 + i)));
            assert!(seen.insert((cpl, slice)));
            per[cpl] += 1;
        }
        assert_eq!(per, [20; 6]);
    }
}
