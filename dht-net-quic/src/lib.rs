//! # dht-net-quic: KRPC over QUIC, with node ids bound to keys
//!
//! [`QuicTransport`] carries the same bencoded KRPC messages as `dht-net-udp`, but
//! inside QUIC connections (quinn + rustls): encrypted, and with both ends
//! authenticated by an ed25519 key.
//!
//! ## Identity
//! Each node has an ed25519 key ([`load_or_generate_key`] keeps it in the data dir)
//! and presents a self-signed certificate for it. A peer is accepted by its key
//! alone: no certificate authority, name or date is consulted, only that the
//! certificate holds an ed25519 key and that the peer signed the TLS 1.3 handshake
//! with it. Client authentication is mandatory, so both ends learn each other's key,
//! and every received message is handed up with it ([`RecvSlot::peer_key`]).
//!
//! A node's DHT id is [`dht_core::key_derived_id`] of its key (run the node
//! with `IdPolicy::PublicKey`); `dht_core::Node` drops any message whose id is not
//! the one derived from the sending peer's key and counts it in
//! `stats().key_id_mismatch`.
//!
//! What this buys: no one can send messages under a node id, or answer for one,
//! without that node's private key, so ids cannot be impersonated, routing entries
//! cannot be poisoned with someone else's id, and replies cannot be forged.
//! What it does not: keys are free to make, so an attacker can still make many
//! identities and grind keys until their ids land next to a target (Sybil
//! placement); binding ids to keys does not stop that by itself. BEP 42 (ids bound
//! to IP addresses) does not apply over QUIC: the id comes from the key.
//!
//! ## Messages on the wire
//! A message that fits the connection's `max_datagram_size()` rides a QUIC
//! datagram (unreliable, like UDP: the DHT already retries by timeouts); a larger
//! one (a 1000-byte BEP 44 value at a 1200-byte path MTU) goes on a unidirectional
//! stream of its own. ARCHITECTURE.md gives the measurements behind the choice.
//! Messages of [`MAX_MESSAGE_LEN`] bytes or more are dropped both ways, as the UDP
//! transport drops datagrams that fill its receive buffer.
//!
//! ## Connections
//! One cache of connections, keyed by the peer's address and bounded by
//! [`QuicConfig::max_connections`] (the least recently used is closed to make room),
//! serves both directions: a new peer costs one handshake, later messages none.
//! Connections close after [`QuicConfig::idle_timeout`] of silence; one replaced by a
//! newer handshake from its address, after [`QuicConfig::replaced_grace`] with nothing
//! received on it (`replaced.rs`); one whose peer stays silent while we send, within a
//! bound that follows the round trip (`silent.rs`). A peer that restarts with its key
//! resets its predecessor's connections at once, and what a lost connection swallowed
//! is sent again on a new one (`reset.rs`). A handshake runs
//! in a task of its own, so a slow peer never stalls a batch: messages to it wait
//! behind the handshake (at most [`QuicConfig::pending_per_peer`]) and are dropped if
//! it fails. Incoming handshakes are bounded in total and per source (an IPv4
//! address or an IPv6 /64); over the total, unvalidated sources are asked to prove
//! their address with a stateless retry first.
//!
//! ## One crypto provider
//! rustls and quinn are built with ring only (no aws-lc-rs), and every config is
//! made with that provider explicitly: rustls panics at configuration time when two
//! providers are compiled in and none is chosen.
//!
//! [`QuicTransport::bind`] must be called inside a tokio runtime.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use dht_core::{RecvSlot, Transport};
//! use dht_net_quic::{load_or_generate_key, QuicConfig, QuicTransport};
//!
//! let key = load_or_generate_key(std::path::Path::new("/var/lib/dht/node.key"))?;
//! let t = QuicTransport::bind(&["0.0.0.0:6881".parse().unwrap()], key, QuicConfig::default())?;
//! let id = t.node_id(); // run the node with IdPolicy::PublicKey(t.public_key())
//! let mut slots: Vec<RecvSlot> = (0..32).map(|_| RecvSlot::new()).collect();
//! let n = t.recv_batch(&mut slots).await?;
//! assert!(slots[..n].iter().all(|s| s.peer_key.is_some()));
//! # let _ = id;
//! # Ok(())
//! # }
//! ```

