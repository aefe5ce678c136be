//! `--overlay ipfs`: the nodes' identities and the workload. Each node gets a key file
//! (`dht-node keygen`) and its PeerId (`dht-node peer-id`) before it starts, so that
//! seeds can be named as `/ip4/127.0.0.1/tcp/PORT/p2p/PEERID` and a restarted node
//! comes back as the same peer. The workload is the Chord testnet's shape (xtask drives
//! one-shot clients, open loop, each asking three random nodes, and writes
//! `dht-workload`'s records): `provide` and `providers` of random CIDs (the `announce`
//! and `get_peers` rows; a `providers` succeeds only when it lists the provider's
//! PeerId), and `put-record` and `get-record` of `/pk` records (the `put_mutable` and
//! `get_mutable` rows; a get succeeds only on the exact value). Latency is the
//! client's own figure (`stats.duration_us`): the request after joining, not the
//! process start.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dht_measure::workload::{MetaRecord, OpKind, OpRecord};
use serde::Deserialize;

use super::chord::write_report;
use super::STOP;
use crate::rng::SplitMix64;
use crate::Error;

/// Client processes running at once; an operation due beyond it is skipped (and counted).
const MAX_IN_FLIGHT: usize = 32;
/// Nodes a client is given: a killed one costs a failed dial, not the operation.
const GATEWAYS: usize = 3;
/// `/pk` records the workload puts and gets (one key each, made before the run).
const RECORDS: usize = 8;

/// A key file and its PeerId.
#[derive(Debug, Clone)]
pub(super) struct Identity {
    pub(super) key: PathBuf,
    pub(super) peer_id: String,
    /// The ed25519 public key, as `keygen` printed it.
    public_hex: String,
}

