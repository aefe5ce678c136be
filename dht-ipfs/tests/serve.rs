//! A server's answer to each message type, driven by hand through the `Overlay` trait:
//! FIND_NODE for arbitrary keys, GET_VALUE, PUT_VALUE (valid, equal republish, losing,
//! invalid), ADD_PROVIDER (only the sender itself, with an address, 20 per key),
//! GET_PROVIDERS (addresses for 24 h, providers for 48 h), PING, and what is reset;
//! and the addresses a public node hands out and keeps (none local, with public peers).

use std::time::{Duration, Instant};

use dht_core::kernel::Contact;
use dht_core::{Input, Output, Overlay, StreamId};
use dht_ipfs::wire::{decode_frame, encode_frame, ConnectionType, Message, MessageType, Record};
use dht_ipfs::{
    key_of, Config, MemStore, Mode, Node, PeerId, PeerInfo, RecordError, Store, StoreLimits,
    Validator, KAD_PROTOCOL, PK_PREFIX,
};
use libp2p_identity::Keypair;
use multiaddr::Multiaddr;

const WALL: u64 = 1_700_000_000_000;
const HOUR: Duration = Duration::from_secs(3600);

fn peer_id(n: u32) -> PeerId {
    let mut b = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    b.extend(key_of(&n.to_be_bytes()).0);
    PeerId::from_bytes(&b).expect("identity PeerId")
}

fn listen(n: u32) -> Multiaddr {
    format!("/ip4/127.0.{}.{}/tcp/4001", n / 250, n % 250 + 1)
        .parse()
        .unwrap()
}

fn peer(n: u32) -> PeerInfo {
    PeerInfo::new(peer_id(n), [listen(n)])
}

/// `peer(n)` as a connection from it looks: an ephemeral source port.
fn conn(n: u32) -> PeerInfo {
    let source = listen(n).to_string().replace("/tcp/4001", "/tcp/51000");
    PeerInfo::new(peer_id(n), [source.parse::<Multiaddr>().unwrap()])
}

struct Server<V: Validator> {
    node: Node<MemStore, V>,
    now: Instant,
    stream: u64,
}

fn config() -> Config {
    Config::new(7, peer_id(100_000), vec![listen(999)])
}

fn server() -> Server<dht_ipfs::Namespaces> {
    server_with(config())
}

fn server_with(config: Config) -> Server<dht_ipfs::Namespaces> {
    let now = Instant::now();
    let node = Node::new(config, MemStore::new(StoreLimits::default()), now, WALL);
    Server {
        node,
        now,
        stream: 0,
    }
}

impl<V: Validator> Server<V> {
    /// Identify reports `p` as a server; if the node has a place for it, it sends a
    /// FIND_NODE, which `p` answers, and `p` enters the table. True when it was asked.
    fn admit(&mut self, p: &PeerInfo) -> bool {
        let protocols = [KAD_PROTOCOL.to_string()];
        self.node.handle_input(
            self.now,
            Input::Identified {
                peer: p.clone(),
                protocols: &protocols,
            },
        );
        let out = self.node.poll_output();
        let Some(Output::Request {
            to,
            stream,
            payload,
            ..
        }) = out
        else {
            assert_eq!(
                out, None,
                "a FIND_NODE to the identified server, or nothing"
            );
            return false;
        };
        assert_eq!(to, *p, "sent to the listen addresses identify gave");
        let m = decode_frame(&payload, 1 << 16).unwrap();
        assert_eq!(m.kind(), Some(MessageType::FindNode));
        assert_eq!(m.key, self.node.peer_id().as_bytes(), "our own key");
        let reply = encode_frame(&Message::new(MessageType::FindNode, vec![]));
        self.node.handle_input(
            self.now,
            Input::StreamReply {
                stream,
                bytes: &reply,
            },
        );
        assert_eq!(self.node.poll_output(), None);
        true
    }