// Every public item says what it is (issue 28); CI turns the warning into an error.
#![warn(missing_docs)]

mod config;
mod identity;
mod replaced;
mod reset;
mod silent;
mod source;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use dht_core::Id;
use dht_core::{OutDatagram, RecvSlot, Transport, RECV_BUF_LEN};
use ed25519_dalek::SigningKey;
use quinn::{Connection, Endpoint, Incoming, VarInt};
use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;

pub use config::QuicConfig;
pub use identity::{generate_key, load_or_generate_key};

use config::{bind_endpoint, invalid, quinn_configs};
use silent::Silence;
use source::SourceGuard;

/// ALPN protocol id: a peer speaking anything else is refused in the handshake.
pub const ALPN: &[u8] = b"dht-krpc/1";

/// Messages of this many bytes or more are neither sent nor delivered: the same
/// limit as the UDP transport (a datagram filling a [`RECV_BUF_LEN`] buffer is dropped).
pub const MAX_MESSAGE_LEN: usize = RECV_BUF_LEN;

/// Kernel socket buffer size requested, as for UDP (bursts of lookup replies).
pub(crate) const SOCKET_BUF_LEN: usize = 4 << 20;

/// Counters since bind (a snapshot; see [`QuicTransport::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuicStats {
    /// Handshakes we initiated that completed.
    pub handshakes_out: u64,
    /// Incoming handshakes that completed.
    pub handshakes_in: u64,
    /// Handshakes (either direction) that failed or timed out.
    pub handshake_failures: u64,
    /// Incoming connection attempts refused or retried by the flood bounds.
    pub incoming_refused: u64,
    /// Connections closed to keep the cache within its bound.
    pub evicted: u64,
    /// Connections in the cache now (established or in handshake).
    pub connections: u64,
    /// Connections replaced in the cache by a newer handshake with the same peer
    /// address, and closed after [`QuicConfig::replaced_grace`].
    pub replaced: u64,
    /// Replaced connections still inside their grace now (at most
    /// [`QuicConfig::max_replaced`]).
    pub replaced_open: u64,
    /// Messages sent as QUIC datagrams.
    pub datagrams_sent: u64,
    /// Messages sent on streams.
    pub streams_sent: u64,
    /// Messages received (both paths) and queued for `recv_batch`.
    pub received: u64,
    /// Messages dropped: too large, no endpoint for the family, a full queue behind
    /// a handshake, a failed handshake, or a failed send.
    pub send_dropped: u64,
    /// Received messages dropped: too large, or the receive queue was full.
    pub recv_dropped: u64,
    /// Connections a peer closed with a stateless reset: it restarted and lost them.
    pub peer_resets: u64,
    /// Connections closed because their peer stayed silent while we sent (dead, or
    /// restarted with a new key), also counted in `evicted`.
    pub silent_closed: u64,
    /// Messages sent again on a new connection because the old one was lost (reset,
    /// silent, closed or timed out) after they went out and before it received anything.
    pub resent: u64,
}

