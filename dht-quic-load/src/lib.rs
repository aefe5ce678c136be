//! # dht-quic-load: KRPC load over QUIC, the QUIC counterpart of `cargo xtask load`
//!
//! Opens `connections` QUIC connections to one DHT node and keeps `concurrency` read-only
//! KRPC queries in flight over them (a closed loop: each answer or timeout sends the next
//! query at once), then reports the rate and latency in the same terms as `cargo xtask
//! load` over UDP, so the two can be compared on one machine: both send
//! `dht_measure::krpc` query templates and report through `dht_measure::LoadReport` (one
//! histogram, one quantile rule, the same `--json` names).
//!
//! Each connection is a [`QuicTransport`] of its own: the transport caches one connection
//! per peer address, so N connections to one target need N endpoints (N source ports).
//! Using dht-net-quic's transport, rather than quinn directly, means the client speaks
//! exactly what a node speaks (certificate, key-only verification, ALPN, datagrams), and
//! the rate measured is that of the DHT's own QUIC path on both ends.
//!
//! Besides the rate, a run measures:
//! - **the first request to a new peer**: connections are opened one after another, each
//!   by sending a `ping` into a fresh transport (which starts the handshake and sends the
//!   ping behind it, as a node would), timed until the answer arrives; reported in µs and
//!   in round trips, dividing by the median round trip of sequential pings on an
//!   established, otherwise idle connection;
//! - **memory per cached connection** (with a target pid): the target's resident memory
//!   before the first connection and after the last, divided by their number.
//!
//! Everything runs on one thread ([`run`] builds a current-thread runtime): pinned with
//! `taskset`, the load generator then takes one CPU, as `cargo xtask load` does.

// Every public item says what it is (issue 28); CI turns the warning into an error.
#![warn(missing_docs)]

#[cfg(test)]
mod query_tests;

use std::cell::RefCell;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use dht_core::{OutDatagram, RecvSlot, Transport};
use dht_net_quic::{generate_key, QuicConfig, QuicTransport};
use rand_chacha::rand_core::{OsRng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use dht_measure::krpc::{parse_envelope, QueryTemplate};
pub use dht_measure::krpc::{MessageKind, QueryKind, TRANSACTION_ID_LEN};
use dht_measure::proc::{cpu_time, process_cpu_time, rss_bytes};
pub use dht_measure::{Histogram, LoadReport, LoadSummary};
use serde::Serialize;

/// What a run does.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The node to load.
    pub target: SocketAddr,
    /// The query sent during the load phase (the first request and the RTT probe are
    /// always `ping`: the cheapest answer, so they time the path, not the node's work).
    pub query: QueryKind,
    /// Requests in flight over all connections.
    pub concurrency: usize,
    /// Length of the load phase; zero skips it (connect, measure, hold).
    pub duration: Duration,
    /// QUIC connections (each its own endpoint and source port).
    pub connections: usize,
    /// A request unanswered after this counts as unanswered and its slot is reused.
    pub timeout: Duration,
    /// Keep the connections open this long after the load phase (kept alive by a ping
    /// each every few seconds), to look at the target from outside.
    pub hold: Duration,
    /// The target's process id, to read its resident memory.
    pub target_pid: Option<u32>,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl LoadConfig {
    /// The defaults of the command line, for `target`.
    pub fn new(target: SocketAddr) -> LoadConfig {
        LoadConfig {
            target,
            query: QueryKind::Ping,
            concurrency: 256,
            duration: Duration::from_secs(10),
            connections: 8,
            timeout: Duration::from_secs(1),
            hold: Duration::ZERO,
            target_pid: None,
            progress: true,
        }
    }
}

/// Sequential pings on one established connection to find the idle round trip.
const RTT_PROBES: usize = 200;
/// Idle connections get a ping this often during `--hold`: well inside the 30 s idle
/// timeout that dht-net-quic sets (and QuicConfig offers no keep-alive).
const KEEPALIVE: Duration = Duration::from_secs(10);
/// Bounds that keep `Instant` arithmetic from overflowing (which would panic).
const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);
const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);
/// Most connections: each is an endpoint with a socket (a file descriptor).
pub const MAX_CONNECTIONS: usize = 10_000;

