//! The on-disk encoding of keys and records: hand-written, versioned, big-endian.
//!
//! Hand-written rather than serde + bincode because the records are few and small,
//! the key layout must sort in a prescribed order (peers by `SocketAddr`'s `Ord`,
//! deadlines by time), and a decoder that checks every length before it slices can
//! be read in one sitting and shown never to panic on corrupt bytes.
//!
//! Every record value starts with [`RECORD_V1`], so a later format can be told apart
//! record by record; keys carry no version (the data dir's marker covers them).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use dht_core::{Id, NodeInfo, ID_LEN};
use dht_core::{Item, MutableItem, RoutingSnapshot, SnapshotNode, StoredItem, UnixMillis};
pub(crate) use dht_datadir::codec::DecodeError;
use dht_datadir::codec::Reader;

/// First byte of every record value written by this version.
pub(crate) const RECORD_V1: u8 = 1;

/// Deadline index key kind of an item (followed by its target).
pub(crate) const KIND_ITEM: u8 = 0;
/// Deadline index key kind of a peer (followed by its peers-tree key).
pub(crate) const KIND_PEER: u8 = 1;

const ADDR_V4: u8 = 4;
const ADDR_V6: u8 = 6;
const ADDR_V4_LEN: usize = 1 + 4 + 2;
const ADDR_V6_LEN: usize = 1 + 16 + 2 + 4 + 4;

/// The fields of this store's records beyond integers, read on `dht-datadir`'s cursor.
trait Fields {
    fn id(&mut self) -> Result<Id, DecodeError>;
    fn version(&mut self) -> Result<(), DecodeError>;
    fn addr(&mut self) -> Result<SocketAddr, DecodeError>;
}

impl Fields for Reader<'_> {
    fn id(&mut self) -> Result<Id, DecodeError> {
        Ok(Id(self.array()?))
    }

    fn version(&mut self) -> Result<(), DecodeError> {
        match self.u8()? {
            RECORD_V1 => Ok(()),
            _ => Err(self.err("unknown record version")),
        }
    }

    fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        match self.u8()? {
            ADDR_V4 => {
                let ip = Ipv4Addr::from(self.array::<4>()?);
                Ok(SocketAddr::V4(SocketAddrV4::new(ip, self.u16()?)))
            }
            ADDR_V6 => {
                let ip = Ipv6Addr::from(self.array::<16>()?);
                let port = self.u16()?;
                let flowinfo = self.u32()?;
                let scope_id = self.u32()?;
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    ip, port, flowinfo, scope_id,
                )))
            }
            _ => Err(self.err("unknown address family")),
        }
    }
}

/// Appends `addr` so that byte order equals `SocketAddr`'s `Ord`: the family tag puts
/// every IPv4 address first, then the fields in the order std compares them
/// (ip, port, and for IPv6 flowinfo, scope_id), each big-endian.
pub(crate) fn put_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            out.push(ADDR_V4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        SocketAddr::V6(a) => {
            out.push(ADDR_V6);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
            out.extend_from_slice(&a.flowinfo().to_be_bytes());
            out.extend_from_slice(&a.scope_id().to_be_bytes());
        }
    }
}

/// Key of the peers tree: `info_hash || addr`, so one info_hash's peers are one
/// contiguous, address-ordered range.
pub(crate) fn peer_key(info_hash: &Id, addr: &SocketAddr) -> Vec<u8> {
    let mut k = Vec::with_capacity(ID_LEN + ADDR_V6_LEN);
    k.extend_from_slice(&info_hash.0);
    put_addr(&mut k, addr);
    k
}

/// Splits a peers-tree key into its info_hash and address.
pub(crate) fn decode_peer_key(key: &[u8]) -> Result<(Id, SocketAddr), DecodeError> {
    let mut r = Reader::new(key, "peer key");
    let ih = r.id()?;
    let addr = r.addr()?;
    r.end()?;
    Ok((ih, addr))
}

