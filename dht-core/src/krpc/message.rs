//! The KRPC message types: the envelope ([`Message`]), its [`Body`], the queries'
//! methods and arguments, responses and errors, with their constructors.
//!
//! Every struct here but [`Want`] (BEP 32's two families, which is all there is) is
//! `#[non_exhaustive]` outside this crate, and so is each method's variant with
//! optional arguments: code elsewhere builds them with the
//! constructors (`Message::query`, `Method::get_peers(..).with_scrape(true)`,
//! `Response::new(id).with_nodes(..)`), so that a field a new BEP adds touches this
//! file and the codec, nothing that builds messages.

use std::net::SocketAddr;

use crate::bep33::ScrapeFilter;
use crate::bep44::Item;
use crate::id::{Id, NodeInfo};

/// A whole KRPC message: the envelope and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// `t`: transaction id, any length on receive; we send 4 bytes.
    pub transaction_id: Vec<u8>,
    /// `v`: client version, if present.
    pub version: Option<Vec<u8>>,
    /// `ro` = 1 (BEP 43): the sender is read-only.
    pub read_only: bool,
    /// `ip` (BEP 42): in a response, the address the responder saw the request come from.
    pub requester_ip: Option<SocketAddr>,
    /// `y` and its payload.
    pub body: Body,
}

/// `y`: query, response or error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `y` = `q`.
    Query(Query),
    /// `y` = `r`.
    Response(Response),
    /// `y` = `e`.
    Error(ErrorBody),
}

/// `want` (BEP 32): which address families the querier wants nodes of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Want {
    /// `n4` listed.
    pub v4: bool,
    /// `n6` listed.
    pub v6: bool,
}

impl Want {
    /// True when the query carried no `want` (answer in the request's family).
    pub fn is_empty(&self) -> bool {
        !self.v4 && !self.v6
    }
}

/// A query: the sender's id and the method with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Query {
    /// `a.id`: the querying node's id.
    pub id: Id,
    /// `q` and the rest of `a`.
    pub method: Method,
}

/// The methods this implementation knows, with their arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// `ping`.
    Ping,
    /// `find_node` {target, want?}.
    #[non_exhaustive]
    FindNode {
        /// `target`.
        target: Id,
        /// `want`.
        want: Want,
    },
    /// `get_peers` {info_hash, want?, scrape?, noseed?}.
    #[non_exhaustive]
    GetPeers {
        /// `info_hash`.
        info_hash: Id,
        /// `want`.
        want: Want,
        /// BEP 33 `scrape` = 1: return the `BFsd` / `BFpe` bloom filters.
        scrape: bool,
        /// BEP 33 `noseed` = 1: fill `values` with non-seeds first.
        noseed: bool,
    },
    /// `announce_peer` {info_hash, port, token, implied_port?}.
    #[non_exhaustive]
    AnnouncePeer {
        /// `info_hash`.
        info_hash: Id,
        /// `port` (ignored when `implied_port`).
        port: u16,
        /// `token` from an earlier get_peers.
        token: Vec<u8>,
        /// `implied_port` = 1: use the UDP source port.
        implied_port: bool,
        /// BEP 33 `seed` = 1: the announcer is a seed.
        seed: bool,
    },
    /// BEP 44 `get` {target, seq?, want?}.
    #[non_exhaustive]
    Get {
        /// `target`.
        target: Id,
        /// `seq`: only return v if the stored seq is greater.
        seq: Option<i64>,
        /// `want`.
        want: Want,
    },
    /// BEP 44 `put`.
    Put(PutArgs),
    /// BEP 51 `sample_infohashes` {target, want?}.
    #[non_exhaustive]
    SampleInfohashes {
        /// `target`.
        target: Id,
        /// `want`.
        want: Want,
    },
    /// Any other method name; answered with 204.
    Unknown {
        /// The `q` value.
        name: Vec<u8>,
    },
}

impl Method {
    /// The `q` string of this method.
    pub fn name(&self) -> &[u8] {
        match self {
            Method::Ping => b"ping",
            Method::FindNode { .. } => b"find_node",
            Method::GetPeers { .. } => b"get_peers",
            Method::AnnouncePeer { .. } => b"announce_peer",
            Method::Get { .. } => b"get",
            Method::Put(_) => b"put",
            Method::SampleInfohashes { .. } => b"sample_infohashes",
            Method::Unknown { name } => name,
        }
    }
}

/// Arguments of a BEP 44 `put`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutArgs {
    /// `token` from an earlier get.
    pub token: Vec<u8>,
    /// `v` (exactly as bencoded on the wire) and, for a mutable put, `k`, `sig`,
    /// `seq` and `salt`.
    pub item: Item,
    /// `cas`: the seq the putter expects to replace (mutable puts only).
    pub cas: Option<i64>,
}

