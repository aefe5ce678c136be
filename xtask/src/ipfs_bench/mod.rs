//! `cargo xtask ipfs-bench`: our IPFS node against rust-libp2p 0.57's kad, side by side
//! in one run (issue 24, item 4): FIND_NODE answered per second by one pinned server,
//! with a canned-reply server as the transport's ceiling and the CPU per request split
//! between transport and engine; lookup latency on a loopback network of each; idle
//! RSS of one server. The processes are `dht-ipfs-bench`'s (built here in release
//! mode); this module starts them, reads /proc and prints the report. What it measures
//! and why is in docs/ipfs-bench.md.

mod child;
mod stats;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{out, Error, Options};
use child::Proc;

pub const USAGE: &str = "\
cargo xtask ipfs-bench: our IPFS node against rust-libp2p 0.57's kad, side by side

USAGE:
    cargo xtask ipfs-bench [OPTIONS]

Builds dht-ipfs-bench (release) and runs, on 127.0.0.1 only:

rate     FIND_NODE answered per second by one server pinned to CPU --server-cpu: ours
         (dht-net-libp2p's IpfsHost), rust-libp2p's kad (default config, server mode)
         and a canned server (the same transport answering every stream with one fixed
         reply: the ceiling, no engine), each holding the same table of B x K peers
         (--buckets x --per-bucket, ground to fill distinct buckets; the canned one has
         none), loaded from CPU --load-cpu by --connections clients, each keeping
         --window requests in flight, every request on a new stream, for random keys.
         --pairs rounds of ours and rust back to back (their order alternating), each
         with a canned run; prints each trial, the medians, the median of the pairs'
         ratios ours/rust, and CPU per answered request (server CPU from /proc) split
         into transport (canned) and engine (the rest).
lookups  --nodes servers of ours in one process, then of rust (each network alone),
         --lookups closest-peers lookups of random keys one at a time from the first
         --from nodes; p50 and p99 latency.
rss      One server of each joins the table peers, sits idle --idle seconds; its VmRSS.

OPTIONS:
    --only LIST          rate,lookups,rss: which parts to run              [default: all]
    --pairs N            Rounds of the rate part (ours + rust + canned)    [default: 4]
    --duration SECS      Measured seconds of each rate trial               [default: 10]
    --warmup SECS        Seconds of load before each trial is measured     [default: 2]
    --connections C      Load clients, one connection each                 [default: 8]
    --window W           Requests in flight per connection                 [default: 4]
    --buckets B          Buckets of the server's table filled              [default: 10]
    --per-bucket K       Peers per bucket (at most 32)                     [default: 20]
    --nodes N            Servers of each lookup network                    [default: 50]
    --lookups L          Lookups on each network                           [default: 200]
    --from F             Nodes the lookups start from, in turn             [default: 4]
    --idle SECS          Idle time before the RSS is read                  [default: 30]
    --server-cpu N       The CPU the server is pinned to                   [default: 0]
    --load-cpu N         The CPU of the load and the table peers           [default: 1]
    --seed N             Identities and keys (the same for both servers)   [default: 1]
    -h, --help           Print this help

Needs taskset (util-linux) and 2 CPUs. The figures mean something on an idle machine
only: run it alone. Exit status 0 when it ran (the aims are printed, not enforced), 1
when a process failed, 2 on bad usage.";

#[derive(Debug, Clone, PartialEq)]
struct BenchConfig {
    rate: bool,
    lookups: bool,
    rss: bool,
    pairs: usize,
    duration: f64,
    warmup: f64,
    connections: usize,
    window: usize,
    buckets: usize,
    per_bucket: usize,
    nodes: usize,
    lookup_count: usize,
    from: usize,
    idle: f64,
    server_cpu: usize,
    load_cpu: usize,
    seed: u64,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            rate: true,
            lookups: true,
            rss: true,
            pairs: 4,
            duration: 10.0,
            warmup: 2.0,
            connections: 8,
            window: 4,
            buckets: 10,
            per_bucket: 20,
            nodes: 50,
            lookup_count: 200,
            from: 4,
            idle: 30.0,
            server_cpu: 0,
            load_cpu: 1,
            seed: 1,
        }
    }
}

