//! Bencode <-> [`Message`]: [`decode`], [`Message::encode`].
//!
//! Decoding walks the datagram once with a [`crate::bencode::Cursor`], descending into
//! `a` and `r` in place and keeping borrowed spans; the only allocations are the owned
//! fields of the result, each reserved at its exact size. Input that is not valid bencode
//! (including trailing bytes or nesting deeper than [`crate::bencode::MAX_DEPTH`]) is
//! dropped without a transaction id, even when it looks like a query: only a well-formed
//! dictionary with `y` = `q` and a string `t` earns a 203.
//!
//! Leniency, chosen for interoperability and documented here so the engine can rely on it:
//! - Unknown keys anywhere are ignored (real clients send `r.p`, `ro` = 0, and so on).
//! - Advisory envelope fields that are malformed are dropped, not fatal: `v` that is not a
//!   string, `ro` that is not an integer (only `ro` = 1 means read-only), `ip` that is not
//!   a 6- or 18-byte string. So is a `want` that is not a list, and `want` entries other
//!   than `n4` / `n6`.
//! - A trailing partial entry in `nodes` (26 bytes each), `nodes6` (38) or `samples` (20)
//!   is ignored; the whole entries before it are kept. Entries of `values` that are not
//!   6- or 18-byte strings are skipped.
//! - A known field of the wrong type, a fixed-size field of the wrong length (`id`,
//!   `target`, `info_hash`, `k`, `sig`), a port outside 0..=65535, or a missing required
//!   field is an error.
//! - Sizes that BEP 44 answers with an error (value over 1000 bytes: 205, salt over 64: 207)
//!   are *not* checked here, so that the engine can send those codes.
//! - A put is mutable exactly when it carries `k`; `sig` and `seq` are then required.
//! - An error's message may be missing or not a string (it becomes empty); a non-UTF-8
//!   message is converted lossily.
//!
//! Encoding writes keys in sorted order. It skips contacts of the wrong family (an IPv6
//! address in `nodes`, an IPv4 one in `nodes6`), writes `salt` only when non-empty and
//! `implied_port` only when true, and copies BEP 44 values verbatim: they must already be
//! valid bencode (see [`crate::bencode::validate`]).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::message::{
    Body, DecodeError, ErrorBody, Message, Method, PutArgs, Query, Response, Want,
};
use crate::bencode::{self, write_bytes, write_int, write_len, Cursor, DictWriter, Value};
use crate::bep33::ScrapeFilter;
use crate::bep44::{Item, MutableItem};
use crate::id::{Id, NodeInfo, ID_LEN};

/// Bytes of one compact IPv4 node (`nodes`).
const NODE4_LEN: usize = ID_LEN + 4 + 2;
/// Bytes of one compact IPv6 node (`nodes6`).
const NODE6_LEN: usize = ID_LEN + 16 + 2;

type Reason = &'static str;

fn malformed(reason: Reason) -> DecodeError {
    DecodeError {
        query_transaction_id: None,
        reason,
    }
}

/// Decodes one datagram.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    // Walked into in place and read by reference: the argument and reply slots are over a
    // kilobyte together, and moving them cost a copy of each per datagram.
    let mut fields = Fields::default();
    walk(bytes, &mut fields).map_err(|e| malformed(e.reason))?;
    let f = &fields;
    let t =
        f.t.and_then(|t| t.as_bytes())
            .ok_or(malformed("missing transaction id t"))?;
    let body = match f.y.and_then(|y| y.as_bytes()) {
        Some(b"q") => {
            Body::Query(
                decode_query(f.q, f.a_dict, &f.a).map_err(|reason| DecodeError {
                    query_transaction_id: Some(t.to_vec()),
                    reason,
                })?,
            )
        }
        Some(b"r") => Body::Response(decode_response(f.r_dict, &f.r).map_err(malformed)?),
        Some(b"e") => Body::Error(decode_error(f.e).map_err(malformed)?),
        Some(_) => return Err(malformed("unknown message type y")),
        None => return Err(malformed("missing message type y")),
    };
    Ok(Message {
        transaction_id: t.to_vec(),
        version: f.v.and_then(|v| v.as_bytes()).map(<[u8]>::to_vec),
        read_only: f.ro.and_then(|ro| ro.as_int()) == Some(1),
        requester_ip: f.ip.and_then(|ip| ip.as_bytes()).and_then(compact_addr),
        body,
    })
}

