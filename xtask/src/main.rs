//! `cargo xtask`: workspace tasks that are programs rather than tests.
//!
//! Subcommands: `testnet` (many node processes under churn and a workload through them), `load`
//! (a KRPC load generator for one DHT node), `echo` (a bare UDP echo, the baseline `load` is
//! measured against), `fill` (a full routing table for a node under test) and `interop` (a
//! forward to the `dht-interop` runner), `ipfs-bench` (our IPFS node against rust-libp2p's
//! kad, with the `dht-ipfs-bench` processes), `perf` (the working tree against a build of another
//! commit, side by side), `image` (the container image), `api` (the public API files, api/).
//! Arguments are parsed by hand to keep this crate almost free of dependencies: it is rebuilt
//! in release mode whenever the alias runs, so it must build fast.
//! What it shares with the other measuring tools (histogram, quantiles, query templates, the
//! load report, the workload's records) is in `dht-measure`, std only but for serde.
//!
//! Adding a subcommand: a module with a `run` and a `USAGE`, a line in `USAGE` here, and arms
//! in `main`'s two matches (the help and the run).

mod api;
mod echo;
mod fill;
mod image;
mod interop;
mod ipfs_bench;
mod load;
mod perf;
mod rng;
mod testnet;
mod testnet_cli;

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dht_measure::krpc::QueryKind;
use load::LoadConfig;
use testnet_cli::{run_testnet, TESTNET_USAGE};

/// Like `println!`, but a closed stdout (`cargo xtask load --help | head`) ends the output
/// quietly instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use out;

const USAGE: &str = "\
cargo xtask: tasks for the Mainline DHT workspace

USAGE:
    cargo xtask <COMMAND> [OPTIONS]

COMMANDS:
    testnet Run many DHT nodes on this machine under churn, with a workload through them
    load    Send KRPC queries to one DHT node and report its rate and latency
    echo    Run a bare UDP echo server, the baseline that `load` is measured against
    fill    Give a node under test a full routing table (contacts on this machine)
    interop Our nodes and other Mainline implementations in one loopback network: a matrix
    ipfs-bench Our IPFS node against rust-libp2p's kad: FIND_NODE/s, lookup latency, idle RSS
    perf    The working tree against a build of REF, side by side: rates, instructions, dht-sim
    image   The dht-node container image (OCI, FROM scratch, static musl binary), offline
    api     Write each library crate's public API to api/CRATE.txt, or --check it
    help    Print this text, or `help <COMMAND>` for that command's options

`cargo xtask <COMMAND> --help` prints the options of a command.";

const LOAD_USAGE: &str = "\
cargo xtask load: a closed-loop KRPC load generator for one DHT node

USAGE:
    cargo xtask load --target HOST:PORT [OPTIONS]

Keeps CONCURRENCY requests in flight from SOCKETS source ports: every answer or timeout lets
the next request go out at once, so the rate follows what the target sustains. Every query is
read-only (BEP 43: top-level ro=1, so the target keeps our many ports out of its routing table),
has a 4-byte transaction id, and a fresh random target / info_hash. A datagram carrying the
transaction id of a request in flight answers it: y=r is a response, y=e a KRPC error (answered,
reported apart), y=q our own query returned by `cargo xtask echo` (answered, reported as echoed).

OPTIONS:
    --target HOST:PORT   The node to load (required). Use loopback or a node you run.
    --transport KIND     udp | quic. quic runs the dht-quic-load binary (built on first
                         use): --sockets are then QUIC connections      [default: udp]
    --query KIND         ping | find_node | get_peers | get (BEP 44)     [default: ping]
    --concurrency C      Requests in flight, over all sockets            [default: 256]
    --duration SECS      How long to send; then in-flight requests are
                         waited for (up to --timeout). Fractions allowed  [default: 10]
    --sockets N          Source ports (UDP sockets), each with a window of
                         C/N requests; capped at C                       [default: 64]
    --threads T          Threads polling the sockets, each owning N/T    [default: CPUs
                         sockets. More threads than CPUs only costs       this process
                         context switches                                 may run on]
    --timeout MS         A request unanswered after this is counted as
                         unanswered and its slot reused                  [default: 1000]
    --no-ro              Leave out ro=1: the target then pings and may add our source
                         ports to its table, as it would real peers
    --json               Print the report as one JSON object on the last line of stdout
    --quiet              No per-second progress on stderr
    -h, --help           Print this help