fn parse(args: &[String]) -> Result<Option<BenchConfig>, Error> {
    let mut o = Options::new(args, "ipfs-bench ");
    let mut c = BenchConfig::default();
    while let Some((name, inline)) = o.next_name() {
        match name {
            "-h" | "--help" => return Ok(None),
            "--only" => {
                let list = o.value(name, inline)?;
                (c.rate, c.lookups, c.rss) = (false, false, false);
                for part in list.split(',') {
                    match part {
                        "rate" => c.rate = true,
                        "lookups" => c.lookups = true,
                        "rss" => c.rss = true,
                        other => {
                            return Err(
                                o.usage(format!("--only: `{other}` is not rate, lookups or rss"))
                            )
                        }
                    }
                }
            }
            "--pairs" => c.pairs = o.positive(name, inline)?,
            "--duration" => c.duration = o.seconds(name, inline)?.as_secs_f64(),
            "--warmup" => c.warmup = o.seconds(name, inline)?.as_secs_f64(),
            "--connections" => c.connections = o.positive(name, inline)?,
            "--window" => c.window = o.positive(name, inline)?,
            "--buckets" => c.buckets = o.positive(name, inline)?,
            "--per-bucket" => c.per_bucket = o.positive(name, inline)?,
            "--nodes" => c.nodes = o.positive(name, inline)?,
            "--lookups" => c.lookup_count = o.positive(name, inline)?,
            "--from" => c.from = o.positive(name, inline)?,
            "--idle" => c.idle = o.seconds(name, inline)?.as_secs_f64(),
            "--server-cpu" => c.server_cpu = o.parsed(name, inline)?,
            "--load-cpu" => c.load_cpu = o.parsed(name, inline)?,
            "--seed" => c.seed = o.parsed(name, inline)?,
            other => return Err(o.usage(format!("unknown option `{other}`"))),
        }
    }
    if c.per_bucket > 32 {
        return Err(o.usage("--per-bucket: at most 32 (one peer per slice of a bucket)".into()));
    }
    if c.nodes < 2 {
        return Err(o.usage("--nodes: a network needs at least 2".into()));
    }
    if c.server_cpu == c.load_cpu {
        return Err(o.usage("--server-cpu and --load-cpu must differ".into()));
    }
    Ok(Some(c))
}

pub fn run(args: &[String]) -> Result<(), Error> {
    let Some(c) = parse(args)? else {
        out!("{USAGE}");
        return Ok(());
    };
    check_taskset()?;
    let bin = build()?;
    let mut bench = Bench { c, bin };
    if bench.c.rate || bench.c.rss {
        bench.rate_and_rss()?;
    }
    if bench.c.lookups {
        bench.lookups()?;
    }
    Ok(())
}

fn check_taskset() -> Result<(), Error> {
    let ok = Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(Error::Failed(
            "ipfs-bench: taskset (util-linux) is needed to pin the server and the load".into(),
        ))
    }
}

fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn build() -> Result<PathBuf, Error> {
    let root = root();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => std::env::current_dir().unwrap_or_default().join(d),
        _ => root.join("target"),
    };
    eprintln!("ipfs-bench: building dht-ipfs-bench (release)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--release", "--quiet", "-p", "dht-ipfs-bench"])
        .env("CARGO_TARGET_DIR", &target)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| Error::Failed(format!("ipfs-bench: cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(Error::Failed("ipfs-bench: the build failed (above)".into()));
    }
    Ok(target.join("release").join("dht-ipfs-bench"))
}

/// One rate trial's figures, as the load generator printed them.
#[derive(Debug, Clone, Default)]
struct Trial {
    answered: u64,
    failed: u64,
    secs: f64,
    server_cpu: Option<f64>,
    load_cpu: Option<f64>,
    closer: f64,
    empty: u64,
    table: (usize, usize),
}

impl Trial {
    fn rate(&self) -> f64 {
        stats::ratio(self.answered as f64, self.secs).unwrap_or(0.0)
    }

    fn cpu_us(&self) -> Option<f64> {
        stats::cpu_us_per_request(self.server_cpu, self.answered)
    }

