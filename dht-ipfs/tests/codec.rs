//! The kad codec: round trips, the size bounds checked on the length prefix alone,
//! unknown fields skipped, groups refused, the PUT_VALUE with no `type` field, and
//! replies trimmed to 16 KiB.

use dht_ipfs::wire::{
    decode_frame, decode_message, encode_frame, frame_header, frame_len, trim_to_fit,
    ConnectionType, DecodeError, Message, MessageType, Peer, Record, MAX_PEERS_PER_LIST,
};

const KIB: usize = 1024;
const MAX_REQUEST: usize = 64 * KIB;
const MAX_REPLY: usize = 128 * KIB;

fn peer(n: u8, addrs: usize) -> Peer {
    let mut id = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    id.extend([n; 32]);
    Peer {
        id,
        // /ip4/127.0.0.n/tcp/4001 in binary.
        addrs: (0..addrs)
            .map(|i| vec![0x04, 127, 0, 0, n, 0x06, 0x0f, 0xa1 + i as u8])
            .collect(),
        connection: ConnectionType::Connected as i32,
    }
}

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

#[test]
fn every_message_type_round_trips() {
    let record = Record {
        key: b"/pk/key".to_vec(),
        value: vec![7; 100],
        time_received: "2026-01-01T00:00:00Z".into(),
        publisher: vec![1, 2, 3],
        ttl: 3600,
    };
    for kind in [
        MessageType::PutValue,
        MessageType::GetValue,
        MessageType::AddProvider,
        MessageType::GetProviders,
        MessageType::FindNode,
        MessageType::Ping,
    ] {
        let mut m = Message::new(kind, b"some key".to_vec());
        m.record = Some(record.clone());
        m.closer_peers = vec![peer(1, 2), peer(2, 0)];
        m.provider_peers = vec![peer(3, 1)];
        m.cluster_level_raw = 4;
        let frame = encode_frame(&m);
        assert_eq!(frame.len(), frame_len(&m));
        let back = decode_frame(&frame, MAX_REQUEST).expect("decodes");
        assert_eq!(back, m);
        assert_eq!(back.kind(), Some(kind));
    }
}

#[test]
fn a_put_value_carries_no_type_field_and_decodes_as_put_value() {
    let m = Message::new(MessageType::PutValue, b"k".to_vec());
    let frame = encode_frame(&m);
    // Prefix, then field 2 (key) only: proto3 omits type 0.
    assert_eq!(frame, vec![3, 0x12, 1, b'k']);
    assert_eq!(
        decode_frame(&frame, MAX_REQUEST).unwrap().kind(),
        Some(MessageType::PutValue)
    );
}

#[test]
fn a_request_whose_prefix_says_70_kib_is_refused_on_the_prefix_alone() {
    let prefix = varint(70 * KIB as u64);
    // Only the prefix: the verdict needs no body, so none is read or allocated.
    assert_eq!(
        frame_header(&prefix, MAX_REQUEST),
        Err(DecodeError::TooLarge {
            len: 70 * KIB as u64,
            max: MAX_REQUEST
        })
    );
    let mut short = prefix.clone();
    short.extend([0x12, 0x01, b'k']);
    assert!(matches!(
        decode_frame(&short, MAX_REQUEST),
        Err(DecodeError::TooLarge { .. })
    ));
    // The same prefix passes the header check when the limit allows it.
    assert_eq!(
        frame_header(&prefix, MAX_REPLY),
        Ok(Some((prefix.len(), 70 * KIB)))
    );
    // An incomplete prefix asks for more bytes.
    assert_eq!(frame_header(&prefix[..1], MAX_REQUEST), Ok(None));
}

fn reply_of(bytes: usize) -> Vec<u8> {
    let mut m = Message::new(MessageType::GetValue, b"/x/k".to_vec());
    let mut value_len = bytes;
    loop {
        m.record = Some(Record {
            key: b"/x/k".to_vec(),
            value: vec![0xab; value_len],
            ..Record::default()
        });
        let f = frame_len(&m);
        if f == bytes {
            return encode_frame(&m);
        }
        value_len -= f - bytes;
    }
}

