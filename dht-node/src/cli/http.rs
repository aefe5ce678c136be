//! `--http ADDR`: the operator's and applications' window on a node, served by axum
//! on the node's tokio runtime.
//!
//! - `GET /metrics`: Prometheus text format 0.0.4 (`metrics-exporter-prometheus`);
//!   the node's counters, tables and store are read on each scrape
//!   ([`dht_node::Dht::metrics`]), lookups are recorded as they end, and the process
//!   figures come from /proc.
//! - `GET /healthz` (the process serves) and `GET /readyz` (200 only with at least k
//!   good nodes and an answer from some node within [`READY_WITHIN`]; else 503 and a
//!   JSON body naming the failing condition).
//! - `/v1/...`: the JSON API (`api.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dht_node::{Dht, NodeMetrics};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tokio::sync::Semaphore;

use super::api;
use super::watch::Watches;
use super::Fail;

/// `/readyz` wants some node to have answered us within this long.
pub(crate) const READY_WITHIN: Duration = Duration::from_secs(5 * 60);
/// DHT operations that HTTP requests may run at once; beyond, 503.
pub(crate) const MAX_DHT_OPS: usize = 64;
/// How long one HTTP request may take (a lookup usually takes a few seconds).
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// Largest request body accepted (a BEP 44 value is at most 1000 bytes).
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct Http {
    pub(crate) dht: Dht,
    pub(crate) prometheus: PrometheusHandle,
    pub(crate) ops: Semaphore,
    pub(crate) token: Option<String>,
    pub(crate) watches: Watches,
}

/// Installs the metrics recorder (once per process), binds `addr` and serves until
/// the node stops. Returns the bound address.
pub(crate) async fn serve(
    dht: Dht,
    addr: SocketAddr,
    token: Option<String>,
    watch_poll: Duration,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), Fail> {
    let prometheus = recorder()?;
    if !addr.ip().is_loopback() && token.is_none() {
        tracing::warn!(%addr, "--http listens beyond loopback without --http-token-file: anyone who reaches it can write through this node");
    }
    let state = Arc::new(Http {
        dht,
        prometheus,
        ops: Semaphore::new(MAX_DHT_OPS),
        token,
        watches: Watches::new(watch_poll),
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(api::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Fail::other(format!("cannot bind --http {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Fail::other(format!("--http {addr}: {e}")))?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the HTTP server stopped");
        }
    });
    Ok((bound, task))
}

fn recorder() -> Result<PrometheusHandle, Fail> {
    let seconds = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    let counts = [
        1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 64.0, 128.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full("dht_lookup_hops".into()), &counts))
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full("dht_lookup_messages".into()), &counts)
        })
        .map_err(|e| Fail::other(format!("metrics: {e}")))?
        .install_recorder()
        .map_err(|e| Fail::other(format!("metrics: {e}")))?;
    describe();
    Ok(handle)
}

/// HELP lines: promtool wants one per metric.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    for (name, help) in COUNTERS {
        describe_counter!(*name, *help);
    }
    for (name, help) in GAUGES {
        describe_gauge!(*name, *help);
    }
    describe_counter!(
        "dht_lookups_total",
        "Queries of this node that ended, by kind and outcome."
    );
    describe_counter!(
        "dht_republished_total",
        "Items and announces put again by the node."
    );
    describe_histogram!(
        "dht_lookup_duration_seconds",
        Unit::Seconds,
        "Duration of this node's queries, by kind."
    );
    describe_histogram!(
        "dht_lookup_hops",
        "Depth of the closest result of this node's queries, by kind."
    );
    describe_histogram!(
        "dht_lookup_messages",
        "Requests sent by each of this node's queries, by kind."
    );
}

const COUNTERS: &[(&str, &str)] = &[
    ("dht_datagrams_received_total", "Datagrams received."),
    ("dht_datagrams_sent_total", "Datagrams sent."),
    ("dht_received_bytes_total", "Bytes received in datagrams."),
    ("dht_sent_bytes_total", "Bytes sent in datagrams."),
    (
        "dht_queries_answered_total",
        "Queries answered, errors included.",
    ),
    ("dht_errors_sent_total", "KRPC error replies sent."),
    (
        "dht_unexpected_replies_total",
        "Replies that matched no request in flight.",
    ),
    ("dht_store_errors_total", "Store operations that failed."),
    (
        "dht_dropped_total",
        "Datagrams or replies dropped, by reason.",
    ),
    (
        "process_cpu_seconds_total",
        "User and system CPU time of the process.",
    ),
];

