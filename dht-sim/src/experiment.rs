//! The experiment the binary runs: join, lookups, and optionally puts, failure and gets.

use std::time::Duration;

use dht_core::kernel::Key as _;
use dht_core::Id;
use dht_core::{Family, Node, Outcome, QueryId, Request, Store as _};
use dht_store_mem::MemStore;
use rand_chacha::rand_core::RngCore as _;

use crate::address::AddressPlan;
use crate::address::{EclipseBudget, SYBIL_BIT};
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
    /// A targeted eclipse (issue 26): `per_key` attackers at the ids closest to each
    /// item's target that their addresses allow ([`Experiment::eclipse_budget`]; with
    /// BEP 42 off, closer than any honest node, as [`SybilPlacement::Adjacent`]),
    /// inserted after the items were put (or before: [`Experiment::eclipse_before_puts`]),
    /// on top of the honest nodes; they answer with their own key's attackers only and
    /// store nothing. [`SybilAttack::fraction`] is unused.
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
    /// With an eclipse: the addresses each key's attackers share (`None`: a /24 of
    /// its own for each attacker).
    pub eclipse_budget: Option<EclipseBudget>,
    /// With an eclipse: the attackers arrive before the puts (the items are then
    /// written to whichever of them the puts find), not after.
    pub eclipse_before_puts: bool,
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
            eclipse_budget: None,
            eclipse_before_puts: false,
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
        bep42: cfg.bep42,
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
        report.attackers_known_by = r.attackers_known_by;
        report.gets_meeting_attackers = r.gets_meeting_attackers;
        if eclipse.is_some() {
            report.eclipse_budget = exp.eclipse_budget.map(EclipseBudget::name);
            report.eclipse_before_puts = Some(exp.eclipse_before_puts);
        }
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
pub(crate) fn put_items(
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
pub(crate) fn get_items(
    sim: &mut Sim,
    n_items: usize,
    exp: &Experiment,
    sources: &[usize],
) -> Gets {
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
        sources: gets.iter().map(|&(src, _)| src).collect(),
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
    attackers_known_by: Option<f64>,
    gets_meeting_attackers: Option<f64>,
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

/// Inserts `count` Sybils next to `targets`, dealt round-robin over them, one every
/// join interval. Without a `budget` and BEP 42, each on a /24 of its own at an id
/// sharing the first 128 bits of its target (closer to it than any honest node of a
/// network below 2^100 nodes). With a budget, the Sybils of one target share that
/// budget's addresses (spread over its /24s); with BEP 42 on, each takes the valid id
/// closest to its target that an address of the budget allows (the first 21 bits
/// are the CRC of the masked address, the rest free), the closest such addresses
/// first. BEP 42 on without a budget: a /24 of its own each, in different /16s.
/// An eclipse's attackers (`eclipse`) answer with their own key's attackers only
/// (one group each), so that no key's attack borrows another's addresses.
fn insert_next_to(
    sim: &mut Sim,
    targets: &[Id],
    count: usize,
    budget: Option<EclipseBudget>,
    eclipse: bool,
) {
    let n = targets.len();
    let per_key = count.div_ceil(n.max(1));
    let bep42 = sim.config().bep42;
    let budget = match budget {
        None if bep42 => Some(EclipseBudget::Slash24s(per_key)),
        b => b,
    };
    // Per target: (address, id) of each of its Sybils, closest first.
    let mut placed: Vec<Vec<(std::net::Ipv4Addr, Id)>> = Vec::with_capacity(n);
    if let Some(budget) = budget {
        for t in targets {
            let prefixes = sim.book_mut().attacker_prefixes(budget);
            placed.push(attacker_places(sim, t, &prefixes, per_key, bep42));
        }
    }
    let start = sim.now();
    for m in 0..count {
        sim.run_until(start + sim.config().join_interval * m as u32);
        let (j, a) = (m % n, m / n);
        let group = if eclipse { j as u32 + 1 } else { 0 };
        match placed.get(j).and_then(|p| p.get(a)) {
            Some(&(ip, id)) => sim.add_attacker(id, Some(ip), group),
            None => {
                let mut id = targets[j];
                let r = sim.rng().next_u32().to_be_bytes();
                id.0[16..].copy_from_slice(&r);
                sim.add_attacker(id, None, group)
            }
        };
    }
}

/// Where the `count` attackers of `target` sit within the /24s `prefixes`: BEP 42 off,
/// round-robin over the /24s (one network's per-/24 caps bind them least), at ids
/// sharing the target's first 128 bits; on, at the addresses whose best valid id is
/// closest to the target.
fn attacker_places(
    sim: &mut Sim,
    target: &Id,
    prefixes: &[u32],
    count: usize,
    bep42: bool,
) -> Vec<(std::net::Ipv4Addr, Id)> {
    let tail = |sim: &mut Sim| sim.rng().next_u32().to_be_bytes();
    if !bep42 {
        return (0..count)
            .map(|a| {
                let ip = (prefixes[a % prefixes.len()] << 8) | (1 + (a / prefixes.len()) as u32);
                let mut id = *target;
                id.0[16..].copy_from_slice(&tail(sim));
                (std::net::Ipv4Addr::from(ip), id)
            })
            .collect();
    }
    // (distance of the best valid id, address, r) for every host of the budget.
    let mut best = Vec::with_capacity(prefixes.len() * crate::address::HOSTS_PER_PREFIX);
    for &p in prefixes {
        for h in 1..=crate::address::HOSTS_PER_PREFIX as u32 {
            let ip = (p << 8) | h;
            let addr = std::net::IpAddr::V4(std::net::Ipv4Addr::from(ip));
            let (d, r) = (0..8u8)
                .map(|r| (dht_core::secure_id(addr, r, target.0).distance(target), r))
                .min()
                .expect("eight values of r");
            best.push((d, ip, r));
        }
    }
    best.sort_unstable();
    best.into_iter()
        .take(count)
        .map(|(_, ip, r)| {
            let addr = std::net::Ipv4Addr::from(ip);
            let mut filler = target.0;
            let t = tail(sim);
            filler[16..19].copy_from_slice(&t[..3]);
            let rand = (t[3] & 0xf8) | r;
            (addr, dht_core::secure_id(addr.into(), rand, filler))
        })
        .collect()
}

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
    let targets: Vec<Id> = (0..n_items)
        .map(|j| dht_core::immutable_target(&item_value(seed, j)))
        .collect();
    let eclipse = matches!(attack.placement, SybilPlacement::Eclipse { .. });
    let before_puts = eclipse && exp.eclipse_before_puts && !targets.is_empty();
    if before_puts {
        progress(&format!(
            "inserting {sybils} attackers next to {n_items} targets before the puts"
        ));
        insert_next_to(sim, &targets, sybils, exp.eclipse_budget, true);
        sim.run_for(ADJACENT_SETTLE);
    }
    let put_success = put_items(sim, n_items, exp, progress);
    let next_to_targets = !before_puts && (eclipse || attack.placement == SybilPlacement::Adjacent);
    if next_to_targets && !targets.is_empty() {
        progress(&format!(
            "inserting {sybils} Sybils next to {n_items} targets"
        ));
        insert_next_to(sim, &targets, sybils, exp.eclipse_budget, eclipse);
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
    // An eclipse's reach: which honest nodes hold which key's attackers in their
    // tables (attacker s belongs to key s mod n_items), and which gets met them.
    let mut knows: Vec<std::collections::BTreeSet<usize>> = Vec::new();
    if eclipse {
        knows = vec![Default::default(); sim.len()];
        for &i in &live {
            for e in sim.node(i).routing_table(Family::V4).entries() {
                if let Some(s) = sim.sybil_index(&e.node.addr) {
                    knows[i].insert(s % n_items.max(1));
                }
            }
        }
    }
    sim.watch_answers(eclipse);
    let gets = get_items(sim, n_items, exp, &live);
    let mut meeting = 0;
    if eclipse {
        let per_key = sim.sybil_count().div_ceil(n_items.max(1));
        for (j, t) in targets.iter().enumerate() {
            let src = gets.sources[j];
            meeting += usize::from((0..per_key).any(|a| {
                let s = a * n_items + j;
                s < sim.sybil_count() && sim.answered(src, t, SYBIL_BIT as usize | s)
            }));
        }
    }
    sim.watch_answers(false);
    let n_stored = stored.iter().filter(|&&s| s).count();
    let found_stored = stored
        .iter()
        .zip(&gets.found)
        .filter(|(&s, &f)| s && f)
        .count();
    let known: usize = knows.iter().map(|k| k.len()).sum();
    SybilResult {
        attackers_known_by: eclipse.then(|| known as f64 / (n_items * live.len()).max(1) as f64),
        gets_meeting_attackers: eclipse.then(|| meeting as f64 / n_items.max(1) as f64),
        put_success,
        stored_honest: n_stored as f64 / n_items.max(1) as f64,
        get_success_stored: found_stored as f64 / n_stored.max(1) as f64,
        sybil_in_tables: sybil_entries as f64 / entries.max(1) as f64,
        gets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attackers of one key within one /24: BEP 42 off, ids sharing the key's first
    /// 128 bits; on, valid ids for their addresses, the closest the /24 allows.
    #[test]
    fn eclipse_attackers_keep_to_their_budget() {
        for bep42 in [false, true] {
            let mut cfg = SimConfig::new(40, 7);
            cfg.bep42 = bep42;
            let mut sim = Sim::new(cfg);
            sim.join_all(|_| {});
            let targets = [Id([0x3c; 20]), Id([0xa5; 20])];
            let per_key = 5;
            insert_next_to(
                &mut sim,
                &targets,
                2 * per_key,
                Some(EclipseBudget::Slash24),
                true,
            );
            assert_eq!(sim.sybil_count(), 2 * per_key);
            for (j, t) in targets.iter().enumerate() {
                let mine: Vec<usize> = (0..per_key).map(|a| a * targets.len() + j).collect();
                let ip = |s: usize| match sim.sybil_addr(s).ip() {
                    std::net::IpAddr::V4(v4) => u32::from(v4),
                    std::net::IpAddr::V6(_) => panic!("the plan is IPv4"),
                };
                let net = ip(mine[0]) >> 8;
                let mut hosts = std::collections::BTreeSet::new();
                for &s in &mine {
                    assert_eq!(ip(s) >> 8, net, "bep42 {bep42}: one /24 per key");
                    assert!(hosts.insert(ip(s)), "bep42 {bep42}: an address each");
                    let id = sim.sybil_id(s);
                    if bep42 {
                        assert!(dht_core::is_secure_id(&id, sim.sybil_addr(s).ip()));
                    } else {
                        assert_eq!(id.0[..16], t.0[..16], "bep42 off: 128 bits shared");
                    }
                }
                if bep42 {
                    // No other host of the /24 has a valid id closer to the key than
                    // the farthest attacker's (in the 21 bits BEP 42 fixes; the rest
                    // is free).
                    let far = mine
                        .iter()
                        .map(|&s| sim.sybil_id(s).common_prefix_len(t).min(21))
                        .min()
                        .unwrap_or(0);
                    for h in 1..=crate::address::HOSTS_PER_PREFIX as u32 {
                        let host = (net << 8) | h;
                        if hosts.contains(&host) {
                            continue;
                        }
                        let addr = std::net::Ipv4Addr::from(host).into();
                        for r in 0..8 {
                            let id = dht_core::secure_id(addr, r, t.0);
                            let bits = id.common_prefix_len(t).min(21);
                            assert!(bits <= far, "{addr} r {r}: {bits} bits > {far}");
                        }
                    }
                }
            }
        }
    }
}
