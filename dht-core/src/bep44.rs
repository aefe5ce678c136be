//! BEP 44 items: targets, the signed buffer, signing and verification.

use ed25519_dalek::{Signature, Signer, VerifyingKey};

use crate::bencode;
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

/// A BEP 44 item: what a `put` carries and what a store keeps.
///
/// This is the one item type of the workspace: the wire (`put` arguments), the
/// engine and every store use it, so no code converts between look-alike structs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// An immutable item: its target is the SHA-1 of the value.
    Immutable {
        /// The value, bencoded.
        value: Vec<u8>,
    },
    /// A mutable item, signed by its key.
    Mutable(MutableItem),
}

impl Item {
    /// The bencoded value.
    pub fn value(&self) -> &[u8] {
        match self {
            Item::Immutable { value } => value,
            Item::Mutable(m) => &m.value,
        }
    }

    /// The bencoded value, owned.
    pub fn into_value(self) -> Vec<u8> {
        match self {
            Item::Immutable { value } => value,
            Item::Mutable(m) => m.value,
        }
    }

    /// The signed item, for a mutable item.
    pub fn as_mutable(&self) -> Option<&MutableItem> {
        match self {
            Item::Immutable { .. } => None,
            Item::Mutable(m) => Some(m),
        }
    }

    /// The item's target: SHA-1 of the value, or of `k || salt`.
    pub fn target(&self) -> Id {
        match self {
            Item::Immutable { value } => immutable_target(value),
            Item::Mutable(m) => m.target(),
        }
    }
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
///
/// Byte for byte: (when `salt` is non-empty) `4:salt` and the bencoded salt, then
/// `3:seqi<seq>e1:v` and the value exactly as bencoded. The value is not re-encoded, so
/// a signature never depends on how some serializer would order or format it.
pub fn signing_buffer(salt: &[u8], seq: i64, bencoded_value: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(salt.len() + bencoded_value.len() + 40);
    if !salt.is_empty() {
        buf.extend_from_slice(b"4:salt");
        bencode::write_bytes(&mut buf, salt);
    }
    buf.extend_from_slice(b"3:seq");
    bencode::write_int(&mut buf, seq);
    buf.extend_from_slice(b"1:v");
    buf.extend_from_slice(bencoded_value);
    buf
}

/// Checks `signature` by `key` over the item's signing buffer.
///
/// False for a key that is not a valid curve point. Uses `verify_strict`, which also
/// rejects weak keys and non-canonical signatures: a stored item must have exactly one
/// valid signature form, or a peer could re-publish the same item with a different `sig`.
/// Crate-private: users check an item with [`MutableItem::verify`], one way to ask.
pub(crate) fn verify(
    key: &[u8; 32],
    signature: &[u8; 64],
    salt: &[u8],
    seq: i64,
    bencoded_value: &[u8],
) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(key) else {
        return false;
    };
    let signature = Signature::from_bytes(signature);
    key.verify_strict(&signing_buffer(salt, seq, bencoded_value), &signature)
        .is_ok()
}

impl MutableItem {
    /// Signs `bencoded_value` with `signing_key`.
    pub fn sign(
        signing_key: &ed25519_dalek::SigningKey,
        salt: &[u8],
        seq: i64,
        bencoded_value: &[u8],
    ) -> MutableItem {
        let signature = signing_key.sign(&signing_buffer(salt, seq, bencoded_value));
        MutableItem {
            key: signing_key.verifying_key().to_bytes(),
            signature: signature.to_bytes(),
            seq,
            salt: salt.to_vec(),
            value: bencoded_value.to_vec(),
        }
    }

    /// The item's target.
    pub fn target(&self) -> Id {
        mutable_target(&self.key, &self.salt)
    }

    /// True when the signature checks out.
    pub fn verify(&self) -> bool {
        verify(
            &self.key,
            &self.signature,
            &self.salt,
            self.seq,
            &self.value,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::from_hex;
    use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
    use ed25519_dalek::Sha512;

    const VALUE: &[u8] = b"12:Hello World!";
    const PUBLIC: &str = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548";
    const PRIVATE: &str = "e06d3183d14159228433ed599221b80bd0a5ce8352e4bdf0262f76786ef1c74d\
                           b7e7a9fea2c0eb269d61e3b38e450a22e754941ac78479d6c54e1faf6037881d";
    const SIG1: &str = "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff\
                        1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01";
    const SIG2: &str = "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d\
                        df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08";

    fn arr<const N: usize>(hex: &str) -> [u8; N] {
        let compact: String = hex.split_whitespace().collect();
        from_hex(&compact)
            .and_then(|v| v.try_into().ok())
            .expect("test vector hex")
    }

    #[test]
    fn signing_buffers_match_the_vectors() {
        assert_eq!(signing_buffer(b"", 1, VALUE), b"3:seqi1e1:v12:Hello World!");
        assert_eq!(
            signing_buffer(b"foobar", 1, VALUE),
            b"4:salt6:foobar3:seqi1e1:v12:Hello World!"
        );
        assert_eq!(signing_buffer(b"", -5, b"i1e"), b"3:seqi-5e1:vi1e");
    }

    #[test]
    fn vector_signatures_verify() {
        let key = arr::<32>(PUBLIC);
        assert!(verify(&key, &arr(SIG1), b"", 1, VALUE));
        assert!(verify(&key, &arr(SIG2), b"foobar", 1, VALUE));
        // Swapped signatures, another seq, another value: all rejected.
        assert!(!verify(&key, &arr(SIG2), b"", 1, VALUE));
        assert!(!verify(&key, &arr(SIG1), b"", 2, VALUE));
        assert!(!verify(&key, &arr(SIG1), b"", 1, b"12:Hello World?"));
    }

    #[test]
    fn vectors_sign_with_the_expanded_key() {
        let secret = ExpandedSecretKey::from_bytes(&arr::<64>(PRIVATE));
        let public = VerifyingKey::from(&secret);
        assert_eq!(public.to_bytes(), arr::<32>(PUBLIC));
        for (salt, sig) in [(&b""[..], SIG1), (b"foobar", SIG2)] {
            let ours = raw_sign::<Sha512>(&secret, &signing_buffer(salt, 1, VALUE), &public);
            assert_eq!(ours.to_bytes(), arr::<64>(sig));
        }
    }

    #[test]
    fn vector_targets() {
        let key = arr::<32>(PUBLIC);
        assert_eq!(
            mutable_target(&key, b"").to_hex(),
            "4a533d47ec9c7d95b1ad75f576cffc641853b750"
        );
        assert_eq!(
            mutable_target(&key, b"foobar").to_hex(),
            "411eba73b6f087ca51a3795d9c8c938d365e32c1"
        );
        assert_eq!(
            immutable_target(VALUE).to_hex(),
            "e5f96f6f38320f0f33959cb4d3d656452117aadb"
        );
    }

    #[test]
    fn sign_then_verify() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let item = MutableItem::sign(&sk, b"salt", 42, b"d1:ai1ee");
        assert!(item.verify());
        assert_eq!(
            item.target(),
            mutable_target(&sk.verifying_key().to_bytes(), b"salt")
        );
        let mut tampered = item.clone();
        tampered.seq = 43;
        assert!(!tampered.verify());
    }

    #[test]
    fn invalid_keys_do_not_panic() {
        // Not all 32-byte strings are curve points; none of these may panic.
        for k in [[0xff; 32], [0; 32], [1; 32]] {
            assert!(!verify(&k, &[0; 64], b"", 1, VALUE));
            assert!(!verify(&k, &[0xff; 64], b"x", 1, VALUE));
        }
    }
}
