//! The compact table against the kernel's table of `NodeInfo`: the same answers to the
//! same operations, before and after it widens.

use std::net::{Ipv6Addr, SocketAddrV6};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::defense::Defense;

const QUESTIONABLE_AFTER: Duration = Duration::from_secs(15 * 60);

fn pair(own: Id, now: Instant) -> (RoutingTable, NodeTable) {
    let d = Defense::default();
    let wide = RoutingTable::with_policy(own, 8, QUESTIONABLE_AFTER, 2, now, d)
        .with_extended_buckets(true);
    let config = Arc::new(Config {
        defense: d,
        ..Config::default()
    });
    let compact = NodeTable::v4(
        RoutingTable::<Contact4, _>::with_policy(
            own,
            8,
            QUESTIONABLE_AFTER,
            2,
            now,
            NodeDefense(config),
        )
        .with_extended_buckets(true),
    );
    (wide, compact)
}

fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// What an entry holds, comparable.
fn fields(e: &Entry<NodeInfo>) -> (NodeInfo, Stamp, Stamp, u8, u16) {
    (
        e.node,
        e.last_response,
        e.last_query,
        e.failures,
        e.rtt.ms(),
    )
}

fn assert_same(wide: &RoutingTable, compact: &NodeTable, rng: &mut ChaCha8Rng, now: Instant) {
    let a: Vec<_> = wide.entries().map(fields).collect();
    let b: Vec<_> = compact.entries().map(|e| fields(&e)).collect();
    assert_eq!(a, b, "entries");
    assert_eq!(wide.len(), compact.len());
    assert_eq!(wide.replacement_len(), compact.replacement_len());
    assert_eq!(wide.bucket_count(), compact.bucket_count());
    for i in 0..wide.bucket_count() + 1 {
        assert_eq!(wide.bucket_len(i), compact.bucket_len(i));
        assert_eq!(wide.prefix_len(i), compact.prefix_len(i));
    }
    let target = Id::random(rng);
    assert_eq!(
        wide.closest(&target, 8, now),
        compact.closest(&target, 8, now)
    );
    assert_eq!(
        wide.closest(&target, 100, now),
        compact.closest(&target, 100, now)
    );
    assert_eq!(wide.questionable(now, 50), compact.questionable(now, 50));
    assert_eq!(
        wide.unverified_with_room(50),
        compact.unverified_with_room(50)
    );
    assert_eq!(
        wide.stale_buckets(now, QUESTIONABLE_AFTER),
        compact.stale_buckets(now, QUESTIONABLE_AFTER)
    );
    for e in wide.entries() {
        let other = compact.get(&e.node.id).expect("the same entry by id");
        assert_eq!(fields(e), fields(&other));
        assert_eq!(wide.health(e, now), compact.health(&other, now));
        assert_eq!(wide.rtt_of(&e.node), compact.rtt_of(&e.node));
        assert!(compact.has_endpoint(&e.node.addr));
    }
}

