//! Interoperability with the `mainline` crate, an implementation nobody here wrote,
//! on loopback. Its sync API blocks, so it runs on blocking threads.
#![allow(deprecated)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use dht_core::Id;
use dht_core::MutableItem;
use dht_node::{bencode_bytes, Dht};

fn mainline_server(bootstrap: &[SocketAddr]) -> mainline::Dht {
    let seeds: Vec<String> = bootstrap.iter().map(|a| a.to_string()).collect();
    mainline::Dht::builder()
        .server_mode()
        .bootstrap(&seeds)
        .bind_address(Ipv4Addr::LOCALHOST)
        .request_timeout(Duration::from_millis(500))
        .build()
        .expect("mainline node")
}

fn mainline_client(bootstrap: SocketAddr) -> mainline::Dht {
    mainline::Dht::builder()
        .bootstrap(&[bootstrap.to_string()])
        .bind_address(Ipv4Addr::LOCALHOST)
        .request_timeout(Duration::from_millis(500))
        .build()
        .expect("mainline client")
}

fn our_node() -> Dht {
    Dht::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .request_timeout(Duration::from_millis(500))
        .spawn()
        .expect("our node")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainline_and_us_exchange_items_and_peers() {
    // Our seed node first; mainline servers and a second node of ours join through it.
    let seed = our_node();
    let seed_addr = seed.local_addrs()[0];
    let servers: Vec<mainline::Dht> =
        blocking(move || (0..4).map(|_| mainline_server(&[seed_addr])).collect()).await;
    let ours = our_node();
    let boot = ours.bootstrap(&[seed_addr]).await.expect("we bootstrap");
    assert!(!boot.value.is_empty());
    // Let the mainline nodes' own bootstraps settle.
    let s0 = servers[0].clone();
    blocking(move || s0.bootstrapped()).await;

    // A mainline node puts an immutable item; we get it.
    let s0 = servers[0].clone();
    let target = blocking(move || s0.put_immutable(b"from mainline").expect("mainline put")).await;
    let target = Id(*target.as_bytes());
    let got = ours.get_immutable(target).await.expect("get");
    assert_eq!(
        got.value.as_deref(),
        Some(&bencode_bytes(b"from mainline")[..])
    );

    // A mainline node puts a mutable item; we get it, signature checked.
    let signer = mainline::SigningKey::from_bytes(&[3; 32]);
    let public = signer.verifying_key().to_bytes();
    let s1 = servers[1].clone();
    blocking(move || {
        let item = mainline::MutableItem::new(signer, b"mutable from mainline", 7, Some(b"salt"));
        s1.put_mutable(item, None).expect("mainline mutable put")
    })
    .await;
    let got = ours
        .get_mutable(public, b"salt", None)
        .await
        .expect("get mutable");
    let item = got.value.expect("found the mutable item");
    assert_eq!(item.seq, 7);
    assert_eq!(item.value, bencode_bytes(b"mutable from mainline"));

    // We put; a mainline client whose only bootstrap is our node gets both items.
    let put = ours
        .put_immutable(bencode_bytes(b"from dht-node"))
        .await
        .expect("our put");
    assert!(!put.value.stored_at.is_empty());
    let key = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let our_item = MutableItem::sign(&key, b"", 3, &bencode_bytes(b"our mutable"));
    let our_public = our_item.key;
    ours.put_mutable(our_item, None)
        .await
        .expect("our mutable put");
    let ours_addr = ours.local_addrs()[0];
    let immutable_target = mainline::Id::from_bytes(put.value.target.0).expect("id");
    let (imm, mutable) = blocking(move || {
        let client = mainline_client(ours_addr);
        let imm = client.get_immutable(immutable_target);
        let m = client.get_mutable_most_recent(&our_public, None);
        (imm, m)
    })
    .await;
    assert_eq!(imm.as_deref(), Some(&b"from dht-node"[..]));
    let m = mutable.expect("mainline found our mutable item");
    assert_eq!(m.value(), b"our mutable");
    assert_eq!(m.seq(), 3);

    // Announces both ways.
    let ih_theirs = [0x11u8; 20];
    let s2 = servers[2].clone();
    blocking(move || {
        s2.announce_peer(mainline::Id::from_bytes(ih_theirs).expect("id"), Some(4242))
            .expect("mainline announce")
    })
    .await;
    let peers = ours.get_peers(Id(ih_theirs)).await.expect("get_peers");
    assert!(
        peers.value.peers.iter().any(|p| p.port() == 4242),
        "{:?}",
        peers.value.peers
    );

    let ih_ours = Id([0x22; 20]);
    let ann = ours
        .announce_peer(ih_ours, Some(5353))
        .await
        .expect("our announce");
    assert!(!ann.value.stored_at.is_empty());
    let found = blocking(move || {
        let client = mainline_client(ours_addr);
        client
            .get_peers(mainline::Id::from_bytes(ih_ours.0).expect("id"))
            .flatten()
            .collect::<Vec<_>>()
    })
    .await;
    assert!(found.iter().any(|p| p.port() == 5353), "{found:?}");

    // What we put is being republished until we say stop.
    let info = ours.routing_table().await.expect("info");
    assert_eq!(info.republishing, 3);
    assert!(ours.stop_republishing(ih_ours).await.expect("stop"));
    assert!(!ours.stop_republishing(ih_ours).await.expect("stop again"));

    ours.shutdown().await.expect("shutdown");
    seed.shutdown().await.expect("shutdown");
    assert!(matches!(
        ours.ping(seed_addr).await,
        Err(dht_node::Error::Shutdown)
    ));
}
