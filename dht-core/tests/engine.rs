//! The engine through its public API: nodes exchanging real KRPC datagrams in memory.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Net, TestStore, WALL0};
use dht_core::krpc::{self, code, Body, ErrorBody, Message, Method, PutArgs, Response};
use dht_core::Id;
use dht_core::{Config, Family, Node, Outcome};
use dht_core::{Item, MutableItem, Request, RequestError};
use ed25519_dalek::SigningKey;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn stored(o: &Outcome) -> (usize, Vec<i64>) {
    match o {
        Outcome::Stored {
            stored_at, errors, ..
        } => (stored_at.len(), errors.iter().map(|e| e.1.code).collect()),
        other => panic!("expected Stored, got {other:?}"),
    }
}

#[test]
fn two_nodes_complete_every_command() {
    let mut net = Net::new(2, 1, false, |_| {});
    let (a, b) = (0, 1);
    let now = net.now;

    // ping
    let q = net.nodes[a]
        .start(now, Request::Ping { addr: net.addrs[b] })
        .expect("request");
    let d = net.wait(a, q);
    assert_eq!(
        d.outcome,
        Outcome::Ping {
            node: Some(dht_core::NodeInfo {
                id: net.nodes[b].id(),
                addr: net.addrs[b]
            })
        }
    );
    assert_eq!(d.stats.requests, 1);
    assert_eq!(d.stats.responses, 1);

    // bootstrap: b answered, so it is in a's table; a is in b's after b pings it back.
    let baddr = net.addrs[b];
    let q = net.nodes[a]
        .start(
            net.now,
            Request::Bootstrap {
                seeds: [baddr].to_vec(),
            },
        )
        .expect("request");
    let d = net.wait(a, q);
    match &d.outcome {
        Outcome::Nodes { closest } => assert_eq!(closest[0].addr, net.addrs[b]),
        o => panic!("{o:?}"),
    }
    assert_eq!(net.nodes[a].routing_table(Family::V4).len(), 1);
    net.run_for(Duration::from_secs(60));
    assert_eq!(
        net.nodes[b].routing_table(Family::V4).len(),
        1,
        "b verified a by pinging it"
    );

    // find_node
    let target = Id([0x5a; 20]);
    let q = net.nodes[a]
        .start(net.now, Request::FindNode { target })
        .expect("request");
    let d = net.wait(a, q);
    assert!(matches!(d.outcome, Outcome::Nodes { ref closest } if closest.len() == 1));
    assert_eq!(d.stats.hops, 1);

    // announce_peer then get_peers from the other side
    let ih = Id::sha1(b"some torrent");
    let q = net.nodes[a]
        .start(
            net.now,
            Request::AnnouncePeer {
                info_hash: ih,
                port: Some(51413),
                seed: false,
            },
        )
        .expect("request");
    let d = net.wait(a, q);
    assert_eq!(stored(&d.outcome), (1, vec![]));
    let q = net.nodes[b]
        .start(net.now, Request::GetPeers { info_hash: ih })
        .expect("request");
    let d = net.wait(b, q);
    // b's only contact is a, which holds nothing; b itself stored the peer.
    assert!(matches!(d.outcome, Outcome::Peers { .. }));
    let q = net.nodes[a]
        .start(net.now, Request::GetPeers { info_hash: ih })
        .expect("request");
    let d = net.wait(a, q);
    match d.outcome {
        Outcome::Peers { peers, .. } => {
            assert_eq!(peers, vec![SocketAddr::new(net.addrs[a].ip(), 51413)])
        }
        o => panic!("{o:?}"),
    }
    // implied_port uses the UDP source port
    let ih2 = Id::sha1(b"implied");
    let q = net.nodes[a]
        .start(
            net.now,
            Request::AnnouncePeer {
                info_hash: ih2,
                port: None,
                seed: false,
            },
        )
        .expect("request");
    net.wait(a, q);
    let q = net.nodes[a]
        .start(net.now, Request::GetPeers { info_hash: ih2 })
        .expect("request");
    match net.wait(a, q).outcome {
        Outcome::Peers { peers, .. } => assert_eq!(peers, vec![net.addrs[a]]),
        o => panic!("{o:?}"),
    }

    // immutable put / get
    let value = b"12:Hello World!".to_vec();
    let q = net.nodes[a]
        .start(
            net.now,
            Request::PutImmutable {
                value: value.clone(),
            },
        )
        .expect("request");
    let d = net.wait(a, q);
    assert_eq!(stored(&d.outcome), (1, vec![]));
    let target = Id::sha1(&value);
    let q = net.nodes[a]
        .start(net.now, Request::GetImmutable { target })
        .expect("request");
    assert_eq!(
        net.wait(a, q).outcome,
        Outcome::Immutable {
            value: Some(value.clone())
        }
    );

    // mutable put / get, seq rules and cas
    let k = key(7);
    let item1 = MutableItem::sign(&k, b"salt", 1, b"5:first");
    let q = net.nodes[a]
        .start(
            net.now,
            Request::PutMutable {
                item: item1.clone(),
                cas: None,
            },
        )
        .expect("request");
    assert_eq!(stored(&net.wait(a, q).outcome), (1, vec![]));
    let q = net.nodes[a]
        .start(
            net.now,
            Request::GetMutable {
                key: k.verifying_key().to_bytes(),
                salt: b"salt".to_vec(),
                min_seq: None,
            },
        )
        .expect("request");
    assert_eq!(
        net.wait(a, q).outcome,
        Outcome::Mutable {
            item: Some(item1.clone())
        }
    );
    // same seq, other value: 302
    let clash = MutableItem::sign(&k, b"salt", 1, b"5:other");
    let q = net.nodes[a]
        .start(
            net.now,
            Request::PutMutable {
                item: clash,
                cas: None,
            },
        )
        .expect("request");
    assert_eq!(
        stored(&net.wait(a, q).outcome),
        (0, vec![code::SEQ_TOO_LOW])
    );
    // same seq, same value: a refresh, accepted
    let q = net.nodes[a]
        .start(
            net.now,
            Request::PutMutable {
                item: item1.clone(),
                cas: None,
            },
        )
        .expect("request");
    assert_eq!(stored(&net.wait(a, q).outcome), (1, vec![]));
    // cas mismatch: 301
    let item2 = MutableItem::sign(&k, b"salt", 2, b"6:second");
    let q = net.nodes[a]
        .start(
            net.now,
            Request::PutMutable {
                item: item2.clone(),
                cas: Some(5),
            },
        )
        .expect("request");
    assert_eq!(
        stored(&net.wait(a, q).outcome),
        (0, vec![code::CAS_MISMATCH])
    );
    // cas match: accepted
    let q = net.nodes[a]
        .start(
            net.now,
            Request::PutMutable {
                item: item2.clone(),
                cas: Some(1),
            },
        )
        .expect("request");
    assert_eq!(stored(&net.wait(a, q).outcome), (1, vec![]));
    // lower seq: 302
    let q = net.nodes[a]
        .start(
            net.now,
            Request::PutMutable {
                item: item1,
                cas: None,
            },
        )
        .expect("request");
    assert_eq!(
        stored(&net.wait(a, q).outcome),
        (0, vec![code::SEQ_TOO_LOW])
    );
    let q = net.nodes[b]
        .start(
            net.now,
            Request::GetMutable {
                key: k.verifying_key().to_bytes(),
                salt: b"salt".to_vec(),
                min_seq: None,
            },
        )
        .expect("request");
    assert_eq!(
        net.wait(b, q).outcome,
        Outcome::Mutable { item: Some(item2) }
    );

    // sample_infohashes: b holds the two info_hashes a announced
    let q = net.nodes[a]
        .start(net.now, Request::SampleInfohashes { target: Id::ZERO })
        .expect("request");
    match net.wait(a, q).outcome {
        Outcome::Samples { samples, num_max } => {
            let mut want = vec![ih, ih2];
            want.sort();
            assert_eq!(samples, want);
            assert_eq!(num_max, 2);
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn invalid_values_are_refused_before_sending() {
    let mut net = Net::new(2, 11, false, |_| {});
    let now = net.now;
    let n = &mut net.nodes[0];
    let refused = n.start(
        now,
        Request::PutImmutable {
            value: b"5:abc".to_vec(),
        },
    );
    assert_eq!(refused, Err(RequestError::NotBencode));
    let bad = MutableItem::sign(&key(1), b"", 1, b"i1");
    let refused = n.start(
        now,
        Request::PutMutable {
            item: bad,
            cas: None,
        },
    );
    assert_eq!(refused, Err(RequestError::NotBencode));
    let mut big = b"1000:".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1000));
    let refused = n.start(now, Request::PutImmutable { value: big });
    assert_eq!(refused, Err(RequestError::ValueTooBig { len: 1005 }));
    let long_salt = MutableItem::sign(&key(1), &[b's'; 65], 1, b"i1e");
    let refused = n.start(
        now,
        Request::PutMutable {
            item: long_salt,
            cas: None,
        },
    );
    assert_eq!(refused, Err(RequestError::SaltTooBig { len: 65 }));
    // Nothing left the node, and no query is pending.
    assert_eq!(n.poll_transmit(), None);
    assert_eq!(n.queries_in_progress(), 0);
    assert_eq!(n.poll_event(), None);
}

#[test]
fn ping_of_a_silent_address_times_out() {
    let mut net = Net::new(1, 2, false, |_| {});
    let q = net.nodes[0]
        .start(
            net.now,
            Request::Ping {
                addr: "127.9.9.9:1".parse().unwrap(),
            },
        )
        .expect("request");
    let d = net.wait(0, q);
    assert_eq!(d.outcome, Outcome::Ping { node: None });
    assert_eq!(d.stats.timeouts, 1);
}

fn raw_query(id: Id, method: Method) -> Vec<u8> {
    Message::query(b"xy".to_vec(), id, method).to_bytes()
}

fn drain(node: &mut Node<TestStore>) -> Vec<(SocketAddr, Message)> {
    let mut out = Vec::new();
    while let Some(t) = node.poll_transmit() {
        let m = krpc::decode(&t.payload).expect("we send what we can decode");
        // The node pings unknown queriers to let them into its table: not a reply.
        if !matches!(m.body, Body::Query(_)) {
            out.push((t.to, m));
        }
    }
    out
}

fn one_node() -> (Node<TestStore>, std::time::Instant) {
    let now = std::time::Instant::now();
    (
        Node::new(Config::with_seed(9), TestStore::default(), now, WALL0).expect("valid config"),
        now,
    )
}

#[test]
fn never_answers_responses_errors_or_packets_without_t() {
    let (mut n, now) = one_node();
    let from: SocketAddr = "127.0.0.5:4000".parse().unwrap();
    let resp = Message::new(b"zz".to_vec(), Body::Response(Response::new(Id([1; 20]))));
    n.handle_datagram(now, from, None, &resp.to_bytes());
    let err = Message::new(
        resp.transaction_id.clone(),
        Body::Error(ErrorBody::new(201, "x")),
    );
    n.handle_datagram(now, from, None, &err.to_bytes());
    // A query without t, and garbage.
    n.handle_datagram(
        now,
        from,
        None,
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:qe",
    );
    n.handle_datagram(now, from, None, b"\xff\x00garbage");
    assert!(drain(&mut n).is_empty());
    assert_eq!(n.stats().unexpected_replies, 2);
}

#[test]
fn malformed_query_gets_203_and_unknown_method_204() {
    let (mut n, now) = one_node();
    let from: SocketAddr = "127.0.0.5:4000".parse().unwrap();
    // find_node without target
    n.handle_datagram(
        now,
        from,
        None,
        b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:aa1:y1:qe",
    );
    let out = drain(&mut n);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, from);
    match &out[0].1.body {
        Body::Error(e) => assert_eq!(e.code, code::PROTOCOL),
        b => panic!("{b:?}"),
    }
    assert_eq!(out[0].1.transaction_id, b"aa");
    n.handle_datagram(
        now,
        from,
        None,
        &raw_query(
            Id([3; 20]),
            Method::Unknown {
                name: b"frobnicate".to_vec(),
            },
        ),
    );
    let out = drain(&mut n);
    match &out[0].1.body {
        Body::Error(e) => assert_eq!(e.code, code::METHOD_UNKNOWN),
        b => panic!("{b:?}"),
    }
}

