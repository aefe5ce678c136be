//! 200 `dht-ipfs` nodes in one process on dht-sim's shared simulated network
//! ([`dht_sim::ipfs::IpfsSim`]: virtual time, streams, identify both ways on each new
//! connection, a dial to a dead node refused at once): lookups return the true 20
//! closest for every key tried, `/pk` records put by one node are got by another,
//! providers announced are found, and all of it still holds once 20 % of the nodes are
//! killed after the puts. One seed replays one run exactly.

mod common;

use std::time::Duration;

use common::run_request;
use dht_core::kernel::Contact;
use dht_ipfs::{key_of, Outcome, PeerId, PeerInfo, Request, PK_PREFIX};
use dht_sim::ipfs::{self, IpfsSim};
use libp2p_identity::Keypair;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const NODES: u32 = 200;

/// Every node bootstraps through node 0, one every 100 ms, then the network settles
/// for 60 s ([`dht_sim::SimOverlay::join_all`] of dht-ipfs nodes).
fn joined(seed: u64, n: u32) -> IpfsSim {
    let mut net = IpfsSim::new(ipfs::config(n as usize, seed));
    net.join_all(|_| {});
    net
}

/// The 20 live nodes closest to `key`, other than `querier`.
fn true_closest(net: &IpfsSim, key: &[u8], querier: usize) -> Vec<PeerId> {
    let target = key_of(key);
    let mut all: Vec<PeerInfo> = (0..net.len())
        .filter(|&i| i != querier && net.is_alive(i))
        .map(|i| net.addr(i))
        .collect();
    all.sort_by_key(|p| p.key().distance(&target));
    all.into_iter().take(20).map(|p| p.id().clone()).collect()
}

/// Looks up `rounds` random keys from random live nodes; asserts each finds the true
/// 20 closest. Returns (mean hops, mean requests).
fn check_lookups(net: &mut IpfsSim, rng: &mut ChaCha8Rng, rounds: usize) -> (f64, f64) {
    let (mut hops, mut requests) = (0u64, 0u64);
    for round in 0..rounds {
        let mut key = vec![0u8; 1 + (rng.next_u32() % 40) as usize];
        rng.fill_bytes(&mut key);
        let querier = loop {
            let i = (rng.next_u32() % NODES) as usize;
            if net.is_alive(i) {
                break i;
            }
        };
        let done = run_request(
            net,
            querier,
            Request::FindNode { key: key.clone() },
            Duration::from_secs(120),
        );
        let Outcome::Peers { closest } = done.outcome else {
            panic!("FindNode ends with Peers");
        };
        let found: Vec<PeerId> = closest.iter().map(|p| p.id().clone()).collect();
        assert_eq!(
            found,
            true_closest(net, &key, querier),
            "round {round}: node {querier}, key {key:02x?}"
        );
        hops += u64::from(done.stats.hops);
        requests += u64::from(done.stats.requests);
    }
    (hops as f64 / rounds as f64, requests as f64 / rounds as f64)
}

/// How many of `rounds` lookups find the true 20 closest.
fn count_exact_lookups(net: &mut IpfsSim, rng: &mut ChaCha8Rng, rounds: usize) -> usize {
    let mut exact = 0;
    for _ in 0..rounds {
        let mut key = vec![0u8; 16];
        rng.fill_bytes(&mut key);
        let querier = loop {
            let i = (rng.next_u32() % NODES) as usize;
            if net.is_alive(i) {
                break i;
            }
        };
        let done = run_request(
            net,
            querier,
            Request::FindNode { key: key.clone() },
            Duration::from_secs(120),
        );
        if let Outcome::Peers { closest } = done.outcome {
            let found: Vec<PeerId> = closest.iter().map(|p| p.id().clone()).collect();
            exact += usize::from(found == true_closest(net, &key, querier));
        }
    }
    exact
}

fn pk_record(seed: u8) -> (Vec<u8>, Vec<u8>) {
    let kp = Keypair::ed25519_from_bytes([seed; 32]).expect("ed25519 key");
    let public = kp.public();
    (
        [PK_PREFIX, &public.to_peer_id().to_bytes()].concat(),
        public.encode_protobuf(),
    )
}

fn provider_key(i: u32) -> Vec<u8> {
    let mut k = vec![0x12, 0x20];
    k.extend(key_of(&i.to_be_bytes()).0);
    k
}

fn get_record(net: &mut IpfsSim, at: usize, key: &[u8]) -> Option<Vec<u8>> {
    let done = run_request(
        net,
        at,
        Request::GetRecord { key: key.to_vec() },
        Duration::from_secs(120),
    );
    match done.outcome {
        Outcome::Record { record } => record.map(|r| r.value),
        other => panic!("GetRecord ends with Record, not {other:?}"),
    }
}

fn get_providers(net: &mut IpfsSim, at: usize, key: &[u8]) -> Vec<PeerInfo> {
    let done = run_request(
        net,
        at,
        Request::GetProviders { key: key.to_vec() },
        Duration::from_secs(120),
    );
    match done.outcome {
        Outcome::Providers { providers, .. } => providers,
        other => panic!("GetProviders ends with Providers, not {other:?}"),
    }
}

