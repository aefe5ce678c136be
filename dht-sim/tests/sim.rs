//! The engine at scale: 1,000-node networks through the simulator's library API.
//! Every assertion names its seed; `cargo run --release -p dht-sim -- --seed S ...`
//! (or the same test) replays the run exactly.

use std::net::SocketAddr;
use std::time::Duration;

use dht_core::MutableItem;
use dht_core::{Id, Outcome, Request};
use dht_sim::{Experiment, Sim, SimConfig};
use ed25519_dalek::SigningKey;

const NODES: usize = 1000;
const LIMIT: Duration = Duration::from_secs(120);

fn joined(seed: u64) -> Sim {
    let mut sim = Sim::new(SimConfig::new(NODES, seed));
    sim.join_all(|_| {});
    sim
}

#[test]
fn lookups_find_the_k_closest_without_loss() {
    let seed = 11;
    let r = dht_sim::run(&Experiment::new(SimConfig::new(NODES, seed), 500), |_| {});
    assert_eq!(r.lookups_unfinished, 0, "seed {seed}: {r:?}");
    assert_eq!(r.datagrams_oversize, 0, "seed {seed}");
    assert!(
        r.found_k_closest >= 0.99,
        "seed {seed}: found_k_closest {}",
        r.found_k_closest
    );
    assert!(
        r.hops_mean >= r.hops_ideal_mean * 0.8,
        "seed {seed}: hops {} vs ideal {}",
        r.hops_mean,
        r.hops_ideal_mean
    );
}

/// Runs a command on `from` and waits for it.
fn call(
    sim: &mut Sim,
    from: usize,
    f: impl FnOnce(
        &mut dht_core::Node<dht_store_mem::MemStore>,
        std::time::Instant,
    ) -> dht_core::QueryId,
) -> Outcome {
    let q = sim.command(from, f);
    assert!(
        sim.run_until_idle(LIMIT),
        "seed {}: command on node {from} did not finish",
        sim.config().seed
    );
    sim.take_done(from, q)
        .expect("finished commands are kept until taken")
        .outcome
}

fn stored_count(o: &Outcome) -> usize {
    match o {
        Outcome::Stored { stored_at, .. } => stored_at.len(),
        other => panic!("expected Stored, got {other:?}"),
    }
}

