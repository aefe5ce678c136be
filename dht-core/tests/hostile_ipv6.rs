//! Hostile peers on IPv6, through the public API (issue 27, findings 1 and 4): one
//! /64 announcing from many addresses into a swarm, one /48 rotating through its /64s
//! into a full swarm, and a stranger's get_peers reply from an IPv6 swarm. Each test
//! fails when the defense it names is removed; the recipes print their figures (run
//! with `--nocapture` to see them).
//!
//! Sources are documentation addresses (2001:db8::/32): public, so no exemption
//! applies, and never routed.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{TestStore, WALL0};
use dht_core::krpc::{self, Body, Message, Method, Response};
use dht_core::{Config, Family, Id, Node, Store};

fn node(tweak: impl Fn(&mut Config)) -> (Node<TestStore>, Instant) {
    let now = Instant::now();
    let mut cfg = Config::with_seed(27);
    // No rate limit in the way (these tests are about storage and replies), and no
    // exemption whatever the addresses.
    cfg.defense.query_burst = 1e9;
    cfg.defense.exempt_local = false;
    tweak(&mut cfg);
    let n = Node::new(cfg, TestStore::default(), now, WALL0).expect("valid config");
    (n, now)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn raw_query(id: Id, method: Method) -> Vec<u8> {
    Message::query(b"xy".to_vec(), id, method).to_bytes()
}

/// The one reply to a query from `from`, with its size on the wire (the node's own
/// queries, pings of new queriers, are returned apart).
fn ask(
    n: &mut Node<TestStore>,
    now: Instant,
    from: SocketAddr,
    m: Method,
) -> (Message, usize, Vec<Message>) {
    n.handle_datagram(now, from, None, &raw_query(Id([1; 20]), m));
    let (mut replies, mut queries) = (Vec::new(), Vec::new());
    while let Some(t) = n.poll_transmit() {
        let m = krpc::decode(&t.payload).expect("we send what we can decode");
        if matches!(m.body, Body::Query(_)) {
            queries.push(m);
        } else {
            assert_eq!(t.to, from);
            replies.push((m, t.payload.len()));
        }
    }
    assert_eq!(replies.len(), 1, "one reply to {from}");
    let (m, len) = replies.remove(0);
    (m, len, queries)
}

fn response(m: &Message) -> &Response {
    match &m.body {
        Body::Response(r) => r,
        b => panic!("not a response: {b:?}"),
    }
}

fn get_peers(n: &mut Node<TestStore>, now: Instant, from: SocketAddr, ih: Id) -> Response {
    let m = Method::get_peers(ih).with_want(Default::default());
    response(&ask(n, now, from, m).0).clone()
}

fn token(n: &mut Node<TestStore>, now: Instant, from: SocketAddr, ih: Id) -> Vec<u8> {
    get_peers(n, now, from, ih).token.expect("a token")
}

/// The KRPC error code of the reply to an announce with `token`, 0 for a response.
fn announce_with(
    n: &mut Node<TestStore>,
    now: Instant,
    from: SocketAddr,
    ih: Id,
    token: Vec<u8>,
) -> i64 {
    let m = Method::announce_peer(ih, from.port(), token);
    match ask(n, now, from, m).0.body {
        Body::Error(e) => e.code,
        _ => 0,
    }
}

fn announce(n: &mut Node<TestStore>, now: Instant, from: SocketAddr, ih: Id) -> i64 {
    let t = token(n, now, from, ih);
    announce_with(n, now, from, ih, t)
}

const SWARM: Id = Id([0x27; 20]);

/// Puts `observer` into the node's IPv6 table: it queries, the node pings it back,
/// it answers. Its replies then skip the stranger trim.
fn befriend(n: &mut Node<TestStore>, now: Instant, observer: SocketAddr) {
    let id = Id([0x0b; 20]);
    n.handle_datagram(now, observer, None, &raw_query(id, Method::Ping));
    let mut pinged = false;
    while let Some(t) = n.poll_transmit() {
        let m = krpc::decode(&t.payload).unwrap();
        if t.to == observer && matches!(m.body, Body::Query(_)) {
            let r = Message::new(m.transaction_id, Body::Response(Response::new(id)));
            n.handle_datagram(now, observer, None, &r.to_bytes());
            pinged = true;
        }
    }
    assert!(pinged, "the node never pinged the observer");
    let in_table = n
        .routing_table(Family::V6)
        .entries()
        .any(|e| e.node.addr == observer);
    assert!(in_table, "the observer is not in the node's table");
}

/// The honest peers (of `honest`) among 40 get_peers answers to `observer`.
fn honest_seen(
    n: &mut Node<TestStore>,
    now: Instant,
    observer: SocketAddr,
    honest: &[SocketAddr],
) -> usize {
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let r = get_peers(n, now, observer, SWARM);
        seen.extend(r.values.into_iter().filter(|p| honest.contains(p)));
    }
    seen.len()
}

