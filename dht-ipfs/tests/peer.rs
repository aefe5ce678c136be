//! PeerIds, keys and the contact the kernel holds.

use dht_core::kernel::Contact;
use dht_ipfs::{key_of, PeerId, PeerInfo, MAX_ADDRS};
use multiaddr::Multiaddr;
use sha2::{Digest, Sha256};

fn ed25519_peer_id(n: u8) -> PeerId {
    let mut b = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    b.extend([n; 32]);
    PeerId::from_bytes(&b).expect("identity multihash of an ed25519 key")
}

#[test]
fn peer_ids_parse_only_as_identity_or_sha256_multihashes() {
    let sha = [&[0x12, 0x20][..], &[7; 32]].concat();
    assert!(PeerId::from_bytes(&sha).is_ok());
    assert!(PeerId::from_bytes(&sha[..33]).is_err(), "short digest");
    assert!(
        PeerId::from_bytes(&[0x13, 0x20]).is_err(),
        "sha3 is no PeerId hash"
    );
    assert!(
        PeerId::from_bytes(&[0x00, 43]).is_err(),
        "inline keys stop at 42 bytes"
    );
    assert!(PeerId::from_bytes(&[]).is_err());
    let mut long = vec![0x00, 0x24];
    long.extend([1; 37]);
    assert!(PeerId::from_bytes(&long).is_err(), "trailing byte");
}

#[test]
fn the_key_is_sha256_of_the_peer_id_bytes() {
    let id = ed25519_peer_id(3);
    let want: [u8; 32] = Sha256::digest(id.as_bytes()).into();
    assert_eq!(id.key().0, want);
    assert_eq!(key_of(id.as_bytes()), id.key());
}

#[test]
fn a_contact_keeps_a_bounded_list_and_its_first_ip() {
    let addrs: Vec<Multiaddr> = (0..40)
        .map(|i| format!("/ip4/10.0.0.{i}/tcp/4001").parse().unwrap())
        .chain(std::iter::once("/ip4/10.0.0.0/tcp/4001".parse().unwrap()))
        .collect();
    let p = PeerInfo::new(ed25519_peer_id(1), addrs);
    assert_eq!(p.addrs().len(), MAX_ADDRS);
    assert_eq!(p.ip(), Some("10.0.0.0".parse().unwrap()));
    let dns = PeerInfo::new(
        ed25519_peer_id(2),
        ["/dns4/example.invalid/tcp/4001"
            .parse::<Multiaddr>()
            .unwrap()],
    );
    assert_eq!(dns.ip(), None);
    // Round trip through the wire, an unparsable address dropped.
    let mut w = p.to_wire(dht_ipfs::wire::ConnectionType::Connected);
    w.addrs.push(vec![0xff, 0xff]);
    assert_eq!(PeerInfo::from_wire(&w), Some(p.clone()));
    let mut moved = p.with_addrs(["/ip4/10.9.9.9/tcp/1".parse::<Multiaddr>().unwrap()]);
    assert!(!moved.same_endpoint(&p));
    assert!(moved.readdress(&p));
    assert_eq!(moved, p);
}
