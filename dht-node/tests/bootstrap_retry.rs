//! `Dht::bootstrap_until_joined`: a node whose only seed is not up yet keeps trying
//! and joins once the seed answers; a stopped node ends the retry with
//! `Error::Shutdown`. Loopback only.

use std::time::Duration;

use dht_node::{Backoff, Dht, Error};

const FAST: Backoff = Backoff {
    first: Duration::from_millis(100),
    max: Duration::from_millis(200),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_once_the_seed_comes_up() {
    // A loopback port nobody listens on yet.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind probe");
    let seed = probe.local_addr().expect("probe addr");
    drop(probe);

    let client = Dht::builder()
        .listen("127.0.0.1:0".parse().expect("addr"))
        .request_timeout(Duration::from_millis(200))
        .republish(None)
        .spawn()
        .expect("spawn client");
    let join = tokio::spawn({
        let client = client.clone();
        let names = vec![seed.to_string()];
        async move { client.bootstrap_until_joined(&names, FAST).await }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!join.is_finished(), "joined with no seed up");

    let server = Dht::builder().listen(seed).spawn().expect("spawn seed");
    let joined = tokio::time::timeout(Duration::from_secs(20), join)
        .await
        .expect("joined within 20 s")
        .expect("task")
        .expect("bootstrap answer");
    assert!(
        joined.value.iter().any(|n| n.addr == seed),
        "{:?}",
        joined.value
    );
    client.shutdown().await.expect("shutdown");
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_stopped_node_stops_retrying() {
    let client = Dht::builder()
        .listen("127.0.0.1:0".parse().expect("addr"))
        .spawn()
        .expect("spawn");
    client.shutdown().await.expect("shutdown");
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        client.bootstrap_until_joined(&["127.0.0.1:9".to_string()], FAST),
    )
    .await
    .expect("returns at once");
    assert!(matches!(r, Err(Error::Shutdown)), "{r:?}");
}
