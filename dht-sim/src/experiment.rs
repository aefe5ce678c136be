//! The experiment the binary runs: join, lookups, and optionally puts, failure and gets.

use std::time::Duration;

use dht_core::kernel::Key as _;
use dht_core::Id;
use dht_core::{Family, Node, Outcome, QueryId, Request, Store as _};
use dht_store_mem::MemStore;
use rand_chacha::rand_core::RngCore as _;

use crate::address::AddressPlan;
use crate::global::GlobalView;
use crate::net::{Network, SimConfig, SimOverlay};
use crate::report::{mean, Gets, LookupFigures, Report};
use crate::rng::below;
use crate::sim::Sim;

/// Where the Sybils of a [`SybilAttack`] sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SybilPlacement {
    /// Random ids; they join with the honest nodes from the start (S/Kademlia's setting).
    Random,
    /// Ids next to the items' targets (sharing their first 128 bits), inserted after
    /// the items were put: the Sybils are dealt round-robin over the targets.
    Adjacent,
    /// A targeted eclipse (issue 26): `per_key` attackers at ids closer to each item's
    /// target than any honest node (as [`SybilPlacement::Adjacent`]), inserted after
    /// the items were put, on top of the honest nodes; like every Sybil they answer
    /// with each other only and store nothing. [`SybilAttack::fraction`] is unused.
    Eclipse {
        /// Attackers per item target.
        per_key: usize,
    },
}

impl SybilPlacement {
    /// The name used on the command line and in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            SybilPlacement::Random => "random",
            SybilPlacement::Adjacent => "adjacent",
            SybilPlacement::Eclipse { .. } => "eclipse",
        }
    }
}

/// A fraction of the network played by adversarial nodes (see [`Sim::add_sybil`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SybilAttack {
    /// Fraction of the `SimConfig::nodes` nodes that are Sybils (rounded to the nearest).
    pub fraction: f64,
    /// Where they sit.
    pub placement: SybilPlacement,
}

impl SybilAttack {
    /// Sybils among `nodes` nodes.
    pub fn count(&self, nodes: usize) -> usize {
        ((nodes as f64 * self.fraction).round() as usize).min(nodes.saturating_sub(1))
    }
}

/// One experiment: a network and what is done on it.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// The network.
    pub sim: SimConfig,
    /// Lookups to run (and, with `fail`, items to put and get).
    pub lookups: usize,
    /// Fraction of the nodes killed at once before the gets; `None` skips that phase.
    pub fail: Option<f64>,
    /// Without `fail` or `sybil`: immutable items put after the lookups and then got,
    /// each from a random node, for the gets' figures (0: no get phase). `fail` and
    /// `sybil` have get phases of their own, of `lookups` items.
    pub gets: usize,
    /// With an attack, `sim.nodes` counts honest nodes and Sybils together (an eclipse's
    /// attackers come on top: [`Experiment::attackers`]); the
    /// find_node phase and `fail` are skipped, and the run puts `lookups` items from
    /// honest nodes and gets each from a random honest node instead.
    pub sybil: Option<SybilAttack>,
    /// Time between two commands issued by the driver.
    pub command_interval: Duration,
    /// Most virtual time a phase may take before its unfinished commands are counted as failed.
    pub phase_limit: Duration,
}

impl Experiment {
    /// Sybils the run creates: a fraction of `sim.nodes`, or for an eclipse
    /// `per_key` per item (`lookups` items).
    pub fn attackers(&self) -> usize {
        match self.sybil {
            Some(SybilAttack {
                placement: SybilPlacement::Eclipse { per_key },
                ..
            }) => per_key.saturating_mul(self.lookups),
            Some(a) => a.count(self.sim.nodes),
            None => 0,
        }
    }