/// The top-level keys we read. `a` and `r` are walked in place as the cursor meets them,
/// so the datagram is scanned exactly once.
#[derive(Default)]
struct Fields<'a> {
    t: Option<Value<'a>>,
    y: Option<Value<'a>>,
    q: Option<Value<'a>>,
    e: Option<Value<'a>>,
    v: Option<Value<'a>>,
    ro: Option<Value<'a>>,
    ip: Option<Value<'a>>,
    /// `a` was seen: a dictionary (its keys in `a`) or some other value.
    a_dict: Option<bool>,
    a: Args<'a>,
    /// `r` was seen: a dictionary (its keys in `r`) or some other value.
    r_dict: Option<bool>,
    r: Reply<'a>,
}

fn walk<'a>(bytes: &'a [u8], f: &mut Fields<'a>) -> Result<(), bencode::Error> {
    let mut c = Cursor::new(bytes);
    if !c.enter_dict()? {
        // Scan it anyway: garbage then reports what is wrong with the bencode, and only a
        // well-formed non-dictionary gets the reason below.
        c.value()?;
        return Err(bencode::Error {
            offset: 0,
            reason: "message is not a dictionary",
        });
    }
    while let Some(key) = c.next_key()? {
        let slot = match key {
            b"a" => {
                // A repeated `a` replaces the first one whole, keys it lacks included.
                if f.a_dict.replace(true).is_some() {
                    f.a = Args::default();
                }
                if c.enter_dict()? {
                    walk_args(&mut c, &mut f.a)?;
                } else {
                    c.value()?;
                    f.a_dict = Some(false);
                }
                continue;
            }
            b"r" => {
                if f.r_dict.replace(true).is_some() {
                    f.r = Reply::default();
                }
                if c.enter_dict()? {
                    walk_reply(&mut c, &mut f.r)?;
                } else {
                    c.value()?;
                    f.r_dict = Some(false);
                }
                continue;
            }
            b"t" => &mut f.t,
            b"y" => &mut f.y,
            b"q" => &mut f.q,
            b"e" => &mut f.e,
            b"v" => &mut f.v,
            b"ro" => &mut f.ro,
            b"ip" => &mut f.ip,
            _ => {
                c.value()?;
                continue;
            }
        };
        *slot = Some(c.value()?);
    }
    c.finish()
}

/// The arguments of `a` that any method uses.
#[derive(Default)]
struct Args<'a> {
    id: Option<Value<'a>>,
    target: Option<Value<'a>>,
    info_hash: Option<Value<'a>>,
    port: Option<Value<'a>>,
    token: Option<Value<'a>>,
    implied_port: Option<Value<'a>>,
    seq: Option<Value<'a>>,
    want: Option<Value<'a>>,
    v: Option<Value<'a>>,
    k: Option<Value<'a>>,
    sig: Option<Value<'a>>,
    salt: Option<Value<'a>>,
    cas: Option<Value<'a>>,
    seed: Option<Value<'a>>,
    scrape: Option<Value<'a>>,
    noseed: Option<Value<'a>>,
}

fn walk_args<'a>(c: &mut Cursor<'a>, args: &mut Args<'a>) -> Result<(), bencode::Error> {
    while let Some(key) = c.next_key()? {
        let value = c.value()?;
        let slot = match key {
            b"id" => &mut args.id,
            b"target" => &mut args.target,
            b"info_hash" => &mut args.info_hash,
            b"port" => &mut args.port,
            b"token" => &mut args.token,
            b"implied_port" => &mut args.implied_port,
            b"seq" => &mut args.seq,
            b"want" => &mut args.want,
            b"v" => &mut args.v,
            b"k" => &mut args.k,
            b"sig" => &mut args.sig,
            b"salt" => &mut args.salt,
            b"cas" => &mut args.cas,
            b"seed" => &mut args.seed,
            b"scrape" => &mut args.scrape,
            b"noseed" => &mut args.noseed,
            _ => continue,
        };
        *slot = Some(value);
    }
    Ok(())
}

/// The fields of `r` that any response uses.
#[derive(Default)]
struct Reply<'a> {
    id: Option<Value<'a>>,
    nodes: Option<Value<'a>>,
    nodes6: Option<Value<'a>>,
    token: Option<Value<'a>>,
    values: Option<Value<'a>>,
    v: Option<Value<'a>>,
    k: Option<Value<'a>>,
    sig: Option<Value<'a>>,
    seq: Option<Value<'a>>,
    samples: Option<Value<'a>>,
    interval: Option<Value<'a>>,
    num: Option<Value<'a>>,
    bf_seeds: Option<Value<'a>>,
    bf_peers: Option<Value<'a>>,
}

