//! `--http ADDR`: the operator's and applications' window on a node, served by axum
//! on the node's tokio runtime.
//!
//! - `GET /metrics`: Prometheus text format 0.0.4, or OpenMetrics 1.0.0 text when
//!   the scraper's `Accept` asks for `application/openmetrics-text`
//!   ([`dht_node::exposition`]); the node's counters, tables and store are read on
//!   each scrape ([`dht_node::Dht::metrics`]), lookups are recorded as they end, and
//!   the process figures come from /proc.
//! - `GET /healthz` (the process serves) and `GET /readyz` (200 only with at least k
//!   good nodes and an answer from some node within [`dht_node::READY_WITHIN`]; else
//!   503 and a JSON body naming the failing condition).
//! - `/v1/...`: the JSON API (`api.rs`).
//!
//! Connections are served here with hyper (axum::serve cannot bound them): at most
//! `--http-max-conns` at once (one beyond is closed at once, before any byte is
//! read), a request's head must arrive within `--http-header-timeout-ms` (which also
//! ends a connection idle between requests, or that never sends one) and fit in
//! [`MAX_HEAD`](super::conn::MAX_HEAD) bytes (431 beyond), and a connection over which no byte moved for
//! `--http-idle-timeout-ms` is closed (a client that stopped reading a watch, say).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dht_node::exposition::{Exporter, Format};
use dht_node::Dht;
use serde_json::json;

use super::conn::{self, ConnLimits};
use super::permits::{Permits, PoolSizes};
use super::republished::Republished;
use super::state::{error, Http, Watches, MAX_BODY};
use super::{api, watch, Fail};

/// What `--http` was given.
#[derive(Debug, Clone)]
pub(crate) struct HttpOptions {
    pub(crate) addr: SocketAddr,
    /// The bearer token writes need.
    pub(crate) token: Option<String>,
    pub(crate) watch_poll: Duration,
    /// The permit pools' sizes.
    pub(crate) pools: PoolSizes,
    pub(crate) conns: ConnLimits,
    /// Per operation ([`REQUEST_DEADLINE`] by default).
    pub(crate) deadline: Duration,
    /// Most targets HTTP writes have the node republish.
    pub(crate) max_republished: usize,
}

/// Installs the metrics recorder (once per process), binds the address and serves
/// until the node stops. Returns the bound address.
pub(crate) async fn serve(
    dht: Dht,
    options: HttpOptions,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), Fail> {
    let HttpOptions {
        addr,
        token,
        watch_poll,
        pools,
        conns,
        deadline,
        max_republished,
    } = options;
    let exporter = Exporter::install().map_err(Fail::other)?;
    if !addr.ip().is_loopback() && token.is_none() {
        tracing::warn!(%addr, "--http listens beyond loopback without --http-token-file: anyone who reaches it can write through this node");
    }
    let state = Arc::new(Http {
        dht,
        exporter,
        permits: Permits::new(pools),
        deadline,
        token,
        watches: Watches::new(watch_poll),
        republished: Republished::new(max_republished),
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(api::routes())
        .route("/v1/mutable/{key}/watch", get(watch::watch))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Fail::other(format!("cannot bind --http {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Fail::other(format!("--http {addr}: {e}")))?;
    let task = tokio::spawn(conn::accept(listener, app, conns));
    Ok((bound, task))
}

async fn metrics(State(http): State<Arc<Http>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let (reads, writes, watches) = http.permits.in_flight();
    for (pool, n) in [("read", reads), ("write", writes), ("watch", watches)] {
        metrics::gauge!("dht_http_operations_in_flight", "pool" => pool).set(n as f64);
    }
    match http.dht.metrics().await {
        Ok(m) => (
            [(header::CONTENT_TYPE, format.content_type())],
            http.exporter.render(&m, format),
        )
            .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn readyz(State(http): State<Arc<Http>>) -> Response {
    let m = match http.dht.metrics().await {
        Ok(m) => m,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let body = json!({
        "good_nodes": m.good_nodes(),
        "k": m.v4.k.max(m.v6.k),
        "last_response_ago_s": m.last_response_ago().map(|d| d.as_secs()),
    });
    match m.not_ready() {
        None => (StatusCode::OK, Json(with(body, "ready", json!(true)))).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(with(with(body, "ready", json!(false)), "error", json!(why))),
        )
            .into_response(),
    }
}

fn with(mut v: serde_json::Value, name: &str, value: serde_json::Value) -> serde_json::Value {
    v[name] = value;
    v
}
