//! libp2p peers as the kernel holds them: a [`PeerId`] (a binary multihash of the
//! peer's public key), its place in the 256-bit keyspace (SHA-256 of the PeerId
//! bytes) and a bounded list of multiaddrs ([`PeerInfo`], the kernel's [`Contact`]).
//!
//! The IP the diversity rules count is the first address's; loopback and private
//! addresses are exempt from them under `dht_core::Defense`'s default, as in the
//! Mainline node, and `Defense::exempt_local = false` applies them.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use dht_core::kernel::Contact;
use dht_core::Id;
use multiaddr::{Multiaddr, Protocol};
use sha2::{Digest, Sha256};

use crate::wire;

/// A point of the 256-bit keyspace.
pub type Key = Id<32>;

/// The keyspace point of any preimage: a PeerId's bytes, a record key, a provider key.
/// The spec's XOR distance is taken between SHA-256 digests, so that every kind of key
/// spreads evenly over one 256-bit space whatever its own length or shape.
pub fn key_of(preimage: &[u8]) -> Key {
    Id(Sha256::digest(preimage).into())
}

/// Multihash code of the identity hash (public keys of at most 42 bytes inline).
const IDENTITY: u64 = 0x00;
/// Multihash code of SHA-256.
const SHA2_256: u64 = 0x12;
/// Longest encoded public key a PeerId carries inline (libp2p's peer-ids spec).
pub const MAX_INLINE_KEY_LEN: usize = 42;

/// Longest binary PeerId: one byte of code, one of length, a 42-byte inline key.
const MAX_PEER_ID_LEN: usize = 2 + MAX_INLINE_KEY_LEN;

/// A libp2p PeerId: the identity multihash of a protobuf-encoded public key of at most
/// 42 bytes (ed25519, secp256k1), or its SHA-256 multihash (RSA, ECDSA).
///
/// Held inline (at most 44 bytes): a PeerId is copied into every contact, candidate and
/// set of peers, and a heap allocation for each cost more than the bytes themselves.
/// Compared, ordered and hashed as its bytes.
#[derive(Clone)]
pub struct PeerId {
    len: u8,
    bytes: [u8; MAX_PEER_ID_LEN],
}

impl PartialEq for PeerId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for PeerId {}

impl PartialOrd for PeerId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PeerId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for PeerId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

/// Bytes that are no PeerId.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a PeerId multihash")]
pub struct InvalidPeerId;

impl PeerId {
    /// Parses a binary PeerId: identity (digest of at most 42 bytes) or SHA-256
    /// (digest of 32 bytes), nothing after the digest.
    pub fn from_bytes(bytes: &[u8]) -> Result<PeerId, InvalidPeerId> {
        let (code, n) = small_varint(bytes).ok_or(InvalidPeerId)?;
        let (len, m) = small_varint(&bytes[n..]).ok_or(InvalidPeerId)?;
        let digest = &bytes[n + m..];
        let fits = match code {
            IDENTITY => digest.len() <= MAX_INLINE_KEY_LEN,
            SHA2_256 => digest.len() == 32,
            _ => false,
        };
        if !fits || digest.len() as u64 != len || bytes.len() > MAX_PEER_ID_LEN {
            return Err(InvalidPeerId);
        }
        Ok(PeerId::inline(bytes))
    }

    /// The PeerId of a protobuf-encoded public key (libp2p's `PublicKey` message).
    pub fn from_public_key_protobuf(encoded: &[u8]) -> PeerId {
        let (code, digest): (u8, Vec<u8>) = if encoded.len() <= MAX_INLINE_KEY_LEN {
            (IDENTITY as u8, encoded.to_vec())
        } else {
            (SHA2_256 as u8, Sha256::digest(encoded).to_vec())
        };
        // Both lengths are below 128: one varint byte each.
        let mut b = vec![code, digest.len() as u8];
        b.extend(digest);
        PeerId::inline(&b)
    }

    /// A PeerId of `bytes`, checked to be a multihash of at most 44 bytes.
    fn inline(bytes: &[u8]) -> PeerId {
        let mut id = PeerId {
            len: bytes.len() as u8,
            bytes: [0; MAX_PEER_ID_LEN],
        };
        id.bytes[..bytes.len()].copy_from_slice(bytes);
        id
    }

