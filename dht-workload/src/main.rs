//! `dht-workload`: a mixed DHT workload through one [`Dht`] handle, the client side of
//! `cargo xtask testnet`.
//!
//! It joins a network through `--bootstrap` nodes and, at `--ops-per-sec` for `--duration`,
//! starts operations drawn from a fixed mix: immutable and mutable puts, gets of items it put
//! earlier, announces and `get_peers` of what it announced. Operations run concurrently (an
//! open loop), so a slow lookup does not slow the rate, and each is timed from the call to its
//! answer: the figure is the operation's latency, not a process start's.
//!
//! A get counts as a success only when the exact value comes back (for a mutable item: the
//! seq acknowledged before the get started, or a newer one, with the value of that seq); a
//! `get_peers` only when the announced port is among the peers. The handle is read-only
//! (BEP 43: a pure client, kept out of the nodes' tables) and republishes what it put every
//! `--republish` seconds, as any application using the handle would.
//!
//! The report (`--report`) is JSON Lines: one `{"kind":"op",...}` object per operation, then
//! one `{"kind":"meta",...}` object, written with `dht_measure::workload`'s types, which
//! `cargo xtask testnet` reads back with the same types.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use dht_measure::workload::{Line, MetaRecord, OpKind, OpRecord};
use dht_node::dht_core::MutableItem;
use dht_node::dht_core::{Id, QueryStats};
use dht_node::{bencode_bytes, Dht, RepublishIntervals, ANNOUNCE_REPUBLISH, ITEM_REPUBLISH};

/// Mutable items are spread over this many keys, so that seqs climb on each of them.
const KEYS: usize = 16;
/// The salt of every mutable item (BEP 44 lets one key hold many; one is enough here).
const SALT: &[u8] = b"testnet";
/// An operation still running after this is recorded as a failure (`timeout`).
const OP_TIMEOUT: Duration = Duration::from_secs(60);
/// Operations in flight above which new ones are skipped (and counted) rather than queued:
/// a network that stopped answering must not grow the workload without bound.
const MAX_IN_FLIGHT: usize = 1024;

#[derive(Debug, Parser)]
#[command(
    name = "dht-workload",
    about = "A mixed DHT workload through one Dht handle (the client side of `cargo xtask testnet`)"
)]
struct Cli {
    /// Nodes to join through, as IP:PORT (repeatable, or comma-separated).
    #[arg(long, required = true, value_delimiter = ',', value_name = "ADDR")]
    bootstrap: Vec<SocketAddr>,
    /// Address the handle binds.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    listen: SocketAddr,
    /// Seconds of operations (fractions allowed).
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Operations started per second.
    #[arg(long, default_value_t = 20.0)]
    ops_per_sec: f64,
    /// Seed of the operation mix and of the keys and values.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How often what was put or announced is republished, in seconds.
    #[arg(long, default_value_t = ITEM_REPUBLISH.as_secs())]
    republish: u64,
    /// Keep reading and republishing only the newest N immutable items and N announces:
    /// an older one is no longer republished (`stop_republishing`) nor read, and the
    /// nodes let it expire. A soak's stored data then reaches a steady state, as a real
    /// application's does. Default: every one written.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    working_set: Option<u64>,
    /// Where to write the report (JSON Lines).
    #[arg(long, value_name = "PATH")]
    report: PathBuf,
    /// How long to wait for each reply, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    request_timeout_ms: u64,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Transport of the testnet: `udp`, or `quic` (needs the `quic` feature).
    #[arg(long, default_value = "udp", value_parser = ["udp", "quic"])]
    transport: String,
    /// Hold every datagram the handle sends for this many milliseconds, as the
    /// testnet's nodes do with --delay (a netem stand-in; UDP only).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    egress_delay_ms: Option<u64>,
}

/// The mix, in parts per 100: reads of earlier writes dominate, as they do in real use.
const MIX: [(OpKind, u64); 6] = [
    (OpKind::PutImmutable, 15),
    (OpKind::GetImmutable, 30),
    (OpKind::PutMutable, 10),
    (OpKind::GetMutable, 20),
    (OpKind::Announce, 10),
    (OpKind::GetPeers, 15),
];

