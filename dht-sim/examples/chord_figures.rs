//! Chord beside Kademlia: writes the figures of issue 15 under `dht-sim/results/`.
//!
//! ```text
//! cargo run --release -p dht-sim --example chord_figures -- path-length 14   # N = 2^3 .. 2^14
//! cargo run --release -p dht-sim --example chord_figures -- load             # N = 10,000, 1e5 .. 1e6 keys
//! cargo run --release -p dht-sim --example chord_figures -- failure 2000     # 0 .. 50 % failing at once
//! cargo run --release -p dht-sim --example chord_figures -- churn 1000       # R joins and R failures per s
//! ```
//! Each writes `results/<name>.md` (a table) and `results/<name>.svg` (a plot).

use std::fmt::Write as _;

use dht_core::Id;
use dht_sim::chord::Ring;
use dht_sim::figures::{svg, write, Series};
use dht_sim::{AddressPlan, Experiment, Report, SimConfig};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Header of `results/path-length.md` (the caption is filled in by hand below the
/// table only where a run's numbers are discussed).
const PATH_LENGTH_HEAD: &str = "# Path length against N\n\n\
`cargo run --release -p dht-sim --example chord_figures -- path-length 14`: for each N, \
`dht-sim --overlay chord` and `--overlay kademlia` with seed 1, 1,000 lookups from random \
nodes to random targets after the default join (60 s of settling), no loss, mean one-way \
latency 50 ms.\n\n\
| N | ½ log2 N | Chord mean | p1 | p50 | p99 | ideal | vs ideal | vs ½ log2 N | success | wall s | Kademlia mean | p1 | p50 | p99 | ideal |\n\
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";

/// Footer of `results/path-length.md`.
const PATH_LENGTH_FOOT: &str = "\n\
Chord's hops count the nodes the source queried until one answered with the key's \
successor (0 when the source's own successor is it); `ideal` is the same count over \
perfect fingers and successor lists on the same ids. Kademlia's hops are dht-core's \
(k = 8, alpha = 3: the depth of the closest responder). Bars in the plot span p1 to p99. \
See `path-length-notes.md` for the comparison with the paper.\n";

fn run(overlay: &str, exp: &Experiment) -> Report {
    eprintln!("{overlay}: {} nodes, fail {:?}", exp.sim.nodes, exp.fail);
    if overlay == "chord" {
        dht_sim::chord::run(exp, |_| {})
    } else {
        dht_sim::run(exp, |_| {})
    }
}

/// The network of every figure: seed 1, on the private address plan the recorded
/// figures were made on. Chord has no per-address defenses, so the private plan
/// (where Kademlia's are exempt too) keeps the comparison like for like.
fn config(nodes: usize) -> SimConfig {
    let mut cfg = SimConfig::new(nodes, 1);
    cfg.address_plan = AddressPlan::Private;
    cfg
}

fn path_length(max_exp: u32) {
    let mut md = String::from(PATH_LENGTH_HEAD);
    let (mut c, mut k, mut half) = (Vec::new(), Vec::new(), Vec::new());
    for e in 3..=max_exp {
        let n = 1usize << e;
        let exp = Experiment::new(config(n), 1000);
        let rc = run("chord", &exp);
        let rk = run("kademlia", &exp);
        let _ = writeln!(
            md,
            "| 2^{e} = {n} | {:.2} | {:.3} | {} | {} | {} | {:.3} | {:+.1} % | {:+.1} % | {:.4} | {:.0} | {:.3} | {} | {} | {} | {:.3} |",
            e as f64 / 2.0,
            rc.hops_mean,
            rc.hops_p1,
            rc.hops_p50,
            rc.hops_p99,
            rc.hops_ideal_mean,
            100.0 * (rc.hops_mean / rc.hops_ideal_mean - 1.0),
            100.0 * (rc.hops_mean / (e as f64 / 2.0) - 1.0),
            rc.lookup_success.unwrap_or(0.0),
            rc.wall_seconds,
            rk.hops_mean,
            rk.hops_p1,
            rk.hops_p50,
            rk.hops_p99,
            rk.hops_ideal_mean
        );
        c.push((
            n as f64,
            rc.hops_mean,
            rc.hops_p1 as f64,
            rc.hops_p99 as f64,
        ));
        k.push((
            n as f64,
            rk.hops_mean,
            rk.hops_p1 as f64,
            rk.hops_p99 as f64,
        ));
        half.push((n as f64, e as f64 / 2.0, e as f64 / 2.0, e as f64 / 2.0));
    }
    md.push_str(PATH_LENGTH_FOOT);
    let plot = svg(
        "Path length (mean; bars p1..p99)",
        "N (log scale)",
        "hops",
        true,
        &[
            Series {
                name: "Chord r=8",
                color: "#c0392b",
                points: c,
            },
            Series {
                name: "Kademlia k=8 a=3",
                color: "#2471a3",
                points: k,
            },
            Series {
                name: "½ log2 N",
                color: "#777777",
                points: half,
            },
        ],
    );
    write("path-length", &md, &plot).expect("write the results");
}

/// Mean, 1st and 99th percentile of per-node key counts.
fn spread(mut counts: Vec<u64>) -> (f64, u64, u64) {
    counts.sort_unstable();
    let n = counts.len();
    let mean = counts.iter().sum::<u64>() as f64 / n as f64;
    (
        mean,
        counts[(n / 100).min(n - 1)],
        counts[(n * 99 / 100).min(n - 1)],
    )
}

/// The XOR-closest of the sorted ids to `key`: descend bit by bit through the range
/// sharing the key's prefix.
fn xor_closest(sorted: &[(Id, u32)], key: &Id) -> u32 {
    let (mut lo, mut hi) = (0, sorted.len());
    for bit in 0..160 {
        if hi - lo <= 1 {
            break;
        }
        let mid = lo + sorted[lo..hi].partition_point(|(id, _)| !id.bit(bit));
        let (a, b) = if key.bit(bit) { (mid, hi) } else { (lo, mid) };
        if a < b {
            (lo, hi) = (a, b);
        }
    }
    sorted[lo].1
}

fn load() {
    let nodes = 10_000usize;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let ids: Vec<Id> = (0..nodes).map(|_| Id::random(&mut rng)).collect();
    let mut md = String::from("# Keys per node, N = 10,000 (seed 1)\n\nChord: SIGCOMM 2001 Figure 8(a) (keys at their successor) and Figure 9 (virtual nodes, 10^6 keys). Kademlia: each key counted once, at its XOR-closest node (a store keeps it at the k = 8 closest, multiplying every figure by 8, as r copies multiply Chord's).\n\n| keys | Chord mean | p1 | p99 | p99/mean | Kademlia mean | p1 | p99 | p99/mean |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    let ring = Ring::from_ids(ids.iter().enumerate().map(|(i, id)| (*id, i as u32)));
    let mut xs: Vec<(Id, u32)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u32))
        .collect();
    xs.sort_unstable();
    let (mut c, mut k) = (Vec::new(), Vec::new());
    for keys in [100_000usize, 250_000, 500_000, 750_000, 1_000_000] {
        let (mut cc, mut kc) = (vec![0u64; nodes], vec![0u64; nodes]);
        let mut krng = ChaCha8Rng::seed_from_u64(keys as u64);
        for _ in 0..keys {
            let key = Id::random(&mut krng);
            cc[ring.successor(&key).1 as usize] += 1;
            kc[xor_closest(&xs, &key) as usize] += 1;
        }
        let (cm, c1, c99) = spread(cc);
        let (km, k1, k99) = spread(kc);
        let _ = writeln!(
            md,
            "| {keys} | {cm:.0} | {c1} | {c99} | {:.2} | {km:.0} | {k1} | {k99} | {:.2} |",
            c99 as f64 / cm,
            k99 as f64 / km
        );
        c.push((keys as f64 / 1e5, cm, c1 as f64, c99 as f64));
        k.push((keys as f64 / 1e5, km, k1 as f64, k99 as f64));
    }
    md.push_str("\n## Chord with virtual nodes (10^6 keys; a real node's load is the sum over its v virtual ids)\n\n| v | mean | p1 | p99 | p99/mean |\n| --- | --- | --- | --- | --- |\n");
    for v in [1usize, 2, 5, 10, 20] {
        let mut vrng = ChaCha8Rng::seed_from_u64(100 + v as u64);
        let vring = Ring::from_ids((0..nodes * v).map(|j| (Id::random(&mut vrng), (j / v) as u32)));
        let mut cc = vec![0u64; nodes];
        let mut krng = ChaCha8Rng::seed_from_u64(1_000_000);
        for _ in 0..1_000_000 {
            cc[vring.successor(&Id::random(&mut krng)).1 as usize] += 1;
        }
        let (m, p1, p99) = spread(cc);
        let _ = writeln!(
            md,
            "| {v} | {m:.0} | {p1} | {p99} | {:.2} |",
            p99 as f64 / m
        );
    }
    let plot = svg(
        "Keys per node, N = 10,000 (mean; bars p1..p99)",
        "keys (x 100,000)",
        "keys per node",
        false,
        &[
            Series {
                name: "Chord",
                color: "#c0392b",
                points: c,
            },
            Series {
                name: "Kademlia (closest node)",
                color: "#2471a3",
                points: k,
            },
        ],
    );
    write("load-balance", &md, &plot).expect("write the results");
}

