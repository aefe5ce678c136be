//! Reply sizes once the reply byte budget is spent, and a stranger's scrape reply,
//! through real datagrams (issue 27, low items). Replies to nodes in our routing table
//! are still sent when the budget is spent (a flood from spoofed sources must not
//! starve the peers we know), but trimmed to the stranger size: untrimmed, a flood
//! forged in a known node's name reflected up to 1,432 bytes per query to it.
//!
//! Sources are documentation addresses (public, so no exemption applies).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{TestStore, WALL0};
use dht_core::krpc::{self, Body, Message, Method, Response};
use dht_core::{Config, Family, Id, Node, Store};

const SWARM: Id = Id([0x33; 20]);

fn node(tweak: impl Fn(&mut Config)) -> (Node<TestStore>, Instant) {
    let now = Instant::now();
    let mut cfg = Config::with_seed(33);
    cfg.defense.query_burst = 1e9;
    cfg.defense.exempt_local = false;
    tweak(&mut cfg);
    let n = Node::new(cfg, TestStore::default(), now, WALL0).expect("valid config");
    (n, now)
}

fn query(m: Method) -> Vec<u8> {
    Message::query(b"rb".to_vec(), Id([1; 20]), m).to_bytes()
}

/// The replies (not the node's own queries) sent to `to`, with their sizes; all else
/// drained.
fn replies_to(n: &mut Node<TestStore>, to: SocketAddr) -> Vec<(Response, usize)> {
    let mut out = Vec::new();
    while let Some(t) = n.poll_transmit() {
        let m = krpc::decode(&t.payload).expect("we send what we can decode");
        if let (true, Body::Response(r)) = (t.to == to, m.body) {
            out.push((r, t.payload.len()));
        }
    }
    out
}

fn get_peers(
    n: &mut Node<TestStore>,
    now: Instant,
    from: SocketAddr,
    m: Method,
) -> Vec<(Response, usize)> {
    n.handle_datagram(now, from, None, &query(m));
    replies_to(n, from)
}

/// A swarm of 40 IPv6 peers, each in its own /64, one a second (a small reply budget
/// refills); the time after the last.
fn fill_swarm(n: &mut Node<TestStore>, start: Instant) -> Instant {
    let mut now = start;
    for i in 0..40u16 {
        now += Duration::from_secs(1);
        let from = SocketAddr::new(format!("2001:db8:2:{i:x}::1").parse().unwrap(), 6881);
        let (r, _) = get_peers(n, now, from, Method::get_peers(SWARM)).remove(0);
        let tok = r.token.expect("a token");
        n.handle_datagram(
            now,
            from,
            None,
            &query(Method::announce_peer(SWARM, 6881, tok)),
        );
        assert_eq!(replies_to(n, from).len(), 1, "announce {i} answered");
    }
    assert_eq!(n.store().get_peers(&SWARM).unwrap().len(), 40);
    now + Duration::from_secs(1)
}

/// Puts `observer` into the node's IPv6 table: it queries, the node pings it back, it
/// answers.
fn befriend(n: &mut Node<TestStore>, now: Instant, observer: SocketAddr) {
    let id = Id([0x0b; 20]);
    let ping = Message::query(b"bf".to_vec(), id, Method::Ping).to_bytes();
    n.handle_datagram(now, observer, None, &ping);
    while let Some(t) = n.poll_transmit() {
        let m = krpc::decode(&t.payload).unwrap();
        if t.to == observer && matches!(m.body, Body::Query(_)) {
            let r = Message::new(m.transaction_id, Body::Response(Response::new(id)));
            n.handle_datagram(now, observer, None, &r.to_bytes());
        }
    }
    assert!(n
        .routing_table(Family::V6)
        .entries()
        .any(|e| e.node.addr == observer));
}

#[test]
fn a_known_nodes_reply_is_trimmed_once_the_budget_is_spent() {
    // A budget of 4 kB/s, and no time passes: it is spent within a few replies.
    let (mut n, now) = node(|c| c.defense.reply_bytes_per_sec = Some(4_000));
    let observer: SocketAddr = "[2001:db8:b5e::1]:6881".parse().unwrap();
    befriend(&mut n, now, observer);
    let now = fill_swarm(&mut n, now);
    // Strangers spend the budget.
    for i in 0..40u16 {
        let from = SocketAddr::new(format!("2001:db8:9:{i:x}::1").parse().unwrap(), 6881);
        get_peers(&mut n, now, from, Method::get_peers(SWARM));
    }
    assert!(n.stats().budget_dropped > 0, "the budget is spent");
    let limit = n
        .config()
        .defense
        .stranger_reply_bytes
        .expect("a stranger size");
    let replies = get_peers(&mut n, now, observer, Method::get_peers(SWARM));
    let sizes: Vec<usize> = replies.iter().map(|(_, len)| *len).collect();
    println!("a node in our table, budget spent: replies of {sizes:?} bytes (limit {limit})");
    assert_eq!(replies.len(), 1, "the known node is still answered");
    let (r, len) = &replies[0];
    assert!(
        *len <= limit,
        "{len} bytes to a known node with the budget spent"
    );
    assert!(!r.values.is_empty(), "peers kept as far as they fit");
}

#[test]
fn a_known_nodes_reply_is_whole_while_the_budget_lasts() {
    let (mut n, now) = node(|_| {});
    let observer: SocketAddr = "[2001:db8:b5e::1]:6881".parse().unwrap();
    befriend(&mut n, now, observer);
    let now = fill_swarm(&mut n, now);
    let (r, len) = get_peers(&mut n, now, observer, Method::get_peers(SWARM)).remove(0);
    assert_eq!(r.values.len(), 40, "{len} bytes");
}

/// BEP 33 filters are kept in a stranger's reply (why: a scrape's lookup asks nodes it
/// never met, and the filters are its answer); everything else is trimmed, so the
/// reply stays about 600 bytes.
#[test]
fn a_strangers_scrape_reply_keeps_its_filters_and_nothing_else() {
    let (mut n, now) = node(|_| {});
    let now = fill_swarm(&mut n, now);
    let stranger: SocketAddr = "[2001:db8:5::1]:6881".parse().unwrap();
    let m = Method::get_peers(SWARM).with_scrape(true);
    let q = query(m.clone()).len();
    let (r, len) = get_peers(&mut n, now, stranger, m).remove(0);
    println!("a stranger's scrape: {q} bytes in, {len} out");
    assert!(r.bf_seeds.is_some() && r.bf_peers.is_some());
    assert!(r.values.is_empty() && r.nodes.is_empty() && r.nodes6.is_empty());
    assert!(len <= 640, "{len} bytes");
}