/// Key of the deadline index: `expires_at || kind || key`, so that everything due at
/// or before `now` is one range scan from the start of the tree.
pub(crate) fn deadline_key(expires_at: UnixMillis, kind: u8, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + key.len());
    k.extend_from_slice(&expires_at.to_be_bytes());
    k.push(kind);
    k.extend_from_slice(key);
    k
}

/// A parsed deadline index key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// An item's target.
    Item(Id),
    /// A peer: its info_hash and its full peers-tree key.
    Peer(Id, Vec<u8>),
}

/// Parses a deadline index key into its deadline and what it points at.
pub(crate) fn decode_deadline_key(key: &[u8]) -> Result<(UnixMillis, Deadline), DecodeError> {
    let mut r = Reader::new(key, "deadline key");
    let at = r.u64()?;
    match r.u8()? {
        KIND_ITEM => {
            let target = r.id()?;
            r.end()?;
            Ok((at, Deadline::Item(target)))
        }
        KIND_PEER => {
            let rest = r.rest();
            let (ih, _) = decode_peer_key(rest)?;
            Ok((at, Deadline::Peer(ih, rest.to_vec())))
        }
        _ => Err(r.err("unknown kind")),
    }
}

/// `[v1][expires_at u64][kind u8: 0 immutable, 1 mutable]`
/// `[if mutable: key 32][signature 64][seq i64][salt len u32][salt]`
/// `[value len u32][value]`; the target is the key.
pub(crate) fn encode_item(item: &StoredItem) -> Vec<u8> {
    let extra = item
        .item
        .as_mutable()
        .map_or(0, |m| 32 + 64 + 8 + 4 + m.salt.len());
    let value = item.item.value();
    let mut out = Vec::with_capacity(1 + 8 + 1 + extra + 4 + value.len());
    out.push(RECORD_V1);
    out.extend_from_slice(&item.expires_at.to_be_bytes());
    match &item.item {
        Item::Immutable { .. } => out.push(0),
        Item::Mutable(m) => {
            out.push(1);
            out.extend_from_slice(&m.key);
            out.extend_from_slice(&m.signature);
            out.extend_from_slice(&m.seq.to_be_bytes());
            put_len(&mut out, m.salt.len());
            out.extend_from_slice(&m.salt);
        }
    }
    put_len(&mut out, value.len());
    out.extend_from_slice(value);
    out
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Values and salts come from single datagrams (< 64 KiB), far below u32::MAX.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
}

/// Decodes an item record stored under `target`.
pub(crate) fn decode_item(target: Id, bytes: &[u8]) -> Result<StoredItem, DecodeError> {
    let mut r = Reader::new(bytes, "item record");
    r.version()?;
    let expires_at = r.u64()?;
    let signed = match r.u8()? {
        0 => None,
        1 => {
            let key = r.array::<32>()?;
            let signature = r.array::<64>()?;
            let seq = i64::from_be_bytes(r.array()?);
            let salt_len = r.u32()? as usize;
            let salt = r.take(salt_len)?.to_vec();
            Some((key, signature, seq, salt))
        }
        _ => return Err(r.err("unknown item kind")),
    };
    let value_len = r.u32()? as usize;
    let value = r.take(value_len)?.to_vec();
    r.end()?;
    let item = match signed {
        None => Item::Immutable { value },
        Some((key, signature, seq, salt)) => Item::Mutable(MutableItem {
            key,
            signature,
            seq,
            salt,
            value,
        }),
    };
    Ok(StoredItem {
        target,
        item,
        expires_at,
    })
}

/// The deadline of an item record, without decoding the rest (used on replace).
pub(crate) fn item_deadline(bytes: &[u8]) -> Result<UnixMillis, DecodeError> {
    let mut r = Reader::new(bytes, "item record");
    r.version()?;
    r.u64()
}

/// `[v1][expires_at u64]` for a peer, `[v1][expires_at u64][flags u8]` with bit 0 set
/// for a seed (BEP 33). Format 1 data dirs hold only the short form, which still
/// decodes (as a peer that is not a seed).
pub(crate) fn encode_peer(expires_at: UnixMillis, seed: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    out.push(RECORD_V1);
    out.extend_from_slice(&expires_at.to_be_bytes());
    if seed {
        out.push(PEER_SEED);
    }
    out
}

