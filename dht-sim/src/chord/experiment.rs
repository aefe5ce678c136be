//! [`crate::run`]'s experiment on a Chord ring, judged by the global [`Ring`].

use std::time::Duration;

use dht_chord::{Outcome, Request};
use dht_core::{Id, QueryId};

use super::ring::Ring;
use super::sim::ChordSim;
use crate::experiment::{issue, item_value, rss_bytes, Experiment};
use crate::report::{mean, percentile, Report};
use crate::rng::below;

/// Runs `exp` on Chord nodes: the same join, lookups and failure phase as
/// [`crate::run`], the same [`Report`]. Sybil attacks are Kademlia-only and ignored.
pub fn run(exp: &Experiment, mut progress: impl FnMut(&str)) -> Report {
    let wall = std::time::Instant::now();
    let cfg = exp.sim.clone();
    let r = cfg.k;
    let mut sim = ChordSim::new(cfg.clone());
    let rss_before = rss_bytes().0;
    progress(&format!(
        "joining {} Chord nodes (seed {})",
        cfg.nodes, cfg.seed
    ));
    sim.join_all(|n| progress(&format!("  {n} nodes created")));
    let join_seconds = sim.now().as_secs_f64();
    let bytes_per_node = rss_bytes().0.saturating_sub(rss_before) as f64 / cfg.nodes.max(1) as f64;
    progress(&format!(
        "joined in {join_seconds:.1} virtual s, {:.1} wall s; running {} lookups",
        wall.elapsed().as_secs_f64(),
        exp.lookups
    ));

    let live = sim.live();
    let mut targets = Vec::with_capacity(exp.lookups);
    let issued = issue(
        &mut sim,
        exp.lookups,
        exp.command_interval,
        &live,
        |sim, _, src| {
            let target = Id::random(sim.rng());
            targets.push(target);
            sim.start(src, Request::FindSuccessor { target })
                .expect("only a put of a bad value is refused")
        },
    );
    sim.run_until_idle(exp.phase_limit);

    let ring = Ring::of(&sim);
    let (mut found, mut success, mut hops, mut ideal) = (vec![], vec![], vec![], vec![]);
    let (mut messages, mut timeouts, mut latency) = (vec![], vec![], vec![]);
    let mut unfinished = 0;
    for (&(src, q), target) in issued.iter().zip(&targets) {
        let Some(done) = sim.take_done(src, q) else {
            unfinished += 1;
            found.push(0.0);
            success.push(0.0);
            continue;
        };
        let truth = ring.successors(target, r);
        let got: Vec<Id> = match &done.outcome {
            Outcome::Successors { successors } => successors.iter().map(|p| p.id).collect(),
            _ => Vec::new(),
        };
        let hits = truth.iter().filter(|(id, _)| got.contains(id)).count();
        found.push(hits as f64 / truth.len().max(1) as f64);
        success.push(f64::from(u8::from(
            got.first() == truth.first().map(|t| &t.0),
        )));
        hops.push(done.stats.hops);
        ideal.push(ring.ideal_hops(&sim.node(src).id(), target, r) as f64);
        messages.push((done.stats.requests + done.stats.responses) as f64);
        timeouts.push(done.stats.timeouts as f64);
        latency.push(done.stats.duration.as_secs_f64() * 1000.0);
    }
    hops.sort_unstable();
    latency.sort_unstable_by(f64::total_cmp);
    let rtt = 2.0 * cfg.latency_ms;
    let live = sim.live();
    let entries = |i: usize| {
        let n = sim.node(i);
        let mut ids: Vec<Id> = (0..dht_chord::ring::M).map(|f| n.finger(f).id).collect();
        ids.extend(n.successor_list().iter().map(|p| p.id));
        ids.extend(n.predecessor().map(|p| p.id));
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|x| *x != n.id());
        ids.len() as f64
    };
    // Perfect tables for a sample: 160 binary searches per node add up at 100,000 nodes.
    let sample: Vec<usize> = live
        .iter()
        .copied()
        .step_by((live.len() / 500).max(1))
        .collect();
    let mut report = Report {
        overlay: "chord",
        nodes: cfg.nodes,
        lookups: exp.lookups,
        seed: cfg.seed,
        k: cfg.k,
        alpha: 1,
        latency_ms: cfg.latency_ms,
        loss: cfg.loss,
        fail: exp.fail,
        found_k_closest: mean(found.iter().copied()),
        exact_k_closest: mean(found.iter().map(|&f| if f >= 1.0 { 1.0 } else { 0.0 })),
        lookup_success: Some(mean(success.iter().copied())),
        hops_mean: mean(hops.iter().map(|&h| h as f64)),
        hops_p1: percentile(&hops, 1.0),
        hops_p50: percentile(&hops, 50.0),
        hops_p99: percentile(&hops, 99.0),
        hops_ideal_mean: mean(ideal.iter().copied()),
        messages_per_lookup: mean(messages.iter().copied()),
        timeouts_per_lookup: mean(timeouts.iter().copied()),
        latency_ms_p50: percentile(&latency, 50.0),
        latency_ms_p99: percentile(&latency, 99.0),
        latency_rtt_p50: percentile(&latency, 50.0) / rtt,
        latency_rtt_p99: percentile(&latency, 99.0) / rtt,
        lookups_unfinished: unfinished,
        table_entries_mean: mean(live.iter().map(|&i| entries(i))),
        ideal_table_entries_mean: mean(
            sample
                .iter()
                .map(|&i| ring.perfect_entries(&sim.node(i).id(), r) as f64),
        ),
        bytes_per_node,
        join_seconds,
        disjoint: 1,
        // ChordSim's nodes sit at 10.0.0.1 + i; dht-chord has no per-address defenses.
        address_plan: "private",
        ..Report::default()
    };

    if let Some(fail) = exp.fail {
        let (put_ok, get_ok, per_get) = fail_phase(&mut sim, exp, fail, &mut progress);
        report.put_success = Some(put_ok);
        report.get_success = Some(get_ok);
        report.messages_per_get = Some(per_get);
    }
    let net = sim.net_stats();
    report.sim_seconds = sim.now().as_secs_f64();
    report.datagrams = net.delivered;
    report.datagrams_lost = net.lost;
    report.datagrams_oversize = net.oversize;
    report.event_hash = sim.event_hash();
    report.peak_rss_bytes = rss_bytes().1;
    report.wall_seconds = wall.elapsed().as_secs_f64();
    report
}