    /// `from` sends `bytes` on a new inbound stream: the node's one output, if any.
    fn ask_raw(&mut self, from: &PeerInfo, bytes: &[u8]) -> Option<Output<PeerInfo>> {
        self.stream += 1;
        let stream = StreamId(self.stream);
        self.node.handle_input(
            self.now,
            Input::StreamRequest {
                from: from.clone(),
                stream,
                bytes,
            },
        );
        let out = self.node.poll_output();
        assert_eq!(self.node.poll_output(), None, "one answer at most");
        if let Some(Output::Reply { stream: s, .. } | Output::Reset { stream: s }) = &out {
            assert_eq!(*s, stream);
        }
        out
    }

    /// The decoded reply to `msg`, or `None` when the stream was reset.
    fn ask(&mut self, from: &PeerInfo, msg: &Message) -> Option<Message> {
        match self.ask_raw(from, &encode_frame(msg)) {
            Some(Output::Reply { payload, .. }) => {
                assert!(payload.len() <= 16 * 1024, "replies fit 16 KiB");
                Some(decode_frame(&payload, 1 << 17).expect("a valid reply"))
            }
            Some(Output::Reset { .. }) => None,
            other => panic!("a reply or a reset, not {other:?}"),
        }
    }
}

fn pk(seed: u8) -> (Vec<u8>, Vec<u8>) {
    let kp = Keypair::ed25519_from_bytes([seed; 32]).unwrap();
    let public = kp.public();
    (
        [PK_PREFIX, &public.to_peer_id().to_bytes()].concat(),
        public.encode_protobuf(),
    )
}

fn put_value(key: &[u8], value: &[u8]) -> Message {
    let mut m = Message::new(MessageType::PutValue, key.to_vec());
    m.record = Some(Record {
        key: key.to_vec(),
        value: value.to_vec(),
        ..Record::default()
    });
    m
}

fn ids(peers: &[dht_ipfs::wire::Peer]) -> Vec<Vec<u8>> {
    peers.iter().map(|p| p.id.clone()).collect()
}

/// The 20 servers of `s`'s main buckets closest to `key`, except peer `not`.
fn truth<V: Validator>(s: &Server<V>, key: &[u8], not: u32) -> Vec<Vec<u8>> {
    let target = key_of(key);
    let not = peer_id(not);
    let mut all: Vec<PeerInfo> = s
        .node
        .table()
        .entries()
        .map(|e| e.node.clone())
        .filter(|p| *p.id() != not)
        .collect();
    all.sort_by_key(|p| p.key().distance(&target));
    all.iter()
        .take(20)
        .map(|p| p.id().as_bytes().to_vec())
        .collect()
}

#[test]
fn find_node_answers_any_key_with_the_20_closest_servers_never_the_requester() {
    let mut s = server();
    for n in 0..60 {
        s.admit(&peer(n));
    }
    // The requester is one of the servers in the table: it must not hear of itself.
    let r = (0..60)
        .find(|&n| s.node.table().get(peer(n).key()).is_some())
        .expect("a member");
    let long = vec![0xa5; 1000];
    let keys: Vec<Vec<u8>> = vec![
        vec![],
        b"hello".to_vec(),
        long,
        peer_id(r).as_bytes().to_vec(),
        vec![0xff; 40 * 1024],
    ];
    for key in keys {
        let reply = s
            .ask(&conn(r), &Message::new(MessageType::FindNode, key.clone()))
            .expect("answered");
        assert_eq!(reply.kind(), Some(MessageType::FindNode));
        assert!(!ids(&reply.closer_peers).contains(&peer_id(r).as_bytes().to_vec()));
        assert_eq!(
            ids(&reply.closer_peers),
            truth(&s, &key, r),
            "key of {} bytes",
            key.len()
        );
        for p in &reply.closer_peers {
            assert!(!p.addrs.is_empty());
            let info = PeerInfo::from_wire(p).unwrap();
            assert!(info
                .addrs()
                .iter()
                .all(|a| a.to_string().ends_with("/tcp/4001")));
        }
    }
    // A stranger not in the table gets the 20 closest of the table.
    let reply = s
        .ask(
            &conn(500),
            &Message::new(MessageType::FindNode, b"x".to_vec()),
        )
        .unwrap();
    assert_eq!(ids(&reply.closer_peers), truth(&s, b"x", u32::MAX));
}