fn walk_reply<'a>(c: &mut Cursor<'a>, r: &mut Reply<'a>) -> Result<(), bencode::Error> {
    while let Some(key) = c.next_key()? {
        let value = c.value()?;
        let slot = match key {
            b"id" => &mut r.id,
            b"nodes" => &mut r.nodes,
            b"nodes6" => &mut r.nodes6,
            b"token" => &mut r.token,
            b"values" => &mut r.values,
            b"v" => &mut r.v,
            b"k" => &mut r.k,
            b"sig" => &mut r.sig,
            b"seq" => &mut r.seq,
            b"samples" => &mut r.samples,
            b"interval" => &mut r.interval,
            b"num" => &mut r.num,
            b"BFsd" => &mut r.bf_seeds,
            b"BFpe" => &mut r.bf_peers,
            _ => continue,
        };
        *slot = Some(value);
    }
    Ok(())
}

fn decode_query(
    q: Option<Value<'_>>,
    a_dict: Option<bool>,
    args: &Args<'_>,
) -> Result<Query, Reason> {
    let name = required(q, "missing method name q")?
        .as_bytes()
        .ok_or("method name q is not a string")?;
    match a_dict {
        Some(true) => {}
        Some(false) => return Err("arguments a is not a dictionary"),
        None => return Err("missing arguments a"),
    }
    let id = Id(fixed(args.id, "missing id", "id is not 20 bytes")?);
    let target = || -> Result<Id, Reason> {
        fixed(args.target, "missing target", "target is not 20 bytes").map(Id)
    };
    let info_hash = || -> Result<Id, Reason> {
        fixed(
            args.info_hash,
            "missing info_hash",
            "info_hash is not 20 bytes",
        )
        .map(Id)
    };
    let want = || decode_want(args.want);
    let method = match name {
        b"ping" => Method::Ping,
        b"find_node" => Method::FindNode {
            target: target()?,
            want: want(),
        },
        b"get_peers" => Method::GetPeers {
            info_hash: info_hash()?,
            want: want(),
            scrape: opt_int(args.scrape, "scrape is not an integer")?.is_some_and(|i| i == 1),
            noseed: opt_int(args.noseed, "noseed is not an integer")?.is_some_and(|i| i == 1),
        },
        b"announce_peer" => {
            let implied_port = opt_int(args.implied_port, "implied_port is not an integer")?
                .is_some_and(|i| i != 0);
            // A peer that asks for the implied port has no reason to send one.
            let port = match opt_int(args.port, "port is not an integer")? {
                Some(p) => u16::try_from(p).map_err(|_| "port out of range")?,
                None if implied_port => 0,
                None => return Err("missing port"),
            };
            Method::AnnouncePeer {
                info_hash: info_hash()?,
                port,
                token: string(args.token, "missing token", "token is not a string")?.to_vec(),
                implied_port,
                seed: opt_int(args.seed, "seed is not an integer")?.is_some_and(|i| i == 1),
            }
        }
        b"get" => Method::Get {
            target: target()?,
            seq: opt_int(args.seq, "seq is not an integer")?,
            want: want(),
        },
        b"put" => {
            let token = string(args.token, "missing token", "token is not a string")?.to_vec();
            let value = required(args.v, "missing value v")?.raw().to_vec();
            let (item, cas) = match args.k {
                None => (Item::Immutable { value }, None),
                Some(k) => (
                    Item::Mutable(MutableItem {
                        key: fixed(Some(k), "missing k", "k is not 32 bytes")?,
                        signature: fixed(args.sig, "missing sig", "sig is not 64 bytes")?,
                        seq: opt_int(args.seq, "seq is not an integer")?.ok_or("missing seq")?,
                        salt: match args.salt {
                            None => Vec::new(),
                            Some(s) => s.as_bytes().ok_or("salt is not a string")?.to_vec(),
                        },
                        value,
                    }),
                    opt_int(args.cas, "cas is not an integer")?,
                ),
            };
            Method::Put(PutArgs { token, item, cas })
        }
        b"sample_infohashes" => Method::SampleInfohashes {
            target: target()?,
            want: want(),
        },
        other => Method::Unknown {
            name: other.to_vec(),
        },
    };
    Ok(Query { id, method })
}