#[test]
fn put_errors_come_in_the_documented_order() {
    let (mut n, now) = one_node();
    let from: SocketAddr = "127.0.0.5:4000".parse().unwrap();
    let k = key(3);
    let put = |n: &mut Node<TestStore>, args: PutArgs| -> i64 {
        n.handle_datagram(now, from, None, &raw_query(Id([3; 20]), Method::Put(args)));
        match &drain(n)[0].1.body {
            Body::Error(e) => e.code,
            Body::Response(_) => 0,
            b => panic!("{b:?}"),
        }
    };
    let big = {
        let mut v = b"1001:".to_vec();
        v.extend(std::iter::repeat_n(b'x', 1001));
        v
    };
    let signed = |seq, salt: &[u8], v: &[u8]| Some(MutableItem::sign(&k, salt, seq, v));
    // The value sent may differ from the one signed (the checks' order is under test).
    let args = |token: Vec<u8>, value: Vec<u8>, m: Option<MutableItem>, cas| {
        PutArgs::new(
            token,
            match m {
                None => Item::Immutable { value },
                Some(m) => Item::Mutable(MutableItem { value, ..m }),
            },
        )
        .with_cas(cas)
    };
    // Too big beats everything else (bad token, bad salt).
    let mut m = signed(1, &[b's'; 65], b"1:x");
    assert_eq!(
        put(&mut n, args(b"bad".to_vec(), big.clone(), m.clone(), None)),
        code::VALUE_TOO_BIG
    );
    // Then salt.
    assert_eq!(
        put(
            &mut n,
            args(b"bad".to_vec(), b"1:x".to_vec(), m.clone(), None)
        ),
        code::SALT_TOO_BIG
    );
    // Then token.
    m = signed(1, b"s", b"1:x");
    if let Some(mm) = m.as_mut() {
        mm.signature[0] ^= 1;
    }
    assert_eq!(
        put(
            &mut n,
            args(b"bad".to_vec(), b"1:x".to_vec(), m.clone(), None)
        ),
        code::PROTOCOL
    );
    // With a good token: bad signature.
    let token = token_for(&mut n, now, from);
    assert_eq!(
        put(&mut n, args(token.clone(), b"1:x".to_vec(), m, None)),
        code::INVALID_SIGNATURE
    );
    // Good put, then cas mismatch, then stale seq.
    assert_eq!(
        put(
            &mut n,
            args(
                token.clone(),
                b"1:x".to_vec(),
                signed(5, b"s", b"1:x"),
                None
            )
        ),
        0
    );
    let cas = signed(6, b"s", b"1:y");
    assert_eq!(
        put(&mut n, args(token.clone(), b"1:y".to_vec(), cas, Some(4))),
        code::CAS_MISMATCH
    );
    assert_eq!(
        put(
            &mut n,
            args(
                token.clone(),
                b"1:y".to_vec(),
                signed(4, b"s", b"1:y"),
                None
            )
        ),
        code::SEQ_TOO_LOW
    );
    assert_eq!(
        put(
            &mut n,
            args(token, b"1:y".to_vec(), signed(5, b"s", b"1:y"), None)
        ),
        code::SEQ_TOO_LOW
    );
}

