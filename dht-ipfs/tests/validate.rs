//! The `/pk` validator on keys made by an independent implementation
//! (rust-libp2p's `libp2p-identity`), and the namespace policies.

use dht_ipfs::{Namespaces, PeerId, RecordError, RecordPolicy, Validator, PK_PREFIX};
use libp2p_identity::Keypair;

/// Wall-clock time for the validators (`/pk` records do not depend on it).
const NOW: dht_ipfs::UnixMillis = 1_800_000_000_000;

fn keypair(seed: u8) -> Keypair {
    Keypair::ed25519_from_bytes([seed; 32]).expect("32 bytes make an ed25519 key")
}

fn pk_record(kp: &Keypair) -> (Vec<u8>, Vec<u8>) {
    let public = kp.public();
    let key = [PK_PREFIX, &public.to_peer_id().to_bytes()].concat();
    (key, public.encode_protobuf())
}

#[test]
fn a_pk_record_of_rust_libp2p_validates() {
    let v = Namespaces::default();
    for seed in 1..=5 {
        let (key, value) = pk_record(&keypair(seed));
        assert_eq!(v.validate(&key, &value, NOW), Ok(()), "seed {seed}");
    }
}

#[test]
fn our_peer_id_of_a_public_key_is_rust_libp2p_s() {
    let kp = keypair(9);
    let ours = PeerId::from_public_key_protobuf(&kp.public().encode_protobuf());
    assert_eq!(ours.as_bytes(), kp.public().to_peer_id().to_bytes());
}

#[test]
fn a_pk_record_under_another_peer_s_key_is_refused() {
    let v = Namespaces::default();
    let (key_a, _) = pk_record(&keypair(1));
    let (_, value_b) = pk_record(&keypair(2));
    assert_eq!(
        v.validate(&key_a, &value_b, NOW),
        Err(RecordError::Mismatch)
    );
}

#[test]
fn malformed_pk_records_are_refused() {
    let v = Namespaces::default();
    let (key, value) = pk_record(&keypair(3));
    assert_eq!(v.validate(b"/pk/", &value, NOW), Err(RecordError::BadKey));
    assert_eq!(
        v.validate(&[PK_PREFIX, b"not a peer id"].concat(), &value, NOW),
        Err(RecordError::BadKey)
    );
    assert_eq!(
        v.validate(&key, &value[..10], NOW),
        Err(RecordError::BadValue)
    );
    // An ed25519 key of 31 bytes.
    let mut short = value.clone();
    short[3] = 31;
    short.pop();
    assert_eq!(v.validate(&key, &short, NOW), Err(RecordError::BadValue));
    // An unknown key type.
    let mut unknown = value.clone();
    unknown[1] = 9;
    assert_eq!(v.validate(&key, &unknown, NOW), Err(RecordError::BadValue));
    assert_eq!(v.validate(&key, &[], NOW), Err(RecordError::BadValue));
}

#[test]
fn a_large_key_is_named_by_its_sha256_multihash() {
    // An RSA-shaped key (type 0, 300 bytes of data): its PeerId hashes the encoding.
    let mut value = vec![0x08, 0x00, 0x12, 0xac, 0x02];
    value.extend([0x5a; 300]);
    let id = PeerId::from_public_key_protobuf(&value);
    assert_eq!(&id.as_bytes()[..2], &[0x12, 0x20]);
    let key = [PK_PREFIX, id.as_bytes()].concat();
    assert_eq!(Namespaces::default().validate(&key, &value, NOW), Ok(()));
}

#[test]
fn other_namespaces_are_refused_by_default_and_capped_at_14_kib_when_permissive() {
    let strict = Namespaces::default();
    assert_eq!(
        strict.validate(b"/v/name", b"value", NOW),
        Err(RecordError::UnknownNamespace)
    );
    // `/ipns/` is built in (tests/ipns.rs): a key that names nobody is malformed.
    assert_eq!(
        strict.validate(b"/ipns/x", b"value", NOW),
        Err(RecordError::BadKey)
    );
    let open = Namespaces {
        policy: RecordPolicy::permissive(),
    };
    assert_eq!(open.validate(b"/v/name", &vec![1; 14 * 1024], NOW), Ok(()));
    assert_eq!(
        open.validate(b"/v/name", &vec![1; 14 * 1024 + 1], NOW),
        Err(RecordError::TooLarge)
    );
    // /pk stays strict under the permissive policy.
    assert_eq!(
        open.validate(b"/pk/xyz", b"value", NOW),
        Err(RecordError::BadKey)
    );
}

#[test]
fn select_keeps_the_first_of_equals() {
    let v = Namespaces::default();
    let (key, value) = pk_record(&keypair(4));
    assert_eq!(v.select(&key, &[&value, &value]), Ok(0));
    assert_eq!(v.select(&key, &[]), Err(RecordError::Empty));
}
