//! `cargo xtask perf --against REF`: the working tree and a build of REF side by side in one
//! run, and a failing exit status when a figure of the working tree is worse than REF's by
//! more than its margin.
//!
//! One file per concern: this one is the settings and the flow of a run; `build` checking REF
//! out in a worktree and building both; `measure` running one build's node, echo, callgrind
//! workloads and simulator; `verdict` the medians, ratios and margins (pure, tested).

mod build;
mod measure;
mod verdict;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::testnet::{target_dir, workspace_root};
use crate::{Error, Options, Parsed};
use build::Bins;
use measure::Server;
use verdict::{Figure, Outcome, Row, Rule};

pub const USAGE: &str = "\
cargo xtask perf: the working tree against a build of REF, side by side in one run

USAGE:
    cargo xtask perf --against REF [OPTIONS]

Checks REF out in a git worktree (TARGET/perf/SHA/, kept and reused), builds dht-node, xtask,
dht-sim and dht-core's `instructions` example of both in release mode, and measures:
  - instructions (callgrind) of the example's workloads codec, routing and serve. When REF
    predates the example, the working tree's copy is built into REF (it uses only API that
    older builds have); without valgrind these figures are skipped;
  - KRPC answers per second of ping, find_node and get_peers from each build's dht-node
    pinned to CPU 0 on 127.0.0.1 with a full table (`xtask fill`), loaded from CPU 1 by
    `xtask load` (the working tree's fill and load for both), and the same load against
    each build's `xtask echo` (the ceiling of what the load generator measures). The builds
    alternate in every round (A B, then B A), and each figure is the median of the rounds;
  - one simulator run of each: `dht-sim --nodes N --lookups 1000 --seed 1 --json`.
Prints each figure of both builds and their ratio (working tree / REF).

With --libtorrent, every round also loads libtorrent's DHT node (python3-libtorrent,
contrib/perf/libtorrent_node.py: DHT only, on 127.0.0.1, its per-IP block and reply rate
limits lifted as ours exempt loopback) with ping, find_node and get_peers, pinned, filled
and loaded exactly as the builds' nodes, first in odd rounds and last in even ones. Its
rates are reported beside the builds' (median, fraction of the echo ceiling, and each
build's ratio to it), never judged.

OPTIONS:
    --against REF        The commit to compare with (required), e.g. where your work began
    --runs N             Alternating rounds of the rates per build            [default: 4]
    --duration SECS      How long each load runs                              [default: 5]
    --rate-margin PCT    How much lower a rate (median) and how much longer the simulator's
                         wall time may be before the check fails              [default: 8]
    --count-margin PCT   How much higher an instruction count, or how much worse a
                         simulator figure (bytes per node, hops, found k closest, messages
                         per lookup) may be                                    [default: 2]
    --sim-nodes N        Nodes of the simulator run                         [default: 10000]
    --no-sim             Skip the simulator run
    --libtorrent         Load libtorrent's DHT node too, in the same rounds (above); needs
                         python3-libtorrent (apt-get install python3-libtorrent)
    --quick              To try it out: 2 rounds of 2 s loads, a 2,000-node simulation
                         (explicit options still apply). Rates of fewer than 4 rounds are
                         reported, not judged
    -h, --help           Print this help

EXIT STATUS:
    0 no figure regressed beyond its margin, 1 one did or the run failed, 2 bad usage.
    The event hash of the simulator runs and the echo ceiling are reported, never judged.";

/// Rates of fewer rounds than this are too noisy to fail a check on.
const MIN_JUDGED_RUNS: usize = 4;
/// The workloads of dht-core's `examples/instructions.rs`.
const WORKLOADS: [&str; 3] = ["codec", "routing", "serve"];
/// What the rate rounds measure: a name, the server, and the query `xtask load` sends.
const SERVED: [(&str, Server, &str); 4] = [
    ("echo", Server::Echo, "ping"),
    ("ping", Server::Node, "ping"),
    ("find_node", Server::Node, "find_node"),
    ("get_peers", Server::Node, "get_peers"),
];

/// Set by the SIGINT / SIGTERM handler; the run stops between measurements.
static STOP: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Debug, PartialEq)]
pub struct PerfConfig {
    pub against: String,
    pub runs: usize,
    /// Seconds of each load.
    pub duration: f64,
    /// Seconds `xtask fill` answers the node's pings before a load.
    pub fill_seconds: f64,
    /// Fractions (0.08 for 8 %).
    pub rate_margin: f64,
    pub count_margin: f64,
    /// None: no simulator run.
    pub sim_nodes: Option<usize>,
    /// Load libtorrent's node in the same rounds.
    pub libtorrent: bool,
}