    /// The binary multihash.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Its point in the keyspace.
    pub fn key(&self) -> Key {
        key_of(self.as_bytes())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The tail: identity PeerIds share their first bytes (the key type).
        let bytes = self.as_bytes();
        let tail = &bytes[bytes.len().saturating_sub(6)..];
        write!(f, "PeerId(..")?;
        for b in tail {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// A varint of at most two bytes (multihash codes and lengths used here are small).
fn small_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    match bytes {
        [a, ..] if a & 0x80 == 0 => Some((u64::from(*a), 1)),
        [a, b, ..] if b & 0x80 == 0 && *b != 0 => {
            Some((u64::from(a & 0x7f) | (u64::from(*b) << 7), 2))
        }
        _ => None,
    }
}

/// Most addresses kept for one peer: a node listening on IPv4 and IPv6, TCP and QUIC,
/// with a relay or two, has fewer; a peer listing more is not given more memory.
pub const MAX_ADDRS: usize = 16;

/// A peer as the routing table and lookups hold it: PeerId, key and listen addresses.
///
/// The key sits inline (the table and lookups compare it all the time); the PeerId and
/// addresses sit behind one shared pointer, so that the copies a contact makes of
/// itself (into each lookup's candidates, each request in flight, each answer) cost a
/// reference count, not allocations: a simulated network holds millions of contacts.
#[derive(Clone, PartialEq)]
pub struct PeerInfo {
    key: Key,
    peer: Arc<Peer>,
}

/// What a [`PeerInfo`] shares between its copies.
struct Peer {
    id: PeerId,
    addrs: Addrs,
    /// The peer as a reply names it (`wire::peer_fields`), encoded the first time it
    /// is sent: a server names the same contacts in reply after reply.
    reply_fields: OnceLock<Box<[u8]>>,
}

/// The id and addresses: the encoding cached beside them is derived from those.
impl PartialEq for Peer {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.addrs == other.addrs
    }
}

/// Listen addresses: one (the common case) without an allocation of its own.
#[derive(PartialEq)]
enum Addrs {
    One(Multiaddr),
    Many(Box<[Multiaddr]>),
}

impl Addrs {
    fn as_slice(&self) -> &[Multiaddr] {
        match self {
            Addrs::One(a) => std::slice::from_ref(a),
            Addrs::Many(a) => a,
        }
    }
}

impl fmt::Debug for PeerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerInfo")
            .field("id", &self.peer.id)
            .field("addrs", &self.addrs())
            .finish()
    }
}

impl PeerInfo {
    /// `id` at `addrs` (duplicates dropped, at most [`MAX_ADDRS`] kept, in order).
    pub fn new(id: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) -> PeerInfo {
        let mut kept: Vec<Multiaddr> = Vec::new();
        for a in addrs {
            if kept.len() >= MAX_ADDRS {
                break;
            }
            if !kept.contains(&a) {
                kept.push(a);
            }
        }
        let addrs = match <[Multiaddr; 1]>::try_from(kept) {
            Ok([one]) => Addrs::One(one),
            Err(kept) => Addrs::Many(kept.into_boxed_slice()),
        };
        PeerInfo {
            key: id.key(),
            peer: Arc::new(Peer {
                id,
                addrs,
                reply_fields: OnceLock::new(),
            }),
        }
    }

    /// A peer read from the wire: a valid PeerId, and those of its addresses that
    /// parse (others are dropped). `None` when the id is not a PeerId.
    pub fn from_wire(p: &wire::Peer) -> Option<PeerInfo> {
        let id = PeerId::from_bytes(&p.id).ok()?;
        let addrs = p
            .addrs
            .iter()
            .filter_map(|a| Multiaddr::try_from(a.clone()).ok());
        Some(PeerInfo::new(id, addrs))
    }

    /// The peer for the wire, with the connection hint.
    pub fn to_wire(&self, connection: wire::ConnectionType) -> wire::Peer {
        wire::Peer {
            id: self.peer.id.as_bytes().to_vec(),
            addrs: self.addrs().iter().map(|a| a.to_vec()).collect(),
            connection: connection as i32,
        }
    }

    /// [`to_wire`](Self::to_wire)'s `Peer` without its connection hint, trimmed to
    /// the addresses a reply carries, as protobuf fields (`wire::peer_fields`); encoded
    /// once per contact.
    pub(crate) fn reply_fields(&self) -> &[u8] {
        self.peer.reply_fields.get_or_init(|| {
            let addrs = self.addrs().iter().take(wire::SEND_ADDRS_PER_PEER);
            wire::peer_fields(self.peer.id.as_bytes(), addrs.map(|a| a.as_ref())).into()
        })
    }

    /// The PeerId.
    pub fn id(&self) -> &PeerId {
        &self.peer.id
    }

    /// The listen addresses, in the order given.
    pub fn addrs(&self) -> &[Multiaddr] {
        self.peer.addrs.as_slice()
    }

    /// The same peer at other addresses.
    pub fn with_addrs(&self, addrs: impl IntoIterator<Item = Multiaddr>) -> PeerInfo {
        PeerInfo::new(self.peer.id.clone(), addrs)
    }
}

/// The IP of a multiaddr's first `/ip4` or `/ip6` component.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(a) => Some(IpAddr::V4(a)),
        Protocol::Ip6(a) => Some(IpAddr::V6(a)),
        _ => None,
    })
}

impl Contact for PeerInfo {
    type Key = Key;

    fn key(&self) -> &Key {
        &self.key
    }

    /// The first address's IP: the one the peer is dialed at first.
    fn ip(&self) -> Option<IpAddr> {
        self.addrs().first().and_then(ip_of)
    }

    /// The same first address: where a dial goes first.
    fn same_endpoint(&self, other: &Self) -> bool {
        let (mine, theirs) = (self.addrs(), other.addrs());
        !mine.is_empty() && mine.first() == theirs.first()
    }

    /// The transport authenticates every PeerId (noise), so a key is always bound to
    /// whoever answers for it.
    fn is_verified(&self) -> bool {
        true
    }

    /// A peer that answered at its newer addresses proved it listens there (the
    /// transport authenticated it): they replace the old ones.
    fn readdress(&mut self, newer: &Self) -> bool {
        if newer.addrs().is_empty() {
            return false;
        }
        // The same key, so the same PeerId: share the newer copy's addresses.
        self.peer = Arc::clone(&newer.peer);
        true
    }
}
