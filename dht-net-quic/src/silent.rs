//! Peers that went silent: a cached connection that has received nothing (not even an
//! acknowledgement) for longer than a live peer takes to answer, while we kept sending
//! on it, leads to a peer that died or restarted. It is closed and replaced by a new
//! handshake, and the messages sent into the silence go again on the new connection.
//!
//! A restarted node that kept its key resets its predecessor's connections at once
//! (`reset.rs`); one with a new key (no data dir) cannot, as a stateless reset needs the
//! old key, so only silence tells. Silence used to be judged only when the next message
//! went out, and only after 1.5 s: every request sent meanwhile was lost, and in a
//! 20-node testnet under churn each operation in the 1.7 s after a restart took one or
//! two request timeouts (250 ms each). Now a task looks every [`TICK`] at the
//! connections sending into silence, and the bound after a query follows the measured
//! round trip; a connection is closed at the second look past its bound.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::{Connection, VarInt};

use crate::{bump, Shared, Slot};

/// The most a peer may stay silent while we send, whatever its round trip: the bound
/// before round trips steered it (a path of a second's round trip still fits).
const DEAD_AFTER: Duration = Duration::from_millis(1500);

/// quinn's default `max_ack_delay`: a live peer acknowledges what we sent within a
/// round trip plus this, even when it has nothing to answer.
const ACK_DELAY: Duration = Duration::from_millis(25);

/// How often the silent connections are looked at.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// How long a peer with smoothed round trip `rtt` may stay silent after a query:
/// four round trips plus four acknowledgement delays (100 ms on loopback), at most
/// [`DEAD_AFTER`]. Two delays (50 ms) closed live connections on a loaded 2-core
/// testnet machine, where a process stalls that long now and then. Closing a live
/// connection by mistake costs a handshake: what was sent into the "silence" is sent
/// again on the new connection, and the peer sends again what it had sent on the closed
/// one (`reset.rs`).
fn dead_after(rtt: Duration) -> Duration {
    (rtt.saturating_mul(4) + ACK_DELAY * 4).min(DEAD_AFTER)
}

/// A KRPC query (its `y`, the last key of a bencoded dict's sorted keys, is `q`): the
/// peer answers it at once, so silence after it means something within a few round
/// trips. After anything else (a reply, an error) a live peer only acknowledges, and
/// one that stalls a moment (a busy machine) would be taken for dead: such silence is
/// judged by [`DEAD_AFTER`] alone. A message of another protocol counts as no query.
fn is_query(payload: &[u8]) -> bool {
    payload.ends_with(b"1:y1:qe")
}

/// What a cached connection has received, and what we sent since it last did.
#[derive(Debug, Default)]
pub(crate) struct Silence {
    /// Datagrams the connection had received when we last looked.
    heard: u64,
    /// Since when we have been sending without the connection receiving anything.
    since: Option<Instant>,
    /// When the peer, if alive, must have sent something: the earliest of each
    /// message's send time plus its bound.
    deadline: Option<Instant>,
    /// The watch found the deadline passed once: it closes the connection at its next
    /// look unless something arrived meanwhile (our own process may have stalled, with
    /// the peer's packets waiting in the socket).
    suspect: bool,
    /// The connection's smoothed round trip when we last looked.
    rtt: Duration,
    /// The messages sent since it last received anything, most recent last.
    unheard: Vec<Bytes>,
}

impl Silence {
    /// Looks at what `conn` has received: anything new ends the silence.
    fn refresh(&mut self, conn: &Connection) {
        let stats = conn.stats();
        self.rtt = stats.path.rtt;
        if stats.udp_rx.datagrams != self.heard {
            self.heard = stats.udp_rx.datagrams;
            self.since = None;
            self.deadline = None;
            self.suspect = false;
            self.unheard.clear();
        }
    }

    fn overdue(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|t| now > t)
    }

    /// Notes `payload` sent on `conn` at `now`, keeping at most `max` messages (the
    /// oldest go first: a peer silent through that many is dead).
    pub(crate) fn sent(&mut self, conn: &Connection, payload: Bytes, now: Instant, max: usize) {
        self.refresh(conn);
        self.since.get_or_insert(now);
        let bound = if is_query(&payload) {
            dead_after(self.rtt)
        } else {
            DEAD_AFTER
        };
        let deadline = now + bound;
        self.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
        if self.unheard.len() >= max.max(1) {
            self.unheard.remove(0);
        }
        self.unheard.push(payload);
    }

    /// The messages sent since the connection last received anything.
    pub(crate) fn take_unheard(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.unheard)
    }
}

/// Looks every [`TICK`] for connections whose peer went silent, until the transport
/// is dropped.
pub(crate) async fn watch(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.close_silent(Instant::now());
    }
}

impl Shared {
    /// Closes the connections silent past their bound, and sends what they swallowed
    /// on new ones. Only connections silent for longer than their bound are asked what
    /// they received, so a tick costs a pass over the cache and little more.
    fn close_silent(self: &Arc<Self>, now: Instant) {
        let mut lost: Vec<(SocketAddr, Vec<Bytes>)> = Vec::new();
        let mut cache = self.cache();
        for (addr, e) in cache.map.iter_mut() {
            let Slot::Ready(conn) = &e.slot else {
                continue;
            };
            if !e.silence.overdue(now) {
                continue;
            }
            e.silence.refresh(conn);
            if !e.silence.overdue(now) {
                continue;
            }
            if !e.silence.suspect {
                e.silence.suspect = true;
                continue;
            }
            tracing::debug!(to = %addr, "connection silent while sending; reconnecting");
            self.trace_lost(*addr, "silent", &e.silence, now);
            bump(&self.counters.evicted);
            bump(&self.counters.silent_closed);
            conn.close(VarInt::from_u32(0), b"silent");
            lost.push((*addr, e.silence.take_unheard()));
        }
        for (addr, _) in &lost {
            cache.remove(addr);
        }
        drop(cache);
        for (to, unheard) in lost {
            // A peer silent after a reply is gone or stalled past its requester's
            // timeout: only queries are worth a new handshake.
            self.resend(to, unheard, false);
        }
    }

    /// With `DHT_QUIC_TRACE`: one line per lost connection, with the wall clock in
    /// milliseconds, to line up with other processes' records.
    pub(crate) fn trace_lost(&self, to: SocketAddr, why: &str, silence: &Silence, now: Instant) {
        if !self.trace {
            return;
        }
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let silent = silence.since.map(|t| now.saturating_duration_since(t));
        let over = silence.deadline.map(|t| now.saturating_duration_since(t));
        eprintln!(
            "dht-net-quic: {unix_ms} {to} {why}: silent {silent:?} ({over:?} past its bound, rtt {:?}), {} unheard",
            silence.rtt,
            silence.unheard.len()
        );
    }

    /// Sends `unheard` to `to` again (only its queries unless `all`), on a new
    /// connection if the old one is gone.
    pub(crate) fn resend(self: &Arc<Self>, to: SocketAddr, unheard: Vec<Bytes>, all: bool) {
        for payload in unheard.into_iter().filter(|p| all || is_query(p)) {
            bump(&self.counters.resent);
            self.send(to, &payload);
        }
    }
}