const GAUGES: &[(&str, &str)] = &[
    (
        "dht_routing_nodes",
        "Nodes in the routing table, by family and state.",
    ),
    (
        "dht_routing_replacement_nodes",
        "Nodes in replacement caches, by family.",
    ),
    (
        "dht_routing_bucket_nodes",
        "Nodes in the bucket at this depth, by family.",
    ),
    (
        "dht_last_response_age_seconds",
        "Time since a node last answered one of our queries.",
    ),
    ("dht_stored_items", "BEP 44 items held."),
    (
        "dht_stored_info_hashes",
        "info_hashes with at least one announced peer.",
    ),
    ("dht_stored_peers", "Announced peers over all info_hashes."),
    (
        "dht_republishing",
        "Items and announces this node keeps republishing.",
    ),
    ("dht_ready", "1 when /readyz answers 200."),
    (
        "process_resident_memory_bytes",
        "Resident memory of the process.",
    ),
    ("process_open_fds", "Open file descriptors of the process."),
];

fn set_counters(m: &NodeMetrics) {
    use metrics::counter;
    let s = &m.stats;
    counter!("dht_datagrams_received_total").absolute(s.datagrams_in);
    counter!("dht_datagrams_sent_total").absolute(s.datagrams_out);
    counter!("dht_received_bytes_total").absolute(s.bytes_in);
    counter!("dht_sent_bytes_total").absolute(s.bytes_out);
    counter!("dht_queries_answered_total").absolute(s.queries_answered);
    counter!("dht_errors_sent_total").absolute(s.errors_sent);
    counter!("dht_unexpected_replies_total").absolute(s.unexpected_replies);
    counter!("dht_store_errors_total").absolute(s.store_errors);
    for (reason, n) in [
        ("malformed", s.malformed),
        ("rate_limit", s.rate_limited),
        ("ban", s.banned),
        ("reply_budget", s.budget_dropped),
        ("key_id_mismatch", s.key_id_mismatch),
    ] {
        counter!("dht_dropped_total", "reason" => reason).absolute(n);
    }
}

fn set_gauges(m: &NodeMetrics) {
    use metrics::gauge;
    for (family, t) in [("ipv4", &m.v4), ("ipv6", &m.v6)] {
        for (state, n) in [
            ("good", t.good),
            ("questionable", t.questionable),
            ("bad", t.bad),
        ] {
            gauge!("dht_routing_nodes", "family" => family, "state" => state).set(n as f64);
        }
        gauge!("dht_routing_replacement_nodes", "family" => family).set(t.replacements as f64);
        // Depths are bounded by the id length (160): a fixed set of label values.
        for (depth, n) in t.buckets.iter().enumerate() {
            gauge!("dht_routing_bucket_nodes", "family" => family, "depth" => depth.to_string())
                .set(*n as f64);
        }
    }
    if let Some(ago) = m.last_response_ago() {
        gauge!("dht_last_response_age_seconds").set(ago.as_secs_f64());
    }
    if let Some(c) = &m.store {
        gauge!("dht_stored_items").set(c.items as f64);
        gauge!("dht_stored_info_hashes").set(c.info_hashes as f64);
        gauge!("dht_stored_peers").set(c.peers as f64);
    }
    gauge!("dht_republishing").set(m.republishing as f64);
    gauge!("dht_ready").set(if not_ready(m).is_none() { 1.0 } else { 0.0 });
}

fn set_process() {
    use metrics::{counter, gauge};
    if let Some(cpu) = dht_measure::proc::process_cpu_time() {
        counter!("process_cpu_seconds_total").absolute(cpu.as_secs());
    }
    if let Ok(rss) = dht_measure::proc::rss_bytes(std::process::id()) {
        gauge!("process_resident_memory_bytes").set(rss as f64);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge!("process_open_fds").set(fds.count() as f64);
    }
}

async fn metrics(State(http): State<Arc<Http>>) -> Response {
    match http.dht.metrics().await {
        Ok(m) => {
            set_counters(&m);
            set_gauges(&m);
        }
        Err(e) => return api::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
    set_process();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        http.prometheus.render(),
    )
        .into_response()
}

/// The condition that keeps the node from being ready, or `None` when it is.
pub(crate) fn not_ready(m: &NodeMetrics) -> Option<String> {
    let k = m.v4.k.max(m.v6.k);
    let good = m.good_nodes();
    if good < k {
        return Some(format!(
            "{good} good nodes in the routing table, fewer than k = {k}"
        ));
    }
    match m.last_response_ago() {
        Some(ago) if ago <= READY_WITHIN => None,
        Some(ago) => Some(format!(
            "no node answered for {} s (more than {} s)",
            ago.as_secs(),
            READY_WITHIN.as_secs()
        )),
        None => Some("no node has answered yet".into()),
    }
}

async fn readyz(State(http): State<Arc<Http>>) -> Response {
    let m = match http.dht.metrics().await {
        Ok(m) => m,
        Err(e) => return api::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let body = json!({
        "good_nodes": m.good_nodes(),
        "k": m.v4.k.max(m.v6.k),
        "last_response_ago_s": m.last_response_ago().map(|d| d.as_secs()),
    });
    match not_ready(&m) {
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