/// `dir/NAME.key`, made with `keygen` unless it exists, and its PeerId.
pub(super) fn identity(bin: &Path, dir: &Path, name: &str) -> Result<Identity, Error> {
    let key = dir.join(format!("{name}.key"));
    let fail = |what: &str, o: &std::process::Output| {
        Error::Failed(format!(
            "testnet: dht-node {what}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    };
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Failed(format!("testnet: cannot run {}: {e}", bin.display())))
    };
    let mut public_hex = String::new();
    if !key.exists() {
        let made = run(&["keygen", "--out"])?;
        if !made.status.success() {
            return Err(fail("keygen", &made));
        }
        public_hex = String::from_utf8_lossy(&made.stdout).trim().to_string();
    }
    let id = run(&["peer-id", "--key"])?;
    if !id.status.success() {
        return Err(fail("peer-id", &id));
    }
    Ok(Identity {
        key,
        peer_id: String::from_utf8_lossy(&id.stdout).trim().to_string(),
        public_hex,
    })
}

/// What the workload thread needs.
#[derive(Debug, Clone)]
pub(super) struct IpfsWorkload {
    pub(super) node_bin: PathBuf,
    /// Each node's dial address, `/ip4/.../tcp/PORT/p2p/PEERID`.
    pub(super) members: Vec<String>,
    pub(super) duration: Duration,
    pub(super) ops_per_sec: f64,
    pub(super) seed: u64,
    pub(super) report: PathBuf,
    /// Where the record keys and values are kept.
    pub(super) dir: PathBuf,
}

/// What a client's `--json` answer carries that the record needs.
#[derive(Debug, Deserialize)]
struct Answer {
    provider: Option<String>,
    providers: Option<Vec<Provider>>,
    value: Option<String>,
    stats: Stats,
}

#[derive(Debug, Deserialize)]
struct Provider {
    peer_id: String,
}

#[derive(Debug, Deserialize)]
struct Stats {
    duration_us: u64,
}

/// A `/pk` record the workload puts: its key as the client takes it, the file holding
/// its value, and the value in hex (what `get-record` prints).
#[derive(Debug, Clone)]
struct PkRecord {
    key: String,
    file: PathBuf,
    value_hex: String,
}

/// What earlier operations left for later ones to find.
#[derive(Debug, Default)]
struct Done {
    /// Provided CIDs with their provider and when.
    provided: Vec<(String, String, Instant)>,
    /// Indexes into the records put, with when.
    put: Vec<(usize, Instant)>,
}

impl IpfsWorkload {
    /// Runs the workload on a thread of its own; the thread writes the report and ends.
    pub(super) fn spawn(self) -> Result<JoinHandle<Result<(), Error>>, Error> {
        let records = self.records()?;
        Ok(std::thread::spawn(move || self.run(records)))
    }

    /// The `/pk` records: a key each, its protobuf public key as the value.
    fn records(&self) -> Result<Vec<PkRecord>, Error> {
        let dir = self.dir.join("records");
        fs::create_dir_all(&dir)
            .map_err(|e| Error::Failed(format!("testnet: {}: {e}", dir.display())))?;
        (0..RECORDS)
            .map(|i| {
                let id = identity(&self.node_bin, &dir, &format!("record-{i}"))?;
                let value_hex = format!("08011220{}", id.public_hex);
                let bytes = from_hex(&value_hex)
                    .filter(|b| b.len() == 36)
                    .ok_or_else(|| {
                        Error::Failed(format!("testnet: keygen printed {:?}", id.public_hex))
                    })?;
                let file = dir.join(format!("record-{i}.bin"));
                fs::write(&file, bytes)
                    .map_err(|e| Error::Failed(format!("testnet: {}: {e}", file.display())))?;
                Ok(PkRecord {
                    key: format!("/pk/{}", id.peer_id),
                    file,
                    value_hex,
                })
            })
            .collect()
    }

    fn run(self, pk: Vec<PkRecord>) -> Result<(), Error> {
        let mut rng = SplitMix64::seeded(self.seed ^ 0x1bf5_0000);
        let records: Arc<Mutex<Vec<OpRecord>>> = Arc::default();
        let done: Arc<Mutex<Done>> = Arc::default();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let pk = Arc::new(pk);
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
                let m = self.members[rng.below(self.members.len())].clone();
                if !gateways.contains(&m) {
                    gateways.push(m);
                }
            }
            // A quarter of each kind; a lookup of what an earlier write left, once there
            // is one, else that write.
            let op = {
                let d = done.lock().unwrap_or_else(|p| p.into_inner());
                match rng.below(4) {
                    0 => Op::Provide(random_cid(&mut rng)),
                    1 if !d.provided.is_empty() => {
                        Op::Providers(d.provided[rng.below(d.provided.len())].clone())
                    }
                    1 => Op::Provide(random_cid(&mut rng)),
                    2 => Op::Put(rng.below(pk.len())),
                    _ if !d.put.is_empty() => Op::Get(d.put[rng.below(d.put.len())]),
                    _ => Op::Put(rng.below(pk.len())),
                }
            };
            let t_ms = started.elapsed().as_millis() as u64;
            let (me, records, done, in_flight, pk) = (
                self.clone(),
                records.clone(),
                done.clone(),
                in_flight.clone(),
                pk.clone(),
            );
            in_flight.fetch_add(1, Ordering::SeqCst);
            threads.push(std::thread::spawn(move || {
                let record = me.op(&gateways, op, t_ms, &pk, &done);
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

    fn op(
        &self,
        gateways: &[String],
        op: Op,
        t_ms: u64,
        pk: &[PkRecord],
        done: &Mutex<Done>,
    ) -> OpRecord {
        let lock = || done.lock().unwrap_or_else(|p| p.into_inner());
        match op {
            Op::Provide(cid) => {
                let args = ["provide", &cid, "--listen", "/ip4/127.0.0.1/tcp/0"];
                let (status, answer) = self.client(gateways, &args);
                let mut r = record(OpKind::Announce, t_ms, status, answer.as_ref());
                match answer.and_then(|a| a.provider) {
                    Some(p) if r.ok => lock().provided.push((cid, p, Instant::now())),
                    _ => r.ok = false,
                }
                r
            }
            Op::Providers((cid, provider, at)) => {
                let (status, answer) = self.client(gateways, &["providers", &cid]);
                let mut r = record(OpKind::GetPeers, t_ms, status, answer.as_ref());
                r.age_ms = Some(at.elapsed().as_millis() as u64);
                let listed = answer
                    .and_then(|a| a.providers)
                    .is_some_and(|ps| ps.iter().any(|p| p.peer_id == provider));
                if r.ok && !listed {
                    (r.ok, r.error) = (false, "wrong_value".into());
                }
                r
            }
            Op::Put(i) => {
                let file = pk[i].file.to_string_lossy().into_owned();
                let (status, answer) = self.client(gateways, &["put-record", &pk[i].key, &file]);
                let r = record(OpKind::PutMutable, t_ms, status, answer.as_ref());
                if r.ok {
                    lock().put.push((i, Instant::now()));
                }
                r
            }
            Op::Get((i, at)) => {
                let (status, answer) = self.client(gateways, &["get-record", &pk[i].key]);
                let mut r = record(OpKind::GetMutable, t_ms, status, answer.as_ref());
                r.age_ms = Some(at.elapsed().as_millis() as u64);
                if r.ok && answer.and_then(|a| a.value).as_deref() != Some(&pk[i].value_hex) {
                    (r.ok, r.error) = (false, "wrong_value".into());
                }
                r
            }
        }
    }

    /// Runs one client; its exit status and its `--json` answer.
    fn client(&self, gateways: &[String], args: &[&str]) -> (Option<i32>, Option<Answer>) {
        let mut cmd = Command::new(&self.node_bin);
        cmd.args(["--overlay", "ipfs", "--json"]).args(args);
        for g in gateways {
            cmd.arg("--bootstrap").arg(g);
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
}

/// One operation, with what it looks for.
#[derive(Debug)]
enum Op {
    Provide(String),
    Providers((String, String, Instant)),
    Put(usize),
    Get((usize, Instant)),
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
    OpRecord {
        op,
        t_ms,
        ok,
        latency_us: answer.map_or(0, |a| a.stats.duration_us),
        hops: 0,
        requests: 0,
        error: error.into(),
        age_ms: None,
    }
}

/// A CIDv1 (raw codec, SHA-256 multihash) of 32 random bytes taken for a digest, in
/// base32: what `provide` and `providers` take.
fn random_cid(rng: &mut SplitMix64) -> String {
    let mut bytes = vec![0x01, 0x55, 0x12, 0x20];
    for _ in 0..4 {
        bytes.extend(rng.next_u64().to_le_bytes());
    }
    format!("b{}", base32_lower(&bytes))
}

/// RFC 4648 base32, lowercase, unpadded (multibase `b`).
fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn base32_as_rfc_4648() {
        // RFC 4648's test vectors, lowercase and unpadded.
        for (input, out) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(super::base32_lower(input.as_bytes()), out);
        }
    }
}
