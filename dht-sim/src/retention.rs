//! Items under churn: the share of BEP 44 items a Mainline network still serves after
//! a stretch of churn in which nobody republishes them, with Kademlia's handover
//! (`dht_core::Config::handover`) and without. Without it an item lives
//! as long as one of the nodes that stored it at the put; with it, the item follows its
//! closest nodes as they change.
//!
//! After the join ([`crate::Network::join_all`]), `items` immutable items are put from
//! random nodes ([`crate::item_value`]); then nodes fail and new nodes join as two
//! independent Poisson processes of rate R per second each for `duration` (no traffic
//! meanwhile but the nodes' own: joins, refreshes, pings, handovers); then every item is
//! got from a random live node. A newcomer joins through 4 random live nodes, as in
//! [`crate::churn`].

use std::time::Duration;

use dht_core::Request;

use crate::churn::exp_delay;
use crate::experiment::{get_items, put_items};
use crate::net::SimConfig;
use crate::rng::below;
use crate::{Experiment, Sim};

/// One retention run.
#[derive(Clone, Debug)]
pub struct Retention {
    /// The network (its `nodes` join first).
    pub sim: SimConfig,
    /// Items put before the churn.
    pub items: usize,
    /// Failures per second, and as many joins per second.
    pub rate: f64,
    /// Virtual time of churn between the puts and the gets.
    pub duration: Duration,
}

/// What a retention run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RetentionReport {
    /// Nodes at the start.
    pub nodes: usize,
    /// `SimConfig::handover`.
    pub handover: bool,
    /// Failures (and joins) per second.
    pub rate: f64,
    /// Seconds of churn.
    pub duration_s: f64,
    /// Items put.
    pub items: usize,
    /// Fraction of the puts that some node acknowledged.
    pub put_ok: f64,
    /// Fraction of the items a get found (the exact value) after the churn.
    pub found: f64,
    /// Handovers acknowledged, counted by the nodes alive at the end.
    pub handovers: u64,
    /// Nodes failed during the churn.
    pub failures: usize,
    /// Nodes that joined during the churn.
    pub joins: usize,
    /// Live nodes at the end.
    pub live_at_end: usize,
    /// Fingerprint of every delivered datagram.
    pub event_hash: String,
    /// Real seconds the run took.
    pub wall_seconds: f64,
}

/// Runs `r` on Kademlia (dht-core) nodes.
pub fn run(r: &Retention) -> RetentionReport {
    let wall = std::time::Instant::now();
    let mut net = Sim::new(r.sim.clone());
    net.join_all(|_| {});
    let exp = Experiment::new(r.sim.clone(), r.items);
    let put_ok = put_items(&mut net, r.items, &exp, &mut |_| {});

    let start = net.now();
    let end = start + r.duration;
    let mut next_fail = start + exp_delay(net.rng(), r.rate);
    let mut next_join = start + exp_delay(net.rng(), r.rate);
    let (mut failures, mut joins) = (0, 0);
    loop {
        let due = next_fail.min(next_join);
        if due >= end {
            break;
        }
        net.run_until(due);
        let live = net.live();
        if due == next_fail {
            next_fail = due + exp_delay(net.rng(), r.rate);
            if live.len() > 8 {
                let i = live[below(net.rng(), live.len())];
                net.kill(i);
                failures += 1;
            }
        } else {
            next_join = due + exp_delay(net.rng(), r.rate);
            let picks: Vec<usize> = (0..4).map(|_| live[below(net.rng(), live.len())]).collect();
            let seeds = picks.into_iter().map(|i| net.addr(i)).collect();
            let j = net.add_node();
            net.command_untracked(j, |n, now| n.start(now, Request::Bootstrap { seeds }));
            joins += 1;
        }
    }
    net.run_until(end);

    let live = net.live();
    let gets = get_items(&mut net, r.items, &exp, &live);
    let live = net.live();
    RetentionReport {
        nodes: r.sim.nodes,
        handover: r.sim.handover,
        rate: r.rate,
        duration_s: r.duration.as_secs_f64(),
        items: r.items,
        put_ok,
        found: gets.success,
        handovers: live.iter().map(|&i| net.node(i).stats().handovers).sum(),
        failures,
        joins,
        live_at_end: live.len(),
        event_hash: net.event_hash(),
        wall_seconds: wall.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 120 nodes living 10 minutes on average, 30 minutes of churn: a node that stored
    /// an item at the put survives it with probability e^-3 (5 %), so an item survives
    /// without handover only if one of its 8 holders did (about a third). Handover
    /// keeps nearly all of them.
    #[test]
    fn handover_keeps_items_that_churn_would_lose() {
        let run_with = |handover: bool| {
            let mut sim = SimConfig::new(120, 5);
            sim.handover = handover;
            run(&Retention {
                sim,
                items: 40,
                rate: 0.2,
                duration: Duration::from_secs(1800),
            })
        };
        let (with, without) = (run_with(true), run_with(false));
        assert!(
            with.put_ok > 0.95 && without.put_ok > 0.95,
            "{with:?} {without:?}"
        );
        assert!(
            with.handovers > 0 && without.handovers == 0,
            "{with:?} {without:?}"
        );
        assert!(
            with.found >= 0.9 && without.found <= 0.6,
            "with handover {with:?}\nwithout {without:?}"
        );
    }
}
