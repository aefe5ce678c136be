//! Routing-table insert and K-closest, at 10,000 nodes.
//!
//! Two shapes: the real one (k = 8 fed 10,000 distinct nodes; the table keeps the
//! ~100 that fit, as on the live network) and a table that really holds 10,000
//! entries (k = 5,000, so no bucket overflows), which stresses `closest` itself.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use dht_core::kernel::RoutingTable;
use dht_core::{Id, NodeInfo};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

const N: usize = 10_000;
const MIN15: Duration = Duration::from_secs(900);

fn nodes(rng: &mut ChaCha8Rng) -> Vec<NodeInfo> {
    (0..N)
        .map(|i| NodeInfo {
            id: Id::random(rng),
            addr: SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881)),
        })
        .collect()
}

fn filled(own: Id, k: usize, ns: &[NodeInfo], now: Instant) -> RoutingTable {
    let mut t = RoutingTable::new(own, k, MIN15, 2, now);
    for n in ns {
        t.on_response(*n, now);
    }
    t
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let own = Id::random(&mut rng);
    let ns = nodes(&mut rng);
    let now = Instant::now();

    c.bench_function("routing/insert 10k nodes (k=8)", |b| {
        b.iter_batched(
            || RoutingTable::new(own, 8, MIN15, 2, now),
            |mut t| {
                for n in &ns {
                    t.on_response(*n, now);
                }
                t
            },
            BatchSize::LargeInput,
        )
    });

    let small = filled(own, 8, &ns, now);
    let big = filled(own, 5_000, &ns, now);
    assert_eq!(big.len(), N, "the big table holds every node");
    let targets: Vec<Id> = (0..1024).map(|_| Id::random(&mut rng)).collect();
    let mut i = 0;
    c.bench_function(
        &format!("routing/closest 8 (k=8, {} entries)", small.len()),
        |b| {
            b.iter(|| {
                i = (i + 1) % targets.len();
                black_box(small.closest(&targets[i], 8, now))
            })
        },
    );
    c.bench_function("routing/closest 8 (10,000 entries)", |b| {
        b.iter(|| {
            i = (i + 1) % targets.len();
            black_box(big.closest(&targets[i], 8, now))
        })
    });
    c.bench_function(
        "routing/on_response of a known node (10,000 entries)",
        |b| {
            let mut t = big.clone();
            b.iter(|| {
                i = (i + 1) % ns.len();
                black_box(t.on_response(ns[i], now))
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
