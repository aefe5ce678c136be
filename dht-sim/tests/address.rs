//! The address plan decides which of dht-core's per-address defenses apply in a
//! simulation: on the public plan (the default) none of the simulated nodes is exempt
//! and the per-/24 routing-table cap binds the Sybils; on the private plan (a LAN)
//! everything is exempt. Every assertion names its seed.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use dht_core::Family;
use dht_sim::{AddressPlan, Experiment, Sim, SimConfig, SybilAttack, SybilPlacement};

const NODES: usize = 1000;

fn joined(seed: u64, plan: AddressPlan, sybils: usize) -> Sim {
    let mut cfg = SimConfig::new(NODES - sybils, seed);
    cfg.address_plan = plan;
    cfg.sybils = sybils;
    let mut sim = Sim::new(cfg);
    sim.join_all(|_| {});
    sim
}

#[test]
fn public_plan_exempts_nobody() {
    let seed = 41;
    let sim = joined(seed, SimConfig::new(1, seed).address_plan, 100);
    assert_eq!(sim.config().address_plan.name(), "public", "the default");
    let lan = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    for i in 0..sim.len() {
        let d = sim.node(i).config().defense;
        // Set as the runtime sets it on a public address: private sources are strangers.
        assert!(
            !d.local_listen && !d.is_exempt(lan),
            "seed {seed}: node {i}"
        );
        for j in (0..sim.len()).step_by(97) {
            assert!(
                !d.is_exempt(sim.addr(j).ip()),
                "seed {seed}: {}",
                sim.addr(j)
            );
        }
        for s in (0..sim.sybil_count()).step_by(7) {
            let ip = sim.sybil_addr(s).ip();
            assert!(!d.is_exempt(ip), "seed {seed}: Sybil {ip}");
        }
    }
    let private = joined(seed, AddressPlan::Private, 100);
    let d = private.node(0).config().defense;
    assert!(d.is_exempt(private.addr(1).ip()) && d.is_exempt(private.sybil_addr(0).ip()));
}

/// The most entries any honest table holds from one /24, among the Sybils' /24s.
fn most_sybils_per_prefix(sim: &Sim) -> usize {
    let mut worst = 0;
    for i in sim.live() {
        let mut per_prefix: BTreeMap<[u8; 3], usize> = BTreeMap::new();
        for e in sim.node(i).routing_table(Family::V4).entries() {
            if let (true, IpAddr::V4(ip)) = (sim.is_sybil_addr(&e.node.addr), e.node.addr.ip()) {
                let o = ip.octets();
                *per_prefix.entry([o[0], o[1], o[2]]).or_default() += 1;
            }
        }
        worst = worst.max(per_prefix.into_values().max().unwrap_or(0));
    }
    worst
}

/// 200 Sybils on 4 /24s: the public plan holds each honest table to
/// `max_per_prefix_in_table` entries per /24; the private plan (the defense off:
/// every address exempt, the Sybils on 172.16.0.0/24) lets far more in.
#[test]
fn per_prefix_cap_binds_sybils_on_the_public_plan_only() {
    let seed = 42;
    let sybils = NODES / 5;
    let public = joined(
        seed,
        AddressPlan::Public {
            sybil_prefixes: Some(4),
        },
        sybils,
    );
    let cap = public.node(0).config().defense.max_per_prefix_in_table;
    let prefixes: std::collections::BTreeSet<[u8; 3]> = (0..public.sybil_count())
        .map(|s| match public.sybil_addr(s).ip() {
            IpAddr::V4(ip) => [ip.octets()[0], ip.octets()[1], ip.octets()[2]],
            IpAddr::V6(_) => unreachable!("the plan is IPv4"),
        })
        .collect();
    assert_eq!(prefixes.len(), 4, "seed {seed}");
    let worst_public = most_sybils_per_prefix(&public);
    assert!(
        worst_public <= cap,
        "seed {seed}: a table holds {worst_public} Sybils of one /24 (cap {cap})"
    );
    let worst_private = most_sybils_per_prefix(&joined(seed, AddressPlan::Private, sybils));
    assert!(
        worst_private > cap,
        "seed {seed}: private plan: at most {worst_private} Sybils of one /24 in a table"
    );
}

/// One seed, one run on the public plan too (its addresses come from the seed).
#[test]
fn public_plan_replays() {
    let seed = 43;
    let run = || {
        let mut cfg = SimConfig::new(300, seed);
        cfg.address_plan = AddressPlan::Public {
            sybil_prefixes: Some(8),
        };
        let mut exp = Experiment::new(cfg, 50);
        exp.sybil = Some(SybilAttack {
            fraction: 0.2,
            placement: SybilPlacement::Random,
        });
        dht_sim::run(&exp, |_| {})
    };
    let (a, b) = (run(), run());
    assert_eq!(a.event_hash, b.event_hash, "seed {seed} twice");
    assert_eq!(a.address_plan, "public");
    assert_eq!(a.sybil_prefixes, Some(8));
}
