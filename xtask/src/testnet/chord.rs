//! `--overlay chord`'s workload: no long-lived client (a Chord client is the `dht-node
//! --overlay chord` one-shot, which never joins), so xtask drives it itself, open loop:
//! each operation is one `put` or `get` process asking three random ring members, and
//! its record is what `dht-workload` would write (`dht_measure::workload`), so the
//! report is the Mainline testnet's. Puts are `put_immutable` (Chord keeps a bencoded
//! value under its SHA-1, as BEP 44's immutable items), gets are `get_immutable` of an
//! earlier put, a success only when the exact value comes back. Latency is the client's
//! own figure (`stats.duration_us` of its `--json` answer): the lookup, not the process
//! start.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dht_measure::workload::{Line, MetaRecord, OpKind, OpRecord};
use serde::Deserialize;

use super::STOP;
use crate::rng::SplitMix64;
use crate::Error;

/// Client processes running at once; an operation due beyond it is skipped (and counted).
const MAX_IN_FLIGHT: usize = 64;
/// Ring members a client is given: a killed one costs a timeout, not the operation.
const GATEWAYS: usize = 3;

/// What the workload thread needs.
#[derive(Debug, Clone)]
pub(super) struct ChordWorkload {
    pub(super) node_bin: PathBuf,
    pub(super) members: Vec<SocketAddr>,
    pub(super) duration: Duration,
    pub(super) ops_per_sec: f64,
    pub(super) seed: u64,
    pub(super) egress_delay_ms: Option<u64>,
    pub(super) report: PathBuf,
}

/// What a client's `--json` answer carries that the record needs.
#[derive(Debug, Deserialize)]
struct Answer {
    target: Option<String>,
    value: Option<String>,
    stats: Stats,
}

#[derive(Debug, Deserialize)]
struct Stats {
    hops: u32,
    requests: u32,
    duration_us: Option<u64>,
    duration_ms: u64,
}

/// Puts acknowledged so far: key, value, when.
type Stored = Arc<Mutex<Vec<(String, String, Instant)>>>;

impl ChordWorkload {
    /// Runs the workload on a thread of its own; the thread writes the report and ends.
    pub(super) fn spawn(self) -> JoinHandle<Result<(), Error>> {
        std::thread::spawn(move || self.run())
    }

