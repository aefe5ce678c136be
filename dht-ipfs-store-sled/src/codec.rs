//! The on-disk encoding of keys and values: hand-written, versioned, big-endian.
//!
//! Hand-written for the reasons `dht-store-sled` gives: a few small kinds of value,
//! keys that must sort in a prescribed order (deadlines by time, a key's providers
//! together), and a decoder that checks every length before it slices, so that
//! corrupt bytes give a [`DecodeError`], never a panic or an allocation larger than
//! the input.
//!
//! Every value starts with [`VALUE_V1`], so that a later format can be told apart
//! value by value; keys carry no version (the data dir's marker covers them).

pub(crate) use dht_datadir::codec::DecodeError;
use dht_datadir::codec::Reader;
use dht_ipfs::{PeerId, StoredProvider, StoredRecord, UnixMillis};
use multiaddr::Multiaddr;

/// First byte of every value written by this format.
pub(crate) const VALUE_V1: u8 = 1;

/// Deadline index key kind of a record (followed by its key).
pub(crate) const KIND_RECORD: u8 = 0;
/// Deadline index key kind of a provider (followed by its providers-tree key).
pub(crate) const KIND_PROVIDER: u8 = 1;

const ABSENT: u8 = 0;
const PRESENT: u8 = 1;

/// The fields of this store's values beyond integers, read on `dht-datadir`'s cursor.
trait Fields<'a> {
    fn len(&mut self) -> Result<usize, DecodeError>;
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError>;
    fn optional(&mut self) -> Result<Option<Vec<u8>>, DecodeError>;
    fn version(&mut self) -> Result<(), DecodeError>;
}

impl<'a> Fields<'a> for Reader<'a> {
    /// A length or a count: a u64, which no `usize` here exceeds.
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| self.err("length overflows"))
    }

    /// A length-prefixed byte string.
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len()?;
        self.take(n)
    }

    fn optional(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.u8()? {
            ABSENT => Ok(None),
            PRESENT => Ok(Some(self.bytes()?.to_vec())),
            _ => Err(self.err("bad option tag")),
        }
    }

    fn version(&mut self) -> Result<(), DecodeError> {
        match self.u8()? {
            VALUE_V1 => Ok(()),
            _ => Err(self.err("unknown value version")),
        }
    }
}

/// Lengths and counts are u64, so that every `usize` fits (a u32 would need a
/// refusal path for what the node never sends: its messages are at most 128 KiB).
fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

fn put_optional(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.push(ABSENT),
        Some(b) => {
            out.push(PRESENT);
            put_bytes(out, b);
        }
    }
}

/// A record's value in the `records` tree (its key is the tree key): version,
/// `expires_at`, the source it is charged to, the publisher, the value.
pub(crate) fn encode_record(record: &StoredRecord, source: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + record.value.len());
    out.push(VALUE_V1);
    out.extend_from_slice(&record.expires_at.to_be_bytes());
    put_optional(&mut out, source);
    put_optional(&mut out, record.publisher.as_deref());
    put_bytes(&mut out, &record.value);
    out
}

/// A record and the source it is charged to.
pub(crate) fn decode_record(
    key: &[u8],
    b: &[u8],
) -> Result<(StoredRecord, Option<Vec<u8>>), DecodeError> {
    let mut r = Reader::new(b, "record");
    r.version()?;
    let expires_at = r.u64()?;
    let source = r.optional()?;
    let publisher = r.optional()?;
    let value = r.bytes()?.to_vec();
    r.end()?;
    Ok((
        StoredRecord {
            key: key.to_vec(),
            value,
            publisher,
            expires_at,
        },
        source,
    ))
}

/// What expiry and accounting need of a stored value: its deadline and its source,
/// without decoding the rest. Records and providers alike.
pub(crate) fn deadline_and_source(
    kind: u8,
    b: &[u8],
) -> Result<(UnixMillis, Option<Vec<u8>>), DecodeError> {
    let mut r = Reader::new(
        b,
        if kind == KIND_RECORD {
            "record"
        } else {
            "provider"
        },
    );
    r.version()?;
    let at = r.u64()?;
    if kind == KIND_PROVIDER {
        r.u64()?;
    }
    Ok((at, r.optional()?))
}

