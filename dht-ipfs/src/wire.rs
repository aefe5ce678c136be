//! The kad-dht wire messages (libp2p `specs/kad-dht`, `/ipfs/kad/1.0.0`) as prost
//! structs written by hand (no protoc at build time), and their framing: an unsigned
//! varint length, then the protobuf `Message`.
//!
//! Decoding is bounded before anything is allocated: the length prefix is read and
//! checked against the limit of the direction (requests 64 KiB, replies 128 KiB by
//! default) before the body is looked at, and a walk over the body's tags refuses
//! groups (proto3 has none; prost would skip them) and more peers or addresses than
//! a message can honestly carry, so that a small message cannot expand into many
//! heap objects. Unknown fields are skipped, as protobuf requires.

use prost::Message as _;

/// `Message.type`: what a message asks. proto3 omits the default, so a PUT_VALUE
/// carries no `type` field at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    /// Store a record.
    PutValue = 0,
    /// Fetch a record, plus closer peers.
    GetValue = 1,
    /// Announce the sender as a provider of a key (no reply).
    AddProvider = 2,
    /// Fetch the providers of a key, plus closer peers.
    GetProviders = 3,
    /// The closest peers to a key.
    FindNode = 4,
    /// Liveness (deprecated in the spec: answered, never sent).
    Ping = 5,
}

/// `Peer.connection`: the sender's view of its connection to the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum ConnectionType {
    /// No connection, no knowledge.
    NotConnected = 0,
    /// Connected right now.
    Connected = 1,
    /// Recently connected.
    CanConnect = 2,
    /// Recently failed to connect.
    CannotConnect = 3,
}

/// `Record`: a key and its value, with rust-libp2p's `publisher` and `ttl` extensions.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Record {
    /// The record key (preimage: the keyspace point is its SHA-256).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The value.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    /// When the sender received it (RFC 3339 in go; informative only).
    #[prost(string, tag = "5")]
    pub time_received: String,
    /// The PeerId of the original publisher (rust-libp2p).
    #[prost(bytes = "vec", tag = "666")]
    pub publisher: Vec<u8>,
    /// Seconds the record should live; 0: no TTL given (rust-libp2p).
    #[prost(uint32, tag = "777")]
    pub ttl: u32,
}

/// `Message.Peer`: a PeerId, its multiaddrs (binary) and the connection hint.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Peer {
    /// The PeerId (binary multihash).
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// Binary multiaddrs.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub addrs: Vec<Vec<u8>>,
    /// A [`ConnectionType`].
    #[prost(enumeration = "ConnectionType", tag = "3")]
    pub connection: i32,
}

/// `Message`: every request and reply of the protocol.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Message {
    /// A [`MessageType`].
    #[prost(enumeration = "MessageType", tag = "1")]
    pub r#type: i32,
    /// Unused by every implementation; kept so that it round-trips.
    #[prost(int32, tag = "10")]
    pub cluster_level_raw: i32,
    /// The key asked about (FIND_NODE: any bytes; others: a record or provider key).
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    /// PUT_VALUE's record, GET_VALUE's answer.
    #[prost(message, optional, tag = "3")]
    pub record: Option<Record>,
    /// Peers closer to the key.
    #[prost(message, repeated, tag = "8")]
    pub closer_peers: Vec<Peer>,
    /// ADD_PROVIDER's announcement, GET_PROVIDERS' answer.
    #[prost(message, repeated, tag = "9")]
    pub provider_peers: Vec<Peer>,
}

impl Message {
    /// A message of `kind` about `key`, nothing else set.
    pub fn new(kind: MessageType, key: Vec<u8>) -> Message {
        Message {
            r#type: kind as i32,
            key,
            ..Message::default()
        }
    }