/// A response. KRPC responses do not name the method they answer; the
/// transaction id does, so every optional field of every method lives here.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Response {
    /// `r.id`.
    pub id: Id,
    /// `nodes`: IPv4 contacts (26 bytes each on the wire).
    pub nodes: Vec<NodeInfo>,
    /// `nodes6`: IPv6 contacts (38 bytes each on the wire).
    pub nodes6: Vec<NodeInfo>,
    /// `token` (get_peers, get).
    pub token: Option<Vec<u8>>,
    /// `values`: compact peers (6 or 18 bytes each on the wire).
    pub values: Vec<SocketAddr>,
    /// BEP 44 `v`, exactly as bencoded on the wire.
    pub value: Option<Vec<u8>>,
    /// BEP 44 `k`.
    pub key: Option<[u8; 32]>,
    /// BEP 44 `sig`.
    pub signature: Option<[u8; 64]>,
    /// BEP 44 `seq`.
    pub seq: Option<i64>,
    /// BEP 51 `samples` (present, maybe empty, in a sample_infohashes reply).
    pub samples: Option<Vec<Id>>,
    /// BEP 51 `interval` (seconds).
    pub interval: Option<i64>,
    /// BEP 51 `num`.
    pub num: Option<i64>,
    /// BEP 33 `BFsd`: bloom filter of the stored seeds' IPs.
    pub bf_seeds: Option<ScrapeFilter>,
    /// BEP 33 `BFpe`: bloom filter of the stored peers' (non-seeds') IPs.
    pub bf_peers: Option<ScrapeFilter>,
}

/// `e` = [code, message].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorBody {
    /// Error code (see [`super::code`]).
    pub code: i64,
    /// Human-readable message.
    pub message: String,
}

/// Why a datagram did not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed KRPC message: {reason}")]
#[non_exhaustive]
pub struct DecodeError {
    /// Set when the datagram was recognisably a query (`y` = `q`) with a `t`:
    /// the node answers it with error 203 under this transaction id.
    pub query_transaction_id: Option<Vec<u8>>,
    /// What was wrong, for logs and the 203 message.
    pub reason: &'static str,
}

// Constructors: each takes what is required and leaves every optional field empty;
// each `with_` setter takes its field's type.

impl Message {
    /// A message with no `v`, not read-only, without `ip`.
    pub fn new(transaction_id: impl Into<Vec<u8>>, body: Body) -> Message {
        Message {
            transaction_id: transaction_id.into(),
            version: None,
            read_only: false,
            requester_ip: None,
            body,
        }
    }

    /// A query from `id`.
    pub fn query(transaction_id: impl Into<Vec<u8>>, id: Id, method: Method) -> Message {
        Message::new(transaction_id, Body::Query(Query::new(id, method)))
    }

    /// With `v`, the client version.
    pub fn with_version(mut self, version: Option<Vec<u8>>) -> Message {
        self.version = version;
        self
    }

    /// With `ro` (BEP 43): 1 when `read_only`.
    pub fn with_read_only(mut self, read_only: bool) -> Message {
        self.read_only = read_only;
        self
    }

    /// With `ip` (BEP 42), the address the request came from.
    pub fn with_requester_ip(mut self, requester_ip: Option<SocketAddr>) -> Message {
        self.requester_ip = requester_ip;
        self
    }
}

impl Query {
    /// `method` sent by `id`.
    pub fn new(id: Id, method: Method) -> Query {
        Query { id, method }
    }
}

impl Method {
    /// `find_node` without `want`.
    pub fn find_node(target: Id) -> Method {
        Method::FindNode {
            target,
            want: Want::default(),
        }
    }

    /// `get_peers` without `want`, `scrape` or `noseed`.
    pub fn get_peers(info_hash: Id) -> Method {
        Method::GetPeers {
            info_hash,
            want: Want::default(),
            scrape: false,
            noseed: false,
        }
    }

    /// `announce_peer` of `port` (not implied, not a seed).
    pub fn announce_peer(info_hash: Id, port: u16, token: impl Into<Vec<u8>>) -> Method {
        Method::AnnouncePeer {
            info_hash,
            port,
            token: token.into(),
            implied_port: false,
            seed: false,
        }
    }

    /// BEP 44 `get` without `seq` or `want`.
    pub fn get(target: Id) -> Method {
        Method::Get {
            target,
            seq: None,
            want: Want::default(),
        }
    }

    /// BEP 51 `sample_infohashes` without `want`.
    pub fn sample_infohashes(target: Id) -> Method {
        Method::SampleInfohashes {
            target,
            want: Want::default(),
        }
    }