/// One finished operation.
#[derive(Debug, Clone)]
struct Record {
    kind: OpKind,
    /// When it started, from the start of the workload.
    start: Duration,
    ok: bool,
    latency: Duration,
    hops: u32,
    requests: u32,
    /// Why it failed; empty on success. One snake_case word, so that the testnet report
    /// groups failures by it.
    error: &'static str,
    /// For gets: how long before the get the item's write was acknowledged.
    age: Option<Duration>,
}

/// splitmix64: short, seedable and good enough to pick operations and make keys.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        out
    }
}

#[derive(Debug)]
struct MutableKey {
    key: ed25519_dalek::SigningKey,
    /// The highest seq handed to a put.
    issued: i64,
    /// The highest seq a put was acknowledged for (0: none yet).
    acked: i64,
    acked_at: Option<Instant>,
    /// One put per key at a time: two racing seqs would make nodes refuse the older one
    /// (302), a failure of the workload, not of the network.
    busy: bool,
}

/// What the workload has written so far, for the reads to check against.
#[derive(Debug)]
struct State {
    rng: Rng,
    seed: u64,
    next_value: u64,
    immutable: Vec<(Id, Vec<u8>, Instant)>,
    keys: Vec<MutableKey>,
    announced: Vec<(Id, u16, Instant)>,
    /// `--working-set` (`usize::MAX`: unbounded).
    working_set: usize,
    records: Vec<Record>,
    in_flight: usize,
    skipped: u64,
}

/// The value a mutable put of `seq` under key `index` stores: derivable, so a get can check
/// whichever seq it finds.
fn mutable_value(seed: u64, index: usize, seq: i64) -> Vec<u8> {
    bencode_bytes(format!("testnet {seed} key {index} seq {seq}").as_bytes())
}

/// An operation chosen and prepared under the lock, run without it.
#[derive(Debug)]
enum Planned {
    PutImmutable(Vec<u8>),
    GetImmutable(Id, Vec<u8>, Instant),
    PutMutable(usize, MutableItem),
    GetMutable(usize, [u8; 32], i64, Instant),
    Announce(Id, u16),
    GetPeers(Id, u16, Instant),
}

impl State {
    fn plan(&mut self) -> Planned {
        let mut roll = self.rng.below(100) as u64;
        let mut kind = OpKind::PutImmutable;
        for (k, weight) in MIX {
            if roll < weight {
                kind = k;
                break;
            }
            roll -= weight;
        }
        match kind {
            OpKind::GetImmutable if !self.immutable.is_empty() => {
                let (target, value, at) = &self.immutable[self.rng.below(self.immutable.len())];
                Planned::GetImmutable(*target, value.clone(), *at)
            }
            OpKind::GetMutable | OpKind::PutMutable => {
                let acked: Vec<usize> = (0..KEYS).filter(|&i| self.keys[i].acked > 0).collect();
                if kind == OpKind::GetMutable && !acked.is_empty() {
                    let i = acked[self.rng.below(acked.len())];
                    let k = &self.keys[i];
                    let at = k.acked_at.unwrap_or_else(Instant::now);
                    return Planned::GetMutable(i, k.key.verifying_key().to_bytes(), k.acked, at);
                }
                let free: Vec<usize> = (0..KEYS).filter(|&i| !self.keys[i].busy).collect();
                if free.is_empty() {
                    return self.put_immutable();
                }
                let i = free[self.rng.below(free.len())];
                let k = &mut self.keys[i];
                k.busy = true;
                k.issued += 1;
                let value = mutable_value(self.seed, i, k.issued);
                Planned::PutMutable(i, MutableItem::sign(&k.key, SALT, k.issued, &value))
            }
            OpKind::GetPeers if !self.announced.is_empty() => {
                let (ih, port, at) = self.announced[self.rng.below(self.announced.len())];
                Planned::GetPeers(ih, port, at)
            }
            OpKind::Announce | OpKind::GetPeers => {
                let ih = Id(self.rng.bytes());
                let port = 10_000 + self.rng.below(50_000) as u16;
                Planned::Announce(ih, port)
            }
            OpKind::PutImmutable | OpKind::GetImmutable => self.put_immutable(),
        }
    }

