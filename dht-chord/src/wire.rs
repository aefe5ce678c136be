//! Chord's wire messages: bencoded, KRPC-shaped queries, responses and errors.
//!
//! The shapes follow BEP 5 so that a reader of the Mainline code reads these at
//! once: `t` (transaction id), `y` (`q`, `r` or `e`), `q` (method), `a` (arguments),
//! `r` (return values), `e` (`[code, message]`). The methods are the Chord paper's
//! remote procedures; the crate doc lists them with their arguments and replies.
//! Decoding never panics and never allocates more than a bounded number of nodes.

use dht_core::bencode::{self, DictWriter, Value};
use dht_core::{compact_node_len, put_compact_node, read_compact_node, Id};

/// A node as Chord names it: an identifier and the address it answers on, which is
/// what dht-core's [`dht_core::NodeInfo`] is.
pub type Peer = dht_core::NodeInfo;

/// Longest transaction id we echo (BEP 5 peers use 2 to 4 bytes).
pub const MAX_TID: usize = 16;
/// Most nodes read from one list: more than any honest reply carries.
pub const MAX_NODES: usize = 32;
/// Largest bencoded value a `put` may carry (BEP 44's limit).
pub use dht_core::krpc::MAX_VALUE_LEN as MAX_VALUE;

/// KRPC error codes (BEP 5): Chord answers 202 (the store failed), 203 (a malformed
/// query) and 204 (a method it does not know).
pub use dht_core::krpc::code;

/// A remote procedure call of the Chord protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// Is the node alive? (`check_predecessor`)
    Ping,
    /// One step of an iterative lookup of `target`'s successor.
    FindSuccessor {
        /// The key or node id looked up.
        target: Id,
    },
    /// `stabilize`: the node's predecessor and successor list.
    GetPredecessor,
    /// "I might be your predecessor" (the sender, at the datagram's source).
    Notify,
    /// The value stored under `target`, if the node holds it.
    Get {
        /// The key, SHA-1 of the value.
        target: Id,
    },
    /// Store the bencoded value `v` under SHA-1(v); `replica` when an owner copies
    /// it to its successor list (the receiver then does not replicate it further).
    Put {
        /// The bencoded value.
        v: Vec<u8>,
        /// Sent by the key's owner to a successor.
        replica: bool,
    },
    /// A voluntary departure: to the successor, the leaver's predecessor (its new
    /// predecessor); to the predecessor, the leaver's successor list (its new one).
    Leave {
        /// The leaving node's predecessor, if it had one.
        predecessor: Option<Peer>,
        /// The leaving node's successor list.
        successors: Vec<Peer>,
    },
}

impl Query {
    /// The method name on the wire.
    pub fn method(&self) -> &'static [u8] {
        match self {
            Query::Ping => b"ping",
            Query::FindSuccessor { .. } => b"find_successor",
            Query::GetPredecessor => b"get_predecessor",
            Query::Notify => b"notify",
            Query::Get { .. } => b"get",
            Query::Put { .. } => b"put",
            Query::Leave { .. } => b"leave",
        }
    }
}

/// The return values of any query; which fields are set depends on the method.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// The responder's id.
    pub id: Id,
    /// `find_successor`: the target lies between the responder and its successor,
    /// so `nodes` is the responder's successor list, the target's successor first.
    pub found: bool,
    /// `find_successor`: the successor list when `found`, else the nodes that most
    /// closely precede the target, closest first (the first is the next step, the
    /// rest are fallbacks should it be dead).
    pub nodes: Vec<Peer>,
    /// `get_predecessor`: the responder's predecessor, if it knows one.
    pub predecessor: Option<Peer>,
    /// `get_predecessor`: the responder's successor list.
    pub successors: Vec<Peer>,
    /// `get`: the bencoded value, if held.
    pub v: Option<Vec<u8>>,
}

/// What a datagram carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A query from the node `id`.
    Query {
        /// The sender's id.
        id: Id,
        /// The call.
        query: Query,
    },
    /// A response.
    Reply(Reply),
    /// An error, `e` = `[code, message]`: a KRPC code ([`code`]) and a message for
    /// people, cut to 200 bytes.
    Error(i64, String),
}

/// One decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Transaction id: chosen by the querier, echoed in the response or error, and
    /// at most [`MAX_TID`] bytes.
    pub t: Vec<u8>,
    /// What it carries.
    pub body: Body,
}

/// Why a datagram was not a message; `t` is set when it was a query with a
/// transaction id, which then deserves a 203 or 204 error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The query's transaction id, when one could be read.
    pub t: Option<Vec<u8>>,
    /// The KRPC error code to answer with.
    pub code: i64,
    /// What was wrong.
    pub reason: &'static str,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "malformed Chord message ({}): {}",
            self.code, self.reason
        )
    }
}

impl std::error::Error for DecodeError {}

/// A node as one bencoded string: BEP 5's compact node (26 or 38 bytes).
fn write_peer(out: &mut Vec<u8>, p: &Peer) {
    bencode::write_len(out, compact_node_len(p));
    put_compact_node(out, p);
}

