//! `cargo xtask load`: a closed-loop KRPC load generator.
//!
//! Each socket (one source port) owns a window of request slots. A slot is busy from the moment
//! its query is sent until a datagram carrying its transaction id comes back or its timeout
//! expires; then the next query goes out at once. So the offered load adapts to what the target
//! sustains, and `concurrency` is the number of requests in flight.
//!
//! The transaction id is the slot's index and a generation counter (2 + 2 bytes, big-endian).
//! The generation moves on whenever a slot is reused, so a reply that arrives after its request
//! timed out is recognised as late instead of being credited to the slot's next request.
//!
//! Any datagram that carries a busy slot's transaction id answers it: `y` = `r` is a response,
//! `y` = `e` a KRPC error (counted separately), and `y` = `q` is our own query sent back by
//! `cargo xtask echo` (counted as `echoed`). Accepting echoes without a flag keeps the baseline
//! measurement one command; the `echoed` count in the report says when it happened, and a real
//! DHT node never sends our transaction id back in a query of its own.
//!
//! Sockets are connected to the target, so the kernel drops datagrams from anyone else and skips
//! the route lookup on every send. They are non-blocking and one thread polls all of its sockets
//! in turn: blocking would need a thread per socket, and std offers no readiness API.

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dht_measure::krpc::{
    parse_envelope, MessageKind, QueryKind, QueryTemplate, TRANSACTION_ID_LEN,
};
use dht_measure::proc::process_cpu_time;
use dht_measure::{LoadReport, LoadSummary};
use serde::Serialize;

use crate::rng::SplitMix64;

/// What `cargo xtask load` was asked to do.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub target: SocketAddr,
    pub query: QueryKind,
    /// Requests in flight, over all sockets.
    pub concurrency: usize,
    pub duration: Duration,
    pub sockets: usize,
    pub threads: usize,
    /// A request not answered within this is counted as unanswered and its slot reused.
    pub timeout: Duration,
    /// Print a line per second to stderr.
    pub progress: bool,
    /// Mark queries read-only (BEP 43 `ro` = 1), so the target keeps our source ports
    /// out of its routing table.
    pub read_only: bool,
}

/// A run: the figures every load generator reports ([`LoadReport`]), and the sockets.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Source ports the requests went out of (`--sockets`, capped at the concurrency).
    pub sockets: usize,
    pub load: LoadReport,
}

/// `--json`: the shared figures next to what only the UDP tool has. The field names are
/// published: add, never rename.
#[derive(Debug, Serialize)]
struct Json {
    target: String,
    query: &'static str,
    sockets: usize,
    #[serde(flatten)]
    load: LoadSummary,
}

impl Report {
    pub fn to_text(&self, config: &LoadConfig) -> String {
        format!(
            "target {} query {} sockets {} threads {} concurrency {} duration {:.2} s\n{}\n{}",
            config.target,
            config.query,
            self.sockets,
            self.load.threads,
            self.load.concurrency,
            self.load.elapsed.as_secs_f64(),
            self.load.text_lines(),
            self.load.load_cpu_line(),
        )
    }

