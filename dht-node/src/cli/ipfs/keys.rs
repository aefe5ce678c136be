//! What the IPFS one-shots take as keys, parsed before anything is bound: CIDs (v0
//! `Qm…`, v1 in base32, base58btc or base36, any codec), PeerIds, `0x` hex, and
//! record keys (`/pk/<PeerId>`, `/ipns/<name>`) turned into the binary keys Kubo
//! sends. Every error is one line for a usage failure (exit 2).

use libp2p::PeerId;
use multibase::Base;

/// Multicodec of a CIDv1 that names a libp2p public key (`/ipns/k51…` names).
const LIBP2P_KEY: u64 = 0x72;
/// Multicodec of dag-pb, the codec a CIDv0 implies.
const DAG_PB: u64 = 0x70;
/// Multihash code of SHA-256: a CIDv0 is one, 32 bytes long.
const SHA2_256: u64 = 0x12;
/// Longest digest accepted: 64 bytes (SHA-512, BLAKE2b-512); longer is no CID in use,
/// and the provider key (the multihash) must fit in the engine's 80 bytes.
const MAX_DIGEST: u64 = 64;

/// A parsed CID: only what the DHT needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cid {
    pub(crate) version: u8,
    pub(crate) codec: u64,
    /// The content multihash: the DHT key of `provide`, `providers` and `closest`,
    /// so that CIDv0 and CIDv1 of the same content meet.
    pub(crate) multihash: Vec<u8>,
    /// As the user wrote it, for output.
    pub(crate) text: String,
}

/// A CID as `clap` parses it.
pub(crate) fn parse_cid(s: &str) -> Result<Cid, String> {
    let bad = |why: &str| format!("not a CID ({why}): {s:?}");
    let bytes = if s.len() == 46 && s.starts_with("Qm") {
        Base::Base58Btc
            .decode(s)
            .map_err(|_| bad("not base58btc"))?
    } else {
        let (base, bytes) = multibase::decode(s).map_err(|_| bad("not multibase"))?;
        match base {
            Base::Base32Lower
            | Base::Base32Upper
            | Base::Base58Btc
            | Base::Base36Lower
            | Base::Base36Upper => bytes,
            _ => return Err(bad("a CID is base32, base58btc or base36")),
        }
    };
    if bytes.first() == Some(&(SHA2_256 as u8)) {
        // A CIDv0 is a bare SHA-256 multihash.
        let multihash = check_multihash(&bytes).map_err(|w| bad(&w))?;
        if multihash.len() != bytes.len() || bytes.len() != 34 {
            return Err(bad("a CIDv0 is a 32-byte SHA-256 multihash"));
        }
        return Ok(Cid {
            version: 0,
            codec: DAG_PB,
            multihash,
            text: s.to_string(),
        });
    }
    let (version, n) = varint(&bytes).ok_or_else(|| bad("no version"))?;
    if version != 1 {
        return Err(bad(&format!("version {version}")));
    }
    let (codec, m) = varint(&bytes[n..]).ok_or_else(|| bad("no codec"))?;
    let rest = &bytes[n + m..];
    let multihash = check_multihash(rest).map_err(|w| bad(&w))?;
    if multihash.len() != rest.len() {
        return Err(bad("bytes after the multihash"));
    }
    Ok(Cid {
        version: 1,
        codec,
        multihash,
        text: s.to_string(),
    })
}

/// The multihash at the start of `bytes`: code, length, digest of that length.
fn check_multihash(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let (_code, n) = varint(bytes).ok_or("no multihash code")?;
    let (len, m) = varint(&bytes[n..]).ok_or("no multihash length")?;
    if len > MAX_DIGEST {
        return Err(format!("a digest of {len} bytes"));
    }
    let end = n + m + len as usize;
    if bytes.len() < end {
        return Err("the digest is cut short".to_string());
    }
    Ok(bytes[..end].to_vec())
}

/// An unsigned LEB128 varint of at most 9 bytes (multiformats' bound): its value and
/// length.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().take(9).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// A PeerId: base58 (`12D3Koo…`, `Qm…`), or a CIDv1 of a libp2p key (`k51…`).
pub(crate) fn parse_peer_id(s: &str) -> Result<PeerId, String> {
    if let Some(id) = base58_peer_id(s) {
        return Ok(id);
    }
    let bad = || format!("not a PeerId (base58 12D3Koo… or a libp2p-key CID): {s:?}");
    let cid = parse_cid(s).map_err(|_| bad())?;
    if cid.version != 1 || cid.codec != LIBP2P_KEY {
        return Err(bad());
    }
    PeerId::from_bytes(&cid.multihash)
        .ok()
        .filter(is_peer_id)
        .ok_or_else(bad)
}

/// A base58 PeerId that is one: libp2p parses any short identity multihash, so a typo
/// such as `12D3KooWnope` would pass; its digest must be a public key.
fn base58_peer_id(s: &str) -> Option<PeerId> {
    s.parse::<PeerId>().ok().filter(is_peer_id)
}

