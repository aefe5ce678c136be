//! # dht-node: a running BitTorrent Mainline DHT node
//!
//! [`dht_core`] is a sans-IO state machine; this crate gives it a clock, a socket and
//! an application-facing handle. One [`Runtime`], generic over the [`Transport`] and
//! the [`Store`], owns the core and drives it from a single tokio task: datagrams and
//! timer expiries go in, what the core wants sent goes out in batches, and finished
//! queries complete the futures of the [`Dht`] handle that asked for them.
//!
//! The handle keeps alive what the application publishes through it: immutable and
//! mutable items are put again every [`ITEM_REPUBLISH`] (nodes drop them after two
//! hours) and announces are repeated every [`ANNOUNCE_REPUBLISH`] (peers expire after
//! 30 minutes), until [`Dht::stop_republishing`] is called or the node shuts down.
//!
//! Features choose the backends compiled in: `udp` ([`dht_net_udp::UdpTransport`]) and
//! `mem` ([`dht_store_mem::MemStore`]) by default. With both, [`DhtBuilder::spawn`]
//! binds UDP sockets and starts a node in one call. The `quic` feature adds the
//! `dht-node --transport quic` backend (`dht_net_quic::QuicTransport`); a library
//! user passes any transport and store to [`DhtBuilder::spawn_with`], with
//! [`DhtBuilder::id_policy`] set to the key-derived id for QUIC.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dht_node::{bencode_bytes, Dht};
//!
//! let dht = Dht::builder()
//!     .listen("0.0.0.0:0".parse()?)
//!     .spawn()?;
//! dht.bootstrap(&["192.0.2.1:6881".parse()?]).await?;
//! let put = dht.put_immutable(bencode_bytes(b"hello")).await?;
//! let got = dht.get_immutable(put.value.target).await?;
//! assert_eq!(got.value.as_deref(), Some(&b"5:hello"[..]));
//! dht.shutdown().await?;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dht_core::MutableItem;
use dht_core::krpc::{code, ErrorBody};
use dht_core::{OutDatagram, RecvSlot, Transport};
use dht_core::{
    Config, Event, Family, Id, IdPolicy, Node, NodeInfo, NodeStats, Outcome, QueryDone, QueryId,
    QueryStats, Request, RequestError, Store,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TokioInstant;

pub use dht_core;

/// How often items published through a [`Dht`] are put again: well inside the two
/// hours after which BEP 44 lets nodes drop them.
pub const ITEM_REPUBLISH: Duration = Duration::from_secs(50 * 60);
/// How often announces made through a [`Dht`] are repeated: peers expire after 30 minutes.
pub const ANNOUNCE_REPUBLISH: Duration = Duration::from_secs(15 * 60);
/// How often the core's wall-clock anchor is refreshed, so that store deadlines
/// follow the system clock even if the monotonic clock drifts from it.
const WALL_CLOCK_EVERY: Duration = Duration::from_secs(60);
/// Datagrams read per wake-up.
const RECV_BATCH: usize = 32;
/// Commands that may wait for the node task before callers are slowed down.
const COMMAND_QUEUE: usize = 256;

/// The public Mainline bootstrap routers, as real clients use them.
pub const PUBLIC_ROUTERS: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];

/// Why a [`Dht`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node task has stopped (after [`Dht::shutdown`], or it failed).
    #[error("the DHT node has shut down")]
    Shutdown,
    /// No node answered, or no node accepted a write and none refused it.
    #[error("no node answered")]
    NoResponse,
    /// BEP 44 error 205: the bencoded value is over 1000 bytes.
    #[error("value too big (over 1000 bytes bencoded; KRPC error 205)")]
    ValueTooBig,
    /// BEP 44 error 206: the signature does not verify.
    #[error("invalid signature (KRPC error 206)")]
    InvalidSignature,
    /// BEP 44 error 207: the salt is over 64 bytes.
    #[error("salt too big (over 64 bytes; KRPC error 207)")]
    SaltTooBig,
    /// BEP 44 error 301: the stored seq is not the `cas` given.
    #[error("compare-and-swap mismatch: the stored seq is not the expected one (KRPC error 301)")]
    CasMismatch,
    /// BEP 44 error 302: the stored seq is higher (or equal with another value).
    #[error("sequence number too low: a newer item is stored (KRPC error 302)")]
    SeqTooLow,
    /// Every node that answered refused with another KRPC error.
    #[error("refused by every node that answered: KRPC error {code} ({message})")]
    Refused {
        /// The most common error code among the refusals.
        code: i64,
        /// Its message, as the first node that sent it put it.
        message: String,
    },
    /// Refused before anything was sent: the value is not bencode.
    #[error("invalid request: {0}")]
    Invalid(RequestError),
    /// A socket or other I/O failure.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Error {
        match e {
            RequestError::ValueTooBig { .. } => Error::ValueTooBig,
            RequestError::SaltTooBig { .. } => Error::SaltTooBig,
            e => Error::Invalid(e),
        }
    }
}