    /// Adds a written item (or announce) to `list`, the oldest out when the working set is
    /// full: its target, for the caller to stop republishing.
    fn keep<T>(
        list: &mut Vec<(Id, T, Instant)>,
        working_set: usize,
        entry: (Id, T, Instant),
    ) -> Option<Id> {
        list.push(entry);
        (list.len() > working_set).then(|| list.remove(0).0)
    }

    fn put_immutable(&mut self) -> Planned {
        self.next_value += 1;
        let text = format!("testnet {} item {}", self.seed, self.next_value);
        Planned::PutImmutable(bencode_bytes(text.as_bytes()))
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if !(cli.duration.is_finite() && cli.duration > 0.0 && cli.duration < 1e7) {
        eprintln!("error: --duration must be a positive number of seconds");
        return ExitCode::from(2);
    }
    if !(cli.ops_per_sec.is_finite() && cli.ops_per_sec > 0.0 && cli.ops_per_sec <= 100_000.0) {
        eprintln!("error: --ops-per-sec must be above 0 and at most 100000");
        return ExitCode::from(2);
    }
    if cli.republish == 0 {
        eprintln!("error: --republish must be at least 1 second");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(3)
        }
    }
}

/// Starts the handle on the testnet's transport.
fn spawn(builder: dht_node::DhtBuilder, cli: &Cli) -> std::io::Result<Dht> {
    if cli.transport == "quic" {
        #[cfg(feature = "quic")]
        {
            let key = dht_net_quic::generate_key();
            let t = dht_net_quic::QuicTransport::bind(
                &[cli.listen],
                key,
                dht_net_quic::QuicConfig::default(),
            )?;
            // Over QUIC a node's id must be the one derived from its key.
            let builder =
                builder.id_policy(dht_node::dht_core::IdPolicy::PublicKey(t.public_key()));
            return builder.spawn_with(t, dht_store_mem::MemStore::new());
        }
        #[cfg(not(feature = "quic"))]
        return Err(std::io::Error::other("built without the `quic` feature"));
    }
    builder.spawn()
}

async fn run(cli: Cli) -> Result<(), String> {
    let republish = Duration::from_secs(cli.republish);
    let builder = Dht::builder()
        .listen(cli.listen)
        .read_only(true)
        .request_timeout(Duration::from_millis(
            cli.request_timeout_ms.clamp(1, 60_000),
        ))
        .republish(Some(RepublishIntervals {
            items: republish,
            announces: republish.min(ANNOUNCE_REPUBLISH),
        }))
        .egress_delay(cli.egress_delay_ms.map(Duration::from_millis));
    let dht = spawn(builder, &cli).map_err(|e| format!("cannot bind {}: {e}", cli.listen))?;

    let joined = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        match dht.bootstrap(&cli.bootstrap).await {
            Ok(a) => {
                if !cli.quiet {
                    eprintln!(
                        "workload: joined ({} nodes found through {} bootstrap nodes) in {} ms",
                        a.value.len(),
                        cli.bootstrap.len(),
                        joined.elapsed().as_millis()
                    );
                }
                break;
            }
            Err(e) if tries >= 10 => {
                return Err(format!(
                    "no bootstrap node answered after {tries} tries: {e}"
                ))
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    let bootstrap_ms = joined.elapsed().as_millis() as u64;

    let mut seed_rng = Rng(cli.seed ^ 0x5eed_f00d_d47a);
    let keys = (0..KEYS)
        .map(|_| MutableKey {
            key: ed25519_dalek::SigningKey::from_bytes(&seed_rng.bytes()),
            issued: 0,
            acked: 0,
            acked_at: None,
            busy: false,
        })
        .collect();
    let state = Arc::new(Mutex::new(State {
        rng: Rng(cli.seed),
        seed: cli.seed,
        next_value: 0,
        immutable: Vec::new(),
        keys,
        announced: Vec::new(),
        working_set: cli
            .working_set
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        records: Vec::new(),
        in_flight: 0,
        skipped: 0,
    }));

    let begin = Instant::now();
    let duration = Duration::from_secs_f64(cli.duration);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / cli.ops_per_sec));
    // After a stall (a busy machine), catch up gradually instead of in one burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_progress = Duration::from_secs(5);
    while begin.elapsed() < duration {
        tick.tick().await;
        let planned = {
            let mut s = lock(&state);
            if s.in_flight >= MAX_IN_FLIGHT {
                s.skipped += 1;
                continue;
            }
            s.in_flight += 1;
            s.plan()
        };
        let (task_dht, task_state) = (dht.clone(), Arc::clone(&state));
        tokio::spawn(async move {
            let start = begin.elapsed();
            let record = execute(&task_dht, &task_state, planned, start).await;
            let mut s = lock(&task_state);
            s.in_flight -= 1;
            s.records.push(record);
        });
        if !cli.quiet && begin.elapsed() >= next_progress {
            next_progress += Duration::from_secs(5);
            progress(&state, begin.elapsed());
        }
    }
    // Let operations in flight finish: they are part of the run.
    let drain = Instant::now();
    while lock(&state).in_flight > 0 && drain.elapsed() < OP_TIMEOUT + Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !cli.quiet {
        progress(&state, begin.elapsed());
    }
    {
        let s = lock(&state);
        write_report(&cli, &s, bootstrap_ms, begin.elapsed())
            .map_err(|e| format!("cannot write {}: {e}", cli.report.display()))?;
    }
    let _ = dht.shutdown().await;
    Ok(())
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A panic in a task cannot leave the state half-updated in a way that matters to the
    // report (each update is one push or one counter), so a poisoned lock is still used.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn progress(state: &Mutex<State>, elapsed: Duration) {
    let s = lock(state);
    let done = s.records.len();
    let ok = s.records.iter().filter(|r| r.ok).count();
    eprintln!(
        "workload: {:>4} s  {done} ops done, {:.2} % ok, {} in flight{}",
        elapsed.as_secs(),
        if done == 0 {
            100.0
        } else {
            100.0 * ok as f64 / done as f64
        },
        s.in_flight,
        if s.skipped > 0 {
            format!(", {} skipped", s.skipped)
        } else {
            String::new()
        }
    );
}

