//! `dht-sim --overlay ipfs`: [`crate::run`]'s experiment on dht-ipfs nodes, in the
//! same [`Report`]. The nodes join one by one through node 0; random keys are looked
//! up (FIND_NODE) and judged against the global view in the 256-bit keyspace; with
//! `--fail F`, `/pk` records are put and provider keys announced, a fraction F of the
//! nodes is killed at once, and every record and provider key is asked for from a
//! survivor.
//!
//! What the figures mean here:
//! - `found_k_closest`: the fraction of the true k closest live servers other than the
//!   source (to the SHA-256 of the key looked up) that the lookup's `closest` holds;
//!   dht-ipfs lists only servers that answered the lookup.
//! - `hops_*`: the depth of the closest responder (1 for a contact from the source's
//!   own table); `hops_ideal_mean`: the same lookup (same k, alpha and kernel
//!   [`dht_core::kernel::Candidates`]) over ideal tables with instant answers
//!   ([`GlobalView::ideal_hops`], as for Kademlia).
//! - `latency_rtt_*`: a lookup's time less the handshakes waited for on the chain of
//!   replies that ended it, in mean round trips; `latency_dial_rtt_*`: its whole time
//!   (see the stream model in `net/stream.rs`).
//! - `get_success`: records whose GET_VALUE from a survivor returned the value put;
//!   `providers_success`: provider keys whose GET_PROVIDERS from a survivor named the
//!   node that announced them.

use dht_core::QueryId;
use dht_ipfs::{key_of, Config, Key, Outcome, PeerInfo, Request, PK_PREFIX};

use super::{peer_id, IpfsSim};
use crate::experiment::{issue, kill_fraction, rss_bytes, run_lookups, set_network, Experiment};
use crate::global::GlobalView;
use crate::net::SimOverlay;
use crate::report::{mean, Gets, LookupFigures, Report};
use crate::rng::mix64;

type Ipfs = dht_ipfs::Node<dht_ipfs::MemStore>;

