//! 160-bit identifiers and the XOR metric.

use core::fmt;
use std::net::SocketAddr;

use rand_core::RngCore;
use sha1::{Digest, Sha1};

/// Length in bytes of a node id, info_hash or BEP 44 target.
pub const ID_LEN: usize = 20;

/// A 160-bit Kademlia identifier: a node id, an info_hash or a BEP 44 target.
///
/// Ordering is big-endian byte order, so comparing two [`Distance`]s is comparing
/// XOR distances.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(pub [u8; ID_LEN]);

/// Node ids, info_hashes and targets are the same kind of value on the wire.
pub type NodeId = Id;

/// The XOR of two ids; smaller is closer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Distance(pub [u8; ID_LEN]);

impl Id {
    /// The all-zero id.
    pub const ZERO: Id = Id([0; ID_LEN]);

    /// Builds an id from a slice, which must be exactly 20 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Id> {
        <[u8; ID_LEN]>::try_from(bytes).ok().map(Id)
    }

    /// SHA-1 of `data`: the target of an immutable item is `Id::sha1(bencoded v)`.
    pub fn sha1(data: &[u8]) -> Id {
        Id(Sha1::digest(data).into())
    }

    /// SHA-1 over several parts, as if concatenated.
    pub fn sha1_parts(parts: &[&[u8]]) -> Id {
        let mut h = Sha1::new();
        for p in parts {
            h.update(p);
        }
        Id(h.finalize().into())
    }

    /// A uniformly random id from `rng`.
    pub fn random(rng: &mut impl RngCore) -> Id {
        let mut b = [0u8; ID_LEN];
        rng.fill_bytes(&mut b);
        Id(b)
    }

    /// A random id that shares exactly the first `prefix_len` bits with `self`
    /// and differs at bit `prefix_len` (so it lies in bucket `prefix_len` of a
    /// table owned by `self`). `prefix_len` must be below 160.
    pub fn random_in_bucket(&self, prefix_len: usize, rng: &mut impl RngCore) -> Id {
        debug_assert!(prefix_len < ID_LEN * 8);
        let mut out = Id::random(rng).0;
        for bit in 0..=prefix_len.min(ID_LEN * 8 - 1) {
            let byte = bit / 8;
            let mask = 0x80u8 >> (bit % 8);
            let want = if bit == prefix_len {
                !self.0[byte] & mask
            } else {
                self.0[byte] & mask
            };
            out[byte] = (out[byte] & !mask) | want;
        }
        Id(out)
    }

    /// XOR distance to `other`.
    #[inline]
    pub fn distance(&self, other: &Id) -> Distance {
        let mut d = [0u8; ID_LEN];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// Number of leading bits `self` and `other` share (160 when equal).
    #[inline]
    pub fn common_prefix_len(&self, other: &Id) -> usize {
        self.distance(other).leading_zeros()
    }

    /// The bit at position `bit` (0 = most significant).
    #[inline]
    pub fn bit(&self, bit: usize) -> bool {
        self.0[bit / 8] & (0x80 >> (bit % 8)) != 0
    }

    /// Lower-case hex, 40 characters.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Parses 40 hex characters.
    pub fn from_hex(s: &str) -> Option<Id> {
        let v = from_hex(s)?;
        Id::from_slice(&v)
    }
}

impl Distance {
    /// Number of leading zero bits.
    #[inline]
    pub fn leading_zeros(&self) -> usize {
        for (i, b) in self.0.iter().enumerate() {
            if *b != 0 {
                return i * 8 + b.leading_zeros() as usize;
            }
        }
        ID_LEN * 8
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.to_hex())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::str::FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Id, ParseIdError> {
        Id::from_hex(s).ok_or(ParseIdError)
    }
}

/// An id string that is not 40 hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected 40 hexadecimal characters (a 160-bit id)")]
pub struct ParseIdError;

/// A node as the protocol names it: an id and the address it answers on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct NodeInfo {
    /// The node's id.
    pub id: Id,
    /// Where it answers.
    pub addr: SocketAddr,
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// Parses hex (either case); `None` for odd length or a non-hex character.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    s.chunks(2)
        .map(|p| Some(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn distance_and_prefix() {
        let a = Id([0; 20]);
        let mut b = [0; 20];
        b[0] = 0x10;
        let b = Id(b);
        assert_eq!(a.common_prefix_len(&b), 3);
        assert_eq!(a.common_prefix_len(&a), 160);
        assert!(a.distance(&b) > a.distance(&a));
    }

    #[test]
    fn random_in_bucket_lands_in_bucket() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let me = Id::random(&mut rng);
        for p in [0, 1, 7, 8, 9, 63, 100, 159] {
            for _ in 0..20 {
                let x = me.random_in_bucket(p, &mut rng);
                assert_eq!(me.common_prefix_len(&x), p, "prefix {p}");
            }
        }
    }

    #[test]
    fn hex_round_trip() {
        let id = Id([0xab; 20]);
        assert_eq!(id.to_hex(), "ab".repeat(20));
        assert_eq!(Id::from_hex(&id.to_hex()), Some(id));
        assert_eq!(Id::from_hex("zz"), None);
        assert_eq!(Id::from_hex("abcd"), None);
    }
}
