//! Just enough of `/ipfs/kad/1.0.0` for the bench's own processes: the varint-framed
//! message, a FIND_NODE request, a canned FIND_NODE reply, an empty reply of the
//! request's type, and a scan of a reply (its type, its key, how many closer peers).
//!
//! The protobuf is written by hand (five fields of `Message` and three of `Peer`), so
//! that the load generator and the canned server spend their CPU on the transport
//! and not on a codec: what they cost is what the servers under test are compared to.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// IPFS's Kademlia protocol.
pub const KAD: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");

/// `Message.MessageType.FIND_NODE`.
pub const FIND_NODE: u64 = 4;

/// The largest message read: a FIND_NODE reply of 20 peers is about 1.2 kB.
const MAX_MESSAGE: usize = 64 * 1024;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A `Message` of type `kind` with `key`, and closer peers given as (id, addrs).
pub fn message(kind: u64, key: &[u8], closer: &[(Vec<u8>, Vec<Vec<u8>>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + key.len() + closer.len() * 64);
    put_varint(&mut out, 1 << 3);
    put_varint(&mut out, kind);
    if !key.is_empty() {
        put_bytes(&mut out, 2, key);
    }
    for (id, addrs) in closer {
        let mut peer = Vec::with_capacity(id.len() + 32);
        put_bytes(&mut peer, 1, id);
        for a in addrs {
            put_bytes(&mut peer, 2, a);
        }
        // connection: CONNECTED (1), as servers say of peers they have a connection to.
        put_varint(&mut peer, 3 << 3);
        put_varint(&mut peer, 1);
        put_bytes(&mut out, 8, &peer);
    }
    out
}

/// What [`scan`] reads of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// `type` (0, PUT_VALUE, when absent, as protobuf's default).
    pub kind: u64,
    /// `key`, empty when absent.
    pub key: Vec<u8>,
    /// How many `closerPeers` entries it has.
    pub closer: usize,
}

fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Reads a message's type, key and number of closer peers, skipping every other
/// field; `None` when it is not protobuf.
pub fn scan(buf: &[u8]) -> Option<Scanned> {
    let mut s = Scanned {
        kind: 0,
        key: Vec::new(),
        closer: 0,
    };
    let mut at = 0;
    while at < buf.len() {
        let tag = varint(buf, &mut at)?;
        match tag & 7 {
            0 => {
                let v = varint(buf, &mut at)?;
                if tag >> 3 == 1 {
                    s.kind = v;
                }
            }
            1 => at = at.checked_add(8)?,
            5 => at = at.checked_add(4)?,
            2 => {
                let len = usize::try_from(varint(buf, &mut at)?).ok()?;
                let end = at.checked_add(len)?;
                let field = buf.get(at..end)?;
                match tag >> 3 {
                    2 => s.key = field.to_vec(),
                    8 => s.closer += 1,
                    _ => {}
                }
                at = end;
            }
            _ => return None,
        }
    }
    (at == buf.len()).then_some(s)
}

/// Reads one varint-framed message.
pub async fn read_framed<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut len = 0usize;
    for shift in (0..35).step_by(7) {
        let mut b = [0u8; 1];
        io.read_exact(&mut b).await?;
        len |= usize::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            if len > MAX_MESSAGE {
                break;
            }
            let mut msg = vec![0u8; len];
            io.read_exact(&mut msg).await?;
            return Ok(msg);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "bad or oversized length prefix",
    ))
}

/// Writes one varint-framed message in one write.
pub async fn write_framed<T: AsyncWrite + Unpin>(io: &mut T, msg: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(msg.len() + 4);
    put_varint(&mut out, msg.len() as u64);
    out.extend_from_slice(msg);
    io.write_all(&out).await?;
    io.flush().await
}

/// request_response's codec for one kad exchange on a stream of its own: the client
/// writes its request and closes its side, the server answers and closes.
#[derive(Debug, Clone, Default)]
pub struct KadCodec;

impl libp2p::request_response::Codec for KadCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_framed(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_framed(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_framed(io, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_framed(io, &res).await
    }
}

/// The reply a table peer gives to anything: the request's type and key, nothing
/// found (it knows no other peer, so the server under test learns nobody from it).
pub fn empty_reply(request: &[u8]) -> Vec<u8> {
    match scan(request) {
        Some(s) => message(s.kind, &s.key, &[]),
        None => message(FIND_NODE, &[], &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_scans_back() {
        let peers: Vec<_> = (0..20u8)
            .map(|i| (vec![i; 38], vec![vec![4, 127, 0, 0, 1, 6, 0x1f, i]]))
            .collect();
        let m = message(FIND_NODE, b"key", &peers);
        assert_eq!(
            scan(&m),
            Some(Scanned {
                kind: FIND_NODE,
                key: b"key".to_vec(),
                closer: 20
            })
        );
        assert_eq!(scan(&m[..m.len() - 1]), None);
        assert_eq!(
            scan(&empty_reply(&message(5, b"k", &[]))).map(|s| s.kind),
            Some(5)
        );
    }

    #[test]
    fn framing_round_trips() {
        let msg = vec![7u8; 300];
        let mut buf = Vec::new();
        futures::executor::block_on(write_framed(&mut buf, &msg)).expect("write");
        assert_eq!(&buf[..2], &[0xac, 0x02]);
        let back = futures::executor::block_on(read_framed(&mut &buf[..])).expect("read");
        assert_eq!(back, msg);
        let huge = [0xff, 0xff, 0xff, 0x7f];
        assert!(futures::executor::block_on(read_framed(&mut &huge[..])).is_err());
    }
}