/// 20,000 random operations on both tables from a pool of 1,500 ids and 600 public
/// IPv4 addresses in 160 /24s, 3 ports each (so that ids move, endpoints collide and the per-IP and
/// per-/24 caps, full buckets, splits, replacements and failures all happen); from
/// the half on, some addresses are IPv4-mapped IPv6 ones, which widen the compact table.
#[test]
fn answers_as_a_table_of_node_info_before_and_after_it_widens() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let t0 = Instant::now();
    let own = Id::random(&mut rng);
    let (mut wide, mut compact) = pair(own, t0);
    let ids: Vec<Id> = (0..1500).map(|_| Id::random(&mut rng)).collect();
    let ips: Vec<[u8; 4]> = (0..600)
        .map(|_| {
            let net = below(&mut rng, 160) as u8;
            let host = 1 + below(&mut rng, 254) as u8;
            [81, 20, net, host]
        })
        .collect();
    let mut now = t0;
    let mut widened_at = None;
    for step in 0..20_000 {
        now += Duration::from_secs(below(&mut rng, 120) as u64);
        let which = below(&mut rng, ids.len());
        let id = ids[which];
        // An id is mostly seen at its own IP, under one of three ports (the same
        // host moving port), sometimes anywhere (another id at a known endpoint).
        let port = 6881 + below(&mut rng, 3) as u16;
        let ip = if below(&mut rng, 4) == 0 {
            ips[below(&mut rng, ips.len())]
        } else {
            ips[which % ips.len()]
        };
        let mut addr = SocketAddr::from((ip, port));
        if step >= 10_000 && below(&mut rng, 50) == 0 {
            let SocketAddr::V4(a) = addr else {
                unreachable!()
            };
            addr = SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0));
        }
        let node = NodeInfo { id, addr };
        match below(&mut rng, 20) {
            0..=9 => assert_eq!(
                wide.on_response(node, now),
                compact.on_response(node, now),
                "on_response at step {step}"
            ),
            10..=13 => assert_eq!(
                wide.on_query(node, now),
                compact.on_query(node, now),
                "on_query at step {step}"
            ),
            14..=16 => assert_eq!(
                wide.on_timeout(&id, &addr, now),
                compact.on_timeout(&id, &addr, now),
                "on_timeout at step {step}"
            ),
            17..=18 => {
                let rtt = Duration::from_millis(below(&mut rng, 900) as u64);
                wide.note_rtt(&node, rtt);
                compact.note_rtt(&node, rtt);
            }
            _ => assert_eq!(
                wide.remove(&id),
                compact.remove(&id),
                "remove at step {step}"
            ),
        }
        if widened_at.is_none() && matches!(compact.0, Inner::Any(_)) {
            widened_at = Some(step);
        }
        if step % 100 == 0 {
            assert_same(&wide, &compact, &mut rng, now);
        }
    }
    assert_same(&wide, &compact, &mut rng, now);
    // It filled and split (278 entries, 9 buckets, 56 cached when written).
    assert!(
        wide.len() > 200,
        "the table filled ({} entries)",
        wide.len()
    );
    assert!(wide.bucket_count() > 1, "the table split");
    let widened_at = widened_at.expect("a mapped address widened the compact table");
    assert!(
        widened_at >= 10_000,
        "widened at step {widened_at}, before any mapped address"
    );
}

#[test]
fn a_table_rebuilt_around_a_new_id_keeps_its_form() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let t0 = Instant::now();
    let (mut wide, mut compact) = pair(Id::random(&mut rng), t0);
    for i in 0..60u8 {
        let node = NodeInfo {
            id: Id::random(&mut rng),
            addr: SocketAddr::from(([81, 30, i, 1], 6881)),
        };
        wide.on_response(node, t0);
        compact.on_response(node, t0);
    }
    let own = Id::random(&mut rng);
    let wide = wide.rebuilt(own, t0);
    let compact = compact.rebuilt(own, t0);
    assert!(matches!(compact.0, Inner::V4(_)));
    assert_eq!(compact.own_id(), own);
    assert_same(&wide, &compact, &mut rng, t0);
}

#[test]
fn a_mapped_address_widens_the_table_keeping_every_entry() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let t0 = Instant::now();
    let (_, mut compact) = pair(Id::random(&mut rng), t0);
    for i in 0..20u8 {
        let node = NodeInfo {
            id: Id::random(&mut rng),
            addr: SocketAddr::from(([81, 40, i, 1], 6881)),
        };
        compact.on_response(node, t0 + Duration::from_secs(u64::from(i)));
    }
    let before: Vec<_> = compact.entries().map(|e| fields(&e)).collect();
    let mapped = NodeInfo {
        id: Id::random(&mut rng),
        addr: SocketAddr::V6(SocketAddrV6::new(
            Ipv4Addr::new(81, 41, 0, 1).to_ipv6_mapped(),
            6881,
            0,
            0,
        )),
    };
    assert_eq!(
        compact.on_response(mapped, t0 + Duration::from_secs(30)),
        Insert::Added
    );
    assert!(matches!(compact.0, Inner::Any(_)));
    let after: Vec<_> = compact.entries().map(|e| fields(&e)).collect();
    assert_eq!(after.len(), before.len() + 1);
    assert!(before.iter().all(|b| after.contains(b)), "an entry changed");
    assert!(compact.has_endpoint(&mapped.addr));
    // An IPv6 address of its own does not pack either, and is compared as a whole.
    let v6 = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 1, 0, 0));
    assert!(!compact.has_endpoint(&v6));
}

#[cfg(target_pointer_width = "64")]
#[test]
fn a_compact_entry_is_37_bytes_where_a_node_info_entry_is_64() {
    assert_eq!(std::mem::size_of::<Entry<Contact4>>(), 37);
    assert_eq!(std::mem::size_of::<Entry<NodeInfo>>(), 64);
}
