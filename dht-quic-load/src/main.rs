//! `dht-quic-load`: the QUIC mode of `cargo xtask load`. See the crate doc (lib.rs).

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dht_quic_load::{LoadConfig, LoadError, QueryKind, MAX_CONNECTIONS};

/// Exit status of a bad command line, as `cargo xtask load` uses.
const EXIT_USAGE: u8 = 2;

const AFTER_HELP: &str = "\
Opens CONNECTIONS QUIC connections to the target one after another (each its own endpoint,
source port and ed25519 key; the first request on each is a ping, timed with its handshake),
measures the idle round trip with sequential pings on one of them, then keeps CONCURRENCY
read-only queries (ro=1, 4-byte transaction ids, the id derived from the connection's key)
in flight over all of them for DURATION seconds, C/N per connection.

A dht-node accepts 8 connections from one address by default: start it with
--quic-max-conns-per-ip N (or more) to measure more connections.

REPORT (text, or with --json one JSON object on the last line of stdout):
    answered/s, sent, answered (responses + errors + echoed), unanswered and its fraction of
    sent, late, malformed, send/receive errors (messages dropped by the transports),
    latency p50/p99 µs, as `cargo xtask load`; plus the first request on a new connection
    (µs, and in idle round trips), and with --target-pid the target's resident memory before
    and after connecting and its growth per connection.

PINNING: keep the load and the target on different CPUs; this tool runs on one thread:
    taskset -c 0 dht-node --transport quic --listen 127.0.0.1:7100 --no-bootstrap &
    taskset -c 1 dht-quic-load --target 127.0.0.1:7100 --duration 10

Exit status: 0 success, 1 the run failed (no connection answered, no socket), 2 bad usage.";

#[derive(Debug, Parser)]
#[command(
    name = "dht-quic-load",
    version,
    about = "A closed-loop KRPC load generator over QUIC for one DHT node",
    after_help = AFTER_HELP
)]
struct Cli {
    /// The node to load, HOST:PORT. Use loopback or a node you run.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_target)]
    target: SocketAddr,
    /// ping | find_node | get_peers | get (BEP 44).
    #[arg(long, value_name = "KIND", default_value = "ping", value_parser = parse_query)]
    query: QueryKind,
    /// Requests in flight, over all connections.
    #[arg(long, value_name = "C", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// How long to send, in seconds (fractions allowed; 0: connect and measure only);
    /// then in-flight requests are waited for (up to --timeout).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    duration: Duration,
    /// QUIC connections, each with a window of C/N requests (more than C: the extra
    /// ones stay open and idle, which is what --hold measures).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=MAX_CONNECTIONS as i64))]
    connections: u32,
    /// A request unanswered after this many milliseconds counts as unanswered.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    timeout: u64,
    /// Keep the connections open this many seconds after the load (a ping each every
    /// 10 s keeps them from idling out), e.g. to watch the target's memory.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_seconds)]
    hold: Duration,
    /// The target's process id: report its resident memory (VmRSS) before and after
    /// the connections, and per connection.
    #[arg(long, value_name = "PID")]
    target_pid: Option<u32>,
    /// Print the report as one JSON object on the last line of stdout (the text report
    /// goes to stderr).
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

fn parse_target(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("cannot resolve `{s}` (expected HOST:PORT)"))
}

fn parse_query(s: &str) -> Result<QueryKind, String> {
    QueryKind::parse(s).ok_or_else(|| format!("`{s}` is not ping, find_node, get_peers or get"))
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is not a duration in seconds"))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap prints help and version to stdout (status 0), errors to stderr (status 2).
        Err(e) => e.exit(),
    };
    let config = LoadConfig {
        target: cli.target,
        query: cli.query,
        concurrency: cli.concurrency as usize,
        duration: cli.duration,
        connections: cli.connections as usize,
        timeout: Duration::from_millis(cli.timeout),
        hold: cli.hold,
        target_pid: cli.target_pid,
        progress: !cli.quiet,
    };
    // Checked before the banner, so that a bad flag's line is the first on stderr.
    if let Err(e) = dht_quic_load::validate(&config) {
        return fail(e);
    }
    if !cli.quiet {
        eprintln!(
            "quic-load: {} {} for {:.1} s, {} in flight over {} QUIC connections",
            config.target,
            config.query,
            config.duration.as_secs_f64(),
            config.concurrency,
            config.connections
        );
    }
    match dht_quic_load::run(&config) {
        Ok(report) => {
            if cli.json {
                eprintln!("{}", report.to_text(&config));
                println!("{}", report.to_json(&config));
            } else {
                println!("{}", report.to_text(&config));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn fail(e: LoadError) -> ExitCode {
    match e {
        LoadError::Invalid(m) => {
            eprintln!("error: {m}\nRun `dht-quic-load --help` for the options.");
            ExitCode::from(EXIT_USAGE)
        }
        LoadError::Failed(m) => {
            eprintln!("error: {m}");
            ExitCode::FAILURE
        }
    }
}
