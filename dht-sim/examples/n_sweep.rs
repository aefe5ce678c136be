//! The N-sweep (issue 25): Kademlia lookups (dht-core, k = 8, the configuration of the
//! 10,000-node figures) from N = 1,000 to 1,000,000 against the ideal-table model, one
//! `dht-sim` process per N so that each run's peak resident set is its own.
//!
//! ```text
//! cargo build --release -p dht-sim
//! cargo run --release -p dht-sim --example n_sweep -- run 1000,3000,10000,30000,100000
//! cargo run --release -p dht-sim --example n_sweep -- add million.json   # a report recorded apart
//! cargo run --release -p dht-sim --example n_sweep -- render
//! ```
//!
//! `run` starts `dht-sim --nodes N --lookups 1000 --seed 1 --json` for each N in turn
//! (`--lookups`, `--seed` and `--sim PATH` change that; the binary is looked for beside
//! this example's directory) and appends each report, as it finishes, to
//! `results/n-sweep.jsonl`. `add` appends the `--json` line of a run made apart: the
//! million-node run is the point at 1,000,000, not a second run. Every command then
//! writes `results/n-sweep.md` and `results/n-sweep.svg` from that file, the latest
//! report for each N.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use dht_sim::figures::{svg, write, Series};
use serde_json::Value;

const USAGE: &str = "usage: n_sweep run N[,N...] [--lookups L] [--seed S] [--sim PATH]
       n_sweep add REPORT.json    (the last line of a `dht-sim --json` run)
       n_sweep render";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match sweep(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("n_sweep: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn sweep(args: &[String]) -> Result<(), String> {
    let log = results_dir().join("n-sweep.jsonl");
    match args.first().map(String::as_str) {
        Some("run") => {
            let sizes = args.get(1).ok_or("run needs the list of N")?;
            let sizes: Vec<usize> = sizes
                .split(',')
                .map(|n| n.trim().replace('_', "").parse::<usize>())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("bad list of N {sizes:?}: {e}"))?;
            let mut lookups = "1000".to_string();
            let mut seed = "1".to_string();
            let mut sim = default_sim();
            let mut rest = args[2..].iter();
            while let Some(flag) = rest.next() {
                let mut value = || {
                    rest.next()
                        .cloned()
                        .ok_or_else(|| format!("{flag} needs a value"))
                };
                match flag.as_str() {
                    "--lookups" => lookups = value()?,
                    "--seed" => seed = value()?,
                    "--sim" => sim = PathBuf::from(value()?),
                    other => return Err(format!("unknown option {other:?}")),
                }
            }
            if !sim.is_file() {
                return Err(format!(
                    "no dht-sim binary at {} (cargo build --release -p dht-sim, or --sim PATH)",
                    sim.display()
                ));
            }
            for n in sizes {
                let line = run_one(&sim, n, &lookups, &seed)?;
                append(&log, &line)?;
            }
        }
        Some("add") => {
            let file = args.get(1).ok_or("add needs a report file")?;
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            let line = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .ok_or_else(|| format!("{file} is empty"))?;
            report(line).map_err(|e| format!("{file}: {e}"))?;
            append(&log, line.trim())?;
        }
        Some("render") => {}
        _ => return Err("which command?".to_string()),
    }
    render(&log)
}

fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

/// `dht-sim` in the profile directory this example was built into.
fn default_sim() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/examples/n_sweep -> target/<profile>/dht-sim
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("dht-sim"))
        .unwrap_or_else(|| PathBuf::from("dht-sim"))
}