fn parse(args: &[String]) -> Result<Parsed<PerfConfig>, Error> {
    let mut options = Options::new(args, "perf ");
    let (mut against, mut runs, mut duration, mut sim_nodes) = (None, None, None, None);
    let (mut rate_margin, mut count_margin) = (8.0, 2.0);
    let (mut quick, mut no_sim, mut libtorrent) = (false, false, false);
    while let Some((name, inline)) = options.next_name() {
        match name {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--against" => against = Some(options.value(name, inline)?.to_string()),
            "--runs" => runs = Some(options.positive(name, inline)?),
            "--duration" => {
                let d = options.seconds(name, inline)?;
                if d.is_zero() {
                    return Err(options.usage("--duration must be above 0".into()));
                }
                duration = Some(d.as_secs_f64());
            }
            "--rate-margin" => rate_margin = percent(&mut options, name, inline)?,
            "--count-margin" => count_margin = percent(&mut options, name, inline)?,
            "--sim-nodes" => sim_nodes = Some(options.positive(name, inline)?),
            "--no-sim" => no_sim = true,
            "--libtorrent" => libtorrent = true,
            "--quick" => quick = true,
            other => return Err(options.usage(format!("unknown option `{other}`"))),
        }
    }
    let against = against.ok_or_else(|| {
        options.usage("--against REF is required (e.g. the commit your work started from)".into())
    })?;
    Ok(Parsed::Run(PerfConfig {
        against,
        runs: runs.unwrap_or(if quick { 2 } else { 4 }),
        duration: duration.unwrap_or(if quick { 2.0 } else { 5.0 }),
        fill_seconds: if quick { 2.0 } else { 3.0 },
        rate_margin: rate_margin / 100.0,
        count_margin: count_margin / 100.0,
        sim_nodes: (!no_sim).then(|| sim_nodes.unwrap_or(if quick { 2_000 } else { 10_000 })),
        libtorrent,
    }))
}

fn percent<'a>(
    options: &mut Options<'a>,
    name: &str,
    inline: Option<&'a str>,
) -> Result<f64, Error> {
    let v: f64 = options.parsed(name, inline)?;
    if (0.0..100.0).contains(&v) {
        Ok(v)
    } else {
        Err(options.usage(format!(
            "{name} is a percentage from 0 to under 100, not `{v}`"
        )))
    }
}

fn interrupted() -> Result<(), Error> {
    if STOP.load(Ordering::SeqCst) {
        return Err(Error::Failed("perf: interrupted".into()));
    }
    Ok(())
}

/// Both builds, REF first.
struct Builds {
    reference: Bins,
    tree: Bins,
}