impl Error {
    /// The typed error for a KRPC error body received for a write.
    pub fn from_krpc(e: &ErrorBody) -> Error {
        match e.code {
            code::VALUE_TOO_BIG => Error::ValueTooBig,
            code::INVALID_SIGNATURE => Error::InvalidSignature,
            code::SALT_TOO_BIG => Error::SaltTooBig,
            code::CAS_MISMATCH => Error::CasMismatch,
            code::SEQ_TOO_LOW => Error::SeqTooLow,
            c => Error::Refused {
                code: c,
                message: e.message.clone(),
            },
        }
    }
}

/// A result and the figures of the query that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    /// What was found or done.
    pub value: T,
    /// Hops, requests, timeouts and duration of the query.
    pub stats: QueryStats,
}

/// Where a put or an announce landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The item target or info_hash.
    pub target: Id,
    /// Nodes that acknowledged the write (never empty in a successful answer).
    pub stored_at: Vec<SocketAddr>,
    /// Nodes that refused it, with their KRPC error.
    pub refused: Vec<(SocketAddr, ErrorBody)>,
}

/// What a `get_peers` lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers {
    /// Peers announced for the info_hash.
    pub peers: Vec<SocketAddr>,
    /// The closest nodes that answered, closest first.
    pub closest: Vec<NodeInfo>,
}

/// What a BEP 51 sampling found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Samples {
    /// Distinct info_hashes sampled.
    pub samples: Vec<Id>,
    /// The largest number of info_hashes one node said it holds.
    pub num_max: i64,
}

/// A snapshot of the node's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingInfo {
    /// Our node id.
    pub id: Id,
    /// The addresses the transport is bound to.
    pub local_addrs: Vec<SocketAddr>,
    /// Nodes in the IPv4 routing table.
    pub nodes_v4: usize,
    /// Nodes in the IPv6 routing table.
    pub nodes_v6: usize,
    /// The contacts of both tables.
    pub nodes: Vec<NodeInfo>,
    /// Items and announces the handle keeps republishing.
    pub republishing: usize,
    /// Traffic counters.
    pub stats: NodeStats,
}

/// A bencoded byte string: `<len>:<bytes>`, the form `put VALUE` stores.
pub fn bencode_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut v = format!("{}:", bytes.len()).into_bytes();
    v.extend_from_slice(bytes);
    v
}

/// The bytes of a bencoded byte string, or `None` if `bencoded` is anything else.
pub fn bencoded_string(bencoded: &[u8]) -> Option<&[u8]> {
    let colon = bencoded.iter().position(|&b| b == b':')?;
    let digits = &bencoded[..colon];
    // Bencode forbids leading zeros and signs: "0:" is the only length starting with 0.
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return None;
    }
    let len: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let rest = &bencoded[colon + 1..];
    (rest.len() == len).then_some(rest)
}

/// 32 bytes from the operating system: the core's tokens and transaction ids must
/// not be predictable by peers.
pub fn os_seed() -> io::Result<[u8; 32]> {
    use rand_core::RngCore;
    let mut seed = [0u8; 32];
    rand_core::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| io::Error::other(format!("no randomness from the OS: {e}")))?;
    Ok(seed)
}

