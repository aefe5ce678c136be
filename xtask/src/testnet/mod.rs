//! `cargo xtask testnet`: many `dht-node` processes on this machine, a `dht-workload` process
//! driving a mixed workload through them, and churn that kills and restarts nodes meanwhile.
//!
//! xtask only orchestrates: it builds the two binaries, starts and kills processes, reads the
//! workload's JSON Lines report and turns it into a table, `report.json` and `latency.svg`.
//! Everything it starts (processes, and with `--netns` namespaces, veth pairs and a bridge)
//! is owned by a [`Testnet`] guard whose `Drop` removes it, so a failure, a Ctrl-C or a
//! SIGTERM (turned into a flag by `ctrlc`) leaves nothing behind.
//!
//! One file per concern: this one is the flow of a run; `config` the settings and the churn
//! schedule; `binaries` building what runs; `process` the guard and the node processes;
//! `churn` the workload's run with kills and restarts; `chord` the workload of `--overlay chord`
//! (one-shot clients, the same records); `ipfs` the identities and workload of `--overlay
//! ipfs` (one-shot clients too); `netns` the network namespaces;
//! `report` reading the workload's records and summing them up; `plot` the SVG.

mod binaries;
mod chord;
mod churn;
mod config;
mod ipfs;
mod netns;
mod plot;
mod process;
mod ready;
mod report;
mod rss;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::rng::SplitMix64;
use crate::Error;

pub(crate) use binaries::{target_dir, workspace_root};
pub use config::{Overlay, Store, TestnetConfig, Transport, Verdict};
pub use netns::check_netns;

use binaries::build;
use netns::{Netns, BRIDGE};
use plot::latency_svg;
use process::Testnet;
use report::{read_report, Summary};

/// Set by the SIGINT / SIGTERM handler; every wait in this module polls it.
static STOP: AtomicBool = AtomicBool::new(false);
/// How often waits wake up to look at `STOP` and at the processes.
const POLL: Duration = Duration::from_millis(100);

pub fn run(config: &TestnetConfig) -> Result<Verdict, Error> {
    check_netns(config)?;
    // Without the handler, Ctrl-C would end xtask before its guard could clean up. Failing to
    // install it (a second call in one process) only loses that, so it is not fatal.
    if let Err(e) = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst)) {
        eprintln!(
            "testnet: warning: cannot catch Ctrl-C ({e}); an interrupt may leave processes behind"
        );
    }

    let root = workspace_root();
    let target_dir = target_dir(&root);
    let bins = build(config, &root, &target_dir)?;
    let out = target_dir.join("testnet");
    prepare_dir(&out)?;

    let mut net = Testnet {
        config: config.clone(),
        bins,
        out: out.clone(),
        nodes: Vec::new(),
        workload: None,
        rng: SplitMix64::seeded(config.seed),
        crashes: 0,
        netns: None,
        delays: Vec::new(),
        rss: rss::RssLog::for_run(config.duration),
    };
    if config.netns {
        eprintln!(
            "testnet: creating {} network namespaces, veth pairs and bridge {BRIDGE} (198.18.0.0/15)",
            config.nodes
        );
        net.netns = Some(Netns::create(config.nodes)?);
    }
    if let Some(ms) = config.delay_ms {
        net.draw_delays(ms);
        let d = &net.delays;
        eprintln!(
            "testnet: each process holds what it sends {:.0}..{:.0} ms (mean {ms} ms): a round trip between two nodes takes 2 x {ms} ms on average",
            d.iter().copied().fold(f64::INFINITY, f64::min),
            d.iter().copied().fold(0.0, f64::max),
        );
    }
    let started = Instant::now();
    net.start_nodes()?;
    net.wait_ready(started)?;
    let ready_after = started.elapsed();
    eprintln!(
        "testnet: {} nodes ready in {:.1} s; workload for {} s at {} ops/s",
        config.nodes,
        ready_after.as_secs_f64(),
        config.duration.as_secs_f64(),
        config.ops_per_sec
    );
    let report_path = out.join("workload.jsonl");
    let churn = net.run_workload(&report_path)?;
    let rejoined = net.rejoined();
    let rss_log = std::mem::replace(&mut net.rss, rss::RssLog::for_run(config.duration));
    drop(net);
    let rss = rss_log.growth(config.max_rss_growth);
    write(&out.join("rss.csv"), &rss_log.to_csv())?;
    write(
        &out.join("rss.svg"),
        &rss::rss_svg(&rss_log, &rss, &config.title()),
    )?;

    let workload = read_report(&report_path)?;
    let summary = Summary::new(config, &workload, &churn, rejoined, ready_after, rss);
    let json = summary.to_json();
    write(&out.join("report.json"), &format!("{json}\n"))?;
    write(
        &out.join("latency.svg"),
        &latency_svg(config, &workload.ops),
    )?;
    if config.json {
        eprintln!("{}", summary.to_text());
        stdout_line(&json);
    } else {
        stdout_line(&summary.to_text());
    }
    eprintln!(
        "testnet: wrote {}, {}, {} and {}",
        out.join("report.json").display(),
        out.join("latency.svg").display(),
        out.join("rss.csv").display(),
        out.join("rss.svg").display()
    );
    if summary.ops.is_empty() || summary.success_rate < config.threshold {
        eprintln!(
            "testnet: FAILED: success rate {:.4} is below the threshold {}",
            summary.success_rate, config.threshold
        );
        return Ok(Verdict::BelowThreshold);
    }
    if !summary.rss.passed {
        eprintln!("testnet: FAILED: {}", summary.rss.to_text());
        return Ok(Verdict::RssGrew);
    }
    Ok(Verdict::Passed)
}

/// A closed stdout (`| head`) ends the output quietly instead of panicking.
fn stdout_line(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn prepare_dir(out: &Path) -> Result<(), Error> {
    // Logs and sled data of the previous run would confuse the readiness check and the
    // restarted nodes: every run starts from nothing.
    if out.exists() {
        fs::remove_dir_all(out)
            .map_err(|e| Error::Failed(format!("testnet: cannot clear {}: {e}", out.display())))?;
    }
    for dir in [out.join("logs"), out.join("data")] {
        fs::create_dir_all(&dir)
            .map_err(|e| Error::Failed(format!("testnet: cannot create {}: {e}", dir.display())))?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    fs::write(path, text)
        .map_err(|e| Error::Failed(format!("testnet: cannot write {}: {e}", path.display())))
}

fn interrupted() -> Result<(), Error> {
    if STOP.load(Ordering::SeqCst) {
        eprintln!("testnet: interrupted; stopping every process it started");
        return Err(Error::Failed("testnet: interrupted".into()));
    }
    Ok(())
}
