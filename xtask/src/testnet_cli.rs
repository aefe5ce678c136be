//! `cargo xtask testnet`'s command line: its help and its options.

use crate::testnet::{self, Overlay, Store, TestnetConfig, Transport, Verdict};
use crate::{out, Error, Options, Parsed};

pub(crate) const TESTNET_USAGE: &str = "\
cargo xtask testnet: many dht-node processes on this machine, under churn, with a workload

USAGE:
    cargo xtask testnet [OPTIONS]

Builds dht-node and dht-workload in release mode, starts NODES nodes on 127.0.0.1 (or, with
--netns, each in its own network namespace), waits until every node has joined, then runs a
mixed workload from a dht-workload process through one Dht handle: immutable and mutable puts,
gets of items put earlier (a success only when the exact value, or a newer seq, comes back),
announces and get_peers. Meanwhile ceil(CHURN x NODES) random nodes are killed (SIGKILL) and
restarted on the same address (and sled data dir) every minute; runs shorter than 120 s churn
every half of their duration, at most every 30 s. Nothing leaves the machine: every node and
the workload bootstrap only from testnet addresses.

Prints progress on stderr, then a table of operations by type (count, success rate, latency
p50 / p95 / p99 of the successful ones, mean hops and messages per answered operation). Writes
TARGET/testnet/report.json (the JSON object), TARGET/testnet/latency.svg (latency CDF),
TARGET/testnet/rss.csv and rss.svg (every node's VmRSS over the run; the report gives the
growth of each node that lived through it), TARGET/testnet/workload.jsonl (every operation)
and TARGET/testnet/logs/ (one log per node),
where TARGET is CARGO_TARGET_DIR or target/. Every process and namespace it started is
removed at the end, on failure and on Ctrl-C.