    /// `lookups` lookups on the network `sim`, no failure phase, one command every 5 ms.
    pub fn new(sim: SimConfig, lookups: usize) -> Experiment {
        Experiment {
            sim,
            lookups,
            fail: None,
            gets: 0,
            sybil: None,
            command_interval: Duration::from_millis(5),
            phase_limit: Duration::from_secs(600),
        }
    }
}

/// Resident set size and its peak, in bytes, from /proc/self/status (0 where unavailable).
pub fn rss_bytes() -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Issues one command per `interval` from a random node of `sources`, with `make`
/// choosing what; returns (source, query) for each.
pub(crate) fn issue<N: SimOverlay>(
    sim: &mut Network<N>,
    count: usize,
    interval: Duration,
    sources: &[usize],
    mut make: impl FnMut(&mut Network<N>, usize, usize) -> QueryId,
) -> Vec<(usize, QueryId)> {
    let start = sim.now();
    let mut out = Vec::with_capacity(count);
    for j in 0..count {
        sim.run_until(start + interval * j as u32);
        let src = sources[below(sim.rng(), sources.len())];
        let q = make(sim, j, src);
        out.push((src, q));
    }
    out
}

/// Runs `exp`, calling `progress` with a line of news now and then.
pub fn run(exp: &Experiment, mut progress: impl FnMut(&str)) -> Report {
    let wall = std::time::Instant::now();
    let mut cfg = exp.sim.clone();
    let total_nodes = cfg.nodes;
    let sybil_nodes = exp.attackers();
    let eclipse = match exp.sybil.map(|a| a.placement) {
        Some(SybilPlacement::Eclipse { per_key }) => Some(per_key),
        _ => None,
    };
    if eclipse.is_none() {
        cfg.nodes -= sybil_nodes;
    }
    if exp.sybil.map(|a| a.placement) == Some(SybilPlacement::Random) {
        cfg.sybils = sybil_nodes;
    }
    let mut sim = Sim::new(cfg.clone());
    let rss_before = rss_bytes().0;
    progress(&format!("joining {} nodes (seed {})", cfg.nodes, cfg.seed));
    sim.join_all(|n| {
        progress(&format!(
            "  {n} nodes created, virtual t = {:.1} s",
            sim_secs(n, &cfg)
        ))
    });
    let join_seconds = sim.now().as_secs_f64();
    let rss_after = rss_bytes().0;
    let bytes_per_node =
        rss_after.saturating_sub(rss_before) as f64 / (cfg.nodes + cfg.sybils).max(1) as f64;
    // Under attack the find_node figures would measure the attack, not the engine
    // (their truth is the honest nodes only): the gets tell what matters.
    let lookups = if exp.sybil.is_some() { 0 } else { exp.lookups };
    progress(&format!(
        "joined in {join_seconds:.1} virtual s, {:.1} wall s; running {lookups} lookups",
        wall.elapsed().as_secs_f64(),
    ));

    // Lookups, with the wire watched: a node counts as found only if it answered.
    sim.watch_answers(true);
    let live = sim.live();
    let issued = run_lookups(&mut sim, lookups, exp, &live);
    sim.watch_answers(false);
    progress(&format!(
        "lookups done at {:.1} wall s; judging them",
        wall.elapsed().as_secs_f64()
    ));

    let mut view = GlobalView::new(&sim, cfg.k);
    let mut figures = LookupFigures::default();
    let max_candidates = sim.node(0).config().max_lookup_candidates;
    for &(src, q, ref target) in &issued {
        let Some(done) = sim.take_done(src, q) else {
            figures.unfinished();
            continue;
        };
        // A node never returns itself, so the truth is the K closest others.
        let truth: Vec<u32> = view
            .closest(target, cfg.k + 1)
            .into_iter()
            .filter(|&j| j as usize != src)
            .take(cfg.k)
            .collect();
        let got = <Node<MemStore> as SimOverlay>::lookup_result(&done.outcome);
        // Listed by the lookup and seen answering it on the wire.
        let found_here = |j: u32| {
            got.contains(&sim.node(j as usize).id()) && sim.answered(src, target, j as usize)
        };
        let hits = truth.iter().filter(|&&j| found_here(j)).count();
        let found = hits as f64 / truth.len().max(1) as f64;
        let success = truth.first().is_some_and(|&j| found_here(j));
        let ideal = view.ideal_hops(src as u32, target, cfg.alpha, max_candidates) as f64;
        figures.finished(found, success, &done.stats, ideal);
    }
    let rtt = 2.0 * cfg.latency_ms;

    let mut report = Report {
        overlay: <Node<MemStore> as SimOverlay>::NAME,
        nodes: total_nodes,
        lookups: exp.lookups,
        seed: cfg.seed,
        k: cfg.k,
        alpha: cfg.alpha,
        latency_ms: cfg.latency_ms,
        loss: cfg.loss,
        fail: exp.fail,
        table_entries_mean: mean(
            sim.live()
                .into_iter()
                .map(|i| sim.node(i).routing_table(Family::V4).len() as f64),
        ),
        ideal_table_entries_mean: view.ideal_entries_mean(),
        bytes_per_node,
        join_seconds,
        disjoint: cfg.disjoint_paths,
        address_plan: cfg.address_plan.name(),
        sybil_prefixes: match cfg.address_plan {
            AddressPlan::Public { sybil_prefixes } if sybil_nodes > 0 => sybil_prefixes,
            _ => None,
        },
        ..Report::default()
    };
    figures.fill(&mut report, rtt);
    drop(view);

    if let Some(attack) = exp.sybil {
        let r = sybil_phase(&mut sim, exp, attack, sybil_nodes, &mut progress);
        report.fail = None;
        report.sybil = eclipse.is_none().then_some(attack.fraction);
        report.eclipse = eclipse;
        report.sybil_placement = Some(attack.placement.name());
        report.sybil_nodes = sim.sybil_count();
        report.put_success = Some(r.put_success);
        report.stored_honest = Some(r.stored_honest);
        report.get_success = Some(r.gets.success);
        report.get_success_stored = Some(r.get_success_stored);
        report.sybil_in_tables = Some(r.sybil_in_tables);
        report.set_gets(&r.gets, rtt);
    } else if let Some(fail) = exp.fail {
        let (put_ok, gets) = fail_phase(&mut sim, exp, fail, &mut progress);
        report.put_success = Some(put_ok);
        report.set_gets(&gets, rtt);
    } else if exp.gets > 0 {
        let put_ok = put_items(&mut sim, exp.gets, exp, &mut progress);
        let live = sim.live();
        progress(&format!("getting {} items", exp.gets));
        let gets = get_items(&mut sim, exp.gets, exp, &live);
        report.put_success = Some(put_ok);
        report.set_gets(&gets, rtt);
    }

    set_network(&mut report, &sim, wall);
    report
}

