//! IPNS records at a node, through the `Overlay` API: a PUT_VALUE is judged at the
//! node's wall-clock time (an expired record is reset, a live one stored), a record of
//! a lower sequence does not replace a higher one, a record whose end of life passed
//! while held is no longer handed out, and our own put of an expired record is
//! refused before any request leaves.

use std::time::{Duration, Instant};

use dht_core::{Input, Output, Overlay, StreamId};
use dht_ipfs::wire::{decode_frame, encode_frame, Message, MessageType, Record};
use dht_ipfs::{
    key_of, Config, IpnsKeypair, IpnsRecord, MemStore, Node, PeerId, PeerInfo, RecordError,
    Request, RequestError, Store, StoreLimits, UnixMillis,
};

/// The node's wall-clock time at the start.
const WALL: UnixMillis = 1_800_000_000_000;

fn peer(n: u32) -> PeerInfo {
    let mut id = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    id.extend(key_of(&n.to_be_bytes()).0);
    let id = PeerId::from_bytes(&id).expect("an identity PeerId");
    let addr = format!("/ip4/127.0.0.{}/tcp/4001", n + 1)
        .parse()
        .expect("a multiaddr");
    PeerInfo::new(id, [addr])
}

struct Server {
    node: Node<MemStore>,
    start: Instant,
    stream: u64,
}

impl Server {
    fn new() -> Server {
        let start = Instant::now();
        let config = Config::new(1, peer(0).id().clone(), peer(0).addrs().to_vec());
        let node = Node::new(config, MemStore::new(StoreLimits::default()), start, WALL);
        Server {
            node,
            start,
            stream: 0,
        }
    }

    /// Peer 1 sends `msg` `after` the start: the node's answer, if it answers.
    fn ask(&mut self, after: Duration, msg: &Message) -> Option<Message> {
        self.stream += 1;
        let stream = StreamId(self.stream);
        let bytes = encode_frame(msg);
        let now = self.start + after;
        self.node.handle_input(
            now,
            Input::StreamRequest {
                from: peer(1),
                stream,
                bytes: &bytes,
            },
        );
        match self.node.poll_output() {
            Some(Output::Reply { payload, .. }) => {
                Some(decode_frame(&payload, usize::MAX).expect("a frame"))
            }
            Some(Output::Reset { .. }) | None => None,
            Some(other) => panic!("unexpected {other:?}"),
        }
    }

    fn put(&mut self, after: Duration, key: &[u8], value: &[u8]) -> bool {
        let mut m = Message::new(MessageType::PutValue, key.to_vec());
        m.record = Some(Record {
            key: key.to_vec(),
            value: value.to_vec(),
            ..Record::default()
        });
        self.ask(after, &m).is_some()
    }

    fn get(&mut self, after: Duration, key: &[u8]) -> Option<Vec<u8>> {
        let m = Message::new(MessageType::GetValue, key.to_vec());
        self.ask(after, &m)?.record.map(|r| r.value)
    }
}

fn record(key: &IpnsKeypair, sequence: u64, eol: UnixMillis) -> Vec<u8> {
    IpnsRecord::create(
        key,
        b"/ipfs/bafkqaddwgevxmmraojswg33smq",
        sequence,
        eol * 1_000_000,
        Duration::from_secs(300),
    )
    .expect("a record")
}

#[test]
fn a_put_value_is_judged_at_the_node_s_wall_clock_time() {
    let key = IpnsKeypair::from_secret([5; 32]);
    let k = key.record_key();
    let mut s = Server::new();
    // Ended a second before the node's time: refused.
    assert!(!s.put(Duration::ZERO, &k, &record(&key, 1, WALL - 1_000)));
    assert_eq!(s.node.store().counts().records, 0);
    // Ends in an hour: stored and handed out.
    let live = record(&key, 1, WALL + 3_600_000);
    assert!(s.put(Duration::ZERO, &k, &live));
    assert_eq!(s.get(Duration::from_secs(60), &k), Some(live.clone()));
    // An hour later, by the node's clock, it has ended: no longer handed out.
    assert_eq!(s.get(Duration::from_secs(3_600), &k), None);
}

#[test]
fn a_lower_sequence_does_not_replace_a_higher_one() {
    let key = IpnsKeypair::from_secret([6; 32]);
    let k = key.record_key();
    let mut s = Server::new();
    let newer = record(&key, 2, WALL + 60_000);
    let older_but_longer = record(&key, 1, WALL + 3_600_000);
    assert!(s.put(Duration::ZERO, &k, &newer));
    assert!(!s.put(Duration::ZERO, &k, &older_but_longer));
    assert_eq!(s.get(Duration::ZERO, &k), Some(newer.clone()));
    // The same sequence with a later end of life does.
    let renewed = record(&key, 2, WALL + 7_200_000);
    assert!(s.put(Duration::ZERO, &k, &renewed));
    assert_eq!(s.get(Duration::ZERO, &k), Some(renewed));
}

#[test]
fn our_own_put_of_an_expired_record_is_refused_at_once() {
    let key = IpnsKeypair::from_secret([7; 32]);
    let mut s = Server::new();
    let expired = record(&key, 1, WALL);
    assert_eq!(
        s.node.start(
            s.start,
            Request::PutRecord {
                key: key.record_key(),
                value: expired,
            },
        ),
        Err(RequestError::InvalidRecord(RecordError::Expired))
    );
    let live = record(&key, 1, WALL + 1);
    assert!(s
        .node
        .start(
            s.start,
            Request::PutRecord {
                key: key.record_key(),
                value: live,
            },
        )
        .is_ok());
}
