//! Interop with rust-libp2p's Kademlia (0.57, `libp2p-kad` 0.49) on loopback, both
//! ways, as issue 22 part 4 lists: lookups through networks of ours, of theirs and of
//! both, `/pk` records and providers across, a refused record, a client of ours kept
//! out of rust tables, our reply size with a full table, and 40 concurrent requests.
//! Every network is built on 127.0.0.1 and torn down with the test.

mod rust_peer;

use std::collections::BTreeSet;
use std::time::Duration;

use dht_ipfs::{key_of, MemStore, Mode, StoreLimits};
use dht_net_libp2p::{HostConfig, IpfsHandle, IpfsHost};
use libp2p::identity::Keypair;
use libp2p::PeerId;
use rust_peer::RustPeer;

const K: usize = 20;

async fn ours(mode: Mode) -> IpfsHandle {
    ours_with(mode, |_| {}).await
}

async fn ours_with(mode: Mode, tweak: impl FnOnce(&mut HostConfig)) -> IpfsHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    let mut config = HostConfig::new(Keypair::generate_ed25519(), listen);
    config.mode = mode;
    tweak(&mut config);
    IpfsHost::spawn(config, MemStore::new(StoreLimits::default()))
        .await
        .expect("host starts")
}

/// `n` servers of ours, joined through the first, twice (so that early joiners learn
/// of late ones through lookups as well as through identify).
async fn our_network(n: usize) -> Vec<IpfsHandle> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(ours(Mode::Server).await);
    }
    let seed = nodes[0].dial_addrs();
    for _round in 0..2 {
        let joins = nodes[1..].iter().map(|n| n.bootstrap(&seed));
        for r in futures::future::join_all(joins).await {
            r.expect("bootstrap");
        }
    }
    nodes
}

/// `n` rust servers, joined through the first, twice.
async fn rust_network(n: usize) -> Vec<RustPeer> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(RustPeer::spawn(true, None).await);
    }
    let seed = vec![(nodes[0].id, nodes[0].addr.clone())];
    for _round in 0..2 {
        futures::future::join_all(nodes[1..].iter().map(|n| n.bootstrap(seed.clone()))).await;
    }
    nodes
}

/// The `K` PeerIds of `ids` closest to SHA-256(`key`).
fn truth(ids: &[PeerId], key: &[u8]) -> BTreeSet<PeerId> {
    let target = key_of(key);
    let mut sorted: Vec<(Vec<u8>, PeerId)> = ids
        .iter()
        .map(|p| {
            let k = key_of(&p.to_bytes());
            let d =
                k.0.iter()
                    .zip(target.0.iter())
                    .map(|(a, b)| a ^ b)
                    .collect();
            (d, *p)
        })
        .collect();
    sorted.sort();
    sorted.into_iter().take(K).map(|(_, p)| p).collect()
}

fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("interop key {i}").into_bytes())
        .collect()
}

fn ids_of(ours: &[IpfsHandle]) -> Vec<PeerId> {
    ours.iter().map(|n| n.peer_id()).collect()
}

fn libp2p_ids(peers: &[dht_ipfs::PeerInfo]) -> BTreeSet<PeerId> {
    peers
        .iter()
        .filter_map(|p| PeerId::from_bytes(p.id().as_bytes()).ok())
        .collect()
}

/// A rust client's lookups through 30 of our servers find the true 20 closest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_through_our_network() {
    let net = our_network(30).await;
    let ids = ids_of(&net);
    let client = RustPeer::spawn(false, None).await;
    client
        .bootstrap(vec![(net[0].peer_id(), net[0].listen_addrs()[0].clone())])
        .await;
    let mut exact = 0;
    for key in keys(20) {
        let got: BTreeSet<PeerId> = client.closest(key.clone()).await.into_iter().collect();
        if got == truth(&ids, &key) {
            exact += 1;
        }
    }
    println!("rust client through 30 of ours: {exact}/20 keys exact");
    assert_eq!(exact, 20);
}

/// The harness's control: the same script through 30 rust servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_through_rust_network() {
    let net = rust_network(30).await;
    let ids: Vec<PeerId> = net.iter().map(|n| n.id).collect();
    let client = RustPeer::spawn(false, None).await;
    client
        .bootstrap(vec![(net[0].id, net[0].addr.clone())])
        .await;
    let mut exact = 0;
    for key in keys(20) {
        let got: BTreeSet<PeerId> = client.closest(key.clone()).await.into_iter().collect();
        if got == truth(&ids, &key) {
            exact += 1;
        }
    }
    println!("rust client through 30 rust nodes (control): {exact}/20 keys exact");
    assert_eq!(exact, 20);
}

/// Our client's lookups through 30 rust servers find the true 20 closest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_through_rust_network() {
    let net = rust_network(30).await;
    let ids: Vec<PeerId> = net.iter().map(|n| n.id).collect();
    let client = ours(Mode::Client).await;
    let seed = net[0]
        .addr
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(net[0].id));
    client.bootstrap(&[seed]).await.expect("bootstrap");
    let mut exact = 0;
    for key in keys(20) {
        let got = libp2p_ids(&client.closest_peers(key.clone()).await.expect("lookup"));
        if got == truth(&ids, &key) {
            exact += 1;
        }
    }
    println!("our client through 30 rust nodes: {exact}/20 keys exact");
    assert_eq!(exact, 20);
}

/// Our client's requests: 40 at once to one rust server all succeed (at most 16
/// streams at a time on the connection; rust drops the 33rd).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_requests_to_one_rust_peer() {
    let server = RustPeer::spawn(true, None).await;
    let client = ours(Mode::Client).await;
    let seed = server
        .addr
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(server.id));
    client.bootstrap(&[seed]).await.expect("bootstrap");
    let lookups = keys(40).into_iter().map(|k| client.closest_peers(k));
    let results = futures::future::join_all(lookups).await;
    let ok = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|p| libp2p_ids(p).contains(&server.id)))
        .count();
    println!("40 concurrent lookups to one rust peer: {ok}/40 answered");
    assert_eq!(ok, 40);
}

#[allow(dead_code)]
fn settle() -> Duration {
    Duration::from_millis(500)
}