#[derive(Debug, Default)]
struct Counters {
    handshakes_out: AtomicU64,
    handshakes_in: AtomicU64,
    handshake_failures: AtomicU64,
    incoming_refused: AtomicU64,
    evicted: AtomicU64,
    replaced: AtomicU64,
    datagrams_sent: AtomicU64,
    streams_sent: AtomicU64,
    received: AtomicU64,
    send_dropped: AtomicU64,
    recv_dropped: AtomicU64,
    peer_resets: AtomicU64,
    silent_closed: AtomicU64,
    resent: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A received message on its way to `recv_batch`.
#[derive(Debug)]
struct Inbound {
    from: SocketAddr,
    key: [u8; 32],
    bytes: Bytes,
}

#[derive(Debug)]
enum Slot {
    /// Handshake in progress; messages queued behind it.
    Connecting(Vec<Bytes>),
    Ready(Connection),
}

#[derive(Debug)]
struct Entry {
    slot: Slot,
    /// Position in `Cache::order`.
    tick: u64,
    /// What the connection received and what we sent since (`silent.rs`).
    silence: Silence,
}

/// Connections by peer address, with least-recently-used order.
#[derive(Debug, Default)]
struct Cache {
    map: HashMap<SocketAddr, Entry>,
    order: BTreeMap<u64, SocketAddr>,
    tick: u64,
}

impl Cache {
    fn touch(&mut self, addr: &SocketAddr) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(e) = self.map.get_mut(addr) {
            self.order.remove(&e.tick);
            e.tick = tick;
            self.order.insert(tick, *addr);
        }
    }

    /// Inserts or replaces `addr`'s slot as most recently used; returns the entries
    /// evicted to stay within `max`.
    fn insert(&mut self, addr: SocketAddr, slot: Slot, max: usize) -> Vec<Slot> {
        let mut evicted = Vec::new();
        if let Some(old) = self.remove(&addr) {
            evicted.push(old);
        }
        while self.map.len() >= max.max(1) {
            let Some((_, lru)) = self.order.pop_first() else {
                break;
            };
            if let Some(e) = self.map.remove(&lru) {
                evicted.push(e.slot);
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, addr);
        self.map.insert(
            addr,
            Entry {
                slot,
                tick: self.tick,
                silence: Silence::default(),
            },
        );
        evicted
    }

    fn remove(&mut self, addr: &SocketAddr) -> Option<Slot> {
        let e = self.map.remove(addr)?;
        self.order.remove(&e.tick);
        Some(e.slot)
    }
}

/// What the transport's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    cfg: QuicConfig,
    v4: Option<Endpoint>,
    v6: Option<Endpoint>,
    cache: Mutex<Cache>,
    /// Incoming connections per source (IPv4 address, IPv6 /64).
    per_source: Mutex<HashMap<IpAddr, usize>>,
    handshakes_in_progress: AtomicUsize,
    /// Replaced connections inside their grace, oldest first.
    replaced: Mutex<VecDeque<Connection>>,
    tx: mpsc::Sender<Inbound>,
    counters: Counters,
    /// `DHT_QUIC_TRACE` set: lost connections and the final counters go to stderr
    /// (`silent.rs`), for measurements of processes that log nothing else.
    trace: bool,
}

/// A [`Transport`] over QUIC: one quinn endpoint per address family, each both
/// client and server, with peers authenticated by their ed25519 keys.
#[derive(Debug)]
pub struct QuicTransport {
    shared: Arc<Shared>,
    local: Vec<SocketAddr>,
    public_key: [u8; 32],
    rx: tokio::sync::Mutex<mpsc::Receiver<Inbound>>,
}