pub fn run(args: &[String]) -> Result<(), Error> {
    let config = match parse(args)? {
        Parsed::Run(config) => config,
        Parsed::Help => {
            crate::out!("{USAGE}");
            return Ok(());
        }
    };
    measure::check_pinning()?;
    if config.libtorrent {
        measure::check_libtorrent()?;
    }
    // Without the handler, Ctrl-C would end xtask before the guards of the servers it
    // started could stop them; failing to install it only loses that.
    if let Err(e) = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst)) {
        eprintln!("perf: warning: cannot catch Ctrl-C ({e})");
    }
    let started = Instant::now();
    let root = workspace_root();
    let target = target_dir(&root);
    let reference = build::check_out(&root, &target, &config.against)?;
    let builds = Builds {
        tree: build::build("the working tree", &root, &target)?,
        reference: build::build(
            &format!("REF {}", config.against),
            &reference.worktree,
            &reference.worktree.join("target"),
        )?,
    };
    let mut figures = Vec::new();
    let mut notes = vec![format!(
        "REF {} is {}; the working tree is {}",
        config.against,
        reference.sha,
        describe_tree(&root)
    )];

    if measure::have_valgrind() {
        if reference.copied_instructions {
            notes.push(format!(
                "REF has no dht-core/examples/instructions.rs: the working tree's copy was built into {}",
                reference.worktree.display()
            ));
        }
        for workload in WORKLOADS {
            interrupted()?;
            eprintln!("perf: callgrind: {workload}");
            figures.push(Figure {
                name: format!("instructions {workload}"),
                reference: vec![measure::instructions(
                    &builds.reference.instructions,
                    workload,
                )?],
                current: vec![measure::instructions(&builds.tree.instructions, workload)?],
                rule: Rule::LowerIsBetter(config.count_margin),
            });
        }
    } else {
        notes.push("valgrind is missing: no instruction counts (apt-get install valgrind)".into());
    }

    let rates = serve_rates(&config, &builds)?;
    let rate_rule = verdict::rate_rule(config.runs, MIN_JUDGED_RUNS, config.rate_margin);
    if config.runs < MIN_JUDGED_RUNS {
        notes.push(format!(
            "rates of {} rounds are reported, not judged (at least {MIN_JUDGED_RUNS} are)",
            config.runs
        ));
    }
    for ((name, ..), (reference, current)) in SERVED.iter().zip(&rates.builds) {
        figures.push(Figure {
            name: format!("answered/s {name}"),
            reference: reference.clone(),
            current: current.clone(),
            rule: if *name == "echo" {
                Rule::Reported
            } else {
                rate_rule
            },
        });
    }

    if let Some(nodes) = config.sim_nodes {
        let (sim_figures, hash_note) = simulate(&config, &builds, nodes)?;
        figures.extend(sim_figures);
        notes.push(hash_note);
    }

    let rows: Vec<Row> = figures.iter().map(Figure::row).collect();
    print_report(&config, &figures, &rows, &rates, &notes);
    eprintln!("perf: done in {:.0} s", started.elapsed().as_secs_f64());
    let regressed = rows
        .iter()
        .filter(|r| r.outcome == Outcome::Regressed)
        .count();
    match verdict::exit_status(&rows) {
        0 => Ok(()),
        _ => Err(Error::Failed(format!(
            "perf: {regressed} figure(s) of the working tree regressed beyond their margin (above)"
        ))),
    }
}

/// `HEAD abc123def456` and whether there are changes on top of it.
fn describe_tree(root: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_default();
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    format!(
        "HEAD {head}{}",
        if dirty {
            " with uncommitted changes"
        } else {
            ""
        }
    )
}

/// The samples of each entry of [`SERVED`]: (REF's, the working tree's).
type Samples = Vec<(Vec<f64>, Vec<f64>)>;

/// Rates of every round: the builds' ([`Samples`]) and libtorrent's node's, one list per
/// entry of [`SERVED`] (empty for the echo, and without `--libtorrent`).
struct Rates {
    builds: Samples,
    libtorrent: Vec<Vec<f64>>,
}

fn serve_rates(config: &PerfConfig, builds: &Builds) -> Result<Rates, Error> {
    let mut samples: Samples = vec![(Vec::new(), Vec::new()); SERVED.len()];
    let mut libtorrent = vec![Vec::new(); SERVED.len()];
    // The same load generator for both builds, so that only the server differs.
    let load = &builds.tree.xtask;
    for round in 0..config.runs {
        for (((name, server, query), (reference, tree)), lt) in
            SERVED.iter().zip(&mut samples).zip(&mut libtorrent)
        {
            // libtorrent's node first in odd rounds (1, 3, ..), last in even ones.
            let with_libtorrent = config.libtorrent && *server == Server::Node;
            let libtorrent_first = round % 2 == 0;
            if with_libtorrent && libtorrent_first {
                lt.push(libtorrent_rate(config, builds, name, query, round)?);
            }
            // A B, then B A: drift in what else the machine does falls on both.
            let tree_first = round % 2 == 1;
            for is_tree in [tree_first, !tree_first] {
                interrupted()?;
                let (bins, into, label) = if is_tree {
                    (&builds.tree, &mut *tree, "tree")
                } else {
                    (&builds.reference, &mut *reference, "REF ")
                };
                let rate = measure::serve_rate(
                    bins,
                    *server,
                    load,
                    query,
                    config.duration,
                    config.fill_seconds,
                );
                interrupted()?;
                let rate = rate?;
                eprintln!(
                    "perf: round {}/{} {label} {name}: {rate:.0} answered/s",
                    round + 1,
                    config.runs
                );
                into.push(rate);
            }
            if with_libtorrent && !libtorrent_first {
                lt.push(libtorrent_rate(config, builds, name, query, round)?);
            }
        }
    }
    Ok(Rates {
        builds: samples,
        libtorrent,
    })
}