/// Issues `count` lookups of random targets, one per command interval, each from a
/// random node of `sources`, and runs until they end or the phase limit passes;
/// returns (source, query, target) of each.
pub(crate) fn run_lookups<N: SimOverlay>(
    sim: &mut Network<N>,
    count: usize,
    exp: &Experiment,
    sources: &[usize],
) -> Vec<(usize, QueryId, N::Key)> {
    let mut targets = Vec::with_capacity(count);
    let issued = issue(sim, count, exp.command_interval, sources, |sim, _, src| {
        let target = N::Key::random(sim.rng());
        targets.push(target);
        sim.start(src, N::lookup_request(target))
            .expect("a simulated node takes every lookup")
    });
    sim.run_until_idle(exp.phase_limit);
    issued
        .into_iter()
        .zip(targets)
        .map(|((src, q), target)| (src, q, target))
        .collect()
}

/// The network's figures of the whole run, at its end (`wall`: when the run began).
pub(crate) fn set_network<N: SimOverlay>(
    report: &mut Report,
    sim: &Network<N>,
    wall: std::time::Instant,
) {
    let net = sim.net_stats();
    report.sim_seconds = sim.now().as_secs_f64();
    report.datagrams = net.delivered;
    report.datagrams_lost = net.lost;
    report.datagrams_oversize = net.oversize;
    report.event_hash = sim.event_hash();
    report.peak_rss_bytes = rss_bytes().1;
    report.wall_seconds = wall.elapsed().as_secs_f64();
}

