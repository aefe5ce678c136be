//! What a path names: a CID (`/routing/v1/providers/{cid}`), a PeerId
//! (`/routing/v1/peers/{peer-id}`) or an IPNS name (`/routing/v1/ipns/{name}`), and the
//! string forms we write back.
//!
//! A CID is a CIDv0 (`Qm…`, base58btc of a SHA-256 multihash) or a multibase CIDv1
//! (`bafy…`, `k51…`, any base the multibase crate reads). A PeerId or an IPNS name is
//! accepted as the libp2p peer-ids spec writes them: a bare base58btc multihash
//! (`12D3Koo…`, `Qm…`) or a CIDv1 of codec `libp2p-key` (`k51…`, `bafz…`), as Go's
//! `peer.Decode` reads them. Anything else is malformed (400).
//!
//! Lengths are checked before any decoding: base58 and base36 decode in time
//! quadratic in their length, and no CID or PeerId we serve is longer than
//! [`MAX_ID_LEN`] characters.

use dht_ipfs::PeerId;
use multibase::Base;

/// The longest CID or PeerId string accepted. A CIDv1 of a SHA-512 digest in base32
/// is 113 characters; identity CIDs of inlined keys are shorter still.
pub const MAX_ID_LEN: usize = 256;

/// The multicodec of a PeerId or IPNS name as a CID.
pub const LIBP2P_KEY: u64 = 0x72;
/// The multicodec of every CIDv0.
const DAG_PB: u64 = 0x70;
/// The multihash code of SHA-256 and its digest length, a CIDv0's only hash.
const SHA2_256: u64 = 0x12;
/// The longest digest accepted in a CID's multihash (SHA-512 and BLAKE2b-512 are 64).
const MAX_DIGEST_LEN: u64 = 128;

/// A content identifier: its version, its codec and the multihash it names. The DHT's
/// provider records are kept under the multihash, whatever the codec.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cid {
    version: u8,
    codec: u64,
    multihash: Vec<u8>,
}

impl Cid {
    /// Parses a CIDv0 (`Qm…`) or a multibase CIDv1; `None` when it is neither.
    pub fn parse(s: &str) -> Option<Cid> {
        if s.len() > MAX_ID_LEN {
            return None;
        }
        if s.len() == 46 && s.starts_with("Qm") {
            let bytes = Base::Base58Btc.decode(s).ok()?;
            return Cid::from_bytes(&bytes);
        }
        let (_, bytes) = multibase::decode(s).ok()?;
        Cid::from_bytes(&bytes)
    }

    /// A binary CID: a bare SHA-256 multihash (CIDv0) or version 1, codec, multihash.
    pub fn from_bytes(bytes: &[u8]) -> Option<Cid> {
        if bytes.len() == 34 && bytes[0] == SHA2_256 as u8 && bytes[1] == 32 {
            return Some(Cid {
                version: 0,
                codec: DAG_PB,
                multihash: bytes.to_vec(),
            });
        }
        let (version, rest) = varint(bytes)?;
        if version != 1 {
            return None;
        }
        let (codec, multihash) = varint(rest)?;
        check_multihash(multihash)?;
        Some(Cid {
            version: 1,
            codec,
            multihash: multihash.to_vec(),
        })
    }

    /// 0 or 1.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The multicodec of the content (`0x70` dag-pb, `0x55` raw, `0x72` libp2p-key, …).
    pub fn codec(&self) -> u64 {
        self.codec
    }

    /// The binary multihash: what the DHT keeps provider records under.
    pub fn multihash(&self) -> &[u8] {
        &self.multihash
    }
}

/// A multihash: code, digest length, and exactly that many bytes.
fn check_multihash(bytes: &[u8]) -> Option<()> {
    let (_code, rest) = varint(bytes)?;
    let (len, digest) = varint(rest)?;
    (len <= MAX_DIGEST_LEN && digest.len() as u64 == len).then_some(())
}

/// A PeerId or an IPNS name as a path names it: bare base58btc (`12D3Koo…`, `Qm…`) or a
/// CIDv1 of codec `libp2p-key`.
pub fn parse_peer_id(s: &str) -> Option<PeerId> {
    if s.len() > MAX_ID_LEN {
        return None;
    }
    let bytes = if s.starts_with('1') || s.starts_with("Qm") {
        Base::Base58Btc.decode(s).ok()?
    } else {
        let cid = Cid::parse(s)?;
        if cid.version != 1 || cid.codec != LIBP2P_KEY {
            return None;
        }
        cid.multihash
    };
    PeerId::from_bytes(&bytes).ok()
}

/// A PeerId as records carry it (`ID`): base58btc, as Kubo and boxo write it.
pub fn peer_id_base58(id: &PeerId) -> String {
    Base::Base58Btc.encode(id.as_bytes())
}

/// An IPNS name as a base36 CIDv1 of codec `libp2p-key` (`k51…`), as Kubo writes names.
pub fn peer_id_base36_cid(name: &PeerId) -> String {
    let mut bytes = vec![1, LIBP2P_KEY as u8];
    bytes.extend_from_slice(name.as_bytes());
    multibase::encode(Base::Base36Lower, bytes)
}

/// An unsigned varint as multiformats writes them (at most 9 bytes, minimal), and the
/// bytes after it.
fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(9) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            // A last byte of 0 after others would be a longer encoding of a smaller value.
            if i > 0 && b == 0 {
                return None;
            }
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cids_of_every_form() {
        let v0 = Cid::parse("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG").unwrap();
        assert_eq!((v0.version(), v0.codec()), (0, DAG_PB));
        let v1 = Cid::parse("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi").unwrap();
        assert_eq!((v1.version(), v1.codec()), (1, DAG_PB));
        let raw =
            Cid::parse("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy").unwrap();
        assert_eq!(raw.codec(), 0x55);
        for bad in [
            "",
            "Qm",
            "bafy",
            "xyz",
            "zzzz",
            "bafybeigdyrzt5sfp7udm7hu76uh7y26",
        ] {
            assert_eq!(Cid::parse(bad), None, "{bad}");
        }
        assert_eq!(Cid::parse(&"b".repeat(MAX_ID_LEN + 1)), None);
    }

    #[test]
    fn peer_ids_in_base58_and_as_cids() {
        let ed = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
        let id = parse_peer_id(ed).unwrap();
        assert_eq!(peer_id_base58(&id), ed);
        let k = peer_id_base36_cid(&id);
        assert!(k.starts_with("k51"), "{k}");
        assert_eq!(parse_peer_id(&k), Some(id.clone()));
        let rsa = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";
        assert_eq!(peer_id_base58(&parse_peer_id(rsa).unwrap()), rsa);
        // A CIDv1 of another codec names content, not a peer.
        assert_eq!(
            parse_peer_id("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"),
            None
        );
        assert_eq!(parse_peer_id("12D3KooWnotapeer"), None);
    }

    #[test]
    fn varints_are_minimal() {
        assert_eq!(varint(&[0x01]), Some((1, &[][..])));
        assert_eq!(varint(&[0x81, 0x01]), Some((129, &[][..])));
        assert_eq!(varint(&[0x81, 0x00]), None);
        assert_eq!(varint(&[0xff; 10]), None);
    }
}