fn write_peers(out: &mut Vec<u8>, peers: &[Peer]) {
    out.push(b'l');
    for p in peers {
        write_peer(out, p);
    }
    out.push(b'e');
}

fn read_peers(v: Option<Value<'_>>) -> Vec<Peer> {
    let Some(list) = v.and_then(|v| v.as_list()) else {
        return Vec::new();
    };
    list.iter()
        .take(MAX_NODES)
        .filter_map(|x| x.as_bytes().and_then(read_compact_node))
        .collect()
}

/// Encodes a query from `id` with transaction id `t`.
pub fn encode_query(out: &mut Vec<u8>, t: &[u8], id: &Id, query: &Query) {
    let mut d = DictWriter::new(out);
    {
        let a = d.key(b"a");
        let mut args = DictWriter::new(a);
        args.bytes(b"id", &id.0);
        match query {
            Query::Ping | Query::GetPredecessor | Query::Notify => {}
            Query::FindSuccessor { target } | Query::Get { target } => {
                args.bytes(b"target", &target.0)
            }
            Query::Put { v, replica } => {
                args.int(b"replica", i64::from(*replica));
                args.raw(b"v", v);
            }
            Query::Leave {
                predecessor,
                successors,
            } => {
                if let Some(p) = predecessor {
                    write_peer(args.key(b"predecessor"), p);
                }
                write_peers(args.key(b"successors"), successors);
            }
        }
        args.finish();
    }
    d.bytes(b"q", query.method());
    d.bytes(b"t", t);
    d.bytes(b"y", b"q");
    d.finish();
}

/// Encodes a response with transaction id `t`.
pub fn encode_reply(out: &mut Vec<u8>, t: &[u8], reply: &Reply) {
    let mut d = DictWriter::new(out);
    {
        let r = d.key(b"r");
        let mut w = DictWriter::new(r);
        if reply.found {
            w.int(b"found", 1);
        }
        w.bytes(b"id", &reply.id.0);
        if !reply.nodes.is_empty() {
            write_peers(w.key(b"nodes"), &reply.nodes);
        }
        if let Some(p) = &reply.predecessor {
            write_peer(w.key(b"predecessor"), p);
        }
        if !reply.successors.is_empty() {
            write_peers(w.key(b"successors"), &reply.successors);
        }
        if let Some(v) = &reply.v {
            w.raw(b"v", v);
        }
        w.finish();
    }
    d.bytes(b"t", t);
    d.bytes(b"y", b"r");
    d.finish();
}

/// Encodes an error with transaction id `t`.
pub fn encode_error(out: &mut Vec<u8>, t: &[u8], code: i64, message: &str) {
    let mut d = DictWriter::new(out);
    {
        let e = d.key(b"e");
        e.push(b'l');
        bencode::write_int(e, code);
        bencode::write_bytes(e, message.as_bytes());
        e.push(b'e');
    }
    d.bytes(b"t", t);
    d.bytes(b"y", b"e");
    d.finish();
}

fn id_of(v: Option<Value<'_>>) -> Option<Id> {
    v.and_then(|v| v.as_bytes()).and_then(Id::from_slice)
}

