//! Chord at scale through the simulator: ring invariants after joins and failures,
//! lookups, keys surviving failures, replay. Every assertion names its seed.

use std::time::Duration;

use dht_chord::{Outcome, Request};
use dht_core::Id;
use dht_sim::chord::{ChordSim, Ring};
use dht_sim::{Experiment, SimConfig};

const LIMIT: Duration = Duration::from_secs(120);

/// Nodes whose successor, predecessor and successor list are not the ring's truth.
fn ring_errors(sim: &ChordSim) -> (usize, usize, usize) {
    let ring = Ring::of(sim);
    let r = sim.config().k;
    let (mut succ, mut pred, mut list) = (0, 0, 0);
    for i in sim.live() {
        let n = sim.node(i);
        let after = dht_chord::ring::add(&n.id(), &dht_chord::ring::pow2(0));
        let truth = ring.successors(&after, r);
        succ += usize::from(n.successor().id != truth[0].0);
        let got: Vec<Id> = n.successor_list().iter().map(|p| p.id).collect();
        let want: Vec<Id> = truth.iter().map(|t| t.0).filter(|x| *x != n.id()).collect();
        list += usize::from(got != want);
        let before = ring.successors(&n.id(), ring.len()).last().map(|t| t.0);
        pred += usize::from(n.predecessor().map(|p| p.id) != before);
    }
    (succ, pred, list)
}

fn config(nodes: usize, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(nodes, seed);
    // Arrivals take about 11 s at 1,000 nodes; stabilize then needs about a minute.
    cfg.settle = Duration::from_secs(90);
    cfg
}

/// Fingers that are not the true successor of their start, over all live nodes.
fn finger_errors(sim: &ChordSim) -> usize {
    let ring = Ring::of(sim);
    let mut wrong = 0;
    for i in sim.live() {
        let n = sim.node(i);
        for f in 0..dht_chord::ring::M {
            let truth = ring.successor(&dht_chord::ring::finger_start(&n.id(), f)).0;
            wrong += usize::from(n.finger(f).id != truth);
        }
    }
    wrong
}

#[test]
fn ring_is_correct_after_joins() {
    let seed = 21;
    let mut sim = ChordSim::new(config(1000, seed));
    sim.join_all(|_| {});
    assert_eq!(
        ring_errors(&sim),
        (0, 0, 0),
        "seed {seed}: (successor, predecessor, list) errors"
    );
    // A full fix_fingers pass is about log2 N lookups, one per 0.5 s on average.
    sim.run_for(Duration::from_secs(30));
    assert_eq!(finger_errors(&sim), 0, "seed {seed}: wrong fingers");
}

#[test]
fn ring_repairs_itself_after_failures() {
    let seed = 22;
    let mut sim = ChordSim::new(config(1000, seed));
    sim.join_all(|_| {});
    // Kill every fourth node: at most a few consecutive, fewer than r = 8.
    for i in (0..sim.len()).step_by(4) {
        sim.kill(i);
    }
    sim.run_for(Duration::from_secs(60));
    assert_eq!(
        ring_errors(&sim),
        (0, 0, 0),
        "seed {seed}: (successor, predecessor, list) errors"
    );
    sim.run_for(Duration::from_secs(30));
    assert_eq!(finger_errors(&sim), 0, "seed {seed}: wrong fingers");
}

#[test]
fn lookups_find_the_successor_in_1000_nodes() {
    let seed = 23;
    let r = dht_sim::chord::run(&Experiment::new(config(1000, seed), 500), |_| {});
    assert_eq!(r.lookups_unfinished, 0, "seed {seed}");
    assert_eq!(r.lookup_success, Some(1.0), "seed {seed}: {r:?}");
    assert!(
        (r.hops_mean - r.hops_ideal_mean).abs() <= 0.03 * r.hops_ideal_mean,
        "seed {seed}: hops {} vs ideal {}",
        r.hops_mean,
        r.hops_ideal_mean
    );
}

#[test]
fn keys_survive_failure_of_fewer_than_r_consecutive_successors() {
    let seed = 24;
    let mut sim = ChordSim::new(config(300, seed));
    sim.join_all(|_| {});
    let r = sim.config().k;
    let mut keys = Vec::new();
    for j in 0..20 {
        let v = dht_sim::item_value(seed, j);
        keys.push((Id::sha1(&v), v.clone()));
        let q = sim
            .start(j * 7, Request::Put { value: v })
            .expect("a short bencoded string");
        assert!(sim.run_until_idle(LIMIT), "seed {seed}: put {j}");
        let done = sim.take_done(j * 7, q).expect("finished");
        assert!(
            matches!(
                done.outcome,
                Outcome::Stored {
                    stored_at: Some(_),
                    ..
                }
            ),
            "seed {seed}: {done:?}"
        );
    }
    sim.run_for(Duration::from_secs(5));
    // For each key, kill its successor and the next r - 2 nodes: r - 1 consecutive nodes.
    let ring = Ring::of(&sim);
    let (key, value) = keys[3].clone();
    for (_, i) in ring.successors(&key, r - 1) {
        sim.kill(i as usize);
    }
    let src = sim.live()[0];
    let q = sim.start(src, Request::Get { target: key }).expect("a get");
    assert!(sim.run_until_idle(LIMIT), "seed {seed}");
    let got = sim.take_done(src, q).expect("finished").outcome;
    assert_eq!(
        got,
        Outcome::Value { value: Some(value) },
        "seed {seed}: before repair"
    );
    // And after the ring repaired itself, every key is still found.
    sim.run_for(Duration::from_secs(60));
    for (key, value) in keys {
        let q = sim.start(src, Request::Get { target: key }).expect("a get");
        assert!(sim.run_until_idle(LIMIT), "seed {seed}");
        let got = sim.take_done(src, q).expect("finished").outcome;
        assert_eq!(
            got,
            Outcome::Value { value: Some(value) },
            "seed {seed}: after repair"
        );
    }
}

#[test]
fn one_seed_replays_one_chord_run() {
    let run = |seed| {
        let mut cfg = SimConfig::new(200, seed);
        cfg.loss = 0.02;
        cfg.settle = Duration::from_secs(20);
        let mut exp = Experiment::new(cfg, 100);
        exp.fail = Some(0.2);
        dht_sim::chord::run(&exp, |_| {})
    };
    let (a, b, c) = (run(25), run(25), run(26));
    assert_eq!(a.event_hash, b.event_hash, "seed 25 replayed differently");
    assert_eq!(a.datagrams, b.datagrams);
    assert_ne!(a.event_hash, c.event_hash, "seeds 25 and 26 gave one run");
}
