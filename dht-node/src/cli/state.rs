//! What every `--http` handler shares: the state ([`Http`], with the registry of
//! watched items), the limits, the error answer and the parsing of what a request
//! names (public keys, salts, query parameters). The handlers are in `api.rs` (the
//! `/v1/` JSON API) and `watch.rs` (SSE); `http.rs` serves them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dht_core::from_hex;
use dht_node::exposition::Exporter;
use dht_node::Dht;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::permits::Permits;
use super::republished::Republished;

/// DHT lookups that HTTP reads may run at once by default (`--http-max-ops`);
/// beyond, 503.
pub(crate) const MAX_DHT_OPS: usize = 64;
/// The share of those one client (IPv4 address, IPv6 /64) may hold by default
/// (`--http-max-reads-per-client`).
pub(crate) const MAX_READS_PER_CLIENT: usize = 16;
/// DHT writes (puts, announces) that HTTP requests may run at once by default
/// (`--http-max-writes`): a pool of their own, so that held reads never refuse them.
pub(crate) const MAX_DHT_WRITES: usize = 16;
/// Lookups that watch pollers may run at once by default (`--http-max-watch-lookups`).
pub(crate) const MAX_WATCH_LOOKUPS: usize = 16;
/// Targets (items and info_hashes) that HTTP writes may have the node republish by
/// default (`--http-max-republished`); a write of a new target beyond, 507.
pub(crate) const MAX_REPUBLISHED: usize = 256;
/// How long one DHT operation of an HTTP request may take by default
/// (`--http-deadline-ms`; a lookup usually takes a few seconds); past it, 504.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// Largest request body accepted (a BEP 44 value is at most 1000 bytes).
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct Http {
    pub(crate) dht: Dht,
    pub(crate) exporter: Exporter,
    /// One permit per DHT operation an HTTP request or a watch poller runs.
    pub(crate) permits: Permits,
    /// How long one such operation may take.
    pub(crate) deadline: Duration,
    pub(crate) token: Option<String>,
    pub(crate) watches: Watches,
    /// What HTTP writes have the node republish.
    pub(crate) republished: Republished,
}

pub(crate) type Key = ([u8; 32], Vec<u8>);

/// The items being watched and their pollers.
#[derive(Debug)]
pub(crate) struct Watches {
    pub(crate) poll: Duration,
    pub(crate) items: Mutex<HashMap<Key, Watched>>,
}

#[derive(Debug)]
pub(crate) struct Watched {
    pub(crate) tx: broadcast::Sender<Value>,
    /// The highest seq seen, sent first to a client that joins later.
    pub(crate) last: Option<Value>,
}

impl Watches {
    pub(crate) fn new(poll: Duration) -> Watches {
        Watches {
            poll,
            items: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn watchers(items: &HashMap<Key, Watched>) -> usize {
        items.values().map(|w| w.tx.receiver_count()).sum()
    }
}

/// An error answer: `{"error": message}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A refused request before any DHT work: small, turned into [`error`]'s answer.
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

pub(crate) fn bad(message: String) -> Refused {
    Refused(StatusCode::BAD_REQUEST, message)
}

pub(crate) fn parse_key(s: &str) -> Result<[u8; 32], Refused> {
    from_hex(s)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| bad(format!("public key: expected 64 hex characters, got {s:?}")))
}

/// A query parameter's bytes, percent-decoded (a salt need not be UTF-8).
pub(crate) fn query_param(query: &Option<String>, name: &str) -> Option<Vec<u8>> {
    query.as_deref()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            let v = v.replace('+', " ");
            percent_encoding::percent_decode_str(&v).collect()
        })
    })
}

pub(crate) fn salt_of(query: &Option<String>) -> Result<Vec<u8>, Refused> {
    let salt = query_param(query, "salt").unwrap_or_default();
    if salt.len() > dht_core::krpc::MAX_SALT_LEN {
        return Err(bad(format!(
            "salt too big: {} bytes, at most {}",
            salt.len(),
            dht_core::krpc::MAX_SALT_LEN
        )));
    }
    Ok(salt)
}
