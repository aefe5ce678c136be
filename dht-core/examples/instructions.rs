//! Fixed, deterministic workloads to count instructions with callgrind, so that two
//! builds of the engine can be compared exactly whatever else the machine is doing
//! (wall-clock benches on 2 shared cores are noisy):
//!
//! ```sh
//! cargo build --release -p dht-core --example instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/instructions codec      # or routing, serve
//! ```
//!
//! `codec`: 20,000 decodes and re-encodes of six KRPC messages. `routing`: 10,000
//! contacts offered to a k = 8 table, 20,000 queries noted, 20,000 closest-8 lookups.
//! `serve`: one node answers 20,000 queries (ping, find_node, get_peers, get) from
//! 64 sources, drained as a runtime would. It uses only API that older builds have too,
//! so the same file measures a checkout of an earlier commit (the routing table's
//! import excepted: before `dht_core::kernel` it was `dht_core::RoutingTable`, and
//! `cargo xtask perf` rewrites that line in such a checkout's copy).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_core::kernel::RoutingTable;
use dht_core::{krpc, Config, Id, Node, NodeInfo};
use dht_store_mem::MemStore;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ROUNDS: usize = 20_000;

fn bstr(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(format!("{}:", b.len()).as_bytes());
    out.extend_from_slice(b);
}

/// A bencoded query `q` with arguments `args` (already bencoded key/value pairs, sorted).
fn query(t: &[u8], q: &str, id: &[u8; 20], args: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut a = Vec::new();
    a.push(b'd');
    let mut all: Vec<(&str, Vec<u8>)> = vec![("id", {
        let mut v = Vec::new();
        bstr(&mut v, id);
        v
    })];
    all.extend(args.iter().cloned());
    all.sort_by(|x, y| x.0.cmp(y.0));
    for (k, v) in all {
        bstr(&mut a, k.as_bytes());
        a.extend_from_slice(&v);
    }
    a.push(b'e');
    let mut m = b"d1:a".to_vec();
    m.extend_from_slice(&a);
    m.extend_from_slice(b"1:q");
    bstr(&mut m, q.as_bytes());
    m.extend_from_slice(b"1:t");
    bstr(&mut m, t);
    m.extend_from_slice(b"1:y1:qe");
    m
}

fn bytes_arg(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    bstr(&mut v, b);
    v
}

fn queries(rng: &mut ChaCha8Rng) -> Vec<Vec<u8>> {
    let mut id = [0u8; 20];
    rng.fill_bytes(&mut id);
    let mut target = [0u8; 20];
    rng.fill_bytes(&mut target);
    vec![
        query(b"aa01", "ping", &id, &[]),
        query(b"aa02", "find_node", &id, &[("target", bytes_arg(&target))]),
        query(
            b"aa03",
            "get_peers",
            &id,
            &[("info_hash", bytes_arg(&target))],
        ),
        query(b"aa04", "get", &id, &[("target", bytes_arg(&target))]),
    ]
}

fn replies() -> Vec<Vec<u8>> {
    let mut nodes = Vec::new();
    for i in 0..8u8 {
        nodes.extend_from_slice(&[0x10 + i; 20]);
        nodes.extend_from_slice(&[203, 0, 113, i, 0x1a, 0xe1]);
    }
    let mut find_node = b"d1:rd2:id20:".to_vec();
    find_node.extend_from_slice(&[9; 20]);
    find_node.extend_from_slice(b"5:nodes");
    bstr(&mut find_node, &nodes);
    find_node.extend_from_slice(b"e1:t4:tx011:y1:re");
    let mut peers = b"d1:rd2:id20:".to_vec();
    peers.extend_from_slice(&[9; 20]);
    peers.extend_from_slice(b"5:token8:abcdefgh6:valuesl");
    for i in 0..20u8 {
        bstr(&mut peers, &[198, 51, 100, i, 0x1a, 0xe1]);
    }
    peers.extend_from_slice(b"ee1:t4:tx011:y1:re");
    vec![find_node, peers]
}

fn codec() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut all = queries(&mut rng);
    all.extend(replies());
    let mut buf = Vec::with_capacity(2048);
    let mut total = 0usize;
    for _ in 0..ROUNDS {
        for bytes in &all {
            let m = krpc::decode(black_box(bytes)).expect("a valid message");
            buf.clear();
            m.encode(&mut buf);
            total += buf.len();
        }
    }
    println!("codec: {total} bytes encoded");
}

fn routing() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let now = Instant::now();
    let own = Id::random(&mut rng);
    let mut t = RoutingTable::new(own, 8, Duration::from_secs(900), 2, now);
    let nodes: Vec<NodeInfo> = (0..10_000u32)
        .map(|i| NodeInfo {
            id: Id::random(&mut rng),
            addr: SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881)),
        })
        .collect();
    for n in &nodes {
        t.on_response(*n, now);
    }
    for i in 0..ROUNDS {
        t.on_query(nodes[i % nodes.len()], now);
    }
    let mut found = 0;
    for _ in 0..ROUNDS {
        let target = Id::random(&mut rng);
        found += black_box(t.closest(&target, 8, now)).len();
    }
    println!("routing: {} in table, {found} found", t.len());
}

fn serve() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let now = Instant::now();
    let mut node = Node::new(
        Config::with_seed(3),
        MemStore::new(),
        now,
        1_700_000_000_000,
    )
    .expect("a valid config");
    let sources: Vec<SocketAddr> = (0..64u16)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], 10_000 + i)))
        .collect();
    let all = queries(&mut rng);
    let mut answered = 0;
    for i in 0..ROUNDS {
        let from = sources[i % sources.len()];
        node.handle_datagram(now, from, None, &all[i % all.len()]);
        while let Some(t) = node.poll_transmit() {
            answered += 1;
            node.recycle(t.payload);
        }
        while node.poll_event().is_some() {}
    }
    println!("serve: {answered} datagrams sent for {ROUNDS} queries");
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("codec") => codec(),
        Some("routing") => routing(),
        Some("serve") => serve(),
        _ => {
            eprintln!("usage: instructions codec|routing|serve");
            std::process::exit(2);
        }
    }
}
