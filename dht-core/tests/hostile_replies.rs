//! Our own requests answered by hostile nodes: every query the node sends is answered
//! from the address it asked, under its live transaction id, with arbitrary contents
//! (structured: ids, contacts anywhere, values, tokens, BEP 44 fields, samples; or raw:
//! mutated bytes inside `r`). So `on_reply`, the lookups and the write phase see
//! hostile contents, which a fuzzed datagram whose transaction id never matches
//! cannot reach. The node must not panic, must send nothing oversize, must finish
//! every request, and must keep serving.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{mutate, mutation, Mutation, TestStore, WALL0};
use dht_core::krpc::{self, Body, Message, Method, Response};
use dht_core::{Config, Event, Id, Node, NodeInfo, Request};
use dht_core::{MutableItem, RoutingSnapshot, SnapshotNode, Store};
use proptest::prelude::*;

/// What a hostile node answers one request with.
#[derive(Clone, Debug)]
enum Answer {
    Structured(Box<Response>),
    /// Raw bytes as the value of `r` (mutated from a real response).
    Raw(Vec<Mutation>),
    Silence,
}

fn id() -> impl Strategy<Value = Id> {
    prop_oneof![
        any::<[u8; 20]>().prop_map(Id),
        // Near the targets below, so hostile contacts win places in the lookups.
        (0u8..4, any::<u8>()).prop_map(|(t, b)| {
            let mut x = [0x40 * t; 20];
            x[19] = b;
            Id(x)
        }),
    ]
}

fn contact() -> impl Strategy<Value = NodeInfo> {
    let ip = prop_oneof![
        any::<u32>(),
        Just(0),
        Just(0x7f00_0001),
        Just(0xffff_ffff),
        (0u32..8).prop_map(|i| 0xc633_6400 + i),
    ];
    (id(), ip, any::<u16>()).prop_map(|(id, ip, port)| NodeInfo {
        id,
        addr: SocketAddr::from((Ipv4Addr::from(ip), port)),
    })
}

fn response() -> impl Strategy<Value = Response> {
    (
        id(),
        prop::collection::vec(contact(), 0..12),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..24)),
        prop::collection::vec(contact().prop_map(|c| c.addr), 0..60),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..1100)),
        prop::option::of(any::<[u8; 32]>()),
        prop::option::of(any::<i64>()),
        prop::option::of(prop::collection::vec(id(), 0..30)),
        prop::option::of(any::<i64>()),
    )
        .prop_map(
            |(id, nodes, token, values, value, key, seq, samples, num)| {
                Response::new(id)
                    .with_nodes(nodes)
                    .with_token(token)
                    .with_values(values)
                    // A value that is not bencode would make the whole message garbage:
                    // wrap the bytes as a bencoded string.
                    .with_value(value.map(|v| {
                        let mut b = format!("{}:", v.len()).into_bytes();
                        b.extend(v);
                        b
                    }))
                    .with_key(key)
                    .with_signature(key.map(|k| {
                        let mut s = [0u8; 64];
                        s[..32].copy_from_slice(&k);
                        s
                    }))
                    .with_seq(seq)
                    .with_samples(samples)
                    .with_num(num)
                    .with_interval(num)
            },
        )
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        6 => response().prop_map(|r| Answer::Structured(Box::new(r))),
        3 => prop::collection::vec(mutation(), 1..6).prop_map(Answer::Raw),
        1 => Just(Answer::Silence),
    ]
}

/// `d1:r<r>1:t<t>1:y1:re`: `r` raw, so mutations reach the response's contents.
fn with_raw_r(t: &[u8], r: &[u8]) -> Vec<u8> {
    let mut b = b"d1:r".to_vec();
    b.extend_from_slice(r);
    b.extend_from_slice(format!("1:t{}:", t.len()).as_bytes());
    b.extend_from_slice(t);
    b.extend_from_slice(b"1:y1:re");
    b
}

/// A real-looking `r` dict to mutate.
const REAL_R: &[u8] = b"d2:id20:abcdefghij01234567895:nodes26:ABCDEFGHIJ0123456789\xc6\x33\x64\x01\x1a\xe15:token4:tok16:valuesl6:\xc6\x33\x64\x02\x1a\xe1ee";

