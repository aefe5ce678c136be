//! `dht-node --overlay ipfs` without a command: a node on libp2p. It listens, logs
//! and writes (--addr-file) its dial addresses, joins through the seeds (retrying
//! with backoff, and again whenever its table empties), provides --provide's CIDs
//! once joined (the engine announces them again every 22 h), republishes
//! --ipns-key's names (`ipns.rs`), serves --http (with the Delegated Routing V1 API,
//! `routing.rs`), and stops on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dht_net_libp2p::{IpfsHandle, Status};
use dht_node::exposition::{Exporter, Format};
use libp2p::Multiaddr;
use serde_json::json;

use super::flags::{IpfsCli, ModeArg};
use super::ipns::{read_ipns_key, Republisher};
use super::routing::{guard_writes, NodePool, NodeRouting};
use super::{host_config, node_keypair, open_store, seeds, spawn, write_addr_file};
use crate::cli::serve::wait_for_signal;
use crate::cli::Fail;

/// Servers in the table for `/readyz` to say ready: k, the bucket size.
const READY_SERVERS: usize = 20;

pub(crate) async fn run(cli: &IpfsCli) -> Result<(), Fail> {
    let seeds = seeds(cli);
    // Read before anything is bound: a bad key file fails the start.
    let names = cli
        .ipns_key
        .iter()
        .map(|path| read_ipns_key(path))
        .collect::<Result<Vec<_>, Fail>>()?;
    let republisher = Republisher::new(names, Duration::from_millis(cli.ipns_republish_ms));
    // The store first: it claims the data dir (and refuses a foreign one) before the
    // key is written into it.
    let store = open_store(cli)?;
    let keypair = node_keypair(cli)?;
    let mode = cli.mode.unwrap_or(ModeArg::Auto);
    let node = if cli.listen.is_empty() {
        // Kubo's ports; a host without IPv6 runs on IPv4 alone.
        let both = host_config(cli, keypair.clone(), default_listen(true), mode)?;
        match spawn(both, store).await {
            Ok(node) => node,
            Err(f) => {
                tracing::warn!("{}; listening on IPv4 only", f.message);
                let v4 = host_config(cli, keypair, default_listen(false), mode)?;
                spawn(v4, open_store(cli)?).await?
            }
        }
    } else {
        let config = host_config(cli, keypair, cli.listen.clone(), mode)?;
        spawn(config, store).await?
    };
    let addrs: Vec<String> = node.dial_addrs().iter().map(|a| a.to_string()).collect();
    // A stable line for scripts and tests, as Mainline's node prints it.
    eprintln!(
        "dht-node listening peer_id={} addrs={}",
        node.peer_id(),
        addrs.join(",")
    );
    if let Some(path) = &cli.addr_file {
        write_addr_file(path, &node)?;
    }
    let status = node.status().await.ok();
    tracing::info!(
        peer_id = %node.peer_id(),
        addrs = %addrs.join(","),
        server = status.is_some_and(|s| s.server),
        "ipfs node running"
    );
    let http = match cli.http {
        Some(addr) => {
            let token = crate::cli::serve::read_http_token(cli.http_token_file.as_deref())?;
            if !addr.ip().is_loopback() && token.is_none() {
                tracing::warn!(%addr, "--http listens beyond loopback without --http-token-file: anyone who reaches it can publish IPNS records through this node");
            }
            let (bound, task) = serve_http(node.clone(), addr, token).await?;
            eprintln!("dht-node http={bound}");
            Some(task)
        }
        None => None,
    };
    let provide: Vec<Vec<u8>> = cli.provide.iter().map(|c| c.multihash.clone()).collect();
    let every = Duration::from_millis(cli.status_interval_ms);
    let keeper = tokio::spawn(keep_joined(
        node.clone(),
        seeds,
        provide,
        republisher,
        every,
    ));
    wait_for_signal().await;
    tracing::info!("shutting down");
    keeper.abort();
    if let Some(http) = http {
        http.abort();
    }
    node.shutdown().await;
    Ok(())
}

/// `/ip4/0.0.0.0/tcp/4001`, and `/ip6/::/tcp/4001` with `ipv6`.
fn default_listen(ipv6: bool) -> Vec<Multiaddr> {
    let mut addrs = vec!["/ip4/0.0.0.0/tcp/4001"];
    if ipv6 {
        addrs.push("/ip6/::/tcp/4001");
    }
    addrs.iter().filter_map(|a| a.parse().ok()).collect()
}