#[test]
fn items_and_peers_travel_across_the_network() {
    let seed = 12;
    let mut sim = joined(seed);
    let k = sim.config().k;

    // Immutable: put on one node, get from others.
    let value = b"24:hello from the simulator".to_vec();
    let target = dht_core::immutable_target(&value);
    let v = value.clone();
    let o = call(&mut sim, 17, move |n, now| {
        n.start(now, Request::PutImmutable { value: v })
            .expect("request")
    });
    assert_eq!(
        stored_count(&o),
        k,
        "seed {seed}: immutable put reached the K closest"
    );
    for from in [400, 999] {
        let o = call(&mut sim, from, |n, now| {
            n.start(now, Request::GetImmutable { target })
                .expect("request")
        });
        assert_eq!(
            o,
            Outcome::Immutable {
                value: Some(value.clone())
            },
            "seed {seed}: get from {from}"
        );
    }

    // Mutable: put seq 1, then seq 2 with CAS, and read the newest from elsewhere.
    let key = SigningKey::from_bytes(&[9; 32]);
    let pk = key.verifying_key().to_bytes();
    let salt = b"sim".to_vec();
    let item1 = MutableItem::sign(&key, &salt, 1, b"5:first");
    let o = call(&mut sim, 23, move |n, now| {
        n.start(
            now,
            Request::PutMutable {
                item: item1,
                cas: None,
            },
        )
        .expect("request")
    });
    assert_eq!(stored_count(&o), k, "seed {seed}: mutable put seq 1: {o:?}");
    let s = salt.clone();
    match call(&mut sim, 800, move |n, now| {
        n.start(
            now,
            Request::GetMutable {
                key: pk,
                salt: s.to_vec(),
                min_seq: None,
            },
        )
        .expect("request")
    }) {
        Outcome::Mutable { item: Some(it) } => assert_eq!(
            (it.seq, it.value.as_slice()),
            (1, &b"5:first"[..]),
            "seed {seed}"
        ),
        o => panic!("seed {seed}: mutable get seq 1: {o:?}"),
    }
    let item2 = MutableItem::sign(&key, &salt, 2, b"6:second");
    let o = call(&mut sim, 500, move |n, now| {
        n.start(
            now,
            Request::PutMutable {
                item: item2,
                cas: Some(1),
            },
        )
        .expect("request")
    });
    assert_eq!(
        stored_count(&o),
        k,
        "seed {seed}: mutable put seq 2 with cas 1"
    );
    let s = salt.clone();
    match call(&mut sim, 3, move |n, now| {
        n.start(
            now,
            Request::GetMutable {
                key: pk,
                salt: s.to_vec(),
                min_seq: None,
            },
        )
        .expect("request")
    }) {
        Outcome::Mutable { item: Some(it) } => {
            assert_eq!(
                (it.seq, it.value.as_slice()),
                (2, &b"6:second"[..]),
                "seed {seed}"
            );
            assert!(it.verify(), "seed {seed}: a signed item comes back signed");
        }
        o => panic!("seed {seed}: mutable get seq 2: {o:?}"),
    }

    // announce_peer from two nodes, get_peers from a third.
    let info_hash = Id::sha1(b"a torrent in the simulator");
    let o = call(&mut sim, 42, |n, now| {
        n.start(
            now,
            Request::AnnouncePeer {
                info_hash,
                port: Some(51413),
                seed: false,
            },
        )
        .expect("request")
    });
    assert_eq!(
        stored_count(&o),
        k,
        "seed {seed}: announce reached the K closest"
    );
    let o = call(&mut sim, 43, |n, now| {
        n.start(
            now,
            Request::AnnouncePeer {
                info_hash,
                port: None,
                seed: false,
            },
        )
        .expect("request")
    });
    assert!(
        stored_count(&o) >= k - 1,
        "seed {seed}: implied_port announce"
    );
    match call(&mut sim, 777, |n, now| {
        n.start(now, Request::GetPeers { info_hash })
            .expect("request")
    }) {
        Outcome::Peers { peers, .. } => {
            let want = [SocketAddr::new(sim.addr(42).ip(), 51413), sim.addr(43)];
            for w in want {
                assert!(
                    peers.contains(&w),
                    "seed {seed}: {w} missing from {peers:?}"
                );
            }
        }
        o => panic!("seed {seed}: get_peers: {o:?}"),
    }
}

#[test]
fn gets_survive_thirty_percent_failure() {
    let seed = 13;
    let mut exp = Experiment::new(SimConfig::new(NODES, seed), 300);
    exp.fail = Some(0.3);
    let r = dht_sim::run(&exp, |_| {});
    assert_eq!(
        r.put_success,
        Some(1.0),
        "seed {seed}: every put acknowledged"
    );
    let got = r.get_success.unwrap_or(0.0);
    assert!(
        got >= 0.99,
        "seed {seed}: get_success {got} after 30% of the nodes failed"
    );
}

#[test]
fn one_seed_one_run_two_seeds_two_runs() {
    let exp = |seed| {
        let mut e = Experiment::new(SimConfig::new(NODES, seed), 100);
        e.sim.loss = 0.01;
        e
    };
    let a = dht_sim::run(&exp(21), |_| {});
    let b = dht_sim::run(&exp(21), |_| {});
    let c = dht_sim::run(&exp(22), |_| {});
    assert_eq!(a.event_hash, b.event_hash, "seed 21 twice");
    assert_eq!(a.datagrams, b.datagrams, "seed 21 twice");
    assert_eq!(
        (a.found_k_closest, a.hops_mean, a.latency_ms_p99),
        (b.found_k_closest, b.hops_mean, b.latency_ms_p99)
    );
    assert_ne!(a.event_hash, c.event_hash, "seeds 21 and 22");
    assert_eq!(a.event_hash.len(), 40);
}