#[test]
fn connected_peers_are_marked_connected_in_answers() {
    let mut s = server();
    s.admit(&peer(1));
    let now = s.now;
    s.node.handle_input(now, Input::Connected { peer: conn(1) });
    let reply = s
        .ask(
            &conn(2),
            &Message::new(MessageType::FindNode, b"k".to_vec()),
        )
        .unwrap();
    assert_eq!(
        reply.closer_peers[0].connection,
        ConnectionType::Connected as i32
    );
    s.node
        .handle_input(now, Input::Disconnected { peer: conn(1) });
    let reply = s
        .ask(
            &conn(2),
            &Message::new(MessageType::FindNode, b"k".to_vec()),
        )
        .unwrap();
    assert_eq!(
        reply.closer_peers[0].connection,
        ConnectionType::NotConnected as i32
    );
}

#[test]
fn get_value_answers_the_record_when_held_and_closer_peers_always() {
    let mut s = server();
    for n in 0..30 {
        s.admit(&peer(n));
    }
    let (key, value) = pk(1);
    let reply = s
        .ask(&conn(3), &Message::new(MessageType::GetValue, key.clone()))
        .unwrap();
    assert_eq!(reply.record, None);
    assert_eq!(reply.key, key);
    assert_eq!(ids(&reply.closer_peers), truth(&s, &key, 3));
    assert!(s.ask(&conn(3), &put_value(&key, &value)).is_some());
    let reply = s
        .ask(&conn(4), &Message::new(MessageType::GetValue, key.clone()))
        .unwrap();
    let record = reply.record.expect("the record");
    assert_eq!((record.key, record.value), (key.clone(), value));
    assert_eq!(ids(&reply.closer_peers), truth(&s, &key, 4));
    assert!(s
        .ask(&conn(4), &Message::new(MessageType::GetValue, vec![]))
        .is_none());
}

#[test]
fn put_value_stores_a_valid_record_echoes_it_and_accepts_an_equal_republish() {
    let mut s = server();
    let (key, value) = pk(2);
    let msg = put_value(&key, &value);
    let echo = s.ask(&conn(1), &msg).expect("stored");
    assert_eq!(echo, msg, "the reply echoes key and record");
    assert_eq!(s.node.store().counts().records, 1);
    // The same record again (a republish, from another peer too) is accepted.
    assert_eq!(s.ask(&conn(1), &msg), Some(msg.clone()));
    assert_eq!(s.ask(&conn(2), &msg), Some(msg.clone()));
    assert_eq!(s.node.store().counts().records, 1);
}

#[test]
fn put_value_resets_invalid_records() {
    let mut s = server();
    let (key_a, value_a) = pk(3);
    let (_, value_b) = pk(4);
    // Another peer's key under A's name.
    assert_eq!(s.ask(&conn(1), &put_value(&key_a, &value_b)), None);
    // A record whose key is not the message's.
    let mut m = put_value(&key_a, &value_a);
    m.key = b"/pk/other".to_vec();
    assert_eq!(s.ask(&conn(1), &m), None);
    // No record at all.
    assert_eq!(
        s.ask(
            &conn(1),
            &Message::new(MessageType::PutValue, key_a.clone())
        ),
        None
    );
    // A namespace the default policy refuses.
    assert_eq!(s.ask(&conn(1), &put_value(b"/v/name", b"value")), None);
    assert_eq!(s.node.store().counts().records, 0);
}

/// A validator of this test's own: `/v/` values ranked by their first byte (a version).
#[derive(Debug)]
struct Versioned;

impl Validator for Versioned {
    fn validate(
        &self,
        key: &[u8],
        value: &[u8],
        _now: dht_ipfs::UnixMillis,
    ) -> Result<(), RecordError> {
        if !key.starts_with(b"/v/") {
            return Err(RecordError::UnknownNamespace);
        }
        value.first().map(|_| ()).ok_or(RecordError::BadValue)
    }
    fn select(&self, _key: &[u8], values: &[&[u8]]) -> Result<usize, RecordError> {
        let mut best = 0;
        for (i, v) in values.iter().enumerate() {
            if v[0] > values[best][0] {
                best = i;
            }
        }
        Ok(best)
    }
}