/// One run of `dht-sim`; its JSON report (stdout's last line), checked.
fn run_one(sim: &Path, n: usize, lookups: &str, seed: &str) -> Result<String, String> {
    eprintln!("n_sweep: {n} nodes, {lookups} lookups, seed {seed}");
    let out = Command::new(sim)
        .args([
            "--nodes",
            &n.to_string(),
            "--lookups",
            lookups,
            "--seed",
            seed,
            "--json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("starting {}: {e}", sim.display()))?;
    if !out.status.success() {
        return Err(format!("dht-sim at {n} nodes: {}", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| format!("dht-sim at {n} nodes printed no report"))?;
    report(line)?;
    Ok(line.trim().to_string())
}

fn append(log: &Path, line: &str) -> Result<(), String> {
    use std::io::Write as _;
    std::fs::create_dir_all(results_dir()).map_err(|e| e.to_string())?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    writeln!(f, "{line}").map_err(|e| format!("{}: {e}", log.display()))
}

/// One sweep point, from a `dht-sim --json` report.
struct Point {
    nodes: f64,
    hops_mean: f64,
    hops_p1: f64,
    hops_p99: f64,
    hops_ideal_mean: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    latency_rtt_p50: f64,
    messages_per_lookup: f64,
    found_k_closest: f64,
    lookups_unfinished: f64,
    table_entries_mean: f64,
    bytes_per_node: f64,
    peak_rss_bytes: f64,
    wall_seconds: f64,
    event_hash: String,
}

fn report(line: &str) -> Result<Point, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not a JSON report: {e}"))?;
    let num = |k: &str| {
        v.get(k)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("the report has no number {k:?}"))
    };
    if v.get("overlay").and_then(Value::as_str) != Some("kademlia") {
        return Err("not a Kademlia report (overlay)".to_string());
    }
    Ok(Point {
        nodes: num("nodes")?,
        hops_mean: num("hops_mean")?,
        hops_p1: num("hops_p1")?,
        hops_p99: num("hops_p99")?,
        hops_ideal_mean: num("hops_ideal_mean")?,
        latency_ms_p50: num("latency_ms_p50")?,
        latency_ms_p99: num("latency_ms_p99")?,
        latency_rtt_p50: num("latency_rtt_p50")?,
        messages_per_lookup: num("messages_per_lookup")?,
        found_k_closest: num("found_k_closest")?,
        lookups_unfinished: num("lookups_unfinished")?,
        table_entries_mean: num("table_entries_mean")?,
        bytes_per_node: num("bytes_per_node")?,
        peak_rss_bytes: num("peak_rss_bytes")?,
        wall_seconds: num("wall_seconds")?,
        event_hash: v
            .get("event_hash")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

const HEAD: &str = "# Lookups against N (issue 25)

Kademlia lookups of dht-core nodes (k = 8, alpha 2, extended buckets, the 10,000-node
figures' configuration), seed 1, 1,000 lookups from random nodes to random targets after
the default join (arrivals 1 ms apart, 60 s of settling), no loss, mean one-way latency
50 ms; `ideal` is the same lookups over ideal routing tables. One `dht-sim` process per
N, one at a time (`cargo run --release -p dht-sim --example n_sweep -- run ...`); the
reports are in `n-sweep.jsonl`. `bytes_per_node` is the resident set's growth over the
join per node; VmHWM / N the process's peak over the whole run per node; wall time is
the run's own, on this 2-core machine. The point at 1,000,000 is one run made apart
(`dht-sim --nodes 1000000 --lookups 1000 --seed 1 --json`, added with `n_sweep -- add`);
`scale.md` says how each size ran and what shared the machine.

| N | hops mean | ideal | vs ideal | p1 / p99 | latency p50 / p99 ms | p50 in RTTs | messages per lookup | found_k_closest | unfinished | table entries | bytes_per_node | VmHWM / N | wall s | event hash |
| ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
";

fn render(log: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    // The latest report for each N.
    let mut points: Vec<Point> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let p = report(line).map_err(|e| format!("{} line {}: {e}", log.display(), i + 1))?;
        points.retain(|q| q.nodes != p.nodes);
        points.push(p);
    }
    points.sort_by(|a, b| a.nodes.total_cmp(&b.nodes));
    let mut md = String::from(HEAD);
    for p in &points {
        let _ = writeln!(
            md,
            "| {} | {:.3} | {:.3} | {:+.1} % | {} / {} | {:.1} / {:.1} | {:.2} | {:.2} | {:.3} | {} | {:.1} | {:.0} | {:.0} | {:.0} | `{}` |",
            p.nodes,
            p.hops_mean,
            p.hops_ideal_mean,
            100.0 * (p.hops_mean / p.hops_ideal_mean - 1.0),
            p.hops_p1,
            p.hops_p99,
            p.latency_ms_p50,
            p.latency_ms_p99,
            p.latency_rtt_p50,
            p.messages_per_lookup,
            p.found_k_closest,
            p.lookups_unfinished,
            p.table_entries_mean,
            p.bytes_per_node,
            p.peak_rss_bytes / p.nodes,
            p.wall_seconds,
            &p.event_hash[..p.event_hash.len().min(12)],
        );
    }
    let line = |name, color, f: &dyn Fn(&Point) -> (f64, f64, f64)| Series {
        name,
        color,
        points: points
            .iter()
            .map(|p| {
                let (y, lo, hi) = f(p);
                (p.nodes, y, lo, hi)
            })
            .collect(),
    };
    let plot = svg(
        "Kademlia lookups against N (mean; bars p1..p99)",
        "N (log scale)",
        "hops; latency in mean round trips",
        true,
        &[
            line("hops", "#2471a3", &|p| (p.hops_mean, p.hops_p1, p.hops_p99)),
            line("hops over ideal tables", "#777777", &|p| {
                (p.hops_ideal_mean, p.hops_ideal_mean, p.hops_ideal_mean)
            }),
            line("latency p50, RTTs", "#c0392b", &|p| {
                (p.latency_rtt_p50, p.latency_rtt_p50, p.latency_rtt_p50)
            }),
        ],
    );
    write("n-sweep", &md, &plot).map_err(|e| format!("writing the results: {e}"))
}