#[test]
fn read_only_nodes_answer_nothing_and_are_not_added() {
    let mut net = Net::new(2, 3, false, |_| {});
    let mut cfg = Config::with_seed(77);
    cfg.read_only = true;
    let ro = net.add_node(cfg, false);
    let a0 = net.addrs[0];
    let q = net.nodes[1]
        .start(
            net.now,
            Request::Bootstrap {
                seeds: [a0].to_vec(),
            },
        )
        .expect("request");
    net.wait(1, q);
    let q = net.nodes[ro]
        .start(
            net.now,
            Request::Bootstrap {
                seeds: [a0].to_vec(),
            },
        )
        .expect("request");
    let d = net.wait(ro, q);
    assert!(
        matches!(d.outcome, Outcome::Nodes { ref closest } if !closest.is_empty()),
        "ro node can still look up"
    );
    net.run_for(Duration::from_secs(120));
    for i in 0..2 {
        assert!(
            net.nodes[i]
                .routing_table(Family::V4)
                .entries()
                .all(|e| e.node.addr != net.addrs[ro]),
            "node {i} added the read-only node"
        );
    }
    // And it answers no query.
    let q = net.nodes[0]
        .start(
            net.now,
            Request::Ping {
                addr: net.addrs[ro],
            },
        )
        .expect("request");
    assert_eq!(net.wait(0, q).outcome, Outcome::Ping { node: None });
}