fn decode_want(want: Option<Value<'_>>) -> Want {
    let mut w = Want::default();
    for item in want.and_then(|v| v.as_list()).iter().flat_map(|l| l.iter()) {
        match item.as_bytes() {
            Some(b"n4") => w.v4 = true,
            Some(b"n6") => w.v6 = true,
            _ => {}
        }
    }
    w
}

fn decode_response(r_dict: Option<bool>, r: &Reply<'_>) -> Result<Response, Reason> {
    match r_dict {
        Some(true) => {}
        Some(false) => return Err("response r is not a dictionary"),
        None => return Err("missing response r"),
    }
    let values = match r.values {
        None => Vec::new(),
        Some(v) => {
            let list = v.as_list().ok_or("values is not a list")?;
            let peers = list
                .iter()
                .filter_map(|p| p.as_bytes().and_then(compact_addr));
            let mut values = Vec::with_capacity(peers.clone().count());
            values.extend(peers);
            values
        }
    };
    Ok(Response {
        id: Id(fixed(r.id, "missing id", "id is not 20 bytes")?),
        nodes: opt_bytes(r.nodes, "nodes is not a string")?
            .map(|b| compact_nodes(b, NODE4_LEN))
            .unwrap_or_default(),
        nodes6: opt_bytes(r.nodes6, "nodes6 is not a string")?
            .map(|b| compact_nodes(b, NODE6_LEN))
            .unwrap_or_default(),
        token: opt_bytes(r.token, "token is not a string")?.map(<[u8]>::to_vec),
        values,
        value: r.v.map(|v| v.raw().to_vec()),
        key: r
            .k
            .map(|k| fixed(Some(k), "missing k", "k is not 32 bytes"))
            .transpose()?,
        signature: r
            .sig
            .map(|s| fixed(Some(s), "missing sig", "sig is not 64 bytes"))
            .transpose()?,
        seq: opt_int(r.seq, "seq is not an integer")?,
        samples: opt_bytes(r.samples, "samples is not a string")?.map(|b| {
            let mut samples = Vec::with_capacity(b.len() / ID_LEN);
            samples.extend(b.chunks_exact(ID_LEN).filter_map(Id::from_slice));
            samples
        }),
        interval: opt_int(r.interval, "interval is not an integer")?,
        num: opt_int(r.num, "num is not an integer")?,
        // A filter of the wrong size is ignored, not an error: it is advisory.
        bf_seeds: opt_bytes(r.bf_seeds, "BFsd is not a string")?.and_then(ScrapeFilter::from_slice),
        bf_peers: opt_bytes(r.bf_peers, "BFpe is not a string")?.and_then(ScrapeFilter::from_slice),
    })
}

fn decode_error(e: Option<Value<'_>>) -> Result<ErrorBody, Reason> {
    let mut items = required(e, "missing error e")?
        .as_list()
        .ok_or("error e is not a list")?
        .iter();
    let code = items
        .next()
        .and_then(|c| c.as_int())
        .ok_or("error code is not an integer")?;
    let message = items
        .next()
        .and_then(|m| m.as_bytes())
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default();
    Ok(ErrorBody { code, message })
}

fn required<'a>(v: Option<Value<'a>>, missing: Reason) -> Result<Value<'a>, Reason> {
    v.ok_or(missing)
}

fn string<'a>(v: Option<Value<'a>>, missing: Reason, bad: Reason) -> Result<&'a [u8], Reason> {
    required(v, missing)?.as_bytes().ok_or(bad)
}

fn fixed<const N: usize>(
    v: Option<Value<'_>>,
    missing: Reason,
    bad: Reason,
) -> Result<[u8; N], Reason> {
    <[u8; N]>::try_from(string(v, missing, bad)?).map_err(|_| bad)
}

fn opt_bytes<'a>(v: Option<Value<'a>>, bad: Reason) -> Result<Option<&'a [u8]>, Reason> {
    v.map(|v| v.as_bytes().ok_or(bad)).transpose()
}

fn opt_int(v: Option<Value<'_>>, bad: Reason) -> Result<Option<i64>, Reason> {
    v.map(|v| v.as_int().ok_or(bad)).transpose()
}

/// Whole entries of a concatenated compact list; a trailing partial entry is ignored.
fn compact_nodes(b: &[u8], entry_len: usize) -> Vec<NodeInfo> {
    let mut nodes = Vec::with_capacity(b.len() / entry_len);
    nodes.extend(b.chunks_exact(entry_len).filter_map(compact_node));
    nodes
}

