//! The routes' handlers: parse what the path names, negotiate the answer's type, take
//! a permit, run the [`ContentRouting`] call under the deadline, answer.
//!
//! The routing call is awaited in the handler itself, never in a task of its own: when
//! the client goes away, hyper drops the handler's future and the call with it (and,
//! for NDJSON, the response stream and the provider stream in it). The permit lives
//! exactly as long (plus whatever the implementation keeps of it; see [`Permit`]).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Path, RawQuery, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, ETAG, EXPIRES, LAST_MODIFIED,
    VARY,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dht_ipfs::{
    IpnsRecord, Namespaces, PeerId, UnixMillis, Validator, IPNS_PREFIX, MAX_IPNS_RECORD_LEN,
};
use futures_util::{stream, Stream, StreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::filter::Filters;
use crate::headers::{
    accepts, cache_control, content_type_is, error, http_date, negotiate, Format,
    DEFAULT_IPNS_MAX_AGE, IPNS_RECORD, JSON, MAX_AGE_FOUND, MAX_AGE_NOT_FOUND, MAX_STALE, NDJSON,
};
use crate::parse::{parse_peer_id, peer_id_base36_cid, peer_id_base58, Cid};
use crate::permit::{Permit, Pool, Work};
use crate::routing::{ContentRouting, PeerRecord, RoutingError};
use crate::Config;

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct Api<R, P> {
    pub(crate) routing: Arc<R>,
    pub(crate) pool: P,
    pub(crate) config: Config,
}

type Shared<R, P> = State<Arc<Api<R, P>>>;

/// The client's address, when the server puts axum's `ConnectInfo<SocketAddr>` in each
/// request (`into_make_service_with_connect_info`, or dht-node's own connections).
pub(crate) struct Client(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Client, Infallible> {
        let info = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Client(info.map(|c| c.0.ip())))
    }
}

/// A record of the spec's `peer` schema, in its field order.
#[derive(Serialize)]
struct PeerJson {
    #[serde(rename = "Schema")]
    schema: &'static str,
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Addrs")]
    addrs: Vec<String>,
    /// Left out when unknown (empty), as boxo's server leaves it: the spec reads
    /// missing and empty alike.
    #[serde(rename = "Protocols", skip_serializing_if = "Vec::is_empty")]
    protocols: Vec<String>,
}

impl PeerJson {
    fn of(r: PeerRecord) -> PeerJson {
        PeerJson {
            schema: "peer",
            id: peer_id_base58(&r.id),
            addrs: r.addrs.iter().map(ToString::to_string).collect(),
            protocols: r.protocols,
        }
    }
}

/// `GET /routing/v1/providers/{cid}`.
pub(crate) async fn providers<R: ContentRouting, P: Pool>(
    State(api): Shared<R, P>,
    Path(cid): Path<String>,
    RawQuery(query): RawQuery,
    Client(client): Client,
    headers: HeaderMap,
) -> Response {
    let Some(cid) = Cid::parse(&cid) else {
        return error(StatusCode::BAD_REQUEST, &format!("malformed CID {cid:?}"));
    };
    let Some(format) = negotiate(&headers) else {
        return not_acceptable(&format!("retry with Accept: {JSON} or {NDJSON}"));
    };
    let permit = match api.pool.try_acquire(Work::Read, client) {
        Ok(p) => p,
        Err(busy) => return error(StatusCode::SERVICE_UNAVAILABLE, &busy.to_string()),
    };
    let answer = Records {
        field: "Providers",
        format,
        filters: Filters::from_query(query.as_deref()),
        limit: api.config.json_records,
        deadline: Instant::now() + api.config.deadline,
    };
    let found = api.routing.find_providers(cid, permit.clone());
    match timeout_at(answer.deadline, found).await {
        Err(_) => past_deadline(),
        Ok(Err(e)) => routing_error(&e),
        Ok(Ok(providers)) => answer.send(providers, permit).await,
    }
}

/// `GET /routing/v1/peers/{peer-id}`.
pub(crate) async fn peers<R: ContentRouting, P: Pool>(
    State(api): Shared<R, P>,
    Path(peer): Path<String>,
    RawQuery(query): RawQuery,
    Client(client): Client,
    headers: HeaderMap,
) -> Response {
    let Some(peer) = parse_peer_id(&peer) else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("malformed PeerId {peer:?}"),
        );
    };
    let Some(format) = negotiate(&headers) else {
        return not_acceptable(&format!("retry with Accept: {JSON} or {NDJSON}"));
    };
    let permit = match api.pool.try_acquire(Work::Read, client) {
        Ok(p) => p,
        Err(busy) => return error(StatusCode::SERVICE_UNAVAILABLE, &busy.to_string()),
    };
    let answer = Records {
        field: "Peers",
        format,
        filters: Filters::from_query(query.as_deref()),
        limit: api.config.json_records,
        deadline: Instant::now() + api.config.deadline,
    };
    match timeout_at(answer.deadline, api.routing.find_peer(peer, permit.clone())).await {
        Err(_) => past_deadline(),
        Ok(Err(e)) => routing_error(&e),
        Ok(Ok(found)) => answer.send(stream::iter(found), permit).await,
    }
}

