//! Two figures about a node under hostile traffic, printed (this is a measurement, not a
//! test):
//! 1. memory of a node flooded with queries from 10,000 spoofed source addresses
//!    (defenses on, loopback exemption off so the 127.x.y.z sources count as public);
//! 2. amplification: bytes out per byte in for each query type, from a node with a full
//!    routing table, a stored item and a swarm.
//!
//! `cargo run --release -p dht-node --example flood`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_core::krpc::{Body, Message, Method, PutArgs, Want};
use dht_core::Id;
use dht_core::MutableItem;
use dht_core::{Config, Node, NodeInfo};
use dht_node::dht_core;
use dht_store_mem::MemStore as Mem;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn query(id: Id, t: u32, method: Method) -> Vec<u8> {
    Message::query(t.to_be_bytes().to_vec(), id, method).to_bytes()
}

fn spoofed(i: u32) -> SocketAddr {
    SocketAddr::from(([127, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881))
}

fn flood() {
    let t0 = Instant::now();
    let mut cfg = Config::with_seed(1);
    cfg.defense.exempt_local = false;
    let mut node = Node::new(cfg, Mem::new(), t0, 1_800_000_000_000).expect("valid config");
    let before = rss_bytes();
    let mut sent_back = 0usize;
    // Each source sends a burst: find_node, get_peers, an announce with a bad token and
    // a ping, 10 rounds, all within one second (the node sees a new address each time).
    for round in 0..10u32 {
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_micros((round * 10_000 + i) as u64 * 10);
            let from = spoofed(i);
            let id = Id::sha1(&i.to_be_bytes());
            let m = match i % 4 {
                0 => Method::find_node(id),
                1 => Method::get_peers(id),
                2 => Method::announce_peer(id, 1, b"bad".to_vec()),
                _ => Method::Ping,
            };
            node.handle_datagram(now, from, None, &query(id, round, m));
            while let Some(t) = node.poll_transmit() {
                sent_back += t.payload.len();
            }
        }
        node.handle_timeout(t0 + Duration::from_millis(100 * (round as u64 + 1)));
        while node.poll_transmit().is_some() {}
    }
    let after = rss_bytes();
    let s = node.stats();
    println!("flood from 10,000 spoofed addresses, 100,000 queries in 1 s:");
    println!(
        "  node memory growth {:.1} KiB (RSS {} -> {} bytes); routing entries v4 {}, replacement cache {}",
        (after.saturating_sub(before)) as f64 / 1024.0,
        before,
        after,
        node.routing_table(dht_core::Family::V4).len(),
        node.routing_table(dht_core::Family::V4).replacement_len()
    );
    println!(
        "  answered {} queries, rate-limited {}, banned {}, reply budget dropped {}, bytes sent {}",
        s.queries_answered, s.rate_limited, s.banned, s.budget_dropped, sent_back
    );
}

fn amplification() {
    let t0 = Instant::now();
    // Defenses as on the public DHT: the 10.x addresses below count as public.
    let mut cfg = Config::with_seed(2);
    cfg.defense.exempt_local = false;
    let mut node = Node::new(cfg, Mem::new(), t0, 1_800_000_000_000).expect("valid config");
    // A full table: 8 contacts in each of 24 buckets, admitted by answering pings.
    let own = node.id();
    let mut rng_state = 7u64;
    let mut next = || {
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        rng_state
    };
    let mut contacts = Vec::new();
    for b in 0..24 {
        for j in 0..8u32 {
            let mut raw = [0u8; 20];
            for chunk in raw.chunks_mut(8) {
                let v = next().to_be_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            let mut id = Id(raw);
            for bit in 0..=b {
                let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
                let want = if bit == b {
                    !own.0[byte] & mask
                } else {
                    own.0[byte] & mask
                };
                id.0[byte] = (id.0[byte] & !mask) | want;
            }
            contacts.push(NodeInfo {
                id,
                addr: SocketAddr::from(([10, b as u8, j as u8, 1], 6881)),
            });
        }
    }
    for c in &contacts {
        node.handle_datagram(t0, c.addr, None, &query(c.id, 1, Method::Ping));
        while let Some(t) = node.poll_transmit() {
            if let Ok(m) = dht_core::krpc::decode(&t.payload) {
                if let Body::Query(_) = m.body {
                    let r = Message::new(
                        m.transaction_id,
                        Body::Response(dht_core::krpc::Response::new(c.id)),
                    );
                    node.handle_datagram(t0, t.to, None, &r.to_bytes());
                }
            }
        }
    }
    // A swarm of 100 peers and a mutable item with a 1000-byte value.
    let ih = Id::sha1(b"swarm");
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let mut value = b"996:".to_vec();
    value.extend(std::iter::repeat_n(b'v', 996));
    let item = MutableItem::sign(&key, b"", 1, &value);
    for i in 0..100u32 {
        let from = SocketAddr::from(([10, 8, (i >> 8) as u8, i as u8], 7000));
        node.handle_datagram(
            t0,
            from,
            None,
            &query(Id([1; 20]), 1, Method::get_peers(ih)),
        );
        let token = match node
            .poll_transmit()
            .and_then(|t| dht_core::krpc::decode(&t.payload).ok())
        {
            Some(Message {
                body: Body::Response(r),
                ..
            }) => r.token.unwrap_or_default(),
            _ => Vec::new(),
        };
        node.handle_datagram(
            t0,
            from,
            None,
            &query(
                Id([1; 20]),
                2,
                Method::announce_peer(ih, 7000, token.clone()),
            ),
        );
        if i == 0 {
            let put = Method::Put(PutArgs::new(token, dht_core::Item::Mutable(item.clone())));
            node.handle_datagram(t0, from, None, &query(Id([1; 20]), 3, put));
        }
        while node.poll_transmit().is_some() {}
    }
    println!(
        "amplification (a node with {} contacts, a 100-peer swarm, a 1000-byte item), bytes in -> bytes out:",
        node.routing_table(dht_core::Family::V4).len()
    );
    let stranger = SocketAddr::from(([10, 7, 7, 7], 6881));
    let cases: Vec<(&str, Method)> = vec![
        ("ping", Method::Ping),
        ("find_node", Method::find_node(Id([0x55; 20]))),
        (
            "find_node want n4+n6",
            Method::find_node(Id([0x55; 20])).with_want(Want { v4: true, v6: true }),
        ),
        ("get_peers (swarm)", Method::get_peers(ih)),
        ("get_peers (unknown)", Method::get_peers(Id([0x66; 20]))),
        ("get (1000-byte item)", Method::get(item.target())),
        (
            "sample_infohashes",
            Method::sample_infohashes(Id([0x77; 20])),
        ),
        (
            "announce_peer (bad token)",
            Method::announce_peer(ih, 1, b"x".to_vec()),
        ),
    ];
    for (name, m) in cases {
        let q = query(Id([9; 20]), 9, m);
        node.handle_datagram(t0, stranger, None, &q);
        let mut out = 0;
        while let Some(t) = node.poll_transmit() {
            if t.to == stranger {
                out += t.payload.len();
            }
        }
        println!(
            "  {name:<28} {:>4} -> {:>5} bytes  x{:.1}",
            q.len(),
            out,
            out as f64 / q.len() as f64
        );
    }
}

fn main() {
    flood();
    amplification();
}