/// One load of libtorrent's node (started, filled and loaded as the builds' nodes).
fn libtorrent_rate(
    config: &PerfConfig,
    builds: &Builds,
    name: &str,
    query: &str,
    round: usize,
) -> Result<f64, Error> {
    interrupted()?;
    let rate = measure::serve_rate(
        &builds.tree,
        Server::Libtorrent,
        &builds.tree.xtask,
        query,
        config.duration,
        config.fill_seconds,
    );
    interrupted()?;
    let rate = rate?;
    eprintln!(
        "perf: round {}/{} libtorrent {name}: {rate:.0} answered/s",
        round + 1,
        config.runs
    );
    Ok(rate)
}

/// One simulator run per build (REF first), the figures and a note on the event hashes.
fn simulate(
    config: &PerfConfig,
    builds: &Builds,
    nodes: usize,
) -> Result<(Vec<Figure>, String), Error> {
    interrupted()?;
    eprintln!("perf: dht-sim --nodes {nodes} of REF, then of the working tree");
    let reference = measure::simulate(&builds.reference.sim, nodes)?;
    interrupted()?;
    let tree = measure::simulate(&builds.tree.sim, nodes)?;
    let (time, count) = (config.rate_margin, config.count_margin);
    let figure = |name: &str, read: fn(&measure::SimFigures) -> f64, rule| Figure {
        name: format!("sim {nodes}: {name}"),
        reference: vec![read(&reference)],
        current: vec![read(&tree)],
        rule,
    };
    let figures = vec![
        figure(
            "wall seconds",
            |s| s.wall_seconds,
            Rule::LowerIsBetter(time),
        ),
        figure(
            "bytes per node",
            |s| s.bytes_per_node,
            Rule::LowerIsBetter(count),
        ),
        figure("hops mean", |s| s.hops_mean, Rule::LowerIsBetter(count)),
        figure(
            "found k closest",
            |s| s.found_k_closest,
            Rule::HigherIsBetter(count),
        ),
        figure(
            "messages per lookup",
            |s| s.messages_per_lookup,
            Rule::LowerIsBetter(count),
        ),
    ];
    let note = if reference.event_hash == tree.event_hash {
        format!(
            "sim {nodes}: the event hashes are equal ({}): the same run",
            tree.event_hash
        )
    } else {
        format!(
            "sim {nodes}: the event hashes differ (REF {}, tree {}): the runs took different paths",
            reference.event_hash, tree.event_hash
        )
    };
    Ok((figures, note))
}

fn value(v: Option<f64>) -> String {
    match v {
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.4}"),
        None => "-".into(),
    }
}

fn outcome(row: &Row, rule: Rule) -> String {
    // Rounded to hundredths of a percent: 0.07 x 100 is 7.000000000000001.
    let margin = match rule {
        Rule::HigherIsBetter(m) | Rule::LowerIsBetter(m) => (m * 10_000.0).round() / 100.0,
        Rule::Reported => 0.0,
    };
    match row.outcome {
        Outcome::Improved => format!("better (beyond {margin} %)"),
        Outcome::Within => format!("ok (within {margin} %)"),
        Outcome::Regressed => format!("REGRESSED (beyond {margin} %)"),
        Outcome::Reported => "reported".into(),
    }
}

