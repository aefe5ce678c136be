//! Store operations, `MemStore` and `SledStore` side by side:
//! `cargo bench -p dht-store-sled --bench store -- --warm-up-time 1 --measurement-time 2`.
//!
//! The sled store runs as a node runs it: in a data dir on disk, with the default
//! 500 ms background flush, and never an explicit `flush` in the measured loop; a
//! put or announce includes sled's flush (it is durable when it returns).
//!
//! `put_item_group_64` and `put_peer_group_64` measure group commit as a node's
//! runtime uses it: 64 puts (a receive batch of writes) and one [`Store::commit`] run
//! to the end, the time divided by 64: the amortized cost of one durable put.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use dht_core::Id;
use dht_core::{Item, MutableItem, Store, StoredItem, StoredPeer, UnixMillis};
use dht_store_mem::MemStore;
use dht_store_sled::SledStore;
use tempfile::TempDir;

const FAR: UnixMillis = u64::MAX / 2;

fn id(i: u32) -> Id {
    // Spread over the id space, as SHA-1 targets are.
    let mut x = [0u8; 20];
    x[..4].copy_from_slice(&i.wrapping_mul(0x9e37_79b9).to_be_bytes());
    x[4..8].copy_from_slice(&i.to_be_bytes());
    Id(x)
}

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881))
}

/// A mutable item of typical size: a 200-byte value.
fn item(i: u32, expires_at: UnixMillis) -> StoredItem {
    StoredItem {
        target: id(i),
        item: Item::Mutable(MutableItem {
            key: [1; 32],
            signature: [2; 64],
            seq: i64::from(i),
            salt: Vec::new(),
            value: vec![b'x'; 200],
        }),
        expires_at,
    }
}

fn peer(i: u32, expires_at: UnixMillis) -> StoredPeer {
    StoredPeer {
        addr: addr(i),
        expires_at,
        seed: false,
    }
}

/// A fresh store of each kind; the sled one keeps its temporary dir alive.
fn stores() -> Vec<(&'static str, Box<dyn Store>, Option<TempDir>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sled = SledStore::open(dir.path()).expect("open sled store");
    vec![
        ("mem", Box::new(MemStore::new()), None),
        ("sled", Box::new(sled), Some(dir)),
    ]
}

fn put_get_item(c: &mut Criterion) {
    let mut put = c.benchmark_group("put_item");
    for (name, mut store, _dir) in stores() {
        let mut i = 0u32;
        put.bench_function(name, |b| {
            b.iter(|| {
                // 10,000 targets: inserts first, replacements after.
                i = (i + 1) % 10_000;
                store.put_item(item(i, FAR)).unwrap();
            })
        });
    }
    put.finish();

    let mut get = c.benchmark_group("get_item");
    for (name, mut store, _dir) in stores() {
        for i in 0..10_000 {
            store.put_item(item(i, FAR)).unwrap();
        }
        let mut i = 0u32;
        get.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 7919) % 10_000;
                black_box(store.get_item(&id(i)).unwrap());
            })
        });
    }
    get.finish();
}

fn put_get_peers(c: &mut Criterion) {
    let mut put = c.benchmark_group("put_peer");
    for (name, mut store, _dir) in stores() {
        let mut i = 0u32;
        put.bench_function(name, |b| {
            b.iter(|| {
                // 200 info_hashes with 50 peers each.
                i = (i + 1) % 10_000;
                store.put_peer(&id(i % 200), peer(i / 200, FAR)).unwrap();
            })
        });
    }
    put.finish();

    let mut get = c.benchmark_group("get_peers_50");
    for (name, mut store, _dir) in stores() {
        for i in 0..10_000 {
            store.put_peer(&id(i % 200), peer(i / 200, FAR)).unwrap();
        }
        let mut i = 0u32;
        get.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % 200;
                let peers = store.get_peers(&id(i)).unwrap();
                debug_assert_eq!(peers.len(), 50);
                black_box(peers);
            })
        });
    }
    get.finish();
}

/// One sweep removing 1,000 expired entries (500 items, 500 peers) from a store of
/// 10,000; the expired ones are put back, untimed, before each sweep.
fn expire_sweep(c: &mut Criterion) {
    let mut group = c.benchmark_group("expire_1000_of_10000");
    group.sample_size(10);
    for (name, mut store, _dir) in stores() {
        for i in 0..4_500 {
            store.put_item(item(i, FAR)).unwrap();
            store.put_peer(&id(i % 100), peer(i, FAR)).unwrap();
        }
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    for i in 0..500 {
                        store.put_item(item(100_000 + i, 100)).unwrap();
                        store
                            .put_peer(&id(i % 100), peer(100_000 + i, 100))
                            .unwrap();
                    }
                    let start = Instant::now();
                    let removed = store.expire(100).unwrap();
                    spent += start.elapsed();
                    assert_eq!(removed, (500, 500));
                }
                spent
            })
        });
    }
    group.finish();
}

/// Puts in one group commit: a receive batch of writes.
const GROUP: u32 = 64;

/// Durable puts under group commit: [`GROUP`] puts, then one commit run to its end;
/// reported per put.
fn group_commit(c: &mut Criterion) {
    for (what, peers) in [("put_item_group_64", false), ("put_peer_group_64", true)] {
        let mut group = c.benchmark_group(what);
        for (name, mut store, _dir) in stores() {
            // The first commit switches the store to group commit.
            if let Some(commit) = store.commit() {
                commit.run().unwrap();
            }
            let mut i = 0u32;
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        for _ in 0..GROUP {
                            i = (i + 1) % 10_000;
                            if peers {
                                store.put_peer(&id(i % 200), peer(i / 200, FAR)).unwrap();
                            } else {
                                store.put_item(item(i, FAR)).unwrap();
                            }
                        }
                        if let Some(commit) = store.commit() {
                            commit.run().unwrap();
                        }
                    }
                    start.elapsed() / GROUP
                })
            });
        }
        group.finish();
    }
}

criterion_group!(
    benches,
    put_get_item,
    put_get_peers,
    expire_sweep,
    group_commit
);
criterion_main!(benches);