/// Runs `exp` on dht-ipfs nodes: join, lookups and, with `exp.fail`, records and
/// providers through a simultaneous failure. Sybil attacks and `--gets` are
/// Kademlia's and ignored.
pub fn run(exp: &Experiment, mut progress: impl FnMut(&str)) -> Report {
    let wall = std::time::Instant::now();
    let cfg = exp.sim.clone();
    let mut sim = IpfsSim::new(cfg.clone());
    let rss_before = rss_bytes().0;
    progress(&format!(
        "joining {} IPFS nodes (seed {}, one every {} ms)",
        cfg.nodes,
        cfg.seed,
        cfg.join_interval.as_millis()
    ));
    sim.join_all(|n| {
        if n % 1000 == 0 {
            progress(&format!("  {n} nodes created"));
        }
    });
    let join_seconds = sim.now().as_secs_f64();
    let bytes_per_node = rss_bytes().0.saturating_sub(rss_before) as f64 / cfg.nodes.max(1) as f64;
    progress(&format!(
        "joined in {join_seconds:.1} virtual s, {:.1} wall s; running {} lookups",
        wall.elapsed().as_secs_f64(),
        exp.lookups
    ));
    // What bytes_per_node is made of: the tables (main and replacement entries), and
    // the network's own state, as the join left them.
    let live = sim.live();
    let per_node = |f: &dyn Fn(&Ipfs) -> usize| mean(live.iter().map(|&i| f(sim.node(i)) as f64));
    progress(&format!(
        "  per node: {:.1} table entries, {:.1} in replacement caches, {:.1} requests in flight; \
         network: {} connections open, {} events queued",
        per_node(&|n| n.table().len()),
        per_node(&|n| n.table().replacement_len()),
        per_node(&|n| n.requests_in_flight()),
        sim.connections(),
        sim.queued_events()
    ));
    let (real, ideal) = first_hop_bits(&sim, cfg.k, cfg.seed);
    progress(&format!(
        "  first hop: the closest table entry shares {real:.2} bits with a random key \
         ({ideal:.2} over ideal tables)"
    ));

    let live = sim.live();
    let issued = run_lookups(&mut sim, exp.lookups, exp, &live);
    let contacts: Vec<PeerInfo> = (0..sim.len()).map(|i| sim.addr(i)).collect();
    let mut view = GlobalView::of(contacts, &sim.live(), cfg.k, cfg.seed);
    // Every node runs Config::new's candidate bound.
    let max_candidates = Config::new(0, peer_id(0, 0), Vec::new()).max_candidates;
    let mut figures = LookupFigures::default();
    for &(src, q, ref target) in &issued {
        let Some(done) = sim.take_done(src, q) else {
            figures.unfinished();
            continue;
        };
        let dial_wait = sim.take_dial_wait(src, q);
        // The key looked up is the target's bytes; the lookup goes toward their SHA-256.
        let key = key_of(&target.0);
        let truth: Vec<Key> = view
            .closest(&key, cfg.k + 1)
            .into_iter()
            .filter(|&j| j as usize != src)
            .take(cfg.k)
            .map(|j| SimOverlay::id(sim.node(j as usize)))
            .collect();
        let got = <Ipfs as SimOverlay>::lookup_result(&done.outcome);
        let hits = truth.iter().filter(|t| got.contains(t)).count();
        let found = hits as f64 / truth.len().max(1) as f64;
        let success = truth.first().is_some_and(|t| got.contains(t));
        let ideal = view.ideal_hops(src as u32, &key, cfg.alpha, max_candidates);
        figures.finished_dialing(found, success, &done.stats, f64::from(ideal), dial_wait);
    }
    let rtt = 2.0 * cfg.latency_ms;
    let mut report = Report {
        overlay: <Ipfs as SimOverlay>::NAME,
        nodes: cfg.nodes,
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
                .map(|i| sim.node(i).table().len() as f64),
        ),
        ideal_table_entries_mean: view.ideal_entries_mean(),
        bytes_per_node,
        join_seconds,
        disjoint: cfg.disjoint_paths,
        // 127.x.y.z multiaddrs: local addresses, exempt from per-address defenses.
        address_plan: "loopback",
        handshake_rtts: Some(cfg.handshake_rtts),
        ..Report::default()
    };
    figures.fill(&mut report, rtt);
    drop(view);

    if let Some(fail) = exp.fail {
        let r = fail_phase(&mut sim, exp, fail, &mut progress);
        report.put_success = Some(r.put_success);
        report.set_gets(&r.gets, rtt);
        report.providers_success = Some(r.providers_success);
    }
    set_network(&mut report, &sim, wall);
    report
}

/// How close a node's table gets a lookup in one step: the bits the table's closest
/// entry shares with a random key, averaged over random nodes and keys, for the real
/// tables and for ideal ones (k random nodes per bucket range). Seeded apart from the
/// network's RNG, so it changes no run.
fn first_hop_bits(sim: &IpfsSim, k: usize, seed: u64) -> (f64, f64) {
    use dht_core::kernel::{Contact, Key as _};
    use rand_chacha::rand_core::SeedableRng;
    let live = sim.live();
    if live.is_empty() {
        return (0.0, 0.0);
    }
    let contacts: Vec<PeerInfo> = (0..sim.len()).map(|i| sim.addr(i)).collect();
    let ids: Vec<Key> = contacts.iter().map(|c| *c.key()).collect();
    let mut view = GlobalView::of(contacts, &live, k, seed);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(mix64(seed ^ 0xf1257));
    let (mut real, mut ideal) = (0.0, 0.0);
    let samples = 2000;
    for _ in 0..samples {
        let src = live[crate::rng::below(&mut rng, live.len())];
        let target = Key::random(&mut rng);
        let best = sim
            .node(src)
            .table()
            .entries()
            .map(|e| e.node.key().common_prefix_len(&target))
            .max()
            .unwrap_or(0);
        real += best as f64;
        let best = view
            .ideal_table(src as u32)
            .iter()
            .map(|&j| ids[j as usize].common_prefix_len(&target))
            .max()
            .unwrap_or(0);
        ideal += best as f64;
    }
    (real / samples as f64, ideal / samples as f64)
}