#[test]
fn put_value_resets_a_record_that_loses_to_the_one_held() {
    let now = Instant::now();
    let node = Node::with_validator(
        config(),
        MemStore::new(StoreLimits::default()),
        Versioned,
        now,
        WALL,
    );
    let mut s = Server {
        node,
        now,
        stream: 0,
    };
    let key = b"/v/name".to_vec();
    assert!(s.ask(&conn(1), &put_value(&key, &[2, 0])).is_some());
    // Version 1 loses to the stored version 2: reset, the stored record stays.
    assert_eq!(s.ask(&conn(1), &put_value(&key, &[1, 0])), None);
    let got = s
        .ask(&conn(2), &Message::new(MessageType::GetValue, key.clone()))
        .unwrap();
    assert_eq!(got.record.unwrap().value, vec![2, 0]);
    // An equal version is accepted (ties go to the newcomer's side: it is first).
    assert!(s.ask(&conn(1), &put_value(&key, &[2, 9])).is_some());
    assert!(s.ask(&conn(1), &put_value(&key, &[3, 0])).is_some());
    let got = s
        .ask(&conn(2), &Message::new(MessageType::GetValue, key))
        .unwrap();
    assert_eq!(got.record.unwrap().value, vec![3, 0]);
}

fn add_provider(key: &[u8], providers: Vec<dht_ipfs::wire::Peer>) -> Message {
    let mut m = Message::new(MessageType::AddProvider, key.to_vec());
    m.provider_peers = providers;
    m
}

fn get_providers(s: &mut Server<dht_ipfs::Namespaces>, from: u32, key: &[u8]) -> Message {
    s.ask(
        &conn(from),
        &Message::new(MessageType::GetProviders, key.to_vec()),
    )
    .expect("answered")
}

#[test]
fn add_provider_stores_only_the_sender_with_an_address_and_never_answers() {
    let mut s = server();
    let key = b"\x12\x20content".to_vec();
    let me = peer(1).to_wire(ConnectionType::Connected);
    assert_eq!(
        s.ask_raw(
            &conn(1),
            &encode_frame(&add_provider(&key, vec![me.clone()]))
        ),
        None
    );
    // Announcing someone else, or oneself without an address, stores nothing.
    let other = peer(2).to_wire(ConnectionType::Connected);
    assert_eq!(
        s.ask_raw(&conn(3), &encode_frame(&add_provider(&key, vec![other]))),
        None
    );
    let bare = PeerInfo::new(peer_id(4), []).to_wire(ConnectionType::Connected);
    assert_eq!(
        s.ask_raw(&conn(4), &encode_frame(&add_provider(&key, vec![bare]))),
        None
    );
    let got = get_providers(&mut s, 9, &key);
    assert_eq!(got.provider_peers.len(), 1);
    assert_eq!(PeerInfo::from_wire(&got.provider_peers[0]), Some(peer(1)));
    // Keys of 0 or 81 bytes are refused.
    for bad in [vec![], vec![1; 81]] {
        assert!(matches!(
            s.ask_raw(
                &conn(1),
                &encode_frame(&add_provider(&bad, vec![me.clone()]))
            ),
            Some(Output::Reset { .. })
        ));
    }
}

#[test]
fn a_key_holds_20_providers_and_refuses_newcomers_until_one_expires() {
    let mut s = server();
    let key = b"cid".to_vec();
    for n in 0..21 {
        let p = peer(n).to_wire(ConnectionType::Connected);
        s.ask_raw(&conn(n), &encode_frame(&add_provider(&key, vec![p])));
        s.now += Duration::from_secs(1);
    }
    let listed = ids(&get_providers(&mut s, 50, &key).provider_peers);
    assert_eq!(listed.len(), 20);
    assert!(
        !listed.contains(&peer_id(20).as_bytes().to_vec()),
        "the 21st was refused"
    );
    // 48 h after the first announcement it expires, and a newcomer gets its place.
    s.now += 48 * HOUR - Duration::from_secs(20);
    let p = peer(21).to_wire(ConnectionType::Connected);
    s.ask_raw(&conn(21), &encode_frame(&add_provider(&key, vec![p])));
    let listed = ids(&get_providers(&mut s, 50, &key).provider_peers);
    assert!(listed.contains(&peer_id(21).as_bytes().to_vec()));
    assert!(listed.len() <= 20);
}

