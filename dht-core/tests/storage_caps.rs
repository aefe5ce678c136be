//! The global storage caps under a flood from many networks, through the public API
//! (issue 27, finding 2): shares aggregated above the address (IPv4 /24 and /16, IPv6
//! /56, /48 and /32), room made fairly at a full cap (the network holding the most
//! gives way, a newcomer from it is refused), and shares scaled below small caps.
//! Each test fails when the rule it names is removed; the recipes print their figures
//! (run with `--nocapture` to see them).
//!
//! Sources are documentation addresses (2001:db8::/32, 3fff::/20, 198.51.100.0/24,
//! 203.0.113.0/24) or made-up public ones: public, so no exemption applies. Nothing
//! leaves the process.

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use common::{TestStore, WALL0};
use dht_core::krpc::{self, Body, Message, Method, PutArgs};
use dht_core::{Config, Id, Item, Node, Store};

fn node(tweak: impl Fn(&mut Config)) -> (Node<TestStore>, Instant) {
    let now = Instant::now();
    let mut cfg = Config::with_seed(2);
    // No rate limit in the way (these tests are about storage), and no exemption
    // whatever the addresses.
    cfg.defense.query_burst = 1e9;
    cfg.defense.exempt_local = false;
    tweak(&mut cfg);
    let n = Node::new(cfg, TestStore::default(), now, WALL0).expect("valid config");
    (n, now)
}

/// The node's one reply to a query from `from` (its own pings of new queriers are
/// left out).
fn ask(n: &mut Node<TestStore>, now: Instant, from: SocketAddr, m: Method) -> Message {
    let q = Message::query(b"sc".to_vec(), Id([3; 20]), m).to_bytes();
    n.handle_datagram(now, from, None, &q);
    let mut reply = None;
    while let Some(t) = n.poll_transmit() {
        let m = krpc::decode(&t.payload).expect("we send what we can decode");
        if !matches!(m.body, Body::Query(_)) {
            assert!(reply.is_none(), "two replies to {from}");
            reply = Some(m);
        }
    }
    reply.expect("a reply")
}

/// A write token for `from`'s source (tokens are per IPv4 address or IPv6 /64).
fn token(n: &mut Node<TestStore>, now: Instant, from: SocketAddr) -> Vec<u8> {
    let m = Method::get_peers(Id::ZERO).with_want(Default::default());
    match ask(n, now, from, m).body {
        Body::Response(r) => r.token.expect("a token"),
        b => panic!("{b:?}"),
    }
}

/// The KRPC error code of the reply, 0 for a response.
fn code_of(m: Message) -> i64 {
    match m.body {
        Body::Error(e) => e.code,
        _ => 0,
    }
}

/// Puts the immutable item numbered `i` from `from` with `tok`.
fn put(n: &mut Node<TestStore>, now: Instant, from: SocketAddr, tok: &[u8], i: u32) -> i64 {
    let value = format!("i{i}e").into_bytes();
    let args = PutArgs::new(tok.to_vec(), Item::Immutable { value });
    code_of(ask(n, now, from, Method::Put(args)))
}

fn ih(i: u32) -> Id {
    let mut b = [0x2a; 20];
    b[..4].copy_from_slice(&i.to_be_bytes());
    Id(b)
}

fn announce(n: &mut Node<TestStore>, now: Instant, from: SocketAddr, tok: &[u8], i: u32) -> i64 {
    let m = Method::announce_peer(ih(i), from.port(), tok.to_vec());
    code_of(ask(n, now, from, m))
}

fn v6(s: String) -> SocketAddr {
    SocketAddr::new(s.parse().unwrap(), 6881)
}

/// Each of `sources` writes `each` new things numbered from `first`; how many were
/// accepted.
fn flood(
    n: &mut Node<TestStore>,
    now: Instant,
    sources: &[SocketAddr],
    each: u32,
    first: u32,
    items: bool,
) -> usize {
    let mut accepted = 0;
    let mut i = first;
    for &from in sources {
        let tok = token(n, now, from);
        for _ in 0..each {
            let c = if items {
                put(n, now, from, &tok, i)
            } else {
                announce(n, now, from, &tok, i)
            };
            if c == 0 {
                accepted += 1;
            }
            i += 1;
        }
    }
    accepted
}

