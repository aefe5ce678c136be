//! Crash test, in the style of sled's own: this test binary re-runs itself as a child
//! that writes through a `SledStore`, and the parent kills it with SIGKILL at a random
//! moment, reopens the data dir and checks it against a model.
//!
//! The child applies a seeded, deterministic sequence of operations; after each
//! `flush` it appends the index of the last operation to a side file and fsyncs it.
//! After the kill the reopened store must open cleanly (every record decodes, the
//! deadline index matches) and equal the model after some prefix of the operations
//! that is at least as long as the last index in the side file: nothing flushed is
//! lost, and no operation is half-applied. The data dir carries over from cycle to
//! cycle, so recovery of a recovered store is tested too.
//!
//! Every other cycle the child runs under group commit, as a node does: its `Flush`
//! operations become [`Store::commit`]s run on a thread of their own while it goes
//! on writing (one at a time), and the index is recorded only once the commit
//! returned `Ok`: what a node acknowledges after a commit survives the kill too.
//!
//! `DHT_CRASH_CYCLES` sets the number of cycles (default 100), `DHT_CRASH_SEED` the
//! seed (a failure prints it).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use dht_core::Id;
use dht_core::NodeInfo;
use dht_core::{
    Item, MutableItem, RoutingSnapshot, SnapshotNode, Store, StoreCounts, StoredItem, StoredPeer,
    UnixMillis,
};
use dht_datadir::testing::{
    env_or, is_child, kill_after, kill_one_second_after, operations_recorded, rerun,
};
use dht_store_mem::MemStore;
use dht_store_sled::SledStore;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CHILD_DIR: &str = "DHT_CRASH_CHILD_DIR";
const CHILD_SEED: &str = "DHT_CRASH_CHILD_SEED";
const CHILD_DURABLE: &str = "DHT_CRASH_CHILD_DURABLE";
/// Set for a child that runs under group commit.
const CHILD_GROUP: &str = "DHT_CRASH_CHILD_GROUP";
/// The child stops by itself after this many operations if nobody kills it.
const CHILD_MAX_OPS: usize = 200_000;
const BOUND_CHILD_DIR: &str = "DHT_BOUND_CHILD_DIR";
const BOUND_OPS: usize = 2000;
const NODE_ID: Id = Id([0x42; 20]);

#[derive(Debug, Clone)]
enum Op {
    PutItem(StoredItem),
    RemoveItem(Id),
    PutPeer(Id, StoredPeer),
    RemovePeer(Id, SocketAddr),
    Expire(UnixMillis),
    SaveRouting(RoutingSnapshot),
    Flush,
}

/// The seeded operation sequence, the same in the child and the parent.
struct Ops {
    rng: ChaCha8Rng,
    targets: Vec<Id>,
    hashes: Vec<Id>,
    addrs: Vec<SocketAddr>,
    now: UnixMillis,
}

impl Ops {
    fn new(seed: u64) -> Ops {
        // Pools are fixed across cycles (seed 0) so that cycles replace, refresh and
        // remove what earlier ones wrote.
        let mut pool = ChaCha8Rng::seed_from_u64(0);
        let targets = (0..32).map(|_| Id::random(&mut pool)).collect();
        let hashes = (0..8).map(|_| Id::random(&mut pool)).collect();
        let addrs = (0..12u16)
            .map(|i| {
                if i % 3 == 0 {
                    format!("[2001:db8::{i}]:{}", 6881 + i).parse().unwrap()
                } else {
                    format!("10.0.{i}.1:{}", 6881 + i).parse().unwrap()
                }
            })
            .collect();
        Ops {
            rng: ChaCha8Rng::seed_from_u64(seed),
            targets,
            hashes,
            addrs,
            now: 1_000_000 + (seed % 1000) * 1000,
        }
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.rng.next_u32() as usize % from.len()]
    }

    fn next(&mut self) -> Op {
        let deadline = self.now + u64::from(self.rng.next_u32() % 3000);
        match self.rng.next_u32() % 100 {
            0..=24 => {
                let target = self.pick(&self.targets.clone());
                let mut value = vec![0u8; (self.rng.next_u32() % 300) as usize];
                self.rng.fill_bytes(&mut value);
                let item = if self.rng.next_u32() & 1 == 0 {
                    Item::Mutable(MutableItem {
                        key: [self.rng.next_u32() as u8; 32],
                        signature: [self.rng.next_u32() as u8; 64],
                        seq: i64::from(self.rng.next_u32()),
                        salt: vec![7; (self.rng.next_u32() % 3) as usize * 8],
                        value,
                    })
                } else {
                    Item::Immutable { value }
                };
                Op::PutItem(StoredItem {
                    target,
                    item,
                    expires_at: deadline,
                })
            }
            25..=34 => Op::RemoveItem(self.pick(&self.targets.clone())),
            35..=69 => {
                let ih = self.pick(&self.hashes.clone());
                let addr = self.pick(&self.addrs.clone());
                Op::PutPeer(
                    ih,
                    StoredPeer {
                        addr,
                        expires_at: deadline,
                        // Seeds too: their records are a byte longer (BEP 33 flags).
                        seed: deadline.is_multiple_of(2),
                    },
                )
            }
            70..=79 => Op::RemovePeer(
                self.pick(&self.hashes.clone()),
                self.pick(&self.addrs.clone()),
            ),
            80..=87 => {
                self.now += u64::from(self.rng.next_u32() % 500);
                Op::Expire(self.now)
            }
            88..=91 => {
                let n = self.rng.next_u32() % 20;
                let nodes = (0..n)
                    .map(|i| SnapshotNode {
                        node: NodeInfo {
                            id: Id::random(&mut self.rng),
                            addr: format!("192.0.2.{i}:{}", 1000 + i).parse().unwrap(),
                        },
                        last_seen: self.now,
                    })
                    .collect();
                Op::SaveRouting(RoutingSnapshot {
                    node_id: Some(NODE_ID),
                    nodes,
                })
            }
            _ => Op::Flush,
        }
    }
}