#[test]
fn get_providers_hands_out_addresses_for_24_h_and_providers_for_48_h() {
    let mut s = server();
    for n in 0..25 {
        s.admit(&peer(n));
    }
    let key = b"cid".to_vec();
    let p = peer(30).to_wire(ConnectionType::Connected);
    s.ask_raw(&conn(30), &encode_frame(&add_provider(&key, vec![p])));
    let got = get_providers(&mut s, 2, &key);
    assert_eq!(got.key, key);
    assert_eq!(PeerInfo::from_wire(&got.provider_peers[0]), Some(peer(30)));
    assert_eq!(ids(&got.closer_peers), truth(&s, &key, 2));
    s.now += 25 * HOUR;
    let got = get_providers(&mut s, 2, &key);
    assert_eq!(got.provider_peers.len(), 1);
    assert!(
        got.provider_peers[0].addrs.is_empty(),
        "addresses expired at 24 h"
    );
    s.now += 24 * HOUR;
    assert!(get_providers(&mut s, 2, &key).provider_peers.is_empty());
    assert!(s
        .ask(
            &conn(2),
            &Message::new(MessageType::GetProviders, vec![7; 81])
        )
        .is_none());
}

#[test]
fn ping_is_echoed() {
    let mut s = server();
    let reply = s
        .ask(&conn(1), &Message::new(MessageType::Ping, vec![]))
        .unwrap();
    assert_eq!(reply.kind(), Some(MessageType::Ping));
}

#[test]
fn malformed_oversized_and_unknown_requests_are_reset() {
    let mut s = server();
    // A prefix of 70 KiB: over the 64 KiB a request may take.
    let mut big = vec![0x80, 0xb0, 0x04];
    big.extend(vec![0; 70 * 1024]);
    for bytes in [
        big,
        vec![0x03, 0xff, 0xff, 0xff],
        vec![0x02, 0x08, 0x09],
        vec![],
    ] {
        assert!(matches!(
            s.ask_raw(&conn(1), &bytes),
            Some(Output::Reset { .. })
        ));
    }
}

#[test]
fn a_client_answers_nothing_and_advertises_no_kad_protocol() {
    let mut s = server();
    s.node.set_mode(Mode::Client);
    assert!(s.node.protocols().is_empty());
    assert!(s
        .ask(
            &conn(1),
            &Message::new(MessageType::FindNode, b"k".to_vec())
        )
        .is_none());
    s.node.set_mode(Mode::Server);
    assert_eq!(s.node.protocols(), vec![KAD_PROTOCOL.to_string()]);
}

#[test]
fn identify_admits_servers_only_and_a_full_bucket_asks_no_newcomer() {
    let mut s = server();
    let now = s.now;
    // Not a server: nothing is sent, nothing enters.
    s.node.handle_input(
        now,
        Input::Identified {
            peer: peer(1),
            protocols: &["/ipfs/id/1.0.0".to_string()],
        },
    );
    assert_eq!(s.node.poll_output(), None);
    assert_eq!(s.node.table().len(), 0);
    let asked = (0..80).filter(|&n| s.admit(&peer(n))).count();
    assert_eq!(s.node.table().bucket_len(0), 20, "bucket 0 full");
    // A peer whose bucket is full is not asked, and nothing waits in a cache
    // (go-libp2p-kad-dht keeps none).
    assert!(asked < 80, "{asked} of 80 asked");
    assert_eq!(s.node.table().replacement_len(), 0);
    let outside = (0..80)
        .map(peer)
        .find(|p| s.node.table().get(p.key()).is_none())
        .expect("a peer left out");
    let protocols = [KAD_PROTOCOL.to_string()];
    s.node.handle_input(
        now,
        Input::Identified {
            peer: outside,
            protocols: &protocols,
        },
    );
    assert_eq!(s.node.poll_output(), None, "no place: not asked");
    // A peer whose identify no longer lists kad leaves the table.
    let member = s.node.table().entries().next().unwrap().node.clone();
    s.node.handle_input(
        now,
        Input::Identified {
            peer: member.clone(),
            protocols: &[],
        },
    );
    assert!(s.node.table().get(member.key()).is_none());
}