/// The `providers` tree key: the provider key, length first so that one key's
/// providers are exactly the keys starting with [`provider_prefix`], then the PeerId.
pub(crate) fn provider_key(key: &[u8], provider: &PeerId) -> Vec<u8> {
    let mut out = provider_prefix(key);
    out.extend_from_slice(provider.as_bytes());
    out
}

/// The prefix of every `providers` tree key of `key`.
pub(crate) fn provider_prefix(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len() + 40);
    put_bytes(&mut out, key);
    out
}

/// The provider key and the PeerId of a `providers` tree key.
pub(crate) fn decode_provider_key(b: &[u8]) -> Result<(&[u8], PeerId), DecodeError> {
    let mut r = Reader::new(b, "provider key");
    let key = r.bytes()?;
    let id = PeerId::from_bytes(r.rest())
        .map_err(|_| DecodeError::new("provider key", "not a PeerId"))?;
    Ok((key, id))
}

/// A provider's value in the `providers` tree: version, `expires_at`,
/// `addrs_expire_at`, the source it is charged to, its multiaddrs.
pub(crate) fn encode_provider(p: &StoredProvider, source: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(VALUE_V1);
    out.extend_from_slice(&p.expires_at.to_be_bytes());
    out.extend_from_slice(&p.addrs_expire_at.to_be_bytes());
    put_optional(&mut out, source);
    put_len(&mut out, p.addrs.len());
    for a in &p.addrs {
        put_bytes(&mut out, &a.to_vec());
    }
    out
}

/// A provider and the source it is charged to.
pub(crate) fn decode_provider(
    provider: PeerId,
    b: &[u8],
) -> Result<(StoredProvider, Option<Vec<u8>>), DecodeError> {
    let mut r = Reader::new(b, "provider");
    r.version()?;
    let expires_at = r.u64()?;
    let addrs_expire_at = r.u64()?;
    let source = r.optional()?;
    let n = r.len()?;
    // Each address takes at least its 8-byte length: no allocation beyond the input.
    let mut addrs = Vec::with_capacity(n.min(r.remaining() / 8));
    for _ in 0..n {
        let bytes = r.bytes()?;
        let addr = Multiaddr::try_from(bytes.to_vec())
            .map_err(|_| DecodeError::new("provider", "not a multiaddr"))?;
        addrs.push(addr);
    }
    r.end()?;
    Ok((
        StoredProvider {
            provider,
            addrs,
            expires_at,
            addrs_expire_at,
        },
        source,
    ))
}

/// A `deadlines` tree key: `expires_at ‖ kind ‖ tree key`, so that a range scan from
/// the start is soonest first and stops at `now`.
pub(crate) fn deadline_key(at: UnixMillis, kind: u8, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.len());
    out.extend_from_slice(&at.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(key);
    out
}

/// The kind and the tree key of a `deadlines` tree key.
pub(crate) fn decode_deadline_key(b: &[u8]) -> Result<(u8, &[u8]), DecodeError> {
    let mut r = Reader::new(b, "deadline key");
    r.u64()?;
    match r.u8()? {
        kind @ (KIND_RECORD | KIND_PROVIDER) => Ok((kind, r.rest())),
        _ => Err(r.err("unknown kind")),
    }
}

/// The flush generation kept in the `meta` tree.
pub(crate) fn encode_generation(g: u64) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[0] = VALUE_V1;
    out[1..].copy_from_slice(&g.to_be_bytes());
    out
}

