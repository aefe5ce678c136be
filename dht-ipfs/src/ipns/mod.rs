//! IPNS records (`/ipns/<name>`), as the IPNS Record specification
//! (specs.ipfs.tech/ipns/ipns-record) has them verified, ranked and created.
//!
//! A record is an `IpnsEntry` protobuf of at most 10 KiB whose `data` is a DAG-CBOR
//! map (`Value`, `Validity`, `ValidityType`, `Sequence`, `TTL`) signed by the name's
//! key: `signatureV2` over `"ipns-signature:" ‖ data`. [`IpnsRecord::verify`] follows
//! the spec's verification steps in order and stops at the first failure: the size,
//! `signatureV2` and `data` present, the public key (`pubKey` if present, and it must
//! be the name's; else the one the name inlines), `data` decoded, the signature, the
//! V1 fields equal to `data`'s when a V1 record is present, then the end of life
//! against the wall-clock time the caller passes (this crate reads no clock).
//!
//! **Only ed25519 names.** A name is the PeerId of its key; ed25519 keys are inlined
//! in it (identity multihash), so the name alone verifies its records. Names of RSA
//! keys (a SHA-256 multihash, the key in `pubKey`), secp256k1 and ECDSA keys are
//! refused with [`RecordError::UnsupportedKey`]: the spec makes only ed25519
//! mandatory (RSA is a "SHOULD" for legacy names, the others "MAY"), and each other
//! key type would bring its own signature crate (RSA's DER and PKCS#1 v1.5 among
//! them) into a crate that verifies network input. Such records are neither stored
//! nor handed out by our nodes; other nodes still serve them.
//!
//! `signatureV1` is never verified (the spec forbids relying on it); records we
//! create carry it, and the V1 copies of the fields, for readers that only know V1.

mod entry;
mod time;

use std::time::Duration;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use prost::Message as _;

use crate::peer::PeerId;
use crate::store::UnixMillis;
use crate::validate::{RecordError, KEY_TYPE_ED25519};
use entry::{Data, IpnsEntry, EOL};

/// The `/ipns/` namespace's prefix; the rest of the key is the name (a binary PeerId).
pub const IPNS_PREFIX: &[u8] = b"/ipns/";

/// The largest `IpnsEntry` accepted or created: 10 KiB (the spec's limit).
pub const MAX_IPNS_RECORD_LEN: usize = 10 * 1024;

/// Nanoseconds since the Unix epoch (1970-01-01T00:00:00Z).
pub type UnixNanos = u64;

/// What `signatureV2` signs: this prefix, then `data`.
const SIGNATURE_V2_PREFIX: &[u8] = b"ipns-signature:";

/// An ed25519 key that names IPNS records and signs them.
pub struct IpnsKeypair(SigningKey);

impl std::fmt::Debug for IpnsKeypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The name, never the secret.
        write!(f, "IpnsKeypair({:?})", self.name())
    }
}

impl IpnsKeypair {
    /// The key of a 32-byte ed25519 secret (RFC 8032's seed).
    pub fn from_secret(secret: [u8; 32]) -> IpnsKeypair {
        IpnsKeypair(SigningKey::from_bytes(&secret))
    }

    /// The libp2p protobuf `PublicKey` of this key.
    pub fn public_key_protobuf(&self) -> Vec<u8> {
        let mut b = vec![0x08, KEY_TYPE_ED25519 as u8, 0x12, 0x20];
        b.extend_from_slice(self.0.verifying_key().as_bytes());
        b
    }

    /// The name: the PeerId that inlines the public key.
    pub fn name(&self) -> PeerId {
        PeerId::from_public_key_protobuf(&self.public_key_protobuf())
    }

    /// The DHT key records of this name are put under: `/ipns/` and the name's bytes.
    pub fn record_key(&self) -> Vec<u8> {
        [IPNS_PREFIX, self.name().as_bytes()].concat()
    }
}

/// A verified IPNS record: what its signed `data` says.
///
/// Only records of ed25519 names verify: names of RSA, secp256k1 and ECDSA keys are
/// refused with [`RecordError::UnsupportedKey`] (the spec makes only ed25519
/// mandatory; see ARCHITECTURE.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpnsRecord {
    data: Data,
    eol: i128,
}

impl IpnsRecord {
    /// Creates a record as Kubo and js-ipns write them: the canonical DAG-CBOR `data`
    /// signed by `signatureV2`, the V1 copies of its fields and `signatureV1`, no
    /// `pubKey` (the name inlines it). `value` is a content path (`/ipfs/<cid>`),
    /// `eol` the end of life, `ttl` how long resolvers may cache it. Returns the
    /// `IpnsEntry` bytes to put under [`IpnsKeypair::record_key`]; a record over
    /// 10 KiB (a `value` near that size) is refused with [`RecordError::TooLarge`].
    pub fn create(
        key: &IpnsKeypair,
        value: &[u8],
        sequence: u64,
        eol: UnixNanos,
        ttl: Duration,
    ) -> Result<Vec<u8>, RecordError> {
        let ttl = u64::try_from(ttl.as_nanos()).map_err(|_| RecordError::BadValue)?;
        let validity = time::format_rfc3339(eol).into_bytes();
        let data = Data {
            value: value.to_vec(),
            validity: validity.clone(),
            validity_type: EOL,
            sequence,
            ttl: Some(ttl),
        }
        .encode();
        let signature_v2 = key.0.sign(&[SIGNATURE_V2_PREFIX, &data].concat());
        // V1 signs the validity type by its enum name, as Go's `fmt.Sprint` and
        // js-ipns write it.
        let signature_v1 = key.0.sign(&[value, &validity, b"EOL"].concat());
        let entry = IpnsEntry {
            value: Some(value.to_vec()),
            signature_v1: Some(signature_v1.to_bytes().to_vec()),
            validity_type: Some(EOL as i32),
            validity: Some(validity),
            sequence: Some(sequence),
            ttl: Some(ttl),
            pub_key: None,
            signature_v2: Some(signature_v2.to_bytes().to_vec()),
            data: Some(data),
        }
        .encode_to_vec();
        if entry.len() > MAX_IPNS_RECORD_LEN {
            return Err(RecordError::TooLarge);
        }
        Ok(entry)
    }