#[test]
fn a_failed_admission_leaves_the_peer_out() {
    let mut s = server();
    let now = s.now;
    let protocols = [KAD_PROTOCOL.to_string()];
    s.node.handle_input(
        now,
        Input::Identified {
            peer: peer(1),
            protocols: &protocols,
        },
    );
    let Some(Output::Request { stream, .. }) = s.node.poll_output() else {
        panic!("a FIND_NODE");
    };
    s.node.handle_input(now, Input::StreamFailed { stream });
    assert_eq!(s.node.table().len(), 0);
    // A reply of the wrong type does not admit either.
    s.node.handle_input(
        now,
        Input::Identified {
            peer: peer(2),
            protocols: &protocols,
        },
    );
    let Some(Output::Request { stream, .. }) = s.node.poll_output() else {
        panic!("a FIND_NODE");
    };
    let wrong = encode_frame(&Message::new(MessageType::Ping, vec![]));
    s.node.handle_input(
        now,
        Input::StreamReply {
            stream,
            bytes: &wrong,
        },
    );
    assert_eq!(s.node.table().len(), 0);
}

#[test]
fn records_expire_at_their_ttl_and_housekeeping_removes_them() {
    let mut s = server();
    let (key, value) = pk(5);
    let mut m = put_value(&key, &value);
    if let Some(r) = m.record.as_mut() {
        r.ttl = 60;
    }
    assert!(s.ask(&conn(1), &m).is_some());
    s.now += Duration::from_secs(61);
    let got = s
        .ask(&conn(2), &Message::new(MessageType::GetValue, key))
        .unwrap();
    assert_eq!(got.record, None, "expired after its own 60 s ttl");
    assert_eq!(s.node.store().counts().records, 1);
    s.node.handle_timeout(s.now);
    assert_eq!(
        s.node.store().counts().records,
        0,
        "housekeeping removed it"
    );
}

#[test]
fn loopback_is_exempt_from_diversity_unless_the_exemption_is_off() {
    // Two servers on one IP, other ports.
    let on = |n: u32, port: u16| {
        PeerInfo::new(
            peer_id(n),
            [format!("/ip4/127.0.0.9/tcp/{port}")
                .parse::<Multiaddr>()
                .unwrap()],
        )
    };
    let mut s = server();
    s.admit(&on(1, 4001));
    s.admit(&on(2, 4002));
    assert_eq!(s.node.table().len(), 2, "loopback is exempt by default");
    let mut strict = config();
    strict.defense.exempt_local = false;
    let mut s = server_with(strict);
    s.admit(&on(1, 4001));
    s.admit(&on(2, 4002));
    assert_eq!(
        s.node.table().len(),
        1,
        "one server per IP once the exemption is off"
    );
}

#[test]
fn commands_whose_message_exceeds_16_kib_are_refused_at_once() {
    let mut s = server();
    let now = s.now;
    assert_eq!(
        s.node.start(
            now,
            dht_ipfs::Request::FindNode {
                key: vec![1; 17 * 1024]
            }
        ),
        Err(dht_ipfs::RequestError::TooLarge)
    );
    assert_eq!(
        s.node
            .start(now, dht_ipfs::Request::GetProviders { key: vec![1; 81] }),
        Err(dht_ipfs::RequestError::BadKey)
    );
    assert!(matches!(
        s.node.start(
            now,
            dht_ipfs::Request::PutRecord {
                key: b"/v/x".to_vec(),
                value: vec![1]
            }
        ),
        Err(dht_ipfs::RequestError::InvalidRecord(
            RecordError::UnknownNamespace
        ))
    ));
    assert_eq!(s.node.poll_output(), None, "nothing left");
}

