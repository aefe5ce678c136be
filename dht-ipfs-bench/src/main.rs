//! `dht-ipfs-bench`: the processes `cargo xtask ipfs-bench` starts to measure our IPFS
//! node against rust-libp2p 0.57's kad (see docs/ipfs-bench.md). Each subcommand is
//! one process, so that the bench can pin it to a core and read its CPU time and
//! memory from /proc:
//!
//! ```text
//! dht-ipfs-bench table [--seed S] [--buckets B] [--per-bucket K]   the server's table peers
//! dht-ipfs-bench serve ours|rust|canned [--seed S]                 one FIND_NODE server
//! dht-ipfs-bench load --target MULTIADDR [--connections C] [--window W]
//!                [--warmup SECS] [--duration SECS] [--server-pid PID] [--seed S]
//! dht-ipfs-bench lookups ours|rust [--nodes N] [--lookups L] [--from F] [--seed S]
//! ```
//!
//! Everything listens and dials on 127.0.0.1 only.

mod load;
mod lookups;
mod serve;
mod table;
mod wire;

use std::time::Duration;

use serve::Impl;

const USAGE: &str = "\
dht-ipfs-bench: the processes of `cargo xtask ipfs-bench` (run that instead)

USAGE:
    dht-ipfs-bench table [--seed S] [--buckets B] [--per-bucket K]
    dht-ipfs-bench serve ours|rust|canned [--seed S]
    dht-ipfs-bench load --target MULTIADDR [--connections C] [--window W] [--warmup SECS]
                   [--duration SECS] [--server-pid PID] [--seed S]
    dht-ipfs-bench lookups ours|rust [--nodes N] [--lookups L] [--from F] [--seed S]";

/// The options every subcommand may take, with their defaults.
#[derive(Debug)]
struct Opts {
    which: Option<String>,
    seed: u64,
    buckets: usize,
    per_bucket: usize,
    target: Option<String>,
    connections: usize,
    window: usize,
    warmup: f64,
    duration: f64,
    server_pid: Option<u32>,
    nodes: usize,
    lookups: usize,
    from: usize,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        which: None,
        seed: 1,
        buckets: 10,
        per_bucket: 20,
        target: None,
        connections: 8,
        window: 4,
        warmup: 2.0,
        duration: 10.0,
        server_pid: None,
        nodes: 50,
        lookups: 200,
        from: 4,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if !a.starts_with("--") {
            o.which = Some(a.clone());
            continue;
        }
        let v = it.next().ok_or(format!("{a} needs a value"))?;
        let bad = |_| format!("{a}: bad value `{v}`");
        match a.as_str() {
            "--seed" => o.seed = v.parse().map_err(bad)?,
            "--buckets" => o.buckets = v.parse().map_err(bad)?,
            "--per-bucket" => o.per_bucket = v.parse().map_err(bad)?,
            "--target" => o.target = Some(v.clone()),
            "--connections" => o.connections = v.parse().map_err(bad)?,
            "--window" => o.window = v.parse().map_err(bad)?,
            "--warmup" => o.warmup = v.parse().map_err(|_| format!("{a}: bad value `{v}`"))?,
            "--duration" => o.duration = v.parse().map_err(|_| format!("{a}: bad value `{v}`"))?,
            "--server-pid" => o.server_pid = Some(v.parse().map_err(bad)?),
            "--nodes" => o.nodes = v.parse().map_err(bad)?,
            "--lookups" => o.lookups = v.parse().map_err(bad)?,
            "--from" => o.from = v.parse().map_err(bad)?,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    Ok(o)
}

fn secs(v: f64, name: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|_| format!("--{name}: `{v}` is not a duration"))
}

fn implementation(o: &Opts) -> Result<Impl, String> {
    o.which
        .as_deref()
        .and_then(Impl::parse)
        .ok_or_else(|| "name ours, rust or canned".to_string())
}

async fn run(command: &str, o: Opts) -> Result<(), String> {
    match command {
        "table" => table::run(o.seed, o.buckets, o.per_bucket).await,
        "serve" => serve::run(implementation(&o)?, o.seed).await,
        "load" => {
            let target = o.target.as_deref().ok_or("--target is required")?;
            let args = load::LoadArgs {
                target: target
                    .parse()
                    .map_err(|e| format!("--target {target}: {e}"))?,
                connections: o.connections.max(1),
                window: o.window.max(1),
                warmup: secs(o.warmup, "warmup")?,
                duration: secs(o.duration, "duration")?,
                server_pid: o.server_pid,
                seed: o.seed,
            };
            load::run(args).await
        }
        "lookups" => {
            let which = implementation(&o)?;
            lookups::run(which, o.nodes.max(2), o.lookups, o.from, o.seed).await
        }
        other => Err(format!("unknown command {other}\n{USAGE}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        println!("{USAGE}");
        return;
    };
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        println!("{USAGE}");
        return;
    }
    let opts = match parse(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("dht-ipfs-bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dht-ipfs-bench: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(command, opts)) {
        eprintln!("dht-ipfs-bench {command}: {e}");
        std::process::exit(1);
    }
}
