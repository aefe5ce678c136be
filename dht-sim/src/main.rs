//! `dht-sim`: runs one experiment and prints its figures (see the crate docs).

use std::io::Write as _;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{value_parser, Arg, ArgAction, Command};
use dht_sim::{AddressPlan, EclipseBudget, Experiment, SimConfig, SybilAttack, SybilPlacement};

fn fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("`{s}` is not in [0, 1)"))
    }
}

fn positive_ms(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    // Above an hour a latency is a typo, and nanosecond arithmetic would overflow sooner or later.
    if v > 0.0 && v <= 3_600_000.0 {
        Ok(v)
    } else {
        Err(format!("`{s}` is not in (0, 3600000]"))
    }
}

/// Refuses a combination of arguments clap cannot express, as clap does: a message
/// and status 2.
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2);
}

fn cli() -> Command {
    Command::new("dht-sim")
        .about("Deterministic simulation of a DHT of N nodes: BitTorrent Mainline (dht-core), Chord or IPFS's Kademlia (dht-ipfs)")
        .arg(
            Arg::new("nodes")
                .long("nodes")
                .value_name("N")
                .help("Nodes in the network")
                .default_value("1000")
                // Private plan: addresses are 10.0.0.1 + i, and the 10/8 block holds
                // 2^24 - 1 of them; the public plan has more /24s than that.
                .value_parser(value_parser!(u32).range(1..16_000_000)),
        )
        .arg(
            Arg::new("lookups")
                .long("lookups")
                .value_name("L")
                .help("find_node lookups (and, with --fail, items put and got)")
                .default_value("1000")
                .value_parser(value_parser!(u32).range(0..10_000_000)),
        )
        .arg(
            Arg::new("seed")
                .long("seed")
                .value_name("S")
                .help("Seed of the whole run")
                .default_value("1")
                .value_parser(value_parser!(u64)),
        )
        .arg(
            Arg::new("latency-ms")
                .long("latency-ms")
                .value_name("MS")
                .help("Mean one-way latency: per-link base uniform in [0.2, 1.6] x MS, plus jitter in [0, 0.2) x MS")
                .default_value("50")
                .value_parser(positive_ms),
        )
        .arg(
            Arg::new("loss")
                .long("loss")
                .value_name("P")
                .help("Probability that a datagram is lost")
                .default_value("0")
                .value_parser(fraction),
        )
        .arg(
            Arg::new("fail")
                .long("fail")
                .value_name("F")
                .help("Put L items, kill this fraction of the nodes at once, get the items from survivors")
                .value_parser(fraction),
        )
        .arg(
            Arg::new("k")
                .long("k")
                .value_name("K")
                .help("Bucket size and replication factor (default 8; ipfs: 20)")
                .default_value("8")
                .value_parser(value_parser!(u32).range(1..=64)),
        )
        .arg(
            Arg::new("alpha")
                .long("alpha")
                .value_name("A")
                .help("Requests in flight per lookup (default: dht-core's Config default; ipfs: per lookup path, dht-ipfs's default)")
                .value_parser(value_parser!(u32).range(1..=64)),
        )
        .arg(
            Arg::new("settle")
                .long("settle")
                .value_name("SECS")
                .help("Virtual seconds the network runs after the last node joined, before the lookups")
                .default_value("60")
                .value_parser(value_parser!(u32).range(0..=86_400)),
        )
        .arg(
            Arg::new("sybil")
                .long("sybil")
                .value_name("F")
                .help("Make this fraction of the nodes Sybils; put L items from honest nodes and get each from one (no find_node phase)")
                .conflicts_with("fail")
                .value_parser(fraction),
        )
        .arg(
            Arg::new("eclipse")
                .long("eclipse")
                .value_name("N")
                .help("A targeted eclipse: put L items from honest nodes, then N attackers per item at the ids closest to its target that their addresses allow (any id: closer than every honest node; see --eclipse-budget, --bep42), answering with their key's attackers only and storing nothing, then get each item from an honest node (--eclipse-before-puts: the attackers come first)")
                .conflicts_with_all(["fail", "sybil"])
                .value_parser(value_parser!(u32).range(1..=1024)),
        )
        .arg(
            Arg::new("eclipse-budget")
                .long("eclipse-budget")
                .value_name("B")
                .help("The addresses each key's attackers share: 24 (one /24), 16 (one /16), Nx24 (N /24s in N different /16s, e.g. 64x24); default: a /24 of its own for each attacker")
                .requires("eclipse")
                .value_parser(|s: &str| {
                    EclipseBudget::parse(s).ok_or_else(|| "24, 16 or Nx24 (N from 1 to 4096)".to_string())
                }),
        )
        .arg(
            Arg::new("eclipse-before-puts")
                .long("eclipse-before-puts")
                .help("The attackers arrive before the items are put (the puts then write to whichever attackers they find), not after")
                .requires("eclipse")
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new("bep42")
                .long("bep42")
                .value_name("ON_OFF")
                .help("on: every honest node takes a BEP 42 id for its address and refuses others' ids that do not fit theirs (Enforce); with --eclipse the attackers then use the valid ids closest to each key that their addresses allow. off: dht-core's defaults (random ids, BEP 42 preferred)")
                .default_value("off")
                .value_parser(["on", "off"]),
        )
        .arg(
            Arg::new("sybil-placement")
                .long("sybil-placement")
                .value_name("WHERE")
                .help("random: random ids, joining from the start; adjacent: next to the items' targets, after the puts")
                .requires("sybil")
                .default_value("random")
                .value_parser(["random", "adjacent"]),
        )
        .arg(
            Arg::new("sybil-prefixes")
                .long("sybil-prefixes")
                .value_name("P")
                .help("Put all Sybils on P random public /24s (public plan; default: a /24 each)")
                .requires("sybil")
                .value_parser(value_parser!(u32).range(1..=1_000_000)),
        )
        .arg(
            Arg::new("address-plan")
                .long("address-plan")
                .value_name("PLAN")
                .help("public: every node on a random public /24 of its own, every per-address defense on; private: 10.0.0.1 + i and Sybils at 172.16.0.1 + s, exempt as a LAN")
                .default_value("public")
                .value_parser(["public", "private"]),
        )
        .arg(
            Arg::new("gets")
                .long("gets")
                .value_name("G")
                .help("After the lookups, put G immutable items and get each from a random node (get_success, get latency)")
                .default_value("0")
                .conflicts_with_all(["fail", "sybil", "eclipse"])
                .value_parser(value_parser!(u32).range(0..10_000_000)),
        )
        .arg(
            Arg::new("disjoint")
                .long("disjoint")
                .value_name("D")
                .help("Disjoint paths of get and get_peers lookups (S/Kademlia); 1 is the plain lookup")
                .default_value("1")
                .value_parser(value_parser!(u32).range(1..=16)),
        )
        .arg(
            Arg::new("overlay")
                .long("overlay")
                .value_name("OVERLAY")
                .help("kademlia (dht-core), chord (dht-chord; --k is then r, the successor-list length and copies per key) or ipfs (dht-ipfs on streams, with connections, k = 20 unless --k; --fail puts /pk records and provider keys)")
                .default_value("kademlia")
                .conflicts_with_all(["sybil", "eclipse"])
                .value_parser(["kademlia", "chord", "ipfs"]),
        )
        .arg(
            Arg::new("join-interval-ms")
                .long("join-interval-ms")
                .value_name("MS")
                .help("Time between two nodes' arrivals (default: 1; ipfs: 100)")
                .value_parser(value_parser!(u32).range(1..=60_000)),
        )
        .arg(
            Arg::new("handshake-rtts")
                .long("handshake-rtts")
                .value_name("R")
                .help("ipfs: round trips a new connection's handshake takes before its first request (TCP + noise + yamux + multistream-select)")
                .default_value("3")
                .value_parser(value_parser!(u32).range(0..=100)),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .help("Print one JSON object as the last line of stdout")
                .action(ArgAction::SetTrue),
        )
}

