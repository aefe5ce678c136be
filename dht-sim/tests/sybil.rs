//! Sybil attacks through the simulator's library API: a fifth of a 1,000-node network
//! played by adversaries (see `Sim::add_sybil`), and what S/Kademlia's disjoint paths
//! (`Config::disjoint_paths`) buy the gets. Every assertion names its seed;
//! `cargo run --release -p dht-sim -- --nodes 1000 --lookups 300 --sybil 0.2
//! --disjoint D --seed S` replays a run.

use dht_sim::{EclipseBudget, Experiment, Report, SimConfig, SybilAttack, SybilPlacement};

const NODES: usize = 1000;
const ITEMS: usize = 300;

fn attacked(seed: u64, disjoint: usize, placement: SybilPlacement) -> Report {
    let mut cfg = SimConfig::new(NODES, seed);
    cfg.disjoint_paths = disjoint;
    let mut exp = Experiment::new(cfg, ITEMS);
    exp.sybil = Some(SybilAttack {
        fraction: 0.2,
        placement,
    });
    dht_sim::run(&exp, |_| {})
}

/// 20% Sybils at random ids (S/Kademlia's setting). With d = 4 the gets find 99% of
/// the items that honest nodes hold, where the plain lookup loses several percent.
/// (Puts take the same d paths, so the two runs store differently.)
#[test]
fn four_disjoint_paths_find_what_honest_nodes_hold() {
    let seed = 31;
    let plain = attacked(seed, 1, SybilPlacement::Random);
    let four = attacked(seed, 4, SybilPlacement::Random);
    for r in [&plain, &four] {
        assert_eq!(r.sybil_nodes, NODES / 5, "seed {seed}: {r:?}");
        assert_eq!(r.datagrams_oversize, 0, "seed {seed}");
        // The Sybils are as well known as honest nodes: about their share of entries.
        let share = r.sybil_in_tables.unwrap_or(0.0);
        assert!(
            (0.1..0.3).contains(&share),
            "seed {seed}: Sybils hold {share} of the table entries"
        );
    }
    let stored4 = four.get_success_stored.unwrap_or(0.0);
    let stored1 = plain.get_success_stored.unwrap_or(0.0);
    assert!(
        stored4 >= 0.99,
        "seed {seed}: d = 4 found {stored4} of the items honest nodes hold"
    );
    assert!(
        stored4 > stored1,
        "seed {seed}: d = 4 ({stored4}) no better than d = 1 ({stored1})"
    );
    let (g4, g1) = (
        four.get_success.unwrap_or(0.0),
        plain.get_success.unwrap_or(0.0),
    );
    assert!(g4 > g1, "seed {seed}: get_success d = 4 {g4}, d = 1 {g1}");
}

/// The aim as stated: 99% of all gets succeed with d = 4 at 20% random
/// Sybils. (It failed while puts used one path: a put whose lookup ran into Sybils
/// wrote only to them.)
#[test]
fn aim_every_item_found_with_four_paths() {
    let seed = 31;
    let r = attacked(seed, 4, SybilPlacement::Random);
    let got = r.get_success.unwrap_or(0.0);
    assert!(got >= 0.99, "seed {seed}: get_success {got}: {r:?}");
}

#[test]
fn one_seed_one_attack() {
    let a = attacked(32, 4, SybilPlacement::Adjacent);
    let b = attacked(32, 4, SybilPlacement::Adjacent);
    assert_eq!(a.event_hash, b.event_hash, "seed 32 twice");
    assert_eq!(a.get_success, b.get_success, "seed 32 twice");
    assert_eq!(a.sybil_nodes, NODES / 5, "seed 32");
    assert_eq!(a.sybil_placement, Some("adjacent"));
}

/// A targeted eclipse (`--eclipse N`): after the puts, N attackers per item at ids
/// closer to its target than any honest node, on top of the honest nodes. The
/// scenario runs, places N per key, gets the attackers into honest tables, and
/// reports the gets' figures.
#[test]
fn an_eclipse_runs_and_reports() {
    let (seed, items, per_key) = (34, 20, 8);
    let mut exp = Experiment::new(SimConfig::new(300, seed), items);
    exp.sybil = Some(SybilAttack {
        fraction: 0.0,
        placement: SybilPlacement::Eclipse { per_key },
    });
    assert_eq!(exp.attackers(), per_key * items);
    let r = dht_sim::run(&exp, |_| {});
    assert_eq!(r.eclipse, Some(per_key), "seed {seed}");
    assert_eq!(r.sybil, None, "seed {seed}: no fraction for an eclipse");
    assert_eq!(r.sybil_placement, Some("eclipse"));
    assert_eq!(r.sybil_nodes, per_key * items, "seed {seed}: {r:?}");
    assert_eq!(
        r.nodes, 300,
        "seed {seed}: attackers come on top of the honest nodes"
    );
    let in_tables = r.sybil_in_tables.unwrap_or(0.0);
    assert!(
        in_tables > 0.0,
        "seed {seed}: no attacker in any honest table"
    );
    for (name, v) in [
        ("put_success", r.put_success),
        ("stored_honest", r.stored_honest),
        ("get_success", r.get_success),
        ("get_success_stored", r.get_success_stored),
    ] {
        let v = v.unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&v), "seed {seed}: {name} {v}");
    }
    assert!(r.get_latency_rtt_p50.is_some(), "seed {seed}: {r:?}");
    let known = r.attackers_known_by.unwrap_or(0.0);
    assert!(known > 0.0 && known <= 1.0, "seed {seed}: {r:?}");
    let met = r.gets_meeting_attackers.unwrap_or(-1.0);
    assert!((0.0..=1.0).contains(&met), "seed {seed}: {r:?}");
    assert_eq!(r.eclipse_before_puts, Some(false));
    assert_eq!(r.eclipse_budget, None);
}

/// The same with BEP 42 on, every key's attackers on one /16, arriving before the
/// puts: it runs and says so in its report.
#[test]
fn an_eclipse_from_one_slash_16_with_bep42_before_the_puts_runs_and_reports() {
    let (seed, items, per_key) = (35, 10, 8);
    let mut sim = SimConfig::new(300, seed);
    sim.bep42 = true;
    let mut exp = Experiment::new(sim, items);
    exp.sybil = Some(SybilAttack {
        fraction: 0.0,
        placement: SybilPlacement::Eclipse { per_key },
    });
    exp.eclipse_budget = Some(EclipseBudget::Slash16);
    exp.eclipse_before_puts = true;
    let r = dht_sim::run(&exp, |_| {});
    assert!(r.bep42, "seed {seed}");
    assert_eq!(r.eclipse_budget.as_deref(), Some("16"), "seed {seed}");
    assert_eq!(r.eclipse_before_puts, Some(true), "seed {seed}");
    assert_eq!(r.sybil_nodes, per_key * items, "seed {seed}: {r:?}");
    assert!(r.sybil_in_tables.unwrap_or(0.0) > 0.0, "seed {seed}: {r:?}");
    for v in [r.stored_honest, r.get_success, r.gets_meeting_attackers] {
        let v = v.unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&v), "seed {seed}: {r:?}");
    }
}