#[test]
fn one_admitting_request_per_peer_at_a_time() {
    let mut s = server();
    let now = s.now;
    let protocols = [KAD_PROTOCOL.to_string()];
    for _ in 0..3 {
        s.node.handle_input(
            now,
            Input::Identified {
                peer: peer(1),
                protocols: &protocols,
            },
        );
    }
    assert!(matches!(s.node.poll_output(), Some(Output::Request { .. })));
    assert_eq!(
        s.node.poll_output(),
        None,
        "identify repeated: still one FIND_NODE"
    );
    assert_eq!(s.node.requests_in_flight(), 1);
}

/// Classes 127.1/16 as public and 127.2/16 as private (others as `dht_core` does), so
/// that a test on loopback plays a node on the Internet: none of it is ever dialed.
fn pretend(ip: std::net::IpAddr) -> dht_core::Locality {
    match ip {
        std::net::IpAddr::V4(a) if a.octets()[..2] == [127, 1] => dht_core::Locality::Public,
        std::net::IpAddr::V4(a) if a.octets()[..2] == [127, 2] => dht_core::Locality::Private,
        ip => dht_core::locality(ip),
    }
}

/// Peer `n` at `/ip4/127.<net>.0.<n>/tcp/<port>` for each `(net, port)`.
fn peer_at(n: u32, nets: &[(u8, u16)]) -> PeerInfo {
    let addrs = nets
        .iter()
        .map(|(net, port)| format!("/ip4/127.{net}.0.{}/tcp/{port}", n % 250 + 1))
        .map(|a| a.parse::<Multiaddr>().unwrap());
    PeerInfo::new(peer_id(n), addrs)
}

/// Public (127.1), private (127.2) and loopback (127.0) addresses of a peer.
const MIXED: &[(u8, u16)] = &[(1, 4001), (2, 4001), (0, 4001)];
/// A peer of the LAN only.
const LAN: &[(u8, u16)] = &[(2, 4001)];
/// Where a connection comes from: public, private and loopback sources.
const FROM_PUBLIC: &[(u8, u16)] = &[(1, 51000)];
const FROM_LAN: &[(u8, u16)] = &[(2, 51000)];
const FROM_LOOPBACK: &[(u8, u16)] = &[(0, 51000)];

/// A server listening at `net` (1 public, 2 private), under `pretend`, holding peers
/// 0..10 with mixed addresses and 10..20 on the LAN only.
fn scoped_server(net: u8) -> Server<dht_ipfs::Namespaces> {
    let mut config = config();
    config.listen_addrs = vec![format!("/ip4/127.{net}.0.200/tcp/4001").parse().unwrap()];
    config.locality = pretend;
    let mut s = server_with(config);
    for n in 0..20 {
        assert!(s.admit(&peer_at(n, if n < 10 { MIXED } else { LAN })));
    }
    s
}

fn all_public(p: &PeerInfo) -> bool {
    p.addrs()
        .iter()
        .all(|a| a.to_string().starts_with("/ip4/127.1."))
}

/// The peers a reply names as closer, as the engine reads them.
fn closer_peers(reply: &Message) -> Vec<PeerInfo> {
    reply
        .closer_peers
        .iter()
        .filter_map(PeerInfo::from_wire)
        .collect()
}

#[test]
fn a_public_node_hands_public_peers_only_public_addresses() {
    let find = Message::new(MessageType::FindNode, b"k".to_vec());
    let mut public = scoped_server(1);
    let reply = public.ask(&peer_at(900, FROM_PUBLIC), &find).unwrap();
    let got = closer_peers(&reply);
    assert_eq!(got.len(), 10, "the LAN-only peers have nothing to hand out");
    for p in &got {
        assert_eq!(p.addrs().len(), 1);
        assert!(all_public(p), "{p:?}: no loopback or private address");
    }
    // To a peer on its LAN or its host, the same node hands every address.
    for from in [FROM_LAN, FROM_LOOPBACK] {
        let reply = public.ask(&peer_at(901, from), &find).unwrap();
        let got = closer_peers(&reply);
        assert_eq!(got.len(), 20);
        assert!(got.iter().any(|p| p.addrs().len() == 3));
    }
    // A node on a private network hands every address to everyone.
    let mut private = scoped_server(2);
    let reply = private.ask(&peer_at(900, FROM_PUBLIC), &find).unwrap();
    let got = closer_peers(&reply);
    assert_eq!(got.len(), 20);
    assert!(got.iter().any(|p| p.addrs().len() == 3));
}