/// Bit 0 of a peer record's flags: the peer is a seed.
const PEER_SEED: u8 = 1;

/// Decodes a peer record into its deadline and seed status.
pub(crate) fn decode_peer(bytes: &[u8]) -> Result<(UnixMillis, bool), DecodeError> {
    let mut r = Reader::new(bytes, "peer record");
    r.version()?;
    let at = r.u64()?;
    let seed = if r.remaining() == 0 {
        false
    } else {
        match r.u8()? {
            0 => false,
            PEER_SEED => true,
            _ => return Err(r.err("unknown peer flags")),
        }
    };
    r.end()?;
    Ok((at, seed))
}

/// `[v1][has id u8][id 20 if any][count u32][count x (id 20, addr, last_seen u64)]`
pub(crate) fn encode_routing(s: &RoutingSnapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + ID_LEN + 4 + s.nodes.len() * (ID_LEN + ADDR_V6_LEN + 8));
    out.push(RECORD_V1);
    match &s.node_id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            out.extend_from_slice(&id.0);
        }
    }
    put_len(&mut out, s.nodes.len());
    for n in &s.nodes {
        out.extend_from_slice(&n.node.id.0);
        put_addr(&mut out, &n.node.addr);
        out.extend_from_slice(&n.last_seen.to_be_bytes());
    }
    out
}

/// Decodes a routing snapshot record.
pub(crate) fn decode_routing(bytes: &[u8]) -> Result<RoutingSnapshot, DecodeError> {
    let mut r = Reader::new(bytes, "routing snapshot");
    r.version()?;
    let node_id = match r.u8()? {
        0 => None,
        1 => Some(r.id()?),
        _ => return Err(r.err("bad node id flag")),
    };
    let count = r.u32()? as usize;
    // Capacity bounded by what the bytes can hold, not by the (possibly corrupt) count.
    let mut nodes = Vec::with_capacity(count.min(r.remaining() / (ID_LEN + ADDR_V4_LEN + 8)));
    for _ in 0..count {
        let id = r.id()?;
        let addr = r.addr()?;
        let last_seen = r.u64()?;
        nodes.push(SnapshotNode {
            node: NodeInfo { id, addr },
            last_seen,
        });
    }
    r.end()?;
    Ok(RoutingSnapshot { node_id, nodes })
}

/// `[v1][id 20]`
pub(crate) fn encode_node_id(id: &Id) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + ID_LEN);
    out.push(RECORD_V1);
    out.extend_from_slice(&id.0);
    out
}

/// Decodes the node id record.
pub(crate) fn decode_node_id(bytes: &[u8]) -> Result<Id, DecodeError> {
    let mut r = Reader::new(bytes, "node id");
    r.version()?;
    let id = r.id()?;
    r.end()?;
    Ok(id)
}

/// `[v1][generation u64]`
pub(crate) fn encode_generation(g: u64) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[0] = RECORD_V1;
    out[1..].copy_from_slice(&g.to_be_bytes());
    out
}

/// Decodes the flush generation record.
pub(crate) fn decode_generation(bytes: &[u8]) -> Result<u64, DecodeError> {
    let mut r = Reader::new(bytes, "flush generation");
    r.version()?;
    let g = r.u64()?;
    r.end()?;
    Ok(g)
}