fn apply(store: &mut impl Store, op: &Op) {
    match op {
        Op::PutItem(item) => store.put_item(item.clone()).unwrap(),
        Op::RemoveItem(t) => {
            store.remove_item(t).unwrap();
        }
        Op::PutPeer(ih, p) => store.put_peer(ih, *p).unwrap(),
        Op::RemovePeer(ih, a) => {
            store.remove_peer(ih, a).unwrap();
        }
        Op::Expire(now) => {
            store.expire(*now).unwrap();
        }
        Op::SaveRouting(s) => store.save_routing(s).unwrap(),
        Op::Flush => store.flush().unwrap(),
    }
}

/// Everything a store holds, over the pools the operations use.
#[derive(Debug, PartialEq, Eq)]
struct Dump {
    counts: StoreCounts,
    items: Vec<Option<StoredItem>>,
    peers: Vec<Vec<StoredPeer>>,
    info_hashes: Vec<Id>,
    routing: Option<RoutingSnapshot>,
}

fn dump(store: &impl Store, ops: &Ops) -> Dump {
    Dump {
        counts: store.counts().unwrap(),
        items: ops
            .targets
            .iter()
            .map(|t| store.get_item(t).unwrap())
            .collect(),
        peers: ops
            .hashes
            .iter()
            .map(|h| store.get_peers(h).unwrap())
            .collect(),
        info_hashes: store.info_hashes(&Id::ZERO, usize::MAX).unwrap(),
        routing: store.load_routing().unwrap(),
    }
}

/// A model holding exactly what `d` holds.
fn model_of(d: &Dump, ops: &Ops) -> MemStore {
    let mut m = MemStore::new();
    for it in d.items.iter().flatten() {
        m.put_item(it.clone()).unwrap();
    }
    for (ih, peers) in ops.hashes.iter().zip(&d.peers) {
        for p in peers {
            m.put_peer(ih, *p).unwrap();
        }
    }
    if let Some(r) = &d.routing {
        m.save_routing(r).unwrap();
    }
    m
}

/// The child's role: a no-op unless the parent set the environment.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED).unwrap().parse().unwrap();
    let durable_path = std::env::var(CHILD_DURABLE).unwrap();
    let mut durable = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&durable_path)
        .unwrap();
    let mut store = SledStore::open(Path::new(&dir)).unwrap();
    if store.node_id().unwrap().is_none() {
        store.set_node_id(NODE_ID).unwrap();
    }
    let mut record = |i: usize| {
        writeln!(durable, "{i}").unwrap();
        durable.sync_data().unwrap();
    };
    let mut ops = Ops::new(seed);
    if std::env::var(CHILD_GROUP).is_ok() {
        // The first commit switches the store to group commit.
        if let Some(c) = store.commit() {
            c.run().unwrap();
        }
        let mut in_flight: Option<(usize, std::thread::JoinHandle<()>)> = None;
        for i in 0..CHILD_MAX_OPS {
            let op = ops.next();
            if !matches!(op, Op::Flush) {
                apply(&mut store, &op);
                continue;
            }
            // As the runtime does: one commit at a time; what it covers is durable
            // once it returned Ok.
            if let Some((at, commit)) = in_flight.take() {
                commit.join().expect("a commit failed");
                record(at);
            }
            match store.commit() {
                Some(c) => {
                    let run = std::thread::spawn(move || c.run().unwrap());
                    in_flight = Some((i, run));
                }
                None => record(i),
            }
        }
        return;
    }
    for i in 0..CHILD_MAX_OPS {
        let op = ops.next();
        apply(&mut store, &op);
        if let Op::Flush = op {
            record(i);
        }
    }
}