/// Issue 27, finding 1's recipe: 20 honest peers, each in its own /64, announce one
/// info_hash; then 300 announces from 2001:db8:bad::1 to ::12c with one token (tokens
/// are per /64); an observer in the node's table counts honest peers among 40
/// get_peers answers. Before the fix: 256 slots held by the /64, honest kept 0 of 20.
#[test]
fn one_64_announcing_from_many_addresses_holds_one_slot_in_an_ipv6_swarm() {
    let (mut n, now) = node(|_| {});
    // First, while the table has room for it.
    let observer = addr("[2001:db8:0b5e::1]:6881");
    befriend(&mut n, now, observer);
    let honest: Vec<SocketAddr> = (0..20u16)
        .map(|i| SocketAddr::new(format!("2001:db8:1:{i:x}::1").parse().unwrap(), 6881))
        .collect();
    for &h in &honest {
        assert_eq!(announce(&mut n, now, h, SWARM), 0, "{h}");
    }
    let later = now + Duration::from_secs(1);
    let first = addr("[2001:db8:bad::1]:6881");
    let tok = token(&mut n, later, first, SWARM);
    let mut accepted = 0;
    for i in 1..=0x12cu16 {
        let from = SocketAddr::new(format!("2001:db8:bad::{i:x}").parse().unwrap(), 6881);
        if announce_with(&mut n, later, from, SWARM, tok.clone()) == 0 {
            accepted += 1;
        }
    }
    let peers = n.store().get_peers(&SWARM).unwrap();
    let theirs = peers.len() - peers.iter().filter(|p| honest.contains(&p.addr)).count();
    let kept = honest_seen(&mut n, later, observer, &honest);
    println!(
        "finding 1 recipe: {accepted} of 300 announces accepted, the /64 holds {theirs} \
         slot(s), honest kept {kept} of 20"
    );
    assert_eq!(theirs, 1, "one /64 holds {theirs} slots");
    assert_eq!(kept, 20, "honest peers lost");
    // The later announce moved the /64's one slot.
    let last = addr("[2001:db8:bad::12c]:6881");
    assert!(peers.iter().any(|p| p.addr == last));
}

/// A full swarm: one /48 rotating through fresh /64s (each its own source, with its
/// own token) takes the places of its own earlier slots, not the honest peers'.
#[test]
fn one_48_rotating_through_its_64s_does_not_push_honest_peers_out_of_a_full_swarm() {
    let (mut n, now) = node(|c| c.limits.max_peers_per_swarm = 32);
    // Each honest peer in its own /48.
    let honest: Vec<SocketAddr> = (0..20u16)
        .map(|i| {
            SocketAddr::new(
                format!("2001:db8:{:x}::1", 0x100 + i).parse().unwrap(),
                6881,
            )
        })
        .collect();
    for &h in &honest {
        assert_eq!(announce(&mut n, now, h, SWARM), 0, "{h}");
    }
    let later = now + Duration::from_secs(1);
    for i in 0..300u16 {
        let from = SocketAddr::new(format!("2001:db8:bad:{i:x}::1").parse().unwrap(), 6881);
        announce(&mut n, later, from, SWARM);
    }
    let peers = n.store().get_peers(&SWARM).unwrap();
    let kept = peers.iter().filter(|p| honest.contains(&p.addr)).count();
    println!("a /48 rotating through 300 /64s into a full swarm of 32: honest kept {kept} of 20");
    assert_eq!(kept, 20, "honest peers evicted");
    assert_eq!(peers.len(), 32);
    // A newcomer from another network still gets in, in place of the soonest-expiring.
    let late = addr("[2001:db8:beef::1]:6881");
    assert_eq!(announce(&mut n, later, late, SWARM), 0);
    assert!(n
        .store()
        .get_peers(&SWARM)
        .unwrap()
        .iter()
        .any(|p| p.addr == late));
}

/// The peers in a stranger's get_peers reply from an IPv6 swarm of `size`, and the
/// reply's size on the wire.
fn stranger_reply(size: u16) -> (usize, usize) {
    let (mut n, now) = node(|_| {});
    for i in 0..size {
        let from = SocketAddr::new(format!("2001:db8:2:{i:x}::1").parse().unwrap(), 6881);
        assert_eq!(announce(&mut n, now, from, SWARM), 0);
    }
    let stranger = addr("[2001:db8:5::1]:6881");
    let m = Method::get_peers(SWARM).with_want(Default::default());
    let (reply, len, _) = ask(&mut n, now, stranger, m);
    (response(&reply).values.len(), len)
}

/// Issue 27, finding 4's recipe: a stranger's get_peers reply from IPv6 swarms of 20,
/// 25, 30 and 40 peers. Before the fix (a peer counted as 8 bytes, an IPv6 one is 21):
/// 18 / 9 / 1 / 0 peers.
#[test]
fn a_strangers_reply_from_an_ipv6_swarm_carries_as_many_peers_as_fit() {
    let budget = Config::with_seed(0)
        .defense
        .stranger_reply_bytes
        .expect("a stranger budget by default");
    let sizes = [20u16, 25, 30, 40];
    let replies: Vec<(usize, usize)> = sizes.iter().map(|&s| stranger_reply(s)).collect();
    let figures: Vec<String> = sizes
        .iter()
        .zip(&replies)
        .map(|(s, (peers, _))| format!("{s}: {peers}"))
        .collect();
    println!(
        "finding 4 recipe: peers in a stranger's reply by swarm size: {}",
        figures.join(", ")
    );
    for (&size, &(peers, len)) in sizes.iter().zip(&replies) {
        assert!(len <= budget, "{len} bytes");
        if peers < size as usize {
            // Trimmed: one more IPv6 peer (21 bytes) would not have fit.
            assert!(
                len + 21 > budget,
                "{peers} peers in {len} bytes of {budget}"
            );
        }
    }
    let (peers, _) = replies[3];
    assert!(peers >= 8, "{peers} peers from a swarm of 40");
}
