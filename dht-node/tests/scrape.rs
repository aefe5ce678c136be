//! BEP 33 through the `Dht` handle over UDP on loopback: nodes on distinct
//! 127.0.0.x addresses announce as seeds or peers, and another node's `scrape`
//! estimates both counts. Loopback only.

use std::net::SocketAddr;
use std::time::Duration;

use dht_node::dht_core::Id;
use dht_node::Dht;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_counts_seeds_and_peers_over_udp() {
    let spawn = |ip: [u8; 4]| {
        Dht::builder()
            .listen(SocketAddr::from((ip, 0)))
            .republish(None)
            .spawn()
            .expect("spawn a node on loopback")
    };
    let seed_node = spawn([127, 0, 33, 1]);
    let boot = seed_node.local_addrs()[0];
    let mut nodes = vec![seed_node];
    for i in 2..=16u8 {
        nodes.push(spawn([127, 0, 33, i]));
    }
    for n in &nodes[1..] {
        n.bootstrap(&[boot]).await.expect("join");
    }
    let ih = Id::sha1(b"scraped over udp");
    let (seeds, peers) = (5, 7);
    for (i, n) in nodes.iter().enumerate().take(seeds + peers) {
        let port = Some(7000 + i as u16);
        let stored = if i < seeds {
            n.announce_seed(ih, port).await
        } else {
            n.announce_peer(ih, port).await
        };
        assert!(stored.is_ok(), "announce {i}: {stored:?}");
    }
    let scraper = &nodes[15];
    let got = tokio::time::timeout(Duration::from_secs(20), scraper.scrape(ih))
        .await
        .expect("scrape within 20 s")
        .expect("scrape answered");
    assert!(got.value.responders > 0, "{got:?}");
    assert!(
        got.value.seeds.abs_diff(seeds as u32) <= 1 && got.value.peers.abs_diff(peers as u32) <= 1,
        "estimated {} seeds and {} peers, announced {seeds} and {peers}",
        got.value.seeds,
        got.value.peers
    );
    for n in &nodes {
        n.shutdown().await.expect("shutdown");
    }
}