pub(crate) fn decode_generation(b: &[u8]) -> Result<u64, DecodeError> {
    let mut r = Reader::new(b, "flush generation");
    r.version()?;
    let g = r.u64()?;
    r.end()?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> PeerId {
        PeerId::from_bytes(&[&[0x12, 0x20][..], &[n; 32]].concat()).unwrap()
    }

    #[test]
    fn values_round_trip() {
        let record = StoredRecord {
            key: b"/pk/x".to_vec(),
            value: vec![1, 2, 3],
            publisher: Some(vec![9; 34]),
            expires_at: 77,
        };
        let b = encode_record(&record, Some(b"src"));
        assert_eq!(
            decode_record(b"/pk/x", &b).unwrap(),
            (record, Some(b"src".to_vec()))
        );
        assert_eq!(
            deadline_and_source(KIND_RECORD, &b).unwrap(),
            (77, Some(b"src".to_vec()))
        );
        let p = StoredProvider {
            provider: peer(3),
            addrs: vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()],
            expires_at: 10,
            addrs_expire_at: 5,
        };
        let b = encode_provider(&p, None);
        assert_eq!(decode_provider(peer(3), &b).unwrap(), (p, None));
        assert_eq!(deadline_and_source(KIND_PROVIDER, &b).unwrap(), (10, None));
        let k = provider_key(b"cid", &peer(3));
        assert!(k.starts_with(&provider_prefix(b"cid")));
        assert!(!k.starts_with(&provider_prefix(b"ci")));
        let (key, id) = decode_provider_key(&k).unwrap();
        assert_eq!((key, id), (&b"cid"[..], peer(3)));
        let d = deadline_key(5, KIND_PROVIDER, &k);
        assert_eq!(decode_deadline_key(&d).unwrap(), (KIND_PROVIDER, &k[..]));
        assert_eq!(decode_generation(&encode_generation(9)).unwrap(), 9);
    }

    /// Every prefix of a value, and every value with a byte flipped, gives an error
    /// or a value, never a panic.
    #[test]
    fn corrupt_bytes_never_panic() {
        let record = StoredRecord {
            key: b"k".to_vec(),
            value: vec![7; 20],
            publisher: None,
            expires_at: 1,
        };
        let p = StoredProvider {
            provider: peer(1),
            addrs: vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap(); 3],
            expires_at: 2,
            addrs_expire_at: 1,
        };
        for b in [
            encode_record(&record, Some(b"s")),
            encode_provider(&p, None),
        ] {
            for cut in 0..b.len() {
                let _ = decode_record(b"k", &b[..cut]);
                let _ = decode_provider(peer(1), &b[..cut]);
            }
            for i in 0..b.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut c = b.clone();
                    c[i] ^= flip;
                    let _ = decode_record(b"k", &c);
                    let _ = decode_provider(peer(1), &c);
                    let _ = deadline_and_source(KIND_PROVIDER, &c);
                    let _ = decode_provider_key(&c);
                }
            }
        }
        assert!(decode_record(b"k", &[]).is_err());
        assert!(decode_deadline_key(&[0; 8]).is_err());
    }
}

/// Format 1's bytes, pinned: a change to the encoding fails here, as a reminder that
/// it needs a new format version (and a test that reads format 1 directories).
#[cfg(test)]
mod format_1 {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn record_bytes() {
        let record = StoredRecord {
            key: b"/pk/x".to_vec(),
            value: b"val".to_vec(),
            publisher: Some(vec![0xaa]),
            expires_at: 0x0102,
        };
        let b = encode_record(&record, Some(b"s"));
        assert_eq!(
            hex(&b),
            "01\
             0000000000000102\
             01 0000000000000001 73\
             01 0000000000000001 aa\
             0000000000000003 76616c"
                .replace(' ', "")
        );
        assert_eq!(decode_record(b"/pk/x", &b).unwrap().0, record);
    }

    #[test]
    fn provider_bytes() {
        let id = PeerId::from_bytes(&[&[0x12, 0x20][..], &[1; 32]].concat()).unwrap();
        let p = StoredProvider {
            provider: id.clone(),
            addrs: vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()],
            expires_at: 3,
            addrs_expire_at: 2,
        };
        let b = encode_provider(&p, None);
        assert_eq!(
            hex(&b),
            "01\
             0000000000000003\
             0000000000000002\
             00\
             0000000000000001 0000000000000008 047f000001060001"
                .replace(' ', "")
        );
        assert_eq!(decode_provider(id.clone(), &b).unwrap().0, p);
        let k = provider_key(b"ab", &id);
        assert_eq!(hex(&k[..12]), "000000000000000261621220");
        assert_eq!(
            hex(&deadline_key(5, KIND_PROVIDER, b"k")),
            "0000000000000005016b"
        );
        assert_eq!(hex(&encode_generation(7)), "010000000000000007");
    }
}
