//! dht-ipfs nodes on dht-sim's network: `dht-sim --overlay ipfs`'s experiment at
//! 1,000 nodes (lookups return the true 20 closest; records and providers put before
//! 20 % of the nodes fail are found after), its replay (one seed, one event hash), and
//! the generic churn driver, which draws 256-bit keys, looks them up on streams and
//! judges each in IPFS's keyspace (`SimOverlay::Key`) while nodes fail and join.

use std::time::Duration;

use dht_sim::churn::{self, Churn};
use dht_sim::{ipfs, Experiment, Report};

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

/// `dht-sim --overlay ipfs --nodes N --lookups L --seed S --fail F`, as the binary runs it
/// (50 ms mean one-way latency, k = 20, alpha = 3, one arrival every 100 ms).
fn experiment(nodes: usize, lookups: usize, seed: u64, fail: Option<f64>) -> Report {
    let mut sim = ipfs::config(nodes, seed);
    sim.latency_ms = 50.0;
    let mut exp = Experiment::new(sim, lookups);
    exp.fail = fail;
    ipfs::run(&exp, |_| {})
}

#[test]
fn a_thousand_nodes_return_the_true_20_closest_and_keep_records_and_providers() {
    let seed = 2;
    let r = experiment(1000, 200, seed, Some(0.2));
    println!("{}", r.to_table());
    assert_eq!((r.overlay, r.k, r.alpha), ("ipfs", 20, 3));
    assert_eq!(r.lookups_unfinished, 0, "seed {seed}: {r:?}");
    assert!(
        r.exact_k_closest >= 0.99,
        "seed {seed}: lookups returning the true 20 closest: {}",
        r.exact_k_closest
    );
    assert!(r.found_k_closest >= 0.99, "seed {seed}: {r:?}");
    assert_eq!(r.put_success, Some(1.0), "seed {seed}");
    assert!(r.get_success >= Some(0.99), "seed {seed}: {r:?}");
    assert!(r.providers_success >= Some(0.99), "seed {seed}: {r:?}");
    // Handshakes are counted apart: with them a lookup takes longer.
    let (p50, dial_p50) = (r.latency_rtt_p50, r.latency_dial_rtt_p50);
    assert!(dial_p50.is_some_and(|d| d > p50), "seed {seed}: {r:?}");
}

#[test]
fn one_seed_gives_one_event_hash() {
    let run = |seed| experiment(150, 30, seed, Some(0.2));
    let (a, b) = (run(7), run(7));
    assert_eq!(a.event_hash, b.event_hash, "seed 7 replayed");
    // Every simulated figure replays too; the measured ones (time, memory) need not.
    let simulated = |r: &Report| Report {
        wall_seconds: 0.0,
        bytes_per_node: 0.0,
        peak_rss_bytes: 0,
        ..r.clone()
    };
    assert_eq!(simulated(&a), simulated(&b), "seed 7 replayed");
    assert_ne!(run(8).event_hash, a.event_hash, "seeds 7 and 8");
}
