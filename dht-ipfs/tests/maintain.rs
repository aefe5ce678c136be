//! Keeping the node in the network: servers that join through a node are in its
//! answers within a second, bucket refreshes find preimages in their bucket (bounded),
//! our records and provider announcements outlive the 48 h holders keep them.

mod common;

use std::time::Duration;

use common::{network, run_request, start};
use dht_core::kernel::{Contact, Key as _};
use dht_core::{Input, Output, Overlay, StreamId};
use dht_ipfs::wire::{decode_frame, encode_frame, Message, MessageType};
use dht_ipfs::{
    grind_preimage, key_of, Config, Key, Outcome, PeerId, PeerInfo, Request, KAD_PROTOCOL,
    PK_PREFIX,
};
use libp2p_identity::Keypair;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn servers_that_joined_through_a_node_are_in_its_answers_within_a_second() {
    let mut net = network(1, 4, |_| {});
    let first = net.addr(0);
    for i in 1..3 {
        start(
            &mut net,
            i,
            Request::Bootstrap {
                seeds: vec![first.clone()],
            },
        );
    }
    net.run_for(Duration::from_secs(1));
    // Node 3 (a stranger) asks node 0 for the peers closest to anything.
    let asker = net.addr(3);
    let now = net.now_instant();
    let req = encode_frame(&Message::new(MessageType::FindNode, b"any".to_vec()));
    net.node_mut(0).handle_input(
        now,
        Input::StreamRequest {
            from: asker,
            stream: StreamId(1),
            bytes: &req,
        },
    );
    let Some(Output::Reply { payload, .. }) = net.node_mut(0).poll_output() else {
        panic!("an answer");
    };
    let reply = decode_frame(&payload, 1 << 17).unwrap();
    let listed: Vec<Vec<u8>> = reply.closer_peers.iter().map(|p| p.id.clone()).collect();
    for i in 1..3 {
        assert!(
            listed.contains(&net.addr(i).id().as_bytes().to_vec()),
            "node {i} joined through node 0 and is listed"
        );
    }
}

#[test]
fn a_client_is_never_routed_to() {
    let mut net = network(2, 3, |c| {
        if c.listen_addrs[0].to_string().starts_with("/ip4/127.0.0.3/") {
            c.mode = dht_ipfs::Mode::Client;
        }
    });
    let first = net.addr(0);
    start(
        &mut net,
        1,
        Request::Bootstrap {
            seeds: vec![first.clone()],
        },
    );
    let done = run_request(
        &mut net,
        2,
        Request::Bootstrap { seeds: vec![first] },
        Duration::from_secs(30),
    );
    assert!(
        matches!(done.outcome, Outcome::Peers { ref closest } if !closest.is_empty()),
        "a client looks up"
    );
    net.run_for(Duration::from_secs(5));
    let client = net.addr(2).key().to_owned();
    assert!(net.node(0).table().get(&client).is_none());
    assert!(net.node(1).table().get(&client).is_none());
    let server = *net.addr(1).key();
    assert!(net.node(0).table().get(&server).is_some());
}

#[test]
fn refresh_preimages_fall_in_their_bucket_and_grinding_is_bounded() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let own: Key = Key::random(&mut rng);
    for bucket in 0..12 {
        let p = grind_preimage(&own, bucket, false, 1 << 16, &mut rng);
        assert_eq!(
            own.common_prefix_len(&key_of(&p)),
            bucket,
            "bucket {bucket}"
        );
        assert_eq!(&p[..2], &[0x12, 0x20], "PeerId-shaped: a SHA-256 multihash");
    }
    // The last bucket takes anything at least that deep.
    let p = grind_preimage(&own, 3, true, 1 << 16, &mut rng);
    assert!(own.common_prefix_len(&key_of(&p)) >= 3);
    // Bucket 60 is out of reach in 1,024 tries: the closest found comes back.
    let p = grind_preimage(&own, 60, false, 1 << 10, &mut rng);
    let shared = own.common_prefix_len(&key_of(&p));
    assert!(
        (5..60).contains(&shared),
        "the deepest of 1,024 tries: {shared} bits"
    );
}

fn pk_record() -> (Vec<u8>, Vec<u8>) {
    let public = Keypair::ed25519_from_bytes([42; 32]).unwrap().public();
    (
        [PK_PREFIX, &public.to_peer_id().to_bytes()].concat(),
        public.encode_protobuf(),
    )
}