REPORT:
    answered/s  answers received before the sending phase ended, per second of it
    sent, answered (responses + errors + echoed), unanswered (timed out; fraction of sent),
    late (answer after its timeout), malformed (not KRPC or unknown transaction id),
    latency p50 / p99 in microseconds, from send to receive of each answered request;
    load cpu: CPU time the load generator used while sending (Linux). Near 100 % of its
    threads, the load generator was the bottleneck and the target may sustain more.

PINNING:
    The load and the target should not share a CPU, or the figure measures the scheduler:
        taskset -c 0 target/release/xtask echo --listen 127.0.0.1:7000 &
        taskset -c 1 cargo xtask load --target 127.0.0.1:7000 --duration 10
    --threads defaults to the CPUs allowed by taskset, so this runs one load thread.";

const FILL_USAGE: &str = "\
cargo xtask fill: give one DHT node a routing table like one on the live DHT

USAGE:
    cargo xtask fill --target HOST:PORT [--buckets B] [--per-bucket K] [--seconds S]

Opens B x K UDP sockets on loopback, each a contact whose id shares 0, 1, ..., B-1 leading
bits with the target's id (K per bucket), introduces each with one find_node (not read-only),
and answers the pings the target sends before it admits a contact, for S seconds. The target
then has about B x K entries (192 by default), as a node on the live DHT does, so that
`cargo xtask load` measures find_node and get_peers with real replies. The target must
exempt loopback from its per-IP caps (dht-node does by default).

OPTIONS:
    --target HOST:PORT   The node to fill (required; loopback)
    --buckets B          Buckets to fill, from the farthest                [default: 24]
    --per-bucket K       Contacts per bucket (the target's k)             [default: 8]
    --seconds S          How long to answer the target's pings             [default: 10]
    -h, --help           Print this help";

const ECHO_USAGE: &str = "\
cargo xtask echo: a bare UDP echo server

USAGE:
    cargo xtask echo [OPTIONS]

Sends every datagram back unchanged to its source. It does no work, so the rate `cargo xtask
load` reaches against it is the most that the load generator can measure on this machine.
Runs until Ctrl-C, or for --duration seconds and then prints the datagram count to stderr.

OPTIONS:
    --listen ADDR        Address to bind                                [default: 127.0.0.1:7000]
    --threads T          Threads sharing the socket                      [default: 1]
    --duration SECS      Stop after this many seconds                    [default: run until Ctrl-C]
    -h, --help           Print this help";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let result = match command.as_deref() {
        None | Some("help" | "-h" | "--help") => {
            match rest.first().map(String::as_str) {
                Some("testnet") => out!("{TESTNET_USAGE}"),
                Some("load") => out!("{LOAD_USAGE}"),
                Some("echo") => out!("{ECHO_USAGE}"),
                Some("fill") => out!("{FILL_USAGE}"),
                Some("interop") => out!("{}", interop::USAGE),
                Some("ipfs-bench") => out!("{}", ipfs_bench::USAGE),
                Some("perf") => out!("{}", perf::USAGE),
                Some("image") => out!("{}", image::USAGE),
                Some("api") => out!("{}", api::USAGE),
                _ => out!("{USAGE}"),
            }
            Ok(())
        }
        Some("testnet") => run_testnet(&rest),
        Some("load") => run_load(&rest),
        Some("echo") => run_echo(&rest),
        Some("fill") => run_fill(&rest),
        Some("interop") => return interop::run(&rest),
        Some("ipfs-bench") => ipfs_bench::run(&rest),
        Some("perf") => perf::run(&rest),
        Some("image") => image::run(&rest),
        Some("api") => api::run(&rest),
        Some(other) => Err(Error::Usage(format!("unknown command `{other}`"), "")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Usage(message, command)) => {
            eprintln!("error: {message}\nRun `cargo xtask {command}--help` for the options.");
            ExitCode::from(2)
        }
        Err(Error::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug)]