/// Record `j` of a run seeded `seed`: `/pk/<PeerId>` and the ed25519 public key
/// (protobuf) the PeerId inlines, a record every node validates.
pub fn record(seed: u64, j: usize) -> (Vec<u8>, Vec<u8>) {
    let id = peer_id(mix64(seed ^ 0x7265_636f_7264), j as u32);
    let bytes = id.as_bytes();
    // An identity multihash: 0x00, its length, then the protobuf key.
    ([PK_PREFIX, bytes].concat(), bytes[2..].to_vec())
}

/// Provider key `j` of a run seeded `seed`: a SHA-256 multihash, as a CID's.
pub fn provider_key(seed: u64, j: usize) -> Vec<u8> {
    let mut key = vec![0x12, 0x20];
    key.extend(key_of(format!("dht-sim provider {seed} {j}").as_bytes()).0);
    key
}

/// What the failure phase measured.
struct FailResult {
    put_success: f64,
    gets: Gets,
    providers_success: f64,
}

/// Puts `exp.lookups` records and announces as many provider keys (one command every
/// interval, from random nodes), kills a fraction `fail` of the nodes at once, then
/// gets every record and the providers of every key from random survivors.
fn fail_phase(
    sim: &mut IpfsSim,
    exp: &Experiment,
    fail: f64,
    progress: &mut impl FnMut(&str),
) -> FailResult {
    let n = exp.lookups;
    let seed = sim.config().seed;
    let refused = QueryId(u64::MAX);
    progress(&format!(
        "putting {n} records, announcing {n} provider keys"
    ));
    let live = sim.live();
    let puts = issue(sim, n, exp.command_interval, &live, |sim, j, src| {
        let (key, value) = record(seed, j);
        sim.start(src, Request::PutRecord { key, value })
            .unwrap_or(refused)
    });
    let provides = issue(sim, n, exp.command_interval, &live, |sim, j, src| {
        let key = provider_key(seed, j);
        sim.start(src, Request::StartProviding { key })
            .unwrap_or(refused)
    });
    sim.run_until_idle(exp.phase_limit);
    let put_ok = puts
        .iter()
        .filter(|&&(src, q)| {
            matches!(
                sim.take_done(src, q).map(|d| d.outcome),
                Some(Outcome::Stored { acks, .. }) if acks > 0
            )
        })
        .count();
    for &(src, q) in &provides {
        let _ = sim.take_done(src, q);
    }
    let providers: Vec<PeerInfo> = provides.iter().map(|&(src, _)| sim.addr(src)).collect();

    let kill = kill_fraction(sim, fail);
    let survivors = sim.live();
    progress(&format!(
        "killed {kill} nodes; getting every record and provider key from {} survivors",
        survivors.len()
    ));
    let gets = issue(sim, n, exp.command_interval, &survivors, |sim, j, src| {
        let key = record(seed, j).0;
        sim.start(src, Request::GetRecord { key })
            .unwrap_or(refused)
    });
    let lists = issue(sim, n, exp.command_interval, &survivors, |sim, j, src| {
        let key = provider_key(seed, j);
        sim.start(src, Request::GetProviders { key })
            .unwrap_or(refused)
    });
    sim.run_until_idle(exp.phase_limit);

    let mut found = vec![false; n];
    let (mut messages, mut latency_ms) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (j, &(src, q)) in gets.iter().enumerate() {
        let Some(done) = sim.take_done(src, q) else {
            continue;
        };
        messages.push((done.stats.requests + done.stats.responses) as f64);
        latency_ms.push(done.stats.duration.as_secs_f64() * 1000.0);
        if let Outcome::Record { record: Some(r) } = done.outcome {
            found[j] = r.value == record(seed, j).1;
        }
    }
    latency_ms.sort_unstable_by(f64::total_cmp);
    let mut providers_found = 0;
    for (j, &(src, q)) in lists.iter().enumerate() {
        if let Some(Outcome::Providers { providers: got, .. }) =
            sim.take_done(src, q).map(|d| d.outcome)
        {
            providers_found += usize::from(got.iter().any(|p| p.id() == providers[j].id()));
        }
    }
    let total = n.max(1) as f64;
    FailResult {
        put_success: put_ok as f64 / total,
        gets: Gets {
            success: found.iter().filter(|&&f| f).count() as f64 / total,
            messages: mean(messages.into_iter()),
            found,
            latency_ms,
            sources: Vec::new(),
        },
        providers_success: providers_found as f64 / total,
    }
}