/// Decodes one datagram. Any input, however malformed, gives an error, never a
/// panic: the error names the transaction id when the datagram was a query, so that
/// the node can answer 203 or 204 as BEP 5 does. Lists of nodes are read up to
/// [`MAX_NODES`] entries, and values longer than [`MAX_VALUE`] bytes are refused.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let bad = |t: Option<Vec<u8>>, reason| DecodeError {
        t,
        code: code::PROTOCOL,
        reason,
    };
    let dict = bencode::decode(bytes)
        .ok()
        .and_then(|v| v.as_dict())
        .ok_or_else(|| bad(None, "not a bencoded dictionary"))?;
    let t = dict
        .get(b"t")
        .and_then(|v| v.as_bytes())
        .filter(|t| t.len() <= MAX_TID)
        .ok_or_else(|| bad(None, "no transaction id"))?
        .to_vec();
    let y = dict.get(b"y").and_then(|v| v.as_bytes());
    match y {
        Some(b"q") => {
            let tq = Some(t.clone());
            let args = dict
                .get(b"a")
                .and_then(|v| v.as_dict())
                .ok_or_else(|| bad(tq.clone(), "query without arguments"))?;
            let id = id_of(args.get(b"id")).ok_or_else(|| bad(tq.clone(), "query without id"))?;
            let method = dict
                .get(b"q")
                .and_then(|v| v.as_bytes())
                .ok_or_else(|| bad(tq.clone(), "query without method"))?;
            let target = || id_of(args.get(b"target")).ok_or_else(|| bad(tq.clone(), "no target"));
            let query = match method {
                b"ping" => Query::Ping,
                b"find_successor" => Query::FindSuccessor { target: target()? },
                b"get_predecessor" => Query::GetPredecessor,
                b"notify" => Query::Notify,
                b"get" => Query::Get { target: target()? },
                b"put" => {
                    let v = args
                        .get(b"v")
                        .map(|v| v.raw())
                        .filter(|v| v.len() <= MAX_VALUE)
                        .ok_or_else(|| {
                            bad(tq.clone(), "put without a value of at most 1000 bytes")
                        })?;
                    let replica = args.get(b"replica").and_then(|r| r.as_int()) == Some(1);
                    Query::Put {
                        v: v.to_vec(),
                        replica,
                    }
                }
                b"leave" => Query::Leave {
                    predecessor: args
                        .get(b"predecessor")
                        .and_then(|v| v.as_bytes())
                        .and_then(read_compact_node),
                    successors: read_peers(args.get(b"successors")),
                },
                _ => {
                    return Err(DecodeError {
                        t: tq,
                        code: code::METHOD_UNKNOWN,
                        reason: "method unknown",
                    })
                }
            };
            Ok(Message {
                t,
                body: Body::Query { id, query },
            })
        }
        Some(b"r") => {
            let r = dict
                .get(b"r")
                .and_then(|v| v.as_dict())
                .ok_or_else(|| bad(None, "response without r"))?;
            let id = id_of(r.get(b"id")).ok_or_else(|| bad(None, "response without id"))?;
            Ok(Message {
                t,
                body: Body::Reply(Reply {
                    id,
                    found: r.get(b"found").and_then(|v| v.as_int()) == Some(1),
                    nodes: read_peers(r.get(b"nodes")),
                    predecessor: r
                        .get(b"predecessor")
                        .and_then(|v| v.as_bytes())
                        .and_then(read_compact_node),
                    successors: read_peers(r.get(b"successors")),
                    v: r.get(b"v")
                        .map(|v| v.raw().to_vec())
                        .filter(|v| v.len() <= MAX_VALUE),
                }),
            })
        }
        Some(b"e") => {
            let mut it = dict
                .get(b"e")
                .and_then(|v| v.as_list())
                .ok_or_else(|| bad(None, "error without e"))?
                .iter();
            let code = it.next().and_then(|v| v.as_int()).unwrap_or(0);
            let msg = it
                .next()
                .and_then(|v| v.as_bytes())
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                .unwrap_or_default();
            Ok(Message {
                t,
                body: Body::Error(code, msg),
            })
        }
        _ => Err(bad(None, "y is not q, r or e")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(b: u8, addr: &str) -> Peer {
        Peer {
            id: Id([b; 20]),
            addr: addr.parse().expect("test address"),
        }
    }

    #[test]
    fn a_decode_error_is_an_error_that_says_what_was_wrong() {
        let e = decode(b"not bencode").expect_err("garbage");
        let boxed: Box<dyn std::error::Error> = Box::new(e.clone());
        assert!(boxed.to_string().contains(e.reason), "{boxed}");
        assert!(boxed.to_string().contains(&e.code.to_string()), "{boxed}");
    }

    #[test]
    fn every_query_round_trips() {
        let queries = [
            Query::Ping,
            Query::FindSuccessor {
                target: Id([7; 20]),
            },
            Query::GetPredecessor,
            Query::Notify,
            Query::Get {
                target: Id([8; 20]),
            },
            Query::Put {
                v: b"5:hello".to_vec(),
                replica: true,
            },
            Query::Leave {
                predecessor: Some(peer(1, "10.0.0.1:6881")),
                successors: vec![peer(2, "10.0.0.2:1"), peer(3, "[::1]:2")],
            },
        ];
        for q in queries {
            let mut out = Vec::new();
            encode_query(&mut out, b"abcd", &Id([9; 20]), &q);
            let m = decode(&out).expect("our own encoding decodes");
            assert_eq!(m.t, b"abcd");
            assert_eq!(
                m.body,
                Body::Query {
                    id: Id([9; 20]),
                    query: q
                }
            );
        }
    }

    #[test]
    fn replies_and_errors_round_trip() {
        let r = Reply {
            id: Id([1; 20]),
            found: true,
            nodes: vec![peer(2, "10.0.0.2:6881")],
            predecessor: Some(peer(3, "[2001:db8::1]:7")),
            successors: vec![peer(4, "10.0.0.4:6881")],
            v: Some(b"i42e".to_vec()),
        };
        let mut out = Vec::new();
        encode_reply(&mut out, b"xy", &r);
        assert_eq!(decode(&out).expect("decodes").body, Body::Reply(r));
        out.clear();
        encode_error(&mut out, b"xy", code::PROTOCOL, "bad");
        assert_eq!(
            decode(&out).expect("decodes").body,
            Body::Error(203, "bad".into())
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(decode(b"").is_err());
        assert!(decode(b"de").is_err());
        let unknown = b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q5:hello1:t2:aa1:y1:qe";
        let e = decode(unknown).expect_err("unknown method");
        assert_eq!((e.t.as_deref(), e.code), (Some(&b"aa"[..]), 204));
        let no_target = b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q3:get1:t2:aa1:y1:qe";
        assert_eq!(decode(no_target).expect_err("no target").code, 203);
        // Every prefix of a valid message is rejected without a panic.
        let mut out = Vec::new();
        encode_query(&mut out, b"t1", &Id([1; 20]), &Query::Notify);
        for n in 0..out.len() {
            assert!(decode(&out[..n]).is_err());
        }
    }
}