/// Puts `exp.lookups` items, kills a fraction `fail` of the nodes at once, and gets
/// every item from a survivor before the ring repairs itself (the gets start at
/// once). Returns (put success, get success, messages per get).
pub(crate) fn fail_phase(
    sim: &mut ChordSim,
    exp: &Experiment,
    fail: f64,
    progress: &mut impl FnMut(&str),
) -> (f64, f64, f64) {
    let n_items = exp.lookups;
    let seed = sim.config().seed;
    progress(&format!("putting {n_items} items"));
    let live = sim.live();
    let puts = issue(sim, n_items, exp.command_interval, &live, |sim, j, src| {
        let v = item_value(seed, j);
        // item_value is always a short bencoded string.
        sim.start(src, Request::Put { value: v })
            .unwrap_or(QueryId(u64::MAX))
    });
    sim.run_until_idle(exp.phase_limit);
    let put_ok = puts
        .iter()
        .filter(|&&(src, q)| {
            matches!(
                sim.take_done(src, q).map(|d| d.outcome),
                Some(Outcome::Stored {
                    stored_at: Some(_),
                    ..
                })
            )
        })
        .count();
    // Replicas go out with the put and at the next stabilize; let one period pass.
    sim.run_for(Duration::from_secs(2));
    let mut live = sim.live();
    let kill = ((live.len() as f64) * fail).floor() as usize;
    for j in 0..kill.min(live.len()) {
        let r = j + below(sim.rng(), live.len() - j);
        live.swap(j, r);
        sim.kill(live[j]);
    }
    let survivors = sim.live();
    progress(&format!(
        "killed {kill}; getting every item from {} survivors",
        survivors.len()
    ));
    let gets = issue(
        sim,
        n_items,
        exp.command_interval,
        &survivors,
        |sim, j, src| {
            let target = Id::sha1(&item_value(seed, j));
            sim.start(src, Request::Get { target })
                .expect("only a put of a bad value is refused")
        },
    );
    sim.run_until_idle(exp.phase_limit);
    let (mut ok, mut messages) = (0, Vec::new());
    for (j, &(src, q)) in gets.iter().enumerate() {
        let Some(done) = sim.take_done(src, q) else {
            continue;
        };
        messages.push((done.stats.requests + done.stats.responses) as f64);
        if let Outcome::Value { value: Some(v) } = done.outcome {
            ok += usize::from(v == item_value(seed, j));
        }
    }
    let n = n_items.max(1) as f64;
    (put_ok as f64 / n, ok as f64 / n, mean(messages.into_iter()))
}