fn failure(nodes: usize) {
    let items = nodes.min(1000);
    let mut md = format!("# Simultaneous failure, N = {nodes}\n\n\
`cargo run --release -p dht-sim --example chord_figures -- failure {nodes}`: for each fraction \
F, `dht-sim --overlay chord|kademlia --nodes {nodes} --lookups {items} --fail F --seed 1`: after \
the default join, {items} items are put from random nodes (Chord: at the key's successor, \
copied to its next r - 1 = 7; Kademlia: at the k = 8 closest), 2 s pass, a random fraction F \
of the nodes is killed at once, and every item is got from a random survivor at once, \
one get every 5 ms, before the overlay repairs itself (gets that meet dead nodes time \
out and fall back).\n\n\
| failed nodes | Chord failed gets | msgs/get | Kademlia failed gets | msgs/get |\n| --- | --- | --- | --- | --- |\n");
    let (mut c, mut k) = (Vec::new(), Vec::new());
    for f in [0.0, 0.1, 0.2, 0.3, 0.4, 0.5] {
        let mut exp = Experiment::new(config(nodes), items);
        exp.fail = Some(f);
        let rc = run("chord", &exp);
        let rk = run("kademlia", &exp);
        let (fc, fk) = (
            1.0 - rc.get_success.unwrap_or(0.0),
            1.0 - rk.get_success.unwrap_or(0.0),
        );
        let _ = writeln!(
            md,
            "| {f:.1} | {fc:.4} | {:.1} | {fk:.4} | {:.1} |",
            rc.messages_per_get.unwrap_or(0.0),
            rk.messages_per_get.unwrap_or(0.0)
        );
        c.push((f, fc, fc, fc));
        k.push((f, fk, fk, fk));
    }
    md.push_str(FAILURE_FOOT);
    let plot = svg(
        "Failed gets after simultaneous failure",
        "fraction of nodes failed",
        "fraction of gets failed",
        false,
        &[
            Series {
                name: "Chord r=8",
                color: "#c0392b",
                points: c,
            },
            Series {
                name: "Kademlia k=8",
                color: "#2471a3",
                points: k,
            },
        ],
    );
    write("failure", &md, &plot).expect("write the results");
}