impl QuicTransport {
    /// Binds one endpoint per address in `addrs` (at most one IPv4 and one IPv6
    /// address, at least one; an IPv6 endpoint is IPv6-only, as BEP 32 keeps the
    /// families apart), presenting a certificate for `key`.
    ///
    /// Errors: `InvalidInput` for an empty list or two addresses of one family or a
    /// config quinn cannot use, an error if no tokio runtime is running, and any
    /// error from the OS.
    pub fn bind(addrs: &[SocketAddr], key: SigningKey, cfg: QuicConfig) -> io::Result<Self> {
        if addrs.is_empty() {
            return Err(invalid("QuicTransport::bind needs at least one address"));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "QuicTransport::bind must be called inside a tokio runtime",
            ));
        }
        let (client, server) = quinn_configs(&key, &cfg)?;
        let endpoint_config = reset::endpoint_config(&key);
        let (mut v4, mut v6) = (None, None);
        let mut local = Vec::new();
        for addr in addrs {
            let slot = if addr.is_ipv4() { &mut v4 } else { &mut v6 };
            if slot.is_some() {
                return Err(invalid(format!(
                    "QuicTransport::bind: a second address of one family ({addr})"
                )));
            }
            let mut endpoint = bind_endpoint(*addr, server.clone(), endpoint_config.clone())?;
            endpoint.set_default_client_config(client.clone());
            *slot = Some(endpoint);
        }
        for e in [&v4, &v6].into_iter().flatten() {
            local.push(e.local_addr()?);
        }
        let (tx, rx) = mpsc::channel(cfg.recv_queue.max(1));
        let shared = Arc::new(Shared {
            cfg,
            v4,
            v6,
            cache: Mutex::new(Cache::default()),
            per_source: Mutex::new(HashMap::new()),
            handshakes_in_progress: AtomicUsize::new(0),
            replaced: Mutex::new(VecDeque::new()),
            tx,
            counters: Counters::default(),
            trace: std::env::var_os("DHT_QUIC_TRACE").is_some(),
        });
        for endpoint in [&shared.v4, &shared.v6].into_iter().flatten() {
            tokio::spawn(accept_loop(shared.clone(), endpoint.clone()));
        }
        tokio::spawn(silent::watch(Arc::downgrade(&shared)));
        Ok(QuicTransport {
            shared,
            local,
            public_key: key.verifying_key().to_bytes(),
            rx: tokio::sync::Mutex::new(rx),
        })
    }

    /// This node's ed25519 public key, as peers see it.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The DHT id bound to [`QuicTransport::public_key`]: configure the node with
    /// `IdPolicy::PublicKey(public_key())`, which yields this id.
    pub fn node_id(&self) -> Id {
        dht_core::key_derived_id(&self.public_key)
    }

    /// The counters since bind.
    pub fn stats(&self) -> QuicStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        QuicStats {
            handshakes_out: get(&c.handshakes_out),
            handshakes_in: get(&c.handshakes_in),
            handshake_failures: get(&c.handshake_failures),
            incoming_refused: get(&c.incoming_refused),
            evicted: get(&c.evicted),
            connections: self.shared.cache().map.len() as u64,
            replaced: get(&c.replaced),
            replaced_open: self.shared.replaced_open() as u64,
            datagrams_sent: get(&c.datagrams_sent),
            streams_sent: get(&c.streams_sent),
            received: get(&c.received),
            send_dropped: get(&c.send_dropped),
            recv_dropped: get(&c.recv_dropped),
            peer_resets: get(&c.peer_resets),
            silent_closed: get(&c.silent_closed),
            resent: get(&c.resent),
        }
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        if self.shared.trace {
            eprintln!("dht-net-quic: {:?}", self.stats());
        }
        // Ends the accept loops and every connection task, which hold the endpoints.
        for e in [&self.shared.v4, &self.shared.v6].into_iter().flatten() {
            e.close(VarInt::from_u32(0), b"shutdown");
        }
    }
}

impl Transport for QuicTransport {
    /// The bound addresses, IPv4 first, with ports chosen by the OS filled in.
    fn local_addrs(&self) -> Vec<SocketAddr> {
        self.local.clone()
    }