OPTIONS:
    --nodes N            Node processes                                  [default: 20]
    --overlay O          mainline | chord | ipfs. chord starts a Chord ring (dht-node
                         --overlay chord; node 0 creates it) and drives the workload itself:
                         each operation is one `dht-node --overlay chord put|get` client
                         asking 3 random members, half puts, half gets of earlier puts; the
                         same records and report. UDP, memory, loopback only. ipfs starts
                         server nodes (dht-node --features ipfs --overlay ipfs, each with a
                         key of its own, kept across restarts) and drives one-shot clients
                         the same way: provide / providers of CIDs (announce / get_peers
                         rows) and put-record / get-record of /pk records (put_mutable /
                         get_mutable rows). TCP, loopback; --store sled too [default: mainline]
    --transport T        udp | quic (quic builds dht-node --features quic) [default: udp]
    --store S            mem | sled (sled builds dht-node --features sled, one data dir
                         per node, kept across restarts)                 [default: mem]
    --duration SECS      How long the workload runs                      [default: 60]
    --ops-per-sec R      Operations the workload starts per second       [default: 20]
    --churn FRACTION     Fraction of nodes restarted per round, 0 to 1   [default: 0.1]
    --long-lived N       Nodes 0..N-1 are never killed by churn, so that some processes live
                         through the whole run and their memory is measured (--max-rss-growth)
                                           [default: NODES / 5 from 600 s on, else 0]
    --threshold F        Exit 1 when the success rate is below F (0 to 1) [default: 0.99]
    --republish SECS     How often the workload republishes what it put  [default: the
                                                                          handle's, 50 min]
    --item-ttl SECS      The nodes keep a BEP 44 item this long without a refresh [default:
                         BEP 44's 7200]. With --peer-ttl, --republish and --working-set a soak
                         compresses time as churn does: the stored data reaches a steady state
                         within the warm-up, so RSS growth after it is not data (docs/soak/)
    --peer-ttl SECS      The nodes keep an announced peer this long      [default: 1800]
    --working-set N      The workload keeps reading and republishing only its newest N
                         immutable items and N announces; older ones are left to expire
                                                                    [default: all of them]
    --seed N             Seed of the workload and of churn's choices     [default: 1]
    --netns              One network namespace per node, with its own address (198.18.X.1,
                         one /24 each, veth pairs on a bridge it creates and removes). Needs
                         root and iproute2; exercises the per-IP rules with real addresses
    --delay MS           Every node (and the workload) holds each datagram it sends for its
                         own delay, drawn once uniform in [0.2 MS, 1.8 MS], so a round trip
                         between two nodes averages 2 MS, as in dht-sim with --latency-ms MS.
                         netem would do this on the links, but the kernels we run on lack it
                         (CONFIG_NET_SCH_NETEM); this works on loopback and with --netns. UDP
    --max-rss-growth PCT Exit 1 when a node that lived through the run grew its RSS by PCT %
                         or more between the warm-up's end (DURATION / 12, at most 10 min)
                         and the run's end. RSS is sampled every DURATION / 120 (1 to 60 s)
                         and always reported; without this flag it does not decide the exit
    --json               Print the report as one JSON object on the last line of stdout, with
                         a top-level success_rate (0 to 1); the table goes to stderr
    --all-features       Build dht-node with every feature (quic, sled, ipfs) whatever the
                         run needs: one build then serves every transport, store and
                         overlay (CI runs five testnets; each feature set is a build of its
                         own, the ipfs one compiles libp2p)
    -h, --help           Print this help

EXIT STATUS:
    0 the success rate met the threshold (and RSS its limit), 1 it did not or the run failed,
    2 bad usage
    (or --netns without root).";
pub(crate) fn run_testnet(args: &[String]) -> Result<(), Error> {
    let config = match parse_testnet(args)? {
        Parsed::Run(config) => config,
        Parsed::Help => {
            out!("{TESTNET_USAGE}");
            return Ok(());
        }
    };
    match testnet::run(&config)? {
        Verdict::Passed => Ok(()),
        // The report is printed already; only the status is left to say it.
        Verdict::BelowThreshold | Verdict::RssGrew => std::process::exit(1),
    }
}

/// A node keeps items and peers between 1 s and a day (dht-node's hidden flags' range).
fn ttl(options: &Options<'_>, secs: usize) -> Result<u64, Error> {
    if secs > 86_400 {
        return Err(options.usage(format!(
            "--item-ttl and --peer-ttl are at most 86400 s, not {secs}"
        )));
    }
    Ok(secs as u64)
}

fn parse_testnet(args: &[String]) -> Result<Parsed<TestnetConfig>, Error> {
    let mut options = Options::new(args, "testnet ");
    let mut config = TestnetConfig::default();
    while let Some((name, inline)) = options.next_name() {
        match name {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--nodes" => config.nodes = options.positive(name, inline)?,
            "--overlay" => {
                let value = options.value(name, inline)?;
                config.overlay = Overlay::parse(value).ok_or_else(|| {
                    options.usage(format!(
                        "--overlay: `{value}` is not mainline, chord or ipfs"
                    ))
                })?;
            }
            "--transport" => {
                config.transport = match options.value(name, inline)? {
                    "udp" => Transport::Udp,
                    "quic" => Transport::Quic,
                    other => {
                        return Err(
                            options.usage(format!("--transport: `{other}` is not udp or quic"))
                        )
                    }
                }
            }
            "--store" => {
                config.store = match options.value(name, inline)? {
                    "mem" => Store::Mem,
                    "sled" => Store::Sled,
                    other => {
                        return Err(options.usage(format!("--store: `{other}` is not mem or sled")))
                    }
                }
            }
            "--duration" => {
                config.duration = options.seconds(name, inline)?;
                if config.duration.is_zero() {
                    return Err(options.usage("--duration must be above 0".into()));
                }
            }
            "--ops-per-sec" => {
                let r: f64 = options.parsed(name, inline)?;
                if !(r > 0.0 && r <= 100_000.0) {
                    return Err(options.usage(format!(
                        "--ops-per-sec must be above 0 and at most 100000, not `{r}`"
                    )));
                }
                config.ops_per_sec = r;
            }
            "--churn" => config.churn = options.fraction(name, inline)?,
            "--threshold" => config.threshold = options.fraction(name, inline)?,
            "--republish" => config.republish = Some(options.positive(name, inline)? as u64),
            "--item-ttl" => {
                let secs = options.positive(name, inline)?;
                config.item_ttl = Some(ttl(&options, secs)?);
            }
            "--peer-ttl" => {
                let secs = options.positive(name, inline)?;
                config.peer_ttl = Some(ttl(&options, secs)?);
            }
            "--working-set" => config.working_set = Some(options.positive(name, inline)?),
            "--seed" => config.seed = options.parsed(name, inline)?,
            "--netns" => config.netns = true,
            "--delay" => {
                let ms: f64 = options.parsed(name, inline)?;
                if !(ms > 0.0 && ms <= 1000.0) {
                    return Err(options.usage(format!(
                        "--delay must be above 0 and at most 1000 ms, not `{ms}`"
                    )));
                }
                config.delay_ms = Some(ms);
            }
            "--json" => config.json = true,
            "--all-features" => config.all_features = true,
            "--long-lived" => config.long_lived = Some(options.parsed(name, inline)?),
            "--max-rss-growth" => {
                let pct: f64 = options.parsed(name, inline)?;
                if !(pct > 0.0 && pct.is_finite()) {
                    return Err(options.usage(format!(
                        "--max-rss-growth must be a percentage above 0, not `{pct}`"
                    )));
                }
                config.max_rss_growth = Some(pct);
            }
            other => return Err(options.usage(format!("unknown option `{other}`"))),
        }
    }
    if config.nodes < 2 {
        return Err(options.usage("--nodes must be at least 2: a network needs peers".into()));
    }
    config.check_overlay().map_err(|e| options.usage(e))?;
    if config.delay_ms.is_some() && config.transport == Transport::Quic {
        return Err(options.usage(
            "--delay is for UDP (the nodes hold their datagrams; QUIC has its own timers)".into(),
        ));
    }
    Ok(Parsed::Run(config))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    use crate::test_args as args;

    #[test]
    fn testnet_options() {
        let Ok(Parsed::Run(c)) = parse_testnet(&args(
            "--nodes 50 --transport=quic --store sled --duration 600 --ops-per-sec=40 \
             --churn 0.1 --threshold 0.999 --republish 120 --seed 7 --netns --json \
             --long-lived 10 --max-rss-growth 5 --item-ttl 300 --peer-ttl 240 --working-set 500 \
             --all-features",
        )) else {
            panic!("did not parse");
        };
        assert_eq!(
            (c.nodes, c.transport, c.store),
            (50, Transport::Quic, Store::Sled)
        );
        assert_eq!(c.duration, Duration::from_secs(600));
        assert_eq!((c.ops_per_sec, c.churn, c.threshold), (40.0, 0.1, 0.999));
        assert_eq!(
            (c.republish, c.seed, c.netns, c.json),
            (Some(120), 7, true, true)
        );
        assert_eq!((c.long_lived, c.max_rss_growth), (Some(10), Some(5.0)));
        assert!(c.all_features);
        assert_eq!(
            (c.item_ttl, c.peer_ttl, c.working_set),
            (Some(300), Some(240), Some(500))
        );
        let Ok(Parsed::Run(d)) = parse_testnet(&[]) else {
            panic!("defaults did not parse");
        };
        assert_eq!(
            (d.nodes, d.overlay, d.transport, d.store),
            (20, Overlay::Mainline, Transport::Udp, Store::Mem)
        );
        let Ok(Parsed::Run(e)) = parse_testnet(&args("--overlay chord --nodes 20 --duration 20"))
        else {
            panic!("chord did not parse");
        };
        assert_eq!((e.overlay, e.nodes), (Overlay::Chord, 20));
        for line in [
            "--overlay kademlia",
            "--overlay chord --transport quic",
            "--overlay chord --store sled",
            "--overlay chord --netns",
            "--overlay chord --republish 60",
            "--overlay chord --item-ttl 60",
            "--overlay ipfs --working-set 10",
            "--item-ttl 0",
            "--peer-ttl 86401",
            "--nodes 0",
            "--nodes 1",
            "--transport tcp",
            "--store disk",
            "--duration 0",
            "--ops-per-sec 0",
            "--churn 1.5",
            "--threshold -0.1",
            "--seed x",
            "--long-lived -1",
            "--max-rss-growth 0",
            "--max-rss-growth inf",
            "--frobnicate",
        ] {
            assert!(
                matches!(parse_testnet(&args(line)), Err(Error::Usage(_, "testnet "))),
                "{line}"
            );
        }
    }
}
