//! The HTTP around the answers: content negotiation (`Accept`, `Content-Type`), the
//! caching headers the spec suggests, CORS, and error bodies.
//!
//! Caching, as the spec's "Response Headers" and boxo's server have it: providers
//! and peers found are cached for 5 minutes, nothing found for 15 seconds, and both
//! may be served stale for 48 hours (the Amino DHT's provider record lifetime); an
//! IPNS record for its TTL (60 s when it has none), stale for as long as it stays
//! valid, and `Expires` at its end of life. Every answer varies by `Accept`.
//!
//! CORS, as the spec's "CORS and Web Browsers" has it: every answer allows any origin
//! and the methods of its path (`GET, OPTIONS`; `GET, PUT, OPTIONS` under
//! `/routing/v1/ipns/`), and a preflight (`OPTIONS`) is answered 204 with the request
//! headers a client needs (`Accept`, and `Content-Type` for an IPNS PUT).

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    ACCEPT, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    CACHE_CONTROL, CONTENT_TYPE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The default content type of the JSON routes.
pub const JSON: &str = "application/json";
/// Newline-delimited JSON: one record per line, streamed as found.
pub const NDJSON: &str = "application/x-ndjson";
/// An `IpnsEntry` protobuf.
pub const IPNS_RECORD: &str = "application/vnd.ipfs.ipns-record";

/// The path under which PUT is allowed too.
const IPNS_PATH: &str = "/routing/v1/ipns/";
/// How long answers with results are cached.
pub const MAX_AGE_FOUND: Duration = Duration::from_secs(5 * 60);
/// How long answers without results are cached.
pub const MAX_AGE_NOT_FOUND: Duration = Duration::from_secs(15);
/// How long a cache may serve answers stale: the Amino DHT's provider record lifetime.
pub const MAX_STALE: Duration = Duration::from_secs(48 * 60 * 60);
/// An IPNS record's `max-age` when it has no TTL.
pub const DEFAULT_IPNS_MAX_AGE: Duration = Duration::from_secs(60);

/// How a JSON route answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object, at most [`Config::json_records`](crate::Config) records.
    Json,
    /// NDJSON, streamed.
    Ndjson,
}

/// The media types an `Accept` (all its values) names, without parameters.
fn accepted(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// The format a JSON route answers in: NDJSON only when asked for (the spec forbids
/// streaming otherwise), JSON when asked for, for any type or without `Accept`;
/// `None` (406) when `Accept` names neither.
pub fn negotiate(headers: &HeaderMap) -> Option<Format> {
    if headers.get(ACCEPT).is_none() {
        return Some(Format::Json);
    }
    let mut json = false;
    for t in accepted(headers) {
        match t.as_str() {
            NDJSON => return Some(Format::Ndjson),
            JSON | "*/*" | "application/*" => json = true,
            _ => {}
        }
    }
    json.then_some(Format::Json)
}

/// Does `Accept` name `media_type`?
pub fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    accepted(headers).any(|t| t == media_type)
}

/// Is the request body of `media_type` (`Content-Type`, parameters aside)?
pub fn content_type_is(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(media_type))
}

/// `Cache-Control` of an answer cached for `max_age`, served stale for `stale`.
pub fn cache_control(max_age: Duration, stale: Duration) -> HeaderValue {
    let (a, s) = (max_age.as_secs(), stale.as_secs());
    let v = format!("public, max-age={a}, stale-while-revalidate={s}, stale-if-error={s}");
    // Digits and ASCII only.
    HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("no-store"))
}

/// An HTTP-date (`Expires`, `Last-Modified`), clamped to the last second httpdate can
/// write (9999-12-31): an IPNS record's end of life may lie beyond.
pub fn http_date(t: SystemTime) -> HeaderValue {
    const LAST: Duration = Duration::from_secs(253_402_300_799);
    let t = t
        .min(SystemTime::UNIX_EPOCH + LAST)
        .max(SystemTime::UNIX_EPOCH);
    HeaderValue::from_str(&httpdate::fmt_http_date(t)).unwrap_or(HeaderValue::from_static(""))
}

/// An error answer: `{"error": message}`, as dht-node's `/v1/` API writes them.
pub fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, [(CONTENT_TYPE, JSON)], body).into_response()
}

/// The methods a path allows.
fn methods_of(path: &str) -> &'static str {
    if path.starts_with(IPNS_PATH) {
        "GET, PUT, OPTIONS"
    } else {
        "GET, OPTIONS"
    }
}

/// Adds the CORS headers to every answer of the routes it wraps.
pub async fn cors(request: Request, next: Next) -> Response {
    let methods = methods_of(request.uri().path());
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    // Etag is not a CORS-safelisted response header: scripts see it only if exposed.
    h.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Etag, Content-Disposition"),
    );
    response
}

/// A preflight's answer (the CORS headers are added by [`cors`]).
pub async fn preflight() -> Response {
    let mut response = (StatusCode::NO_CONTENT, Body::empty()).into_response();
    let h = response.headers_mut();
    // `Accept` of the IPNS type and `Content-Type` of a PUT are not safelisted values.
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Accept, Content-Type, If-None-Match, If-Modified-Since"),
    );
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_accept(v: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in v {
            h.append(ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(&with_accept(&[])), Some(Format::Json));
        assert_eq!(negotiate(&with_accept(&["*/*"])), Some(Format::Json));
        assert_eq!(
            negotiate(&with_accept(&[
                "application/json",
                "application/x-ndjson;q=1"
            ])),
            Some(Format::Ndjson)
        );
        assert_eq!(negotiate(&with_accept(&["text/html"])), None);
        assert!(accepts(
            &with_accept(&["text/plain, Application/Vnd.Ipfs.Ipns-Record"]),
            IPNS_RECORD
        ));
        assert!(!accepts(&with_accept(&["*/*"]), IPNS_RECORD));
    }

    #[test]
    fn dates_past_9999_are_clamped() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(http_date(far), "Fri, 31 Dec 9999 23:59:59 GMT");
    }
}