enum Error {
    /// Bad command line, with the command (and a trailing space) whose help to point at.
    Usage(String, &'static str),
    Failed(String),
}

/// Splits `--name value`, `--name=value` and bare `--flag` arguments.
#[derive(Debug)]
struct Options<'a> {
    args: &'a [String],
    at: usize,
    command: &'static str,
}

impl<'a> Options<'a> {
    fn new(args: &'a [String], command: &'static str) -> Self {
        Options {
            args,
            at: 0,
            command,
        }
    }

    fn usage(&self, message: String) -> Error {
        Error::Usage(message, self.command)
    }

    /// The next option name, and its inline `=value` if it had one.
    fn next_name(&mut self) -> Option<(&'a str, Option<&'a str>)> {
        let arg = self.args.get(self.at)?;
        self.at += 1;
        Some(match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value)),
            _ => (arg.as_str(), None),
        })
    }

    fn value(&mut self, name: &str, inline: Option<&'a str>) -> Result<&'a str, Error> {
        if let Some(value) = inline {
            return Ok(value);
        }
        let value = self
            .args
            .get(self.at)
            .ok_or_else(|| self.usage(format!("{name} needs a value")))?;
        self.at += 1;
        Ok(value)
    }

    fn parsed<T: std::str::FromStr>(
        &mut self,
        name: &str,
        inline: Option<&'a str>,
    ) -> Result<T, Error> {
        let value = self.value(name, inline)?;
        value
            .parse()
            .map_err(|_| self.usage(format!("{name}: cannot read `{value}`")))
    }

    fn seconds(&mut self, name: &str, inline: Option<&'a str>) -> Result<Duration, Error> {
        let secs: f64 = self.parsed(name, inline)?;
        Duration::try_from_secs_f64(secs)
            .map_err(|_| self.usage(format!("{name}: `{secs}` is not a duration in seconds")))
    }

    fn address(&mut self, name: &str, inline: Option<&'a str>) -> Result<SocketAddr, Error> {
        let value = self.value(name, inline)?;
        value
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| self.usage(format!("{name}: cannot resolve `{value}`")))
    }

    fn fraction(&mut self, name: &str, inline: Option<&'a str>) -> Result<f64, Error> {
        let v: f64 = self.parsed(name, inline)?;
        if (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(self.usage(format!("{name} must be between 0 and 1, not `{v}`")))
        }
    }

    fn positive(&mut self, name: &str, inline: Option<&'a str>) -> Result<usize, Error> {
        match self.parsed(name, inline)? {
            0 => Err(self.usage(format!("{name} must be at least 1"))),
            n => Ok(n),
        }
    }
}

/// What a command line asked for: run with these settings, or only print the help.
#[derive(Debug)]
enum Parsed<T> {
    Run(T),
    Help,
}

fn run_load(args: &[String]) -> Result<(), Error> {
    let (transport, args) = take_transport(args)?;
    if transport == "quic" {
        return run_quic_load(&args);
    }
    let (config, json) = match parse_load(&args)? {
        Parsed::Run(run) => run,
        Parsed::Help => {
            out!("{LOAD_USAGE}");
            return Ok(());
        }
    };
    eprintln!(
        "load: {} {} for {:.1} s, {} in flight over {} sockets, {} threads",
        config.target,
        config.query,
        config.duration.as_secs_f64(),
        config.concurrency,
        config.sockets.min(config.concurrency),
        config.threads.min(config.sockets).min(config.concurrency)
    );
    let report = load::run(&config).map_err(|e| Error::Failed(format!("load: {e}")))?;
    if json {
        eprintln!("{}", report.to_text(&config));
        out!("{}", report.to_json(&config));
    } else {
        out!("{}", report.to_text(&config));
    }
    Ok(())
}

/// Splits `--transport udp|quic` off the load arguments.
fn take_transport(args: &[String]) -> Result<(String, Vec<String>), Error> {
    let mut transport = "udp".to_string();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if let Some(v) = a.strip_prefix("--transport=") {
            transport = v.to_string();
        } else if a == "--transport" {
            i += 1;
            transport = args.get(i).cloned().ok_or_else(|| {
                Error::Usage("--transport needs a value: udp or quic".into(), "load ")
            })?;
        } else {
            rest.push(a.clone());
        }
        i += 1;
    }
    match transport.as_str() {
        "udp" | "quic" => Ok((transport, rest)),
        other => Err(Error::Usage(
            format!("--transport must be udp or quic, not `{other}`"),
            "load ",
        )),
    }
}

