//! What an application asks of a node ([`Request`]), what can be refused before any
//! packet leaves ([`RequestError`]) and what comes back ([`Outcome`] in a [`QueryDone`]).
//!
//! One enum for every command (str0m's `Input` shape): a runtime forwards a `Request`
//! without a `match`. Every `match` on a kind names each kind, so adding a `Request`
//! builds only once each site has been visited: here the variant, its
//! [`Request::KIND_NAMES`] entry, `kind_name`, `write_target`, `check`, the
//! [`Outcome`] variant and `Outcome::found` (7); the lookup steps in `kind.rs` (11);
//! the answer in dht-node's `answer.rs` (3) and its `Dht` method (1). ARCHITECTURE.md
//! lists them, with what a kind that extends the wire adds.

use std::net::SocketAddr;
use std::time::Duration;

use crate::bep44::{self, MutableItem};
use crate::id::{Id, NodeInfo};
use crate::krpc::{self, ErrorBody};

/// Handle to a request in progress; reported back in its [`QueryDone`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub u64);

/// Every command a node runs, started with [`crate::Node::start`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Joins the DHT: looks up our own id from `seeds` (bootstrap routers or known
    /// nodes) and from the routing table. The seeds are also kept for when a table
    /// empties. Ends with [`Outcome::Nodes`].
    Bootstrap {
        /// Routers or known nodes, ids unknown.
        seeds: Vec<SocketAddr>,
    },
    /// Pings one address. Ends with [`Outcome::Ping`].
    Ping {
        /// Who to ping.
        addr: SocketAddr,
    },
    /// Iterative `find_node` toward `target`. Ends with [`Outcome::Nodes`].
    FindNode {
        /// The id looked up.
        target: Id,
    },
    /// Iterative `get_peers`. Ends with [`Outcome::Peers`].
    GetPeers {
        /// The torrent.
        info_hash: Id,
    },
    /// `get_peers`, then `announce_peer` to the k closest with their tokens. Ends with
    /// [`Outcome::Stored`].
    AnnouncePeer {
        /// The torrent.
        info_hash: Id,
        /// The BitTorrent port; `None` announces with `implied_port` (the UDP source port).
        port: Option<u16>,
        /// BEP 33: we are a seed (we have the whole torrent).
        seed: bool,
    },
    /// BEP 33 scrape: `get_peers` with `scrape` = 1, the union of the bloom filters of
    /// the seeds' and peers' IPs that the nodes near `info_hash` hold. Ends with
    /// [`Outcome::Scrape`].
    Scrape {
        /// The torrent.
        info_hash: Id,
    },
    /// BEP 44 immutable get. Ends with [`Outcome::Immutable`].
    GetImmutable {
        /// SHA-1 of the bencoded value.
        target: Id,
    },
    /// BEP 44 mutable get: the valid item with the highest seq (above `min_seq` if
    /// given). Ends with [`Outcome::Mutable`].
    GetMutable {
        /// The publisher's ed25519 public key.
        key: [u8; 32],
        /// Salt (empty = none).
        salt: Vec<u8>,
        /// Only items with a seq above this count.
        min_seq: Option<i64>,
    },
    /// BEP 44 immutable put of a bencoded value; the target is its SHA-1. Ends with
    /// [`Outcome::Stored`].
    PutImmutable {
        /// Exactly one bencoded value, at most 1000 bytes.
        value: Vec<u8>,
    },
    /// BEP 44 mutable put of a signed item, with an optional compare-and-swap seq.
    /// Ends with [`Outcome::Stored`].
    PutMutable {
        /// The signed item.
        item: MutableItem,
        /// Nodes store it only if their stored seq equals this.
        cas: Option<i64>,
    },
    /// BEP 51: samples of info_hashes from nodes near `target`. Ends with
    /// [`Outcome::Samples`].
    SampleInfohashes {
        /// Where to sample.
        target: Id,
    },
}

impl Request {
    /// Every kind's name, in the protocol's words: the values of the `kind` label
    /// that exporters give a request's figures (dashboards read them; keep them).
    pub const KIND_NAMES: [&'static str; 11] = [
        "bootstrap",
        "ping",
        "find_node",
        "get_peers",
        "announce_peer",
        "get_immutable",
        "get_mutable",
        "put_immutable",
        "put_mutable",
        "sample_infohashes",
        "scrape",
    ];

    /// This request's kind: one of [`Request::KIND_NAMES`] (each arm indexes the
    /// array with a constant, so a new kind does not build until the array names it).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Request::Bootstrap { .. } => Self::KIND_NAMES[0],
            Request::Ping { .. } => Self::KIND_NAMES[1],
            Request::FindNode { .. } => Self::KIND_NAMES[2],
            Request::GetPeers { .. } => Self::KIND_NAMES[3],
            Request::AnnouncePeer { .. } => Self::KIND_NAMES[4],
            Request::GetImmutable { .. } => Self::KIND_NAMES[5],
            Request::GetMutable { .. } => Self::KIND_NAMES[6],
            Request::PutImmutable { .. } => Self::KIND_NAMES[7],
            Request::PutMutable { .. } => Self::KIND_NAMES[8],
            Request::SampleInfohashes { .. } => Self::KIND_NAMES[9],
            Request::Scrape { .. } => Self::KIND_NAMES[10],
        }
    }

    /// The id a write lands under (item target or info_hash), for writes.
    pub fn write_target(&self) -> Option<Id> {
        match self {
            Request::AnnouncePeer { info_hash, .. } => Some(*info_hash),
            Request::PutImmutable { value } => Some(bep44::immutable_target(value)),
            Request::PutMutable { item, .. } => Some(item.target()),
            Request::Bootstrap { .. }
            | Request::Ping { .. }
            | Request::FindNode { .. }
            | Request::GetPeers { .. }
            | Request::Scrape { .. }
            | Request::GetImmutable { .. }
            | Request::GetMutable { .. }
            | Request::SampleInfohashes { .. } => None,
        }
    }

    /// What every node would refuse, found before anything is sent.
    pub fn check(&self) -> Result<(), RequestError> {
        let value = match self {
            Request::PutImmutable { value } => value,
            Request::PutMutable { item, .. } => {
                if item.salt.len() > krpc::MAX_SALT_LEN {
                    return Err(RequestError::SaltTooBig {
                        len: item.salt.len(),
                    });
                }
                &item.value
            }
            // Only a put's value and salt reach nodes in a form every node refuses.
            Request::Bootstrap { .. }
            | Request::Ping { .. }
            | Request::FindNode { .. }
            | Request::GetPeers { .. }
            | Request::AnnouncePeer { .. }
            | Request::Scrape { .. }
            | Request::GetImmutable { .. }
            | Request::GetMutable { .. }
            | Request::SampleInfohashes { .. } => return Ok(()),
        };
        if value.len() > krpc::MAX_VALUE_LEN {
            return Err(RequestError::ValueTooBig { len: value.len() });
        }
        if !crate::bencode::is_valid(value) {
            return Err(RequestError::NotBencode);
        }
        Ok(())
    }
}