    /// Reads `answered=N failed=N secs=S server_cpu=S load_cpu=S closer=M empty=N`.
    fn parse(line: &str) -> Trial {
        let mut t = Trial::default();
        for field in line.split_whitespace() {
            let Some((k, v)) = field.split_once('=') else {
                continue;
            };
            match k {
                "answered" => t.answered = v.parse().unwrap_or(0),
                "failed" => t.failed = v.parse().unwrap_or(0),
                "secs" => t.secs = v.parse().unwrap_or(0.0),
                "server_cpu" => t.server_cpu = v.parse().ok(),
                "load_cpu" => t.load_cpu = v.parse().ok(),
                "closer" => t.closer = v.parse().unwrap_or(0.0),
                "empty" => t.empty = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        t
    }
}

const SERVERS: [&str; 3] = ["ours", "rust", "canned"];

struct Bench {
    c: BenchConfig,
    bin: PathBuf,
}

/// What the RSS is made of (`RssAnon`, `RssFile` of /proc/PID/status: the heap and
/// stacks, the mapped binary) and how many sockets the process holds open (its
/// connections and listener): most of an idle server's heap is its connections'.
fn memory_detail(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status.lines().find_map(|l| {
            let kib: f64 = l
                .strip_prefix(name)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()?;
            Some(format!("{:.1}", kib * 1024.0 / 1e6))
        })
    };
    let sockets = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| {
        dir.filter_map(Result::ok)
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter(|l| l.to_string_lossy().starts_with("socket:"))
            .count()
    });
    format!(
        "anon {} MB, file {} MB, {sockets} sockets",
        field("RssAnon:").unwrap_or_else(|| "-".into()),
        field("RssFile:").unwrap_or_else(|| "-".into())
    )
}

fn pct(cpu: Option<f64>, secs: f64) -> String {
    cpu.and_then(|c| stats::ratio(c * 100.0, secs))
        .map_or("-".into(), |p| format!("{p:.0}%"))
}