/// Issue 27, finding 2's recipe: 64 /64s (a /58) each put 256 items, then 64 fresh
/// /64s each announce 256 info_hashes; then an honest put and an honest announce of a
/// new info_hash from a fresh /64. Before the fix: 16,384 items and 16,383
/// info_hashes accepted, both honest writes refused with 202.
#[test]
fn one_58_cannot_fill_the_global_caps() {
    let (mut n, now) = node(|_| {});
    let putters: Vec<SocketAddr> = (0..64u32)
        .map(|i| v6(format!("2001:db8:bad:{i:x}::1")))
        .collect();
    let announcers: Vec<SocketAddr> = (64..128u32)
        .map(|i| v6(format!("2001:db8:bad:{i:x}::1")))
        .collect();
    let items = flood(&mut n, now, &putters, 256, 0, true);
    let info_hashes = flood(&mut n, now, &announcers, 256, 0, false);
    let honest = v6("2001:db8:1:1::1".into());
    let tok = token(&mut n, now, honest);
    let honest_put = put(&mut n, now, honest, &tok, 1_000_000);
    let honest_announce = announce(&mut n, now, honest, &tok, 1_000_000);
    println!(
        "finding 2 recipe: {items} items and {info_hashes} info_hashes accepted from a /58; \
         honest put {honest_put}, honest announce {honest_announce} (0: stored)"
    );
    assert_eq!(honest_put, 0, "honest put refused");
    assert_eq!(honest_announce, 0, "honest announce refused");
    // One /56 holds at most its share, well below either cap.
    let limits = Config::default().limits;
    assert!(items <= limits.max_items / 8, "{items} items");
    assert!(info_hashes <= limits.max_info_hashes / 8, "{info_hashes}");
}

/// How many of `entries` the store still holds: items by number, or swarms by number.
fn kept(n: &Node<TestStore>, numbers: &[u32], items: bool) -> usize {
    numbers
        .iter()
        .filter(|&&i| {
            if items {
                let target = Id::sha1(format!("i{i}e").as_bytes());
                n.store().get_item(&target).unwrap().is_some()
            } else {
                !n.store().get_peers(&ih(i)).unwrap().is_empty()
            }
        })
        .count()
}

/// An attacker spread over four provider blocks (IPv6 /32s), each network within its
/// shares, fills both caps after 20 honest sources wrote one item and one swarm each.
/// An honest newcomer's put and announce still get in: the network holding the most
/// gives up an entry, and no honest entry is evicted. Before the fix: both refused
/// with 202.
#[test]
fn a_full_cap_makes_room_from_the_network_holding_the_most() {
    let (mut n, now) = node(|_| {});
    let limits = Config::default().limits;
    // 20 honest sources, each in its own /48.
    let honest: Vec<SocketAddr> = (0..20u32)
        .map(|i| v6(format!("2001:db8:{:x}::1", 0x100 + i)))
        .collect();
    let numbers: Vec<u32> = (1_000_000..1_000_020).collect();
    for (&from, &i) in honest.iter().zip(&numbers) {
        let tok = token(&mut n, now, from);
        assert_eq!(put(&mut n, now, from, &tok, i), 0);
        assert_eq!(announce(&mut n, now, from, &tok, i), 0);
    }
    // 4 /32s x 2 /48s x 2 /56s x 4 /64s: every network at its share fills a cap.
    let mut attackers = Vec::new();
    for p in 0..4u32 {
        for q in 0..2u32 {
            for r in 0..2u32 {
                for s in 0..4u32 {
                    attackers.push(v6(format!("3fff:{p:x}:{q:x}:{:x}::1", (r << 8) | s)));
                }
            }
        }
    }
    let items = flood(&mut n, now, &attackers, 256, 0, true);
    let info_hashes = flood(&mut n, now, &attackers, 256, 0, false);
    let counts = n.store().counts().unwrap();
    assert_eq!(counts.items, limits.max_items, "the item cap is full");
    assert_eq!(
        counts.info_hashes, limits.max_info_hashes,
        "the info_hash cap is full"
    );
    let newcomer = v6("2001:db8:ffff::1".into());
    let tok = token(&mut n, now, newcomer);
    let honest_put = put(&mut n, now, newcomer, &tok, 2_000_000);
    let honest_announce = announce(&mut n, now, newcomer, &tok, 2_000_000);
    let kept_items = kept(&n, &numbers, true);
    let kept_swarms = kept(&n, &numbers, false);
    println!(
        "a /30 over four /32s: {items} items and {info_hashes} info_hashes accepted; honest \
         newcomer put {honest_put}, announce {honest_announce} (0: stored); honest kept \
         {kept_items} of 20 items, {kept_swarms} of 20 swarms; {} evicted",
        n.stats().storage_evicted
    );
    assert_eq!(honest_put, 0, "honest put refused");
    assert_eq!(honest_announce, 0, "honest announce refused");
    assert_eq!(
        (kept_items, kept_swarms),
        (20, 20),
        "honest entries evicted"
    );
    let counts = n.store().counts().unwrap();
    assert_eq!(counts.items, limits.max_items, "the item cap holds");
    assert_eq!(counts.info_hashes, limits.max_info_hashes);
}

