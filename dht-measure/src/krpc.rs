//! The KRPC queries the load generators send, and the little they read of a reply.
//!
//! Both `cargo xtask load` (UDP) and `dht-quic-load` (QUIC) send these templates, so they
//! send the same bytes and their rates compare. Each builds the four read-only queries
//! once and rewrites the transaction id and the random target in place, and reads only
//! the transaction id and message type out of whatever comes back.
//!
//! Hand-written rather than taken from dht-core, so that a load generator measures a node
//! from the outside with an encoder that shares no code (and no bugs) with it. Over QUIC
//! the target also checks that the querier's id is the one derived from the key its
//! handshake proved: the template takes any id, so `dht-quic-load` passes that one.

use std::fmt;

/// Transaction ids are always 4 bytes: the `mainline` crate answers no other length, and 4
/// bytes leave room for a slot index plus a generation counter, 2 bytes each, big-endian.
pub const TRANSACTION_ID_LEN: usize = 4;

/// The query methods the load generator can send.
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
    /// Every kind, in the order the help texts list them.
    pub const ALL: [QueryKind; 4] = [
        QueryKind::Ping,
        QueryKind::FindNode,
        QueryKind::GetPeers,
        QueryKind::Get,
    ];

    /// The method name as it appears in `q`.
    pub fn method(self) -> &'static str {
        match self {
            QueryKind::Ping => "ping",
            QueryKind::FindNode => "find_node",
            QueryKind::GetPeers => "get_peers",
            QueryKind::Get => "get",
        }
    }

    /// The name of the 20-byte argument that is drawn at random for every request, if any.
    fn key_argument(self) -> Option<&'static str> {
        match self {
            QueryKind::Ping => None,
            QueryKind::FindNode | QueryKind::Get => Some("target"),
            QueryKind::GetPeers => Some("info_hash"),
        }
    }

    /// The kind named `name` (the method name), if any.
    pub fn parse(name: &str) -> Option<QueryKind> {
        QueryKind::ALL
            .into_iter()
            .find(|kind| kind.method() == name)
    }
}

impl fmt::Display for QueryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.method())
    }
}

/// One encoded query whose transaction id and random argument are rewritten in place, so that
/// sending a request costs no allocation and no re-encoding.
#[derive(Clone, Debug)]
pub struct QueryTemplate {
    bytes: Vec<u8>,
    transaction_id_at: usize,
    key_at: Option<usize>,
}

impl QueryTemplate {
    /// A read-only query with a zero transaction id and key, to be set before sending.
    pub fn new(kind: QueryKind, id: &[u8; 20]) -> QueryTemplate {
        Self::with(kind, id, &[0; TRANSACTION_ID_LEN], &[0; 20])
    }

    /// Encodes `kind` with every field given. `key` is ignored by `ping`, which has no target.
    ///
    /// Keys are written in the sorted order bencode requires: `a`, `q`, `ro`, `t`, `y` at the
    /// top, `id` before `info_hash` and `target` inside `a`.
    pub fn with(
        kind: QueryKind,
        id: &[u8; 20],
        transaction_id: &[u8; TRANSACTION_ID_LEN],
        key: &[u8; 20],
    ) -> QueryTemplate {
        Self::with_read_only(kind, id, transaction_id, key, true)
    }

    /// As [`QueryTemplate::with`]; `read_only: false` leaves out `ro` = 1, so the target
    /// treats the sender as a node it may add to its table (and pings it).
    pub fn with_read_only(
        kind: QueryKind,
        id: &[u8; 20],
        transaction_id: &[u8; TRANSACTION_ID_LEN],
        key: &[u8; 20],
        read_only: bool,
    ) -> QueryTemplate {
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(b"d1:ad2:id20:");
        bytes.extend_from_slice(id);
        let mut key_at = None;
        if let Some(name) = kind.key_argument() {
            push_string(&mut bytes, name.as_bytes());
            bytes.extend_from_slice(b"20:");
            key_at = Some(bytes.len());
            bytes.extend_from_slice(key);
        }
        bytes.extend_from_slice(b"e1:q");
        push_string(&mut bytes, kind.method().as_bytes());
        // BEP 43: without `ro` the target would add each of our many source ports to its table.
        if read_only {
            bytes.extend_from_slice(b"2:roi1e");
        }
        bytes.extend_from_slice(b"1:t4:");
        let transaction_id_at = bytes.len();
        bytes.extend_from_slice(transaction_id);
        bytes.extend_from_slice(b"1:y1:qe");
        QueryTemplate {
            bytes,
            transaction_id_at,
            key_at,
        }
    }

    /// Writes the 4-byte `t` of the next query in place, so that each request in flight
    /// has its own and the answer can be matched to it.
    pub fn set_transaction_id(&mut self, transaction_id: &[u8; TRANSACTION_ID_LEN]) {
        self.bytes[self.transaction_id_at..self.transaction_id_at + TRANSACTION_ID_LEN]
            .copy_from_slice(transaction_id);
    }