    /// One line of JSON.
    pub fn to_json(&self, config: &LoadConfig) -> String {
        let json = Json {
            target: config.target.to_string(),
            query: config.query.method(),
            sockets: self.sockets,
            load: self.load.summary(),
        };
        // Plain fields and numbers: serializing cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }
}

const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);
const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// Runs the load described by `config` and returns the merged counters.
pub fn run(config: &LoadConfig) -> io::Result<Report> {
    if config.concurrency == 0 {
        return Err(io::Error::new(ErrorKind::InvalidInput, "concurrency is 0"));
    }
    // Bounded so that deadline arithmetic on Instant cannot overflow (which would panic).
    if config.timeout > MAX_TIMEOUT || config.duration > MAX_DURATION {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "timeout is capped at one day and duration at one year",
        ));
    }
    // More sockets than requests in flight would leave some with an empty window.
    let sockets = config.sockets.clamp(1, config.concurrency);
    let threads = config.threads.clamp(1, sockets);
    let window_limit = usize::from(u16::MAX) + 1;
    if config.concurrency.div_ceil(sockets) > window_limit {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("at most {window_limit} requests in flight per socket: add sockets"),
        ));
    }

    let mut rng = SplitMix64::from_entropy(0);
    let mut node_id = [0u8; 20];
    rng.fill_20(&mut node_id);
    let bind = if config.target.is_ipv4() {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };

    let mut per_thread: Vec<Vec<Flow>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..sockets {
        let window = config.concurrency / sockets + usize::from(i < config.concurrency % sockets);
        let socket = UdpSocket::bind(bind)?;
        socket.connect(config.target)?;
        socket.set_nonblocking(true)?;
        per_thread[i % threads].push(Flow::new(
            socket,
            config.query,
            &node_id,
            window,
            config.read_only,
        ));
    }

    let cpu_at_start = process_cpu_time();
    let start = Instant::now();
    let deadline = start + config.duration;
    let handles: Vec<_> = per_thread
        .into_iter()
        .enumerate()
        .map(|(i, flows)| {
            let timeout = config.timeout;
            let progress = config.progress;
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || {
                    let worker = Worker {
                        flows,
                        rng: SplitMix64::from_entropy(i as u64 + 1),
                        timeout,
                        report: LoadReport::default(),
                        cpu_at_deadline: None,
                    };
                    worker.run(start, deadline, i == 0, progress)
                })
        })
        .collect::<io::Result<_>>()?;

    let mut report = Report {
        sockets,
        load: LoadReport {
            elapsed: config.duration,
            threads,
            concurrency: config.concurrency,
            ..LoadReport::default()
        },
    };
    let mut cpu_at_deadline = None;
    for handle in handles {
        match handle.join() {
            Ok((part, cpu)) => {
                report.load.merge(&part);
                cpu_at_deadline = cpu_at_deadline.or(cpu);
            }
            Err(_) => return Err(io::Error::other("a load thread panicked")),
        }
    }
    if let (Some(begin), Some(end)) = (cpu_at_start, cpu_at_deadline) {
        report.load.load_cpu = Some(end.saturating_sub(begin));
    }
    Ok(report)
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    generation: u16,
    /// `Some` while a request is in flight.
    sent_at: Option<Instant>,
}

#[derive(Debug)]
struct Flow {
    socket: UdpSocket,
    query: QueryTemplate,
    slots: Vec<Slot>,
    /// Indices of idle slots; a stack, so the same few slots stay hot in cache.
    idle: Vec<u16>,
}

impl Flow {
    fn new(
        socket: UdpSocket,
        kind: QueryKind,
        node_id: &[u8; 20],
        window: usize,
        read_only: bool,
    ) -> Flow {
        Flow {
            socket,
            query: QueryTemplate::with_read_only(kind, node_id, &[0; 4], &[0; 20], read_only),
            slots: vec![
                Slot {
                    generation: 0,
                    sent_at: None
                };
                window
            ],
            // Checked against 65536 in `run`, so every index fits in a u16.
            idle: (0..window).rev().map(|i| i as u16).collect(),
        }
    }

    fn in_flight(&self) -> usize {
        self.slots.len() - self.idle.len()
    }
}

#[derive(Debug)]
struct Worker {
    flows: Vec<Flow>,
    rng: SplitMix64,
    timeout: Duration,
    report: LoadReport,
    /// Taken by the first thread when it ends the sending phase.
    cpu_at_deadline: Option<Duration>,
}

/// How many consecutive passes with nothing sent or received before the worker sleeps. Only an
/// unresponsive target gets here; against a live one a pass almost always finds a reply.
const IDLE_PASSES_BEFORE_SLEEP: u32 = 256;