fn run(answers: &[Answer]) {
    let seeds: Vec<SnapshotNode> = (0..4u8)
        .map(|i| SnapshotNode {
            node: NodeInfo {
                id: Id([0x40 * i + 1; 20]),
                addr: SocketAddr::from(([198, 51, 100, i + 1], 6881)),
            },
            last_seen: 0,
        })
        .collect();
    let mut store = TestStore::default();
    store
        .save_routing(&RoutingSnapshot {
            node_id: None,
            nodes: seeds,
        })
        .unwrap();
    let t0 = Instant::now();
    let mut cfg = Config::with_seed(3);
    cfg.disjoint_paths = 2;
    let mut n = Node::new(cfg, store, t0, WALL0).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let requests = [
        Request::GetPeers {
            info_hash: Id([0x40; 20]),
        },
        Request::GetImmutable {
            target: Id([0x80; 20]),
        },
        Request::GetMutable {
            key: key.verifying_key().to_bytes(),
            salt: Vec::new(),
            min_seq: None,
        },
        Request::PutImmutable {
            value: b"3:abc".to_vec(),
        },
        Request::PutMutable {
            item: MutableItem::sign(&key, b"", 1, b"i1e"),
            cas: None,
        },
        Request::AnnouncePeer {
            info_hash: Id([0xc0; 20]),
            port: Some(6881),
            seed: false,
        },
        Request::SampleInfohashes { target: Id::ZERO },
        Request::FindNode {
            target: Id([0; 20]),
        },
    ];
    let mut open = 0;
    for r in requests {
        n.start(t0, r).expect("valid request");
        open += 1;
    }
    let mut now = t0;
    let mut next = 0usize;
    let mut delivered = 0u64;
    for _ in 0..5_000 {
        let mut sent = Vec::new();
        while let Some(t) = n.poll_transmit() {
            assert!(t.payload.len() <= 1452, "oversize {}", t.payload.len());
            sent.push(t);
        }
        for t in sent {
            let m = krpc::decode(&t.payload).expect("we send what we decode");
            if !matches!(m.body, Body::Query(_)) {
                continue;
            }
            let a = &answers[next % answers.len()];
            next += 1;
            let bytes = match a {
                Answer::Silence => continue,
                Answer::Structured(r) => {
                    Message::new(m.transaction_id.clone(), Body::Response((**r).clone()))
                        .with_requester_ip(Some(SocketAddr::from(([203, 0, 113, 1], 1))))
                        .to_bytes()
                }
                Answer::Raw(ms) => {
                    let mut r = REAL_R.to_vec();
                    for x in ms {
                        mutate(&mut r, x);
                    }
                    with_raw_r(&m.transaction_id, &r)
                }
            };
            n.handle_datagram(now, t.to, None, &bytes);
            delivered += 1;
        }
        while let Some(e) = n.poll_event() {
            let Event::QueryDone(_) = e;
            open -= 1;
        }
        if open == 0 {
            break;
        }
        if let Some(t) = n.poll_timeout() {
            now = now.max(t);
            n.handle_timeout(now);
        }
    }
    assert_eq!(open, 0, "requests never finished");
    // The answers reached the reply path: structured ones always match (the test
    // would be hollow if they were dropped as unexpected).
    let st = n.stats();
    assert_eq!(
        st.datagrams_in, delivered,
        "every answer was handed to the node"
    );
    if answers.iter().any(|a| matches!(a, Answer::Structured(_))) {
        assert!(
            st.datagrams_in > st.unexpected_replies + st.malformed,
            "no answer matched a request: {st:?}"
        );
    }
    // Still serving.
    let ping = Message::query(b"zz".to_vec(), Id([5; 20]), Method::Ping).to_bytes();
    let from: SocketAddr = "198.51.100.200:1".parse().unwrap();
    n.handle_datagram(now + Duration::from_secs(1), from, None, &ping);
    let mut answered = false;
    while let Some(t) = n.poll_transmit() {
        answered |= t.to == from;
    }
    assert!(answered, "the node stopped serving");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn hostile_answers_to_our_requests(answers in prop::collection::vec(answer(), 1..24)) {
        run(&answers);
    }
}