    /// Queues each message on its peer's connection, opening one if needed. Never
    /// waits for a handshake or a stream: those run in tasks. Messages that cannot
    /// be sent are dropped and counted ([`QuicStats::send_dropped`]).
    async fn send_batch(&self, batch: &[OutDatagram<'_>]) -> io::Result<()> {
        for d in batch {
            self.shared.send(d.to, d.payload);
        }
        Ok(())
    }

    /// Waits for at least one message, then fills as many slots as are queued.
    /// Every filled slot has `peer_key` set to the sender's verified key.
    async fn recv_batch(&self, slots: &mut [RecvSlot]) -> io::Result<usize> {
        if slots.is_empty() {
            return Ok(0);
        }
        let mut rx = self.rx.lock().await;
        let mut filled = 0;
        while filled < slots.len() {
            let msg = if filled == 0 {
                match rx.recv().await {
                    Some(m) => m,
                    // `Shared` holds a sender for as long as `self` lives.
                    None => return Err(io::Error::other("QUIC transport closed")),
                }
            } else {
                match rx.try_recv() {
                    Ok(m) => m,
                    Err(_) => break,
                }
            };
            let slot = &mut slots[filled];
            let Some(buf) = slot.buf.get_mut(..msg.bytes.len()) else {
                bump(&self.shared.counters.recv_dropped);
                continue;
            };
            buf.copy_from_slice(&msg.bytes);
            slot.len = msg.bytes.len();
            slot.from = msg.from;
            slot.peer_key = Some(msg.key);
            filled += 1;
        }
        Ok(filled)
    }
}

impl Shared {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        // A panic while holding the lock cannot leave the cache inconsistent in a
        // way that matters more than losing the transport: keep going.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn endpoint_for(&self, addr: &SocketAddr) -> Option<&Endpoint> {
        if addr.is_ipv4() {
            self.v4.as_ref()
        } else {
            self.v6.as_ref()
        }
    }

    fn send(self: &Arc<Self>, to: SocketAddr, payload: &[u8]) {
        if payload.len() >= MAX_MESSAGE_LEN || self.endpoint_for(&to).is_none() {
            tracing::debug!(%to, len = payload.len(), "message too large or no endpoint; dropped");
            bump(&self.counters.send_dropped);
            return;
        }
        let payload = Bytes::copy_from_slice(payload);
        let mut cache = self.cache();
        let ready = match cache.map.get_mut(&to) {
            Some(Entry {
                slot: Slot::Ready(conn),
                silence,
                ..
            }) if conn.close_reason().is_none() => {
                let now = Instant::now();
                silence.sent(conn, payload.clone(), now, self.cfg.pending_per_peer);
                Some(conn.clone())
            }
            Some(Entry {
                slot: Slot::Connecting(queue),
                ..
            }) => {
                if queue.len() < self.cfg.pending_per_peer {
                    queue.push(payload);
                } else {
                    bump(&self.counters.send_dropped);
                }
                return;
            }
            _ => None,
        };
        if let Some(conn) = ready {
            cache.touch(&to);
            drop(cache);
            self.send_on(&conn, payload);
            return;
        }
        let evicted = cache.insert(
            to,
            Slot::Connecting(vec![payload]),
            self.cfg.max_connections,
        );
        drop(cache);
        self.close_evicted(evicted, &to);
        tokio::spawn(connect(self.clone(), to));
    }