/// Runs one planned operation and records how it went.
async fn execute(dht: &Dht, state: &Mutex<State>, planned: Planned, start: Duration) -> Record {
    let began = Instant::now();
    let mut record = Record {
        kind: OpKind::PutImmutable,
        start,
        ok: false,
        latency: Duration::ZERO,
        hops: 0,
        requests: 0,
        error: "",
        age: None,
    };
    let mut note = |stats: &QueryStats| {
        record.hops = stats.hops;
        record.requests = stats.requests;
    };
    let outcome: Result<(), &'static str> = match planned {
        Planned::PutImmutable(value) => {
            record.kind = OpKind::PutImmutable;
            match timed(dht.put_immutable(value.clone())).await {
                Ok(Ok(a)) => {
                    note(&a.stats);
                    let dropped = {
                        let mut s = lock(state);
                        let n = s.working_set;
                        State::keep(&mut s.immutable, n, (a.value.target, value, Instant::now()))
                    };
                    stop(dht, dropped).await;
                    Ok(())
                }
                Ok(Err(e)) => Err(error_word(&e)),
                Err(()) => Err("timeout"),
            }
        }
        Planned::GetImmutable(target, value, at) => {
            record.kind = OpKind::GetImmutable;
            record.age = Some(began.saturating_duration_since(at));
            match timed(dht.get_immutable(target)).await {
                Ok(Ok(a)) => {
                    note(&a.stats);
                    match a.value {
                        Some(v) if v == value => Ok(()),
                        Some(_) => Err("wrong_value"),
                        None => Err("not_found"),
                    }
                }
                Ok(Err(e)) => Err(error_word(&e)),
                Err(()) => Err("timeout"),
            }
        }
        Planned::PutMutable(index, item) => {
            record.kind = OpKind::PutMutable;
            let seq = item.seq;
            let result = timed(dht.put_mutable(item, None)).await;
            let mut s = lock(state);
            let k = &mut s.keys[index];
            k.busy = false;
            match result {
                Ok(Ok(a)) => {
                    note(&a.stats);
                    if seq > k.acked {
                        k.acked = seq;
                        k.acked_at = Some(Instant::now());
                    }
                    Ok(())
                }
                Ok(Err(e)) => Err(error_word(&e)),
                Err(()) => Err("timeout"),
            }
        }
        Planned::GetMutable(index, key, min_seq, at) => {
            record.kind = OpKind::GetMutable;
            record.age = Some(began.saturating_duration_since(at));
            let seed = lock(state).seed;
            match timed(dht.get_mutable(key, SALT, None)).await {
                Ok(Ok(a)) => {
                    note(&a.stats);
                    match a.value {
                        Some(item)
                            if item.seq >= min_seq
                                && item.value == mutable_value(seed, index, item.seq) =>
                        {
                            Ok(())
                        }
                        Some(item) if item.seq < min_seq => Err("old_seq"),
                        Some(_) => Err("wrong_value"),
                        None => Err("not_found"),
                    }
                }
                Ok(Err(e)) => Err(error_word(&e)),
                Err(()) => Err("timeout"),
            }
        }
        Planned::Announce(info_hash, port) => {
            record.kind = OpKind::Announce;
            match timed(dht.announce_peer(info_hash, Some(port))).await {
                Ok(Ok(a)) => {
                    note(&a.stats);
                    let dropped = {
                        let mut s = lock(state);
                        let n = s.working_set;
                        State::keep(&mut s.announced, n, (info_hash, port, Instant::now()))
                    };
                    stop(dht, dropped).await;
                    Ok(())
                }
                Ok(Err(e)) => Err(error_word(&e)),
                Err(()) => Err("timeout"),
            }
        }
        Planned::GetPeers(info_hash, port, at) => {
            record.kind = OpKind::GetPeers;
            record.age = Some(began.saturating_duration_since(at));
            match timed(dht.get_peers(info_hash)).await {
                Ok(Ok(a)) => {
                    note(&a.stats);
                    if a.value.peers.iter().any(|p| p.port() == port) {
                        Ok(())
                    } else {
                        Err("not_found")
                    }
                }
                Ok(Err(e)) => Err(error_word(&e)),
                Err(()) => Err("timeout"),
            }
        }
    };
    record.latency = began.elapsed();
    match outcome {
        Ok(()) => record.ok = true,
        Err(word) => record.error = word,
    }
    record
}