fn print_report(
    config: &PerfConfig,
    figures: &[Figure],
    rows: &[Row],
    all_rates: &Rates,
    notes: &[String],
) {
    let rates = &all_rates.builds;
    crate::out!(
        "{:<32} {:>14} {:>14} {:>8}  verdict",
        "figure",
        format!("REF {}", short(&config.against)),
        "working tree",
        "tree/REF"
    );
    for (row, figure) in rows.iter().zip(figures) {
        crate::out!(
            "{:<32} {:>14} {:>14} {:>8}  {}",
            row.name,
            value(row.reference),
            value(row.current),
            row.ratio.map_or("-".into(), |r| format!("{r:.3}")),
            outcome(row, figure.rule)
        );
    }
    let echo = &rates[0];
    let (echo_ref, echo_tree) = (verdict::median(&echo.0), verdict::median(&echo.1));
    crate::out!("\nrate as a fraction of the echo ceiling (medians of the same build):");
    for ((name, ..), (reference, tree)) in SERVED.iter().zip(rates).skip(1) {
        let fraction = |rate: Option<f64>, echo: Option<f64>| match (rate, echo) {
            (Some(r), Some(e)) if e > 0.0 => format!("{:.3}", r / e),
            _ => "-".into(),
        };
        crate::out!(
            "  {name:<10} REF {}  tree {}",
            fraction(verdict::median(reference), echo_ref),
            fraction(verdict::median(tree), echo_tree)
        );
    }
    crate::out!(
        "\nrounds of {} s loads (answered/s, in round order; REF ran first in odd rounds):",
        config.duration
    );
    for ((name, ..), (reference, tree)) in SERVED.iter().zip(rates) {
        let list = |xs: &[f64]| {
            xs.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        crate::out!(
            "  {name:<10} REF [{}]  tree [{}]",
            list(reference),
            list(tree)
        );
    }
    if config.libtorrent {
        print_libtorrent(rates, &all_rates.libtorrent);
    }
    crate::out!("");
    for note in notes {
        crate::out!("note: {note}");
    }
}

/// libtorrent's rates of the same rounds, beside the builds': medians, fractions of each
/// build's echo ceiling, and each build's ratio to libtorrent (reported, never judged).
fn print_libtorrent(rates: &Samples, libtorrent: &[Vec<f64>]) {
    let echo = &rates[0];
    let echo_tree = verdict::median(&echo.1);
    crate::out!("\nlibtorrent's node in the same rounds (answered/s; medians):");
    for ((name, ..), ((reference, tree), lt)) in SERVED.iter().zip(rates.iter().zip(libtorrent)) {
        if lt.is_empty() {
            continue;
        }
        let lt_median = verdict::median(lt);
        let over = |x: Option<f64>| match (x, lt_median) {
            (Some(x), Some(l)) if l > 0.0 => format!("{:.3}", x / l),
            _ => "-".into(),
        };
        let of_echo = match (lt_median, echo_tree) {
            (Some(l), Some(e)) if e > 0.0 => format!("{:.3}", l / e),
            _ => "-".into(),
        };
        let list = lt
            .iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" ");
        crate::out!(
            "  {name:<10} libtorrent {} ({of_echo} of the tree's echo)  REF/libtorrent {}  tree/libtorrent {}  [{list}]",
            value(lt_median),
            over(verdict::median(reference)),
            over(verdict::median(tree)),
        );
    }
}

/// A commit id as people write it; names (`main`, `v1.0`) as they are.
fn short(reference: &str) -> &str {
    let is_sha = reference.len() > 12 && reference.chars().all(|c| c.is_ascii_hexdigit());
    if is_sha {
        &reference[..12]
    } else {
        reference
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_args as args;

    #[test]
    fn defaults_quick_and_explicit_options() {
        let Ok(Parsed::Run(c)) = parse(&args("--against cf19f0b")) else {
            panic!("did not parse");
        };
        assert_eq!(
            c,
            PerfConfig {
                against: "cf19f0b".into(),
                runs: 4,
                duration: 5.0,
                fill_seconds: 3.0,
                rate_margin: 0.08,
                count_margin: 0.02,
                sim_nodes: Some(10_000),
                libtorrent: false,
            }
        );
        let Ok(Parsed::Run(q)) = parse(&args("--quick --against=main")) else {
            panic!("did not parse");
        };
        assert_eq!((q.runs, q.duration, q.sim_nodes), (2, 2.0, Some(2_000)));
        // Explicit options win over --quick, wherever they stand.
        let Ok(Parsed::Run(e)) = parse(&args(
            "--runs 6 --quick --against main --duration=1.5 --rate-margin 5 --count-margin=0.5 --no-sim",
        )) else {
            panic!("did not parse");
        };
        assert_eq!((e.runs, e.duration, e.sim_nodes), (6, 1.5, None));
        assert_eq!((e.rate_margin, e.count_margin), (0.05, 0.005));
        assert!(!e.libtorrent);
        let Ok(Parsed::Run(l)) = parse(&args("--against main --libtorrent")) else {
            panic!("did not parse");
        };
        assert!(l.libtorrent);
    }

    #[test]
    fn ref_is_required_and_bad_options_are_usage_errors() {
        for line in [
            "",
            "--quick",
            "--against",
            "--against main --runs 0",
            "--against main --duration 0",
            "--against main --rate-margin 100",
            "--against main --count-margin -1",
            "--against main --sim-nodes many",
            "--against main --frobnicate",
        ] {
            assert!(
                matches!(parse(&args(line)), Err(Error::Usage(_, "perf "))),
                "{line}"
            );
        }
        assert!(matches!(parse(&args("--help")), Ok(Parsed::Help)));
        assert!(matches!(parse(&args("-h")), Ok(Parsed::Help)));
    }
}
