//! The queries the load generator sends, and the little it reads of a reply.
//!
//! Queries are encoded by dht-core's own encoder: over QUIC the target checks that the
//! querier's id is the one derived from the key its handshake proved, so the query must
//! be a real, well-formed KRPC message carrying that id, and sharing the encoder costs
//! nothing in independence that the handshake has not already given up. Replies are only
//! walked by the bencode decoder for `t` and `y`, as `cargo xtask load` does over UDP, so
//! the client spends no more per reply than the UDP tool and the two rates compare.

use std::fmt;

use dht_core::bencode;
use dht_core::krpc::{Body, Message, Method, Query, Want};
use dht_core::Id;
use rand_core::RngCore;

/// Transaction ids are 4 bytes, as `cargo xtask load` sends: a slot index and a
/// generation, 2 bytes each, big-endian (see `crate::drive`).
pub const TRANSACTION_ID_LEN: usize = 4;

/// The read-only queries the load generator can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryKind {
    /// `ping`.
    Ping,
    /// `find_node` with a fresh random target per request.
    FindNode,
    /// `get_peers` with a fresh random info_hash per request.
    GetPeers,
    /// BEP 44 `get` with a fresh random target per request.
    Get,
}

impl QueryKind {
    /// Every kind, in the order the help text lists them.
    pub const ALL: [QueryKind; 4] = [
        QueryKind::Ping,
        QueryKind::FindNode,
        QueryKind::GetPeers,
        QueryKind::Get,
    ];

    /// The method name, as in `q` and on the command line.
    pub fn method(self) -> &'static str {
        match self {
            QueryKind::Ping => "ping",
            QueryKind::FindNode => "find_node",
            QueryKind::GetPeers => "get_peers",
            QueryKind::Get => "get",
        }
    }

    /// The kind named `name` (the method name), if any.
    pub fn parse(name: &str) -> Option<QueryKind> {
        QueryKind::ALL.into_iter().find(|k| k.method() == name)
    }
}

impl fmt::Display for QueryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.method())
    }
}

/// One connection's query, re-encoded for each request with a new transaction id and
/// (but for `ping`) a new random target, into a buffer that is reused.
#[derive(Debug)]
pub struct QueryEncoder {
    message: Message,
}

impl QueryEncoder {
    /// A query of `kind` from the node id `id` (over QUIC: the id derived from the
    /// connection's key, or the target drops it).
    pub fn new(kind: QueryKind, id: Id) -> QueryEncoder {
        let zero = Id([0; 20]);
        let want = Want::default();
        let method = match kind {
            QueryKind::Ping => Method::Ping,
            QueryKind::FindNode => Method::FindNode { target: zero, want },
            QueryKind::GetPeers => Method::GetPeers {
                info_hash: zero,
                want,
            },
            QueryKind::Get => Method::Get {
                target: zero,
                seq: None,
                want,
            },
        };
        QueryEncoder {
            message: Message {
                transaction_id: vec![0; TRANSACTION_ID_LEN],
                version: None,
                // BEP 43: the target must not add our many connections to its table.
                read_only: true,
                requester_ip: None,
                body: Body::Query(Query { id, method }),
            },
        }
    }

    /// Writes the query with transaction id `t` into `out` (cleared first). A random
    /// target makes every find_node / get_peers / get a fresh lookup in the target's
    /// table and store, as a stream of real lookups would be.
    pub fn encode(
        &mut self,
        t: [u8; TRANSACTION_ID_LEN],
        rng: &mut impl RngCore,
        out: &mut Vec<u8>,
    ) {
        self.message.transaction_id.copy_from_slice(&t);
        if let Body::Query(q) = &mut self.message.body {
            match &mut q.method {
                Method::FindNode { target, .. } | Method::Get { target, .. } => {
                    *target = Id::random(rng)
                }
                Method::GetPeers { info_hash, .. } => *info_hash = Id::random(rng),
                _ => {}
            }
        }
        out.clear();
        self.message.encode(out);
    }
}

/// The top-level `y` of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// `y` = `q`: our query sent back (an echo server), or a query of the target's own.
    Query,
    /// `y` = `r`.
    Response,
    /// `y` = `e`: a KRPC error, still an answer.
    Error,
}

/// The transaction id and kind of a reply, or `None` if it is not a bencoded dict with
/// a 4-byte `t` and a known `y`. Never panics and never allocates.
pub fn parse_envelope(bytes: &[u8]) -> Option<([u8; TRANSACTION_ID_LEN], MessageKind)> {
    let dict = bencode::decode(bytes).ok()?.as_dict()?;
    let t = <[u8; TRANSACTION_ID_LEN]>::try_from(dict.get(b"t")?.as_bytes()?).ok()?;
    let kind = match dict.get(b"y")?.as_bytes()? {
        b"q" => MessageKind::Query,
        b"r" => MessageKind::Response,
        b"e" => MessageKind::Error,
        _ => return None,
    };
    Some((t, kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn every_query_decodes_as_a_read_only_query_with_our_tid() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let id = Id([9; 20]);
        let mut out = Vec::new();
        for kind in QueryKind::ALL {
            let mut q = QueryEncoder::new(kind, id);
            q.encode([1, 2, 3, 4], &mut rng, &mut out);
            let m = dht_core::krpc::decode(&out).expect("our own query decodes");
            assert_eq!(m.transaction_id, [1, 2, 3, 4]);
            assert!(m.read_only);
            let Body::Query(query) = m.body else {
                panic!("not a query: {kind}")
            };
            assert_eq!(query.id, id);
            assert_eq!(query.method.name(), kind.method().as_bytes());
            assert_eq!(
                parse_envelope(&out),
                Some(([1, 2, 3, 4], MessageKind::Query))
            );
            assert_eq!(QueryKind::parse(kind.method()), Some(kind));
        }
    }

    #[test]
    fn envelopes_that_are_not_ours_are_refused() {
        assert_eq!(
            parse_envelope(b"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaae1:t4:abcd1:y1:re"),
            Some((*b"abcd", MessageKind::Response))
        );
        for bad in [
            &b""[..],
            b"le",
            b"d1:t2:ab1:y1:re",
            b"d1:t4:abcd1:y1:xe",
            b"d1:t4:abcde",
            b"d1:t4:abcd1:y1:r",
        ] {
            assert_eq!(parse_envelope(bad), None, "{bad:?}");
        }
    }
}