    /// Sets the `target` or `info_hash`; does nothing for `ping`.
    pub fn set_key(&mut self, key: &[u8; 20]) {
        if let Some(at) = self.key_at {
            self.bytes[at..at + 20].copy_from_slice(key);
        }
    }

    /// Whether the query carries a `target` or `info_hash` (every kind but `ping`).
    pub fn has_key(&self) -> bool {
        self.key_at.is_some()
    }

    /// The bencoded query as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn push_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(s);
}

/// The top-level `y` of a KRPC message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// `y` = `q`: our query sent back (an echo server), or a query of the target's own.
    Query,
    /// `y` = `r`.
    Response,
    /// `y` = `e`: a KRPC error, still an answer.
    Error,
}

/// What the load generator needs from a datagram: who it answers and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The message's `t`: the transaction id a response or error echoes from its query,
    /// which tells the load generator which request in flight it answers.
    pub transaction_id: &'a [u8],
    /// The message's `y`: a response, a KRPC error, or a query.
    pub kind: MessageKind,
}

/// Why a datagram was not a KRPC message. Only counted, so the variants stay coarse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Not valid bencode, or not a single dictionary filling the whole datagram.
    Bencode,
    /// Valid bencode, but `t` or `y` is missing or has the wrong type.
    Envelope,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Malformed::Bencode => "not one bencoded dictionary filling the datagram",
            Malformed::Envelope => "a bencoded dictionary without a KRPC `t` and `y`",
        })
    }
}

impl std::error::Error for Malformed {}

/// Nesting deeper than this is refused rather than walked: no DHT message comes close, and a
/// bound keeps a hostile datagram from costing more than its length.
const MAX_DEPTH: usize = 32;