/// Stops republishing what left the working set. An error here means the handle is
/// shutting down, which the operations in flight report themselves.
async fn stop(dht: &Dht, target: Option<Id>) {
    if let Some(target) = target {
        let _ = dht.stop_republishing(target).await;
    }
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> Result<T, ()> {
    tokio::time::timeout(OP_TIMEOUT, f).await.map_err(|_| ())
}

fn error_word(e: &dht_node::Error) -> &'static str {
    use dht_node::Error as E;
    match e {
        E::Shutdown => "shutdown",
        E::NoResponse => "no_response",
        E::ValueTooBig => "value_too_big",
        E::InvalidSignature => "invalid_signature",
        E::SaltTooBig => "salt_too_big",
        E::CasMismatch => "cas_mismatch",
        E::SeqTooLow => "seq_too_low",
        E::Refused { .. } => "refused",
        E::Invalid(_) => "invalid",
        E::Io(_) => "io",
    }
}

fn write_report(cli: &Cli, s: &State, bootstrap_ms: u64, elapsed: Duration) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(&cli.report)?);
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut line = |l: &Line| -> std::io::Result<()> {
        serde_json::to_writer(&mut out, l)?;
        writeln!(out)
    };
    for r in &s.records {
        line(&Line::Op(OpRecord {
            op: r.kind,
            t_ms: millis(r.start),
            ok: r.ok,
            latency_us: u64::try_from(r.latency.as_micros()).unwrap_or(u64::MAX),
            hops: r.hops,
            requests: r.requests,
            error: r.error.to_string(),
            age_ms: r.age.map(millis),
        }))?;
    }
    line(&Line::Meta(MetaRecord {
        seed: cli.seed,
        duration_s: cli.duration,
        elapsed_ms: millis(elapsed),
        ops_per_sec: cli.ops_per_sec,
        republish_s: Some(cli.republish),
        bootstrap_ms,
        skipped: s.skipped,
        ops: s.records.len() as u64,
    }))?;
    out.flush()
}