/// `found_k_closest` counts a node only when the simulator saw it answer on the wire
/// (`Sim::answered`); the engine's own list of the closest responders must agree with
/// the wire, node for node.
#[test]
fn every_listed_responder_answered_on_the_wire() {
    let seed = 13;
    let mut sim = joined(seed);
    let k = sim.config().k;
    let index: std::collections::BTreeMap<Id, usize> =
        (0..sim.len()).map(|i| (sim.node(i).id(), i)).collect();
    sim.watch_answers(true);
    let mut asked = Vec::new();
    for j in 0..50 {
        let src = (j * 19 + 5) % NODES;
        let target = Id::sha1(format!("target {j}").as_bytes());
        let q = sim.command(src, |n, now| {
            n.start(now, Request::FindNode { target }).expect("request")
        });
        asked.push((src, target, q));
        sim.run_for(Duration::from_millis(5));
    }
    assert!(sim.run_until_idle(LIMIT), "seed {seed}: lookups unfinished");
    sim.watch_answers(false);
    for (src, target, q) in asked {
        let Some(Outcome::Nodes { closest }) = sim.take_done(src, q).map(|d| d.outcome) else {
            panic!("seed {seed}: lookup from {src} gave no nodes");
        };
        assert_eq!(closest.len(), k, "seed {seed}: lookup from {src}");
        for n in closest {
            let j = index[&n.id];
            assert!(
                sim.answered(src, &target, j),
                "seed {seed}: node {j} listed by the lookup from {src} never answered it"
            );
        }
    }
}

/// The get phase (`Experiment::gets`): every item found, and its latency in round trips.
#[test]
fn gets_report_their_latency_in_round_trips() {
    let seed = 14;
    let mut exp = Experiment::new(SimConfig::new(NODES, seed), 100);
    exp.gets = 200;
    let r = dht_sim::run(&exp, |_| {});
    assert!(r.found_k_closest >= 0.99, "seed {seed}: {r:?}");
    assert!(r.get_success.unwrap_or(0.0) >= 0.99, "seed {seed}: {r:?}");
    let (p50, p99) = (
        r.get_latency_rtt_p50.unwrap_or(0.0),
        r.get_latency_rtt_p99.unwrap_or(0.0),
    );
    // The shortest round trip the latency model allows is 0.2 of the mean; without
    // loss no get waits for a timeout (2 s, 20 mean round trips).
    assert!(
        (0.2..=p99).contains(&p50) && p99 < 20.0,
        "seed {seed}: get latency p50 {p50}, p99 {p99} RTT"
    );
}

/// The command line measures what a node runs with: without `--alpha`, dht-core's
/// default alpha for Mainline nodes (it passed 3 whatever dht-core's default was)
/// and dht-ipfs's own for `--overlay ipfs`.
#[test]
fn without_alpha_the_command_line_runs_each_overlays_default() {
    let alpha_of = |args: &[&str]| -> u64 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dht-sim"))
            .args(["--nodes", "40", "--lookups", "5", "--seed", "3"])
            .args(["--settle", "5", "--json"])
            .args(args)
            .output()
            .expect("dht-sim runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "dht-sim {args:?}: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        let report: serde_json::Value = serde_json::from_str(last).expect("a JSON report");
        report["alpha"].as_u64().expect("alpha in the report")
    };
    let core = dht_core::Config::default().alpha as u64;
    assert_eq!(alpha_of(&[]), core, "Mainline, no --alpha");
    assert_eq!(alpha_of(&["--alpha", "3"]), 3, "Mainline, --alpha 3");
    let ipfs = dht_sim::ipfs::config(40, 3).alpha as u64;
    assert_eq!(alpha_of(&["--overlay", "ipfs"]), ipfs, "ipfs, no --alpha");
}