    fn run(self) -> Result<(), Error> {
        let mut rng = SplitMix64::seeded(self.seed ^ 0xc407_d000);
        let records: Arc<Mutex<Vec<OpRecord>>> = Arc::default();
        let stored: Stored = Arc::default();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        let mut skipped = 0u64;
        let started = Instant::now();
        let every = Duration::from_secs_f64(1.0 / self.ops_per_sec);
        let mut i: u64 = 0;
        while started.elapsed() < self.duration && !STOP.load(Ordering::SeqCst) {
            let due = started + every.mul_f64(i as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            i += 1;
            if in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT {
                skipped += 1;
                continue;
            }
            let mut gateways = Vec::with_capacity(GATEWAYS);
            while gateways.len() < GATEWAYS.min(self.members.len()) {
                let m = self.members[rng.below(self.members.len())];
                if !gateways.contains(&m) {
                    gateways.push(m);
                }
            }
            // Half gets of earlier puts, once there are some; puts otherwise.
            let get = {
                let s = stored.lock().unwrap_or_else(|p| p.into_inner());
                (!s.is_empty() && rng.below(2) == 0).then(|| s[rng.below(s.len())].clone())
            };
            let value = format!("chord-testnet-{}-{i}", self.seed);
            let t_ms = started.elapsed().as_millis() as u64;
            let (me, records, stored, in_flight) = (
                self.clone(),
                records.clone(),
                stored.clone(),
                in_flight.clone(),
            );
            in_flight.fetch_add(1, Ordering::SeqCst);
            threads.push(std::thread::spawn(move || {
                let record = match get {
                    Some((key, value, put_at)) => me.get(&gateways, &key, &value, put_at, t_ms),
                    None => me.put(&gateways, &value, t_ms, &stored),
                };
                records
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(record);
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in threads {
            let _ = t.join();
        }
        let mut ops = std::mem::take(&mut *records.lock().unwrap_or_else(|p| p.into_inner()));
        ops.sort_by_key(|o| o.t_ms);
        let meta = MetaRecord {
            seed: self.seed,
            duration_s: self.duration.as_secs_f64(),
            elapsed_ms: started.elapsed().as_millis() as u64,
            ops_per_sec: self.ops_per_sec,
            republish_s: None,
            bootstrap_ms: 0,
            skipped,
            ops: ops.len() as u64,
        };
        write_report(&self.report, ops, meta)
    }

    /// Runs one client; its exit status and its `--json` answer.
    fn client(&self, gateways: &[SocketAddr], args: &[&str]) -> (Option<i32>, Option<Answer>) {
        let mut cmd = Command::new(&self.node_bin);
        cmd.args(["--overlay", "chord", "--json", "--listen", "127.0.0.1:0"])
            .args(args);
        for g in gateways {
            cmd.arg("--bootstrap").arg(g.to_string());
        }
        if let Some(ms) = self.egress_delay_ms {
            cmd.arg("--egress-delay-ms").arg(ms.to_string());
        }
        cmd.env_remove("RUST_LOG").stdin(Stdio::null());
        match cmd.output() {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout);
                let answer = text
                    .lines()
                    .last()
                    .and_then(|l| serde_json::from_str(l).ok());
                (o.status.code(), answer)
            }
            Err(_) => (None, None),
        }
    }

    fn put(&self, gateways: &[SocketAddr], value: &str, t_ms: u64, stored: &Stored) -> OpRecord {
        let (status, answer) = self.client(gateways, &["put", value]);
        let mut r = record(OpKind::PutImmutable, t_ms, status, answer.as_ref());
        match answer.and_then(|a| a.target) {
            Some(key) if r.ok => stored.lock().unwrap_or_else(|p| p.into_inner()).push((
                key,
                value.to_string(),
                Instant::now(),
            )),
            _ => r.ok = false,
        }
        r
    }

    fn get(
        &self,
        gateways: &[SocketAddr],
        key: &str,
        value: &str,
        put_at: Instant,
        t_ms: u64,
    ) -> OpRecord {
        let (status, answer) = self.client(gateways, &["get", key]);
        let mut r = record(OpKind::GetImmutable, t_ms, status, answer.as_ref());
        r.age_ms = Some(put_at.elapsed().as_millis() as u64);
        if r.ok && answer.and_then(|a| a.value).as_deref() != Some(value) {
            r.ok = false;
            r.error = "wrong_value".into();
        }
        r
    }
}

/// A record from a client's exit status (0 done, 1 not found, else no node answered).
fn record(op: OpKind, t_ms: u64, status: Option<i32>, answer: Option<&Answer>) -> OpRecord {
    let (ok, error) = match status {
        Some(0) if answer.is_some() => (true, ""),
        Some(0) => (false, "bad_answer"),
        Some(1) => (false, "not_found"),
        Some(_) => (false, "no_response"),
        None => (false, "client_failed"),
    };
    let stats = answer.map(|a| &a.stats);
    OpRecord {
        op,
        t_ms,
        ok,
        latency_us: stats.map_or(0, |s| s.duration_us.unwrap_or(s.duration_ms * 1000)),
        hops: stats.map_or(0, |s| s.hops),
        requests: stats.map_or(0, |s| s.requests),
        error: error.into(),
        age_ms: None,
    }
}

pub(super) fn write_report(path: &Path, ops: Vec<OpRecord>, meta: MetaRecord) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Failed(format!("testnet: {}: {e}", path.display()));
    let mut out = BufWriter::new(File::create(path).map_err(fail)?);
    for line in ops.into_iter().map(Line::Op).chain([Line::Meta(meta)]) {
        let text = serde_json::to_string(&line).unwrap_or_default();
        writeln!(out, "{text}").map_err(fail)?;
    }
    out.flush().map_err(fail)
}