/// Resolves `host:port` names (DNS through tokio); names that fail are logged and skipped.
pub async fn resolve(names: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for name in names {
        match tokio::net::lookup_host(name.as_str()).await {
            Ok(addrs) => {
                for a in addrs {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
            Err(e) => tracing::warn!(name = %name, error = %e, "cannot resolve bootstrap node"),
        }
    }
    out
}

/// What to republish if `request` (a write) succeeds, and how often.
fn republish_of(request: &Request, every: RepublishIntervals) -> Option<(Id, Request, Duration)> {
    let target = request.write_target()?;
    let (again, every) = match request {
        Request::AnnouncePeer { .. } => (request.clone(), every.announces),
        // A republish re-puts the same seq and value, which refreshes the item;
        // a cas would fail once the first put has landed.
        Request::PutMutable { item, .. } => (
            Request::PutMutable {
                item: item.clone(),
                cas: None,
            },
            every.items,
        ),
        _ => (request.clone(), every.items),
    };
    Some((target, again, every))
}

/// How often the handle republishes what the application published; `None` in
/// [`DhtBuilder::republish`] turns republishing off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepublishIntervals {
    /// BEP 44 items (default [`ITEM_REPUBLISH`]).
    pub items: Duration,
    /// Announces (default [`ANNOUNCE_REPUBLISH`]).
    pub announces: Duration,
}

impl Default for RepublishIntervals {
    fn default() -> Self {
        RepublishIntervals {
            items: ITEM_REPUBLISH,
            announces: ANNOUNCE_REPUBLISH,
        }
    }
}

#[derive(Debug)]
enum Command {
    Query {
        request: Request,
        reply: oneshot::Sender<Result<QueryDone, RequestError>>,
    },
    Info(oneshot::Sender<RoutingInfo>),
    StopRepublishing(Id, oneshot::Sender<bool>),
    Shutdown,
}

#[derive(Debug)]
struct Waiter {
    reply: Option<oneshot::Sender<Result<QueryDone, RequestError>>>,
    republish: Option<(Id, Request, Duration)>,
}

#[derive(Debug)]
struct Republish {
    request: Request,
    every: Duration,
    next: std::time::Instant,
}

/// How a node is set up before it starts.
#[derive(Debug, Clone)]
pub struct DhtBuilder {
    config: Config,
    listen: Vec<SocketAddr>,
    republish: Option<RepublishIntervals>,
}

impl Default for DhtBuilder {
    fn default() -> Self {
        DhtBuilder {
            config: Config::default(),
            listen: Vec::new(),
            republish: Some(RepublishIntervals::default()),
        }
    }
}

impl DhtBuilder {
    /// Replaces the core configuration. Its `seed` is ignored: [`DhtBuilder::spawn_with`]
    /// always seeds the node from the operating system.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adds an address to bind (at most one IPv4 and one IPv6). Without any,
    /// [`DhtBuilder::spawn`] binds `0.0.0.0:0`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen.push(addr);
        self
    }

    /// How the node id is chosen (default random). A node on a data dir keeps its
    /// id with [`IdPolicy::Fixed`]; over QUIC it must be [`IdPolicy::PublicKey`] of
    /// the transport's key, or peers drop its messages.
    pub fn id_policy(mut self, policy: IdPolicy) -> Self {
        self.config.id_policy = policy;
        self
    }

    /// Bucket size K (default 8).
    pub fn k(mut self, k: usize) -> Self {
        self.config.k = k.max(1);
        self
    }

    /// BEP 43: a read-only node answers no queries; for clients behind NAT and one-shot tools.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.config.read_only = read_only;
        self
    }

    /// How long to wait for each reply (default 2 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// How often successful puts and announces are republished (default:
    /// [`RepublishIntervals::default`]); `None` never republishes, as one-shot tools want.
    pub fn republish(mut self, republish: Option<RepublishIntervals>) -> Self {
        self.republish = republish;
        self
    }

    /// Starts a node over any transport and store on the current tokio runtime.
    pub fn spawn_with<T, S>(self, transport: T, store: S) -> io::Result<Dht>
    where
        T: Transport,
        S: Store + Send + 'static,
    {
        let mut config = self.config;
        // Tokens and transaction ids must be unpredictable: always from the OS.
        config.seed = Some(os_seed()?);
        let (runtime, dht) = Runtime::new(transport, store, config, self.republish)?;
        tokio::spawn(runtime.run());
        Ok(dht)
    }

    /// Binds UDP sockets on the listen addresses and starts a node with an in-memory
    /// store. Must be called inside a tokio runtime.
    #[cfg(all(feature = "udp", feature = "mem"))]
    pub fn spawn(self) -> io::Result<Dht> {
        let listen = if self.listen.is_empty() {
            vec![SocketAddr::from(([0, 0, 0, 0], 0))]
        } else {
            self.listen.clone()
        };
        let transport = dht_net_udp::UdpTransport::bind(&listen)?;
        self.spawn_with(transport, dht_store_mem::MemStore::new())
    }
}

