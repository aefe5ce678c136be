//! The protocol-neutral kernel over a contact that is not Mainline's: 256-bit keys
//! (`Id<32>`, as libp2p's Kademlia uses), a contact that owns heap data and moves to
//! new endpoints, a policy of the test's own, and lookups over disjoint paths through
//! the request table, in a network of 400 such contacts held in memory.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use dht_core::kernel::{
    Admission, Candidates, Contact, Insert, Key, Paths, RequestTable, RoutingTable,
};
use dht_core::{Defense, Id};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Key256 = Id<32>;

/// A libp2p-shaped contact: a 256-bit key and listen addresses (heap data: not `Copy`).
#[derive(Clone, Debug, PartialEq)]
struct Peer {
    key: Key256,
    addrs: Vec<SocketAddr>,
}

impl Contact for Peer {
    type Key = Key256;
    fn key(&self) -> &Key256 {
        &self.key
    }
    fn ip(&self) -> Option<IpAddr> {
        self.addrs.first().map(|a| a.ip())
    }
    fn same_endpoint(&self, other: &Self) -> bool {
        self.addrs.first() == other.addrs.first()
    }
    fn is_verified(&self) -> bool {
        true
    }
    fn readdress(&mut self, newer: &Self) -> bool {
        // A peer's newest listen addresses replace the old ones.
        self.addrs = newer.addrs.clone();
        true
    }
}

const MIN15: Duration = Duration::from_secs(15 * 60);

fn peer(key: Key256, n: u32) -> Peer {
    let ip = Ipv4Addr::from(0x7f00_0000 | (n & 0x00ff_ffff));
    Peer {
        key,
        addrs: vec![SocketAddr::from((ip, 4001))],
    }
}

fn key_with_prefix(own: &Key256, bits: usize, rng: &mut ChaCha8Rng) -> Key256 {
    own.random_in_bucket(bits, rng)
}

#[test]
fn the_table_splits_past_160_bits_and_returns_the_true_closest() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let now = Instant::now();
    let own: Key256 = Key::random(&mut rng);
    let mut t: RoutingTable<Peer> =
        RoutingTable::with_policy(own, 8, MIN15, 2, now, Defense::default());
    let mut all = Vec::new();
    // Contacts at every depth, down to 255 shared bits: a 160-bit table stops at 160.
    for (n, bits) in (0..256).chain(200..256).chain(240..256).enumerate() {
        let p = peer(key_with_prefix(&own, bits, &mut rng), n as u32);
        all.push(p.clone());
        assert_ne!(t.on_response(p, now), Insert::Rejected);
    }
    assert!(
        t.bucket_count() > 200,
        "a 256-bit table splits as deep as its contacts: {} buckets",
        t.bucket_count()
    );
    assert_eq!(
        t.prefix_len(250),
        3,
        "bucket 250 holds the three contacts at depth 250"
    );
    let held: Vec<Peer> = t.entries().map(|e| e.node.clone()).collect();
    for _ in 0..50 {
        let target: Key256 = Key::random(&mut rng);
        let mut truth = held.clone();
        truth.sort_by_key(|p| p.key.distance(&target));
        truth.truncate(20);
        assert_eq!(t.closest(&target, 20, now), truth);
    }
}

#[test]
fn a_newer_sighting_readdresses_a_contact_that_allows_it() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let now = Instant::now();
    let own: Key256 = Key::random(&mut rng);
    let mut t: RoutingTable<Peer> =
        RoutingTable::with_policy(own, 8, MIN15, 2, now, Defense::default());
    let key = key_with_prefix(&own, 3, &mut rng);
    assert_eq!(t.on_response(peer(key, 1), now), Insert::Added);
    let moved = peer(key, 2);
    assert_eq!(t.on_response(moved.clone(), now), Insert::Updated);
    assert_eq!(t.get(&key).map(|e| e.node.clone()), Some(moved));
}

/// A policy of this test's own: contacts on even /8s only, never a displacement.
#[derive(Clone, Debug)]
struct EvenNetworks;

impl Admission<Peer> for EvenNetworks {
    fn admits<'a>(
        &self,
        node: &Peer,
        _table: impl Iterator<Item = &'a Peer>,
        _in_bucket: impl Iterator<Item = &'a Peer>,
    ) -> bool {
        matches!(node.ip(), Some(IpAddr::V4(a)) if a.octets()[0] % 2 == 0)
    }
    fn may_displace(&self, _node: &Peer) -> bool {
        false
    }
    fn yields(&self, _incumbent: &Peer) -> bool {
        false
    }
}