    /// With `want` (BEP 32); a method without one is unchanged.
    pub fn with_want(mut self, want: Want) -> Method {
        match &mut self {
            Method::FindNode { want: w, .. }
            | Method::GetPeers { want: w, .. }
            | Method::Get { want: w, .. }
            | Method::SampleInfohashes { want: w, .. } => *w = want,
            Method::Ping
            | Method::AnnouncePeer { .. }
            | Method::Put(_)
            | Method::Unknown { .. } => {}
        }
        self
    }

    /// A `get_peers` with BEP 33's `scrape`; any other method is unchanged.
    pub fn with_scrape(mut self, scrape: bool) -> Method {
        if let Method::GetPeers { scrape: s, .. } = &mut self {
            *s = scrape;
        }
        self
    }

    /// A `get_peers` with BEP 33's `noseed`; any other method is unchanged.
    pub fn with_noseed(mut self, noseed: bool) -> Method {
        if let Method::GetPeers { noseed: n, .. } = &mut self {
            *n = noseed;
        }
        self
    }

    /// An `announce_peer` with BEP 33's `seed`; any other method is unchanged.
    pub fn with_seed(mut self, seed: bool) -> Method {
        if let Method::AnnouncePeer { seed: s, .. } = &mut self {
            *s = seed;
        }
        self
    }

    /// An `announce_peer` with `implied_port`; any other method is unchanged.
    pub fn with_implied_port(mut self, implied_port: bool) -> Method {
        if let Method::AnnouncePeer {
            implied_port: i, ..
        } = &mut self
        {
            *i = implied_port;
        }
        self
    }

    /// A BEP 44 `get` with `seq`; any other method is unchanged.
    pub fn with_seq(mut self, seq: Option<i64>) -> Method {
        if let Method::Get { seq: s, .. } = &mut self {
            *s = seq;
        }
        self
    }
}

impl PutArgs {
    /// A put of `item` with `token`, without `cas`.
    pub fn new(token: impl Into<Vec<u8>>, item: Item) -> PutArgs {
        PutArgs {
            token: token.into(),
            item,
            cas: None,
        }
    }

    /// With `cas` (mutable puts only; the codec leaves it out of an immutable one).
    pub fn with_cas(mut self, cas: Option<i64>) -> PutArgs {
        self.cas = cas;
        self
    }
}

impl Response {
    /// A response from `id` with no other field; each `with_` setter below takes its
    /// field's type.
    pub fn new(id: Id) -> Response {
        Response {
            id,
            ..Response::default()
        }
    }

    /// With `nodes` (IPv4 contacts).
    pub fn with_nodes(mut self, nodes: Vec<NodeInfo>) -> Response {
        self.nodes = nodes;
        self
    }

    /// With `nodes6` (IPv6 contacts).
    pub fn with_nodes6(mut self, nodes6: Vec<NodeInfo>) -> Response {
        self.nodes6 = nodes6;
        self
    }

    /// With `token`.
    pub fn with_token(mut self, token: Option<Vec<u8>>) -> Response {
        self.token = token;
        self
    }

    /// With `values` (peers).
    pub fn with_values(mut self, values: Vec<SocketAddr>) -> Response {
        self.values = values;
        self
    }

    /// With BEP 44's `v`, exactly as bencoded.
    pub fn with_value(mut self, value: Option<Vec<u8>>) -> Response {
        self.value = value;
        self
    }

    /// With BEP 44's `k`.
    pub fn with_key(mut self, key: Option<[u8; 32]>) -> Response {
        self.key = key;
        self
    }

    /// With BEP 44's `sig`.
    pub fn with_signature(mut self, signature: Option<[u8; 64]>) -> Response {
        self.signature = signature;
        self
    }

    /// With BEP 44's `seq`.
    pub fn with_seq(mut self, seq: Option<i64>) -> Response {
        self.seq = seq;
        self
    }

    /// With BEP 51's `samples`.
    pub fn with_samples(mut self, samples: Option<Vec<Id>>) -> Response {
        self.samples = samples;
        self
    }

    /// With BEP 51's `interval`.
    pub fn with_interval(mut self, interval: Option<i64>) -> Response {
        self.interval = interval;
        self
    }

    /// With BEP 51's `num`.
    pub fn with_num(mut self, num: Option<i64>) -> Response {
        self.num = num;
        self
    }

    /// With BEP 33's `BFsd`.
    pub fn with_bf_seeds(mut self, bf_seeds: Option<ScrapeFilter>) -> Response {
        self.bf_seeds = bf_seeds;
        self
    }

    /// With BEP 33's `BFpe`.
    pub fn with_bf_peers(mut self, bf_peers: Option<ScrapeFilter>) -> Response {
        self.bf_peers = bf_peers;
        self
    }
}

impl ErrorBody {
    /// `e` = [code, message].
    pub fn new(code: i64, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
        }
    }
}
