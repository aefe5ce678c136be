//! Through `IpfsHandle` on loopback: what a connected peer listed in identify (its
//! protocols and addresses, forgotten once it is gone), and providers streamed as a
//! lookup finds them, each once, the stream ending with the lookup.

use std::time::Duration;

use dht_ipfs::{MemStore, Mode, StoreLimits};
use dht_net_libp2p::{HostConfig, Identified, IpfsHandle, IpfsHost};
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

async fn host(mode: Mode) -> IpfsHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    let mut config = HostConfig::new(libp2p::identity::Keypair::generate_ed25519(), listen);
    config.mode = mode;
    IpfsHost::spawn(config, MemStore::new(StoreLimits::default()))
        .await
        .expect("host starts")
}

fn dial(peer: &IpfsHandle) -> Multiaddr {
    peer.listen_addrs()[0]
        .clone()
        .with(Protocol::P2p(peer.peer_id()))
}

/// What `node` knows of `peer` from identify, waiting up to 10 s for it to come (or,
/// with `gone`, to go).
async fn identified(node: &IpfsHandle, peer: &IpfsHandle, gone: bool) -> Option<Identified> {
    for _ in 0..100 {
        let known = node.identified(&peer.peer_id()).await.expect("host runs");
        if known.is_some() != gone {
            return known;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "identify of {} never {}",
        peer.peer_id(),
        if gone { "went" } else { "came" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_tells_a_peers_protocols_while_connected() {
    let (seed, node) = (host(Mode::Server).await, host(Mode::Server).await);
    assert_eq!(seed.identified(&node.peer_id()).await.expect("runs"), None);
    node.bootstrap(&[dial(&seed)]).await.expect("bootstrap");

    let known = identified(&seed, &node, false).await.expect("identified");
    assert_eq!(known.peer.id().as_bytes(), node.peer_id().to_bytes());
    assert!(
        known.peer.addrs().contains(&node.listen_addrs()[0]),
        "{known:?}"
    );
    for p in ["/ipfs/kad/1.0.0", "/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"] {
        assert!(known.protocols.iter().any(|q| q == p), "{p} in {known:?}");
    }
    // And the other way round: the seed identified itself to the node.
    let back = identified(&node, &seed, false).await.expect("identified");
    assert!(
        back.protocols.iter().any(|q| q == "/ipfs/kad/1.0.0"),
        "{back:?}"
    );

    // Gone with its last connection.
    node.shutdown().await;
    identified(&seed, &node, true).await;
    seed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_stream_each_once_and_end_with_the_lookup() {
    let seed = host(Mode::Server).await;
    let mut servers = Vec::new();
    for _ in 0..3 {
        let s = host(Mode::Server).await;
        s.bootstrap(&[dial(&seed)]).await.expect("bootstrap");
        servers.push(s);
    }
    let provider = host(Mode::Server).await;
    provider.bootstrap(&[dial(&seed)]).await.expect("bootstrap");
    let key = b"content streamed".to_vec();
    assert!(provider.provide(key.clone()).await.expect("provide") > 0);

    // A client: it stores nothing, so the provider comes from the lookup's replies
    // (several servers hold the record, and name it each).
    let client = host(Mode::Client).await;
    client.bootstrap(&[dial(&seed)]).await.expect("bootstrap");
    let stream = client.provider_stream(key.clone()).await.expect("starts");
    let found: Vec<_> = tokio::time::timeout(Duration::from_secs(30), stream.collect())
        .await
        .expect("the stream ends with the lookup");
    let ids: Vec<Vec<u8>> = found.iter().map(|p| p.id().as_bytes().to_vec()).collect();
    assert_eq!(ids, vec![provider.peer_id().to_bytes()], "{found:?}");
    assert!(found[0].addrs().contains(&provider.listen_addrs()[0]));

    // A key nobody provides: the stream ends empty.
    let none = client
        .provider_stream(b"nobody".to_vec())
        .await
        .expect("starts");
    let none: Vec<_> = tokio::time::timeout(Duration::from_secs(30), none.collect())
        .await
        .expect("ends");
    assert!(none.is_empty(), "{none:?}");
    // A key the engine refuses: refused at once.
    assert!(client.provider_stream(Vec::new()).await.is_err());

    for h in [client, provider, seed].into_iter().chain(servers) {
        h.shutdown().await;
    }
}

/// A server on a runtime of its own, on a thread of its own, and a sender that stops
/// driving that runtime: from then on its sockets accept (the kernel does) and nothing
/// answers, as a stalled peer. The thread ends (and the host with it) when the sender
/// or `end` drops.
fn stalling_server() -> (
    IpfsHandle,
    tokio::sync::oneshot::Sender<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let (stall, stalled) = tokio::sync::oneshot::channel::<()>();
    let (end, ended) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let _ = handle_tx.send(host(Mode::Server).await);
            let _ = stalled.await;
        });
        let _ = ended.recv_timeout(Duration::from_secs(60));
    });
    let handle = handle_rx.recv().expect("the server starts");
    (handle, stall, end)
}

async fn requests_in_flight(node: &IpfsHandle) -> usize {
    node.status().await.expect("host runs").requests_in_flight
}

/// Dropping a provider stream cancels its lookup: a request to a stalled peer is
/// forgotten at once, where the lookup would wait for its 10 s deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_provider_stream_cancels_the_lookup() {
    let seed = host(Mode::Server).await;
    let (stalling, stall, _end) = stalling_server();
    stalling.bootstrap(&[dial(&seed)]).await.expect("bootstrap");
    let client = host(Mode::Client).await;
    client.bootstrap(&[dial(&seed)]).await.expect("bootstrap");
    // The client knows the peer that will stall (a lookup of it until it answered).
    let knows = || async {
        let table = client.table_peers().await.expect("runs");
        let id = stalling.peer_id().to_bytes();
        table.iter().any(|p| p.id().as_bytes() == id)
    };
    for _ in 0..50 {
        if knows().await {
            break;
        }
        let _ = client.find_peer(&stalling.peer_id()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(knows().await, "the client knows the peer that will stall");
    // Its own refreshes over, nothing in flight.
    for _ in 0..100 {
        if requests_in_flight(&client).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(requests_in_flight(&client).await, 0);
    let _ = stall.send(());

    let mut stream = client
        .provider_stream(b"stalled".to_vec())
        .await
        .expect("starts");
    let waiting = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
    assert!(waiting.is_err(), "the lookup waits on the stalled peer");
    assert!(requests_in_flight(&client).await > 0);
    drop(stream);
    let mut left = usize::MAX;
    for _ in 0..20 {
        left = requests_in_flight(&client).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the lookup's requests were forgotten within 2 s");
    client.shutdown().await;
    seed.shutdown().await;
}
