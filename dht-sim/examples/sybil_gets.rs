//! Where gets fail under a Sybil attack: puts items from honest nodes into a network
//! with random-id Sybils, gets each from a random honest node, and for every item
//! reports, from the simulator's global view and the wire (`Sim::answered`), how many
//! honest nodes hold it, whether the get's lookup heard from any of them, and how
//! many of the true K closest honest nodes the put and the get reached.
//!
//! `cargo run --release -p dht-sim --example sybil_gets -- NODES SEED D K ITEMS [PREFIXES]`
//! (defaults 10000 1 4 8 1000; PREFIXES: the /24s the Sybils share, default one each).

use std::time::Duration;

use dht_core::{Family, Id, Outcome, Request, Store as _};
use dht_sim::{below, item_value, AddressPlan, GlobalView, Sim, SimConfig};

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .map(|a| a.parse().expect("arguments are numbers"))
        .unwrap_or(default)
}

fn main() {
    let (nodes, seed, d, k, items) = (
        arg(1, 10_000),
        arg(2, 1),
        arg(3, 4),
        arg(4, 8),
        arg(5, 1000),
    );
    let prefixes = std::env::args()
        .nth(6)
        .map(|a| a.parse().expect("a number"));
    let sybils = nodes / 5;
    let mut cfg = SimConfig::new(nodes - sybils, seed as u64);
    cfg.k = k;
    cfg.disjoint_paths = d;
    cfg.sybils = sybils;
    cfg.address_plan = AddressPlan::Public {
        sybil_prefixes: prefixes,
    };
    let mut sim = Sim::new(cfg);
    sim.join_all(|_| {});
    let honest = sim.live();
    let targets: Vec<Id> = (0..items)
        .map(|j| dht_core::immutable_target(&item_value(seed as u64, j)))
        .collect();
    let view = GlobalView::new(&sim, k);

    // The share of Sybils in an honest node's whole table.
    let share = |sim: &Sim, i: usize| {
        let t = sim.node(i).routing_table(Family::V4);
        let sybils = t
            .entries()
            .filter(|e| sim.is_sybil_addr(&e.node.addr))
            .count();
        sybils as f64 / t.len().max(1) as f64
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let all_shares: Vec<f64> = honest.iter().map(|&i| share(&sim, i)).collect();
    let mut sorted_shares = all_shares.clone();
    sorted_shares.sort_by(f64::total_cmp);

    // Puts, with the wire watched.
    sim.watch_answers(true);
    let mut puts = Vec::new();
    for j in 0..items {
        let src = honest[below(sim.rng(), honest.len())];
        let value = item_value(seed as u64, j);
        let q = sim.command(src, |n, now| {
            n.start(now, Request::PutImmutable { value })
                .expect("request")
        });
        puts.push((src, q));
        sim.run_for(Duration::from_millis(5));
    }
    sim.run_until_idle(Duration::from_secs(600));
    let mut put_reached = Vec::new();
    let mut acks_honest = Vec::new();
    for (j, &(src, q)) in puts.iter().enumerate() {
        let truth = view.closest(&targets[j], k);
        put_reached.push(
            truth
                .iter()
                .filter(|&&t| sim.answered(src, &targets[j], t as usize))
                .count(),
        );
        acks_honest.push(match sim.take_done(src, q).map(|d| d.outcome) {
            Some(Outcome::Stored { stored_at, .. }) => {
                stored_at.iter().filter(|a| !sim.is_sybil_addr(a)).count()
            }
            _ => 0,
        });
    }
    let holders: Vec<Vec<usize>> = targets
        .iter()
        .map(|t| {
            honest
                .iter()
                .copied()
                .filter(|&i| sim.node(i).store().get_item(t).is_ok_and(|x| x.is_some()))
                .collect()
        })
        .collect();

    // Gets, with the wire watched; what each source's table offers toward the target.
    sim.watch_answers(true);
    let mut gets = Vec::new();
    let mut first_sybils = Vec::new();
    for t in &targets {
        let src = honest[below(sim.rng(), honest.len())];
        let now = sim.now_instant();
        first_sybils.push(
            sim.node(src)
                .routing_table(Family::V4)
                .closest(t, k, now)
                .iter()
                .filter(|n| sim.is_sybil_addr(&n.addr))
                .count(),
        );
        let target = *t;
        let q = sim.command(src, |n, now| {
            n.start(now, Request::GetImmutable { target })
                .expect("request")
        });
        gets.push((src, q));
        sim.run_for(Duration::from_millis(5));
    }
    sim.run_until_idle(Duration::from_secs(600));

    let mut lost_at_put = 0;
    let mut failed_stored = 0;
    let mut failed_heard_holder = 0;
    let mut hist_reached_failed = vec![0usize; k + 1];
    let mut hist_reached_ok = vec![0usize; k + 1];
    let mut hist_put_reached_lost = vec![0usize; k + 1];
    let mut hist_put_reached_all = vec![0usize; k + 1];
    let mut hist_holders = vec![0usize; k + 2];
    let mut first_failed = vec![0usize; k + 1];
    let mut first_ok = vec![0usize; k + 1];
    let mut holders_failed = vec![0usize; k + 2];
    let (mut share_failed, mut share_ok, mut share_lost) = (Vec::new(), Vec::new(), Vec::new());
    for (j, &(src, q)) in gets.iter().enumerate() {
        let t = targets[j];
        let ok = matches!(
            sim.take_done(src, q).map(|d| d.outcome),
            Some(Outcome::Immutable { value: Some(v) }) if v == item_value(seed as u64, j)
        );
        let truth = view.closest(&t, k);
        let reached = truth
            .iter()
            .filter(|&&h| sim.answered(src, &t, h as usize))
            .count();
        hist_put_reached_all[put_reached[j]] += 1;
        hist_holders[holders[j].len().min(k + 1)] += 1;
        if holders[j].is_empty() {
            lost_at_put += 1;
            share_lost.push(share(&sim, puts[j].0));
            hist_put_reached_lost[put_reached[j]] += 1;
            continue;
        }
        if ok {
            hist_reached_ok[reached] += 1;
            first_ok[first_sybils[j]] += 1;
            share_ok.push(share(&sim, src));
        } else {
            failed_stored += 1;
            first_failed[first_sybils[j]] += 1;
            share_failed.push(share(&sim, src));
            holders_failed[holders[j].len().min(k + 1)] += 1;
            hist_reached_failed[reached] += 1;
            if holders[j].iter().any(|&h| sim.answered(src, &t, h)) {
                failed_heard_holder += 1;
            }
        }
    }
    let mean_acks = acks_honest.iter().sum::<usize>() as f64 / items.max(1) as f64;
    println!("nodes {nodes} (Sybils {sybils}), seed {seed}, d {d}, k {k}, items {items}, Sybil /24s {prefixes:?}");
    println!("items no honest node holds (lost at the put): {lost_at_put}");
    println!("  honest acknowledgements per put, mean: {mean_acks:.2}");
    println!("  honest holders per item (0..k, k+1 = more): {hist_holders:?}");
    println!("  of the true {k} closest honest nodes, how many answered the put's lookup:");
    println!("    all puts:  {hist_put_reached_all:?}");
    println!("    lost puts: {hist_put_reached_lost:?}");
    println!("gets of held items that failed: {failed_stored}; of those, heard a holder answer: {failed_heard_holder}");
    println!("  of the true {k} closest honest nodes, how many answered the get's lookup:");
    println!("    failed gets:     {hist_reached_failed:?}");
    println!("    successful gets: {hist_reached_ok:?}");
    println!("  honest holders of the items whose get failed: {holders_failed:?}");
    println!("  Sybils among the {k} contacts closest to the target in the source's table:");
    println!("    failed gets:     {first_failed:?}");
    println!("    successful gets: {first_ok:?}");
    let pct = |p: f64| sorted_shares[((sorted_shares.len() - 1) as f64 * p) as usize];
    println!(
        "Sybil share of honest tables: mean {:.3}, p50 {:.3}, p90 {:.3}, p99 {:.3}, max {:.3}",
        mean(&all_shares),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  tables of the sources of failed gets: mean {:.3}; of successful gets {:.3}; of lost puts {:.3}",
        mean(&share_failed),
        mean(&share_ok),
        mean(&share_lost)
    );
}