#[test]
fn the_table_admits_by_the_policy_it_is_given() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let now = Instant::now();
    let own: Key256 = Key::random(&mut rng);
    let mut t = RoutingTable::with_policy(own, 8, MIN15, 2, now, EvenNetworks);
    let odd = Peer {
        key: key_with_prefix(&own, 1, &mut rng),
        addrs: vec!["11.0.0.1:4001".parse().unwrap()],
    };
    let even = Peer {
        key: key_with_prefix(&own, 1, &mut rng),
        addrs: vec!["12.0.0.1:4001".parse().unwrap()],
    };
    assert_eq!(t.on_response(odd, now), Insert::Rejected);
    assert_eq!(t.on_response(even, now), Insert::Added);
    assert_eq!(t.len(), 1);
}

/// Requests a lookup has in flight: which path asked which key.
#[derive(Clone, Copy, Debug)]
struct Asked {
    path: u8,
    key: Key256,
}

/// Runs one lookup from `src` toward `target` over `paths` disjoint paths, every
/// request through a `RequestTable`, every reply from the asked peer's own table.
fn lookup(
    net: &BTreeMap<Key256, (Peer, RoutingTable<Peer>)>,
    src: &Key256,
    target: Key256,
    paths: usize,
    rng: &mut ChaCha8Rng,
    now: Instant,
) -> (Vec<Peer>, usize) {
    let k = 20;
    let mut lookup = Paths::new(
        (0..paths)
            .map(|_| Candidates::<Peer>::toward(target, k, 3, 64))
            .collect(),
    );
    for (i, p) in net[src].1.closest(&target, k, now).into_iter().enumerate() {
        lookup[i % paths].add(p, 1);
    }
    let mut requests: RequestTable<Asked, SocketAddr> = RequestTable::new();
    let mut asked = 0;
    loop {
        let next = lookup.next_to_query(|_| false);
        for (path, p) in &next {
            let tid = requests.unused_id(|| rng.next_u32().to_be_bytes());
            let to = p.addrs[0];
            requests.insert(
                tid,
                to,
                Asked {
                    path: *path,
                    key: p.key,
                },
                now,
                now + MIN15,
            );
            asked += 1;
            // A forged reply from another address never matches the request.
            let forger: SocketAddr = "127.255.255.1:1".parse().unwrap();
            assert!(requests.take_reply(now, &tid, &forger).is_none());
            let reply = requests
                .take_reply(now, &tid, &to)
                .expect("the asked address answers under the live id");
            let (_, table) = &net[&reply.request.key];
            let depth = lookup[reply.request.path as usize]
                .on_response(&reply.request.key, None)
                .expect("in flight");
            // As a node does, the querier never adds itself.
            for learned in table.closest(&target, k, now) {
                if learned.key == *src {
                    continue;
                }
                lookup[reply.request.path as usize].add(learned, depth + 1);
            }
        }
        if next.is_empty() && lookup.all_done() {
            break;
        }
        assert!(!next.is_empty(), "a lookup with nothing in flight is done");
    }
    assert!(requests.is_empty());
    let found = lookup.merged_closest(k).into_iter().map(|c| c.0).collect();
    (found, asked)
}

#[test]
fn lookups_over_256_bit_contacts_find_the_true_20_closest_on_one_and_on_disjoint_paths() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let now = Instant::now();
    let peers: Vec<Peer> = (0..400).map(|n| peer(Key::random(&mut rng), n)).collect();
    let mut net = BTreeMap::new();
    for p in &peers {
        let mut table = RoutingTable::with_policy(p.key, 20, MIN15, 2, now, Defense::default());
        for other in &peers {
            if other.key != p.key {
                table.on_response(other.clone(), now);
            }
        }
        net.insert(p.key, (p.clone(), table));
    }
    for round in 0..40 {
        let src = peers[round * 7 % peers.len()].key;
        let target: Key256 = Key::random(&mut rng);
        let mut truth: Vec<Peer> = peers.iter().filter(|p| p.key != src).cloned().collect();
        truth.sort_by_key(|p| p.key.distance(&target));
        truth.truncate(20);
        for paths in [1, 2] {
            let (found, asked) = lookup(&net, &src, target, paths, &mut rng, now);
            assert_eq!(found, truth, "round {round}, {paths} path(s)");
            assert!(asked >= 20, "the 20 closest were asked: {asked}");
        }
    }
}
