//! Record validation: the [`Validator`] trait (`validate` one record, `select` the best
//! of several), applied to every PUT_VALUE we serve and every record a GET_VALUE
//! brings back, and the built-in namespaces ([`Namespaces`]).
//!
//! `/pk/<PeerId>` is built in: the value is a protobuf `PublicKey` whose PeerId is the
//! key's. `/ipns/<name>` is built in: a signed IPNS record of an ed25519 name, not past
//! its end of life ([`crate::IpnsRecord`]); the best is the highest sequence, then the
//! later end of life. Other namespaces are refused under the default policy, as
//! go-libp2p-kad-dht does; [`RecordPolicy::Permissive`] (private networks) accepts any
//! other key with a value of at most 14 KiB, so a GET_VALUE reply carrying one still
//! fits 16 KiB.
//!
//! Validity can depend on time (an IPNS record's end of life), and this crate reads no
//! clock: every `validate` is given the wall-clock time by its caller.

use std::fmt::Debug;

use crate::ipns::{select_ipns, validate_ipns, IPNS_PREFIX};
use crate::peer::PeerId;
use crate::store::UnixMillis;

/// Why a record is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// No validator for the key's namespace.
    #[error("no validator for this namespace")]
    UnknownNamespace,
    /// The key does not have its namespace's form.
    #[error("malformed key")]
    BadKey,
    /// The value does not have its namespace's form.
    #[error("malformed value")]
    BadValue,
    /// The value does not belong to the key (a `/pk` key of another peer, an IPNS
    /// `pubKey` that is not the name's).
    #[error("value does not match the key")]
    Mismatch,
    /// The name's key is of a type we do not verify (IPNS names of RSA, secp256k1 and
    /// ECDSA keys: only ed25519 is supported).
    #[error("unsupported key type")]
    UnsupportedKey,
    /// The signature is not the key's over the signed bytes.
    #[error("bad signature")]
    BadSignature,
    /// Unsigned copies disagree with the signed fields (an IPNS record's V1 fields).
    #[error("unsigned fields differ from the signed ones")]
    Inconsistent,
    /// The record's end of life is not after the time given.
    #[error("record expired")]
    Expired,
    /// The value is larger than the policy allows.
    #[error("value too large")]
    TooLarge,
    /// `select` was given no value.
    #[error("nothing to select from")]
    Empty,
}

/// Validates records and ranks rival values of one key.
pub trait Validator: Debug {
    /// Is `value` a valid record for `key` at wall-clock time `now`?
    fn validate(&self, key: &[u8], value: &[u8], now: UnixMillis) -> Result<(), RecordError>;

    /// The index of the best of `values` (each valid) for `key`; on a tie, the first.
    fn select(&self, key: &[u8], values: &[&[u8]]) -> Result<usize, RecordError>;
}

/// What the built-in validator does with namespaces it does not know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecordPolicy {
    /// Refused, as go does on the public network.
    #[default]
    Strict,
    /// Accepted with values of at most `max_value` bytes (private networks).
    Permissive {
        /// The cap on values.
        max_value: usize,
    },
}

/// The permissive policy's cap: a GET_VALUE reply with a 14 KiB value, its key and 20
/// closer peers' worth of room still fits in 16 KiB.
pub const PERMISSIVE_MAX_VALUE: usize = 14 * 1024;

impl RecordPolicy {
    /// The permissive policy with its 14 KiB cap.
    pub fn permissive() -> RecordPolicy {
        RecordPolicy::Permissive {
            max_value: PERMISSIVE_MAX_VALUE,
        }
    }
}

/// The built-in validator: `/pk/` and `/ipns/` always, other namespaces by
/// [`RecordPolicy`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Namespaces {
    /// What happens to namespaces other than `/pk/` and `/ipns/`.
    pub policy: RecordPolicy,
}

/// The `/pk/` namespace's prefix.
pub const PK_PREFIX: &[u8] = b"/pk/";

/// Longest `/pk` value accepted: an RSA-8192 key in DER is about 1,100 bytes.
pub const MAX_PUBLIC_KEY_LEN: usize = 2048;

/// libp2p's `KeyType` of ed25519 keys.
pub(crate) const KEY_TYPE_ED25519: u32 = KeyType::Ed25519 as u32;

/// libp2p's `KeyType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
enum KeyType {
    Rsa = 0,
    Ed25519 = 1,
    Secp256k1 = 2,
    Ecdsa = 3,
}

/// libp2p's `PublicKey` (proto2: both fields required, so both always encoded).
#[derive(Clone, PartialEq, prost::Message)]
struct PublicKey {
    #[prost(enumeration = "KeyType", required, tag = "1")]
    key_type: i32,
    #[prost(bytes = "vec", required, tag = "2")]
    data: Vec<u8>,
}

/// Checks a `/pk/<PeerId>` record: the value is a public key of a known type whose
/// PeerId (computed from its canonical encoding, as go's `IDFromPublicKey` does) is
/// the key's.
pub fn validate_pk(key: &[u8], value: &[u8]) -> Result<(), RecordError> {
    let id = key.strip_prefix(PK_PREFIX).ok_or(RecordError::BadKey)?;
    let id = PeerId::from_bytes(id).map_err(|_| RecordError::BadKey)?;
    if value.len() > MAX_PUBLIC_KEY_LEN {
        return Err(RecordError::TooLarge);
    }
    let pk = <PublicKey as prost::Message>::decode(value).map_err(|_| RecordError::BadValue)?;
    let fits = match KeyType::try_from(pk.key_type) {
        Ok(KeyType::Ed25519) => pk.data.len() == 32,
        Ok(KeyType::Secp256k1) => pk.data.len() == 33,
        Ok(KeyType::Rsa | KeyType::Ecdsa) => !pk.data.is_empty(),
        Err(_) => false,
    };
    if !fits {
        return Err(RecordError::BadValue);
    }
    let canonical = prost::Message::encode_to_vec(&pk);
    if PeerId::from_public_key_protobuf(&canonical) != id {
        return Err(RecordError::Mismatch);
    }
    Ok(())
}

impl Validator for Namespaces {
    fn validate(&self, key: &[u8], value: &[u8], now: UnixMillis) -> Result<(), RecordError> {
        if key.starts_with(PK_PREFIX) {
            return validate_pk(key, value);
        }
        if key.starts_with(IPNS_PREFIX) {
            return validate_ipns(key, value, now);
        }
        match self.policy {
            RecordPolicy::Strict => Err(RecordError::UnknownNamespace),
            RecordPolicy::Permissive { max_value } if value.len() > max_value => {
                Err(RecordError::TooLarge)
            }
            RecordPolicy::Permissive { .. } => Ok(()),
        }
    }

    /// IPNS records rank by sequence, then end of life ([`select_ipns`]). Every valid
    /// `/pk` value of a key is the same key, and the permissive policy has no order:
    /// the first wins, so a republish of an equal record is accepted.
    fn select(&self, key: &[u8], values: &[&[u8]]) -> Result<usize, RecordError> {
        if key.starts_with(IPNS_PREFIX) {
            return select_ipns(values);
        }
        if values.is_empty() {
            return Err(RecordError::Empty);
        }
        Ok(0)
    }
}