/// A handle to a running node. Cheap to clone; every clone talks to the same node.
///
/// Each method sends one command to the node task and waits for its answer. Lookups
/// that find nothing return `Ok` with an empty or `None` value; writes that no node
/// accepted return an [`Error`].
///
/// ```no_run
/// # async fn demo() -> Result<(), dht_node::Error> {
/// use dht_node::Dht;
///
/// let dht = Dht::builder().read_only(true).spawn()?;
/// dht.bootstrap(&["127.0.0.1:6881".parse().unwrap()]).await?;
/// let info_hash = dht_node::dht_core::Id([7; 20]);
/// dht.announce_peer(info_hash, Some(51413)).await?;
/// for peer in dht.get_peers(info_hash).await?.value.peers {
///     println!("{peer}");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Dht {
    tx: mpsc::Sender<Command>,
    id: Id,
    local_addrs: Arc<Vec<SocketAddr>>,
}

impl Dht {
    /// A builder for a node.
    ///
    /// ```
    /// let builder = dht_node::Dht::builder().k(8).read_only(false);
    /// # let _ = builder;
    /// ```
    pub fn builder() -> DhtBuilder {
        DhtBuilder::default()
    }

    /// Our node id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The addresses the node is bound to (ports chosen by the OS filled in).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    async fn query(&self, request: Request) -> Result<QueryDone, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Query { request, reply })
            .await
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)?.map_err(Error::from)
    }

    /// Joins the DHT through `addrs` (routers or known nodes) by looking up our own id.
    /// Returns the closest nodes that answered; [`Error::NoResponse`] if none did.
    /// The addresses are also kept as seeds for when the routing table empties.
    pub async fn bootstrap(&self, addrs: &[SocketAddr]) -> Result<Answer<Vec<NodeInfo>>, Error> {
        let done = self.query(Request::Bootstrap {
                seeds: addrs.to_vec(),
            }).await?;
        match done.outcome {
            Outcome::Nodes { closest } if !closest.is_empty() => Ok(Answer {
                value: closest,
                stats: done.stats,
            }),
            _ => Err(Error::NoResponse),
        }
    }

    /// Iterative `find_node`: the closest nodes to `target` that answered.
    pub async fn find_node(&self, target: Id) -> Result<Answer<Vec<NodeInfo>>, Error> {
        let done = self.query(Request::FindNode { target }).await?;
        match done.outcome {
            Outcome::Nodes { closest } => Ok(Answer {
                value: closest,
                stats: done.stats,
            }),
            _ => Err(Error::NoResponse),
        }
    }

    /// Iterative `get_peers`: peers announced for `info_hash`.
    pub async fn get_peers(&self, info_hash: Id) -> Result<Answer<Peers>, Error> {
        let done = self.query(Request::GetPeers { info_hash }).await?;
        match done.outcome {
            Outcome::Peers { peers, closest } => Ok(Answer {
                value: Peers { peers, closest },
                stats: done.stats,
            }),
            _ => Err(Error::NoResponse),
        }
    }

    /// Announces that we accept BitTorrent connections for `info_hash` on `port`
    /// (`None`: the UDP source port, BEP 5's `implied_port`). Repeated every
    /// [`ANNOUNCE_REPUBLISH`] until [`Dht::stop_republishing`].
    pub async fn announce_peer(
        &self,
        info_hash: Id,
        port: Option<u16>,
    ) -> Result<Answer<Stored>, Error> {
        stored(self.query(Request::AnnouncePeer { info_hash, port }).await?)
    }

    /// BEP 44 immutable get: the bencoded value stored under `target`, checked
    /// against it, or `None`.
    pub async fn get_immutable(&self, target: Id) -> Result<Answer<Option<Vec<u8>>>, Error> {
        let done = self.query(Request::GetImmutable { target }).await?;
        match done.outcome {
            Outcome::Immutable { value } => Ok(Answer {
                value,
                stats: done.stats,
            }),
            _ => Err(Error::NoResponse),
        }
    }

    /// BEP 44 immutable put of a bencoded value (see [`bencode_bytes`]); the target is
    /// its SHA-1. Republished every [`ITEM_REPUBLISH`] until [`Dht::stop_republishing`].
    pub async fn put_immutable(&self, bencoded_value: Vec<u8>) -> Result<Answer<Stored>, Error> {
        stored(self.query(Request::PutImmutable {
            value: bencoded_value,
        }).await?)
    }

    /// BEP 44 mutable get: the valid item of `key` and `salt` with the highest seq
    /// (above `min_seq` if given), or `None`. Signatures are checked.
    pub async fn get_mutable(
        &self,
        key: [u8; 32],
        salt: &[u8],
        min_seq: Option<i64>,
    ) -> Result<Answer<Option<MutableItem>>, Error> {
        let done = self
            .query(Request::GetMutable {
                key,
                salt: salt.to_vec(),
                min_seq,
            })
            .await?;
        match done.outcome {
            Outcome::Mutable { item } => Ok(Answer {
                value: item,
                stats: done.stats,
            }),
            _ => Err(Error::NoResponse),
        }
    }

    /// BEP 44 mutable put of a signed item (see [`MutableItem::sign`]). With `cas`,
    /// nodes only accept it if their stored seq equals it. Refusals come back typed
    /// ([`Error::CasMismatch`], [`Error::SeqTooLow`], ...) when every node that
    /// answered refused. Republished like immutable items.
    ///
    /// ```no_run
    /// # async fn demo(dht: dht_node::Dht) -> Result<(), dht_node::Error> {
    /// use dht_node::dht_core::MutableItem;
    ///
    /// let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    /// let item = MutableItem::sign(&key, b"salt", 1, &dht_node::bencode_bytes(b"v1"));
    /// let put = dht.put_mutable(item, None).await?;
    /// println!("stored under {}", put.value.target);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put_mutable(
        &self,
        item: MutableItem,
        cas: Option<i64>,
    ) -> Result<Answer<Stored>, Error> {
        stored(self.query(Request::PutMutable { item, cas }).await?)
    }

    /// BEP 51: info_hash samples from nodes near `target`.
    pub async fn sample_infohashes(&self, target: Id) -> Result<Answer<Samples>, Error> {
        let done = self.query(Request::SampleInfohashes { target }).await?;
        match done.outcome {
            Outcome::Samples { samples, num_max } => Ok(Answer {
                value: Samples { samples, num_max },
                stats: done.stats,
            }),
            _ => Err(Error::NoResponse),
        }
    }

    /// Pings `addr`: the node that answered, or [`Error::NoResponse`].
    pub async fn ping(&self, addr: SocketAddr) -> Result<Answer<NodeInfo>, Error> {
        let done = self.query(Request::Ping { addr }).await?;
        match done.outcome {
            Outcome::Ping { node: Some(node) } => Ok(Answer {
                value: node,
                stats: done.stats,
            }),
            _ => Err(Error::NoResponse),
        }
    }

    /// The node's id, addresses, routing-table sizes and counters.
    pub async fn routing_table(&self) -> Result<RoutingInfo, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Info(reply))
            .await
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// Stops republishing the item or announce under `target` (an item target or an
    /// info_hash). Returns whether it was being republished.
    pub async fn stop_republishing(&self, target: Id) -> Result<bool, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::StopRepublishing(target, reply))
            .await
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// Stops the node: queries in progress fail with [`Error::Shutdown`], the routing
    /// table is saved to the store, and the sockets are closed. Waits until done.
    pub async fn shutdown(&self) -> Result<(), Error> {
        // The task drops its receiver when it ends, which closes the channel: waiting
        // for that tells us it is gone, whoever asked first.
        let _ = self.tx.send(Command::Shutdown).await;
        self.tx.closed().await;
        Ok(())
    }
}