/// How a JSON route answers: `{"<field>": [records]}` of at most `limit` records that
/// pass the request's filters (IPIP-484), or NDJSON streamed until the records or the
/// deadline end. Nothing found is a 404 (with `{"<field>": []}` in JSON); a deadline
/// passed before anything was found, 504.
struct Records {
    field: &'static str,
    format: Format,
    filters: Filters,
    limit: usize,
    deadline: Instant,
}

impl Records {
    /// Answers with what `found` yields, holding `permit` until `found` is dropped.
    async fn send(
        self,
        found: impl Stream<Item = PeerRecord> + Send + 'static,
        permit: Permit,
    ) -> Response {
        let Records {
            field,
            format,
            filters,
            limit,
            deadline,
        } = self;
        let found = found.filter_map(move |r| std::future::ready(filters.apply(r)));
        let mut found = Box::pin(found);
        let first = match timeout_at(deadline, found.next()).await {
            Ok(first) => first,
            Err(_) => return past_deadline(),
        };
        let (status, max_age) = match first {
            Some(_) => (StatusCode::OK, MAX_AGE_FOUND),
            None => (StatusCode::NOT_FOUND, MAX_AGE_NOT_FOUND),
        };
        let headers = [
            (VARY, HeaderValue::from_static("Accept")),
            (CACHE_CONTROL, cache_control(max_age, MAX_STALE)),
            (LAST_MODIFIED, http_date(SystemTime::now())),
        ];
        if format == Format::Ndjson {
            let content_type = [(CONTENT_TYPE, HeaderValue::from_static(NDJSON))];
            let Some(first) = first else {
                return (status, content_type, headers).into_response();
            };
            let lines = stream::once(async { first })
                .chain(found)
                .take_until(sleep_until(deadline))
                .map(move |r| {
                    // The permit goes when the stream does: at its end or the client's.
                    let _held = &permit;
                    let mut line = serde_json::to_vec(&PeerJson::of(r)).unwrap_or_default();
                    line.push(b'\n');
                    Ok::<_, Infallible>(Bytes::from(line))
                });
            return (status, content_type, headers, Body::from_stream(lines)).into_response();
        }
        let mut list: Vec<PeerJson> = first.into_iter().take(limit).map(PeerJson::of).collect();
        while list.len() < limit {
            match timeout_at(deadline, found.next()).await {
                Ok(Some(r)) => list.push(PeerJson::of(r)),
                Ok(None) | Err(_) => break,
            }
        }
        // Enough, or the lookup is over: end it now, and give its permit back.
        drop(found);
        drop(permit);
        // Written by hand around the list: a `serde_json::Value` would sort the
        // records' fields, and the spec's examples open with `Schema`.
        let list = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
        let body = format!("{{\"{field}\":{list}}}");
        let content_type = [(CONTENT_TYPE, HeaderValue::from_static(JSON))];
        (status, content_type, headers, body).into_response()
    }
}

/// `GET /routing/v1/ipns/{name}`.
pub(crate) async fn get_ipns<R: ContentRouting, P: Pool>(
    State(api): Shared<R, P>,
    Path(name): Path<String>,
    Client(client): Client,
    headers: HeaderMap,
) -> Response {
    if !accepts(&headers, IPNS_RECORD) {
        return not_acceptable(&format!("retry with Accept: {IPNS_RECORD}"));
    }
    let Some(name) = parse_peer_id(&name) else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("malformed IPNS name {name:?}"),
        );
    };
    let permit = match api.pool.try_acquire(Work::Read, client) {
        Ok(p) => p,
        Err(busy) => return error(StatusCode::SERVICE_UNAVAILABLE, &busy.to_string()),
    };
    let deadline = Instant::now() + api.config.deadline;
    let found = timeout_at(deadline, api.routing.get_ipns(name.clone(), permit.clone())).await;
    drop(permit);
    let record = match found {
        Err(_) => return past_deadline(),
        Ok(Err(e)) => return routing_error(&e),
        Ok(Ok(found)) => found,
    };
    let now = SystemTime::now();
    let verified = record.map(|r| {
        let checked = IpnsRecord::verify(&record_key(&name), &r, unix_millis(now));
        (r, checked)
    });
    let (bytes, record) = match verified {
        Some((bytes, Ok(record))) => (bytes, record),
        // A record that no longer verifies (expired since it was stored) is not served.
        Some((_, Err(e))) => return ipns_not_found(&format!("no valid record: {e}")),
        None => return ipns_not_found("no record found"),
    };
    let max_age = record
        .ttl()
        .filter(|t| t.as_secs() > 0)
        .unwrap_or(DEFAULT_IPNS_MAX_AGE);
    let now_nanos = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i128;
    let valid_for = u64::try_from((record.eol() - now_nanos) / 1_000_000_000).unwrap_or(0);
    let eol_secs = u64::try_from(record.eol() / 1_000_000_000).unwrap_or(0);
    let digest = Sha256::digest(&bytes);
    let etag: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let disposition = format!(
        "attachment; filename=\"{}.ipns-record\"",
        peer_id_base36_cid(&name)
    );
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(IPNS_RECORD)),
        (VARY, HeaderValue::from_static("Accept")),
        (ETAG, header(&format!("\"{etag}\""))),
        (
            CACHE_CONTROL,
            cache_control(max_age, Duration::from_secs(valid_for)),
        ),
        (
            EXPIRES,
            http_date(UNIX_EPOCH + Duration::from_secs(eol_secs)),
        ),
        (LAST_MODIFIED, http_date(now)),
        (CONTENT_DISPOSITION, header(&disposition)),
    ];
    (StatusCode::OK, headers, bytes).into_response()
}

