//! Interop with rust-libp2p's Kademlia (0.57, `libp2p-kad` 0.49) on loopback, both
//! ways, as issue 22 part 4 lists: lookups through networks of ours, of theirs and of
//! both, `/pk` records and providers across, a refused record, a client of ours kept
//! out of rust tables, our reply size with a full table, and 40 concurrent requests.
//! Every network is built on 127.0.0.1 and torn down with the test.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::rust_peer::RustPeer;
use dht_ipfs::{key_of, MemStore, Mode, StoreLimits};
use dht_net_libp2p::{HostConfig, IpfsHandle, IpfsHost};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

const K: usize = 20;

async fn ours(mode: Mode) -> IpfsHandle {
    ours_keyed(mode, Keypair::generate_ed25519()).await
}

async fn ours_keyed(mode: Mode, key: Keypair) -> IpfsHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    let mut config = HostConfig::new(key, listen);
    config.mode = mode;
    IpfsHost::spawn(config, MemStore::new(StoreLimits::default()))
        .await
        .expect("host starts")
}

fn dial(peer: &RustPeer) -> Multiaddr {
    peer.addr.clone().with(Protocol::P2p(peer.id))
}

/// `ours` servers of ours and `theirs` rust servers: rust joins through our first,
/// we join through rust's first, twice.
async fn mixed_network(ours_n: usize, theirs_n: usize) -> (Vec<IpfsHandle>, Vec<RustPeer>) {
    let mut us = Vec::new();
    for _ in 0..ours_n {
        us.push(ours(Mode::Server).await);
    }
    let mut them = Vec::new();
    for _ in 0..theirs_n {
        them.push(RustPeer::spawn(true, None).await);
    }
    let our_seed = vec![(us[0].peer_id(), us[0].listen_addrs()[0].clone())];
    let rust_seed = [dial(&them[0])];
    for _round in 0..2 {
        let a = futures::future::join_all(us.iter().map(|n| n.bootstrap(&rust_seed)));
        let b = futures::future::join_all(them.iter().map(|n| n.bootstrap(our_seed.clone())));
        let (a, _) = futures::join!(a, b);
        for r in a {
            r.expect("bootstrap");
        }
    }
    (us, them)
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

/// 15 of ours and 15 rust servers in one network: both sides' lookups find the true
/// 20 closest of all 30, and both sides' tables hold the other's peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_network_of_fifteen_and_fifteen() {
    let (us, them) = mixed_network(15, 15).await;
    let mut ids = ids_of(&us);
    ids.extend(them.iter().map(|n| n.id));
    let rust_client = RustPeer::spawn(false, None).await;
    rust_client
        .bootstrap(vec![(them[1].id, them[1].addr.clone())])
        .await;
    let our_client = ours(Mode::Client).await;
    our_client
        .bootstrap(&us[1].dial_addrs())
        .await
        .expect("bootstrap");
    let (mut rust_exact, mut our_exact) = (0, 0);
    for key in keys(20) {
        let want = truth(&ids, &key);
        let got: BTreeSet<PeerId> = rust_client.closest(key.clone()).await.into_iter().collect();
        rust_exact += usize::from(got == want);
        let got = libp2p_ids(&our_client.closest_peers(key).await.expect("lookup"));
        our_exact += usize::from(got == want);
    }
    let rust_ids: BTreeSet<PeerId> = them.iter().map(|n| n.id).collect();
    let our_ids: BTreeSet<PeerId> = ids_of(&us).into_iter().collect();
    let mut ours_knowing_rust = 0;
    for n in &us {
        let table = libp2p_ids(&n.table_peers().await.expect("table"));
        ours_knowing_rust += usize::from(table.iter().any(|p| rust_ids.contains(p)));
    }
    let mut rust_knowing_ours = 0;
    for n in &them {
        let table = n.table().await;
        rust_knowing_ours += usize::from(table.iter().any(|p| our_ids.contains(p)));
    }
    println!(
        "mixed 15+15: rust client {rust_exact}/20 exact, our client {our_exact}/20 exact; \
         {ours_knowing_rust}/15 of our tables hold rust peers, {rust_knowing_ours}/15 rust tables hold ours"
    );
    assert!(rust_exact >= 19 && our_exact >= 19);
    assert_eq!((ours_knowing_rust, rust_knowing_ours), (15, 15));
}