    /// The message type, if it is one this protocol knows.
    pub fn kind(&self) -> Option<MessageType> {
        MessageType::try_from(self.r#type).ok()
    }
}

/// Most peers decoded in one list (`closerPeers` or `providerPeers`): go answers 20
/// closer peers and rarely more than a few dozen providers. A peer costs ~80 bytes of
/// heap for 2 bytes on the wire, so this keeps decoding within a few times its input.
pub const MAX_PEERS_PER_LIST: usize = 256;

/// Most addresses decoded for one peer.
pub const MAX_ADDRS_PER_PEER: usize = 64;

/// Why a frame or message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix says more than the limit: refused before reading the body.
    #[error("message of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// What the prefix said.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The length prefix is not a valid unsigned varint (over 9 bytes, or not minimal).
    #[error("bad length prefix")]
    BadPrefix,
    /// The bytes end before the prefix or the body does.
    #[error("truncated message")]
    Truncated,
    /// Bytes follow the message.
    #[error("trailing bytes after the message")]
    Trailing,
    /// A group (wire types 3 and 4): proto3 has none.
    #[error("protobuf groups are refused")]
    Group,
    /// More peers or addresses than [`MAX_PEERS_PER_LIST`] / [`MAX_ADDRS_PER_PEER`].
    #[error("too many peers or addresses")]
    TooMany,
    /// Not a valid protobuf `Message`.
    #[error("malformed protobuf")]
    Malformed,
}

/// Reads an unsigned varint (multiformats: at most 9 bytes, minimal encoding) from the
/// front of `bytes`: its value and its length, `Ok(None)` when more bytes are needed.
pub fn read_uvarint(bytes: &[u8]) -> Result<Option<(u64, usize)>, DecodeError> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if i >= 9 {
            return Err(DecodeError::BadPrefix);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            // Minimal: a last byte of 0 after others pads the number.
            if b == 0 && i > 0 {
                return Err(DecodeError::BadPrefix);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 9 {
        return Err(DecodeError::BadPrefix);
    }
    Ok(None)
}

/// Reads a frame's length prefix and checks it against `max` before any body is read:
/// `Ok(Some((prefix_len, body_len)))`, `Ok(None)` when the prefix is incomplete. A
/// transport calls this on the first bytes of a stream and allocates the body only
/// when it passes.
pub fn frame_header(bytes: &[u8], max: usize) -> Result<Option<(usize, usize)>, DecodeError> {
    let Some((len, used)) = read_uvarint(bytes)? else {
        return Ok(None);
    };
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(Some((used, n))),
        _ => Err(DecodeError::TooLarge { len, max }),
    }
}

/// Decodes one whole frame (prefix, then exactly one message) of at most `max` body
/// bytes.
pub fn decode_frame(bytes: &[u8], max: usize) -> Result<Message, DecodeError> {
    let (used, len) = frame_header(bytes, max)?.ok_or(DecodeError::Truncated)?;
    let rest = &bytes[used..];
    match rest.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(DecodeError::Truncated),
        std::cmp::Ordering::Greater => Err(DecodeError::Trailing),
        std::cmp::Ordering::Equal => decode_message(rest),
    }
}

/// Decodes a message body (no prefix), after checking its shape (see the module doc).
pub fn decode_message(body: &[u8]) -> Result<Message, DecodeError> {
    check_shape(body)?;
    Message::decode(body).map_err(|_| DecodeError::Malformed)
}

/// Encodes `msg` as one frame: its length as an unsigned varint, then the message.
pub fn encode_frame(msg: &Message) -> Vec<u8> {
    msg.encode_length_delimited_to_vec()
}

/// The length of `msg`'s frame, prefix included.
pub fn frame_len(msg: &Message) -> usize {
    let body = msg.encoded_len();
    prost::length_delimiter_len(body) + body
}

/// Addresses kept for each peer of a reply we send (rust-libp2p and go keep them all;
/// eight reach any peer and keep 20 of them within 16 KiB).
pub const SEND_ADDRS_PER_PEER: usize = 8;

/// Trims `msg` to a frame of at most `max` bytes: every peer to its first
/// [`SEND_ADDRS_PER_PEER`] addresses, then the last (farthest: lists are sorted
/// closest first) closer peers, then the last provider peers, until it fits. False
/// when it still does not fit (a record alone too large), so the caller refuses.
pub fn trim_to_fit(msg: &mut Message, max: usize) -> bool {
    for p in msg
        .closer_peers
        .iter_mut()
        .chain(msg.provider_peers.iter_mut())
    {
        p.addrs.truncate(SEND_ADDRS_PER_PEER);
    }
    while frame_len(msg) > max {
        if msg.closer_peers.pop().is_none() && msg.provider_peers.pop().is_none() {
            return false;
        }
    }
    true
}

