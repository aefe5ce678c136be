//! Items under churn, with and without Kademlia's handover: writes
//! `dht-sim/results/retention.md` and `retention.svg`.
//!
//! ```text
//! cargo run --release -p dht-sim --example retention -- 1000 1800   # N nodes, seconds of churn
//! ```
//! For each churn rate R (failures per second, and as many joins), `dht_sim::retention`
//! puts 500 items on N nodes, churns for the given time with nobody republishing, then
//! gets every item from a random live node: once with handover and once without.

use std::fmt::Write as _;
use std::time::Duration;

use dht_sim::figures::{svg, write, Series};
use dht_sim::retention::{run, Retention, RetentionReport};
use dht_sim::SimConfig;

const ITEMS: usize = 500;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut num = |default: u64| -> u64 {
        args.next()
            .map(|a| a.parse::<u64>().expect("a whole number"))
            .unwrap_or(default)
    };
    let (nodes, secs) = (num(1000) as usize, num(1800));
    // Mean node lifetimes of N / R seconds: for N = 1,000, about 67, 33, 17 and 8 minutes.
    let rates = [0.25, 0.5, 1.0, 2.0];
    let mut md = format!(
        "# Items under churn, N = {nodes}\n\n\
`cargo run --release -p dht-sim --example retention -- {nodes} {secs}`: seed 1, public \
address plan, k = 8; after the join, {ITEMS} immutable items are put from random nodes; \
then for {secs} s of virtual time nodes fail (killed, no goodbye) and new nodes join \
through 4 random live ones, as two Poisson processes of rate R per second each, and \
nobody republishes; then every item is got from a random live node. `found`: items whose \
get returned the exact value. A node lives N / R seconds on average.\n\n\
| R per s | mean life, min | handover | found | put ok | handovers | failures | joins | live at end | wall s | event hash |\n\
| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n"
    );
    let mut series = vec![
        Series {
            name: "with handover",
            color: "#1f77b4",
            points: Vec::new(),
        },
        Series {
            name: "without handover",
            color: "#d62728",
            points: Vec::new(),
        },
    ];
    for rate in rates {
        for (s, handover) in [(0, true), (1, false)] {
            let mut sim = SimConfig::new(nodes, 1);
            sim.handover = handover;
            eprintln!("R = {rate}, handover {handover}");
            let r: RetentionReport = run(&Retention {
                sim,
                items: ITEMS,
                rate,
                duration: Duration::from_secs(secs),
            });
            eprintln!("{r:?}");
            let _ = writeln!(
                md,
                "| {rate} | {:.0} | {} | {:.3} | {:.3} | {} | {} | {} | {} | {:.0} | `{}` |",
                nodes as f64 / rate / 60.0,
                if handover { "on" } else { "off" },
                r.found,
                r.put_ok,
                r.handovers,
                r.failures,
                r.joins,
                r.live_at_end,
                r.wall_seconds,
                &r.event_hash[..8.min(r.event_hash.len())],
            );
            series[s].points.push((rate, r.found, r.found, r.found));
        }
    }
    let plot = svg(
        &format!("Items found after {secs} s of churn, N = {nodes}, no republish"),
        "R: failures (and joins) per second",
        "fraction of items found",
        false,
        &series,
    );
    write("retention", &md, &plot).expect("write the results");
}