/// The child's role in [`acknowledged_writes_are_durable_within_one_second`]: write
/// without ever calling `flush`, report how many operations were acknowledged, wait.
#[test]
fn bound_child() {
    let Ok(dir) = std::env::var(BOUND_CHILD_DIR) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED).unwrap().parse().unwrap();
    let acked_path = std::env::var(CHILD_DURABLE).unwrap();
    let mut store = SledStore::open(Path::new(&dir)).unwrap();
    let mut ops = Ops::new(seed);
    for _ in 0..BOUND_OPS {
        let op = ops.next();
        if !matches!(op, Op::Flush) {
            apply(&mut store, &op);
        }
    }
    let mut acked = fs::File::create(&acked_path).unwrap();
    writeln!(acked, "{BOUND_OPS}").unwrap();
    acked.sync_data().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

/// The documented bound: what the store acknowledged is durable within 1 s (the
/// 500 ms background flush plus one flush), without any call to `flush`.
#[test]
fn acknowledged_writes_are_durable_within_one_second() {
    if is_child(&[CHILD_DIR, BOUND_CHILD_DIR]) {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("data");
    let acked = base.path().join("acked");
    let seed = 7;
    let mut child = rerun("bound_child")
        .env(BOUND_CHILD_DIR, &dir)
        .env(CHILD_SEED, seed.to_string())
        .env(CHILD_DURABLE, &acked)
        .spawn()
        .unwrap();
    kill_one_second_after(&mut child, "acknowledged its writes", || {
        operations_recorded(&acked) != 0
    });

    let store = SledStore::open(&dir).unwrap();
    let mut model = MemStore::new();
    let mut ops = Ops::new(seed);
    for _ in 0..BOUND_OPS {
        let op = ops.next();
        apply(&mut model, &op);
    }
    assert_eq!(
        dump(&store, &ops),
        dump(&model, &ops),
        "writes acknowledged 1 s before SIGKILL were lost"
    );
}

#[test]
fn crash_kill_reopen() {
    if is_child(&[CHILD_DIR, BOUND_CHILD_DIR]) {
        return;
    }
    let cycles: usize = env_or("DHT_CRASH_CYCLES", 100);
    let seed: u64 = env_or("DHT_CRASH_SEED", 0x0063_7261_7368);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("data");
    let mut state = dump(&MemStore::new(), &Ops::new(0));
    let (mut total_ops, mut total_durable, mut node_id_set) = (0usize, 0usize, false);
    let started = Instant::now();

    for cycle in 0..cycles {
        let child_seed = rng.next_u64();
        let mode = if cycle % 2 == 1 {
            "group commit"
        } else {
            "flush"
        };
        let ctx = format!("crash test seed {seed} cycle {cycle} ({mode}, child seed {child_seed})");
        let durable_path = base.path().join(format!("durable-{cycle}"));
        let mut child = rerun("crash_child");
        if cycle % 2 == 1 {
            child.env(CHILD_GROUP, "1");
        }
        let mut child = child
            .env(CHILD_DIR, &dir)
            .env(CHILD_SEED, child_seed.to_string())
            .env(CHILD_DURABLE, &durable_path)
            .spawn()
            .unwrap();
        // Mostly while writing; sometimes during start-up and recovery.
        let run_for = Duration::from_millis(u64::from(rng.next_u32() % 400));
        kill_after(&mut child, run_for, &ctx);

        let store = match SledStore::open(&dir) {
            Ok(s) => s,
            Err(e) => panic!("{ctx}: reopen after SIGKILL failed: {e}"),
        };
        let got = dump(&store, &Ops::new(0));
        let durable = operations_recorded(&durable_path);
        match store.node_id().unwrap() {
            Some(id) => {
                assert_eq!(id, NODE_ID, "{ctx}: node id");
                node_id_set = true;
            }
            None => assert!(
                !node_id_set && durable == 0,
                "{ctx}: node id lost after it was flushed"
            ),
        }
        drop(store);

        // Find the prefix of the child's operations that the store holds.
        let mut model = model_of(&state, &Ops::new(0));
        let mut ops = Ops::new(child_seed);
        let mut applied = 0;
        let found = loop {
            if applied >= durable && dump(&model, &ops) == got {
                break true;
            }
            if applied > CHILD_MAX_OPS {
                break false;
            }
            let op = ops.next();
            apply(&mut model, &op);
            applied += 1;
        };
        assert!(
            found,
            "{ctx}: the reopened store is no prefix of the operations at least {durable} long \
             (flushed data lost or a torn operation)\ngot {got:#?}"
        );
        total_ops += applied;
        total_durable += durable;
        state = got;
    }
    eprintln!(
        "crash test: {cycles} cycles, {total_ops} operations recovered, {total_durable} of them \
         flushed before the kill, in {:.1} s (seed {seed})",
        started.elapsed().as_secs_f64()
    );
}