    /// Verifies `entry` as the record under `key` (`/ipns/<name>`) at wall-clock time
    /// `now`, in the order of the spec's steps, and returns what it says.
    pub fn verify(key: &[u8], entry: &[u8], now: UnixMillis) -> Result<IpnsRecord, RecordError> {
        let name = key.strip_prefix(IPNS_PREFIX).ok_or(RecordError::BadKey)?;
        let name = PeerId::from_bytes(name).map_err(|_| RecordError::BadKey)?;
        if entry.len() > MAX_IPNS_RECORD_LEN {
            return Err(RecordError::TooLarge);
        }
        let e = IpnsEntry::decode(entry).map_err(|_| RecordError::BadValue)?;
        let (signature, data_bytes) = match (&e.signature_v2, &e.data) {
            (Some(s), Some(d)) if !s.is_empty() && !d.is_empty() => (s, d),
            _ => return Err(RecordError::BadValue),
        };
        let public = public_key_of(&name, e.pub_key.as_deref())?;
        let data = Data::decode(data_bytes).ok_or(RecordError::BadValue)?;
        let signature = Signature::from_slice(signature).map_err(|_| RecordError::BadSignature)?;
        public
            .verify(&[SIGNATURE_V2_PREFIX, data_bytes].concat(), &signature)
            .map_err(|_| RecordError::BadSignature)?;
        if e.signature_v1.is_some() || e.value.is_some() {
            // Absent V1 fields read as their defaults, as Go and js read them.
            let same = e.value.as_deref().unwrap_or_default() == data.value
                && e.validity.as_deref().unwrap_or_default() == data.validity
                && u64::try_from(e.validity_type.unwrap_or_default()) == Ok(data.validity_type)
                && e.sequence.unwrap_or_default() == data.sequence
                && e.ttl.unwrap_or_default() == data.ttl.unwrap_or_default();
            if !same {
                return Err(RecordError::Inconsistent);
            }
        }
        if data.validity_type != EOL {
            return Err(RecordError::BadValue);
        }
        let eol = time::parse_rfc3339(&data.validity).ok_or(RecordError::BadValue)?;
        if eol <= i128::from(now) * 1_000_000 {
            return Err(RecordError::Expired);
        }
        Ok(IpnsRecord { data, eol })
    }

    /// The content path the name points at.
    pub fn value(&self) -> &[u8] {
        &self.data.value
    }

    /// The version: a newer record of the name has a higher one.
    pub fn sequence(&self) -> u64 {
        self.data.sequence
    }

    /// The end of life, in nanoseconds since the Unix epoch.
    pub fn eol(&self) -> i128 {
        self.eol
    }

    /// How long a resolver may cache the record, if it says.
    pub fn ttl(&self) -> Option<Duration> {
        self.data.ttl.map(Duration::from_nanos)
    }
}

/// The key that must have signed records of `name`: the one it inlines (ed25519 only),
/// which `pub_key`, when present, must equal.
fn public_key_of(name: &PeerId, pub_key: Option<&[u8]>) -> Result<VerifyingKey, RecordError> {
    if let Some(pk) = pub_key {
        if PeerId::from_public_key_protobuf(pk) != *name {
            return Err(RecordError::Mismatch);
        }
    }
    // An identity PeerId is [0x00, length, key] (inlined keys are under 128 bytes);
    // a SHA-256 one names a key too large to inline: RSA or ECDSA.
    let inlined = match name.as_bytes() {
        [0x00, _, key @ ..] => key,
        _ => return Err(RecordError::UnsupportedKey),
    };
    match inlined {
        [0x08, t, 0x12, 0x20, raw @ ..] if u32::from(*t) == KEY_TYPE_ED25519 => {
            let raw: &[u8; 32] = raw.try_into().map_err(|_| RecordError::BadKey)?;
            VerifyingKey::from_bytes(raw).map_err(|_| RecordError::BadKey)
        }
        _ => Err(RecordError::UnsupportedKey),
    }
}

/// Checks an `/ipns/<name>` record at wall-clock time `now` ([`IpnsRecord::verify`]).
pub fn validate_ipns(key: &[u8], value: &[u8], now: UnixMillis) -> Result<(), RecordError> {
    IpnsRecord::verify(key, value, now).map(drop)
}

/// The index of the best of `values`: the highest `Sequence`, then the later end of
/// life; on a tie, the first. Signatures are not checked again (`select` is given
/// validated records); a value that does not decode ranks below every one that does.
pub fn select_ipns(values: &[&[u8]]) -> Result<usize, RecordError> {
    let rank = |v: &[u8]| -> Option<(u64, i128)> {
        let e = IpnsEntry::decode(v).ok()?;
        let data = Data::decode(e.data.as_deref()?)?;
        let eol = time::parse_rfc3339(&data.validity)?;
        Some((data.sequence, eol))
    };
    let mut best: Option<(usize, Option<(u64, i128)>)> = None;
    for (i, v) in values.iter().enumerate() {
        let r = rank(v);
        if best.as_ref().is_none_or(|(_, b)| r > *b) {
            best = Some((i, r));
        }
    }
    best.map(|(i, _)| i).ok_or(RecordError::Empty)
}
