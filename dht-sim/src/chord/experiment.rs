//! [`crate::run`]'s experiment on a Chord ring, judged by the global [`Ring`].

use std::time::Duration;

use dht_chord::{ChordNode, Outcome, Request};
use dht_core::{Id, QueryId};
use dht_store_mem::MemStore;

use super::ring::Ring;
use super::sim::ChordSim;
use crate::experiment::{
    issue, item_value, kill_fraction, rss_bytes, run_lookups, set_network, Experiment,
};
use crate::net::SimOverlay;
use crate::report::{mean, LookupFigures, Report};

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
    let issued = run_lookups(&mut sim, exp.lookups, exp, &live);

    let ring = Ring::of(&sim);
    let mut figures = LookupFigures::default();
    for &(src, q, ref target) in &issued {
        let Some(done) = sim.take_done(src, q) else {
            figures.unfinished();
            continue;
        };
        let truth = ring.successors(target, r);
        let got = <ChordNode<MemStore> as SimOverlay>::lookup_result(&done.outcome);
        let hits = truth.iter().filter(|(id, _)| got.contains(id)).count();
        let found = hits as f64 / truth.len().max(1) as f64;
        let success = got.first() == truth.first().map(|t| &t.0);
        let ideal = ring.ideal_hops(&sim.node(src).id(), target, r) as f64;
        figures.finished(found, success, &done.stats, ideal);
    }
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
        overlay: <ChordNode<MemStore> as SimOverlay>::NAME,
        nodes: cfg.nodes,
        lookups: exp.lookups,
        seed: cfg.seed,
        k: cfg.k,
        alpha: 1,
        latency_ms: cfg.latency_ms,
        loss: cfg.loss,
        fail: exp.fail,
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
    figures.fill(&mut report, rtt);

    if let Some(fail) = exp.fail {
        let (put_ok, get_ok, per_get) = fail_phase(&mut sim, exp, fail, &mut progress);
        report.put_success = Some(put_ok);
        report.get_success = Some(get_ok);
        report.messages_per_get = Some(per_get);
    }
    set_network(&mut report, &sim, wall);
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
    let kill = kill_fraction(sim, fail);
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