fn stored(done: QueryDone) -> Result<Answer<Stored>, Error> {
    let Outcome::Stored {
        target,
        stored_at,
        errors,
    } = done.outcome
    else {
        return Err(Error::NoResponse);
    };
    if !stored_at.is_empty() {
        return Ok(Answer {
            value: Stored {
                target,
                stored_at,
                refused: errors,
            },
            stats: done.stats,
        });
    }
    Err(most_common_refusal(&errors)
        .map(Error::from_krpc)
        .unwrap_or(Error::NoResponse))
}

/// The refusal most nodes agreed on (the lowest code on a tie, so the answer does
/// not depend on reply order).
fn most_common_refusal(errors: &[(SocketAddr, ErrorBody)]) -> Option<&ErrorBody> {
    let mut counts: BTreeMap<i64, (usize, &ErrorBody)> = BTreeMap::new();
    for (_, e) in errors {
        counts.entry(e.code).or_insert((0, e)).0 += 1;
    }
    let best = counts.values().map(|(n, _)| *n).max()?;
    counts.values().find(|(n, _)| *n == best).map(|(_, e)| *e)
}

/// The node task: owns the core and the transport and serves a [`Dht`]'s commands.
///
/// Usually started by [`DhtBuilder::spawn_with`]; build one with [`Runtime::new`] to
/// run it on an executor of your choosing.
#[derive(Debug)]
pub struct Runtime<T: Transport, S: Store> {
    node: Node<S>,
    transport: T,
    rx: mpsc::Receiver<Command>,
    waiters: HashMap<QueryId, Waiter>,
    republished: BTreeMap<Id, Republish>,
    republish: Option<RepublishIntervals>,
    slots: Vec<RecvSlot>,
    next_wall_clock: std::time::Instant,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now() -> std::time::Instant {
    TokioInstant::now().into_std()
}

impl<T: Transport, S: Store> Runtime<T, S> {
    /// A runtime over `transport` and `store` and the handle that drives it.
    /// `config.seed` is used as given: seed it from the OS ([`os_seed`]).
    /// With `republish` `None`, nothing is republished.
    pub fn new(
        transport: T,
        store: S,
        config: Config,
        republish: Option<RepublishIntervals>,
    ) -> io::Result<(Runtime<T, S>, Dht)> {
        let t = now();
        let node = Node::new(config, store, t, unix_ms())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let dht = Dht {
            tx,
            id: node.id(),
            local_addrs: Arc::new(transport.local_addrs()),
        };
        let runtime = Runtime {
            node,
            transport,
            rx,
            waiters: HashMap::new(),
            republished: BTreeMap::new(),
            republish,
            slots: (0..RECV_BATCH).map(|_| RecvSlot::new()).collect(),
            next_wall_clock: t + WALL_CLOCK_EVERY,
        };
        Ok((runtime, dht))
    }