/// The smallest key after every key that starts with `prefix`, or `None` when no key
/// can follow (the prefix is all 0xff).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut k = prefix.to_vec();
    while let Some(last) = k.pop() {
        if last < 0xff {
            k.push(last + 1);
            return Some(k);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_addr(rng: &mut ChaCha8Rng) -> SocketAddr {
        // Small value ranges so that ties on one field exercise the next one.
        let small = |rng: &mut ChaCha8Rng| (rng.next_u32() % 3) as u8;
        if rng.next_u32() & 1 == 0 {
            let ip = Ipv4Addr::new(small(rng), small(rng), 0, small(rng));
            SocketAddr::V4(SocketAddrV4::new(ip, u16::from(small(rng)) * 0x1ff))
        } else {
            let ip = Ipv6Addr::new([0, 1, 0xfe80][usize::from(small(rng))], 0, 0, 0, 0, 0, 0, 1);
            SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from(small(rng)),
                u32::from(small(rng)) << 24,
                u32::from(small(rng)),
            ))
        }
    }

    /// get_peers relies on key order being address order.
    #[test]
    fn addr_bytes_sort_like_socket_addr() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20_000 {
            let (a, b) = (random_addr(&mut rng), random_addr(&mut rng));
            let (ka, kb) = (peer_key(&Id::ZERO, &a), peer_key(&Id::ZERO, &b));
            assert_eq!(ka.cmp(&kb), a.cmp(&b), "{a} vs {b}");
            assert_eq!(decode_peer_key(&ka), Ok((Id::ZERO, a)));
        }
    }

    #[test]
    fn records_round_trip() {
        let item = StoredItem {
            target: Id([3; 20]),
            item: Item::Mutable(MutableItem {
                key: [1; 32],
                signature: [2; 64],
                seq: -5,
                salt: b"salt".to_vec(),
                value: b"4:spam".to_vec(),
            }),
            expires_at: 42,
        };
        let enc = encode_item(&item);
        assert_eq!(decode_item(item.target, &enc), Ok(item));
        assert_eq!(item_deadline(&enc), Ok(42));
        assert_eq!(
            decode_peer(&encode_peer(u64::MAX, false)),
            Ok((u64::MAX, false))
        );
        assert_eq!(decode_peer(&encode_peer(7, true)), Ok((7, true)));
        // A format 1 record (no flags byte) is a peer that is not a seed.
        assert_eq!(encode_peer(7, false).len(), 9);
        let k = deadline_key(
            9,
            KIND_PEER,
            &peer_key(&Id([5; 20]), &"[::1]:5".parse().unwrap()),
        );
        let (at, d) = decode_deadline_key(&k).unwrap();
        assert_eq!(at, 9);
        assert!(matches!(d, Deadline::Peer(ih, _) if ih == Id([5; 20])));
    }

    /// Every prefix and every single-byte change of valid records either decodes or
    /// errors: never panics.
    #[test]
    fn corrupt_records_never_panic() {
        let item = encode_item(&StoredItem {
            target: Id::ZERO,
            item: Item::Mutable(MutableItem {
                key: [1; 32],
                signature: [2; 64],
                seq: 1,
                salt: vec![3; 8],
                value: vec![7; 40],
            }),
            expires_at: 1,
        });
        let routing = encode_routing(&RoutingSnapshot {
            node_id: Some(Id([1; 20])),
            nodes: vec![SnapshotNode {
                node: NodeInfo {
                    id: Id([2; 20]),
                    addr: "[::1]:1".parse().unwrap(),
                },
                last_seen: 3,
            }],
        });
        let dkey = deadline_key(
            1,
            KIND_PEER,
            &peer_key(&Id::ZERO, &"1.2.3.4:5".parse().unwrap()),
        );
        for rec in [&item, &routing, &dkey] {
            for cut in 0..rec.len() {
                let _ = decode_item(Id::ZERO, &rec[..cut]);
                let _ = decode_routing(&rec[..cut]);
                let _ = decode_deadline_key(&rec[..cut]);
            }
            for i in 0..rec.len() {
                for x in [0u8, 1, 0x7f, 0xff] {
                    let mut bad = rec.to_vec();
                    bad[i] = x;
                    let _ = decode_item(Id::ZERO, &bad);
                    let _ = decode_routing(&bad);
                    let _ = decode_deadline_key(&bad);
                    let _ = decode_peer(&bad);
                    let _ = decode_node_id(&bad);
                }
            }
        }
    }

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
    }
}
