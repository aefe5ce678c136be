//! dht-ipfs nodes on dht-sim's network through the generic drivers: the churn driver
//! draws 256-bit keys, looks them up on streams and judges each in IPFS's keyspace
//! (`SimOverlay::Key`), while nodes fail and join; one seed replays one run.

use std::time::Duration;

use dht_sim::churn::{self, Churn};
use dht_sim::ipfs;

type Ipfs = dht_ipfs::Node<dht_ipfs::MemStore>;

fn churn_run(seed: u64) -> churn::ChurnReport {
    let mut sim = ipfs::config(60, seed);
    sim.settle = Duration::from_secs(30);
    let c = Churn {
        sim,
        rate: 0.05,
        lookup_rate: 2.0,
        warmup: Duration::from_secs(10),
        duration: Duration::from_secs(30),
    };
    churn::run::<Ipfs>(&c)
}

#[test]
fn ipfs_lookups_find_the_closest_node_under_churn_and_replay() {
    let a = churn_run(9);
    println!(
        "60 ipfs nodes, seed 9: {} lookups, {:.3} failed, {:.2} hops, {} failures, {} joins",
        a.lookups, a.failed, a.hops_mean, a.failures, a.joins
    );
    assert_eq!(a.overlay, "ipfs");
    assert!(a.lookups >= 30, "seed 9: {a:?}");
    assert!(a.failed <= 0.1, "seed 9: {a:?}");
    assert!(a.hops_mean >= 1.0, "seed 9: {a:?}");
    assert_eq!(churn_run(9).event_hash, a.event_hash, "seed 9 replayed");
    assert_ne!(churn_run(10).event_hash, a.event_hash, "seeds 9 and 10");
}
