//! The JSON API under `/v1/` (`--http`): node state, BEP 44 items, peers, announces
//! and the watch of a mutable item as Server-Sent Events.
//!
//! Every DHT operation takes a permit of its pool (`permits.rs`: reads, at most
//! `--http-max-ops` and `--http-max-reads-per-client` from one client; writes,
//! `--http-max-writes`; 503 at once when none is free), keeps it until the DHT
//! answers, and its request ends within `--http-deadline-ms`
//! ([`REQUEST_DEADLINE`](super::state::REQUEST_DEADLINE) by default; 504 when it
//! passes: the node is up, the DHT was too slow); writes need the bearer token
//! when `--http-token-file` is given. What writes have the node republish is bounded
//! (`republished.rs`; 507 beyond) and `DELETE /v1/republishing/{target}` stops one.
//! Errors are `{"error": message}` with the status
//! that says what went wrong. Mutable items travel as `value_base64` (the bencoded
//! value, exactly the bytes the signature covers), `seq` and `signature` (hex), so the
//! server never sees a secret key: `dht-node sign` prints such a body.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine;
use dht_core::{from_hex, to_hex, Id, MutableItem};
use dht_node::{bencode_bytes, bencoded_string, Answer, Error, Stored};
use serde_json::json;

use super::output::{mutable_json, MutableBody, PeersJson, StoredJson};
use super::permits::{Busy, Client};
use super::republished::Full;
use super::state::{bad, error, parse_key, query_param, salt_of, Http, Refused};

type Shared = State<Arc<Http>>;
/// The client's address (`http.rs` puts it in each request).
type Peer = ConnectInfo<SocketAddr>;

pub(crate) fn routes() -> Router<Arc<Http>> {
    Router::new()
        .route("/v1/node", get(node))
        .route("/v1/immutable", post(put_immutable))
        .route("/v1/immutable/{target}", get(get_immutable))
        .route("/v1/mutable/{key}", get(get_mutable).put(put_mutable))
        .route("/v1/peers/{info_hash}", get(peers))
        .route("/v1/announce/{info_hash}", post(announce))
        .route("/v1/republishing/{target}", delete(stop_republishing))
}

/// The status a failed DHT call maps to.
fn dht_error(e: &Error) -> Response {
    let status = match e {
        Error::NoResponse | Error::Shutdown | Error::Io(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::ValueTooBig => StatusCode::PAYLOAD_TOO_LARGE,
        Error::CasMismatch => StatusCode::CONFLICT,
        Error::InvalidSignature | Error::SeqTooLow => StatusCode::UNPROCESSABLE_ENTITY,
        Error::SaltTooBig | Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::Refused { .. } => StatusCode::BAD_GATEWAY,
    };
    error(status, &e.to_string())
}

/// The pool an operation's permit comes from.
enum Pool {
    /// A lookup for the client at this address.
    Read(SocketAddr),
    Write,
}

/// Runs one DHT operation under a permit of its pool and the request deadline.
///
/// The operation runs in a task of its own that holds the permit until the DHT
/// answers: when the client goes away (hyper drops this future) or the deadline
/// passes, the lookup the node started runs on, and its permit with it.
async fn op<T: Send + 'static>(
    http: &Http,
    pool: Pool,
    f: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Response> {
    let held = match pool {
        Pool::Read(from) => http.permits.read(Client::of(from.ip())),
        Pool::Write => http.permits.write(),
    };
    let held = match held {
        Ok(h) => h,
        Err(Busy::Pool) => {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many DHT operations in flight from HTTP; retry later",
            ))
        }
        Err(Busy::ClientShare) => {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many DHT operations in flight from this client; retry later",
            ))
        }
    };
    let task = tokio::spawn(async move {
        let answer = f.await;
        drop(held);
        answer
    });
    match tokio::time::timeout(http.deadline, task).await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(dht_error(&e)),
        Ok(Err(_)) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the DHT operation failed",
        )),
        Err(_) => Err(error(
            StatusCode::GATEWAY_TIMEOUT,
            "the DHT operation ran past its deadline",
        )),
    }
}

