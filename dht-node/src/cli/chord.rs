//! `--overlay chord`: a Chord node over UDP as a process (join or start a ring, serve,
//! stop on SIGINT or SIGTERM), the `put` and `get` one-shots (clients that ask a ring
//! member through `dht_chord::Config::gateways` and never join), and `--http` with
//! `/metrics`, `/healthz` and `/readyz`. Mainline's flags and commands are refused
//! here, each with a line that says why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dht_core::{Id, Transport};
use dht_net_udp::UdpTransport;
use dht_node::exposition::{Exporter, Format};
use dht_node::{bencode_bytes, resolve, ChordHandle, ChordMetrics, Error};
use dht_store_mem::MemStore;
use serde_json::json;

use super::oneshot::{not_found, parse_id};
use super::output::{self, write_addr_file, StatsJson, StoredJson};
use super::serve::wait_for_signal;
use super::{Cli, Command, Fail, StoreKind, TransportKind};

/// Runs what the command line asks of a Chord node or client.
pub(crate) async fn run(cli: &Cli) -> Result<(), Fail> {
    refuse_mainline_flags(cli)?;
    match &cli.command {
        None => run_node(cli).await,
        Some(Command::Put {
            value,
            mutable,
            key,
            ..
        }) => {
            if *mutable || key.is_some() {
                return Err(mainline_only("mutable items (--mutable, --key)"));
            }
            let bencoded = bencode_bytes(value.as_bytes());
            if bencoded.len() > dht_chord::wire::MAX_VALUE {
                return Err(Fail::usage(format!(
                    "value too big: {} bytes bencoded, at most {}",
                    bencoded.len(),
                    dht_chord::wire::MAX_VALUE
                )));
            }
            let client = client(cli).await?;
            let result = put(cli, &client, bencoded).await;
            let _ = client.shutdown().await;
            result
        }
        Some(Command::Get {
            target, mutable, ..
        }) => {
            if *mutable {
                return Err(mainline_only("mutable items (--mutable)"));
            }
            let target = parse_id("target", target)?;
            let client = client(cli).await?;
            let result = get_value(cli, &client, target).await;
            let _ = client.shutdown().await;
            result
        }
        // `run` answers both before any overlay is chosen.
        Some(Command::Config { .. } | Command::PeerId { .. }) => Ok(()),
        Some(Command::Keygen { .. }) => Err(mainline_only("keygen")),
        Some(Command::Sign { .. }) => Err(mainline_only("sign")),
        Some(Command::Announce { .. }) => Err(mainline_only("announce")),
        Some(Command::Scrape { .. }) => Err(mainline_only("scrape")),
        Some(Command::Peers { .. }) => Err(mainline_only("peers")),
        Some(Command::Ping { .. }) => Err(mainline_only("ping")),
        Some(Command::FindNode { .. }) => Err(mainline_only("find-node")),
    }
}

fn mainline_only(what: &str) -> Fail {
    Fail::usage(format!(
        "{what} is Mainline's: --overlay chord has a node, put and get"
    ))
}

/// Flags that configure what Chord does not have. (`config.rs` leaves them out of a
/// config file when the command line says `--overlay chord`: keep its list in step.)
fn refuse_mainline_flags(cli: &Cli) -> Result<(), Fail> {
    let given = [
        (cli.transport != TransportKind::Udp, "--transport quic"),
        (cli.store != StoreKind::Mem, "--store sled"),
        (cli.data_dir.is_some(), "--data-dir"),
        (cli.read_only, "--read-only"),
        (cli.handover, "--handover"),
        (cli.no_local_exemption, "--no-local-exemption"),
        (
            cli.http_token_file.is_some(),
            "--http-token-file (the /v1/ API)",
        ),
        (cli.routing_file.is_some(), "--routing-file"),
        (cli.maintenance_ms.is_some(), "--maintenance-ms"),
        (
            cli.questionable_after_ms.is_some(),
            "--questionable-after-ms",
        ),
        (cli.item_ttl_ms.is_some(), "--item-ttl-ms"),
        (cli.peer_ttl_ms.is_some(), "--peer-ttl-ms"),
    ];
    match given.iter().find(|(set, _)| *set) {
        Some((_, flag)) => Err(Fail::usage(format!(
            "{flag} is Mainline's: a Chord node runs over UDP with its keys in memory"
        ))),
        None => Ok(()),
    }
}