impl Worker {
    /// `first` marks the one thread that reports progress and reads the process CPU time
    /// (returned with the counters).
    fn run(
        mut self,
        start: Instant,
        deadline: Instant,
        first: bool,
        progress: bool,
    ) -> (LoadReport, Option<Duration>) {
        // Big enough for any datagram a DHT node sends (BEP 32 asks receivers to take > 1024).
        let mut buf = [0u8; 4096];
        let mut key = [0u8; 20];
        let mut next_scan = start + self.timeout / 8;
        let mut next_progress = start + Duration::from_secs(1);
        let mut last_progress = (start, 0u64);
        let mut sending = true;
        let mut idle_passes = 0u32;
        loop {
            let mut work = false;
            for flow in &mut self.flows {
                work |= receive(flow, &mut buf, &mut self.report);
                if sending {
                    work |= fill(flow, &mut self.rng, &mut key, &mut self.report);
                }
            }

            let now = Instant::now();
            if sending && now >= deadline {
                sending = false;
                self.report.answered_in_window = self.report.answered();
                if first {
                    self.cpu_at_deadline = process_cpu_time();
                }
            }
            if now >= next_scan {
                next_scan = now + (self.timeout / 8).max(Duration::from_millis(1));
                self.expire(now);
            }
            if !sending && self.flows.iter().all(|f| f.in_flight() == 0) {
                break;
            }
            if first && progress && now >= next_progress {
                next_progress += Duration::from_secs(1);
                let answered = self.report.answered();
                let rate = (answered - last_progress.1) as f64
                    / now.duration_since(last_progress.0).as_secs_f64();
                eprintln!(
                    "load: {:>5.1} s  {:>9.0} answered/s (this thread)  {} sent  {} unanswered",
                    now.duration_since(start).as_secs_f64(),
                    rate,
                    self.report.sent,
                    self.report.timeouts
                );
                last_progress = (now, answered);
            }

            if work {
                idle_passes = 0;
            } else {
                idle_passes += 1;
                if idle_passes >= IDLE_PASSES_BEFORE_SLEEP {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        }
        (self.report, self.cpu_at_deadline)
    }

    fn expire(&mut self, now: Instant) {
        for flow in &mut self.flows {
            for (i, slot) in flow.slots.iter_mut().enumerate() {
                if slot
                    .sent_at
                    .is_some_and(|sent| now.duration_since(sent) >= self.timeout)
                {
                    slot.sent_at = None;
                    slot.generation = slot.generation.wrapping_add(1);
                    flow.idle.push(i as u16);
                    self.report.timeouts += 1;
                }
            }
        }
    }
}

/// Reads every datagram queued on the socket. Returns whether anything arrived.
fn receive(flow: &mut Flow, buf: &mut [u8], report: &mut LoadReport) -> bool {
    let mut any = false;
    loop {
        let len = match flow.socket.recv(buf) {
            Ok(len) => len,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return any,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // ICMP port unreachable and the like: the request is still counted when it times out.
            Err(_) => {
                report.receive_errors += 1;
                return any;
            }
        };
        any = true;
        let received_at = Instant::now();
        let Ok(envelope) = parse_envelope(&buf[..len]) else {
            report.malformed += 1;
            continue;
        };
        let Ok(t) = <[u8; TRANSACTION_ID_LEN]>::try_from(envelope.transaction_id) else {
            report.malformed += 1;
            continue;
        };
        let index = usize::from(u16::from_be_bytes([t[0], t[1]]));
        let generation = u16::from_be_bytes([t[2], t[3]]);
        let Some(slot) = flow.slots.get_mut(index) else {
            report.malformed += 1;
            continue;
        };
        let sent_at = match slot.sent_at {
            Some(sent_at) if slot.generation == generation => sent_at,
            _ => {
                report.late += 1;
                continue;
            }
        };
        slot.sent_at = None;
        slot.generation = slot.generation.wrapping_add(1);
        flow.idle.push(index as u16);
        match envelope.kind {
            MessageKind::Response => report.responses += 1,
            MessageKind::Error => report.errors += 1,
            MessageKind::Query => report.echoed += 1,
        }
        let micros = received_at.duration_since(sent_at).as_micros();
        report
            .latency_us
            .record(u64::try_from(micros).unwrap_or(u64::MAX));
    }
}

/// Sends a query from every idle slot. Returns whether anything was sent.
fn fill(
    flow: &mut Flow,
    rng: &mut SplitMix64,
    key: &mut [u8; 20],
    report: &mut LoadReport,
) -> bool {
    let mut any = false;
    while let Some(&index) = flow.idle.last() {
        let slot = &mut flow.slots[usize::from(index)];
        let mut t = [0u8; TRANSACTION_ID_LEN];
        t[..2].copy_from_slice(&index.to_be_bytes());
        t[2..].copy_from_slice(&slot.generation.to_be_bytes());
        flow.query.set_transaction_id(&t);
        if flow.query.has_key() {
            rng.fill_20(key);
            flow.query.set_key(key);
        }
        match flow.socket.send(flow.query.as_bytes()) {
            Ok(_) => {
                slot.sent_at = Some(Instant::now());
                flow.idle.pop();
                report.sent += 1;
                any = true;
            }
            // The socket buffer is full: the slot stays idle and is tried on the next pass.
            Err(e) if e.kind() == ErrorKind::WouldBlock => return any,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                report.send_errors += 1;
                return any;
            }
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn drives_an_in_process_echo_on_loopback() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let echo = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || crate::echo::serve(socket, 1, &stop))
        };
        let config = LoadConfig {
            target,
            query: QueryKind::GetPeers,
            concurrency: 64,
            duration: Duration::from_secs(1),
            sockets: 8,
            threads: 2,
            timeout: Duration::from_millis(500),
            progress: false,
            read_only: true,
        };
        let full = run(&config).unwrap();
        let report = &full.load;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let echoed = echo.join().unwrap().unwrap();

        assert!(report.echoed > 1000, "{}", full.to_text(&config));
        assert_eq!(report.responses + report.errors, 0);
        assert_eq!(report.malformed, 0);
        assert_eq!(report.sent, report.answered() + report.timeouts);
        assert!(report.latency_us.len() == report.answered());
        assert!(echoed >= report.answered());
        let json = full.to_json(&config);
        assert!(json.starts_with('{') && json.ends_with('}') && !json.contains('\n'));
        // Every field `--json` published before the report type was shared is still there.
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        for name in [
            "target",
            "query",
            "sockets",
            "threads",
            "concurrency",
            "duration_s",
            "answered_per_s",
            "sent",
            "answered",
            "responses",
            "errors",
            "echoed",
            "unanswered",
            "unanswered_fraction",
            "late",
            "malformed",
            "send_errors",
            "receive_errors",
            "latency_p50_us",
            "latency_p99_us",
            "load_cpu_s",
            "load_cpu_utilisation",
        ] {
            assert!(value.get(name).is_some(), "{name} missing from {json}");
        }
        assert_eq!(value["echoed"], report.echoed);
    }

    #[test]
    fn an_unanswered_request_times_out() {
        // A bound socket that never reads: every request must end as unanswered.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let config = LoadConfig {
            target: silent.local_addr().unwrap(),
            query: QueryKind::Ping,
            concurrency: 4,
            duration: Duration::from_millis(100),
            sockets: 2,
            threads: 1,
            timeout: Duration::from_millis(50),
            progress: false,
            read_only: true,
        };
        let report = run(&config).unwrap().load;
        assert!(report.sent >= 4);
        assert_eq!(report.answered(), 0);
        assert_eq!(report.timeouts, report.sent);
        assert_eq!(report.unanswered_fraction(), 1.0);
    }
}
