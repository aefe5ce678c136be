//! `GET /v1/mutable/{key}/watch?salt=S`: Server-Sent Events, one `event: item` each
//! time a higher seq of the item is seen (OpenDHT's listen).
//!
//! One poller task per (key, salt), however many clients watch it: it looks the item
//! up in the DHT every `--watch-poll` seconds and in this node's own store every
//! second (a put that reaches this node is seen at once), and broadcasts each higher
//! seq; it ends when its last client leaves. At most [`MAX_WATCHERS`] clients watch
//! at once, and at most as many pollers run (503 beyond): a poller outlives its last
//! client by up to a second. Each DHT lookup of a poller holds a permit of the watch
//! pool (`permits.rs`) until it ends, even when the poller has ended before it; a
//! poller that finds none free looks again a second later.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dht_core::MutableItem;
use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::output::mutable_json;
use super::state::{error, parse_key, salt_of, Http, Watched, Watches};

/// Clients watching at once, over all items.
pub(crate) const MAX_WATCHERS: usize = 256;

pub(crate) async fn watch(
    State(http): State<Arc<Http>>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let (key, salt) = match (parse_key(&key), salt_of(&q)) {
        (Ok(k), Ok(s)) => (k, s),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let (rx, last) = {
        // A poisoned lock means a handler panicked mid-update; the map is still usable.
        let mut items = http.watches.items.lock().unwrap_or_else(|p| p.into_inner());
        if Watches::watchers(&items) >= MAX_WATCHERS || items.len() >= MAX_WATCHERS {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many watchers; retry later",
            );
        }
        let k = (key, salt.clone());
        match items.get(&k) {
            Some(w) if w.tx.receiver_count() > 0 => (w.tx.subscribe(), w.last.clone()),
            _ => {
                let (tx, rx) = broadcast::channel(16);
                items.insert(
                    k,
                    Watched {
                        tx: tx.clone(),
                        last: None,
                    },
                );
                tokio::spawn(poll(http.clone(), key, salt, tx));
                (rx, None)
            }
        }
    };
    let first = futures_util::stream::iter(last.map(item_event));
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(v) => return Some((item_event(v), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures_util::StreamExt;
    Sse::new(first.chain(rest))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn item_event(v: Value) -> Result<Event, Infallible> {
    Ok(Event::default().event("item").data(v.to_string()))
}

/// How often the poller looks into this node's own store: a put that reaches this
/// node directly is seen within this, not within `--watch-poll`.
const LOCAL_POLL: Duration = Duration::from_secs(1);

/// Polls one (key, salt) until nobody watches it (or a newer poller took over): the
/// DHT every `--watch-poll`, this node's store every [`LOCAL_POLL`].
async fn poll(http: Arc<Http>, key: [u8; 32], salt: Vec<u8>, tx: broadcast::Sender<Value>) {
    let target = dht_core::mutable_target(&key, &salt);
    let mut seq: Option<i64> = None;
    let mut next_lookup = tokio::time::Instant::now();
    // The lookup running now: its own task holds the permit, so that it stays
    // counted if this poller ends first.
    let mut lookup: Option<JoinHandle<Option<MutableItem>>> = None;
    loop {
        let mut seen = None;
        if lookup.as_ref().is_some_and(|l| l.is_finished()) {
            if let Some(Ok(found)) = lookup.take().and_then(|l| l.now_or_never()) {
                seen = found;
            }
        }
        let now = tokio::time::Instant::now();
        if lookup.is_none() && now >= next_lookup {
            if let Some(held) = http.permits.watch_lookup() {
                next_lookup = now + http.watches.poll;
                let (dht, salt) = (http.dht.clone(), salt.clone());
                // Awaited to its end, however long: the node ends every lookup on
                // its own (its replies time out), and the permit must last as long.
                lookup = Some(tokio::spawn(async move {
                    let found = dht.get_mutable(key, &salt, seq).await;
                    drop(held);
                    found.ok().and_then(|a| a.value)
                }));
            }
        }
        if let Ok(Some(dht_core::Item::Mutable(local))) = http.dht.local_item(target).await {
            if local.verify() && seen.as_ref().is_none_or(|s| local.seq > s.seq) {
                seen = Some(local);
            }
        }
        if let Some(item) = seen.filter(|i| seq.is_none_or(|s| i.seq > s)) {
            seq = Some(item.seq);
            let v = mutable_json(&item, None);
            let mut items = http.watches.items.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = items.get_mut(&(key, salt.clone())) {
                w.last = Some(v.clone());
                let _ = w.tx.send(v);
            }
        }
        tokio::time::sleep(LOCAL_POLL).await;
        let mut items = http.watches.items.lock().unwrap_or_else(|p| p.into_inner());
        let k = (key, salt.clone());
        match items.get(&k) {
            Some(w) if !w.tx.same_channel(&tx) => return,
            Some(w) if w.tx.receiver_count() > 0 => {}
            _ => {
                items.remove(&k);
                return;
            }
        }
    }
}
