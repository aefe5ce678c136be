//! Lookups under continuous churn, for both overlays: the experiment of the Chord
//! paper's "Lookups During Stabilization" (SIGCOMM 2001, Section 6.5 and Figure 12).
//!
//! After the usual join ([`crate::Network::join_all`]),
//! nodes fail and new nodes join as two independent Poisson processes of the same rate
//! R per second (so the network keeps its size on average), while lookups of random
//! targets from random live nodes arrive as a third Poisson process. A failure is a
//! kill (no goodbye); a newcomer joins through 4 random live nodes, by the overlay's
//! own join. A lookup succeeds when, at the moment it ends, its answer holds the node
//! responsible for the target among the nodes then alive: for Chord the key's
//! successor first in the answer, for Kademlia the closest live node other than the
//! source anywhere in the answer (as `lookup_success` of [`crate::run`]). Lookups that
//! do not end within the phase limit count as failed.

use std::time::Duration;

use dht_chord::ChordNode;
use dht_core::kernel::Key as _;
use dht_core::{Node, QueryId};
use dht_store_mem::MemStore;
use rand_chacha::rand_core::RngCore as _;
use rand_chacha::ChaCha8Rng;

use crate::net::{Network, SimConfig, SimOverlay};
use crate::report::{mean, percentile};
use crate::rng::below;

/// One churn experiment.
#[derive(Clone, Debug)]
pub struct Churn {
    /// The network (its `nodes` join first, then churn begins).
    pub sim: SimConfig,
    /// Failures per second, and as many joins per second.
    pub rate: f64,
    /// Lookups per second.
    pub lookup_rate: f64,
    /// Virtual time of churn before the measured lookups begin (lets the overlay
    /// reach its steady state under churn).
    pub warmup: Duration,
    /// Virtual time during which lookups are issued and judged.
    pub duration: Duration,
}

/// What a churn experiment measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChurnReport {
    /// `kademlia`, `chord` or `ipfs`.
    pub overlay: &'static str,
    /// Nodes at the start.
    pub nodes: usize,
    /// Failures (and joins) per second.
    pub rate: f64,
    /// Lookups issued.
    pub lookups: usize,
    /// Fraction of lookups whose answer lacked the responsible live node.
    pub failed: f64,
    /// Median latency of the lookups that ended (virtual ms).
    pub latency_ms_p50: f64,
    /// 99th percentile of that latency (virtual ms).
    pub latency_ms_p99: f64,
    /// Mean hops of the lookups that ended.
    pub hops_mean: f64,
    /// Requests that timed out, per lookup.
    pub timeouts_per_lookup: f64,
    /// Nodes failed and joined during the run.
    pub failures: usize,
    /// Nodes that joined during the run.
    pub joins: usize,
    /// Live nodes at the end.
    pub live_at_end: usize,
    /// Fingerprint of every delivered datagram.
    pub event_hash: String,
    /// Real seconds the run took.
    pub wall_seconds: f64,
}

/// An exponential delay of mean 1 / `rate` seconds.
pub(crate) fn exp_delay(rng: &mut ChaCha8Rng, rate: f64) -> Duration {
    let u = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    Duration::from_secs_f64(-u.ln() / rate)
}

/// How often the driver collects finished lookups.
const SLICE: Duration = Duration::from_millis(100);

/// Most time a lookup may take before it counts as failed.
const LOOKUP_LIMIT: Duration = Duration::from_secs(60);