    /// Runs until [`Dht::shutdown`] or until every handle is dropped.
    pub async fn run(mut self) {
        enum Wake {
            Command(Option<Command>),
            Received(io::Result<usize>),
            Timer,
        }
        tracing::debug!(id = %self.node.id(), addrs = ?self.transport.local_addrs(), "node started");
        loop {
            self.flush().await;
            let deadline = self.next_deadline();
            let wake = tokio::select! {
                // Commands first: a shutdown must not wait behind a flood of datagrams.
                biased;
                c = self.rx.recv() => Wake::Command(c),
                r = self.transport.recv_batch(&mut self.slots) => Wake::Received(r),
                _ = tokio::time::sleep_until(TokioInstant::from_std(deadline)) => Wake::Timer,
            };
            match wake {
                Wake::Command(None) | Wake::Command(Some(Command::Shutdown)) => break,
                Wake::Command(Some(c)) => self.on_command(c),
                Wake::Received(Ok(n)) => {
                    let t = now();
                    for slot in &self.slots[..n] {
                        self.node.handle_datagram(
                            t,
                            slot.from,
                            slot.peer_key.as_ref(),
                            slot.payload(),
                        );
                    }
                }
                Wake::Received(Err(e)) => {
                    // A broken socket would spin this loop: back off a little.
                    tracing::warn!(error = %e, "receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Wake::Timer => self.on_timer(),
            }
        }
        self.node.save_routing(now());
        // A persistent store must hold the final snapshot and every acknowledged
        // write before the process exits, not whenever its background flush runs.
        if let Err(e) = self.node.store_mut().flush() {
            tracing::warn!(error = %e, "cannot flush the store at shutdown");
        }
        self.flush().await;
        // Closed only now: `Dht::shutdown` returns when it is, and by then what the
        // node kept must be saved.
        self.rx.close();
        tracing::debug!("node stopped");
    }

    fn next_deadline(&self) -> std::time::Instant {
        let mut d = self.next_wall_clock;
        if let Some(t) = self.node.poll_timeout() {
            d = d.min(t);
        }
        if let Some(r) = self.republished.values().map(|r| r.next).min() {
            d = d.min(r);
        }
        d
    }

    fn on_timer(&mut self) {
        let t = now();
        if t >= self.next_wall_clock {
            self.next_wall_clock = t + WALL_CLOCK_EVERY;
            self.node.handle_wall_clock(t, unix_ms());
        }
        self.node.handle_timeout(t);
        let due: Vec<Id> = self
            .republished
            .iter()
            .filter(|(_, r)| r.next <= t)
            .map(|(id, _)| *id)
            .collect();
        for target in due {
            let Some(r) = self.republished.get_mut(&target) else {
                continue;
            };
            r.next = t + r.every;
            let request = r.request.clone();
            tracing::debug!(%target, "republishing");
            let Ok(qid) = self.node.start(t, request) else {
                // Checked when it was first put; cannot be refused now.
                continue;
            };
            // Nobody waits for a republish; its outcome is only logged.
            self.waiters.insert(
                qid,
                Waiter {
                    reply: None,
                    republish: None,
                },
            );
        }
    }

    fn on_command(&mut self, c: Command) {
        let t = now();
        match c {
            Command::Query { request, reply } => {
                let republish = self
                    .republish
                    .and_then(|every| republish_of(&request, every));
                let qid = match self.node.start(t, request) {
                    Ok(qid) => qid,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                };
                self.waiters.insert(
                    qid,
                    Waiter {
                        reply: Some(reply),
                        republish,
                    },
                );
            }
            Command::Info(reply) => {
                let v4 = self.node.routing_table(Family::V4);
                let v6 = self.node.routing_table(Family::V6);
                let nodes = v4.entries().chain(v6.entries()).map(|e| e.node).collect();
                let _ = reply.send(RoutingInfo {
                    id: self.node.id(),
                    local_addrs: self.transport.local_addrs(),
                    nodes_v4: v4.len(),
                    nodes_v6: v6.len(),
                    nodes,
                    republishing: self.republished.len(),
                    stats: self.node.stats(),
                });
            }
            Command::StopRepublishing(target, reply) => {
                let _ = reply.send(self.republished.remove(&target).is_some());
            }
            // Handled by the loop.
            Command::Shutdown => {}
        }
    }

    /// Sends what the core queued and delivers finished queries.
    async fn flush(&mut self) {
        let mut out = Vec::new();
        while let Some(tx) = self.node.poll_transmit() {
            out.push(tx);
        }
        if !out.is_empty() {
            let batch: Vec<OutDatagram<'_>> = out
                .iter()
                .map(|t| OutDatagram {
                    to: t.to,
                    payload: &t.payload,
                })
                .collect();
            if let Err(e) = self.transport.send_batch(&batch).await {
                tracing::warn!(error = %e, "send failed");
            }
            drop(batch);
            for t in out {
                self.node.recycle(t.payload);
            }
        }
        while let Some(Event::QueryDone(done)) = self.node.poll_event() {
            let Some(waiter) = self.waiters.remove(&done.id) else {
                continue;
            };
            if let (Some((target, request, every)), Outcome::Stored { stored_at, .. }) =
                (waiter.republish, &done.outcome)
            {
                if !stored_at.is_empty() {
                    self.republished.insert(
                        target,
                        Republish {
                            request,
                            every,
                            next: now() + every,
                        },
                    );
                }
            }
            match waiter.reply {
                Some(reply) => {
                    let _ = reply.send(Ok(done));
                }
                None => tracing::debug!(outcome = ?done.outcome, "republish done"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bencoded_string_round_trip() {
        assert_eq!(bencode_bytes(b"hello"), b"5:hello");
        assert_eq!(bencoded_string(b"5:hello"), Some(&b"hello"[..]));
        assert_eq!(bencoded_string(b"0:"), Some(&b""[..]));
        assert_eq!(bencoded_string(b"i5e"), None);
        assert_eq!(bencoded_string(b"05:hello"), None);
        assert_eq!(bencoded_string(b"6:hello"), None);
        assert_eq!(bencoded_string(b"-1:"), None);
    }

    #[test]
    fn most_common_refusal_wins() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let e = |code| ErrorBody {
            code,
            message: String::new(),
        };
        let errors = vec![(a, e(302)), (a, e(301)), (a, e(302))];
        assert!(matches!(
            Error::from_krpc(most_common_refusal(&errors).unwrap()),
            Error::SeqTooLow
        ));
        assert!(most_common_refusal(&[]).is_none());
    }
}
