//! A dht-ipfs `Node` fed hostile requests and replies through its public `Overlay` API.
//! The node has four peers and three queries of its own (a bootstrap, the GET and the
//! PUT of an IPNS record); the input is a list of operations, each an opcode byte (the
//! low 3 bits the operation, the next 2 a peer), a big-endian 2-byte length and that
//! many bytes (fewer at the end of the input):
//! 0 those bytes as a request on a new inbound stream; 1 a PUT_VALUE of them as the
//! IPNS record of our name; 2 those bytes as the reply to our oldest open request;
//! 3 a GET_VALUE reply carrying them as that IPNS record; 4 our oldest open request
//! fails; 5 time passes (the first byte, in seconds); 6 the peer connects or
//! disconnects; 7 identify reports it, a server or not.
//!
//! Never panics; every message it sends decodes and is at most 16 KiB; it answers
//! only inbound streams, each at most once; and once the peers go silent, each of its
//! own queries ends.
#![no_main]

use std::collections::{BTreeSet, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dht_core::{Input, Output, Overlay, StreamId};
use dht_ipfs::wire::{decode_frame, encode_frame, Message, MessageType, Record};
use dht_ipfs::{
    Config, IpnsKeypair, IpnsRecord, MemStore, Node, PeerId, PeerInfo, Request, StoreLimits,
    UnixMillis, KAD_PROTOCOL,
};
use libfuzzer_sys::fuzz_target;

/// 2027-01-15, the node's wall-clock time at the start.
const NOW: UnixMillis = 1_800_000_000_000;
/// Inbound stream ids start here, away from the ids the node gives its own streams.
const INBOUND: u64 = 1 << 40;
const MAX_SEND: usize = 16 * 1024;

fn peer(n: u8) -> PeerInfo {
    let id = PeerId::from_bytes(&[&[0x00, 0x24, 0x08, 0x01, 0x12, 0x20][..], &[n + 1; 32]].concat())
        .expect("an identity PeerId");
    let addr = format!("/ip4/127.0.0.{}/tcp/4001", n + 2).parse().expect("a multiaddr");
    PeerInfo::new(id, [addr])
}

/// Our name's key and a valid record of it (made once: signing costs).
fn ipns() -> &'static (Vec<u8>, Vec<u8>) {
    static IPNS: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    IPNS.get_or_init(|| {
        let key = IpnsKeypair::from_secret([1; 32]);
        let eol = (NOW + 3_600_000) * 1_000_000;
        let record = IpnsRecord::create(&key, b"/ipfs/bafkqaddwgevxmmraojswg33smq", 1, eol, Duration::from_secs(300))
            .expect("a small record");
        (key.record_key(), record)
    })
}

fn with_record(kind: MessageType, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut m = Message::new(kind, key.to_vec());
    m.record = Some(Record { key: key.to_vec(), value: value.to_vec(), ..Record::default() });
    encode_frame(&m)
}

struct Harness {
    node: Node<MemStore>,
    now: Instant,
    /// Our open requests, oldest first.
    pending: VecDeque<StreamId>,
    /// Inbound streams not yet answered.
    inbound: BTreeSet<StreamId>,
    next_inbound: u64,
    open_queries: usize,
}

impl Harness {
    fn drain(&mut self) {
        while let Some(out) = self.node.poll_output() {
            match out {
                Output::Request { stream, payload, .. } => {
                    assert!(payload.len() <= MAX_SEND, "a request of {} bytes", payload.len());
                    decode_frame(&payload, usize::MAX).expect("we send what we decode");
                    self.pending.push_back(stream);
                }
                Output::Reply { stream, payload } => {
                    assert!(payload.len() <= MAX_SEND, "a reply of {} bytes", payload.len());
                    decode_frame(&payload, usize::MAX).expect("we send what we decode");
                    assert!(self.inbound.remove(&stream), "a reply on no open inbound stream");
                }
                Output::Reset { stream } => {
                    // A reset of our own request (given up) or of an inbound stream.
                    if !self.inbound.remove(&stream) {
                        self.pending.retain(|s| *s != stream);
                    }
                }
                Output::Datagram { .. } | Output::DatagramAfterCommit { .. } => {
                    panic!("a stream overlay sends no datagrams")
                }
            }
        }
        while self.node.poll_event().is_some() {
            self.open_queries -= 1;
        }
    }

