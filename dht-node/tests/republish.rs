//! What the application puts through the handle stays alive until it says stop.

use std::time::Duration;

use dht_core::Config;
use dht_node::{bencode_bytes, Dht, RepublishIntervals};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_are_republished_until_stopped() {
    // The only storing node forgets items after one second.
    let mut config = Config::default();
    config.item_ttl = Duration::from_secs(1);
    config.maintenance_interval = Duration::from_millis(200);
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

/// Writes made in one burst come due in one burst: the node starts at most
/// `REPUBLISH_PER_SECOND` republishes a second (issue 27, a Low item: 4,000 HTTP
/// writes were re-run in one burst). 128 items put at once and republished every 2 s
/// would hit the only storing node with about 256 queries in one second; spread, no
/// second sees more than about twice the rate's share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republishes_due_at_once_are_spread() {
    const ITEMS: usize = 128;
    let server = Dht::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn()
        .expect("server");
    let seed = server.local_addrs()[0];
    let every = Duration::from_secs(2);
    let publisher = Dht::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .read_only(true)
        .republish(Some(RepublishIntervals {
            items: every,
            announces: every,
        }))
        .spawn()
        .expect("publisher");
    publisher
        .bootstrap(&[seed])
        .await
        .expect("publisher bootstraps");
    let puts = (0..ITEMS).map(|i| {
        let p = publisher.clone();
        tokio::spawn(async move { p.put_immutable(bencode_bytes(&i.to_be_bytes())).await })
    });
    for put in puts.collect::<Vec<_>>() {
        put.await.expect("task").expect("put");
    }
    let answered = || async {
        server
            .metrics()
            .await
            .expect("metrics")
            .stats
            .queries_answered
    };
    // From shortly before the first republishes come due until they have all run
    // once at the capped rate (128 / 16 = 8 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut last = answered().await;
    let mut busiest = 0;
    let mut total = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = answered().await;
        busiest = busiest.max(now - last);
        total += now - last;
        last = now;
    }
    let per_second = dht_node::REPUBLISH_PER_SECOND as u64;
    assert!(
        total >= ITEMS as u64,
        "the items were republished ({total} queries answered in 10 s)"
    );
    // A republish here is a get and a put to the server (about 2 queries): a burst is
    // about 2 * 128, the capped rate about 2 * 16 a second (twice that if a late
    // tick puts two seconds' worth in one sample).
    assert!(
        busiest <= 4 * 2 * per_second,
        "{busiest} queries in the busiest second: republishes were not spread"
    );
    for d in [publisher, server] {
        d.shutdown().await.expect("shutdown");
    }
}