/// One `nodes` or `nodes6` entry: the id, then a compact address of the entry's family.
pub(crate) fn compact_node(entry: &[u8]) -> Option<NodeInfo> {
    let (id, addr) = entry.split_first_chunk::<ID_LEN>()?;
    Some(NodeInfo {
        id: Id(*id),
        addr: compact_addr(addr)?,
    })
}

/// A compact address: 4-byte IPv4 or 16-byte IPv6, then a 2-byte port, network order.
fn compact_addr(b: &[u8]) -> Option<SocketAddr> {
    match b.len() {
        6 => {
            let (ip, port) = b.split_first_chunk::<4>()?;
            let port = u16::from_be_bytes(*port.first_chunk::<2>()?);
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(*ip), port)))
        }
        18 => {
            let (ip, port) = b.split_first_chunk::<16>()?;
            let port = u16::from_be_bytes(*port.first_chunk::<2>()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(*ip),
                port,
                0,
                0,
            )))
        }
        _ => None,
    }
}

/// Appends the compact form of `addr` (6 or 18 bytes), without a length prefix.
pub(crate) fn put_compact_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

pub(crate) fn compact_len(addr: &SocketAddr) -> usize {
    if addr.is_ipv4() {
        6
    } else {
        18
    }
}

impl Message {
    /// Appends the bencoded form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_message(self, out)
    }

    /// The bencoded form in a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(256);
        self.encode(&mut v);
        v
    }
}

/// A message's envelope and body, borrowed: what [`Message::encode`] writes, and what the
/// node writes its replies from without building a [`Message`] (no copy of the transaction
/// id, the version or an error's text, no move of the reply).
pub(crate) struct Envelope<'m> {
    pub transaction_id: &'m [u8],
    pub version: Option<&'m [u8]>,
    pub read_only: bool,
    pub requester_ip: Option<SocketAddr>,
    pub body: BodyRef<'m>,
}