fn churn(nodes: usize) {
    use dht_sim::churn::{run_chord, run_kademlia, Churn};
    let mut md = format!("# Lookups under continuous churn, N = {nodes}\n\n\
`cargo run --release -p dht-sim --example chord_figures -- churn {nodes}`: seed 1; after the \
default join, nodes fail (killed, no goodbye) and new nodes join (through 4 random live \
nodes) as two Poisson processes of rate R per second each; after 60 s of churn, lookups of \
random targets from random live nodes arrive at 10 per second for 200 s. A lookup fails \
when, as it ends, its answer lacks the node then responsible for the target (Chord: the \
key's live successor first; Kademlia: the closest live node other than the source); a \
lookup whose source dies or that takes over 60 s fails too. Chord: r = 8, stabilize every \
1 s, fix_fingers every 2 s (mean, jittered); Kademlia: k = 8, alpha = 3 (dht-core's \
defaults).\n\n\
| R (per s) | R x stabilize period | Chord failed | p50 ms | p99 ms | hops | timeouts | Kademlia failed | p50 ms | p99 ms | hops | timeouts |\n\
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    let (mut c, mut k, mut cl, mut kl) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rate in [0.05, 0.1, 0.2, 0.4, 0.8, 1.6] {
        let ch = Churn {
            sim: config(nodes),
            rate,
            lookup_rate: 10.0,
            warmup: std::time::Duration::from_secs(60),
            duration: std::time::Duration::from_secs(200),
        };
        eprintln!("churn R = {rate}");
        let rc = run_chord(&ch);
        let rk = run_kademlia(&ch);
        let _ = writeln!(
            md,
            "| {rate} | {rate:.2} | {:.4} | {:.0} | {:.0} | {:.2} | {:.2} | {:.4} | {:.0} | {:.0} | {:.2} | {:.2} |",
            rc.failed,
            rc.latency_ms_p50,
            rc.latency_ms_p99,
            rc.hops_mean,
            rc.timeouts_per_lookup,
            rk.failed,
            rk.latency_ms_p50,
            rk.latency_ms_p99,
            rk.hops_mean,
            rk.timeouts_per_lookup
        );
        eprintln!("{rc:?}\n{rk:?}");
        c.push((rate, rc.failed, rc.failed, rc.failed));
        k.push((rate, rk.failed, rk.failed, rk.failed));
        cl.push((
            rate,
            rc.latency_ms_p50,
            rc.latency_ms_p50,
            rc.latency_ms_p99,
        ));
        kl.push((
            rate,
            rk.latency_ms_p50,
            rk.latency_ms_p50,
            rk.latency_ms_p99,
        ));
    }
    md.push_str(CHURN_FOOT);
    let plot = svg(
        "Failed lookups under churn (R joins and R failures per second)",
        "R (log scale)",
        "fraction of lookups failed",
        true,
        &[
            Series {
                name: "Chord r=8",
                color: "#c0392b",
                points: c,
            },
            Series {
                name: "Kademlia k=8 a=3",
                color: "#2471a3",
                points: k,
            },
        ],
    );
    write("churn", &md, &plot).expect("write the results");
    let plot = svg(
        "Lookup latency under churn (p50; bars to p99)",
        "R (log scale)",
        "ms",
        true,
        &[
            Series {
                name: "Chord r=8",
                color: "#c0392b",
                points: cl,
            },
            Series {
                name: "Kademlia k=8 a=3",
                color: "#2471a3",
                points: kl,
            },
        ],
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::write(dir.join("churn-latency.svg"), plot).expect("write svg");
}

/// Footer of `results/failure.md`.
const FAILURE_FOOT: &str = "\n\
Compare: SIGCOMM 2001 Figure 11 (Section 6.4, Simultaneous Node Failures) measures \
something else on purpose: 10^4 nodes, 10^6 keys, a fraction p of the nodes fails, the \
network is left to finish stabilizing, and a lookup counts as correct only if it finds \
the node originally responsible for the key (no replication, no recovery of values); \
the paper reports a failure rate almost exactly p, i.e. only the keys whose node died, \
and no partition. Ours measures gets of replicated values before any repair, the \
issue's setting: a get fails only if all r = 8 (k = 8) copies died, probability about \
F^8 (0.4 % at F = 0.5), or if the lookup cannot reach a live holder in time. The ToN \
2003 version has a closer experiment (a table of failed lookups for 0 to 50 % failed \
nodes, N = 1,000, r = 20, before stabilization); its text was not found in the search \
index, only a third-party summary of its setting, so its numbers are not quoted here.\n";

/// Footer of `results/churn.md`.
const CHURN_FOOT: &str = "\n\
Compare: SIGCOMM 2001 Figure 12 (Section 6.5, Lookups During Stabilization). There, \
lookups arrive at 1 per second, joins and failures as a Poisson process of rate R, \
every node runs stabilization at randomized intervals of 30 s on average (updating all \
fingers each time), the network starts with 500 nodes, the simulator does not retry a \
query sent to a dead node, and R runs from 0.01 per second (one failure per 3 \
stabilization periods) to 3 failures per stabilization period; the paper's estimate \
for about 3 failures between stabilizations is a failure rate near 3 %, and the \
measured curve is in that ball-park, slightly worse. Ours stabilizes every 1 s, so R \
x stabilize period (the paper's x axis in stabilizations) is R itself, and our \
lookups back off to the next closest node after a 500 ms timeout, which the paper's \
did not. See churn.svg and churn-latency.svg.\n";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    match args.first().map(String::as_str) {
        Some("path-length") => path_length(num(1, 14) as u32),
        Some("load") => load(),
        Some("failure") => failure(num(1, 2000) as usize),
        Some("churn") => churn(num(1, 1000) as usize),
        _ => eprintln!(
            "usage: chord_figures path-length [MAX_LOG2_N] | load | failure [N] | churn [N]"
        ),
    }
}