/// A request refused before any packet left, because every node would refuse it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The value is not exactly one bencoded value (nodes answer 203).
    #[error("the value is not exactly one bencoded value")]
    NotBencode,
    /// The bencoded value is over 1000 bytes (BEP 44 error 205).
    #[error("the value is {len} bytes bencoded; BEP 44 allows at most 1000 (error 205)")]
    ValueTooBig {
        /// Its length.
        len: usize,
    },
    /// The salt is over 64 bytes (BEP 44 error 207).
    #[error("the salt is {len} bytes; BEP 44 allows at most 64 (error 207)")]
    SaltTooBig {
        /// Its length.
        len: usize,
    },
}

/// Figures about one finished query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Depth of the closest result: a contact from our routing table has depth 1,
    /// one learned from a depth-d node's reply has depth d + 1.
    pub hops: u32,
    /// Requests sent.
    pub requests: u32,
    /// Replies received (responses and errors).
    pub responses: u32,
    /// Requests that timed out.
    pub timeouts: u32,
    /// Time from the command to the end.
    pub duration: Duration,
}

/// What a finished query found: one variant per kind of result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// [`Request::Ping`]: the node that answered, or `None` if none did.
    Ping {
        /// The responder.
        node: Option<NodeInfo>,
    },
    /// [`Request::FindNode`] and [`Request::Bootstrap`]: the closest nodes that
    /// answered, closest first.
    Nodes {
        /// Closest responders.
        closest: Vec<NodeInfo>,
    },
    /// [`Request::GetPeers`].
    Peers {
        /// Peers found (deduplicated, sorted).
        peers: Vec<SocketAddr>,
        /// Closest responders.
        closest: Vec<NodeInfo>,
    },
    /// [`Request::AnnouncePeer`], [`Request::PutImmutable`], [`Request::PutMutable`]:
    /// where the write landed.
    Stored {
        /// The info_hash or item target.
        target: Id,
        /// Nodes that acknowledged the write.
        stored_at: Vec<SocketAddr>,
        /// Nodes that refused it, with their KRPC error.
        errors: Vec<(SocketAddr, ErrorBody)>,
    },
    /// [`Request::GetImmutable`]: the value (checked against the target), if found.
    Immutable {
        /// Bencoded value.
        value: Option<Vec<u8>>,
    },
    /// [`Request::GetMutable`]: the valid item with the highest seq, if any.
    Mutable {
        /// The item.
        item: Option<MutableItem>,
    },
    /// [`Request::Scrape`]: how many distinct seeds and peers the nodes near the
    /// info_hash hold, estimated from the union of their bloom filters (BEP 33;
    /// accurate to a few percent up to a few thousand).
    Scrape {
        /// Estimated seeds (rounded).
        seeds: u32,
        /// Estimated peers that are not seeds (rounded).
        peers: u32,
        /// Nodes whose reply carried filters (or values, counted as peers).
        responders: u32,
    },
    /// [`Request::SampleInfohashes`]: the union of samples.
    Samples {
        /// Distinct info_hashes sampled.
        samples: Vec<Id>,
        /// Largest `num` (info_hashes a node holds) reported.
        num_max: i64,
    },
}

impl Outcome {
    /// True when the request found what it asked for: a node that answered, nodes,
    /// peers, an acknowledged write, a value, an item, samples, or scrape filters
    /// (exporters label the query `found`; otherwise `not_found` or `no_response`).
    pub fn found(&self) -> bool {
        match self {
            Outcome::Ping { node } => node.is_some(),
            Outcome::Nodes { closest } => !closest.is_empty(),
            Outcome::Peers { peers, .. } => !peers.is_empty(),
            Outcome::Stored { stored_at, .. } => !stored_at.is_empty(),
            Outcome::Immutable { value } => value.is_some(),
            Outcome::Mutable { item } => item.is_some(),
            Outcome::Scrape { responders, .. } => *responders > 0,
            Outcome::Samples { samples, .. } => !samples.is_empty(),
        }
    }
}

/// A finished request. Generic over what the overlay's commands find (Mainline's
/// [`Outcome`] by default), so every overlay reports alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryDone<O = Outcome> {
    /// The request's handle.
    pub id: QueryId,
    /// What it found.
    pub outcome: O,
    /// How it went.
    pub stats: QueryStats,
}

/// Something the application should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<O = Outcome> {
    /// A request finished.
    QueryDone(QueryDone<O>),
}