/// [`Body`], borrowed.
pub(crate) enum BodyRef<'m> {
    Query(&'m Query),
    Response(&'m Response),
    /// Code and message.
    Error(i64, &'m str),
}

fn encode_message(msg: &Message, out: &mut Vec<u8>) {
    let body = match &msg.body {
        Body::Query(q) => BodyRef::Query(q),
        Body::Response(r) => BodyRef::Response(r),
        Body::Error(e) => BodyRef::Error(e.code, &e.message),
    };
    encode_envelope(
        &Envelope {
            transaction_id: &msg.transaction_id,
            version: msg.version.as_deref(),
            read_only: msg.read_only,
            requester_ip: msg.requester_ip,
            body,
        },
        out,
    )
}

/// Appends the bencoded form of `msg` to `out`.
pub(crate) fn encode_envelope(msg: &Envelope<'_>, out: &mut Vec<u8>) {
    let mut d = DictWriter::new(out);
    match msg.body {
        BodyRef::Query(q) => encode_args(d.key(b"a"), q),
        BodyRef::Error(code, message) => {
            let o = d.key(b"e");
            o.push(b'l');
            write_int(o, code);
            write_bytes(o, message.as_bytes());
            o.push(b'e');
        }
        BodyRef::Response(_) => {}
    }
    if let Some(ip) = &msg.requester_ip {
        let o = d.key(b"ip");
        write_len(o, compact_len(ip));
        put_compact_addr(o, ip);
    }
    if let BodyRef::Query(q) = msg.body {
        d.bytes(b"q", q.method.name());
    }
    if let BodyRef::Response(r) = msg.body {
        encode_response(d.key(b"r"), r);
    }
    if msg.read_only {
        d.int(b"ro", 1);
    }
    d.bytes(b"t", msg.transaction_id);
    if let Some(v) = msg.version {
        d.bytes(b"v", v);
    }
    d.bytes(
        b"y",
        match msg.body {
            BodyRef::Query(_) => b"q",
            BodyRef::Response(_) => b"r",
            BodyRef::Error(..) => b"e",
        },
    );
    d.finish();
}

fn encode_want(d: &mut DictWriter<'_, '_>, want: &Want) {
    if want.is_empty() {
        return;
    }
    let o = d.key(b"want");
    o.push(b'l');
    if want.v4 {
        o.extend_from_slice(b"2:n4");
    }
    if want.v6 {
        o.extend_from_slice(b"2:n6");
    }
    o.push(b'e');
}

fn encode_args(out: &mut Vec<u8>, q: &Query) {
    let mut d = DictWriter::new(out);
    match &q.method {
        Method::Ping | Method::Unknown { .. } => d.bytes(b"id", &q.id.0),
        Method::FindNode { target, want } | Method::SampleInfohashes { target, want } => {
            d.bytes(b"id", &q.id.0);
            d.bytes(b"target", &target.0);
            encode_want(&mut d, want);
        }
        Method::GetPeers {
            info_hash,
            want,
            scrape,
            noseed,
        } => {
            d.bytes(b"id", &q.id.0);
            d.bytes(b"info_hash", &info_hash.0);
            if *noseed {
                d.int(b"noseed", 1);
            }
            if *scrape {
                d.int(b"scrape", 1);
            }
            encode_want(&mut d, want);
        }
        Method::AnnouncePeer {
            info_hash,
            port,
            token,
            implied_port,
            seed,
        } => {
            d.bytes(b"id", &q.id.0);
            if *implied_port {
                d.int(b"implied_port", 1);
            }
            d.bytes(b"info_hash", &info_hash.0);
            d.int(b"port", i64::from(*port));
            if *seed {
                d.int(b"seed", 1);
            }
            d.bytes(b"token", token);
        }
        Method::Get { target, seq, want } => {
            d.bytes(b"id", &q.id.0);
            if let Some(seq) = seq {
                d.int(b"seq", *seq);
            }
            d.bytes(b"target", &target.0);
            encode_want(&mut d, want);
        }
        Method::Put(put) => {
            let m = put.item.as_mutable();
            if let Some(cas) = put.cas.filter(|_| m.is_some()) {
                d.int(b"cas", cas);
            }
            d.bytes(b"id", &q.id.0);
            if let Some(m) = m {
                d.bytes(b"k", &m.key);
                if !m.salt.is_empty() {
                    d.bytes(b"salt", &m.salt);
                }
                d.int(b"seq", m.seq);
                d.bytes(b"sig", &m.signature);
            }
            // Not in BEP 44, but the `mainline` crate (behind pkarr and iroh) drops a
            // put without `target`, silently; every other implementation ignores it.
            d.bytes(b"target", &put.item.target().0);
            d.bytes(b"token", &put.token);
            d.raw(b"v", put.item.value());
        }
    }
    d.finish();
}

fn encode_response(out: &mut Vec<u8>, r: &Response) {
    let mut d = DictWriter::new(out);
    // Upper case sorts first: "BFpe" < "BFsd" < "id".
    if let Some(f) = &r.bf_peers {
        d.bytes(b"BFpe", f.as_bytes());
    }
    if let Some(f) = &r.bf_seeds {
        d.bytes(b"BFsd", f.as_bytes());
    }
    d.bytes(b"id", &r.id.0);
    if let Some(interval) = r.interval {
        d.int(b"interval", interval);
    }
    if let Some(k) = &r.key {
        d.bytes(b"k", k);
    }
    let v4 = r.nodes.iter().filter(|n| n.addr.is_ipv4());
    if v4.clone().next().is_some() {
        let o = d.key(b"nodes");
        write_len(o, v4.clone().count() * NODE4_LEN);
        for n in v4 {
            o.extend_from_slice(&n.id.0);
            put_compact_addr(o, &n.addr);
        }
    }
    let v6 = r.nodes6.iter().filter(|n| n.addr.is_ipv6());
    if v6.clone().next().is_some() {
        let o = d.key(b"nodes6");
        write_len(o, v6.clone().count() * NODE6_LEN);
        for n in v6 {
            o.extend_from_slice(&n.id.0);
            put_compact_addr(o, &n.addr);
        }
    }
    if let Some(num) = r.num {
        d.int(b"num", num);
    }
    if let Some(samples) = &r.samples {
        let o = d.key(b"samples");
        write_len(o, samples.len() * ID_LEN);
        for s in samples {
            o.extend_from_slice(&s.0);
        }
    }
    if let Some(seq) = r.seq {
        d.int(b"seq", seq);
    }
    if let Some(sig) = &r.signature {
        d.bytes(b"sig", sig);
    }
    if let Some(token) = &r.token {
        d.bytes(b"token", token);
    }
    if let Some(v) = &r.value {
        d.raw(b"v", v);
    }
    if !r.values.is_empty() {
        let o = d.key(b"values");
        o.push(b'l');
        for peer in &r.values {
            write_len(o, compact_len(peer));
            put_compact_addr(o, peer);
        }
        o.push(b'e');
    }
    d.finish();
}