/// A run: the figures every load generator reports ([`LoadReport`], the load phase), and
/// what only QUIC has: connections, first requests with their handshakes, memory.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The load phase: rate, answers, losses, latency, this process's CPU. Its
    /// `send_errors` / `receive_errors` are the messages the transports dropped on the way
    /// out / in (`QuicStats::send_dropped` / `recv_dropped`).
    pub load: LoadReport,
    /// Connections asked for, and those whose first request was answered (the others
    /// are not used).
    pub connections: usize,
    /// Connections whose first ping got an answer.
    pub established: usize,
    /// Connections whose first ping got none (handshake refused or timed out, or no answer).
    pub connect_failures: usize,
    /// First request on each new connection, handshake included (µs).
    pub first_request_us: Histogram,
    /// Sequential pings on an established idle connection (µs).
    pub idle_rtt_us: Histogram,
    /// CPU time the target used during the load phase (with a target pid): per answer,
    /// the cost of a request on the target, which a busy machine disturbs less than
    /// the rate.
    pub target_cpu: Option<Duration>,
    /// Target resident memory before the first connection (bytes, with a target pid).
    pub target_rss_before: Option<u64>,
    /// Target resident memory after the last connection was established (bytes).
    pub target_rss_after: Option<u64>,
    /// Target resident memory at the end of the hold, after the load phase (bytes).
    pub target_rss_after_hold: Option<u64>,
    /// This process's resident memory before connecting (bytes).
    pub own_rss_before: Option<u64>,
    /// This process's resident memory after connecting (bytes): with `own_rss_before`,
    /// an upper bound of a client connection, which here carries a whole endpoint.
    pub own_rss_after: Option<u64>,
}

/// `--json`: the fields of `cargo xtask load --json` (with `transport`, and `connections`
/// in place of `sockets`) and the QUIC-only figures. The names are published: add, never
/// rename.
#[derive(Debug, Serialize)]
struct Json {
    transport: &'static str,
    target: String,
    query: &'static str,
    connections: usize,
    established: usize,
    connect_failures: usize,
    #[serde(flatten)]
    load: LoadSummary,
    first_request_p50_us: Option<u64>,
    first_request_p99_us: Option<u64>,
    first_request_max_us: Option<u64>,
    idle_rtt_p50_us: Option<u64>,
    first_request_rtts: Option<f64>,
    target_rss_before_bytes: Option<u64>,
    target_rss_after_bytes: Option<u64>,
    target_rss_after_hold_bytes: Option<u64>,
    target_rss_per_connection_bytes: Option<f64>,
    own_rss_per_connection_bytes: Option<f64>,
    target_cpu_s: Option<f64>,
    target_cpu_us_per_answer: Option<f64>,
}

impl Report {
    /// The median first request in idle round trips.
    pub fn first_request_rtts(&self) -> Option<f64> {
        let first = self.first_request_us.quantile(0.5)?;
        let rtt = self.idle_rtt_us.quantile(0.5)?;
        Some(first as f64 / rtt.max(1) as f64)
    }

    /// Growth of the target's resident memory per established connection (bytes; may
    /// be negative when the allocator returned memory meanwhile).
    pub fn target_rss_per_connection(&self) -> Option<f64> {
        per_connection(
            self.target_rss_before,
            self.target_rss_after,
            self.established,
        )
    }

    /// Growth of this process's resident memory per established connection (bytes): an
    /// upper bound of what a connection costs a client, since each here is an endpoint.
    pub fn own_rss_per_connection(&self) -> Option<f64> {
        per_connection(self.own_rss_before, self.own_rss_after, self.established)
    }

    /// Target CPU time per answer in the load phase (µs).
    pub fn target_cpu_us_per_answer(&self) -> Option<f64> {
        let cpu = self.target_cpu?;
        (self.load.answered_in_window > 0)
            .then(|| cpu.as_secs_f64() * 1e6 / self.load.answered_in_window as f64)
    }

