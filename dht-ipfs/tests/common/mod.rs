//! What the network tests share: dht-sim's simulated network ([`IpfsSim`]) built
//! node by node, and a request run to its end on it. The network (virtual time,
//! streams, identify both ways on each new connection, a dial to a dead node refused
//! at once) is dht-sim's; nothing here schedules.
#![allow(dead_code)]

use std::time::Duration;

use dht_core::{Overlay, QueryDone};
use dht_ipfs::{Config, Outcome, Request};
use dht_sim::ipfs::{self, IpfsSim};

/// `n` server nodes made at once, none joined yet, each `configure`d.
pub fn network(seed: u64, n: usize, configure: impl Fn(&mut Config)) -> IpfsSim {
    let mut net = IpfsSim::new(ipfs::config(n, seed));
    for _ in 0..n {
        net.add_node_with(|cfg, peer, seed, now, wall| {
            ipfs::node(cfg, peer, seed, now, wall, &configure)
        });
    }
    net
}

/// Starts `request` at node `i` without waiting for it.
pub fn start(net: &mut IpfsSim, i: usize, request: Request) {
    net.command_untracked(i, |n, now| n.start(now, request).expect("request accepted"));
}

/// Starts `request` at node `i` and runs until it ends (at most `limit`).
pub fn run_request(
    net: &mut IpfsSim,
    i: usize,
    request: Request,
    limit: Duration,
) -> QueryDone<Outcome> {
    let id = net.start(i, request).expect("request accepted");
    assert!(
        net.run_until_idle(limit),
        "request {id:?} at node {i} did not end within {limit:?}"
    );
    net.take_done(i, id).expect("done")
}
