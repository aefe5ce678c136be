//! BEP 44 items: targets, the signed buffer, signing and verification.
//! (Implemented by the codec work; signatures fixed here so the engine can build on them.)

use crate::id::Id;

/// A mutable item as published: value, key, signature, seq and salt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutableItem {
    /// ed25519 public key `k`.
    pub key: [u8; 32],
    /// Signature over [`signing_buffer`].
    pub signature: [u8; 64],
    /// Sequence number.
    pub seq: i64,
    /// Salt (empty = none).
    pub salt: Vec<u8>,
    /// The value, bencoded.
    pub value: Vec<u8>,
}

/// Target of an immutable item: SHA-1 of the bencoded value.
pub fn immutable_target(bencoded_value: &[u8]) -> Id {
    Id::sha1(bencoded_value)
}

/// Target of a mutable item: SHA-1 of `k || salt`.
pub fn mutable_target(key: &[u8; 32], salt: &[u8]) -> Id {
    Id::sha1_parts(&[key, salt])
}

/// The bytes a mutable item's signature covers.
pub fn signing_buffer(salt: &[u8], seq: i64, bencoded_value: &[u8]) -> Vec<u8> {
    let _ = (salt, seq, bencoded_value);
    todo!("codec work")
}

/// Checks `signature` by `key` over the item's signing buffer.
pub fn verify(key: &[u8; 32], signature: &[u8; 64], salt: &[u8], seq: i64, bencoded_value: &[u8]) -> bool {
    let _ = (key, signature, salt, seq, bencoded_value);
    todo!("codec work")
}

impl MutableItem {
    /// Signs `bencoded_value` with `signing_key`.
    pub fn sign(signing_key: &ed25519_dalek::SigningKey, salt: &[u8], seq: i64, bencoded_value: &[u8]) -> MutableItem {
        let _ = (signing_key, salt, seq, bencoded_value);
        todo!("codec work")
    }

    /// The item's target.
    pub fn target(&self) -> Id {
        mutable_target(&self.key, &self.salt)
    }

    /// True when the signature checks out.
    pub fn verify(&self) -> bool {
        verify(&self.key, &self.signature, &self.salt, self.seq, &self.value)
    }
}