/// The identity multihash of a protobuf public key, or a SHA-256 multihash (of a key
/// too long to inline, RSA's).
fn is_peer_id(id: &PeerId) -> bool {
    let bytes = id.to_bytes();
    match bytes.as_slice() {
        // `PublicKey { Type = 1: varint 0..=3; Data = 2: bytes }`, as every
        // implementation encodes it (ed25519: 36 bytes, secp256k1: 37).
        [0x00, len, 0x08, 0..=3, 0x12, key_len, key @ ..] => {
            usize::from(*len) == key.len() + 4 && usize::from(*key_len) == key.len()
        }
        [0x12, 32, digest @ ..] => digest.len() == 32,
        _ => false,
    }
}

/// `closest`'s KEY as bytes: the lookup goes toward their SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LookupKey(pub(crate) Vec<u8>);

/// `closest`'s KEY: a PeerId (its bytes), a CID (its multihash) or `0x` hex bytes.
pub(crate) fn parse_lookup_key(s: &str) -> Result<LookupKey, String> {
    if let Some(hex) = s.strip_prefix("0x") {
        return match dht_core::from_hex(hex) {
            Some(b) if !b.is_empty() && b.len() <= MAX_LOOKUP_KEY => Ok(LookupKey(b)),
            _ => Err(format!(
                "not 1 to {MAX_LOOKUP_KEY} hex bytes after 0x: {s:?}"
            )),
        };
    }
    if let Some(id) = base58_peer_id(s) {
        return Ok(LookupKey(id.to_bytes()));
    }
    parse_cid(s)
        .map(|c| LookupKey(c.multihash))
        .map_err(|_| format!("not a PeerId, a CID or 0x-prefixed hex: {s:?}"))
}

/// Longest `0x` key: FIND_NODE's key goes in a 16 KiB request.
const MAX_LOOKUP_KEY: usize = 1024;

/// A record key as written (`/pk/<PeerId>`, `/ipns/<name>`) with its binary form: the
/// namespace, then the PeerId's bytes, as Kubo converts it.
#[derive(Debug, Clone)]
pub(crate) struct RecordKey {
    pub(crate) text: String,
    pub(crate) bytes: Vec<u8>,
}

pub(crate) fn parse_record_key(s: &str) -> Result<RecordKey, String> {
    let (prefix, name) = if let Some(name) = s.strip_prefix("/pk/") {
        (dht_ipfs::PK_PREFIX, name)
    } else if let Some(name) = s.strip_prefix("/ipns/") {
        (dht_ipfs::IPNS_PREFIX, name)
    } else {
        return Err(format!(
            "a record key is /pk/<PeerId> or /ipns/<name>, not {s:?}"
        ));
    };
    let id = parse_peer_id(name)?;
    let mut bytes = prefix.to_vec();
    bytes.extend(id.to_bytes());
    Ok(RecordKey {
        text: s.to_string(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same content (an empty dag-pb directory's SHA-256) as CIDv0, CIDv1 base32
    /// and base58btc: one multihash.
    #[test]
    fn cid_v0_and_v1_meet() {
        let v0 = parse_cid("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn").expect("v0");
        let v1 = parse_cid("bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354")
            .expect("v1 base32");
        assert_eq!((v0.version, v1.version), (0, 1));
        assert_eq!(v0.multihash, v1.multihash);
        assert_eq!(v0.multihash.len(), 34);
        let z = format!(
            "z{}",
            Base::Base58Btc.encode([&[1u8, 0x70][..], &v0.multihash].concat())
        );
        assert_eq!(parse_cid(&z).expect("v1 base58btc").multihash, v0.multihash);
        let k = multibase::encode(
            Base::Base36Lower,
            [&[1u8, 0x55][..], &v0.multihash].concat(),
        );
        let raw = parse_cid(&k).expect("v1 base36, raw codec");
        assert_eq!((raw.codec, raw.multihash), (0x55, v0.multihash));
    }

    #[test]
    fn malformed_cids_are_refused() {
        for bad in [
            "",
            "Qm",
            "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3N0",
            "bafy",
            "hello",
            "mAXASIA", // base64: not a base the issue lists
            "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf35",
        ] {
            assert!(parse_cid(bad).is_err(), "{bad:?} taken for a CID");
        }
        let long = multibase::encode(Base::Base32Lower, [1u8, 0x55, 0x12, 0xff, 0x01]);
        assert!(parse_cid(&long).is_err(), "a 255-byte digest");
    }

    #[test]
    fn record_keys_are_binary() {
        let id = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let k = parse_record_key(&format!("/pk/{id}")).expect("pk");
        assert_eq!(k.bytes, [b"/pk/".to_vec(), id.to_bytes()].concat());
        assert!(parse_record_key(&format!("/ipns/{id}")).is_ok());
        assert!(parse_record_key("/pk/nope").is_err());
        assert!(
            parse_peer_id("12D3KooWnope").is_err(),
            "an identity multihash of no key"
        );
        assert!(parse_record_key(&format!("/v/{id}")).is_err());
        assert_eq!(parse_lookup_key("0x0102").expect("hex").0, vec![1, 2]);
        assert!(parse_lookup_key("0x").is_err());
        assert!(parse_lookup_key("0xzz").is_err());
    }
}