/// The members named by --bootstrap, resolved.
async fn members(cli: &Cli) -> Result<Vec<SocketAddr>, Fail> {
    let members = resolve(&cli.bootstrap).await;
    if members.is_empty() {
        return Err(Fail::other(format!(
            "cannot resolve any ring member of {:?}",
            cli.bootstrap
        )));
    }
    Ok(members)
}

fn seed() -> Result<u64, Fail> {
    let s =
        dht_node::identity::os_seed().map_err(|e| Fail::other(format!("no OS randomness: {e}")))?;
    let mut first = [0u8; 8];
    first.copy_from_slice(&s[..8]);
    Ok(u64::from_le_bytes(first))
}

fn bind(addr: SocketAddr) -> Result<UdpTransport, Fail> {
    UdpTransport::bind(&[addr]).map_err(|e| Fail::other(format!("cannot bind {addr}: {e}")))
}

/// Starts `config`'s node on `transport`, through --egress-delay-ms if given.
fn spawn(
    cli: &Cli,
    transport: UdpTransport,
    config: dht_chord::Config,
) -> Result<ChordHandle, Fail> {
    let spawned = match cli.egress_delay_ms {
        Some(ms) => {
            let delayed = dht_node::testing::EgressDelay::new(transport, Duration::from_millis(ms));
            ChordHandle::spawn_with(delayed, MemStore::new(), config)
        }
        None => ChordHandle::spawn_with(transport, MemStore::new(), config),
    };
    spawned.map_err(|e| Fail::other(format!("cannot start the node: {e}")))
}

/// A client: bound to --listen or a free port, asking the --bootstrap members.
async fn client(cli: &Cli) -> Result<ChordHandle, Fail> {
    if cli.no_bootstrap || cli.bootstrap.is_empty() {
        return Err(Fail::usage(
            "a Chord put or get asks a ring member: give --bootstrap IP:PORT",
        ));
    }
    let members = members(cli).await?;
    let listen = match cli.listen.first() {
        Some(a) => *a,
        None if members[0].is_ipv6() => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        None => ([0, 0, 0, 0], 0).into(),
    };
    let transport = bind(listen)?;
    let local = transport.local_addrs().first().copied().unwrap_or(listen);
    let mut config = dht_chord::Config::new(local, seed()?);
    config.gateways = members;
    let client = spawn(cli, transport, config)?;
    if let Some(path) = &cli.addr_file {
        write_addr_file(path, client.local_addrs())?;
    }
    Ok(client)
}

async fn put(cli: &Cli, client: &ChordHandle, bencoded: Vec<u8>) -> Result<(), Fail> {
    let a = client.put(bencoded).await.map_err(|e| match e {
        Error::NoResponse => Fail::other("no node stored it (none answered)"),
        e => Fail::other(format!("no node stored it: {e}")),
    })?;
    output::stored(
        cli.json,
        &StoredJson {
            target: a.value.target.to_hex(),
            stored_at: vec![a.value.stored_at.addr.to_string()],
            refused: 0,
            stats: StatsJson::of(&a.stats),
            seq: None,
            public_key: None,
            port: None,
            seed: None,
        },
    );
    Ok(())
}

async fn get_value(cli: &Cli, client: &ChordHandle, target: Id) -> Result<(), Fail> {
    let a = client.get(target).await?;
    match &a.value {
        Some(v) => {
            output::immutable(cli.json, &target, v, &a.stats);
            Ok(())
        }
        None => Err(not_found(&a.stats, format!("no value under {target}"))),
    }
}

/// The one address a node binds and names itself by.
fn node_listen(cli: &Cli) -> Result<SocketAddr, Fail> {
    let need = "a Chord node names itself by address: give --listen IP:PORT, the one \
                address others reach it at";
    match cli.listen.as_slice() {
        [a] if !a.ip().is_unspecified() => Ok(*a),
        [a] => Err(Fail::usage(format!("{need} (not {a})"))),
        [] => Err(Fail::usage(need)),
        _ => Err(Fail::usage(format!("{need} (one --listen only)"))),
    }
}

