//! The per-source rate limiter's cost per datagram under a spoofed flood: 100,000
//! sources, more than the table tracks (65,536), every one active, so each new source
//! finds the table full; and a whole node's `handle_datagram` for a ping from such a
//! flood (ban check, decode, limiter, reply).
//!
//! Run: `cargo bench -p dht-core --bench limiter`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dht_core::internals::RateLimiter;
use dht_core::krpc::{Message, Method};
use dht_core::{Config, Defense, Id, Node};
use dht_store_mem::MemStore;

const SOURCES: u32 = 100_000;

/// Public-looking spoofed sources (no exemption): 100,000 addresses in 44.0.0.0/8.
fn source(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x2c00_0000 + i))
}

fn limiter(c: &mut Criterion) {
    let d = Defense::default();
    let mut rl = RateLimiter::new();
    let t0 = Instant::now();
    // Fill the table: every source active (a query each within the last second).
    for i in 0..SOURCES {
        rl.check(source(i), t0, &d);
    }
    let mut i = 0u32;
    let mut now = t0;
    c.bench_function("limiter check, 100k active spoofed sources", |b| {
        b.iter(|| {
            i = (i + 1) % SOURCES;
            // Time creeps forward 1 ns a query, so every source stays active (an
            // idle source would be an easy place to take): the worst case.
            now += Duration::from_nanos(1);
            black_box(rl.check(source(i), now, &d))
        })
    });
}

fn node_datagram(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut n = Node::new(
        Config::with_seed(1),
        MemStore::default(),
        t0,
        1_800_000_000_000,
    )
    .expect("valid config");
    let ping = Message::query(b"aa".to_vec(), Id([7; 20]), Method::Ping).to_bytes();
    let mut i = 0u32;
    let mut now = t0;
    for j in 0..SOURCES {
        n.handle_datagram(t0, SocketAddr::new(source(j), 6881), None, &ping);
        while let Some(t) = n.poll_transmit() {
            n.recycle(t.payload);
        }
    }
    c.bench_function("node handle_datagram ping, 100k spoofed sources", |b| {
        b.iter(|| {
            i = (i + 1) % SOURCES;
            now += Duration::from_nanos(1);
            n.handle_datagram(now, SocketAddr::new(source(i), 6881), None, &ping);
            while let Some(t) = n.poll_transmit() {
                n.recycle(t.payload);
            }
        })
    });
}

criterion_group!(benches, limiter, node_datagram);
criterion_main!(benches);