fn sim_secs(n: usize, cfg: &SimConfig) -> f64 {
    (cfg.join_interval * n as u32).as_secs_f64()
}

/// The bencoded value of item `j`: a byte string unique to the seed and `j`.
pub fn item_value(seed: u64, j: usize) -> Vec<u8> {
    let s = format!("dht-sim item {seed} {j}");
    format!("{}:{}", s.len(), s).into_bytes()
}

/// Puts `n_items` immutable items from random live nodes; returns the fraction that
/// at least one node acknowledged.
fn put_items(
    sim: &mut Sim,
    n_items: usize,
    exp: &Experiment,
    progress: &mut impl FnMut(&str),
) -> f64 {
    let seed = sim.config().seed;
    progress(&format!("putting {n_items} immutable items"));
    let live = sim.live();
    let puts = issue(sim, n_items, exp.command_interval, &live, |sim, j, src| {
        let v = item_value(seed, j);
        sim.command(src, move |node, now| {
            node.start(now, Request::PutImmutable { value: v })
                .expect("request")
        })
    });
    sim.run_until_idle(exp.phase_limit);
    let mut put_ok = 0;
    for &(src, q) in &puts {
        if let Some(Outcome::Stored { stored_at, .. }) = sim.take_done(src, q).map(|d| d.outcome) {
            if !stored_at.is_empty() {
                put_ok += 1;
            }
        }
    }
    put_ok as f64 / n_items.max(1) as f64
}

/// Gets the first `n_items` items of [`put_items`], each from a random node of `sources`.
fn get_items(sim: &mut Sim, n_items: usize, exp: &Experiment, sources: &[usize]) -> Gets {
    if sources.is_empty() {
        return Gets::default();
    }
    let seed = sim.config().seed;
    let gets = issue(
        sim,
        n_items,
        exp.command_interval,
        sources,
        |sim, j, src| {
            let target = dht_core::immutable_target(&item_value(seed, j));
            sim.command(src, |node, now| {
                node.start(now, Request::GetImmutable { target })
                    .expect("request")
            })
        },
    );
    sim.run_until_idle(exp.phase_limit);
    let mut found = vec![false; n_items];
    let mut messages = Vec::with_capacity(n_items);
    let mut latency_ms = Vec::with_capacity(n_items);
    for (j, &(src, q)) in gets.iter().enumerate() {
        let Some(done) = sim.take_done(src, q) else {
            continue;
        };
        messages.push((done.stats.requests + done.stats.responses) as f64);
        latency_ms.push(done.stats.duration.as_secs_f64() * 1000.0);
        if let Outcome::Immutable { value: Some(v) } = done.outcome {
            found[j] = v == item_value(seed, j);
        }
    }
    Gets {
        success: found.iter().filter(|&&f| f).count() as f64 / n_items.max(1) as f64,
        messages: mean(messages.into_iter()),
        found,
        latency_ms: {
            latency_ms.sort_unstable_by(f64::total_cmp);
            latency_ms
        },
    }
}

/// Puts `lookups` immutable items, kills `fail` of the nodes at once, then gets every
/// item from a surviving node. Returns (put success, gets).
fn fail_phase(
    sim: &mut Sim,
    exp: &Experiment,
    fail: f64,
    progress: &mut impl FnMut(&str),
) -> (f64, Gets) {
    let put_ok = put_items(sim, exp.lookups, exp, progress);

    let kill = kill_fraction(sim, fail);
    let survivors = sim.live();
    progress(&format!(
        "killed {kill} nodes; getting every item from {} survivors",
        survivors.len()
    ));
    (put_ok, get_items(sim, exp.lookups, exp, &survivors))
}