async fn run_node(cli: &Cli) -> Result<(), Fail> {
    let listen = node_listen(cli)?;
    if !cli.no_bootstrap && cli.bootstrap.is_empty() {
        return Err(Fail::usage(
            "Chord has no public routers: give --bootstrap IP:PORT of a ring member to \
             join its ring, or --no-bootstrap to start a new ring",
        ));
    }
    let members = match cli.no_bootstrap {
        true => Vec::new(),
        false => members(cli).await?,
    };
    let transport = bind(listen)?;
    let addr = transport.local_addrs().first().copied().unwrap_or(listen);
    let mut config = dht_chord::Config::new(addr, seed()?);
    config.successors = usize::from(cli.k);
    let node = spawn(cli, transport, config)?;
    let addrs: Vec<String> = node.local_addrs().iter().map(|a| a.to_string()).collect();
    // A stable line for scripts and tests, as Mainline's node prints it.
    eprintln!(
        "dht-node listening id={} addrs={}",
        node.id(),
        addrs.join(",")
    );
    if let Some(path) = &cli.addr_file {
        write_addr_file(path, node.local_addrs())?;
    }
    tracing::info!(id = %node.id(), addr = %addr, "chord node running");
    let http = match cli.http {
        Some(http) => {
            let limits = super::conn::ConnLimits::of(cli);
            let (bound, task) = serve_http(node.clone(), http, limits).await?;
            eprintln!("dht-node http={bound}");
            Some(task)
        }
        None => None,
    };
    let joining = tokio::spawn(join_until_joined(node.clone(), members));
    let status = tokio::spawn(log_status(
        node.clone(),
        Duration::from_millis(cli.status_interval_ms),
    ));
    wait_for_signal().await;
    tracing::info!("shutting down");
    joining.abort();
    status.abort();
    if let Some(http) = http {
        http.abort();
    }
    node.shutdown().await?;
    Ok(())
}

/// Joins through `members` (or creates a ring without any), retrying with backoff
/// up to 30 s apart until a member answers: the ring may come up after this node.
async fn join_until_joined(node: ChordHandle, members: Vec<SocketAddr>) {
    let mut delay = Duration::from_millis(500);
    loop {
        match node.join(&members).await {
            Ok(a) => {
                // "bootstrapped", as Mainline's node says it: testnets count rejoins by it.
                tracing::info!(successors = a.value.len(), "bootstrapped onto the ring");
                return;
            }
            Err(Error::Shutdown) => return,
            Err(e) => tracing::warn!(error = %e, "no ring member answered; retrying in {delay:?}"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

async fn log_status(node: ChordHandle, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Ok(m) = node.metrics().await else {
            return;
        };
        tracing::info!(
            joined = m.joined,
            successors = m.successors,
            keys = m.keys,
            datagrams_in = m.stats.datagrams_in,
            datagrams_out = m.stats.datagrams_out,
            "status"
        );
    }
}

/// What the HTTP handlers share.
#[derive(Debug)]
struct ChordHttp {
    node: ChordHandle,
    exporter: Exporter,
}

/// `--http`: `/metrics`, `/healthz` and `/readyz` (200 once settled on a ring).
async fn serve_http(
    node: ChordHandle,
    addr: SocketAddr,
    limits: super::conn::ConnLimits,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), Fail> {
    let exporter = Exporter::install().map_err(Fail::other)?;
    ChordMetrics::describe();
    let state = Arc::new(ChordHttp { node, exporter });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Fail::other(format!("cannot bind --http {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Fail::other(format!("--http {addr}: {e}")))?;
    let task = tokio::spawn(super::conn::accept(listener, app, limits));
    Ok((bound, task))
}

fn unavailable(e: &Error) -> Response {
    let body = json!({ "error": e.to_string() });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn metrics(State(http): State<Arc<ChordHttp>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    match http.node.metrics().await {
        Ok(m) => {
            m.record();
            let text = http.exporter.render_recorded(format);
            ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
        }
        Err(e) => unavailable(&e),
    }
}

async fn readyz(State(http): State<Arc<ChordHttp>>) -> Response {
    let m = match http.node.metrics().await {
        Ok(m) => m,
        Err(e) => return unavailable(&e),
    };
    let body = |ready: bool, error: Option<String>| {
        json!({
            "ready": ready,
            "joined": m.joined,
            "settled": m.settled,
            "successors": m.successors,
            "error": error,
        })
    };
    match m.not_ready() {
        None => (StatusCode::OK, Json(body(true, None))).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(body(false, Some(why))),
        )
            .into_response(),
    }
}