/// `/pk` records put by rust and got by us and the reverse; an invalid one refused by
/// our servers; providers announced by each side and found by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_providers_both_ways() {
    let (us, them) = mixed_network(5, 5).await;
    let our_ids = ids_of(&us);
    let pk_key = |id: &PeerId| [b"/pk/".as_slice(), &id.to_bytes()].concat();

    // Rust puts its /pk record to every one of our servers (quorum all): each takes it.
    let rust_key = Keypair::generate_ed25519();
    let putter = RustPeer::spawn(false, None).await;
    putter
        .bootstrap(vec![(them[0].id, them[0].addr.clone())])
        .await;
    let rust_pk = putter.pk.clone();
    let key = pk_key(&putter.id);
    assert!(
        putter
            .put(key.clone(), rust_pk.clone(), Some(our_ids.clone()))
            .await,
        "our servers refused a valid /pk record"
    );
    let our_client = ours(Mode::Client).await;
    our_client
        .bootstrap(&us[0].dial_addrs())
        .await
        .expect("bootstrap");
    let got = our_client.get_record(key.clone()).await.expect("get");
    assert_eq!(got.map(|r| r.value), Some(rust_pk));

    // An invalid one (another key's bytes under this PeerId) is refused by all of ours.
    let wrong = rust_key.public().encode_protobuf();
    assert!(
        !putter.put(key, wrong, Some(our_ids.clone())).await,
        "our servers took an invalid /pk record"
    );

    // We put ours; a rust client gets it.
    let our_key = Keypair::generate_ed25519();
    let publisher = ours_keyed(Mode::Server, our_key.clone()).await;
    publisher
        .bootstrap(&[dial(&them[0])])
        .await
        .expect("bootstrap");
    let key = pk_key(&publisher.peer_id());
    let value = our_key.public().encode_protobuf();
    let (acks, sent) = publisher
        .put_record(key.clone(), value.clone())
        .await
        .expect("put");
    assert!(acks > 0, "no server acknowledged our put ({acks}/{sent})");
    let rust_client = RustPeer::spawn(false, None).await;
    rust_client
        .bootstrap(vec![(them[1].id, them[1].addr.clone())])
        .await;
    assert_eq!(rust_client.get(key).await, Some(value));

    // Providers: rust announces, we find it; we announce, rust finds us.
    let cid = |n: u8| [&[0x12u8, 0x20][..], &[n; 32]].concat();
    let provider = RustPeer::spawn(true, None).await;
    provider
        .bootstrap(vec![(them[0].id, them[0].addr.clone())])
        .await;
    assert!(provider.provide(cid(1)).await);
    let found = libp2p_ids(&our_client.providers(cid(1)).await.expect("providers"));
    assert!(
        found.contains(&provider.id),
        "we did not find rust's provider"
    );
    assert!(publisher.provide(cid(2)).await.expect("provide") > 0);
    let found = rust_client.providers(cid(2)).await;
    assert!(
        found.contains(&publisher.peer_id()),
        "rust did not find our provider"
    );
    println!("records and providers: /pk both ways, invalid refused, providers both ways");
}

/// A client of ours asks rust servers but never enters their tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_never_in_a_rust_table() {
    let net = rust_network(5).await;
    let client = ours(Mode::Client).await;
    client.bootstrap(&[dial(&net[0])]).await.expect("bootstrap");
    for key in keys(3) {
        client.closest_peers(key).await.expect("lookup");
    }
    for n in &net {
        assert!(!n.table().await.contains(&client.peer_id()));
    }
}

/// With a full table of peers that each list 16 long addresses, our FIND_NODE reply
/// still fits the 16 KiB rust-libp2p reads: a rust client (default limit) gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_reply_fits_sixteen_kib() {
    let server = ours(Mode::Server).await;
    let mut peers = Vec::new();
    for i in 0..24 {
        let extra = (0..15)
            .map(|j| {
                let host = format!("{}-{i}-{j}.example.invalid", "a".repeat(100));
                format!("/dns4/{host}/tcp/4001").parse().expect("multiaddr")
            })
            .collect();
        peers.push(RustPeer::spawn_with(true, None, extra).await);
    }
    let seed = vec![(server.peer_id(), server.listen_addrs()[0].clone())];
    futures::future::join_all(peers.iter().map(|p| p.bootstrap(seed.clone()))).await;
    let mut table = 0;
    for _ in 0..50 {
        table = server.status().await.expect("status").table_size;
        if table >= K {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(table >= K, "table holds {table}");
    // Untrimmed, 20 of these peers with all their addresses would not fit.
    let untrimmed: usize = server
        .table_peers()
        .await
        .expect("table")
        .iter()
        .take(K)
        .map(|p| p.id().as_bytes().len() + p.addrs().iter().map(|a| a.len() + 2).sum::<usize>())
        .sum();
    assert!(
        untrimmed > 16 * 1024,
        "the test's peers are too small: {untrimmed} bytes"
    );
    let client = RustPeer::spawn(false, None).await;
    client.bootstrap(seed).await;
    let got = client.closest(b"sixteen".to_vec()).await;
    assert!(
        got.contains(&server.peer_id()),
        "rust could not read our reply"
    );
    // rust-libp2p refuses a message over 16 KiB: that it counts our server among the
    // peers that answered shows the reply fit.
    println!(
        "reply with a full table of 16-address peers: read by rust ({untrimmed} bytes untrimmed)"
    );
}

/// Peers with RSA identities (many Amino peers have them) are accepted: a rust server
/// with a 2048-bit RSA key (a fixed test key) enters our server's table and is found
/// by our client's lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_peer_accepted() {
    let mut der = include_bytes!("rsa_test_key.pk8").to_vec();
    let key = Keypair::rsa_from_pkcs8(&mut der).expect("an RSA PKCS#8 key");
    let server = ours(Mode::Server).await;
    let rsa = RustPeer::spawn_keyed(key, true, None, Vec::new()).await;
    rsa.bootstrap(vec![(server.peer_id(), server.listen_addrs()[0].clone())])
        .await;
    let mut admitted = false;
    for _ in 0..50 {
        let table = libp2p_ids(&server.table_peers().await.expect("table"));
        if table.contains(&rsa.id) {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted, "the RSA peer never entered our table");
    let client = ours(Mode::Client).await;
    client
        .bootstrap(&server.dial_addrs())
        .await
        .expect("bootstrap");
    let found = client.find_peer(&rsa.id).await.expect("lookup");
    assert!(found.is_some(), "our lookup did not reach the RSA peer");
}