/// QUIC load needs quinn, which xtask does not link (it must build fast): the work is
/// done by the `dht-quic-load` binary, built in release mode and run with the same
/// options (`--sockets` becomes `--connections`; it runs on one thread).
fn run_quic_load(args: &[String]) -> Result<(), Error> {
    let mut mapped = Vec::new();
    for a in args {
        if a == "--threads" || a.starts_with("--threads=") {
            return Err(Error::Usage(
                "--threads does not apply to --transport quic (one thread drives every connection)"
                    .into(),
                "load ",
            ));
        }
        if a == "--sockets" {
            mapped.push("--connections".to_string());
        } else if let Some(v) = a.strip_prefix("--sockets=") {
            mapped.push(format!("--connections={v}"));
        } else {
            mapped.push(a.clone());
        }
    }
    let root = testnet::workspace_root();
    let target = testnet::target_dir(&root);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("load: building dht-quic-load (release)");
    let status = std::process::Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--release", "--quiet", "-p", "dht-quic-load"])
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .map_err(|e| Error::Failed(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(Error::Failed(
            "building dht-quic-load failed (cargo's output is above)".into(),
        ));
    }
    let bin = target
        .join("release")
        .join(format!("dht-quic-load{}", std::env::consts::EXE_SUFFIX));
    let status = std::process::Command::new(&bin)
        .args(&mapped)
        .status()
        .map_err(|e| Error::Failed(format!("cannot run {}: {e}", bin.display())))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(2) => Err(Error::Usage(
            "dht-quic-load refused the options (above)".into(),
            "load ",
        )),
        _ => Err(Error::Failed("the QUIC load failed (above)".into())),
    }
}

/// Returns the settings and whether to print JSON.
fn parse_load(args: &[String]) -> Result<Parsed<(LoadConfig, bool)>, Error> {
    let mut options = Options::new(args, "load ");
    let mut target = None;
    let mut config = LoadConfig {
        target: SocketAddr::from(([127, 0, 0, 1], 0)),
        query: QueryKind::Ping,
        concurrency: 256,
        duration: Duration::from_secs(10),
        sockets: 64,
        threads: dht_measure::cpus(),
        timeout: Duration::from_secs(1),
        progress: true,
        read_only: true,
    };
    let mut json = false;
    while let Some((name, inline)) = options.next_name() {
        match name {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--target" => target = Some(options.address(name, inline)?),
            "--query" => {
                let value = options.value(name, inline)?;
                config.query = QueryKind::parse(value).ok_or_else(|| {
                    options.usage(format!(
                        "--query: `{value}` is not ping, find_node, get_peers or get"
                    ))
                })?;
            }
            "--concurrency" => config.concurrency = options.positive(name, inline)?,
            "--duration" => config.duration = options.seconds(name, inline)?,
            "--sockets" => config.sockets = options.positive(name, inline)?,
            "--threads" => config.threads = options.positive(name, inline)?,
            "--timeout" => {
                config.timeout = Duration::from_millis(options.positive(name, inline)? as u64)
            }
            "--json" => json = true,
            "--quiet" => config.progress = false,
            "--no-ro" => config.read_only = false,
            other => return Err(options.usage(format!("unknown option `{other}`"))),
        }
    }
    config.target = target.ok_or_else(|| options.usage("--target is required".into()))?;
    Ok(Parsed::Run((config, json)))
}

