//! The operator counters of `Node::stats` through real datagrams: each test feeds
//! `handle_datagram` encoded KRPC messages and checks that exactly the counters it
//! names moved, by exactly the amount expected.
//!
//! Remote sources are documentation addresses (public, so no exemption applies);
//! loopback sources are exempt from every defense.

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use common::{TestStore, WALL0};
use dht_core::krpc::{self, code, Body, ErrorBody, Message, Method, PutArgs};
use dht_core::{Config, ErrorCode, Id, Item, KrpcMethod, Node, NodeStats, RefusalReason, Request};

fn node(tweak: impl Fn(&mut Config)) -> (Node<TestStore>, Instant) {
    let now = Instant::now();
    let mut cfg = Config::with_seed(5);
    cfg.defense.query_burst = 1e9;
    tweak(&mut cfg);
    let n = Node::new(cfg, TestStore::default(), now, WALL0).expect("valid config");
    (n, now)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn query(method: Method) -> Vec<u8> {
    Message::query(b"st".to_vec(), Id([9; 20]), method).to_bytes()
}

/// Feeds one query from `from` and returns the node's reply to it (the node's own
/// pings of a new querier are left out).
fn ask(n: &mut Node<TestStore>, now: Instant, from: SocketAddr, m: Method) -> Message {
    n.handle_datagram(now, from, None, &query(m));
    let mut replies = Vec::new();
    while let Some(t) = n.poll_transmit() {
        let msg = krpc::decode(&t.payload).expect("we send what we decode");
        if !matches!(msg.body, Body::Query(_)) {
            replies.push(msg);
        }
    }
    assert_eq!(replies.len(), 1, "one reply to {from}");
    replies.remove(0)
}

fn error_code(m: &Message) -> Option<i64> {
    match &m.body {
        Body::Error(e) => Some(e.code),
        _ => None,
    }
}

fn get_peers(ih: Id) -> Method {
    Method::get_peers(ih).with_want(Default::default())
}

fn token(n: &mut Node<TestStore>, now: Instant, from: SocketAddr) -> Vec<u8> {
    match ask(n, now, from, get_peers(Id::ZERO)).body {
        Body::Response(r) => r.token.expect("a get_peers reply carries a token"),
        b => panic!("{b:?}"),
    }
}

fn announce(ih: Id, port: u16, token: Vec<u8>) -> Method {
    Method::announce_peer(ih, port, token)
}

fn put(i: u32, token: Vec<u8>) -> Method {
    Method::Put(PutArgs::new(
        token,
        Item::Immutable {
            value: format!("{i}:{}", "x".repeat(i as usize)).into_bytes(),
        },
    ))
}

fn ih(i: u32) -> Id {
    let mut b = [0x44; 20];
    b[..4].copy_from_slice(&i.to_be_bytes());
    Id(b)
}

/// The labels whose count moved from `a` to `b`, with how much.
fn moved<L: Copy>(
    a: impl Iterator<Item = (L, u64)>,
    b: impl Iterator<Item = (L, u64)>,
) -> Vec<(L, u64)> {
    a.zip(b)
        .filter(|((_, x), (_, y))| x != y)
        .map(|((l, x), (_, y))| (l, y - x))
        .collect()
}

fn received(a: &NodeStats, b: &NodeStats) -> Vec<(KrpcMethod, u64)> {
    moved(a.queries_received.iter(), b.queries_received.iter())
}

fn errors_sent(a: &NodeStats, b: &NodeStats) -> Vec<(ErrorCode, u64)> {
    moved(a.errors_sent_by_code.iter(), b.errors_sent_by_code.iter())
}

fn refused(a: &NodeStats, b: &NodeStats) -> Vec<(RefusalReason, u64)> {
    moved(a.storage_refused_by.iter(), b.storage_refused_by.iter())
}

#[test]
fn queries_received_count_by_method_and_unknown_ones_as_other() {
    let (mut n, now) = node(|_| {});
    let from = addr("198.51.100.1:6881");
    let cases = [
        (Method::Ping, KrpcMethod::Ping),
        (
            Method::find_node(Id([1; 20])).with_want(Default::default()),
            KrpcMethod::FindNode,
        ),
        (get_peers(Id([2; 20])), KrpcMethod::GetPeers),
        (
            Method::get(Id([3; 20])).with_want(Default::default()),
            KrpcMethod::Get,
        ),
        (
            Method::sample_infohashes(Id([4; 20])).with_want(Default::default()),
            KrpcMethod::SampleInfohashes,
        ),
        (
            Method::Unknown {
                name: b"vote".to_vec(),
            },
            KrpcMethod::Other,
        ),
    ];
    for (m, label) in cases {
        let before = n.stats();
        ask(&mut n, now, from, m);
        let after = n.stats();
        assert_eq!(received(&before, &after), [(label, 1)], "{label:?}");
        assert_eq!(after.queries_answered, before.queries_answered + 1);
    }
    // The unknown method drew one 204, and only the 204 moved.
    let before = n.stats();
    let reply = ask(
        &mut n,
        now,
        from,
        Method::Unknown {
            name: b"x".to_vec(),
        },
    );
    assert_eq!(error_code(&reply), Some(code::METHOD_UNKNOWN));
    let after = n.stats();
    assert_eq!(
        errors_sent(&before, &after),
        [(ErrorCode::MethodUnknown, 1)]
    );
    assert_eq!(after.errors_sent, before.errors_sent + 1);
    assert_eq!(after.errors_sent_by_code.total(), after.errors_sent);
}

#[test]
fn tokens_issued_and_refused_with_the_203_counted_by_code() {
    let (mut n, now) = node(|_| {});
    let from = addr("198.51.100.2:6881");
    let before = n.stats();
    let good = token(&mut n, now, from);
    let mid = n.stats();
    assert_eq!(mid.tokens_issued, before.tokens_issued + 1);
    assert_eq!(received(&before, &mid), [(KrpcMethod::GetPeers, 1)]);

    // A token another source was given is bad for this one.
    let other = token(&mut n, now, addr("198.51.100.3:6881"));
    let before = n.stats();
    let reply = ask(&mut n, now, from, announce(ih(1), 7000, other));
    assert_eq!(error_code(&reply), Some(code::PROTOCOL));
    let after = n.stats();
    assert_eq!(after.tokens_refused, before.tokens_refused + 1);
    assert_eq!(after.tokens_issued, before.tokens_issued);
    assert_eq!(errors_sent(&before, &after), [(ErrorCode::Protocol, 1)]);
    assert_eq!(received(&before, &after), [(KrpcMethod::AnnouncePeer, 1)]);

    // A put with a made-up token: refused the same way.
    let before = n.stats();
    let reply = ask(&mut n, now, from, put(1, b"nonsense".to_vec()));
    assert_eq!(error_code(&reply), Some(code::PROTOCOL));
    let after = n.stats();
    assert_eq!(after.tokens_refused, before.tokens_refused + 1);
    assert_eq!(errors_sent(&before, &after), [(ErrorCode::Protocol, 1)]);
    assert_eq!(received(&before, &after), [(KrpcMethod::Put, 1)]);

    // The good token works and refuses nothing.
    let before = n.stats();
    let reply = ask(&mut n, now, from, announce(ih(1), 7000, good));
    assert_eq!(error_code(&reply), None);
    let after = n.stats();
    assert_eq!(after.tokens_refused, before.tokens_refused);
    assert_eq!(after.errors_sent, before.errors_sent);
}

#[test]
fn a_malformed_query_is_a_203_by_code() {
    let (mut n, now) = node(|_| {});
    let before = n.stats();
    // A query with a `t` but no `a`.
    n.handle_datagram(
        now,
        addr("198.51.100.4:6881"),
        None,
        b"d1:q4:ping1:t2:aa1:y1:qe",
    );
    let after = n.stats();
    assert_eq!(after.malformed, before.malformed + 1);
    assert_eq!(errors_sent(&before, &after), [(ErrorCode::Protocol, 1)]);
    // It did not decode, so no method is counted.
    assert_eq!(received(&before, &after), []);
}

#[test]
fn replies_to_strangers_count_as_trimmed_once_each() {
    let (mut n, now) = node(|_| {});
    let swarm = ih(77);
    // 30 IPv6 peers (18 bytes each on the wire: 540 bytes) from exempt loopback
    // ports; the whole list fits the 1024-byte limit.
    for port in 7000..7030u16 {
        let from = SocketAddr::new("::1".parse().unwrap(), port);
        let t = token(&mut n, now, from);
        assert_eq!(
            error_code(&ask(&mut n, now, from, announce(swarm, port, t))),
            None
        );
    }
    // A loopback asker is no stranger: the whole list, nothing counted.
    let before = n.stats();
    let reply = ask(&mut n, now, addr("[::1]:9000"), get_peers(swarm));
    let Body::Response(r) = reply.body else {
        panic!("{reply:?}")
    };
    assert_eq!(r.values.len(), 30);
    assert_eq!(n.stats().stranger_trimmed, before.stranger_trimmed);
    // A stranger gets a list cut to 512 bytes, counted once.
    let stranger = addr("[2001:db8::5]:6881");
    let reply = ask(&mut n, now, stranger, get_peers(swarm));
    let len = reply.to_bytes().len();
    let Body::Response(r) = reply.body else {
        panic!("{reply:?}")
    };
    assert!(
        r.values.len() < 30 && len <= 512,
        "{} peers, {len} bytes",
        r.values.len()
    );
    assert_eq!(n.stats().stranger_trimmed, before.stranger_trimmed + 1);
    // A short reply to the same stranger is not trimmed.
    ask(&mut n, now, stranger, Method::Ping);
    assert_eq!(n.stats().stranger_trimmed, before.stranger_trimmed + 1);
}

/// One refusal under `limits`, after `fill` writes that fit: only `reason` moves.
fn refusal(
    tweak: impl Fn(&mut Config),
    write: impl Fn(&mut Node<TestStore>, Instant, u32) -> Message,
    fits: u32,
    reason: RefusalReason,
) {
    let (mut n, now) = node(tweak);
    for i in 0..fits {
        let reply = write(&mut n, now, i);
        assert_eq!(error_code(&reply), None, "write {i} fits ({reason:?})");
    }
    let before = n.stats();
    let reply = write(&mut n, now, fits);
    assert_eq!(error_code(&reply), Some(code::SERVER), "{reason:?}");
    let after = n.stats();
    assert_eq!(refused(&before, &after), [(reason, 1)]);
    assert_eq!(after.storage_refused, before.storage_refused + 1);
    assert_eq!(after.storage_refused_by.total(), after.storage_refused);
    assert_eq!(errors_sent(&before, &after), [(ErrorCode::Server, 1)]);
}

/// Puts of item `i` from `from(i)`.
fn putter(from: fn(u32) -> SocketAddr) -> impl Fn(&mut Node<TestStore>, Instant, u32) -> Message {
    move |n, now, i| {
        let t = token(n, now, from(i));
        ask(n, now, from(i), put(i, t))
    }
}

/// Announces into swarm `i` from `from(i)`.
fn announcer(
    from: fn(u32) -> SocketAddr,
) -> impl Fn(&mut Node<TestStore>, Instant, u32) -> Message {
    move |n, now, i| {
        let t = token(n, now, from(i));
        ask(n, now, from(i), announce(ih(i), 6881, t))
    }
}

fn one_source(_: u32) -> SocketAddr {
    addr("203.0.113.9:4000")
}

/// Each in its own /16: one network's sources share its share (issue 27 finding 2).
fn many_sources(i: u32) -> SocketAddr {
    SocketAddr::from(([100 + i as u8, 51, 100, 1], 6881))
}

#[test]
fn storage_refusals_count_by_reason() {
    refusal(
        |c| c.limits.max_items = 2,
        putter(many_sources),
        2,
        RefusalReason::ItemCap,
    );
    refusal(
        |c| c.limits.max_info_hashes = 2,
        announcer(many_sources),
        2,
        RefusalReason::InfoHashCap,
    );
    // Five peers at 400 estimated bytes each.
    refusal(
        |c| c.limits.max_bytes = 2_000,
        announcer(many_sources),
        5,
        RefusalReason::ByteCap,
    );
    refusal(
        |c| c.limits.max_bytes = 2_000,
        putter(many_sources),
        4,
        RefusalReason::ByteCap,
    );
    refusal(
        |c| c.limits.max_items_per_source = 3,
        putter(one_source),
        3,
        RefusalReason::SourceItems,
    );
    refusal(
        |c| c.limits.max_info_hashes_per_source = 3,
        announcer(one_source),
        3,
        RefusalReason::SourceInfoHashes,
    );
    refusal(
        |c| c.limits.max_bytes_per_source = 1_000,
        announcer(one_source),
        2,
        RefusalReason::SourceBytes,
    );
    refusal(
        |c| c.limits.max_bytes_per_source = 1_000,
        putter(one_source),
        2,
        RefusalReason::SourceBytes,
    );
}

#[test]
fn queries_sent_by_method_and_errors_received_by_code() {
    let (mut n, now) = node(|_| {});
    let peer = addr("198.51.100.20:6881");
    let before = n.stats();
    n.start(now, Request::Ping { addr: peer }).expect("ping");
    let sent = n.poll_transmit().expect("the ping");
    assert!(n.poll_transmit().is_none());
    let after = n.stats();
    assert_eq!(
        moved(before.queries_sent.iter(), after.queries_sent.iter()),
        [(KrpcMethod::Ping, 1)]
    );
    let t = krpc::decode(&sent.payload).unwrap().transaction_id;
    let error =
        |code: i64| Message::new(t.clone(), Body::Error(ErrorBody::new(code, "no"))).to_bytes();
    // From an address we did not ask: unexpected, not an error reply to us.
    let before = n.stats();
    n.handle_datagram(now, addr("198.51.100.21:6881"), None, &error(201));
    let after = n.stats();
    assert_eq!(after.unexpected_replies, before.unexpected_replies + 1);
    assert_eq!(after.errors_received, before.errors_received);
    // From the address asked: one 201 received.
    n.handle_datagram(now, peer, None, &error(201));
    let last = n.stats();
    assert_eq!(
        moved(after.errors_received.iter(), last.errors_received.iter()),
        [(ErrorCode::Generic, 1)]
    );
    assert_eq!(last.unexpected_replies, after.unexpected_replies);
    // The same transaction again matches nothing any more.
    n.handle_datagram(now, peer, None, &error(302));
    let again = n.stats();
    assert_eq!(again.errors_received, last.errors_received);
    assert_eq!(again.unexpected_replies, last.unexpected_replies + 1);

    // A lookup's find_node queries count as find_node.
    let before = n.stats();
    n.start(
        now,
        Request::Bootstrap {
            seeds: vec![addr("198.51.100.30:6881"), addr("198.51.100.31:6881")],
        },
    )
    .expect("bootstrap");
    while n.poll_transmit().is_some() {}
    let after = n.stats();
    assert_eq!(
        moved(before.queries_sent.iter(), after.queries_sent.iter()),
        [(KrpcMethod::FindNode, 2)]
    );
}