/// `PUT /routing/v1/ipns/{name}`: the body, at most 10 KiB, must verify as a record
/// of the name now.
pub(crate) async fn put_ipns<R: ContentRouting, P: Pool>(
    State(api): Shared<R, P>,
    Path(name): Path<String>,
    Client(client): Client,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !content_type_is(&headers, IPNS_RECORD) {
        return not_acceptable(&format!("retry with Content-Type: {IPNS_RECORD}"));
    }
    let Some(name) = parse_peer_id(&name) else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("malformed IPNS name {name:?}"),
        );
    };
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("an IPNS record is at most {MAX_IPNS_RECORD_LEN} bytes"),
        )
    };
    // A declared length over the bound is refused before a byte of the body is read.
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_IPNS_RECORD_LEN as u64) {
        return too_large();
    }
    // A body that runs past the bound is refused once it does (the only way reading
    // fails while the client is still there to be answered).
    let Ok(record) = axum::body::to_bytes(body, MAX_IPNS_RECORD_LEN).await else {
        return too_large();
    };
    let key = record_key(&name);
    let now = unix_millis(SystemTime::now());
    if let Err(e) = Namespaces::default().validate(&key, &record, now) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("not a valid IPNS record of this name: {e}"),
        );
    }
    let permit = match api.pool.try_acquire(Work::Write, client) {
        Ok(p) => p,
        Err(busy) => return error(StatusCode::SERVICE_UNAVAILABLE, &busy.to_string()),
    };
    let deadline = Instant::now() + api.config.deadline;
    let put = timeout_at(deadline, api.routing.put_ipns(name, record, permit.clone())).await;
    drop(permit);
    match put {
        Err(_) => past_deadline(),
        Ok(Err(e)) => routing_error(&e),
        Ok(Ok(())) => StatusCode::OK.into_response(),
    }
}

/// Methods the spec defines but this server does not support, on a route it serves.
pub(crate) async fn not_implemented() -> Response {
    error(
        StatusCode::NOT_IMPLEMENTED,
        "method not supported on this path",
    )
}

/// Paths under `/routing/v1/` that are none of the routes: 400, as the spec says.
pub(crate) async fn unknown_path() -> Response {
    error(StatusCode::BAD_REQUEST, "unknown path")
}

/// The DHT key of a name's records: `/ipns/` and the name's bytes.
fn record_key(name: &PeerId) -> Vec<u8> {
    [IPNS_PREFIX, name.as_bytes()].concat()
}

fn unix_millis(t: SystemTime) -> UnixMillis {
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    UnixMillis::try_from(ms).unwrap_or(UnixMillis::MAX)
}

/// A header value of text we wrote (ASCII; an empty value if it somehow is not).
fn header(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

fn not_acceptable(message: &str) -> Response {
    error(StatusCode::NOT_ACCEPTABLE, message)
}

fn ipns_not_found(message: &str) -> Response {
    let mut response = error(StatusCode::NOT_FOUND, message);
    let h = response.headers_mut();
    h.insert(VARY, HeaderValue::from_static("Accept"));
    h.insert(CACHE_CONTROL, cache_control(MAX_AGE_NOT_FOUND, MAX_STALE));
    response
}

fn past_deadline() -> Response {
    error(
        StatusCode::GATEWAY_TIMEOUT,
        "the routing lookup ran past its deadline",
    )
}

fn routing_error(e: &RoutingError) -> Response {
    let status = match e {
        RoutingError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        RoutingError::Refused(_) => StatusCode::BAD_REQUEST,
        RoutingError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &e.to_string())
}