#[test]
fn records_and_provider_announcements_are_republished_past_48_hours() {
    let mut net = network(4, 30, |c| {
        c.housekeeping_interval = Duration::from_secs(600)
    });
    let first = net.addr(0);
    for i in 1..30 {
        start(
            &mut net,
            i,
            Request::Bootstrap {
                seeds: vec![first.clone()],
            },
        );
        net.run_for(Duration::from_millis(100));
    }
    net.run_for(Duration::from_secs(30));
    let (key, value) = pk_record();
    let cid = [&[0x12, 0x20][..], &key_of(b"content").0].concat();
    run_request(
        &mut net,
        5,
        Request::PutRecord {
            key: key.clone(),
            value: value.clone(),
        },
        Duration::from_secs(60),
    );
    run_request(
        &mut net,
        6,
        Request::StartProviding { key: cid.clone() },
        Duration::from_secs(60),
    );
    // Holders keep both for 48 h; only republishing carries them past it.
    net.run_for(Duration::from_secs(50 * 3600));
    let done = run_request(
        &mut net,
        20,
        Request::GetRecord { key },
        Duration::from_secs(60),
    );
    assert!(matches!(done.outcome, Outcome::Record { record: Some(ref r) } if r.value == value));
    let done = run_request(
        &mut net,
        21,
        Request::GetProviders { key: cid },
        Duration::from_secs(60),
    );
    let Outcome::Providers { providers, .. } = done.outcome else {
        panic!("providers")
    };
    assert!(providers.contains(&net.addr(6)));
}

/// A node driven by hand: identify reports `peer` as a server, and every FIND_NODE the
/// node sends it is answered (with no peers). True when the node asked it anything.
fn identify_and_answer(node: &mut dht_ipfs::Node<dht_ipfs::MemStore>, peer: &PeerInfo) -> bool {
    let now = std::time::Instant::now();
    let protocols = [KAD_PROTOCOL.to_string()];
    node.handle_input(
        now,
        Input::Identified {
            peer: peer.clone(),
            protocols: &protocols,
        },
    );
    let mut asked = false;
    while let Some(out) = node.poll_output() {
        if let Output::Request { to, stream, .. } = out {
            assert_eq!(&to, peer);
            asked = true;
            let reply = encode_frame(&Message::new(MessageType::FindNode, Vec::new()));
            node.handle_input(
                now,
                Input::StreamReply {
                    stream,
                    bytes: &reply,
                },
            );
        }
    }
    asked
}

/// A server whose key shares exactly `bucket` bits with `own` and, when `slice` is
/// given, whose next 5 bits after the bucket's prefix are those of `slice`.
fn server_in(own: &Key, bucket: usize, slice: Option<&Key>, rng: &mut ChaCha8Rng) -> PeerInfo {
    loop {
        let id = PeerId::from_bytes(&grind_preimage(own, bucket, false, 1 << 16, rng)).unwrap();
        let key = id.key();
        let same_slice = |s: &Key| (bucket + 1..bucket + 6).all(|b| s.bit(b) == key.bit(b));
        if slice.is_none_or(same_slice) {
            let n = rng.next_u32() % 60_000 + 1;
            let addr = format!("/ip4/127.0.{}.{}/tcp/4001", n >> 8, n & 0xff);
            return PeerInfo::new(id, [addr.parse().unwrap()]);
        }
    }
}

#[test]
fn admission_asks_only_peers_with_a_place_and_far_buckets_stay_spread() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let me = PeerId::from_bytes(&grind_preimage(
        &Key::random(&mut rng),
        0,
        false,
        1,
        &mut rng,
    ))
    .unwrap();
    let own = me.key();
    let config = Config::new(1, me, vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()]);
    let store = dht_ipfs::MemStore::new(dht_ipfs::StoreLimits::default());
    let mut node = dht_ipfs::Node::new(config, store, std::time::Instant::now(), 0);
    // 30 servers sharing 5 bits with us: the table splits down to bucket 5, which
    // keeps 20 of them; the others are not asked, and no replacement cache grows.
    let deep: Vec<PeerInfo> = (0..30)
        .map(|_| server_in(&own, 5, None, &mut rng))
        .collect();
    let asked = deep
        .iter()
        .filter(|p| identify_and_answer(&mut node, p))
        .count();
    assert_eq!(node.table().len(), 20);
    // The 21st was asked while its bucket was the last (which may split): its answer
    // split the table, and it waits in the one replacement cache that filled so.
    assert_eq!(asked, 21, "a peer whose bucket is full is not asked");
    assert!(node.table().replacement_len() <= 1);
    // Identify again for a peer in the table: it answered already, nothing is sent.
    assert!(!identify_and_answer(&mut node, &deep[0]));
    // Bucket 0 (far above the last one) keeps one contact per 5-bit slice.
    let first = server_in(&own, 0, None, &mut rng);
    assert!(identify_and_answer(&mut node, &first));
    let same = server_in(&own, 0, Some(first.key()), &mut rng);
    assert!(!identify_and_answer(&mut node, &same), "its slice is taken");
    assert!(node.table().get(same.key()).is_none());
    let other = loop {
        let p = server_in(&own, 0, None, &mut rng);
        if (1..6).any(|b| p.key().bit(b) != first.key().bit(b)) {
            break p;
        }
    };
    assert!(identify_and_answer(&mut node, &other));
    assert!(node.table().get(other.key()).is_some());
}