/// Joins (unless there are no seeds), provides once joined, then logs a status line
/// every `every` and joins again whenever the table is empty: a node whose peers all
/// restarted finds them again through the seeds. `--ipns-key`'s names are republished
/// once joined and then at their period, checked at each status tick.
async fn keep_joined(
    node: IpfsHandle,
    seeds: Vec<Multiaddr>,
    provide: Vec<Vec<u8>>,
    mut republisher: Republisher,
    every: Duration,
) {
    if !seeds.is_empty() {
        join(&node, &seeds).await;
    }
    for key in &provide {
        match node.provide(key.clone()).await {
            Ok(sent) => tracing::info!(sent, "providing"),
            Err(e) => tracing::warn!(error = %e, "cannot provide"),
        }
    }
    republisher.tick(&node).await;
    // Ticks often enough for the republishing period too.
    let mut tick = tokio::time::interval(every.min(republisher.every()));
    let mut next_status = tick.tick().await + every;
    loop {
        // The tick's scheduled instant: on the status period's grid when both match.
        let at = tick.tick().await;
        republisher.tick(&node).await;
        if at < next_status {
            continue;
        }
        next_status = at + every;
        let Ok(s) = node.status().await else {
            return;
        };
        tracing::info!(
            servers = s.table_size,
            connections = s.connections,
            requests_in_flight = s.requests_in_flight,
            server = s.server,
            "status"
        );
        if s.table_size == 0 && !seeds.is_empty() {
            join(&node, &seeds).await;
        }
    }
}

/// Bootstraps through `seeds` until some server answers, backing off up to 30 s: the
/// network may come up after this node.
async fn join(node: &IpfsHandle, seeds: &[Multiaddr]) {
    let mut delay = Duration::from_millis(500);
    loop {
        match node.bootstrap(seeds).await {
            Ok(peers) if !peers.is_empty() => {
                // "bootstrapped", as Mainline's node says it: testnets count rejoins by it.
                tracing::info!(servers = peers.len(), "bootstrapped");
                return;
            }
            Ok(_) => tracing::warn!("no server answered; retrying in {delay:?}"),
            Err(dht_net_libp2p::HostError::Stopped) => return,
            Err(e) => tracing::warn!(error = %e, "cannot bootstrap; retrying in {delay:?}"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// What the HTTP handlers share.
#[derive(Debug)]
struct IpfsHttp {
    node: IpfsHandle,
    exporter: Exporter,
}

/// `--http`: `/metrics`, `/healthz` and `/readyz` (200 with k servers in the table),
/// and the Delegated Routing V1 API (`routing.rs`; its IPNS PUT needs `token` when
/// one is set), on the bounded connections every overlay's HTTP uses.
async fn serve_http(
    node: IpfsHandle,
    addr: SocketAddr,
    token: Option<String>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), Fail> {
    let exporter = Exporter::install().map_err(Fail::other)?;
    describe();
    let routing = Arc::new(NodeRouting { node: node.clone() });
    let token: Option<Arc<str>> = token.map(Arc::from);
    let delegated = dht_ipfs_routing_http::router(
        routing,
        NodePool::new(),
        dht_ipfs_routing_http::Config::default(),
    )
    .layer(axum::middleware::from_fn(move |request, next| {
        guard_writes(token.clone(), request, next)
    }));
    let state = Arc::new(IpfsHttp { node, exporter });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
        .merge(delegated);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Fail::other(format!("cannot bind --http {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Fail::other(format!("--http {addr}: {e}")))?;
    let limits = crate::cli::conn::ConnLimits::defaults();
    let task = tokio::spawn(crate::cli::conn::accept(listener, app, limits));
    Ok((bound, task))
}

fn describe() {
    use metrics::describe_gauge;
    describe_gauge!(
        "dht_ipfs_routing_table_servers",
        "DHT servers in the routing table (they answered us)."
    );
    describe_gauge!("dht_ipfs_connections", "Open libp2p connections.");
    describe_gauge!(
        "dht_ipfs_requests_in_flight",
        "Our /ipfs/kad/1.0.0 requests waiting for a reply."
    );
    describe_gauge!(
        "dht_ipfs_server_mode",
        "1 when the node serves the DHT (server mode), 0 in client mode."
    );
    describe_gauge!("dht_ready", "1 when /readyz answers 200.");
}

fn record(s: &Status) {
    use metrics::gauge;
    gauge!("dht_ipfs_routing_table_servers").set(s.table_size as f64);
    gauge!("dht_ipfs_connections").set(s.connections as f64);
    gauge!("dht_ipfs_requests_in_flight").set(s.requests_in_flight as f64);
    gauge!("dht_ipfs_server_mode").set(f64::from(u8::from(s.server)));
    gauge!("dht_ready").set(f64::from(u8::from(s.table_size >= READY_SERVERS)));
}

fn stopped() -> Response {
    let body = json!({ "error": "the node has stopped" });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn metrics(State(http): State<Arc<IpfsHttp>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    match http.node.status().await {
        Ok(s) => {
            record(&s);
            let text = http.exporter.render_recorded(format);
            ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
        }
        Err(_) => stopped(),
    }
}

async fn readyz(State(http): State<Arc<IpfsHttp>>) -> Response {
    let Ok(s) = http.node.status().await else {
        return stopped();
    };
    let ready = s.table_size >= READY_SERVERS;
    let body = json!({
        "ready": ready,
        "good_nodes": s.table_size,
        "k": READY_SERVERS,
        "connections": s.connections,
        "server": s.server,
        "error": (!ready).then(|| format!(
            "{} servers in the routing table, fewer than k = {READY_SERVERS}", s.table_size
        )),
    });
    let status = match ready {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(body)).into_response()
}