fn main() {
    // get_matches prints clap's message and exits with status 2 on bad input.
    let m = cli().get_matches();
    // Every argument below has a default or is optional, and clap has already checked its type.
    let get_u32 = |name: &str| m.get_one::<u32>(name).copied().unwrap_or_default() as usize;
    let mut sim = SimConfig::new(
        get_u32("nodes"),
        m.get_one::<u64>("seed").copied().unwrap_or(1),
    );
    sim.latency_ms = m.get_one::<f64>("latency-ms").copied().unwrap_or(50.0);
    sim.loss = m.get_one::<f64>("loss").copied().unwrap_or(0.0);
    sim.k = get_u32("k");
    // Unless --alpha is given, each overlay's own default: SimConfig::new's is
    // dht-core's, so that the simulator measures what a node runs with.
    if let Some(&a) = m.get_one::<u32>("alpha") {
        sim.alpha = a as usize;
    }
    sim.settle = Duration::from_secs(get_u32("settle") as u64);
    sim.disjoint_paths = get_u32("disjoint");
    sim.handshake_rtts = get_u32("handshake-rtts") as u32;
    sim.bep42 = m.get_one::<String>("bep42").map(String::as_str) == Some("on");
    let overlay = m
        .get_one::<String>("overlay")
        .map_or("kademlia", String::as_str);
    if overlay == "ipfs" {
        // dht-ipfs's own k (20) unless --k was given, and its arrivals (one every 100 ms).
        let ipfs = dht_sim::ipfs::config(sim.nodes, sim.seed);
        if m.value_source("k") != Some(ValueSource::CommandLine) {
            sim.k = ipfs.k;
        }
        if m.value_source("alpha") != Some(ValueSource::CommandLine) {
            sim.alpha = ipfs.alpha;
        }
        sim.join_interval = ipfs.join_interval;
    }
    if let Some(&ms) = m.get_one::<u32>("join-interval-ms") {
        sim.join_interval = Duration::from_millis(u64::from(ms));
    }
    let sybil_prefixes = m.get_one::<u32>("sybil-prefixes").map(|&p| p as usize);
    sim.address_plan = match m.get_one::<String>("address-plan").map(String::as_str) {
        Some("private") => {
            if sybil_prefixes.is_some() {
                fail("--sybil-prefixes needs --address-plan public (private Sybils sit at 172.16.0.1 + s)");
            }
            AddressPlan::Private
        }
        _ => {
            // IPFS nodes sit on 127.x.y.z multiaddrs whatever the plan.
            if overlay != "ipfs" && sim.nodes > dht_sim::MAX_PUBLIC_PREFIXES {
                fail(&format!(
                    "the public address plan holds at most {} nodes (--address-plan private: up to 16,000,000)",
                    dht_sim::MAX_PUBLIC_PREFIXES
                ));
            }
            AddressPlan::Public { sybil_prefixes }
        }
    };
    if overlay != "kademlia" && get_u32("gets") > 0 {
        fail("--gets is for --overlay kademlia (chord and ipfs: --fail has its own gets)");
    }
    let mut exp = Experiment::new(sim, get_u32("lookups"));
    exp.fail = m.get_one::<f64>("fail").copied();
    exp.sybil = m.get_one::<f64>("sybil").map(|&fraction| SybilAttack {
        fraction,
        placement: match m.get_one::<String>("sybil-placement").map(String::as_str) {
            Some("adjacent") => SybilPlacement::Adjacent,
            _ => SybilPlacement::Random,
        },
    });
    if let Some(&per_key) = m.get_one::<u32>("eclipse") {
        exp.sybil = Some(SybilAttack {
            fraction: 0.0,
            placement: SybilPlacement::Eclipse {
                per_key: per_key as usize,
            },
        });
    }
    exp.eclipse_budget = m.get_one::<EclipseBudget>("eclipse-budget").copied();
    exp.eclipse_before_puts = m.get_flag("eclipse-before-puts");
    if (exp.sim.address_plan == AddressPlan::Private || overlay != "kademlia")
        && (exp.sim.bep42 || exp.eclipse_budget.is_some())
    {
        fail("--bep42 on and --eclipse-budget need --overlay kademlia on the public address plan");
    }
    exp.phase_limit = Duration::from_secs(600);
    exp.gets = get_u32("gets");
    if exp.sybil.is_some() {
        let (want, max) = (exp.attackers(), exp.sim.address_plan.max_sybils());
        if want > max {
            fail(&format!(
                "{want} Sybils do not fit the address plan (at most {max}: 254 hosts per shared /24)"
            ));
        }
    }

    let report = match overlay {
        "chord" => dht_sim::chord::run(&exp, |line| eprintln!("{line}")),
        "ipfs" => dht_sim::ipfs::run(&exp, |line| eprintln!("{line}")),
        _ => dht_sim::run(&exp, |line| eprintln!("{line}")),
    };
    let mut out = std::io::stdout().lock();
    let text = if m.get_flag("json") {
        format!("{}\n", report.to_json())
    } else {
        report.to_table()
    };
    // A closed pipe (e.g. `| head`) is not worth a panic.
    let _ = out.write_all(text.as_bytes());
}
