//! What the application puts through the handle stays alive until it says stop.

use std::time::Duration;

use dht_core::Config;
use dht_node::{bencode_bytes, Dht, RepublishIntervals};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_are_republished_until_stopped() {
    // The only storing node forgets items after one second.
    let config = Config {
        item_ttl: Duration::from_secs(1),
        maintenance_interval: Duration::from_millis(200),
        ..Config::default()
    };
    let server = Dht::builder()
        .config(config)
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn()
        .expect("server");
    let seed = server.local_addrs()[0];
    // Read-only publisher and reader: neither stores anything for others.
    let fast = RepublishIntervals {
        items: Duration::from_millis(300),
        announces: Duration::from_millis(300),
    };
    let publisher = Dht::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .read_only(true)
        .republish(Some(fast))
        .spawn()
        .expect("publisher");
    let reader = Dht::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .read_only(true)
        .spawn()
        .expect("reader");
    publisher
        .bootstrap(&[seed])
        .await
        .expect("publisher bootstraps");
    reader.bootstrap(&[seed]).await.expect("reader bootstraps");

    let put = publisher
        .put_immutable(bencode_bytes(b"kept alive"))
        .await
        .expect("put");
    let target = put.value.target;

    // Well past the item's lifetime, it is still there: it was put again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got = reader.get_immutable(target).await.expect("get");
    assert_eq!(got.value, Some(bencode_bytes(b"kept alive")));

    // Once republishing stops, the item expires.
    assert!(publisher.stop_republishing(target).await.expect("stop"));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got = reader.get_immutable(target).await.expect("get");
    assert_eq!(
        got.value, None,
        "the item outlived its ttl without republishing"
    );

    for d in [publisher, reader, server] {
        d.shutdown().await.expect("shutdown");
    }
}