/// A varint as protobuf writes it.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field.
fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The bytes of a [`Peer`] of `id` at `addrs` with connection
/// [`ConnectionType::NotConnected`] (proto3 leaves that default out), as prost encodes
/// it: a server caches them per contact and names it in reply after reply without
/// building a [`Peer`] each time ([`encode_closer_reply`]).
pub(crate) fn peer_fields<'a>(id: &[u8], addrs: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    if !id.is_empty() {
        put_bytes(&mut out, 1, id);
    }
    for a in addrs {
        put_bytes(&mut out, 2, a);
    }
    out
}

/// `Peer.connection = CONNECTED`, after a peer's [`peer_fields`].
const CONNECTED_FIELD: [u8; 2] = [3 << 3, ConnectionType::Connected as u8];

/// The frame of a reply of `kind` (no key, no record, no providers) naming `closer`
/// (each a peer's [`peer_fields`] and whether it is connected), byte for byte what
/// [`encode_frame`] writes of that [`Message`] after [`trim_to_fit`] (the peers'
/// addresses already trimmed): the farthest peers go until it fits in `max`. `None`
/// when it does not fit even without them.
pub(crate) fn encode_closer_reply(
    kind: MessageType,
    closer: &[(&[u8], bool)],
    max: usize,
) -> Option<Vec<u8>> {
    let peer_len = |(fields, connected): &(&[u8], bool)| {
        fields.len() + if *connected { CONNECTED_FIELD.len() } else { 0 }
    };
    let entry_len = |p: &(&[u8], bool)| {
        let n = peer_len(p);
        1 + prost::length_delimiter_len(n) + n
    };
    // prost leaves the default (PUT_VALUE, 0) out.
    let head = if kind == MessageType::PutValue { 0 } else { 2 };
    let mut body = head + closer.iter().map(entry_len).sum::<usize>();
    let mut keep = closer.len();
    while prost::length_delimiter_len(body) + body > max {
        keep = keep.checked_sub(1)?;
        body -= entry_len(&closer[keep]);
    }
    let mut out = Vec::with_capacity(prost::length_delimiter_len(body) + body);
    put_varint(&mut out, body as u64);
    if head > 0 {
        out.extend([1 << 3, kind as u8]);
    }
    for p in &closer[..keep] {
        put_varint(&mut out, 8 << 3 | 2);
        put_varint(&mut out, peer_len(p) as u64);
        out.extend_from_slice(p.0);
        if p.1 {
            out.extend(CONNECTED_FIELD);
        }
    }
    Some(out)
}

/// One field of a protobuf body: its number, wire type and, for length-delimited
/// fields, the payload.
struct Field<'a> {
    number: u64,
    payload: Option<&'a [u8]>,
}

/// Walks the fields of `body`, refusing groups and anything malformed.
fn fields(
    body: &[u8],
    mut each: impl FnMut(Field<'_>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut at = 0;
    while at < body.len() {
        let (tag, n) = read_varint_any(&body[at..])?;
        at += n;
        let number = tag >> 3;
        if number == 0 {
            return Err(DecodeError::Malformed);
        }
        let payload = match tag & 7 {
            0 => {
                let (_, n) = read_varint_any(&body[at..])?;
                at += n;
                None
            }
            1 => {
                at = at
                    .checked_add(8)
                    .filter(|&e| e <= body.len())
                    .ok_or(DecodeError::Truncated)?;
                None
            }
            2 => {
                let (len, n) = read_varint_any(&body[at..])?;
                at += n;
                let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
                let end = at
                    .checked_add(len)
                    .filter(|&e| e <= body.len())
                    .ok_or(DecodeError::Truncated)?;
                let p = &body[at..end];
                at = end;
                Some(p)
            }
            3 | 4 => return Err(DecodeError::Group),
            5 => {
                at = at
                    .checked_add(4)
                    .filter(|&e| e <= body.len())
                    .ok_or(DecodeError::Truncated)?;
                None
            }
            _ => return Err(DecodeError::Malformed),
        };
        each(Field { number, payload })?;
    }
    Ok(())
}

/// A protobuf varint (up to 10 bytes, not necessarily minimal, as protobuf allows).
fn read_varint_any(bytes: &[u8]) -> Result<(u64, usize), DecodeError> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f).wrapping_shl(7 * i as u32);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if bytes.len() >= 10 {
        Err(DecodeError::Malformed)
    } else {
        Err(DecodeError::Truncated)
    }
}