fn us(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

impl Bench {
    fn args(&self, list: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        v.extend(["--seed".to_string(), self.c.seed.to_string()]);
        v
    }

    /// Starts server `which` pinned, and joins the table peers to it (not the canned
    /// one); returns it, its address and its table size once that stopped growing.
    fn server(&self, which: &str, table: &mut Proc) -> Result<(Proc, String, usize), Error> {
        let mut server = Proc::start(
            &self.bin,
            Some(self.c.server_cpu),
            &self.args(&["serve", which]),
        )?;
        let addr = server.expect("listening ", Duration::from_secs(30))?;
        if which == "canned" {
            return Ok((server, addr, 0));
        }
        table.ask(&format!("join {addr}"), "joined ", Duration::from_secs(60))?;
        // Ours asks each peer before it takes it in, rust-libp2p bootstraps: wait until
        // the table has not grown for a second (at most 20 s).
        let started = Instant::now();
        let (mut size, mut since) = (0usize, Instant::now());
        while started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(250));
            let now: usize = server
                .ask("table", "table ", Duration::from_secs(10))?
                .parse()
                .unwrap_or(0);
            if now != size {
                (size, since) = (now, Instant::now());
            } else if size > 0 && since.elapsed() >= Duration::from_secs(1) {
                break;
            }
        }
        Ok((server, addr, size))
    }

    fn trial(&self, which: &str, pair: usize, table: &mut Proc) -> Result<Trial, Error> {
        let (mut server, addr, before) = self.server(which, table)?;
        let c = &self.c;
        let mut load = Proc::start(
            &self.bin,
            Some(c.load_cpu),
            &[
                "load".to_string(),
                "--target".into(),
                addr,
                "--connections".into(),
                c.connections.to_string(),
                "--window".into(),
                c.window.to_string(),
                "--warmup".into(),
                c.warmup.to_string(),
                "--duration".into(),
                c.duration.to_string(),
                "--server-pid".into(),
                server.pid().to_string(),
                "--seed".into(),
                (c.seed + pair as u64).to_string(),
            ],
        )?;
        let wait = Duration::from_secs_f64(c.warmup + c.duration + 60.0);
        let mut t = Trial::parse(&load.expect("result ", wait)?);
        let after = if which == "canned" {
            0
        } else {
            server
                .ask("table", "table ", Duration::from_secs(10))?
                .parse()
                .unwrap_or(0)
        };
        t.table = (before, after);
        eprintln!(
            "ipfs-bench: pair {} {which:6} {:>8.0}/s  failed {}  server cpu {}  load cpu {}  {} us/req  {:.1} peers/reply  table {}->{}",
            pair + 1,
            t.rate(),
            t.failed,
            pct(t.server_cpu, t.secs),
            pct(t.load_cpu, t.secs),
            us(t.cpu_us()),
            t.closer,
            before,
            after
        );
        Ok(t)
    }

    fn rate_and_rss(&mut self) -> Result<(), Error> {
        let c = self.c.clone();
        let mut table = Proc::start(
            &self.bin,
            Some(c.load_cpu),
            &self.args(&[
                "table",
                "--buckets",
                &c.buckets.to_string(),
                "--per-bucket",
                &c.per_bucket.to_string(),
            ]),
        )?;
        let peers = table.expect("ready ", Duration::from_secs(300))?;
        eprintln!("ipfs-bench: {peers} table peers ready");
        if c.rate {
            let mut trials: [Vec<Trial>; 3] = Default::default();
            for pair in 0..c.pairs {
                // Alternate who goes first, so a drift of the machine favours neither.
                let order = if pair % 2 == 0 { [0, 1, 2] } else { [1, 0, 2] };
                for i in order {
                    trials[i].push(self.trial(SERVERS[i], pair, &mut table)?);
                }
            }
            self.report_rate(&trials);
        }
        if c.rss {
            let mut rss = Vec::new();
            for which in ["ours", "rust"] {
                let (server, _, size) = self.server(which, &mut table)?;
                std::thread::sleep(Duration::from_secs_f64(c.idle));
                let bytes = dht_measure::proc::rss_bytes(server.pid())
                    .map_err(|e| Error::Failed(format!("ipfs-bench: VmRSS of {which}: {e}")))?;
                rss.push((which, bytes, size, memory_detail(server.pid())));
            }
            out!(
                "\nIdle RSS (VmRSS of one server after its table of up to {} peers joined, then {:.0} s idle):",
                c.buckets * c.per_bucket,
                c.idle
            );
            for (which, bytes, size, detail) in &rss {
                out!(
                    "  {which:6} {:6.1} MB  ({detail}; table {size})",
                    *bytes as f64 / 1e6
                );
            }
            out!("  aim: ours <= 15 MB");
        }
        Ok(())
    }

    fn report_rate(&self, trials: &[Vec<Trial>; 3]) {
        let c = &self.c;
        out!(
            "\nFIND_NODE answered per second: one server on CPU {}, {} connections x {} streams in flight \
             (a new stream per request) from CPU {}, {} s per trial after {} s of warm-up",
            c.server_cpu, c.connections, c.window, c.load_cpu, c.duration, c.warmup
        );
        out!(
            "{:<5} {:<7} {:>11} {:>7} {:>11} {:>9} {:>11} {:>12} {:>10}",
            "pair",
            "server",
            "answered/s",
            "failed",
            "server cpu",
            "load cpu",
            "cpu us/req",
            "peers/reply",
            "table"
        );
        for (i, which) in SERVERS.iter().enumerate() {
            for (pair, t) in trials[i].iter().enumerate() {
                out!(
                    "{:<5} {:<7} {:>11.0} {:>7} {:>11} {:>9} {:>11} {:>12.1} {:>10}",
                    pair + 1,
                    which,
                    t.rate(),
                    t.failed,
                    pct(t.server_cpu, t.secs),
                    pct(t.load_cpu, t.secs),
                    us(t.cpu_us()),
                    t.closer,
                    format!("{}->{}", t.table.0, t.table.1)
                );
            }
        }
        let rates: Vec<Vec<f64>> = trials
            .iter()
            .map(|ts| ts.iter().map(Trial::rate).collect())
            .collect();
        let cpu: Vec<Option<f64>> = trials
            .iter()
            .map(|ts| {
                let v: Vec<f64> = ts.iter().filter_map(Trial::cpu_us).collect();
                stats::median(&v)
            })
            .collect();
        let median_rate = |i: usize| stats::median(&rates[i]).unwrap_or(0.0);
        out!(
            "median answered/s: ours {:.0}, rust-libp2p {:.0}, canned (transport ceiling) {:.0}",
            median_rate(0),
            median_rate(1),
            median_rate(2)
        );
        let pairs: Vec<String> = rates[0]
            .iter()
            .zip(&rates[1])
            .map(|(a, b)| stats::ratio(*a, *b).map_or("-".into(), |r| format!("{r:.2}")))
            .collect();
        match stats::median_ratio(&rates[0], &rates[1]) {
            Some(r) => out!(
                "ours / rust-libp2p: {r:.2}x (median of the pairs: {}); aim >= 1.25x",
                pairs.join(", ")
            ),
            None => out!("ours / rust-libp2p: no ratio (rust-libp2p answered nothing)"),
        }
        out!(
            "CPU per answered request (median): ours {} us, rust-libp2p {} us, canned {} us",
            us(cpu[0]),
            us(cpu[1]),
            us(cpu[2])
        );
        if let Some(transport) = cpu[2] {
            for (i, name) in [(0, "ours"), (1, "rust-libp2p")] {
                if let Some(total) = cpu[i] {
                    let (t, e) = stats::split(total, transport);
                    out!(
                        "  {name:<12} transport {t:.1} us + engine {e:.1} us ({:.0}% engine)",
                        e * 100.0 / total.max(f64::MIN_POSITIVE)
                    );
                }
            }
            if let (Some(o), Some(r)) = (cpu[0], cpu[1]) {
                let bound = stats::ratio(r, transport).unwrap_or(0.0);
                out!(
                    "  an engine of no cost would make ours {bound:.2}x rust-libp2p at most; rust-libp2p spends {:.2}x ours per request",
                    stats::ratio(r, o).unwrap_or(0.0)
                );
            }
        }
        let busy_load = trials.iter().flatten().any(|t| {
            t.load_cpu
                .and_then(|l| stats::ratio(l, t.secs))
                .is_some_and(|u| u > 0.9)
        });
        if busy_load {
            out!(
                "  note: the load generator used over 90% of its CPU in some trial: there the rate \
                 is the load's, not the server's; compare CPU per request"
            );
        }
    }

    fn lookups(&self) -> Result<(), Error> {
        let c = &self.c;
        let mut rows = Vec::new();
        for which in ["ours", "rust"] {
            eprintln!("ipfs-bench: lookups on {} nodes of {which}", c.nodes);
            let mut p = Proc::start(
                &self.bin,
                None,
                &self.args(&[
                    "lookups",
                    which,
                    "--nodes",
                    &c.nodes.to_string(),
                    "--lookups",
                    &c.lookup_count.to_string(),
                    "--from",
                    &c.from.to_string(),
                ]),
            )?;
            let tables = p.expect("tables ", Duration::from_secs(300))?;
            let wait = Duration::from_secs(60 + 30 * c.lookup_count as u64);
            let samples: Vec<u64> = p
                .expect("latencies_us", wait)?
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let found = p.expect("found ", Duration::from_secs(10))?;
            rows.push((which, samples, tables, found));
        }
        out!(
            "\nLookup latency: {} closest-peers lookups of random keys, one at a time, from {} nodes of a {}-node loopback network",
            c.lookup_count, c.from, c.nodes
        );
        let ms = |v: Option<u64>| v.map_or("-".into(), |v| format!("{:.2}", v as f64 / 1000.0));
        let mut p50 = Vec::new();
        for (which, samples, tables, found) in &rows {
            let (a, b) = (
                stats::percentile(samples, 0.5),
                stats::percentile(samples, 0.99),
            );
            p50.push(a.unwrap_or(0) as f64);
            out!(
                "  {which:6} p50 {} ms  p99 {} ms  ({} lookups; peers found {found}; tables {tables})",
                ms(a),
                ms(b),
                samples.len()
            );
        }
        if let Some(r) = stats::ratio(p50[0], p50[1]) {
            out!("  p50 ours / rust-libp2p: {r:.2} (aim: at most 1)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_args as args;

    #[test]
    fn options_parse_and_bad_ones_are_usage_errors() {
        let Ok(Some(c)) = parse(&args("--only rate,rss --pairs 6 --duration=3 --window 2")) else {
            panic!("did not parse");
        };
        assert!(c.rate && c.rss && !c.lookups);
        assert_eq!((c.pairs, c.duration, c.window), (6, 3.0, 2));
        assert!(matches!(parse(&args("--help")), Ok(None)));
        assert_eq!(parse(&[]).ok().flatten(), Some(BenchConfig::default()));
        for bad in [
            "--only speed",
            "--pairs 0",
            "--per-bucket 33",
            "--server-cpu 1 --load-cpu 1",
            "--nodes 1",
            "--frobnicate",
        ] {
            assert!(
                matches!(parse(&args(bad)), Err(Error::Usage(_, "ipfs-bench "))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_load_line_is_read() {
        let t = Trial::parse(
            "answered=50000 failed=2 secs=10.000 server_cpu=5.000 load_cpu=- closer=20.0 empty=0",
        );
        assert_eq!((t.answered, t.failed, t.empty), (50000, 2, 0));
        assert_eq!((t.rate(), t.cpu_us()), (5000.0, Some(100.0)));
        assert_eq!((t.load_cpu, t.closer), (None, 20.0));
    }
}
