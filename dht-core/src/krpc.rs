//! KRPC messages (BEP 5, 32, 42, 43, 44, 51): typed values and their bencoded wire form.
//!
//! Decoding never panics, never allocates more than the input's size, and bounds nesting
//! depth. A malformed *query* decodes to [`DecodeError`] carrying its transaction id, so
//! that the node can answer it with error 203; anything else malformed is dropped.

use std::net::SocketAddr;

use crate::bep33::ScrapeFilter;
use crate::bep44::Item;
use crate::id::{Id, NodeInfo};

/// Largest UDP payload we send for ordinary messages (BEP 32).
pub const MAX_SEND: usize = 1024;
/// Largest payload we ever send: BEP 44 messages carrying a value (IPv6 over Ethernet).
pub const MAX_SEND_BEP44: usize = 1452;
/// Largest bencoded BEP 44 value (error 205 above it).
pub const MAX_VALUE_LEN: usize = 1000;
/// Largest BEP 44 salt (error 207 above it).
pub const MAX_SALT_LEN: usize = 64;
pub use crate::bencode::MAX_DEPTH;

/// KRPC error codes (BEP 5, BEP 44).
pub mod code {
    /// Generic error.
    pub const GENERIC: i64 = 201;
    /// Server error (ours: e.g. the store failed).
    pub const SERVER: i64 = 202;
    /// Protocol error: malformed packet, invalid argument, bad token.
    pub const PROTOCOL: i64 = 203;
    /// Method unknown.
    pub const METHOD_UNKNOWN: i64 = 204;
    /// BEP 44: message (v) too big.
    pub const VALUE_TOO_BIG: i64 = 205;
    /// BEP 44: invalid signature.
    pub const INVALID_SIGNATURE: i64 = 206;
    /// BEP 44: salt too big.
    pub const SALT_TOO_BIG: i64 = 207;
    /// BEP 44: CAS mismatch.
    pub const CAS_MISMATCH: i64 = 301;
    /// BEP 44: sequence number less than current.
    pub const SEQ_TOO_LOW: i64 = 302;
}

/// A whole KRPC message: the envelope and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    FindNode {
        /// `target`.
        target: Id,
        /// `want`.
        want: Want,
    },
    /// `get_peers` {info_hash, want?, scrape?, noseed?}.
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
pub struct ErrorBody {
    /// Error code (see [`code`]).
    pub code: i64,
    /// Human-readable message.
    pub message: String,
}

/// Why a datagram did not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed KRPC message: {reason}")]
pub struct DecodeError {
    /// Set when the datagram was recognisably a query (`y` = `q`) with a `t`:
    /// the node answers it with error 203 under this transaction id.
    pub query_transaction_id: Option<Vec<u8>>,
    /// What was wrong, for logs and the 203 message.
    pub reason: &'static str,
}

/// Decodes one datagram.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    crate::codec::decode_message(bytes)
}

impl Message {
    /// Appends the bencoded form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        crate::codec::encode_message(self, out)
    }

    /// The bencoded form in a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(256);
        self.encode(&mut v);
        v
    }
}