    /// The report as the tool prints it: the load figures, then the QUIC-only ones.
    pub fn to_text(&self, config: &LoadConfig) -> String {
        let q = |h: &Histogram, q| h.quantile(q).map_or("-".to_string(), |v| v.to_string());
        let opt =
            |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.0}{unit}"));
        let mib =
            |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{:.1}", v as f64 / 1048576.0));
        format!(
            "target {} (quic) query {} connections {} (established {}, failed {}) concurrency {} duration {:.2} s\n\
             {}\n\
             first request µs (handshake included)  p50 {}   p99 {}   max {}\n\
             idle round trip µs  p50 {}   p99 {}\n\
             first request in round trips  {}\n\
             target RSS MiB  before {}   after {}   after hold {}   per connection {}\n\
             own RSS per connection  {}\n\
             target cpu  {}\n\
             {}",
            config.target,
            config.query,
            self.connections,
            self.established,
            self.connect_failures,
            self.load.concurrency,
            self.load.elapsed.as_secs_f64(),
            self.load.text_lines(),
            q(&self.first_request_us, 0.5),
            q(&self.first_request_us, 0.99),
            q(&self.first_request_us, 1.0),
            q(&self.idle_rtt_us, 0.5),
            q(&self.idle_rtt_us, 0.99),
            self.first_request_rtts().map_or("-".to_string(), |r| format!("{r:.1}")),
            mib(self.target_rss_before),
            mib(self.target_rss_after),
            mib(self.target_rss_after_hold),
            opt(self.target_rss_per_connection(), " B"),
            opt(self.own_rss_per_connection(), " B"),
            match (self.target_cpu, self.target_cpu_us_per_answer()) {
                (Some(cpu), Some(per)) => format!(
                    "{:.2} s, {:.0} % of one CPU, {per:.2} µs per answer",
                    cpu.as_secs_f64(),
                    100.0 * cpu.as_secs_f64() / self.load.elapsed.as_secs_f64().max(1e-9)
                ),
                _ => "-".to_string(),
            },
            self.load.load_cpu_line(),
        )
    }

    /// One line of JSON.
    pub fn to_json(&self, config: &LoadConfig) -> String {
        let round = |v: Option<f64>, digits| v.map(|v| dht_measure::round(v, digits));
        let json = Json {
            transport: "quic",
            target: config.target.to_string(),
            query: config.query.method(),
            connections: self.connections,
            established: self.established,
            connect_failures: self.connect_failures,
            load: self.load.summary(),
            first_request_p50_us: self.first_request_us.quantile(0.5),
            first_request_p99_us: self.first_request_us.quantile(0.99),
            first_request_max_us: self.first_request_us.quantile(1.0),
            idle_rtt_p50_us: self.idle_rtt_us.quantile(0.5),
            first_request_rtts: round(self.first_request_rtts(), 2),
            target_rss_before_bytes: self.target_rss_before,
            target_rss_after_bytes: self.target_rss_after,
            target_rss_after_hold_bytes: self.target_rss_after_hold,
            target_rss_per_connection_bytes: round(self.target_rss_per_connection(), 0),
            own_rss_per_connection_bytes: round(self.own_rss_per_connection(), 0),
            target_cpu_s: round(self.target_cpu.map(|c| c.as_secs_f64()), 2),
            target_cpu_us_per_answer: round(self.target_cpu_us_per_answer(), 2),
        };
        // Plain fields and numbers (a non-finite one becomes null): this cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }
}

fn per_connection(before: Option<u64>, after: Option<u64>, n: usize) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if n > 0 => Some((a as f64 - b as f64) / n as f64),
        _ => None,
    }
}