/// Runs one write (a put or an announce of `target`) as [`op`] does, within the
/// bound on what HTTP writes have the node republish: a write of a new target when
/// that bound is reached is refused with 507 before it starts.
async fn write(
    http: &Http,
    target: Id,
    f: impl Future<Output = Result<Answer<Stored>, Error>> + Send + 'static,
) -> Result<Answer<Stored>, Response> {
    let slot = match http.republished.reserve(target) {
        Ok(s) => s,
        Err(Full { max }) => {
            return Err(error(
                StatusCode::INSUFFICIENT_STORAGE,
                &format!(
                    "this node already republishes {max} items and announces for HTTP \
                     clients, its limit (--http-max-republished); stop one with \
                     DELETE /v1/republishing/{{target}} first"
                ),
            ))
        }
    };
    // The slot lives in the task that awaits the write: a write that succeeds after
    // its client left, or after its deadline, is republished all the same.
    op(http, Pool::Write, async move {
        let answer = f.await;
        if answer.is_ok() {
            slot.keep();
        }
        answer
    })
    .await
}

/// Writes need `Authorization: Bearer TOKEN` when a token is set.
fn authorize(http: &Http, headers: &HeaderMap) -> Result<(), Refused> {
    let Some(token) = &http.token else {
        return Ok(());
    };
    if bearer_matches(token, headers) {
        Ok(())
    } else {
        Err(Refused(
            StatusCode::UNAUTHORIZED,
            "this write needs Authorization: Bearer <token>".into(),
        ))
    }
}

/// Whether `headers` carry `Authorization: Bearer TOKEN` with this token (also what
/// `--overlay ipfs` asks of an IPNS PUT).
pub(crate) fn bearer_matches(token: &str, headers: &HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials);
    // Compared whole, in constant time over the token's length.
    given.is_some_and(|g| {
        g.len() == token.len()
            && g.bytes()
                .zip(token.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0
    })
}

/// The credentials of an `Authorization: Bearer CREDENTIALS` value. The scheme's name
/// is case-insensitive (RFC 7235, section 2.1: `bearer` and `BEARER` are `Bearer`),
/// and one or more spaces separate it from the credentials.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim_start_matches(' '))
}

fn parse_id(what: &str, s: &str) -> Result<Id, Refused> {
    Id::from_hex(s).ok_or_else(|| bad(format!("{what}: expected 40 hex characters, got {s:?}")))
}

async fn node(State(http): Shared) -> Response {
    let (info, m) = match (http.dht.routing_table().await, http.dht.metrics().await) {
        (Ok(i), Ok(m)) => (i, m),
        (Err(e), _) | (_, Err(e)) => return dht_error(&e),
    };
    let table = |t: &dht_node::TableMetrics| json!({ "good": t.good, "questionable": t.questionable, "bad": t.bad, "replacements": t.replacements });
    Json(json!({
        "id": info.id.to_hex(),
        "addrs": info.local_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "external_ip": m.external_ip.map(|ip| ip.to_string()),
        "table": { "ipv4": table(&m.v4), "ipv6": table(&m.v6) },
        "store": m.store.map(|c| json!({ "items": c.items, "info_hashes": c.info_hashes, "peers": c.peers })),
        "republishing": m.republishing,
        "ready": m.not_ready().is_none(),
    }))
    .into_response()
}

async fn put_immutable(State(http): Shared, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorize(&http, &headers) {
        return r.into_response();
    }
    let bencoded = bencode_bytes(&body);
    if bencoded.len() > dht_core::krpc::MAX_VALUE_LEN {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "value too big: {} bytes bencoded, at most {}",
                bencoded.len(),
                dht_core::krpc::MAX_VALUE_LEN
            ),
        );
    }
    let (dht, target) = (http.dht.clone(), dht_core::immutable_target(&bencoded));
    match write(
        &http,
        target,
        async move { dht.put_immutable(bencoded).await },
    )
    .await
    {
        Ok(a) => Json(StoredJson::of(&a.value.target, &a)).into_response(),
        Err(r) => r,
    }
}

async fn get_immutable(
    State(http): Shared,
    ConnectInfo(from): Peer,
    Path(target): Path<String>,
) -> Response {
    let target = match parse_id("target", &target) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let dht = http.dht.clone();
    match op(&http, Pool::Read(from), async move {
        dht.get_immutable(target).await
    })
    .await
    {
        Ok(Answer {
            value: Some(v),
            stats,
        }) => {
            let raw = bencoded_string(&v).unwrap_or(&v).to_vec();
            // The raw body has no room for the query's figures: they go in headers.
            let micros = stats.duration.as_micros().to_string();
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::HeaderName::from_static("x-dht-duration-us"), micros),
                    (
                        header::HeaderName::from_static("x-dht-hops"),
                        stats.hops.to_string(),
                    ),
                    (
                        header::HeaderName::from_static("x-dht-requests"),
                        stats.requests.to_string(),
                    ),
                ],
                raw,
            )
                .into_response()
        }
        Ok(_) => error(StatusCode::NOT_FOUND, "no node holds this item"),
        Err(r) => r,
    }
}

