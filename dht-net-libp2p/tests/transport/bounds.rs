//! The transport's bounds ([`dht_net_libp2p::Limits`]), each seen from a rust-libp2p
//! peer on loopback: connections per IP (with and without the local exemption), in
//! total, inbound streams per connection, and bytes per message. (The outbound bound,
//! 16 streams per connection, is `interop.rs`'s 40 concurrent requests: rust drops
//! the 33rd.)

use std::time::Duration;

use crate::rust_peer::RustPeer;
use dht_ipfs::{MemStore, Mode, StoreLimits};
use dht_net_libp2p::{HostConfig, IpfsHandle, IpfsHost, Limits};
use libp2p::identity::Keypair;

async fn server(limits: Limits) -> IpfsHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    let mut config = HostConfig::new(Keypair::generate_ed25519(), listen);
    config.mode = Mode::Server;
    config.limits = limits;
    IpfsHost::spawn(config, MemStore::new(StoreLimits::default()))
        .await
        .expect("host starts")
}

/// Has `n` rust clients dial `to` (each runs a bootstrap through it), then counts the
/// connections it holds.
async fn dialed_by(to: &IpfsHandle, n: usize) -> usize {
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(RustPeer::spawn(false, None).await);
    }
    let seed = (to.peer_id(), to.listen_addrs()[0].clone());
    futures::future::join_all(clients.iter().map(|c| c.bootstrap(vec![seed.clone()]))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let connections = to.status().await.expect("status").connections;
    drop(clients);
    connections
}

/// With the local exemption off, a loopback source gets `max_connections_per_ip`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_ip() {
    let limits = Limits {
        max_connections_per_ip: 2,
        exempt_local: false,
        ..Limits::default()
    };
    let host = server(limits).await;
    assert_eq!(dialed_by(&host, 4).await, 2);
}

/// By default loopback is exempt from the per-IP bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_exempt_from_per_ip_by_default() {
    let limits = Limits {
        max_connections_per_ip: 2,
        ..Limits::default()
    };
    let host = server(limits).await;
    assert_eq!(dialed_by(&host, 4).await, 4);
}

/// Connections in total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_in_total() {
    let limits = Limits {
        max_connections: 3,
        ..Limits::default()
    };
    let host = server(limits).await;
    assert_eq!(dialed_by(&host, 5).await, 3);
}

/// Inbound streams alive at once on one connection: a rust peer's 32 at once are cut
/// to 4, and the requests on the others fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_streams_per_connection() {
    let limits = Limits {
        max_inbound_streams: 4,
        ..Limits::default()
    };
    let host = server(limits).await;
    let client = RustPeer::spawn(false, None).await;
    client
        .bootstrap(vec![(host.peer_id(), host.listen_addrs()[0].clone())])
        .await;
    let keys = (0..32).map(|i| format!("stream bound {i}").into_bytes());
    let results = futures::future::join_all(keys.map(|k| client.closest(k))).await;
    let failed = results
        .iter()
        .filter(|r| !r.contains(&host.peer_id()))
        .count();
    println!("32 concurrent requests, 4 inbound streams allowed: {failed} failed");
    assert!(failed > 0, "the bound cut no stream");
    // Within the bound, the same requests one at a time all succeed.
    for i in 0..4 {
        let r = client.closest(format!("after {i}").into_bytes()).await;
        assert!(r.contains(&host.peer_id()));
    }
}

/// Bytes per message: a FIND_NODE with a 4 KiB key is refused under a 2 KiB bound
/// (the engine alone takes requests up to 64 KiB), and a short one still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_per_message() {
    let limits = Limits {
        max_message_bytes: 2048,
        ..Limits::default()
    };
    let host = server(limits).await;
    let client = RustPeer::spawn(false, Some(64 * 1024)).await;
    client
        .bootstrap(vec![(host.peer_id(), host.listen_addrs()[0].clone())])
        .await;
    let long = client.closest(vec![7u8; 4096]).await;
    assert!(
        !long.contains(&host.peer_id()),
        "an oversized request was answered"
    );
    let short = client.closest(vec![7u8; 64]).await;
    assert!(short.contains(&host.peer_id()));
}