fn drive<N: SimOverlay>(net: &mut Network<N>, c: &Churn) -> ChurnReport {
    let start = net.now();
    let measure_from = start + c.warmup;
    let end = measure_from + c.duration;
    let mut next_fail = start + exp_delay(net.rng(), c.rate);
    let mut next_join = start + exp_delay(net.rng(), c.rate);
    let mut next_lookup = measure_from + exp_delay(net.rng(), c.lookup_rate);
    let (mut failures, mut joins) = (0, 0);
    let mut pending: Vec<(usize, QueryId, N::Key, Duration)> = Vec::new();
    let (mut ok, mut issued) = (0usize, 0usize);
    let (mut latency, mut hops, mut timeouts) = (Vec::new(), Vec::new(), Vec::new());
    let mut t = start;
    while t < end + LOOKUP_LIMIT && (t < end || !pending.is_empty()) {
        t += SLICE;
        // Events due in this slice, in time order.
        loop {
            let due = next_fail.min(next_join).min(next_lookup);
            if due > t {
                break;
            }
            net.run_until(due);
            let live = net.live();
            if due == next_fail {
                next_fail = if due < end {
                    due + exp_delay(net.rng(), c.rate)
                } else {
                    Duration::MAX
                };
                if live.len() > 8 {
                    let i = live[below(net.rng(), live.len())];
                    net.kill(i);
                    failures += 1;
                }
            } else if due == next_join {
                next_join = if due < end {
                    due + exp_delay(net.rng(), c.rate)
                } else {
                    Duration::MAX
                };
                let picks: Vec<usize> =
                    (0..4).map(|_| live[below(net.rng(), live.len())]).collect();
                let via = picks.into_iter().map(|i| net.addr(i)).collect();
                let j = net.add_node();
                // A join with members to join through is always accepted by a fresh
                // node; were it refused, the newcomer would stay out, which the report
                // shows as fewer live nodes.
                net.command_untracked(j, |n, now| n.start(now, N::join_request(via)));
                joins += 1;
            } else {
                next_lookup = due + exp_delay(net.rng(), c.lookup_rate);
                if next_lookup >= end {
                    next_lookup = Duration::MAX;
                }
                let src = live[below(net.rng(), live.len())];
                let target = N::Key::random(net.rng());
                // A lookup is refused only by a node with no address family, which a
                // simulated node always has; were it refused, it never ends and
                // counts as failed.
                let q = net
                    .start(src, N::lookup_request(target))
                    .unwrap_or(QueryId(u64::MAX));
                pending.push((src, q, target, due));
                issued += 1;
            }
        }
        net.run_until(t);
        let now = net.now();
        let mut still = Vec::with_capacity(pending.len());
        for (src, q, target, at) in pending.drain(..) {
            match net.take_done(src, q) {
                Some(d) => {
                    let got = N::lookup_result(&d.outcome);
                    ok += usize::from(N::judge_lookup(net, src, &target, &got));
                    latency.push(d.stats.duration.as_secs_f64() * 1000.0);
                    hops.push(f64::from(d.stats.hops));
                    timeouts.push(f64::from(d.stats.timeouts));
                }
                // A lookup whose source died never ends: it failed, as the user's did.
                None if now < at + LOOKUP_LIMIT && net.live().contains(&src) => {
                    still.push((src, q, target, at))
                }
                None => {}
            }
        }
        pending = still;
    }
    latency.sort_unstable_by(f64::total_cmp);
    ChurnReport {
        nodes: c.sim.nodes,
        rate: c.rate,
        lookups: issued,
        failed: 1.0 - ok as f64 / issued.max(1) as f64,
        latency_ms_p50: percentile(&latency, 50.0),
        latency_ms_p99: percentile(&latency, 99.0),
        hops_mean: mean(hops.into_iter()),
        timeouts_per_lookup: mean(timeouts.into_iter()),
        failures,
        joins,
        live_at_end: net.live().len(),
        event_hash: net.event_hash(),
        ..ChurnReport::default()
    }
}

/// Runs `c` on the overlay `N`.
pub fn run<N: SimOverlay>(c: &Churn) -> ChurnReport {
    let wall = std::time::Instant::now();
    let mut net = Network::<N>::new(c.sim.clone());
    net.join_all(|_| {});
    let mut r = drive(&mut net, c);
    r.overlay = N::NAME;
    r.wall_seconds = wall.elapsed().as_secs_f64();
    r
}

/// Runs `c` on Chord nodes.
pub fn run_chord(c: &Churn) -> ChurnReport {
    run::<ChordNode<MemStore>>(c)
}

/// Runs `c` on Kademlia (dht-core) nodes.
pub fn run_kademlia(c: &Churn) -> ChurnReport {
    run::<Node<MemStore>>(c)
}