/// Why a run could not be made.
#[derive(Debug)]
pub enum LoadError {
    /// The configuration is unusable (a usage error).
    Invalid(String),
    /// The run failed: no runtime, no socket, no connection.
    Failed(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Invalid(m) | LoadError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for LoadError {}

/// Checks `config` without touching the network.
pub fn validate(config: &LoadConfig) -> Result<(), LoadError> {
    let invalid = |m: &str| Err(LoadError::Invalid(m.to_string()));
    if config.concurrency == 0 {
        return invalid("--concurrency must be at least 1");
    }
    if config.connections == 0 || config.connections > MAX_CONNECTIONS {
        return invalid(&format!(
            "--connections must be between 1 and {MAX_CONNECTIONS}"
        ));
    }
    if config.timeout.is_zero() || config.timeout > MAX_TIMEOUT {
        return invalid("--timeout must be between 1 ms and one day");
    }
    if config.duration > MAX_DURATION || config.hold > MAX_DURATION {
        return invalid("--duration and --hold are capped at one year");
    }
    // A slot index is the first 2 bytes of the transaction id.
    let window_limit = usize::from(u16::MAX) + 1;
    if config.concurrency.div_ceil(config.connections) > window_limit {
        return invalid(&format!(
            "at most {window_limit} requests in flight per connection: add connections"
        ));
    }
    if let Some(pid) = config.target_pid {
        rss_bytes(pid).map_err(|e| {
            LoadError::Invalid(format!("--target-pid {pid}: cannot read its memory: {e}"))
        })?;
    }
    Ok(())
}

/// Runs the whole measurement on a current-thread runtime of its own (call it from a
/// plain thread, not from inside a runtime).
pub fn run(config: &LoadConfig) -> Result<Report, LoadError> {
    validate(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LoadError::Failed(format!("cannot start the async runtime: {e}")))?;
    // A LocalSet: the connection tasks share one report through an Rc<RefCell>, which
    // one thread makes safe and free of locks.
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, run_local(config))
}

/// One client connection: its transport and the id its key gives it.
#[derive(Debug)]
struct Conn {
    transport: QuicTransport,
    /// Over QUIC the target drops a query whose id is not the one derived from the key.
    id: [u8; 20],
}

async fn run_local(config: &LoadConfig) -> Result<Report, LoadError> {
    let mut report = Report {
        connections: config.connections,
        load: LoadReport {
            concurrency: config.concurrency,
            // One thread: see the crate doc.
            threads: 1,
            ..LoadReport::default()
        },
        ..Report::default()
    };
    let rss = |pid: Option<u32>| pid.and_then(|p| rss_bytes(p).ok());
    let me = Some(std::process::id());
    report.target_rss_before = rss(config.target_pid);
    report.own_rss_before = rss(me);

    let conns = connect_all(config, &mut report).await?;
    if conns.is_empty() {
        return Err(LoadError::Failed(format!(
            "no QUIC connection to {} answered a ping: is it a QUIC node (dht-node \
             --transport quic)? A node accepts 8 connections from one address unless \
             started with --quic-max-conns-per-ip",
            config.target
        )));
    }

    let mut rng = ChaCha8Rng::seed_from_u64(OsRng.next_u64());
    report.idle_rtt_us = idle_rtt(&conns[0], config, &mut rng).await;
    // Let the target finish what the handshakes left (tasks, queues) before reading.
    tokio::time::sleep(Duration::from_millis(300)).await;
    report.target_rss_after = rss(config.target_pid);
    report.own_rss_after = rss(me);

    let conns: Vec<Rc<Conn>> = conns.into_iter().map(Rc::new).collect();
    if !config.duration.is_zero() {
        load_phase(config, &conns, &mut report).await;
    }
    if !config.hold.is_zero() {
        hold(config, &conns, &mut rng).await;
        report.target_rss_after_hold = rss(config.target_pid);
    }
    for c in &conns {
        let s = c.transport.stats();
        report.load.send_errors += s.send_dropped;
        report.load.receive_errors += s.recv_dropped;
    }
    drop(conns);
    // Dropping a transport closes its endpoint; give the endpoint drivers a moment to
    // send the CONNECTION_CLOSE frames, so the target frees its side now rather than
    // after its idle timeout (and the next run is not refused by its per-address bound).
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(report)
}

/// Opens the connections one after another, each by a first ping, so that each first
/// request is timed alone.
async fn connect_all(config: &LoadConfig, report: &mut Report) -> Result<Vec<Conn>, LoadError> {
    let bind = if config.target.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let cfg = QuicConfig::default();
    // The transport gives up on a handshake after this; the ping may then take a timeout.
    let first_timeout = cfg.handshake_timeout + config.timeout;
    let mut rng = ChaCha8Rng::seed_from_u64(OsRng.next_u64());
    let mut conns = Vec::with_capacity(config.connections);
    let mut next_progress = Instant::now() + Duration::from_secs(1);
    for i in 0..config.connections {
        let transport = QuicTransport::bind(&[bind], generate_key(), cfg.clone()).map_err(|e| {
            LoadError::Failed(format!("cannot bind a QUIC endpoint on {bind}: {e}"))
        })?;
        let conn = Conn {
            id: transport.node_id().0,
            transport,
        };
        match ping(&conn, config.target, first_timeout, &mut rng).await {
            Some(took) => {
                report.first_request_us.record(micros(took));
                conns.push(conn);
            }
            None => report.connect_failures += 1,
        }
        if config.progress && Instant::now() >= next_progress {
            next_progress += Duration::from_secs(1);
            eprintln!(
                "quic-load: {} of {} connections ({} failed)",
                i + 1,
                config.connections,
                report.connect_failures
            );
        }
    }
    report.established = conns.len();
    Ok(conns)
}

/// Transaction ids of pings outside the load phase: slot index 0xffff, which the load
/// phase never reaches unless a connection carries 65536 requests in flight, and then
/// its generation counter keeps them apart anyway.
const PING_SLOT: [u8; 2] = [0xff, 0xff];

/// Sends one ping on `conn` and waits for its answer; returns the time it took.
async fn ping(
    conn: &Conn,
    target: SocketAddr,
    timeout: Duration,
    rng: &mut ChaCha8Rng,
) -> Option<Duration> {
    let generation = (rng.next_u32() as u16).to_be_bytes();
    let t = [PING_SLOT[0], PING_SLOT[1], generation[0], generation[1]];
    let mut query = QueryTemplate::new(QueryKind::Ping, &conn.id);
    query.set_transaction_id(&t);
    let payload = query.as_bytes();
    let mut slots = vec![RecvSlot::new()];
    let start = Instant::now();
    let deadline = start + timeout;
    conn.transport
        .send_batch(&[OutDatagram {
            to: target,
            payload,
        }])
        .await
        .ok()?;
    loop {
        let n = tokio::time::timeout_at(deadline.into(), conn.transport.recv_batch(&mut slots))
            .await
            .ok()?
            .ok()?;
        let took = start.elapsed();
        let answered = slots[..n]
            .iter()
            .any(|s| s.from == target && envelope(s.payload()).is_some_and(|(got, _)| got == t));
        if answered {
            return Some(took);
        }
    }
}

/// The round trip of an established connection with nothing else in flight.
async fn idle_rtt(conn: &Conn, config: &LoadConfig, rng: &mut ChaCha8Rng) -> Histogram {
    let mut h = Histogram::default();
    for _ in 0..RTT_PROBES {
        if let Some(took) = ping(conn, config.target, config.timeout, rng).await {
            h.record(micros(took));
        }
    }
    h
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Keeps the connections open for `config.hold`, pinging each now and then so that
/// neither end closes it as idle.
async fn hold(config: &LoadConfig, conns: &[Rc<Conn>], rng: &mut ChaCha8Rng) {
    if config.progress {
        eprintln!(
            "quic-load: holding {} connections for {:.0} s",
            conns.len(),
            config.hold.as_secs_f64()
        );
    }
    let end = Instant::now() + config.hold;
    loop {
        for c in conns {
            // One at a time: a hold is about memory, not rate; an unanswered keep-alive
            // only means the next one may find the connection gone.
            let _ = ping(c, config.target, config.timeout, rng).await;
        }
        let now = Instant::now();
        if now >= end {
            return;
        }
        tokio::time::sleep_until((now + KEEPALIVE).min(end).into()).await;
        if Instant::now() >= end {
            return;
        }
    }
}

/// The transaction id and kind of a reply, or `None` if it is not KRPC or its `t` is not
/// 4 bytes (ours always are). Never panics and never allocates.
fn envelope(bytes: &[u8]) -> Option<([u8; TRANSACTION_ID_LEN], MessageKind)> {
    let e = parse_envelope(bytes).ok()?;
    Some((e.transaction_id.try_into().ok()?, e.kind))
}

async fn load_phase(config: &LoadConfig, conns: &[Rc<Conn>], report: &mut Report) {
    // The connection tasks count into one LoadReport; its settings are the run's.
    let shared = Rc::new(RefCell::new(LoadReport::default()));
    let n = conns.len();
    let start = Instant::now();
    let deadline = start + config.duration;
    let cpu_start = process_cpu_time();
    let target_cpu_start = config.target_pid.and_then(cpu_time);
    let mut tasks = Vec::with_capacity(n);
    for (i, conn) in conns.iter().enumerate() {
        // Spread the window as evenly as it divides; with more connections than
        // requests in flight, the extra connections stay idle (but open).
        let window = config.concurrency / n + usize::from(i < config.concurrency % n);
        if window == 0 {
            continue;
        }
        let drive = Drive {
            conn: conn.clone(),
            target: config.target,
            window,
            timeout: config.timeout,
            deadline,
            shared: shared.clone(),
            rng: ChaCha8Rng::seed_from_u64(OsRng.next_u64()),
            query: QueryTemplate::new(config.query, &conn.id),
        };
        tasks.push(tokio::task::spawn_local(drive.run()));
    }

    // The rate counts answers up to the deadline only; progress lines meanwhile.
    let mut last = (start, 0u64);
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let next = if config.progress {
            (now + Duration::from_secs(1)).min(deadline)
        } else {
            deadline
        };
        tokio::time::sleep_until(next.into()).await;
        if config.progress && Instant::now() < deadline {
            let s = shared.borrow();
            let now = Instant::now();
            let rate = (s.answered() - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            eprintln!(
                "quic-load: {:>5.1} s  {:>9.0} answered/s  {} sent  {} unanswered",
                now.duration_since(start).as_secs_f64(),
                rate,
                s.sent,
                s.timeouts
            );
            last = (now, s.answered());
        }
    }
    {
        let mut s = shared.borrow_mut();
        s.answered_in_window = s.answered();
    }
    if let (Some(a), Some(b)) = (cpu_start, process_cpu_time()) {
        report.load.load_cpu = Some(b.saturating_sub(a));
    }
    let target_cpu_end = config.target_pid.and_then(cpu_time);
    if let (Some(a), Some(b)) = (target_cpu_start, target_cpu_end) {
        report.target_cpu = Some(b.saturating_sub(a));
    }
    report.load.elapsed = config.duration;
    for t in tasks {
        // A task only ends by returning; a panic in one would be a bug worth seeing.
        if let Err(e) = t.await {
            eprintln!("quic-load: a connection task failed: {e}");
        }
    }
    report.load.merge(&shared.borrow());
}

/// One connection's share of the load: a window of request slots.
#[derive(Debug)]
struct Drive {
    conn: Rc<Conn>,
    target: SocketAddr,
    window: usize,
    timeout: Duration,
    deadline: Instant,
    shared: Rc<RefCell<LoadReport>>,
    rng: ChaCha8Rng,
    /// The connection's query, its transaction id and key rewritten for each request.
    query: QueryTemplate,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Moves on whenever the slot is reused, so an answer after its request timed out
    /// is seen as late instead of answering the slot's next request.
    generation: u16,
    /// Set while a request is in flight.
    sent_at: Option<Instant>,
}

impl Drive {
    async fn run(mut self) {
        let mut slots = vec![
            Slot {
                generation: 0,
                sent_at: None
            };
            self.window
        ];
        // validate() keeps every window within 65536, so each index fits a u16.
        let mut idle: Vec<u16> = (0..self.window).rev().map(|i| i as u16).collect();
        // One copy of the query per request of a batch: the batch borrows them all at once.
        let mut payloads: Vec<QueryTemplate> = vec![self.query.clone(); self.window];
        let mut key = [0u8; 20];
        let mut recv: Vec<RecvSlot> = (0..self.window.min(64)).map(|_| RecvSlot::new()).collect();
        // Timeouts are looked for every eighth of a timeout, as `cargo xtask load` does:
        // cheaper than a timer per request and precise enough for a count.
        let scan_every = (self.timeout / 8).max(Duration::from_millis(1));
        let mut next_scan = Instant::now() + scan_every;
        let sleep = tokio::time::sleep_until(next_scan.into());
        tokio::pin!(sleep);

        loop {
            let now = Instant::now();
            let sending = now < self.deadline;
            if sending && !idle.is_empty() {
                let count = idle.len();
                for (k, &index) in idle.iter().enumerate() {
                    let slot = &mut slots[usize::from(index)];
                    let g = slot.generation.to_be_bytes();
                    let i = index.to_be_bytes();
                    let query = &mut payloads[k];
                    query.set_transaction_id(&[i[0], i[1], g[0], g[1]]);
                    // A random target makes every find_node / get_peers / get a fresh
                    // lookup in the target's table and store, as real lookups would be.
                    if query.has_key() {
                        self.rng.fill_bytes(&mut key);
                        query.set_key(&key);
                    }
                    slot.sent_at = Some(now);
                }
                let batch: Vec<OutDatagram<'_>> = payloads[..count]
                    .iter()
                    .map(|p| OutDatagram {
                        to: self.target,
                        payload: p.as_bytes(),
                    })
                    .collect();
                // QuicTransport::send_batch never fails (drops are counted in its
                // stats); an error would end in timeouts, which are counted.
                let _ = self.conn.transport.send_batch(&batch).await;
                idle.clear();
                self.shared.borrow_mut().sent += count as u64;
            }
            if !sending && idle.len() == slots.len() {
                return;
            }

            let wake = if sending {
                next_scan.min(self.deadline)
            } else {
                next_scan
            };
            sleep.as_mut().reset(wake.into());
            tokio::select! {
                received = self.conn.transport.recv_batch(&mut recv) => {
                    // The transport only fails once closed: end, and let the slots
                    // in flight count as unanswered.
                    let Ok(n) = received else {
                        let mut s = self.shared.borrow_mut();
                        s.timeouts += (slots.len() - idle.len()) as u64;
                        return;
                    };
                    let at = Instant::now();
                    let mut s = self.shared.borrow_mut();
                    for r in &recv[..n] {
                        answer(r, self.target, at, &mut slots, &mut idle, &mut s);
                    }
                }
                _ = &mut sleep => {}
            }
            let now = Instant::now();
            if now >= next_scan {
                next_scan = now + scan_every;
                let mut s = self.shared.borrow_mut();
                for (i, slot) in slots.iter_mut().enumerate() {
                    if slot
                        .sent_at
                        .is_some_and(|t| now.duration_since(t) >= self.timeout)
                    {
                        slot.sent_at = None;
                        slot.generation = slot.generation.wrapping_add(1);
                        idle.push(i as u16);
                        s.timeouts += 1;
                    }
                }
            }
        }
    }
}

/// Credits one received message to the slot its transaction id names.
fn answer(
    r: &RecvSlot,
    target: SocketAddr,
    at: Instant,
    slots: &mut [Slot],
    idle: &mut Vec<u16>,
    s: &mut LoadReport,
) {
    let Some((t, kind)) = envelope(r.payload()).filter(|_| r.from == target) else {
        s.malformed += 1;
        return;
    };
    let index = u16::from_be_bytes([t[0], t[1]]);
    let generation = u16::from_be_bytes([t[2], t[3]]);
    let Some(slot) = slots.get_mut(usize::from(index)) else {
        // A late answer to a ping of the connect phase lands here too.
        s.late += 1;
        return;
    };
    let sent_at = match slot.sent_at {
        Some(sent_at) if slot.generation == generation => sent_at,
        _ => {
            s.late += 1;
            return;
        }
    };
    slot.sent_at = None;
    slot.generation = slot.generation.wrapping_add(1);
    idle.push(index);
    match kind {
        MessageKind::Response => s.responses += 1,
        MessageKind::Error => s.errors += 1,
        MessageKind::Query => s.echoed += 1,
    }
    s.latency_us.record(micros(at.duration_since(sent_at)));
}