/// The shape check: no group anywhere in `Message`, its `Record` or its `Peer`s; at
/// most [`MAX_PEERS_PER_LIST`] peers a list and [`MAX_ADDRS_PER_PEER`] addresses a
/// peer. Unknown fields pass (they are skipped by the decoder), but a group hidden in
/// one is refused too, since the walk sees every tag of these three messages.
fn check_shape(body: &[u8]) -> Result<(), DecodeError> {
    let (mut closer, mut providers) = (0usize, 0usize);
    fields(body, |f| {
        match (f.number, f.payload) {
            (3, Some(record)) => fields(record, |_| Ok(()))?,
            (8 | 9, Some(peer)) => {
                let list = if f.number == 8 {
                    &mut closer
                } else {
                    &mut providers
                };
                *list += 1;
                if *list > MAX_PEERS_PER_LIST {
                    return Err(DecodeError::TooMany);
                }
                let mut addrs = 0usize;
                fields(peer, |pf| {
                    if pf.number == 2 {
                        addrs += 1;
                        if addrs > MAX_ADDRS_PER_PEER {
                            return Err(DecodeError::TooMany);
                        }
                    }
                    Ok(())
                })?;
            }
            _ => {}
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_is_minimal_and_at_most_nine_bytes() {
        assert_eq!(read_uvarint(&[0x00]), Ok(Some((0, 1))));
        assert_eq!(read_uvarint(&[0x80, 0x01]), Ok(Some((128, 2))));
        assert_eq!(read_uvarint(&[0x80, 0x00]), Err(DecodeError::BadPrefix));
        assert_eq!(read_uvarint(&[0x80]), Ok(None));
        assert_eq!(read_uvarint(&[0xff; 9]), Err(DecodeError::BadPrefix));
    }

    /// What `encode_closer_reply` must equal: prost's frame of the trimmed message.
    fn by_prost(kind: MessageType, peers: &[Peer], max: usize) -> Option<Vec<u8>> {
        let mut m = Message::new(kind, Vec::new());
        m.closer_peers = peers.to_vec();
        trim_to_fit(&mut m, max).then(|| encode_frame(&m))
    }

    /// Peer `n`: up to 12 addresses, some long (two-byte lengths), some empty.
    fn test_peer(n: usize) -> Peer {
        let addrs = (0..n % 13).map(|i| vec![i as u8; (n * 7 + i * 40) % 150]);
        let connection = match n % 3 {
            0 => ConnectionType::Connected,
            _ => ConnectionType::NotConnected,
        };
        Peer {
            id: [0x00, 0x24].into_iter().chain([n as u8; 36]).collect(),
            addrs: addrs.collect(),
            connection: connection as i32,
        }
    }

    #[test]
    fn closer_replies_are_prost_s_bytes_trimmed_alike() {
        let peers: Vec<Peer> = (0..40).map(test_peer).collect();
        let fields: Vec<(Vec<u8>, bool)> = peers
            .iter()
            .map(|p| {
                let addrs = p.addrs.iter().take(SEND_ADDRS_PER_PEER);
                let connected = p.connection == ConnectionType::Connected as i32;
                (peer_fields(&p.id, addrs.map(|a| &a[..])), connected)
            })
            .collect();
        let closer: Vec<(&[u8], bool)> = fields.iter().map(|(f, c)| (&f[..], *c)).collect();
        let maxes = [
            0,
            1,
            2,
            3,
            50,
            100,
            300,
            1000,
            2000,
            5000,
            16 * 1024,
            usize::MAX,
        ];
        for kind in [MessageType::FindNode, MessageType::PutValue] {
            for count in [0, 1, 20, 40] {
                for max in maxes {
                    assert_eq!(
                        encode_closer_reply(kind, &closer[..count], max),
                        by_prost(kind, &peers[..count], max),
                        "{kind:?}, {count} peers, max {max}"
                    );
                }
            }
        }
    }
}
