//! Regression: nodes of the `mainline` crate as the *only* storers (issue 13).
//!
//! A network of `mainline` server nodes on loopback and nothing of ours but a
//! read-only client (BEP 43, the shape of `dht-node put`): our puts (immutable,
//! mutable with salt, mutable with `cas`) and announces must be stored by the
//! `mainline` nodes and found by a `mainline` client, and what `mainline` puts and
//! announces must be found by us. Before the fix, `mainline` dropped every put of
//! ours as undecodable (it requires `target` in `put`), so the put failed with
//! "no node answered" while find_node and get worked.
#![allow(deprecated)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use dht_core::Id;
use dht_core::MutableItem;
use dht_node::{bencode_bytes, Dht, Error};

/// `mainline` server nodes whose routing tables know each other; nobody else.
fn mainline_network(n: usize) -> mainline::Testnet {
    mainline::Testnet::builder(n)
        .bind_address(Ipv4Addr::LOCALHOST)
        .build()
        .expect("mainline testnet")
}

fn mainline_client(bootstrap: &[String]) -> mainline::Dht {
    mainline::Dht::builder()
        .bootstrap(bootstrap)
        .bind_address(Ipv4Addr::LOCALHOST)
        .request_timeout(Duration::from_millis(500))
        .build()
        .expect("mainline client")
}

/// Our client as `dht-node put` runs it: read-only, no republishing.
async fn our_client(bootstrap: &[String]) -> Dht {
    let dht = Dht::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .read_only(true)
        .republish(None)
        .request_timeout(Duration::from_millis(500))
        .spawn()
        .expect("our client");
    let seeds: Vec<SocketAddr> = bootstrap.iter().map(|s| s.parse().unwrap()).collect();
    dht.bootstrap(&seeds).await.expect("bootstrap via mainline");
    dht
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

fn assert_only_mainline_stored(stored_at: &[SocketAddr], mainline: &[String]) {
    assert!(!stored_at.is_empty(), "no node stored it");
    for addr in stored_at {
        assert!(
            mainline.contains(&addr.to_string()),
            "{addr} is not a mainline node"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainline_nodes_store_our_items_and_announces() {
    let net = blocking(|| mainline_network(5)).await;
    let boot = net.bootstrap.clone();
    let ours = our_client(&boot).await;

    // Immutable.
    let put = ours
        .put_immutable(bencode_bytes(b"stored by mainline"))
        .await
        .expect("immutable put stored by mainline nodes");
    assert_only_mainline_stored(&put.value.stored_at, &boot);
    let target = mainline::Id::from_bytes(put.value.target.0).expect("id");

    // Mutable with salt, then a newer one with cas.
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let public = key.verifying_key().to_bytes();
    let v1 = MutableItem::sign(&key, b"salt", 1, &bencode_bytes(b"first"));
    let put = ours
        .put_mutable(v1, None)
        .await
        .expect("mutable put stored by mainline nodes");
    assert_only_mainline_stored(&put.value.stored_at, &boot);
    let v2 = MutableItem::sign(&key, b"salt", 2, &bencode_bytes(b"second"));
    let put = ours.put_mutable(v2, Some(1)).await.expect("cas put");
    assert_only_mainline_stored(&put.value.stored_at, &boot);
    // A wrong cas is refused with 301 by every mainline node.
    let v3 = MutableItem::sign(&key, b"salt", 3, &bencode_bytes(b"third"));
    assert!(matches!(
        ours.put_mutable(v3, Some(7)).await,
        Err(Error::CasMismatch)
    ));

    // Announce with an explicit port.
    let info_hash = Id([0x5a; 20]);
    let ann = ours
        .announce_peer(info_hash, Some(6363))
        .await
        .expect("announce stored by mainline nodes");
    assert_only_mainline_stored(&ann.value.stored_at, &boot);

    // A mainline client that never talked to us finds all of it.
    let (imm, mutable, peers) = blocking(move || {
        let client = mainline_client(&boot);
        let imm = client.get_immutable(target);
        let mutable = client.get_mutable_most_recent(&public, Some(b"salt"));
        let ih = mainline::Id::from_bytes(info_hash.0).expect("id");
        let peers: Vec<_> = client.get_peers(ih).flatten().collect();
        (imm, mutable, peers)
    })
    .await;
    assert_eq!(imm.as_deref(), Some(&b"stored by mainline"[..]));
    let m = mutable.expect("mainline found our mutable item");
    assert_eq!((m.seq(), m.value()), (2, &b"second"[..]));
    assert!(peers.iter().any(|p| p.port() == 6363), "{peers:?}");

    ours.shutdown().await.expect("shutdown");
    drop(net);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_find_what_mainline_nodes_store() {
    let net = blocking(|| mainline_network(5)).await;
    let boot = net.bootstrap.clone();
    let ours = our_client(&boot).await;

    let signer = mainline::SigningKey::from_bytes(&[8; 32]);
    let public = signer.verifying_key().to_bytes();
    let ih = [0x6b; 20];
    let b = boot.clone();
    let target = blocking(move || {
        let client = mainline_client(&b);
        let target = client
            .put_immutable(b"put by mainline")
            .expect("mainline put");
        let item = mainline::MutableItem::new(signer, b"mutable by mainline", 4, Some(b"s"));
        client
            .put_mutable(item, None)
            .expect("mainline mutable put");
        let info_hash = mainline::Id::from_bytes(ih).expect("id");
        client
            .announce_peer(info_hash, Some(7474))
            .expect("mainline announce");
        target
    })
    .await;

    let got = ours
        .get_immutable(Id(*target.as_bytes()))
        .await
        .expect("get");
    assert_eq!(
        got.value.as_deref(),
        Some(&bencode_bytes(b"put by mainline")[..])
    );
    let got = ours.get_mutable(public, b"s", None).await.expect("get");
    let item = got.value.expect("found mainline's mutable item");
    assert_eq!(item.seq, 4);
    assert_eq!(item.value, bencode_bytes(b"mutable by mainline"));
    let peers = ours.get_peers(Id(ih)).await.expect("get_peers");
    assert!(
        peers.value.peers.iter().any(|p| p.port() == 7474),
        "{:?}",
        peers.value.peers
    );

    ours.shutdown().await.expect("shutdown");
    drop(net);
}