#[test]
fn network_of_64_nodes_put_get_announce_over_ipv4_and_ipv6() {
    for v6 in [false, true] {
        let mut net = Net::new(64, 4, v6, |_| {});
        net.bootstrap_all();
        for i in 0..64 {
            let fam = if v6 { Family::V6 } else { Family::V4 };
            assert!(
                net.nodes[i].routing_table(fam).len() >= 8,
                "node {i} table too small"
            );
        }
        let value = b"i42e".to_vec();
        let q = net.nodes[5]
            .start(
                net.now,
                Request::PutImmutable {
                    value: value.clone(),
                },
            )
            .expect("request");
        let (n, errs) = stored(&net.wait(5, q).outcome);
        assert_eq!((n, errs), (8, vec![]), "stored at K nodes");
        // A getter that does not hold the item itself, so the value must travel.
        let target = Id::sha1(&value);
        let g = (0..64)
            .find(|&i| {
                dht_core::Store::get_item(net.nodes[i].store(), &target)
                    .unwrap()
                    .is_none()
            })
            .unwrap();
        let q = net.nodes[g]
            .start(net.now, Request::GetImmutable { target })
            .expect("request");
        let d = net.wait(g, q);
        assert_eq!(d.outcome, Outcome::Immutable { value: Some(value) });
        assert!(d.stats.hops >= 1);

        let ih = Id::sha1(b"swarm");
        for i in [1, 2, 3] {
            let q = net.nodes[i]
                .start(
                    net.now,
                    Request::AnnouncePeer {
                        info_hash: ih,
                        port: Some(6000 + i as u16),
                        seed: false,
                    },
                )
                .expect("request");
            assert_eq!(stored(&net.wait(i, q).outcome).0, 8);
        }
        let q = net.nodes[60]
            .start(net.now, Request::GetPeers { info_hash: ih })
            .expect("request");
        match net.wait(60, q).outcome {
            Outcome::Peers { peers, .. } => assert_eq!(peers.len(), 3, "{peers:?}"),
            o => panic!("{o:?}"),
        }
    }
}