/// Kills a random fraction `fail` of the live nodes at once (a partial Fisher-Yates
/// over them, drawn from the driver's RNG); returns how many.
pub(crate) fn kill_fraction<N: SimOverlay>(sim: &mut Network<N>, fail: f64) -> usize {
    let mut live = sim.live();
    let kill = ((live.len() as f64) * fail).floor() as usize;
    for j in 0..kill.min(live.len()) {
        let r = j + below(sim.rng(), live.len() - j);
        live.swap(j, r);
        sim.kill(live[j]);
    }
    kill
}

/// What the Sybil phase measured.
struct SybilResult {
    put_success: f64,
    stored_honest: f64,
    get_success_stored: f64,
    sybil_in_tables: f64,
    gets: Gets,
}

/// Time the network runs after adjacent Sybils arrive and before the gets: their
/// joins take a few round trips and the honest nodes' verifying pings one more
/// (2 s timeout), far less than this.
const ADJACENT_SETTLE: Duration = Duration::from_secs(30);

/// Puts `exp.lookups` items from honest nodes; with adjacent placement, inserts the
/// `sybils` Sybils next to the items' targets; then gets every item from a random
/// honest node.
fn sybil_phase(
    sim: &mut Sim,
    exp: &Experiment,
    attack: SybilAttack,
    sybils: usize,
    progress: &mut impl FnMut(&str),
) -> SybilResult {
    let n_items = exp.lookups;
    let seed = sim.config().seed;
    let put_success = put_items(sim, n_items, exp, progress);
    let targets: Vec<Id> = (0..n_items)
        .map(|j| dht_core::immutable_target(&item_value(seed, j)))
        .collect();
    let next_to_targets = matches!(
        attack.placement,
        SybilPlacement::Adjacent | SybilPlacement::Eclipse { .. }
    );
    if next_to_targets && !targets.is_empty() {
        progress(&format!(
            "inserting {sybils} Sybils next to {n_items} targets"
        ));
        let start = sim.now();
        for m in 0..sybils {
            sim.run_until(start + sim.config().join_interval * m as u32);
            // The first 128 bits of the target and 32 random ones: closer to it
            // than any honest node of a network below 2^100 nodes.
            let mut id = targets[m % targets.len()];
            let r = sim.rng().next_u32().to_be_bytes();
            id.0[16..].copy_from_slice(&r);
            sim.add_sybil(id);
        }
        sim.run_for(ADJACENT_SETTLE);
    }
    // The global view: did any honest node keep each item? (Sybils store nothing.)
    let live = sim.live();
    let stored: Vec<bool> = targets
        .iter()
        .map(|t| {
            live.iter()
                .any(|&i| sim.node(i).store().get_item(t).is_ok_and(|x| x.is_some()))
        })
        .collect();
    let (mut entries, mut sybil_entries) = (0usize, 0usize);
    for &i in &live {
        for e in sim.node(i).routing_table(Family::V4).entries() {
            entries += 1;
            sybil_entries += usize::from(sim.is_sybil_addr(&e.node.addr));
        }
    }
    progress(&format!(
        "getting {n_items} items from {} honest nodes ({} Sybils)",
        live.len(),
        sim.sybil_count()
    ));
    let gets = get_items(sim, n_items, exp, &live);
    let n_stored = stored.iter().filter(|&&s| s).count();
    let found_stored = stored
        .iter()
        .zip(&gets.found)
        .filter(|(&s, &f)| s && f)
        .count();
    SybilResult {
        put_success,
        stored_honest: n_stored as f64 / n_items.max(1) as f64,
        get_success_stored: found_stored as f64 / n_stored.max(1) as f64,
        sybil_in_tables: sybil_entries as f64 / entries.max(1) as f64,
        gets,
    }
}