/// Reads `t` and `y` from a KRPC message without allocating, checking that the whole datagram
/// is one well-formed bencoded dictionary. Unknown keys (`ip`, `v`, `r`, ...) are skipped.
pub fn parse_envelope(datagram: &[u8]) -> Result<Envelope<'_>, Malformed> {
    let mut reader = Reader {
        buf: datagram,
        at: 0,
    };
    if reader.next() != Some(b'd') {
        return Err(Malformed::Bencode);
    }
    let mut transaction_id = None;
    let mut kind = None;
    loop {
        if reader.peek() == Some(b'e') {
            reader.at += 1;
            break;
        }
        let key = reader.string()?;
        match key {
            b"t" if reader.peek_is_string() => transaction_id = Some(reader.string()?),
            b"y" if reader.peek_is_string() => {
                kind = match reader.string()? {
                    b"q" => Some(MessageKind::Query),
                    b"r" => Some(MessageKind::Response),
                    b"e" => Some(MessageKind::Error),
                    _ => return Err(Malformed::Envelope),
                }
            }
            _ => reader.skip_value()?,
        }
    }
    if reader.at != datagram.len() {
        return Err(Malformed::Bencode);
    }
    match (transaction_id, kind) {
        (Some(transaction_id), Some(kind)) => Ok(Envelope {
            transaction_id,
            kind,
        }),
        _ => Err(Malformed::Envelope),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn peek_is_string(&self) -> bool {
        self.peek().is_some_and(|b| b.is_ascii_digit())
    }

    fn string(&mut self) -> Result<&'a [u8], Malformed> {
        let mut len: usize = 0;
        let mut digits = 0;
        loop {
            match self.next() {
                Some(b':') if digits > 0 => break,
                Some(d @ b'0'..=b'9') => {
                    digits += 1;
                    // A length longer than the datagram is refused below anyway; this only
                    // keeps the arithmetic from overflowing on a forged 30-digit length.
                    len = len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(usize::from(d - b'0')))
                        .ok_or(Malformed::Bencode)?;
                }
                _ => return Err(Malformed::Bencode),
            }
        }
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or(Malformed::Bencode)?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn integer(&mut self) -> Result<(), Malformed> {
        // Called with the `i` already consumed.
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let mut digits = 0;
        loop {
            match self.next() {
                Some(b'0'..=b'9') => digits += 1,
                Some(b'e') if digits > 0 => return Ok(()),
                _ => return Err(Malformed::Bencode),
            }
        }
    }

    /// Skips one value of any type. Iterative, with an explicit depth, so that nesting costs
    /// no stack; dictionary keys are not checked to be strings because nothing here reads them.
    fn skip_value(&mut self) -> Result<(), Malformed> {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                Some(b'0'..=b'9') => {
                    self.string()?;
                }
                Some(b'i') => {
                    self.at += 1;
                    self.integer()?;
                }
                Some(b'l' | b'd') => {
                    self.at += 1;
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(Malformed::Bencode);
                    }
                    continue;
                }
                Some(b'e') if depth > 0 => {
                    self.at += 1;
                    depth -= 1;
                }
                _ => return Err(Malformed::Bencode),
            }
            if depth == 0 {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &[u8; 20] = b"abcdefghij0123456789";
    const KEY: &[u8; 20] = b"mnopqrstuvwxyz123456";

    #[test]
    fn ping_with_ro_is_byte_exact() {
        let query = QueryTemplate::with(QueryKind::Ping, ID, b"aaaa", KEY);
        assert_eq!(
            query.as_bytes(),
            &b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi1e1:t4:aaaa1:y1:qe"[..]
        );
    }

    #[test]
    fn queries_with_a_key_are_byte_exact() {
        let cases: [(QueryKind, &[u8]); 3] = [
            (
                QueryKind::FindNode,
                b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e\
                  1:q9:find_node2:roi1e1:t4:wxyz1:y1:qe",
            ),
            (
                QueryKind::GetPeers,
                b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e\
                  1:q9:get_peers2:roi1e1:t4:wxyz1:y1:qe",
            ),
            (
                QueryKind::Get,
                b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e\
                  1:q3:get2:roi1e1:t4:wxyz1:y1:qe",
            ),
        ];
        for (kind, expected) in cases {
            let query = QueryTemplate::with(kind, ID, b"wxyz", KEY);
            assert_eq!(
                query.as_bytes(),
                expected,
                "{kind}: {}",
                String::from_utf8_lossy(query.as_bytes())
            );
        }
    }

    #[test]
    fn template_rewrites_in_place() {
        let mut query = QueryTemplate::new(QueryKind::FindNode, ID);
        query.set_transaction_id(b"wxyz");
        query.set_key(KEY);
        assert_eq!(
            query.as_bytes(),
            QueryTemplate::with(QueryKind::FindNode, ID, b"wxyz", KEY).as_bytes()
        );
        let envelope = parse_envelope(query.as_bytes()).unwrap();
        assert_eq!(envelope.transaction_id, b"wxyz");
        assert_eq!(envelope.kind, MessageKind::Query);
    }

    #[test]
    fn parses_a_response_with_ip_and_version() {
        // Shaped like the mainline crate's ping answer in shared/vectors/ping.txt.
        let mut reply = b"d2:ip6:\x7f\x00\x00\x01\x89\xc91:rd2:id20:".to_vec();
        reply.extend_from_slice(&[0xa9; 20]);
        reply.extend_from_slice(b"e2:roi0e1:t4:aaaa1:v4:RS\x00\x051:y1:re");
        let envelope = parse_envelope(&reply).unwrap();
        assert_eq!(envelope.transaction_id, b"aaaa");
        assert_eq!(envelope.kind, MessageKind::Response);
    }

    #[test]
    fn parses_captured_libtorrent_reply() {
        let hex = "64323a6970363a7f0000018097313a7264323a696432303a8d2f8bf39fe36ea09a8651419127\
                   429221f1148b313a706933323931396565313a74323a6161313a76343a4c540208313a79313a7265";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let envelope = parse_envelope(&bytes).unwrap();
        assert_eq!(envelope.transaction_id, b"aa");
        assert_eq!(envelope.kind, MessageKind::Response);
    }

    #[test]
    fn parses_an_error() {
        let envelope = parse_envelope(b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee");
        assert_eq!(
            envelope,
            Ok(Envelope {
                transaction_id: b"aa",
                kind: MessageKind::Error
            })
        );
    }

    #[test]
    fn rejects_malformed_input_without_panicking() {
        let cases: [&[u8]; 16] = [
            b"",
            b"d",
            b"de",
            b"le",
            b"d1:t4:aaaae",
            b"d1:y1:re",
            b"d1:t4:aaaa1:y1:xe",
            b"d1:t4:aaaa1:yi1ee",
            b"d1:t4:aaaa1:y1:ree",
            b"d1:t9:aaaa1:y1:re",
            b"d1:t4:aaaa1:y1:r",
            b"d1:t99999999999999999999999999:a1:y1:re",
            b"d1:xi-e1:t4:aaaa1:y1:re",
            b"d1:xie1:t4:aaaa1:y1:re",
            b"d1:xlll1:t4:aaaa1:y1:re",
            b"d1:t:1:y1:re",
        ];
        for case in cases {
            assert!(
                parse_envelope(case).is_err(),
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
        let deep: Vec<u8> = [&b"d1:x"[..], &[b'l'; 100], &[b'e'; 100], b"1:t1:a1:y1:re"].concat();
        assert_eq!(parse_envelope(&deep), Err(Malformed::Bencode));
    }

    #[test]
    fn every_truncation_of_a_reply_is_rejected() {
        let reply = b"d2:ip6:abcdef1:rd2:id20:mnopqrstuvwxyz123456e1:t4:aaaa1:y1:re";
        assert!(parse_envelope(reply).is_ok());
        for len in 0..reply.len() {
            assert!(parse_envelope(&reply[..len]).is_err(), "{len}");
        }
    }
}
