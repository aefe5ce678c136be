//! The routing table's rules, one test each.
use super::*;
use crate::defense::Bep42Mode;

fn id_with_prefix(first: u8, last: u8) -> Id {
    let mut b = [0u8; 20];
    b[0] = first;
    b[19] = last;
    Id(b)
}

fn node(id: Id, port: u16) -> NodeInfo {
    NodeInfo {
        id,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

const MIN15: Duration = Duration::from_secs(15 * 60);

#[test]
fn splits_only_own_bucket_and_drops_when_full() {
    let now = Instant::now();
    let mut t = RoutingTable::new(Id::ZERO, 8, MIN15, 2, now);
    // 20 nodes that all differ from us in the first bit: bucket 0 fills at 8.
    for i in 0..20u8 {
        let r = t.on_response(node(id_with_prefix(0x80, i + 1), 1000 + i as u16), now);
        if i < 8 {
            assert_eq!(r, Insert::Added);
        } else {
            assert!(matches!(r, Insert::Cached(None)), "{r:?}");
        }
    }
    assert_eq!(t.len(), 8);
    assert_eq!(t.replacement_len(), 8, "replacement cache bounded by k");
    // Nodes close to us split the own bucket.
    for i in 0..8u8 {
        assert_eq!(
            t.on_response(node(id_with_prefix(0x01, i + 1), 2000 + i as u16), now),
            Insert::Added
        );
    }
    assert_eq!(t.len(), 16);
    assert!(t.bucket_count() > 1);
}

#[test]
fn questionable_pinged_bad_replaced() {
    let t0 = Instant::now();
    let mut t = RoutingTable::new(Id::ZERO, 2, MIN15, 2, t0);
    let a = node(id_with_prefix(0x80, 1), 1);
    let b = node(id_with_prefix(0x80, 2), 2);
    let c = node(id_with_prefix(0x80, 3), 3);
    // Fill bucket 0 and force a split so bucket 0 cannot split further.
    t.on_response(a, t0);
    t.on_response(b, t0);
    t.on_response(node(id_with_prefix(0x01, 1), 9), t0);
    // Fresh bucket of good nodes: newcomer cached, nobody to ping.
    assert_eq!(t.on_response(c, t0), Insert::Cached(None));
    // 16 minutes later both are questionable: the stalest is named for a ping.
    let t1 = t0 + Duration::from_secs(16 * 60);
    t.on_response(a, t1 - Duration::from_secs(60));
    assert_eq!(t.on_response(c, t1), Insert::Cached(Some(b)));
    assert_eq!(t.health(t.get(&b.id).unwrap(), t1), Health::Questionable);
    // b fails twice: it is replaced by c, which has answered us.
    assert!(!t.on_timeout(&b.id, &b.addr, t1));
    assert!(t.on_timeout(&b.id, &b.addr, t1));
    assert!(t.get(&b.id).is_none());
    assert!(t.get(&c.id).is_some());
}

#[test]
fn queriers_do_not_enter_main_buckets() {
    let now = Instant::now();
    let mut t = RoutingTable::new(Id::ZERO, 8, MIN15, 2, now);
    let n = node(id_with_prefix(0x40, 1), 5);
    assert!(t.on_query(n, now), "room: caller should ping it");
    assert_eq!(t.len(), 0);
    assert_eq!(t.replacement_len(), 1);
    assert_eq!(t.on_response(n, now), Insert::Added);
    assert_eq!(t.replacement_len(), 0);
}

#[test]
fn good_rule_counts_queries_only_after_an_answer() {
    let t0 = Instant::now();
    let mut t = RoutingTable::new(Id::ZERO, 8, MIN15, 2, t0);
    let n = node(id_with_prefix(0x40, 1), 5);
    t.on_response(n, t0);
    let t1 = t0 + Duration::from_secs(20 * 60);
    assert_eq!(t.health(t.get(&n.id).unwrap(), t1), Health::Questionable);
    t.on_query(n, t1);
    assert_eq!(t.health(t.get(&n.id).unwrap(), t1), Health::Good);
}

#[test]
fn one_address_one_id() {
    let now = Instant::now();
    let mut t = RoutingTable::new(Id::ZERO, 8, MIN15, 2, now);
    t.on_response(node(id_with_prefix(0x40, 1), 5), now);
    assert_eq!(
        t.on_response(node(id_with_prefix(0x41, 1), 5), now),
        Insert::Rejected
    );
    assert_eq!(
        t.on_response(node(id_with_prefix(0x40, 1), 6), now),
        Insert::Rejected
    );
}

#[test]
fn diversity_caps_per_ip_and_prefix() {
    let now = Instant::now();
    let strict = Defense {
        exempt_local: false,
        ..Defense::default()
    };
    let mut t = RoutingTable::new(Id::ZERO, 8, MIN15, 2, now).with_defense(strict);
    let at = |id: u8, ip: [u8; 4], port: u16| NodeInfo {
        id: id_with_prefix(0x80, id),
        addr: SocketAddr::from((ip, port)),
    };
    assert_eq!(t.on_response(at(1, [127, 1, 1, 1], 1), now), Insert::Added);
    // Same IP, other port: one endpoint per host.
    assert_eq!(
        t.on_response(at(2, [127, 1, 1, 1], 2), now),
        Insert::Rejected
    );
    // Same /24: two per bucket.
    assert_eq!(t.on_response(at(3, [127, 1, 1, 2], 1), now), Insert::Added);
    assert_eq!(
        t.on_response(at(4, [127, 1, 1, 3], 1), now),
        Insert::Rejected
    );
    assert_eq!(t.on_response(at(5, [127, 1, 2, 3], 1), now), Insert::Added);
    // Exempt by default: loopback testnets share one IP.
    let mut lax = RoutingTable::new(Id::ZERO, 8, MIN15, 2, now);
    for i in 0..8u8 {
        assert_eq!(
            lax.on_response(at(i + 1, [127, 0, 0, 1], 1000 + i as u16), now),
            Insert::Added
        );
    }
}

#[test]
fn bep42_prefer_and_enforce() {
    let now = Instant::now();
    let ip: std::net::IpAddr = "124.31.75.21".parse().unwrap();
    let good = |n: u8| NodeInfo {
        id: crate::bep42::secure_id(ip, n, [n; 20]),
        addr: SocketAddr::new(ip, 1000 + n as u16),
    };
    let bad = |n: u8| NodeInfo {
        id: id_with_prefix(!good(1).id.0[0], n),
        addr: SocketAddr::from(([124, 31, 80 + n, 1], 1)),
    };
    let lax = Defense {
        max_per_ip: 100,
        max_per_prefix_in_bucket: 100,
        max_per_prefix_in_table: 100,
        ..Defense::default()
    };
    // Enforce: unverified public nodes never enter.
    let own = Id([0; 20]);
    let mut t = RoutingTable::new(own, 2, MIN15, 2, now).with_defense(Defense {
        bep42: Bep42Mode::Enforce,
        ..lax
    });
    assert_eq!(t.on_response(bad(1), now), Insert::Rejected);
    assert_eq!(t.on_response(good(1), now), Insert::Added);
    // Prefer: a full bucket of unverified nodes gives way to a verified one.
    let g = good(1);
    let mut own = g.id;
    for b in own.0.iter_mut() {
        *b = !*b;
    }
    let mut b_id = g.id;
    b_id.0[19] ^= 0x55;
    let unverified = NodeInfo {
        id: b_id,
        addr: SocketAddr::from(([124, 31, 90, 1], 1)),
    };
    assert!(!crate::bep42::is_valid(
        &unverified.id,
        unverified.addr.ip()
    ));
    let mut near_id = own;
    near_id.0[19] ^= 1;
    let near = NodeInfo {
        id: near_id,
        addr: SocketAddr::from(([9, 9, 9, 9], 9)),
    };
    let mut t = RoutingTable::new(own, 1, MIN15, 2, now).with_defense(lax);
    assert_eq!(t.on_response(unverified, now), Insert::Added);
    assert_eq!(
        t.on_response(near, now),
        Insert::Added,
        "splits the own bucket"
    );
    assert_eq!(t.bucket_index(&g.id), 0);
    assert_eq!(t.on_response(g, now), Insert::Added);
    assert!(t.get(&g.id).is_some());
    assert!(t.get(&unverified.id).is_none());
    assert_eq!(
        t.replacement_len(),
        1,
        "the unverified node waits in the cache"
    );
    // With BEP 42 off, the newcomer is only cached.
    let mut t = RoutingTable::new(own, 1, MIN15, 2, now).with_defense(Defense {
        bep42: Bep42Mode::Off,
        ..lax
    });
    t.on_response(unverified, now);
    t.on_response(near, now);
    assert_eq!(t.on_response(g, now), Insert::Cached(None));
}

#[test]
fn closest_matches_brute_force() {
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let now = Instant::now();
    let own = Id::random(&mut rng);
    let mut t = RoutingTable::new(own, 8, MIN15, 2, now);
    for p in 0..3000u16 {
        t.on_response(node(Id::random(&mut rng), p), now);
    }
    let all: Vec<NodeInfo> = t.entries().map(|e| e.node).collect();
    for _ in 0..200 {
        let target = Id::random(&mut rng);
        let mut brute = all.clone();
        brute.sort_by_key(|n| n.id.distance(&target));
        brute.truncate(8);
        assert_eq!(t.closest(&target, 8, now), brute);
    }
}

#[test]
fn extended_buckets_hold_16_8_4_2_times_k_far_from_us() {
    let now = Instant::now();
    let mut t = RoutingTable::new(Id::ZERO, 2, MIN15, 2, now).with_extended_buckets(true);
    let caps: Vec<usize> = (0..6).map(|i| t.bucket_capacity(i)).collect();
    assert_eq!(caps, [32, 16, 8, 4, 2, 2]);
    // One near node splits the table, then 40 nodes sharing no bit with us: bucket
    // 0 takes 32 of them and caches the rest.
    for i in 0..8u8 {
        t.on_response(node(id_with_prefix(0x01, i + 1), 3000 + i as u16), now);
    }
    let mut added = 0;
    for i in 0..40u8 {
        let r = t.on_response(node(id_with_prefix(0x80 | i, 1), 1000 + i as u16), now);
        added += usize::from(r == Insert::Added);
    }
    assert_eq!(added, 32);
    assert_eq!(t.bucket_len(0), 32);
    // A plain table keeps k there.
    let mut plain = RoutingTable::new(Id::ZERO, 2, MIN15, 2, now);
    for i in 0..8u8 {
        plain.on_response(node(id_with_prefix(0x01, i + 1), 3000 + i as u16), now);
    }
    for i in 0..40u8 {
        plain.on_response(node(id_with_prefix(0x80 | i, 1), 1000 + i as u16), now);
    }
    assert_eq!(plain.bucket_len(0), 2);
    // What an entry costs (the figure Config::extended_buckets quotes).
    println!("routing entry: {} bytes", std::mem::size_of::<Entry>());
}

#[test]
fn round_trips_are_kept_per_entry_and_smoothed() {
    let now = Instant::now();
    let mut t = RoutingTable::new(Id::ZERO, 8, MIN15, 2, now);
    let a = node(id_with_prefix(0x80, 1), 1);
    // Not in the table: nothing kept.
    t.note_rtt(&a, Duration::from_millis(80));
    assert_eq!(t.rtt_of(&a), None);
    t.on_response(a, now);
    assert_eq!(t.rtt_of(&a), None, "no round trip measured yet");
    t.note_rtt(&a, Duration::from_millis(80));
    assert_eq!(t.rtt_of(&a), Some(Duration::from_millis(80)));
    t.note_rtt(&a, Duration::from_millis(40));
    assert_eq!(
        t.rtt_of(&a),
        Some(Duration::from_millis(70)),
        "3/4 old + 1/4 new"
    );
    // Another address under the same id is not that entry.
    let moved = NodeInfo {
        addr: SocketAddr::from(([127, 0, 0, 2], 1)),
        ..a
    };
    assert_eq!(t.rtt_of(&moved), None);
    // Kept in the entry's padding: no bigger than before the field.
    assert!(std::mem::size_of::<Entry>() <= 64);
}