/// Small caps: shares scale to half a cap, a newcomer from the network that holds the
/// most is refused at a full cap, one from elsewhere gets in and the biggest holder
/// gives way, and byte caps make room the same way.
#[test]
fn shares_stay_below_small_caps_and_the_biggest_holder_gives_way() {
    // `--max-items 256` with the default share of 256: before the fix one source
    // filled the store and an honest put got 202.
    let (mut n, now) = node(|c| c.limits.max_items = 256);
    let one = "203.0.113.9:6881".parse().unwrap();
    let accepted = flood(&mut n, now, &[one], 300, 0, true);
    let honest: SocketAddr = "198.51.100.7:6881".parse().unwrap();
    let tok = token(&mut n, now, honest);
    let honest_put = put(&mut n, now, honest, &tok, 1_000_000);
    println!("--max-items 256: one source stored {accepted} of 300; honest put {honest_put}");
    assert_eq!(accepted, 128, "a share of half the cap");
    assert_eq!(honest_put, 0);

    // 40 items: a source's share 15, every network's at most 20. One source holds 15,
    // 25 honest sources (each its own /16) one each: the cap is full.
    let (mut n, now) = node(|c| {
        c.limits.max_items = 40;
        c.limits.max_items_per_source = 15;
    });
    assert_eq!(flood(&mut n, now, &[one], 15, 0, true), 15);
    let many: Vec<SocketAddr> = (0..25u8)
        .map(|i| SocketAddr::from(([100 + i, 51, 100, 1], 6881)))
        .collect();
    assert_eq!(flood(&mut n, now, &many, 1, 100, true), 25);
    // The biggest holder, below its share, is refused at the full cap: it would evict
    // an honest source that holds one.
    let tok = token(&mut n, now, one);
    assert_eq!(put(&mut n, now, one, &tok, 1_000), 202);
    // An honest source that holds one, and a newcomer from a fresh network, get in:
    // the biggest holder, with 15, gives way each time.
    let tok = token(&mut n, now, many[0]);
    assert_eq!(put(&mut n, now, many[0], &tok, 1_001), 0);
    let tok = token(&mut n, now, honest);
    assert_eq!(put(&mut n, now, honest, &tok, 1_002), 0);
    assert_eq!(kept(&n, &(100..125).collect::<Vec<_>>(), true), 25);
    assert_eq!(kept(&n, &(0..15).collect::<Vec<_>>(), true), 13);
    assert_eq!(n.store().counts().unwrap().items, 40);

    // Bytes: 64 peers' worth, a network at most half. Two /16s hold 32 peers each; an
    // honest announce from a third takes a peer's room from one of them.
    let (mut n, now) = node(|c| c.limits.max_bytes = 64 * 400);
    let a: SocketAddr = "203.0.113.9:6881".parse().unwrap();
    let b: SocketAddr = "192.0.2.9:6881".parse().unwrap();
    assert_eq!(flood(&mut n, now, &[a, b], 40, 0, false), 64);
    let tok = token(&mut n, now, honest);
    assert_eq!(announce(&mut n, now, honest, &tok, 5_000), 0);
    assert_eq!(n.store().counts().unwrap().peers, 64);
    assert!(n.stats().storage_evicted >= 1);
}

/// `--max-peers-per-swarm 0` made every swarm full, so every announce skipped the
/// info_hash and byte caps (issue 27, low): the node now refuses to start with it.
#[test]
fn a_swarm_limit_of_zero_is_refused_at_start() {
    let mut cfg = Config::with_seed(2);
    cfg.limits.max_peers_per_swarm = 0;
    let n = Node::new(cfg, TestStore::default(), Instant::now(), WALL0);
    assert!(
        matches!(n, Err(dht_core::ConfigError::Invalid(ref m)) if m.contains("max_peers_per_swarm")),
        "{:?}",
        n.err()
    );
}

/// Exempt writers (loopback here, as on a node's own host) have no share, and what
/// they stored never gives way at a full cap: a public newcomer is refused, and a
/// local writer gets room from the public network holding the most.
#[test]
fn local_writers_entries_never_give_way() {
    let (mut n, now) = node(|c| {
        c.defense.exempt_local = true;
        c.limits.max_items = 40;
    });
    let local: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    assert_eq!(flood(&mut n, now, &[local], 40, 0, true), 40, "no share");
    let public: SocketAddr = "198.51.100.7:6881".parse().unwrap();
    let tok = token(&mut n, now, public);
    assert_eq!(put(&mut n, now, public, &tok, 1_000), 202);
    assert_eq!(kept(&n, &(0..40).collect::<Vec<_>>(), true), 40);
    assert_eq!(n.stats().storage_evicted, 0);

    // Half local, half public (20 is a public source's share of a cap of 40): a local
    // put takes the room of one of the public source's items.
    let (mut n, now) = node(|c| {
        c.defense.exempt_local = true;
        c.limits.max_items = 40;
    });
    assert_eq!(flood(&mut n, now, &[local], 20, 0, true), 20);
    assert_eq!(flood(&mut n, now, &[public], 20, 100, true), 20);
    let tok = token(&mut n, now, local);
    assert_eq!(put(&mut n, now, local, &tok, 1_000), 0);
    assert_eq!(kept(&n, &(0..20).collect::<Vec<_>>(), true), 20);
    assert_eq!(kept(&n, &(100..120).collect::<Vec<_>>(), true), 19);
}