fn run_fill(args: &[String]) -> Result<(), Error> {
    let mut options = Options::new(args, "fill ");
    let mut target = None;
    let mut config = fill::FillConfig {
        target: SocketAddr::from(([127, 0, 0, 1], 0)),
        buckets: 24,
        per_bucket: 8,
        answer_for: Duration::from_secs(10),
    };
    while let Some((name, inline)) = options.next_name() {
        match name {
            "-h" | "--help" => {
                out!("{FILL_USAGE}");
                return Ok(());
            }
            "--target" => target = Some(options.address(name, inline)?),
            "--buckets" => config.buckets = options.positive(name, inline)?,
            "--per-bucket" => config.per_bucket = options.positive(name, inline)?,
            "--seconds" => config.answer_for = options.seconds(name, inline)?,
            other => return Err(options.usage(format!("unknown option `{other}`"))),
        }
    }
    config.target = target.ok_or_else(|| options.usage("--target is required".into()))?;
    eprintln!(
        "fill: {} contacts ({} buckets x {}) for {}, answering pings for {:.0} s",
        config.buckets * config.per_bucket,
        config.buckets,
        config.per_bucket,
        config.target,
        config.answer_for.as_secs_f64()
    );
    let r = fill::run(&config).map_err(|e| Error::Failed(format!("fill: {e}")))?;
    out!(
        "target id {}: {} contacts introduced, {} pinged by the target (admitted), {} pings answered",
        r.target_id.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        r.contacts,
        r.contacts_pinged,
        r.pings_answered
    );
    Ok(())
}

fn run_echo(args: &[String]) -> Result<(), Error> {
    let mut options = Options::new(args, "echo ");
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 7000));
    let mut threads = 1;
    let mut duration = None;
    while let Some((name, inline)) = options.next_name() {
        match name {
            "-h" | "--help" => {
                out!("{ECHO_USAGE}");
                return Ok(());
            }
            "--listen" => listen = options.address(name, inline)?,
            "--threads" => threads = options.positive(name, inline)?,
            "--duration" => duration = Some(options.seconds(name, inline)?),
            other => return Err(options.usage(format!("unknown option `{other}`"))),
        }
    }

    let socket =
        UdpSocket::bind(listen).map_err(|e| Error::Failed(format!("echo: bind {listen}: {e}")))?;
    eprintln!("echo: listening on {listen} with {threads} threads");
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(duration) = duration {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(duration);
            stop.store(true, Ordering::Relaxed);
        });
    }
    let cpu_at_start = dht_measure::proc::process_cpu_time();
    let echoed =
        echo::serve(socket, threads, &stop).map_err(|e| Error::Failed(format!("echo: {e}")))?;
    match (cpu_at_start, dht_measure::proc::process_cpu_time()) {
        (Some(begin), Some(end)) if end > begin => {
            let cpu = (end - begin).as_secs_f64();
            eprintln!(
                "echo: {echoed} datagrams echoed, {cpu:.2} CPU s, {:.0} per CPU second",
                echoed as f64 / cpu
            );
        }
        _ => eprintln!("echo: {echoed} datagrams echoed"),
    }
    Ok(())
}

/// A command line split at whitespace, as the argument list a test parses.
#[cfg(test)]
fn test_args(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_args as args;

    #[test]
    fn load_options_in_both_spellings() {
        let Ok(Parsed::Run((config, json))) = parse_load(&args(
            "--target 127.0.0.1:7000 --query=get_peers --concurrency 9 --duration=0.5 \
             --sockets 3 --threads=2 --timeout 250 --json --quiet",
        )) else {
            panic!("did not parse");
        };
        assert_eq!(config.target, SocketAddr::from(([127, 0, 0, 1], 7000)));
        assert_eq!(config.query, QueryKind::GetPeers);
        assert_eq!(config.concurrency, 9);
        assert_eq!(config.duration, Duration::from_millis(500));
        assert_eq!((config.sockets, config.threads), (3, 2));
        assert_eq!(config.timeout, Duration::from_millis(250));
        assert!(json && !config.progress);
    }

    #[test]
    fn bad_load_options_are_usage_errors() {
        for line in [
            "",
            "--target",
            "--target 127.0.0.1:7000 --query find_value",
            "--target 127.0.0.1:7000 --concurrency 0",
            "--target 127.0.0.1:7000 --duration -1",
            "--target 127.0.0.1:7000 --duration NaN",
            "--target 127.0.0.1:7000 --sockets many",
            "--target 127.0.0.1:7000 --frobnicate",
        ] {
            assert!(
                matches!(parse_load(&args(line)), Err(Error::Usage(_, "load "))),
                "{line}"
            );
        }
        assert!(matches!(parse_load(&args("-h")), Ok(Parsed::Help)));
    }
}