#[test]
fn two_hundred_nodes_find_the_true_closest_records_and_providers_through_20_percent_failures() {
    let seed = 21;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut net = joined(seed, NODES);
    let tables: usize = (0..NODES as usize).map(|i| net.node(i).table().len()).sum();
    let (hops, requests) = check_lookups(&mut net, &mut rng, 40);
    println!(
        "200 nodes joined: mean table {:.1}; 40 lookups: {hops:.2} hops, {requests:.1} requests",
        tables as f64 / f64::from(NODES)
    );

    // /pk records put by one node, got by another.
    let records: Vec<(Vec<u8>, Vec<u8>)> = (1..=10).map(pk_record).collect();
    for (n, (key, value)) in records.iter().enumerate() {
        let done = run_request(
            &mut net,
            n * 7,
            Request::PutRecord {
                key: key.clone(),
                value: value.clone(),
            },
            Duration::from_secs(120),
        );
        let Outcome::Stored { acks, sent, .. } = done.outcome else {
            panic!("PutRecord ends with Stored");
        };
        assert_eq!(
            (acks, sent),
            (20, 20),
            "record {n}: every one of the 20 closest stored it"
        );
    }
    for n in 0..10u32 {
        let done = run_request(
            &mut net,
            (n * 11 + 3) as usize,
            Request::StartProviding {
                key: provider_key(n),
            },
            Duration::from_secs(120),
        );
        assert!(matches!(done.outcome, Outcome::Provided { sent: 20, .. }));
    }
    net.run_for(Duration::from_secs(1));
    for (n, (key, value)) in records.iter().enumerate() {
        let getter = (n * 13 + 101) % NODES as usize;
        assert_eq!(get_record(&mut net, getter, key).as_ref(), Some(value));
    }
    for n in 0..10u32 {
        let provider = net.addr((n * 11 + 3) as usize);
        let found = get_providers(&mut net, ((n * 17 + 50) % NODES) as usize, &provider_key(n));
        assert!(
            found.iter().any(|p| p == &provider),
            "provider {n} found with its address: {found:?}"
        );
    }

    // 20 % of the nodes die after the puts (never those that published or provided:
    // their republishing is not what this checks).
    let mut killed = 0;
    while killed < NODES / 5 {
        let i = (rng.next_u32() % NODES) as usize;
        if i % 7 == 0 || i % 11 == 3 || !net.is_alive(i) {
            continue;
        }
        net.kill(i);
        killed += 1;
    }
    let live: Vec<usize> = (0..NODES as usize).filter(|&i| net.is_alive(i)).collect();
    let mut found_records = 0;
    for (n, (key, value)) in records.iter().enumerate() {
        let getter = live[(n * 31 + 5) % live.len()];
        if get_record(&mut net, getter, key).as_ref() == Some(value) {
            found_records += 1;
        }
    }
    let mut found_providers = 0;
    for n in 0..10u32 {
        let provider = net.addr((n * 11 + 3) as usize);
        let getter = live[(n as usize * 37 + 9) % live.len()];
        if get_providers(&mut net, getter, &provider_key(n)).contains(&provider) {
            found_providers += 1;
        }
    }
    // Lookups through tables that still list the dead: each reply names 20 peers, some
    // dead, so the live ones just past them may go unnamed until tables heal.
    let exact = count_exact_lookups(&mut net, &mut rng, 40);
    // Liveness checks and refreshes evict the dead within the questionable delay.
    net.run_for(Duration::from_secs(40 * 60));
    let (hops, requests) = check_lookups(&mut net, &mut rng, 40);
    let stats = net.net_stats();
    println!("after killing 40: {exact}/40 lookups exact at once;");
    println!(
        "after killing 40 and 40 min: {found_records}/10 records, {found_providers}/10 providers; \
         40 lookups: {hops:.2} hops, {requests:.1} requests; {} messages in all \
         ({} requests, {} replies, {} streams failed) over {:.0} s of virtual time",
        stats.stream_requests + stats.stream_replies + stats.streams_failed,
        stats.stream_requests,
        stats.stream_replies,
        stats.streams_failed,
        net.now().as_secs_f64()
    );
    assert_eq!(found_records, 10);
    assert_eq!(found_providers, 10);
}

/// A short run (joins, lookups, a put and a get) as one hash of every message.
fn run(seed: u64) -> (String, Vec<Vec<PeerId>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut net = joined(seed, 40);
    let mut results = Vec::new();
    for _ in 0..5 {
        let mut key = [0u8; 8];
        rng.fill_bytes(&mut key);
        let done = run_request(
            &mut net,
            (rng.next_u32() % 40) as usize,
            Request::FindNode { key: key.to_vec() },
            Duration::from_secs(60),
        );
        if let Outcome::Peers { closest } = done.outcome {
            results.push(closest.iter().map(|p| p.id().clone()).collect());
        }
    }
    let (key, value) = pk_record(1);
    run_request(
        &mut net,
        3,
        Request::PutRecord {
            key: key.clone(),
            value,
        },
        Duration::from_secs(60),
    );
    assert!(get_record(&mut net, 30, &key).is_some());
    (net.event_hash(), results)
}

#[test]
fn one_seed_replays_one_run() {
    let a = run(5);
    let b = run(5);
    assert_eq!(a, b, "same seed, same messages and results");
    let c = run(6);
    assert_ne!(a.0, c.0, "another seed, another run");
}
