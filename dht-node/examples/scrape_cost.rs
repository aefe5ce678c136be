//! The cost of one `/metrics` scrape on a node with a full routing table, printed
//! (a measurement, not a test): the node snapshot taken on the node task
//! ([`Dht::metrics`]), the exposition rendered ([`Exporter::render`]), and both, as
//! the `/metrics` handler runs them (HTTP itself excluded).
//!
//! The table is filled as on the real network: 16 nodes in each of the first 20
//! buckets of the measured node (ids sharing 0 to 19 bits with its id), each pinged
//! once, so 8 a bucket are in the table and the rest wait in replacement caches.
//!
//! `cargo run --release -p dht-node --example scrape_cost`

use std::time::{Duration, Instant};

use dht_node::dht_core::{Id, IdPolicy};
use dht_node::exposition::{Exporter, Format};
use dht_node::Dht;

const DEPTHS: usize = 20;
const PER_DEPTH: usize = 16;
const ROUNDS: usize = 2000;

fn quantiles(mut d: Vec<Duration>) -> String {
    d.sort();
    let q = |p: f64| d[((d.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    format!(
        "p50 {:.0} us, p90 {:.0} us, p99 {:.0} us",
        q(0.5),
        q(0.9),
        q(0.99)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = rand_core::OsRng;
    let own = Id::random(&mut rng);
    let node = Dht::builder()
        .listen("127.0.0.1:0".parse()?)
        .id_policy(IdPolicy::Fixed(own))
        .spawn()?;
    let mut others = Vec::new();
    for depth in 0..DEPTHS {
        for _ in 0..PER_DEPTH {
            let id = own.random_in_bucket(depth, &mut rng);
            others.push(
                Dht::builder()
                    .listen("127.0.0.1:0".parse()?)
                    .id_policy(IdPolicy::Fixed(id))
                    .spawn()?,
            );
        }
    }
    let pings = others.iter().map(|o| node.ping(o.local_addrs()[0]));
    let answered = futures_util::future::join_all(pings)
        .await
        .iter()
        .filter(|r| r.is_ok())
        .count();
    let m = node.metrics().await?;
    println!(
        "table: {} good, {} questionable, {} in replacement caches, {} buckets ({} of {} pings answered)",
        m.v4.good,
        m.v4.questionable,
        m.v4.replacements,
        m.v4.buckets.len(),
        answered,
        others.len()
    );

    let exporter = Exporter::install()?;
    let text = exporter.render(&m, Format::Prometheus);
    println!(
        "exposition: {} bytes, {} lines",
        text.len(),
        text.lines().count()
    );
    // Warm up, then time each part and the whole, interleaved round by round.
    for _ in 0..100 {
        let m = node.metrics().await?;
        let _ = exporter.render(&m, Format::Prometheus);
    }
    let (mut snap, mut render, mut whole, mut om) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let m = node.metrics().await?;
        snap.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(exporter.render(&m, Format::Prometheus));
        render.push(t.elapsed());
        let t = Instant::now();
        let m = node.metrics().await?;
        std::hint::black_box(exporter.render(&m, Format::Prometheus));
        whole.push(t.elapsed());
        let t = Instant::now();
        let m = node.metrics().await?;
        std::hint::black_box(exporter.render(&m, Format::OpenMetrics));
        om.push(t.elapsed());
    }
    println!("snapshot (Dht::metrics):     {}", quantiles(snap));
    println!("render (Prometheus 0.0.4):   {}", quantiles(render));
    println!("scrape (both, 0.0.4):        {}", quantiles(whole));
    println!("scrape (both, OpenMetrics):  {}", quantiles(om));
    for o in others {
        o.shutdown().await?;
    }
    node.shutdown().await?;
    Ok(())
}