#[test]
fn a_public_node_keeps_no_local_address_of_a_public_provider() {
    let key = b"\x12\x20content".to_vec();
    let announce = |s: &mut Server<dht_ipfs::Namespaces>, n: u32, from, addrs| {
        let p = peer_at(n, addrs).to_wire(ConnectionType::Connected);
        let msg = encode_frame(&add_provider(&key, vec![p]));
        assert_eq!(s.ask_raw(&peer_at(n, from), &msg), None);
    };
    let providers = |s: &mut Server<dht_ipfs::Namespaces>, from| {
        let got = s.ask(
            &peer_at(999, from),
            &Message::new(MessageType::GetProviders, key.clone()),
        );
        let got = got.expect("answered").provider_peers;
        got.iter()
            .filter_map(PeerInfo::from_wire)
            .collect::<Vec<_>>()
    };
    let mut s = scoped_server(1);
    announce(&mut s, 50, FROM_PUBLIC, MIXED);
    // A public peer announcing only its LAN address is not kept: nothing reaches it.
    announce(&mut s, 51, FROM_PUBLIC, LAN);
    // A peer of our LAN keeps its LAN address.
    announce(&mut s, 52, FROM_LAN, LAN);
    let find = |got: &[PeerInfo], n| got.iter().find(|p| *p.id() == peer_id(n)).cloned();
    let lan = providers(&mut s, FROM_LAN);
    assert_eq!(lan.len(), 2, "{lan:?}");
    let p50 = find(&lan, 50).expect("provider 50 kept");
    assert_eq!(p50.addrs().len(), 1, "stored without its local addresses");
    assert!(all_public(&p50));
    assert_eq!(find(&lan, 52), Some(peer_at(52, LAN)));
    // A public requester hears of the LAN provider, without its address.
    let public = providers(&mut s, FROM_PUBLIC);
    assert_eq!(public.len(), 2);
    assert_eq!(find(&public, 52).map(|p| p.addrs().len()), Some(0));
    // A node on a private network keeps every address.
    let mut s = scoped_server(2);
    announce(&mut s, 50, FROM_PUBLIC, MIXED);
    assert_eq!(providers(&mut s, FROM_PUBLIC), vec![peer_at(50, MIXED)]);
}

#[test]
fn a_public_node_keeps_only_public_addresses_a_public_peer_names() {
    for (net, kept) in [(1, 1), (2, 3)] {
        let mut config = config();
        config.listen_addrs = vec![format!("/ip4/127.{net}.0.200/tcp/4001").parse().unwrap()];
        config.locality = pretend;
        let mut s = server_with(config);
        for n in 0..10 {
            assert!(s.admit(&peer_at(n, MIXED)));
        }
        let now = s.now;
        // A lookup of peer 60's own key: once it is named, it is the next one asked.
        let key = peer_id(60).as_bytes().to_vec();
        s.node
            .start(now, dht_ipfs::Request::FindNode { key: key.clone() })
            .expect("started");
        // One of the peers asked (all at public addresses first) names peer 60.
        let mut stream = None;
        while let Some(out) = s.node.poll_output() {
            if let Output::Request { stream: s, .. } = out {
                stream = Some(s);
            }
        }
        let stream = stream.expect("a peer asked");
        let mut reply = Message::new(MessageType::FindNode, key);
        reply.closer_peers = vec![peer_at(60, MIXED).to_wire(ConnectionType::NotConnected)];
        s.node.handle_input(
            now,
            Input::StreamReply {
                stream,
                bytes: &encode_frame(&reply),
            },
        );
        let mut learned = None;
        while let Some(out) = s.node.poll_output() {
            if let Output::Request { to, .. } = out {
                if to.id() == &peer_id(60) {
                    learned = Some(to);
                }
            }
        }
        let learned = learned.expect("the named peer is asked");
        assert_eq!(
            learned.addrs().len(),
            kept,
            "listening at 127.{net}: {learned:?}"
        );
    }
}