    fn input(&mut self, input: Input<'_, PeerInfo>) {
        self.node.handle_input(self.now, input);
        self.drain();
    }

    fn ask(&mut self, from: PeerInfo, bytes: &[u8]) {
        self.next_inbound += 1;
        let stream = StreamId(INBOUND + self.next_inbound);
        self.inbound.insert(stream);
        self.input(Input::StreamRequest { from, stream, bytes });
    }

    fn reply(&mut self, bytes: &[u8]) {
        if let Some(stream) = self.pending.pop_front() {
            self.input(Input::StreamReply { stream, bytes });
        }
    }

    fn pass(&mut self, by: Duration) {
        self.now += by;
        self.node.handle_timeout(self.now);
        self.drain();
    }
}

fuzz_target!(|data: &[u8]| {
    let (key, record) = ipns();
    let t0 = Instant::now();
    let config = Config::new(3, peer(200).id().clone(), vec!["/ip4/127.0.0.1/tcp/4001".parse().expect("a multiaddr")]);
    let node = Node::new(config, MemStore::new(StoreLimits::default()), t0, NOW);
    let mut h = Harness {
        node,
        now: t0,
        pending: VecDeque::new(),
        inbound: BTreeSet::new(),
        next_inbound: 0,
        open_queries: 0,
    };
    let seeds: Vec<PeerInfo> = (0..4).map(peer).collect();
    for r in [
        Request::Bootstrap { seeds },
        Request::GetRecord { key: key.clone() },
        Request::PutRecord { key: key.clone(), value: record.clone() },
    ] {
        h.node.start(t0, r).expect("a valid request");
        h.open_queries += 1;
    }
    h.drain();

    let mut rest = data;
    while let [op, rest_after_op @ ..] = rest {
        let (len, after) = match rest_after_op {
            [a, b, tail @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), tail),
            tail => (0, tail),
        };
        let (bytes, tail) = after.split_at(len.min(after.len()));
        rest = tail;
        let p = peer((op >> 3) % 4);
        match op & 7 {
            0 => h.ask(p, bytes),
            1 => h.ask(p, &with_record(MessageType::PutValue, key, bytes)),
            2 => h.reply(bytes),
            3 => h.reply(&with_record(MessageType::GetValue, key, bytes)),
            4 => {
                if let Some(stream) = h.pending.pop_front() {
                    h.input(Input::StreamFailed { stream });
                }
            }
            5 => h.pass(Duration::from_secs(u64::from(bytes.first().copied().unwrap_or(1)))),
            6 if bytes.first().is_some_and(|b| b & 1 == 1) => h.input(Input::Disconnected { peer: p }),
            6 => h.input(Input::Connected { peer: p }),
            _ => {
                let protocols = match bytes.first() {
                    Some(b) if b & 1 == 1 => vec![],
                    _ => vec![KAD_PROTOCOL.to_string()],
                };
                h.input(Input::Identified { peer: p, protocols: &protocols });
            }
        }
    }

    // The peers go silent: every open request fails, and time passes.
    for _ in 0..10_000 {
        if h.open_queries == 0 {
            return;
        }
        while let Some(stream) = h.pending.pop_front() {
            h.input(Input::StreamFailed { stream });
        }
        let at = h.node.poll_timeout().unwrap_or(h.now + Duration::from_secs(1));
        h.pass(at.saturating_duration_since(h.now));
    }
    panic!("{} queries never ended", h.open_queries);
});
