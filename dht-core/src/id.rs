//! Identifiers and the XOR metric: `Id<N>` of N bytes (160-bit ids by default, the
//! Mainline DHT's; `Id<32>` for 256-bit keyspaces such as libp2p's Kademlia), and the
//! [`Key`] trait the protocol-neutral routing table and lookups are written against.

use core::fmt;
use std::net::SocketAddr;

use rand_core::RngCore;
use sha1::{Digest, Sha1};

/// Length in bytes of a node id, info_hash or BEP 44 target.
pub const ID_LEN: usize = 20;

/// A Kademlia identifier of `N` bytes; `Id` alone is the 160-bit one of the Mainline
/// DHT: a node id, an info_hash or a BEP 44 target.
///
/// Ordering is big-endian byte order, so comparing two [`Distance`]s is comparing
/// XOR distances.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id<const N: usize = ID_LEN>(pub [u8; N]);

impl<const N: usize> Default for Id<N> {
    fn default() -> Self {
        Id([0; N])
    }
}

/// A point of a keyspace with the XOR metric: what a routing table, a lookup and a
/// contact are keyed by. Implemented by [`Id<N>`] for every width.
pub trait Key: Copy + Eq + Ord + std::hash::Hash + fmt::Debug {
    /// The XOR of two keys; smaller is closer.
    type Distance: Copy + Ord + fmt::Debug;
    /// Width of the keyspace in bits.
    const BITS: usize;
    /// XOR distance to `other`.
    fn distance(&self, other: &Self) -> Self::Distance;
    /// Leading bits shared with `other` ([`Key::BITS`] when equal).
    fn common_prefix_len(&self, other: &Self) -> usize;
    /// A uniformly random key.
    fn random(rng: &mut impl RngCore) -> Self;
    /// A random key sharing exactly `prefix_len` leading bits with `self` (one that
    /// lies in bucket `prefix_len` of a table owned by `self`).
    fn random_in_bucket(&self, prefix_len: usize, rng: &mut impl RngCore) -> Self;
}

impl<const N: usize> Key for Id<N> {
    type Distance = Distance<N>;
    const BITS: usize = N * 8;

    #[inline]
    fn distance(&self, other: &Self) -> Distance<N> {
        Id::distance(self, other)
    }

    #[inline]
    fn common_prefix_len(&self, other: &Self) -> usize {
        Id::common_prefix_len(self, other)
    }

    fn random(rng: &mut impl RngCore) -> Self {
        let mut b = [0u8; N];
        rng.fill_bytes(&mut b);
        Id(b)
    }

    fn random_in_bucket(&self, prefix_len: usize, rng: &mut impl RngCore) -> Self {
        Id::random_in_bucket(self, prefix_len, rng)
    }
}

/// The XOR of two ids; smaller is closer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Distance<const N: usize = ID_LEN>(pub [u8; N]);

/// Byte-wise (big-endian) order, as the derived one would be, compared eight bytes
/// at a time: a lookup compares distances in every step of its binary searches, and
/// the derived order called `memcmp` for each (5 % of a simulation's time).
impl<const N: usize> Ord for Distance<N> {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (self.0.as_slice(), other.0.as_slice());
        let mut chunks = a.chunks_exact(8).zip(b.chunks_exact(8));
        for (x, y) in &mut chunks {
            let x = u64::from_be_bytes(x.try_into().unwrap_or_default());
            let y = u64::from_be_bytes(y.try_into().unwrap_or_default());
            if x != y {
                return x.cmp(&y);
            }
        }
        let tail = N - N % 8;
        a[tail..].cmp(&b[tail..])
    }
}

impl<const N: usize> PartialOrd for Distance<N> {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Constructors of 160-bit ids. Other widths are built with `Id([..])`,
/// `Id::<N>::default()`, `Id::<N>::try_from(slice)` or [`Key::random`], so that
/// `Id::random(..)` and `Id::ZERO` need no annotation in Mainline code.
impl Id {
    /// The all-zero id.
    pub const ZERO: Id = Id([0; ID_LEN]);

    /// Builds an id from a slice, which must be exactly 20 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Id> {
        Id::try_from(bytes).ok()
    }

    /// A uniformly random id from `rng`.
    pub fn random(rng: &mut impl RngCore) -> Id {
        <Id as Key>::random(rng)
    }

    /// Parses 40 hex characters.
    pub fn from_hex(s: &str) -> Option<Id> {
        let v = from_hex(s)?;
        Id::from_slice(&v)
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
}

/// A slice of exactly `N` bytes.
impl<const N: usize> TryFrom<&[u8]> for Id<N> {
    type Error = std::array::TryFromSliceError;
    fn try_from(bytes: &[u8]) -> Result<Id<N>, Self::Error> {
        <[u8; N]>::try_from(bytes).map(Id)
    }
}

impl<const N: usize> Id<N> {
    /// A random id that shares exactly the first `prefix_len` bits with `self`
    /// and differs at bit `prefix_len` (so it lies in bucket `prefix_len` of a
    /// table owned by `self`). `prefix_len` must be below `8 * N` (160).
    pub fn random_in_bucket(&self, prefix_len: usize, rng: &mut impl RngCore) -> Id<N> {
        debug_assert!(prefix_len < N * 8);
        let mut out = <Id<N> as Key>::random(rng).0;
        for bit in 0..=prefix_len.min(N * 8 - 1) {
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
    pub fn distance(&self, other: &Id<N>) -> Distance<N> {
        let mut d = [0u8; N];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// Number of leading bits `self` and `other` share (`8 * N`, 160, when equal).
    #[inline]
    pub fn common_prefix_len(&self, other: &Id<N>) -> usize {
        self.distance(other).leading_zeros()
    }

    /// The bit at position `bit` (0 = most significant).
    #[inline]
    pub fn bit(&self, bit: usize) -> bool {
        self.0[bit / 8] & (0x80 >> (bit % 8)) != 0
    }

    /// Lower-case hex, `2 * N` (40) characters.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }
}

impl<const N: usize> Distance<N> {
    /// Number of leading zero bits.
    #[inline]
    pub fn leading_zeros(&self) -> usize {
        for (i, b) in self.0.iter().enumerate() {
            if *b != 0 {
                return i * 8 + b.leading_zeros() as usize;
            }
        }
        N * 8
    }
}

impl<const N: usize> fmt::Debug for Id<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.to_hex())
    }
}

impl<const N: usize> fmt::Display for Id<N> {
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

    /// The chunked order is the byte-wise order, at every width a key has (20 and 32
    /// bytes) and one with a tail (13), for distances that differ anywhere: in the
    /// first chunk, a later one, the tail, or nowhere.
    #[test]
    fn distance_order_is_bytewise() {
        fn check<const N: usize>(rng: &mut ChaCha8Rng) {
            for round in 0..20_000 {
                let mut a = [0u8; N];
                rng.fill_bytes(&mut a);
                let mut b = a;
                // Equal up to a random byte, then anything (or equal throughout).
                let from = (rng.next_u32() as usize) % (N + 1);
                if from < N {
                    rng.fill_bytes(&mut b[from..]);
                }
                if round % 7 == 0 && from < N {
                    b[from] = a[from] ^ 1;
                }
                let (da, db) = (Distance(a), Distance(b));
                assert_eq!(da.cmp(&db), a.cmp(&b), "{a:?} {b:?}");
                assert_eq!(da.partial_cmp(&db), Some(a.cmp(&b)));
                assert_eq!(da == db, a == b);
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(25);
        check::<20>(&mut rng);
        check::<32>(&mut rng);
        check::<13>(&mut rng);
    }

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