    fn close_evicted(&self, evicted: Vec<Slot>, keep: &SocketAddr) {
        for slot in evicted {
            match slot {
                Slot::Ready(conn) if conn.remote_address() != *keep => {
                    bump(&self.counters.evicted);
                    conn.close(VarInt::from_u32(0), b"evicted");
                }
                Slot::Ready(_) => {}
                Slot::Connecting(queue) => {
                    bump(&self.counters.evicted);
                    self.counters
                        .send_dropped
                        .fetch_add(queue.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }

    /// Sends one message on an established connection: a datagram if it fits,
    /// else a stream of its own (written in a task, so nothing here waits).
    fn send_on(&self, conn: &Connection, payload: Bytes) {
        let fits = conn
            .max_datagram_size()
            .is_some_and(|max| payload.len() <= max);
        if fits && !self.cfg.force_streams {
            match conn.send_datagram(payload) {
                Ok(()) => bump(&self.counters.datagrams_sent),
                Err(e) => {
                    tracing::debug!(to = %conn.remote_address(), error = %e, "datagram not sent");
                    bump(&self.counters.send_dropped);
                }
            }
            return;
        }
        bump(&self.counters.streams_sent);
        let conn = conn.clone();
        let timeout = self.cfg.handshake_timeout;
        tokio::spawn(async move {
            let write = async {
                let mut stream = conn.open_uni().await.map_err(io::Error::other)?;
                stream.write_all(&payload).await.map_err(io::Error::other)?;
                stream.finish().map_err(io::Error::other)
            };
            // A peer that grants no stream credit must not pin this task forever.
            match tokio::time::timeout(timeout, write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(to = %conn.remote_address(), error = %e, "stream send failed")
                }
                Err(_) => tracing::debug!(to = %conn.remote_address(), "stream send timed out"),
            }
        });
    }

    /// Files a connection whose handshake just completed, and sends what waited
    /// for it. The newest handshake wins the cache entry: a peer that restarted at the
    /// same address (a new process, often a new key) is only reachable on the new
    /// connection, while the old one would swallow replies until it idled out. The
    /// replaced connection is closed once [`QuicConfig::replaced_grace`] passes with
    /// nothing received on it, not at once: when both ends opened at once it is alive,
    /// may carry replies in flight, and may be the one the peer kept; and not at its
    /// idle timeout either, since a peer reconnecting from one address would otherwise
    /// hold a connection of ours per reconnect.
    fn established(&self, conn: &Connection) {
        let to = conn.remote_address();
        let mut cache = self.cache();
        let (queued, mut evicted) = match cache.map.get_mut(&to).map(|e| &mut e.slot) {
            Some(Slot::Connecting(queue)) => {
                let queued = std::mem::take(queue);
                cache.touch(&to);
                if let Some(e) = cache.map.get_mut(&to) {
                    e.slot = Slot::Ready(conn.clone());
                }
                (queued, Vec::new())
            }
            _ => (
                Vec::new(),
                cache.insert(to, Slot::Ready(conn.clone()), self.cfg.max_connections),
            ),
        };
        drop(cache);
        let replaced = evicted.iter().position(|slot| {
            matches!(slot, Slot::Ready(old) if old.remote_address() == to && old.close_reason().is_none())
        });
        if let Some(i) = replaced {
            if let Slot::Ready(old) = evicted.swap_remove(i) {
                self.retire(old);
            }
        }
        self.close_evicted(evicted, &to);
        for payload in queued {
            self.send_on(conn, payload);
        }
    }

    /// Drops `conn`'s cache entry once it has closed (unless another replaced it), and
    /// returns the messages sent on it since it last received anything.
    fn forget(&self, conn: &Connection) -> Vec<Bytes> {
        let to = conn.remote_address();
        let mut cache = self.cache();
        match cache.map.get_mut(&to) {
            Some(Entry {
                slot: Slot::Ready(c),
                silence,
                ..
            }) if c.stable_id() == conn.stable_id() => {
                let unheard = silence.take_unheard();
                cache.remove(&to);
                unheard
            }
            _ => Vec::new(),
        }
    }

    fn deliver(&self, from: SocketAddr, key: [u8; 32], bytes: Bytes) {
        if bytes.len() >= MAX_MESSAGE_LEN {
            bump(&self.counters.recv_dropped);
            return;
        }
        match self.tx.try_send(Inbound { from, key, bytes }) {
            Ok(()) => bump(&self.counters.received),
            Err(_) => bump(&self.counters.recv_dropped),
        }
    }

    fn handshake_failed(&self, to: SocketAddr) {
        bump(&self.counters.handshake_failures);
        let mut cache = self.cache();
        if let Some(Slot::Connecting(_)) = cache.map.get(&to).map(|e| &e.slot) {
            if let Some(Slot::Connecting(queue)) = cache.remove(&to) {
                self.counters
                    .send_dropped
                    .fetch_add(queue.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

/// Opens a connection to `to` for the messages queued in its cache entry.
async fn connect(shared: Arc<Shared>, to: SocketAddr) {
    let Some(endpoint) = shared.endpoint_for(&to) else {
        return;
    };
    let attempt = async {
        let connecting = endpoint
            .connect(to, identity::SERVER_NAME)
            .map_err(io::Error::other)?;
        connecting.await.map_err(io::Error::other)
    };
    let conn = match tokio::time::timeout(shared.cfg.handshake_timeout, attempt).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(%to, error = %e, "handshake failed");
            shared.handshake_failed(to);
            return;
        }
        Err(_) => {
            tracing::debug!(%to, "handshake timed out");
            shared.handshake_failed(to);
            return;
        }
    };
    let Some(key) = peer_key(&conn) else {
        // The verifier accepted the certificate, so this cannot happen; refuse anyway.
        conn.close(VarInt::from_u32(1), b"no ed25519 key");
        shared.handshake_failed(to);
        return;
    };
    bump(&shared.counters.handshakes_out);
    shared.established(&conn);
    read_loop(&shared, &conn, key).await;
}

/// Takes incoming connections on one endpoint, within the flood bounds.
async fn accept_loop(shared: Arc<Shared>, endpoint: Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        let busy =
            shared.handshakes_in_progress.load(Ordering::Relaxed) >= shared.cfg.max_handshakes;
        if busy {
            bump(&shared.counters.incoming_refused);
            // A retry costs us no state and makes a spoofed source drop out.
            if !incoming.remote_address_validated() && incoming.may_retry() {
                let _ = incoming.retry();
            } else {
                incoming.refuse();
            }
            continue;
        }
        let Some(source) = SourceGuard::acquire(&shared, incoming.remote_address().ip()) else {
            bump(&shared.counters.incoming_refused);
            incoming.refuse();
            continue;
        };
        tokio::spawn(handle_incoming(shared.clone(), incoming, source));
    }
}

async fn handle_incoming(shared: Arc<Shared>, incoming: Incoming, source: SourceGuard) {
    let from = incoming.remote_address();
    shared
        .handshakes_in_progress
        .fetch_add(1, Ordering::Relaxed);
    let handshake = async {
        let connecting = incoming.accept().map_err(io::Error::other)?;
        connecting.await.map_err(io::Error::other)
    };
    let result = tokio::time::timeout(shared.cfg.handshake_timeout, handshake).await;
    shared
        .handshakes_in_progress
        .fetch_sub(1, Ordering::Relaxed);
    let conn = match result {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(%from, error = %e, "incoming handshake failed");
            bump(&shared.counters.handshake_failures);
            return;
        }
        Err(_) => {
            bump(&shared.counters.handshake_failures);
            return;
        }
    };
    let Some(key) = peer_key(&conn) else {
        conn.close(VarInt::from_u32(1), b"no ed25519 key");
        bump(&shared.counters.handshake_failures);
        return;
    };
    bump(&shared.counters.handshakes_in);
    shared.established(&conn);
    read_loop(&shared, &conn, key).await;
    drop(source);
}

/// Delivers everything `conn` receives, datagrams and streams, until it closes.
async fn read_loop(shared: &Arc<Shared>, conn: &Connection, key: [u8; 32]) {
    let from = conn.remote_address();
    let datagrams = async {
        while let Ok(bytes) = conn.read_datagram().await {
            shared.deliver(from, key, bytes);
        }
    };
    let streams = async {
        while let Ok(mut stream) = conn.accept_uni().await {
            // Streams are read one at a time: a peer that dawdles only delays its own
            // messages, and quinn caps how many it may open.
            let read = stream.read_to_end(MAX_MESSAGE_LEN - 1);
            match tokio::time::timeout(shared.cfg.handshake_timeout, read).await {
                Ok(Ok(bytes)) => shared.deliver(from, key, Bytes::from(bytes)),
                Ok(Err(e)) => {
                    tracing::debug!(%from, error = %e, "stream dropped");
                    bump(&shared.counters.recv_dropped);
                    let _ = stream.stop(VarInt::from_u32(0));
                }
                Err(_) => {
                    bump(&shared.counters.recv_dropped);
                    let _ = stream.stop(VarInt::from_u32(0));
                }
            }
        }
    };
    tokio::join!(datagrams, streams);
    let unheard = shared.forget(conn);
    shared.resend_if_lost(conn, unheard);
}

/// The verified ed25519 key of the peer of an established connection.
fn peer_key(conn: &Connection) -> Option<[u8; 32]> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    identity::ed25519_key_of(certs.first()?).ok()
}