async fn get_mutable(
    State(http): Shared,
    ConnectInfo(from): Peer,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let (key, salt) = match (parse_key(&key), salt_of(&q)) {
        (Ok(k), Ok(s)) => (k, s),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let dht = http.dht.clone();
    let lookup = async move { dht.get_mutable(key, &salt, None).await };
    match op(&http, Pool::Read(from), lookup).await {
        Ok(Answer {
            value: Some(item),
            stats,
        }) => Json(mutable_json(&item, Some(&stats))).into_response(),
        Ok(_) => error(StatusCode::NOT_FOUND, "no node holds this item"),
        Err(r) => r,
    }
}

async fn put_mutable(
    State(http): Shared,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&http, &headers) {
        return r.into_response();
    }
    let (key, salt) = match (parse_key(&key), salt_of(&q)) {
        (Ok(k), Ok(s)) => (k, s),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let body: MutableBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad(format!("body: {e}")).into_response(),
    };
    let Ok(value) = base64::engine::general_purpose::STANDARD.decode(&body.value_base64) else {
        return bad("value_base64: not base64".into()).into_response();
    };
    if value.len() > dht_core::krpc::MAX_VALUE_LEN {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "value too big: over 1000 bytes bencoded",
        );
    }
    let Some(signature) = from_hex(&body.signature).and_then(|b| <[u8; 64]>::try_from(b).ok())
    else {
        return bad("signature: expected 128 hex characters".into()).into_response();
    };
    let item = MutableItem {
        key,
        signature,
        seq: body.seq,
        salt,
        value,
    };
    if !item.verify() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the signature does not verify for this key, salt, seq and value",
        );
    }
    let (dht, cas, target) = (http.dht.clone(), body.cas, item.target());
    match write(
        &http,
        target,
        async move { dht.put_mutable(item, cas).await },
    )
    .await
    {
        Ok(a) => Json(StoredJson {
            seq: Some(body.seq),
            public_key: Some(to_hex(&key)),
            ..StoredJson::of(&a.value.target, &a)
        })
        .into_response(),
        Err(r) => r,
    }
}

async fn peers(
    State(http): Shared,
    ConnectInfo(from): Peer,
    Path(info_hash): Path<String>,
) -> Response {
    let info_hash = match parse_id("info_hash", &info_hash) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let dht = http.dht.clone();
    match op(&http, Pool::Read(from), async move {
        dht.get_peers(info_hash).await
    })
    .await
    {
        Ok(a) => Json(PeersJson::of(&info_hash, &a)).into_response(),
        Err(r) => r,
    }
}

async fn announce(
    State(http): Shared,
    Path(info_hash): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&http, &headers) {
        return r.into_response();
    }
    let info_hash = match parse_id("info_hash", &info_hash) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let port = query_param(&q, "port")
        .and_then(|p| String::from_utf8(p).ok())
        .and_then(|p| p.parse::<u16>().ok())
        // Port 0 is no port a peer can connect to: nodes refuse it (BEP 5), so it is
        // refused here, before any lookup runs.
        .filter(|p| *p != 0);
    let Some(port) = port else {
        return bad("?port=P (1 to 65535) is required".into()).into_response();
    };
    let dht = http.dht.clone();
    let announce = async move { dht.announce_peer(info_hash, Some(port)).await };
    match write(&http, info_hash, announce).await {
        Ok(a) => Json(StoredJson {
            port: Some(port),
            // The API announces as a peer; `dht-node announce --seed` is the CLI's.
            seed: Some(false),
            ..StoredJson::of(&info_hash, &a)
        })
        .into_response(),
        Err(r) => r,
    }
}

/// `DELETE /v1/republishing/{target}`: the node stops republishing the item or
/// announce under `target` (an item's target as a write answered it, or an
/// info_hash); 404 when it republishes nothing there. What the DHT's nodes hold
/// stays until it expires.
async fn stop_republishing(
    State(http): Shared,
    Path(target): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&http, &headers) {
        return r.into_response();
    }
    let target = match parse_id("target", &target) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let stopped = match http.dht.stop_republishing(target).await {
        Ok(s) => s,
        Err(e) => return dht_error(&e),
    };
    // Forgotten even when the node no longer held it (stopped another way).
    let held = http.republished.remove(target);
    if stopped || held {
        Json(json!({ "target": target.to_hex(), "republishing": false })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            "this node republishes nothing under this target",
        )
    }
}