#[test]
fn a_reply_of_100_kib_is_accepted_and_one_of_200_kib_refused() {
    let ok = reply_of(100 * KIB);
    assert_eq!(ok.len(), 100 * KIB);
    let m = decode_frame(&ok, MAX_REPLY).expect("100 KiB reply");
    assert!(m.record.is_some());
    let big = reply_of(200 * KIB);
    assert!(matches!(
        decode_frame(&big, MAX_REPLY),
        Err(DecodeError::TooLarge { .. })
    ));
    // And the request limit refuses the 100 KiB one.
    assert!(matches!(
        decode_frame(&ok, MAX_REQUEST),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn unknown_fields_are_skipped_at_every_level() {
    let m = Message {
        record: Some(Record {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Record::default()
        }),
        closer_peers: vec![peer(1, 1)],
        ..Message::new(MessageType::GetValue, b"k".to_vec())
    };
    let mut body = prost::Message::encode_to_vec(&m);
    // Field 50 varint, field 51 bytes, field 52 fixed64, field 53 fixed32.
    body.extend([0x90, 0x03, 0x05]);
    body.extend([0x9a, 0x03, 0x02, 0xaa, 0xbb]);
    body.extend([0xa1, 0x03, 1, 2, 3, 4, 5, 6, 7, 8]);
    body.extend([0xad, 0x03, 1, 2, 3, 4]);
    assert_eq!(decode_message(&body), Ok(m.clone()));
    // An unknown field inside a peer.
    let mut p = prost::Message::encode_to_vec(&peer(9, 1));
    p.extend([0x20, 0x01]);
    let mut body = vec![0x42, p.len() as u8];
    body.extend(&p);
    let back = decode_message(&body).expect("peer with an unknown field");
    assert_eq!(back.closer_peers, vec![peer(9, 1)]);
}

#[test]
fn groups_are_refused_wherever_they_are() {
    // Top level: field 50 start group, end group.
    let mut body = prost::Message::encode_to_vec(&Message::new(MessageType::Ping, vec![]));
    body.extend([0x93, 0x03, 0x94, 0x03]);
    assert_eq!(decode_message(&body), Err(DecodeError::Group));
    // Inside a record.
    let body = [0x1a, 0x02, 0x33, 0x34];
    assert_eq!(decode_message(&body), Err(DecodeError::Group));
    // Inside a provider peer.
    let body = [0x4a, 0x02, 0x2b, 0x2c];
    assert_eq!(decode_message(&body), Err(DecodeError::Group));
}

#[test]
fn garbage_is_refused_without_panicking() {
    for bytes in [
        &[0x05, 0x12][..],
        &[0x01, 0x00],
        &[0x02, 0x12, 0x05],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0x01, 0x0f],
        &[0x80, 0x00],
    ] {
        assert!(decode_frame(bytes, MAX_REQUEST).is_err(), "{bytes:?}");
    }
    let mut trailing = encode_frame(&Message::new(MessageType::Ping, vec![]));
    trailing.push(0);
    assert_eq!(
        decode_frame(&trailing, MAX_REQUEST),
        Err(DecodeError::Trailing)
    );
}

#[test]
fn more_peers_than_a_list_may_hold_are_refused() {
    let mut m = Message::new(MessageType::FindNode, b"k".to_vec());
    m.closer_peers = (0..=MAX_PEERS_PER_LIST).map(|_| Peer::default()).collect();
    let frame = encode_frame(&m);
    assert_eq!(decode_frame(&frame, MAX_REPLY), Err(DecodeError::TooMany));
    m.closer_peers.pop();
    assert!(decode_frame(&encode_frame(&m), MAX_REPLY).is_ok());
}

#[test]
fn replies_are_trimmed_to_eight_addresses_a_peer_then_farthest_peers_first() {
    let mut m = Message::new(MessageType::FindNode, b"k".to_vec());
    m.closer_peers = (0..20).map(|n| peer(n, 12)).collect();
    assert!(trim_to_fit(&mut m, 16 * KIB));
    assert!(m.closer_peers.iter().all(|p| p.addrs.len() == 8));
    assert_eq!(m.closer_peers.len(), 20, "20 peers of 8 addresses fit");
    // With 200 addresses' worth of long ones, the farthest go.
    let mut m = Message::new(MessageType::FindNode, b"k".to_vec());
    m.closer_peers = (0..20)
        .map(|n| {
            let mut p = peer(n, 0);
            p.addrs = vec![vec![0x35; 200]; 10];
            p
        })
        .collect();
    assert!(trim_to_fit(&mut m, 16 * KIB));
    assert!(frame_len(&m) <= 16 * KIB);
    assert!(m.closer_peers.len() < 20);
    assert_eq!(m.closer_peers[0], {
        let mut p = peer(0, 0);
        p.addrs = vec![vec![0x35; 200]; 8];
        p
    });
    // A record alone over the limit cannot fit.
    let mut m = Message::new(MessageType::GetValue, b"k".to_vec());
    m.record = Some(Record {
        value: vec![0; 17 * KIB],
        ..Record::default()
    });
    assert!(!trim_to_fit(&mut m, 16 * KIB));
}
