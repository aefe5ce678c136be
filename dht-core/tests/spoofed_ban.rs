//! Issue 27 finding 8: a flood forged in a victim's name must not get the victim
//! banned. Over-rate queries are dropped from anyone, but only a source that proved
//! its address (it answered a query of ours) is banned. Real datagrams, virtual time.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{TestStore, WALL0};
use dht_core::krpc::{self, Body, Message, Method, Response};
use dht_core::{Config, Id, Node, Request};

fn node() -> (Node<TestStore>, Instant) {
    let now = Instant::now();
    let mut cfg = Config::with_seed(27);
    // Loopback sources get every defense (each test address is its own source).
    cfg.defense.exempt_local = false;
    let n = Node::new(cfg, TestStore::default(), now, WALL0).expect("valid config");
    (n, now)
}

fn ping() -> Vec<u8> {
    Message::query(b"pp".to_vec(), Id([5; 20]), Method::Ping).to_bytes()
}

/// Responses sent to `to` (the node's own queries are left out), all else drained.
fn answers_to(n: &mut Node<TestStore>, to: SocketAddr) -> usize {
    let mut count = 0;
    while let Some(t) = n.poll_transmit() {
        let m = krpc::decode(&t.payload).expect("we send what we can decode");
        if t.to == to && matches!(m.body, Body::Response(_)) {
            count += 1;
        }
    }
    count
}

/// Sends the flood of 350 pings from `from` at `now`; the number answered.
fn flood(n: &mut Node<TestStore>, now: Instant, from: SocketAddr) -> usize {
    (0..350)
        .map(|_| {
            n.handle_datagram(now, from, None, &ping());
            answers_to(n, from)
        })
        .sum()
}

#[test]
fn a_flood_forged_from_an_unproven_address_does_not_ban_it() {
    let (mut n, t0) = node();
    let victim: SocketAddr = "127.50.0.9:4000".parse().unwrap();
    // The forged flood: over-rate pings are still dropped.
    let answered = flood(&mut n, t0, victim);
    assert!(answered <= 101, "{answered} of 350 answered");
    // 4 s later the victim's own ping is answered: it was never banned.
    n.handle_datagram(t0 + Duration::from_secs(4), victim, None, &ping());
    assert_eq!(answers_to(&mut n, victim), 1, "{:?}", n.stats());
    assert_eq!(n.stats().banned, 0);
}

#[test]
fn a_proven_address_that_floods_is_banned() {
    let (mut n, t0) = node();
    let flooder: SocketAddr = "127.50.0.10:4000".parse().unwrap();
    // The node pings it; it answers, proving the address is its own.
    n.start(t0, Request::Ping { addr: flooder })
        .expect("request");
    let q = n.poll_transmit().expect("the node's ping");
    assert_eq!(q.to, flooder);
    let m = krpc::decode(&q.payload).expect("decodes");
    let reply = Message::new(m.transaction_id, Body::Response(Response::new(Id([6; 20]))));
    n.handle_datagram(t0, flooder, None, &reply.to_bytes());
    assert_eq!(n.stats().unexpected_replies, 0, "the reply matched");
    flood(&mut n, t0, flooder);
    assert!(n.stats().banned > 0, "{:?}", n.stats());
    // Banned: its ping 4 s later (its bucket long refilled) is not answered.
    n.handle_datagram(t0 + Duration::from_secs(4), flooder, None, &ping());
    assert_eq!(answers_to(&mut n, flooder), 0);
}

#[test]
fn an_address_that_presented_our_write_token_and_floods_is_banned() {
    let (mut n, t0) = node();
    let flooder: SocketAddr = "127.50.0.11:4000".parse().unwrap();
    // A token only reaches the address it was sent to: presenting it proves the address.
    let get = Method::get_peers(Id([7; 20])).with_want(Default::default());
    let q = Message::query(b"gp".to_vec(), Id([5; 20]), get).to_bytes();
    n.handle_datagram(t0, flooder, None, &q);
    let mut token = None;
    while let Some(t) = n.poll_transmit() {
        if let Ok(Message {
            body: Body::Response(r),
            ..
        }) = krpc::decode(&t.payload)
        {
            token = r.token;
        }
    }
    let token = token.expect("get_peers answered with a token");
    let announce = Method::announce_peer(Id([7; 20]), 6881, token);
    let q = Message::query(b"ap".to_vec(), Id([5; 20]), announce).to_bytes();
    n.handle_datagram(t0, flooder, None, &q);
    assert_eq!(answers_to(&mut n, flooder), 1, "{:?}", n.stats());
    flood(&mut n, t0, flooder);
    assert!(n.stats().banned > 0, "{:?}", n.stats());
    n.handle_datagram(t0 + Duration::from_secs(4), flooder, None, &ping());
    assert_eq!(answers_to(&mut n, flooder), 0);
}