#[test]
fn one_seed_replays_one_run() {
    let run = |seed| {
        let mut net = Net::new(16, seed, false, |_| {});
        net.log = Some(Vec::new());
        net.bootstrap_all();
        let q = net.nodes[3]
            .start(
                net.now,
                Request::PutImmutable {
                    value: b"3:abc".to_vec(),
                },
            )
            .expect("request");
        net.wait(3, q);
        let log = net.log.take().unwrap();
        Id::sha1(
            &log.iter()
                .flat_map(|(f, t, p)| {
                    format!("{f}{t}")
                        .into_bytes()
                        .into_iter()
                        .chain(p.iter().copied())
                })
                .collect::<Vec<u8>>(),
        )
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn restarted_node_rejoins_from_its_saved_table() {
    let mut net = Net::new(20, 8, false, |_| {});
    net.bootstrap_all();
    let snap = net.nodes[7].routing_snapshot(net.now);
    assert!(snap.nodes.len() >= 8);
    // A fresh node with that snapshot in its store and no bootstrap routers.
    let mut store = TestStore::default();
    dht_core::Store::save_routing(&mut store, &snap).unwrap();
    let mut cfg = Config::with_seed(999);
    cfg.id_policy = dht_core::IdPolicy::Fixed(snap.node_id.unwrap());
    let i = net.add_node_with(cfg, store, false);
    let q = net.nodes[i]
        .start(net.now, Request::Bootstrap { seeds: [].to_vec() })
        .expect("request");
    let d = net.wait(i, q);
    assert!(
        matches!(d.outcome, Outcome::Nodes { ref closest } if closest.len() == 8),
        "{:?}",
        d.outcome
    );
}

fn strict_node(tweak: impl Fn(&mut Config)) -> (Node<TestStore>, std::time::Instant) {
    let now = std::time::Instant::now();
    let mut cfg = Config::with_seed(21);
    cfg.defense.exempt_local = false;
    tweak(&mut cfg);
    (
        Node::new(cfg, TestStore::default(), now, WALL0).expect("valid config"),
        now,
    )
}

fn replies(node: &mut Node<TestStore>) -> usize {
    drain(node).len()
}

/// Has `addr` prove its address to `n` (issue 27 finding 8: only such a source is
/// ever banned): the node pings it and it answers.
fn prove(n: &mut Node<TestStore>, now: std::time::Instant, addr: SocketAddr) {
    n.start(now, Request::Ping { addr }).expect("request");
    let q = n.poll_transmit().expect("the node's ping");
    let m = krpc::decode(&q.payload).expect("decodes");
    let reply = Message::new(m.transaction_id, Body::Response(Response::new(Id([6; 20]))));
    n.handle_datagram(now, addr, None, &reply.to_bytes());
}

#[test]
fn a_flooding_ip_is_limited_then_banned_while_others_are_served() {
    let (mut n, t0) = strict_node(|_| {});
    let flooder: SocketAddr = "127.3.3.3:5000".parse().unwrap();
    prove(&mut n, t0, flooder);
    let honest: SocketAddr = "127.4.4.4:5000".parse().unwrap();
    let ping = raw_query(Id([9; 20]), Method::Ping);
    let mut answered = 0;
    for _ in 0..1000 {
        n.handle_datagram(t0, flooder, None, &ping);
        answered += replies(&mut n);
    }
    let d = dht_core::Defense::default();
    assert_eq!(
        answered, d.query_burst as usize,
        "only the burst is answered"
    );
    assert!(n.stats().banned > 0, "{:?}", n.stats());
    // Banned: even after the bucket would have refilled, nothing is answered.
    n.handle_datagram(t0 + Duration::from_secs(60), flooder, None, &ping);
    assert_eq!(replies(&mut n), 0);
    // An honest source is served meanwhile.
    n.handle_datagram(
        t0 + Duration::from_secs(60),
        honest,
        None,
        &raw_query(Id([8; 20]), Method::Ping),
    );
    assert_eq!(replies(&mut n), 1);
    // The ban ends.
    n.handle_datagram(
        t0 + d.ban_duration + Duration::from_secs(61),
        flooder,
        None,
        &ping,
    );
    assert_eq!(replies(&mut n), 1);
}

#[test]
fn the_reply_budget_caps_bytes_sent_to_many_sources() {
    let (mut n, t0) = strict_node(|c| c.defense.reply_bytes_per_sec = Some(10_000));
    let mut sent = 0;
    for i in 0..2000u32 {
        let from = SocketAddr::from(([127, 5, (i >> 8) as u8, i as u8], 6000));
        n.handle_datagram(
            t0,
            from,
            None,
            &raw_query(
                Id([7; 20]),
                Method::find_node(Id([1; 20])).with_want(Default::default()),
            ),
        );
        while let Some(t) = n.poll_transmit() {
            if !matches!(krpc::decode(&t.payload).unwrap().body, Body::Query(_)) {
                sent += t.payload.len();
            }
        }
    }
    assert!(
        sent <= 10_000,
        "sent {sent} bytes in one instant with a 10 kB/s budget"
    );
    assert!(n.stats().budget_dropped > 0);
}

#[test]
fn puts_from_many_addresses_cannot_pass_the_item_cap() {
    let (mut n, t0) = strict_node(|c| c.limits.max_items = 50);
    let mut codes = std::collections::BTreeMap::new();
    for i in 0..200u32 {
        // Each in its own /16: the sources of one network share its share (issue 27
        // finding 2), and this test is about the global cap.
        let from = SocketAddr::from(([127, i as u8, 6, 1], 6000));
        let token = token_for(&mut n, t0, from);
        let value = format!("i{i}e").into_bytes();
        n.handle_datagram(
            t0,
            from,
            None,
            &raw_query(
                Id([7; 20]),
                Method::Put(PutArgs::new(token, Item::Immutable { value })),
            ),
        );
        let c = match &drain(&mut n)[0].1.body {
            Body::Error(e) => e.code,
            _ => 0,
        };
        *codes.entry(c).or_insert(0) += 1;
    }
    assert_eq!(codes.get(&0), Some(&50));
    assert_eq!(codes.get(&code::SERVER), Some(&150));
    assert_eq!(dht_core::Store::counts(n.store()).unwrap().items, 50);
}

#[test]
fn bep42_node_learns_its_address_by_vote_and_takes_a_fitting_id() {
    let now = std::time::Instant::now();
    let mut cfg = Config::with_seed(5);
    cfg.id_policy = dht_core::IdPolicy::Bep42("0.0.0.0".parse().unwrap());
    let mut n = Node::new(cfg, TestStore::default(), now, WALL0).expect("valid config");
    let public: SocketAddr = "203.0.113.7:6881".parse().unwrap();
    let first_id = n.id();
    let answer = |n: &mut Node<TestStore>, voter: SocketAddr, seen: SocketAddr| {
        let q = n
            .start(now, Request::Ping { addr: voter })
            .expect("request");
        let t = n.poll_transmit().unwrap();
        let m = krpc::decode(&t.payload).unwrap();
        let resp = Message::new(
            m.transaction_id,
            Body::Response(Response::new(Id([voter.ip().to_string().len() as u8; 20]))),
        )
        .with_requester_ip(Some(seen));
        n.handle_datagram(now, voter, None, &resp.to_bytes());
        q
    };
    // A spoofed reply (from an address we did not ask) is no vote.
    for i in 0..10u8 {
        let spoof = Message::new(vec![0, 0, 0, i], Body::Response(Response::new(Id([i; 20]))))
            .with_requester_ip(Some("198.51.100.1:1".parse().unwrap()));
        n.handle_datagram(
            now,
            SocketAddr::from(([127, 9, i, 1], 1)),
            None,
            &spoof.to_bytes(),
        );
    }
    assert_eq!(n.external_ip(), None);
    // Four networks agree: not enough.
    for i in 0..4u8 {
        answer(&mut n, SocketAddr::from(([127, 1, i, 1], 6881)), public);
    }
    assert_eq!(n.external_ip(), None);
    assert_eq!(n.id(), first_id);
    // Two voters in one /24 count once.
    answer(&mut n, SocketAddr::from(([127, 1, 0, 2], 6881)), public);
    assert_eq!(n.external_ip(), None);
    answer(&mut n, SocketAddr::from(([127, 1, 9, 1], 6881)), public);
    assert_eq!(n.external_ip(), Some(public.ip()));
    assert_ne!(n.id(), first_id);
    assert!(dht_core::is_secure_id(&n.id(), public.ip()));
}

#[test]
fn a_flood_from_many_spoofed_sources_does_not_starve_a_known_peer() {
    // A node whose table holds an honest peer (it answered our query); a flood of
    // queries from 5,000 spoofed addresses spends the reply budget.
    let mut net = Net::new(2, 41, false, |c| {
        c.defense.exempt_local = false;
        c.defense.reply_bytes_per_sec = Some(20_000);
    });
    let a1 = net.addrs[1];
    let q = net.nodes[0]
        .start(
            net.now,
            Request::Bootstrap {
                seeds: [a1].to_vec(),
            },
        )
        .expect("request");
    net.wait(0, q);
    assert_eq!(net.nodes[0].routing_table(Family::V4).len(), 1);
    let honest = net.addrs[1];
    let honest_id = net.nodes[1].id();
    let now = net.now;
    let (mut honest_answered, mut honest_asked) = (0, 0);
    for i in 0..5000u32 {
        let spoofed = SocketAddr::from(([127, 200, (i >> 8) as u8, i as u8], 6881));
        let target = Id::sha1(&i.to_be_bytes());
        let q = raw_query(
            target,
            Method::find_node(target).with_want(Default::default()),
        );
        net.nodes[0].handle_datagram(now, spoofed, None, &q);
        // (Fewer than the per-IP burst: that limit is not what is tested here.)
        if i % 100 == 0 {
            honest_asked += 1;
            net.nodes[0].handle_datagram(now, honest, None, &raw_query(honest_id, Method::Ping));
        }
        while let Some(t) = net.nodes[0].poll_transmit() {
            if t.to == honest && !matches!(krpc::decode(&t.payload).unwrap().body, Body::Query(_)) {
                honest_answered += 1;
            }
        }
    }
    assert!(
        net.nodes[0].stats().budget_dropped > 4000,
        "{:?}",
        net.nodes[0].stats()
    );
    assert_eq!(
        honest_answered, honest_asked,
        "every query of the known peer was answered"
    );
}

#[test]
fn a_node_answering_with_another_id_is_evicted() {
    let mut net = Net::new(12, 42, false, |_| {});
    net.bootstrap_all();
    // Node 5 is replaced, at the same address, by a node with another id.
    let old_id = net.nodes[5].id();
    let holders: Vec<usize> = (0..12)
        .filter(|&i| {
            i != 5
                && net.nodes[i]
                    .routing_table(Family::V4)
                    .get(&old_id)
                    .is_some()
        })
        .collect();
    assert!(!holders.is_empty());
    net.nodes[5] = Node::new(
        Config::with_seed(4242),
        TestStore::default(),
        net.now,
        WALL0,
    )
    .expect("valid config");
    assert_ne!(net.nodes[5].id(), old_id);
    // Each holder looks up the old id: the impostor answers under its own id.
    for &h in &holders {
        let q = net.nodes[h]
            .start(net.now, Request::FindNode { target: old_id })
            .expect("request");
        net.wait(h, q);
        assert!(
            net.nodes[h]
                .routing_table(Family::V4)
                .get(&old_id)
                .is_none(),
            "node {h} kept the stale entry"
        );
    }
}

/// A write token for `from` (asked with a get, as a putter or announcer would).
fn token_for(n: &mut Node<TestStore>, now: std::time::Instant, from: SocketAddr) -> Vec<u8> {
    let get = Method::get(Id::ZERO).with_want(Default::default());
    n.handle_datagram(now, from, None, &raw_query(Id([1; 20]), get));
    match &drain(n)[0].1.body {
        Body::Response(r) => r.token.clone().unwrap(),
        b => panic!("{b:?}"),
    }
}

const STRANGER: &str = "127.9.9.9:6881";

/// A strict node holding a 100-peer swarm (each peer announced from its own address),
/// and its get_peers reply to a stranger with its size in bytes.
fn swarm_reply_to_stranger(
    limit: Option<usize>,
) -> (Node<TestStore>, std::time::Instant, Response, usize) {
    let (mut n, t0) = strict_node(|c| c.defense.stranger_reply_bytes = limit);
    let ih = Id::sha1(b"big swarm");
    for i in 0..100u32 {
        let from = SocketAddr::from(([127, 8, (i >> 8) as u8, i as u8], 7000));
        let token = token_for(&mut n, t0, from);
        let announce = Method::announce_peer(ih, 7000, token);
        n.handle_datagram(t0, from, None, &raw_query(Id([1; 20]), announce));
        drain(&mut n);
    }
    let stranger: SocketAddr = STRANGER.parse().unwrap();
    let get_peers = Method::get_peers(ih).with_want(Default::default());
    n.handle_datagram(t0, stranger, None, &raw_query(Id([2; 20]), get_peers));
    let (to, reply) = drain(&mut n).pop().expect("a reply");
    assert_eq!(to, stranger);
    let size = reply.to_bytes().len();
    match reply.body {
        Body::Response(r) => (n, t0, r, size),
        b => panic!("{b:?}"),
    }
}

#[test]
fn replies_to_strangers_are_trimmed_but_keep_values() {
    // (This node has no contacts, so its reply is mostly peers: a 300-byte limit
    // exercises the trimming that 512 does on a node with a full table.)
    let (_, _, _, full) = swarm_reply_to_stranger(None);
    assert!(
        full > 300,
        "the test swarm reply must need trimming: {full}"
    );
    let (_, _, r, trimmed) = swarm_reply_to_stranger(Some(300));
    assert!(trimmed <= 300, "a stranger got {trimmed} bytes");
    assert!(!r.values.is_empty(), "peers are still handed out");
    let (mut n, t0, r, reply) = swarm_reply_to_stranger(Some(512));
    assert!(reply <= 512, "a stranger got {reply} bytes");
    assert!(!r.values.is_empty());
    let stranger: SocketAddr = STRANGER.parse().unwrap();
    // A 1000-byte value still reaches a stranger.
    let k = key(9);
    let mut v = b"996:".to_vec();
    v.extend(std::iter::repeat_n(b'v', 996));
    let item = MutableItem::sign(&k, b"", 1, &v);
    let from: SocketAddr = "127.8.200.1:7000".parse().unwrap();
    let token = token_for(&mut n, t0, from);
    let put = item.clone();
    n.handle_datagram(
        t0,
        from,
        None,
        &raw_query(
            Id([1; 20]),
            Method::Put(PutArgs::new(
                token,
                Item::Mutable(MutableItem {
                    value: v.clone(),
                    ..put
                }),
            )),
        ),
    );
    drain(&mut n);
    n.handle_datagram(
        t0,
        stranger,
        None,
        &raw_query(
            Id([2; 20]),
            Method::get(item.target()).with_want(Default::default()),
        ),
    );
    let got = drain(&mut n).into_iter().find_map(|(_, m)| match m.body {
        Body::Response(r) => r.value,
        _ => None,
    });
    assert_eq!(got, Some(v));
}

/// Table admission follows the node's own `Config::defense`: with the local exemption
/// off, two contacts on one loopback IP (different ports and ids) get one slot, as two
/// public ones would (`max_per_ip` 1); with it on (the default), both get in.
#[test]
fn the_routing_table_applies_the_configured_defense() {
    let admitted = |exempt_local: bool| {
        let (mut n, t0) = strict_node(|c| c.defense.exempt_local = exempt_local);
        for (port, id) in [(7001u16, Id([0x41; 20])), (7002, Id([0x42; 20]))] {
            let from = SocketAddr::from(([127, 9, 9, 9], port));
            n.handle_datagram(t0, from, None, &raw_query(id, Method::Ping));
            // The node pings an unknown querier before trusting it: answer as it.
            while let Some(t) = n.poll_transmit() {
                let m = krpc::decode(&t.payload).expect("we send what we decode");
                if t.to == from && matches!(m.body, Body::Query(_)) {
                    let pong =
                        Message::new(m.transaction_id, Body::Response(krpc::Response::new(id)));
                    n.handle_datagram(t0, from, None, &pong.to_bytes());
                }
            }
        }
        n.routing_table(Family::V4).len()
    };
    assert_eq!(
        admitted(true),
        2,
        "exempt loopback contacts share an IP freely"
    );
    assert_eq!(
        admitted(false),
        1,
        "one IP, one slot, when loopback is not exempt"
    );
}

/// Group commit: the reply to a write (announce_peer, put) is marked to wait for the
/// store's commit, every other reply goes at once, and a write whose commit failed
/// is answered with 202 under its own transaction id, never with a success.
#[test]
fn write_replies_wait_for_the_commit_and_a_failed_one_becomes_202() {
    use dht_core::{Output, Overlay};
    let (mut n, t0) = strict_node(|_| {});
    let from: SocketAddr = "127.7.0.1:7000".parse().unwrap();
    let token = token_for(&mut n, t0, from);
    let outputs = |n: &mut Node<TestStore>| {
        let mut out = Vec::new();
        while let Some(o) = n.poll_output() {
            let (after_commit, payload) = match o {
                Output::Datagram { payload, .. } => (false, payload),
                Output::DatagramAfterCommit { payload, .. } => (true, payload),
                o => panic!("{o:?}"),
            };
            let m = krpc::decode(&payload).expect("ours");
            if !matches!(m.body, Body::Query(_)) {
                out.push((after_commit, payload, m));
            }
        }
        out
    };

    n.handle_datagram(t0, from, None, &raw_query(Id([1; 20]), Method::Ping));
    let ping = outputs(&mut n);
    assert!(matches!(&ping[..], [(false, _, _)]), "{ping:?}");

    let announce = Method::announce_peer(Id([5; 20]), 7000, token);
    n.handle_datagram(t0, from, None, &raw_query(Id([1; 20]), announce));
    let mut replies = outputs(&mut n);
    let (after_commit, payload, reply) = replies.pop().expect("a reply");
    assert!(after_commit, "an announce's reply waits for the commit");
    assert!(matches!(reply.body, Body::Response(_)), "{reply:?}");
    // A memory store has nothing to commit.
    assert!(n.commit().is_none());

    let error = n
        .commit_failed(payload)
        .expect("an answer for a failed commit");
    let error = krpc::decode(&error).expect("ours");
    assert_eq!(error.transaction_id, reply.transaction_id);
    assert!(
        matches!(&error.body, Body::Error(e) if e.code == code::SERVER),
        "{error:?}"
    );
}
